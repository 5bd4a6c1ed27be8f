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

/// Source distributions and other archives pip would take as a path.
const ARCHIVE_SUFFIXES: &[&str] = &[".tar.gz", ".tgz", ".tar.bz2", ".tar.xz", ".tar", ".zip"];

fn looks_like_a_path(text: &str) -> bool {
    text.starts_with('.')
        || text.starts_with('/')
        || text.starts_with('~')
        || text.contains('/')
        || text.ends_with(".whl")
}

/// Classifies one command-line input.
pub fn classify(text: &str) -> Result<Input> {
    classify_in(Path::new(""), text)
}

/// Classifies one input, with relative paths taken from `dir` (empty: the current directory).
fn classify_in(dir: &Path, text: &str) -> Result<Input> {
    let path = &dir.join(text);
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
        if let Some(suffix) = ARCHIVE_SUFFIXES
            .iter()
            .find(|suffix| text.ends_with(*suffix))
        {
            bail!("`{text}` is a source archive (`{suffix}`); pyferry packs wheels: build one with `pip wheel --no-deps {text}`, or give the unpacked project directory");
        }
        if text.ends_with(".py") {
            bail!("`{text}` is a Python file; give the directory that holds the application (its entry point as `__main__.py`, or named with `-e`)");
        }
        if looks_like_a_path(text) {
            bail!("`{text}` is a file but not a wheel; give a directory, a wheel or a requirement");
        }
        // A bare name that happens to be a file here (`pyferry pack black` next to `./black`,
        // an earlier output): a requirement, as pip reads it.
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
    fn a_bare_name_that_is_also_a_file_is_a_requirement() {
        let dir = tempfile::tempdir().expect("tempdir");
        for file in ["black", "app.py", "pkg-1.0.tar.gz", "x.whl"] {
            std::fs::write(dir.path().join(file), b"x").expect("write");
        }
        let classify = |text| classify_in(dir.path(), text);
        assert_eq!(
            classify("black").unwrap(),
            Input::Requirement("black".to_string())
        );
        assert_eq!(
            classify("x.whl").unwrap(),
            Input::Wheel(dir.path().join("x.whl"))
        );
        let error = classify("./black").unwrap_err().to_string();
        assert!(error.contains("is a file but not a wheel"), "{error}");
        let error = classify("pkg-1.0.tar.gz").unwrap_err().to_string();
        assert!(error.contains("source archive"), "{error}");
        let error = classify("app.py").unwrap_err().to_string();
        assert!(error.contains("is a Python file"), "{error}");
        assert_eq!(
            classify("requests").unwrap(),
            Input::Requirement("requests".to_string())
        );
    }

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
