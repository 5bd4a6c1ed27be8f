//! Sorting `pyferry pack`'s inputs into what each is: an application tree, a project to build,
//! a wheel, or a requirement specifier.

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};

/// One input of `pyferry pack`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// A directory whose files are packed as they are (the zipapp form).
    Tree(PathBuf),
    /// A directory with `pyproject.toml` (or `setup.py`), built into a wheel.
    Project(PathBuf),
    /// A wheel file.
    Wheel(PathBuf),
    /// A requirement specifier for the resolver.
    Requirement(String),
}

fn looks_like_a_path(text: &str) -> bool {
    text.starts_with('.')
        || text.starts_with('/')
        || text.starts_with('~')
        || text.contains('/')
        || text.ends_with(".whl")
}

/// Classifies one command-line input.
pub fn classify(text: &str) -> Result<Input> {
    let path = Path::new(text);
    if path.is_dir() {
        if path.join("pyproject.toml").is_file() || path.join("setup.py").is_file() {
            return Ok(Input::Project(path.to_path_buf()));
        }
        return Ok(Input::Tree(path.to_path_buf()));
    }
    if path.is_file() {
        if text.ends_with(".whl") {
            return Ok(Input::Wheel(path.to_path_buf()));
        }
        bail!("`{text}` is a file but not a wheel; give a directory, a wheel or a requirement");
    }
    if looks_like_a_path(text) {
        bail!("`{text}` does not exist");
    }
    Ok(Input::Requirement(text.to_string()))
}

/// The distribution name a requirement line starts with, normalized (PEP 503), if any.
pub fn requirement_name(line: &str) -> Option<String> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') || line.starts_with('-') {
        return None;
    }
    let name: String = line
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        .collect();
    (!name.is_empty()).then(|| normalize(&name))
}

/// PEP 503 normalization: lowercase, runs of `-`, `_`, `.` become one `-`.
pub fn normalize(name: &str) -> String {
    let mut normalized = String::new();
    for c in name.chars() {
        if matches!(c, '-' | '_' | '.') {
            if !normalized.ends_with('-') {
                normalized.push('-');
            }
        } else {
            normalized.push(c.to_ascii_lowercase());
        }
    }
    normalized
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requirement_names() {
        assert_eq!(
            requirement_name("Black==24.1 ; python_version > '3'").as_deref(),
            Some("black")
        );
        assert_eq!(
            requirement_name("jaraco.functools>=4").as_deref(),
            Some("jaraco-functools")
        );
        assert_eq!(requirement_name("  # comment"), None);
        assert_eq!(requirement_name("--hash=sha256:00"), None);
        assert_eq!(normalize("Foo__Bar.baz"), "foo-bar-baz");
    }

    #[test]
    fn inputs_are_sorted_out() {
        assert_eq!(
            classify("httpie==3.2.4").unwrap(),
            Input::Requirement("httpie==3.2.4".into())
        );
        assert!(classify("./missing-dir")
            .unwrap_err()
            .to_string()
            .contains("does not exist"));
        assert!(classify("missing.whl")
            .unwrap_err()
            .to_string()
            .contains("does not exist"));
    }
}
