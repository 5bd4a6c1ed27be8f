//! Environment markers (PEP 508: `python_version < "3.12" and sys_platform == "linux"`),
//! evaluated for the application's target so that the dependency graph has only the edges
//! that hold where it runs.
//!
//! A variable the packer cannot know (`extra`, which extras were asked for; `platform_release`)
//! makes its comparison true: the edge is kept when the distribution it leads to is installed.
//! Markers have no negation, so this only ever adds edges, never hides one. A marker that does
//! not parse counts as true for the same reason.

use std::cmp::Ordering;

/// The values of the marker variables on the target; `None` for what is not known.
#[derive(Debug, Clone)]
pub struct Environment {
    pub python_version: String,
    pub python_full_version: Option<String>,
    pub platform_machine: String,
}

impl Environment {
    fn value(&self, variable: &str) -> Option<Option<String>> {
        let known = |value: &str| Some(Some(value.to_string()));
        match variable {
            "python_version" => known(&self.python_version),
            "python_full_version" | "implementation_version" => {
                Some(self.python_full_version.clone())
            }
            "os_name" => known("posix"),
            "sys_platform" => known("linux"),
            "platform_system" => known("Linux"),
            "platform_machine" => known(&self.platform_machine),
            "platform_python_implementation" => known("CPython"),
            "implementation_name" => known("cpython"),
            "extra" | "platform_release" | "platform_version" | "extras" | "dependency_groups" => {
                Some(None)
            }
            _ => None,
        }
    }

    /// Whether `marker` holds on the target (unknowns count as holding).
    pub fn evaluate(&self, marker: &str) -> bool {
        let Some(tokens) = tokenize(marker) else {
            return true;
        };
        let mut parser = Parser {
            tokens: &tokens,
            position: 0,
            environment: self,
        };
        match parser.or() {
            Some(value) if parser.position == tokens.len() => value,
            _ => true,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Variable(String),
    Literal(String),
    Operator(String),
    And,
    Or,
    Open,
    Close,
}

fn tokenize(text: &str) -> Option<Vec<Token>> {
    let mut tokens = Vec::new();
    let chars: Vec<char> = text.chars().collect();
    let mut index = 0;
    while index < chars.len() {
        let c = chars[index];
        if c.is_whitespace() {
            index += 1;
        } else if c == '(' || c == ')' {
            tokens.push(if c == '(' { Token::Open } else { Token::Close });
            index += 1;
        } else if c == '"' || c == '\'' {
            let end = chars[index + 1..].iter().position(|&other| other == c)? + index + 1;
            tokens.push(Token::Literal(chars[index + 1..end].iter().collect()));
            index = end + 1;
        } else if "<>=!~".contains(c) {
            let mut operator = String::new();
            while index < chars.len() && "<>=!~".contains(chars[index]) {
                operator.push(chars[index]);
                index += 1;
            }
            tokens.push(Token::Operator(operator));
        } else if c.is_ascii_alphabetic() || c == '_' {
            let mut word = String::new();
            while index < chars.len()
                && (chars[index].is_ascii_alphanumeric()
                    || chars[index] == '_'
                    || chars[index] == '.')
            {
                word.push(chars[index]);
                index += 1;
            }
            match word.as_str() {
                "and" => tokens.push(Token::And),
                "or" => tokens.push(Token::Or),
                "in" => tokens.push(Token::Operator("in".into())),
                "not" => tokens.push(Token::Operator("not".into())),
                _ => tokens.push(Token::Variable(word)),
            }
        } else {
            return None;
        }
    }
    // `not in` is one operator.
    let mut merged: Vec<Token> = Vec::new();
    for token in tokens {
        match (&token, merged.last()) {
            (Token::Operator(operator), Some(Token::Operator(previous)))
                if operator == "in" && previous == "not" =>
            {
                merged.pop();
                merged.push(Token::Operator("not in".into()));
            }
            _ => merged.push(token),
        }
    }
    Some(merged)
}

struct Parser<'a> {
    tokens: &'a [Token],
    position: usize,
    environment: &'a Environment,
}

impl Parser<'_> {
    fn next(&mut self) -> Option<Token> {
        let token = self.tokens.get(self.position).cloned();
        self.position += 1;
        token
    }

    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.position)
    }

    fn or(&mut self) -> Option<bool> {
        let mut value = self.and()?;
        while self.peek() == Some(&Token::Or) {
            self.position += 1;
            value |= self.and()?;
        }
        Some(value)
    }

    fn and(&mut self) -> Option<bool> {
        let mut value = self.atom()?;
        while self.peek() == Some(&Token::And) {
            self.position += 1;
            value &= self.atom()?;
        }
        Some(value)
    }

    fn atom(&mut self) -> Option<bool> {
        if self.peek() == Some(&Token::Open) {
            self.position += 1;
            let value = self.or()?;
            return (self.next()? == Token::Close).then_some(value);
        }
        let left = self.operand()?;
        let Token::Operator(operator) = self.next()? else {
            return None;
        };
        let right = self.operand()?;
        Some(match (left, right) {
            (Some(left), Some(right)) => compare(&left, &operator, &right),
            _ => true,
        })
    }

    /// A literal, or a variable's value (`None` inside when unknown).
    fn operand(&mut self) -> Option<Option<String>> {
        match self.next()? {
            Token::Literal(text) => Some(Some(text)),
            Token::Variable(name) => self.environment.value(&name),
            _ => None,
        }
    }
}

/// The release numbers of a version (`3.11.2rc1` → `[3, 11, 2]`), if it starts with one.
fn release(version: &str) -> Option<Vec<u64>> {
    let mut numbers = Vec::new();
    for part in version.trim().split('.') {
        let digits: String = part.chars().take_while(char::is_ascii_digit).collect();
        if digits.is_empty() {
            break;
        }
        numbers.push(digits.parse().ok()?);
        if digits.len() != part.len() {
            break;
        }
    }
    (!numbers.is_empty()).then_some(numbers)
}

fn compare_releases(left: &[u64], right: &[u64]) -> Ordering {
    let length = left.len().max(right.len());
    let at = |numbers: &[u64], index: usize| numbers.get(index).copied().unwrap_or(0);
    (0..length)
        .map(|index| at(left, index).cmp(&at(right, index)))
        .find(|ordering| *ordering != Ordering::Equal)
        .unwrap_or(Ordering::Equal)
}

fn compare(left: &str, operator: &str, right: &str) -> bool {
    match operator {
        "in" => return right.contains(left),
        "not in" => return !right.contains(left),
        "===" => return left == right,
        _ => {}
    }
    if let Some(prefix) = right.strip_suffix(".*") {
        if let (Some(left), Some(prefix)) = (release(left), release(prefix)) {
            let matches = left.len() >= prefix.len() && left[..prefix.len()] == prefix[..];
            return match operator {
                "==" => matches,
                "!=" => !matches,
                _ => true,
            };
        }
    }
    match (release(left), release(right)) {
        (Some(left), Some(right)) => {
            let ordering = compare_releases(&left, &right);
            match operator {
                "==" => ordering == Ordering::Equal,
                "!=" => ordering != Ordering::Equal,
                "<" => ordering == Ordering::Less,
                "<=" => ordering != Ordering::Greater,
                ">" => ordering == Ordering::Greater,
                ">=" => ordering != Ordering::Less,
                "~=" => {
                    let prefix = &right[..right.len().saturating_sub(1).max(1)];
                    ordering != Ordering::Less
                        && left.len() >= prefix.len()
                        && left[..prefix.len()] == prefix[..]
                }
                _ => true,
            }
        }
        _ => match operator {
            "==" => left == right,
            "!=" => left != right,
            "<" => left < right,
            "<=" => left <= right,
            ">" => left > right,
            ">=" => left >= right,
            _ => true,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target() -> Environment {
        Environment {
            python_version: "3.11".into(),
            python_full_version: Some("3.11.2".into()),
            platform_machine: "x86_64".into(),
        }
    }

    #[test]
    fn markers_for_cpython_3_11_on_linux() {
        let environment = target();
        for (marker, expected) in [
            ("python_version < \"3.12\"", true),
            ("python_version >= '3.12'", false),
            ("python_version < \"3.8\"", false),
            ("python_full_version >= \"3.11.3\"", false),
            ("sys_platform == \"win32\"", false),
            (
                "sys_platform == 'linux' and platform_machine == 'x86_64'",
                true,
            ),
            (
                "platform_system == \"Windows\" or python_version < \"3.10\"",
                false,
            ),
            (
                "(sys_platform == \"darwin\" or os_name == 'posix') and python_version ~= '3.8'",
                true,
            ),
            ("python_version == \"3.*\"", true),
            ("python_version != \"3.11.*\"", false),
            ("\"linux\" in sys_platform", true),
            ("platform_python_implementation != 'PyPy'", true),
            ("implementation_name == \"pypy\"", false),
            ("python_version ~= \"3.12\"", false),
        ] {
            assert_eq!(environment.evaluate(marker), expected, "{marker}");
        }
    }

    #[test]
    fn unknowns_and_unparsable_markers_hold() {
        let environment = Environment {
            python_full_version: None,
            ..target()
        };
        assert!(environment.evaluate("extra == \"socks\""));
        assert!(environment.evaluate("extra == 'socks' and python_version >= '3.8'"));
        assert!(!environment.evaluate("extra == 'socks' and python_version < '3.8'"));
        assert!(environment.evaluate("python_full_version < '3.9.1'"));
        assert!(environment.evaluate("this is not a marker"));
        assert!(environment.evaluate("python_version < "));
    }
}
