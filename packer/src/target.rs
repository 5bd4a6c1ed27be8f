//! What an application is built for: the CPython version of its bytecode and extension modules,
//! and the platform whose wheels it may hold. Wheels are chosen, and checked, against these
//! tags.
//!
//! An executable's target is fixed by its launcher: CPython 3.11, glibc 2.36 or older wheels
//! (the launcher is linked on Debian 12), x86_64. A pyz runs on the host's own Python, so its
//! target is chosen: `--python 3.X` and `--platform manylinux_2_N_ARCH` (by default the packing
//! host's glibc and architecture, as pip chooses for itself).

use anyhow::{bail, Context, Result};

/// `major.minor` of a CPython.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PythonVersion {
    pub major: u32,
    pub minor: u32,
}

impl PythonVersion {
    /// The CPython the executable's launcher embeds.
    pub const EMBEDDED: PythonVersion = PythonVersion {
        major: 3,
        minor: 11,
    };

    /// Parses `3.12`. Free-threaded (`3.13t`) and other implementations are refused with the
    /// reason.
    pub fn parse(text: &str) -> Result<PythonVersion> {
        let trimmed = text.trim();
        if trimmed.ends_with('t') {
            bail!("`--python {text}`: free-threaded CPython is not a target pyferry builds for yet; hint: `--python {}`", trimmed.trim_end_matches('t'));
        }
        let parsed = trimmed.split_once('.').and_then(|(major, minor)| {
            Some(PythonVersion {
                major: major.parse().ok()?,
                minor: minor.parse().ok()?,
            })
        });
        match parsed {
            Some(version) if version.major == 3 && version.minor >= 8 => Ok(version),
            Some(_) => bail!("`--python {text}`: pyferry builds for CPython 3.8 or newer"),
            None => bail!(
                "`--python {text}` is not a Python version (like `3.12`) or an interpreter's path"
            ),
        }
    }

    /// `3.11`
    pub fn dotted(&self) -> String {
        format!("{}.{}", self.major, self.minor)
    }

    /// `cp311`
    pub fn tag(&self) -> String {
        format!("cp{}{}", self.major, self.minor)
    }
}

impl std::fmt::Display for PythonVersion {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(formatter, "{}.{}", self.major, self.minor)
    }
}

/// A manylinux platform: glibc `2.minor` or newer on `architecture`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Platform {
    pub glibc_minor: u32,
    pub architecture: String,
}

/// Architectures manylinux wheels are built for.
const ARCHITECTURES: &[&str] = &["x86_64", "aarch64", "i686", "ppc64le", "s390x", "armv7l"];

impl Platform {
    /// Parses `manylinux_2_28_x86_64` or a legacy alias (`manylinux2014_x86_64` is glibc 2.17).
    pub fn parse(tag: &str) -> Result<Platform> {
        let legacy = [
            ("manylinux2014_", 17),
            ("manylinux2010_", 12),
            ("manylinux1_", 5),
        ];
        let parsed = if let Some(rest) = tag.strip_prefix("manylinux_2_") {
            rest.split_once('_').and_then(|(minor, architecture)| {
                Some((minor.parse::<u32>().ok()?, architecture.to_string()))
            })
        } else {
            legacy
                .iter()
                .find_map(|(prefix, minor)| Some((*minor, tag.strip_prefix(prefix)?.to_string())))
        };
        if tag.starts_with("musllinux") {
            bail!("`{tag}`: musl's dynamic loader finds libraries by file name only, not by the SONAME of a library already loaded, so the libraries of a wheel cannot be loaded from memory there; a pyz for musl can hold pure Python only (it is then `any`)");
        }
        match parsed {
            Some((minor, architecture)) if ARCHITECTURES.contains(&architecture.as_str()) => Ok(Platform {
                glibc_minor: minor,
                architecture,
            }),
            _ => bail!(
                "`{tag}` is not a platform pyferry builds for; hint: `manylinux_2_N_ARCH`, e.g. `manylinux_2_28_x86_64` (ARCH: {})",
                ARCHITECTURES.join(", ")
            ),
        }
    }

    /// `manylinux_2_28_x86_64`
    pub fn tag(&self) -> String {
        format!("manylinux_2_{}_{}", self.glibc_minor, self.architecture)
    }

    /// The packing host's glibc and architecture (`getconf GNU_LIBC_VERSION`), or the
    /// executable's platform when they cannot be told.
    pub fn host() -> Platform {
        let architecture = match std::env::consts::ARCH {
            "x86" => "i686",
            "arm" => "armv7l",
            "powerpc64" => "ppc64le",
            other => other,
        };
        let glibc_minor = std::process::Command::new("getconf")
            .arg("GNU_LIBC_VERSION")
            .output()
            .ok()
            .and_then(|output| {
                let text = String::from_utf8_lossy(&output.stdout).into_owned();
                let version = text.trim().strip_prefix("glibc ")?.to_string();
                let (major, minor) = version.split_once('.')?;
                (major == "2").then(|| minor.parse().ok())?
            })
            .unwrap_or(Target::executable().platform.glibc_minor);
        Platform {
            glibc_minor,
            architecture: architecture.to_string(),
        }
    }
}

/// The CPython and platform an application is built for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub python: PythonVersion,
    pub platform: Platform,
}

impl Target {
    /// The executable's target: the launcher's CPython, glibc 2.36 (it is linked on Debian 12).
    pub fn executable() -> Target {
        Target {
            python: PythonVersion::EMBEDDED,
            platform: Platform {
                glibc_minor: 36,
                architecture: "x86_64".to_string(),
            },
        }
    }

    /// ABI tags a wheel may carry.
    pub fn abi_tags(&self) -> Vec<String> {
        vec![self.python.tag(), "abi3".to_string(), "none".to_string()]
    }

    /// Platform tags a wheel may carry, newest first: `manylinux_2_N_ARCH` down to
    /// `manylinux_2_5`, the legacy aliases that are not newer than the target, and pure Python.
    pub fn platform_tags(&self) -> Vec<String> {
        let architecture = &self.platform.architecture;
        let mut tags: Vec<String> = (5..=self.platform.glibc_minor)
            .rev()
            .map(|minor| format!("manylinux_2_{minor}_{architecture}"))
            .collect();
        for (alias, minor) in [
            ("manylinux2014", 17),
            ("manylinux2010", 12),
            ("manylinux1", 5),
        ] {
            if minor <= self.platform.glibc_minor {
                tags.push(format!("{alias}_{architecture}"));
            }
        }
        tags.push("any".to_string());
        tags
    }

    /// Whether a wheel's `python-abi-platform` tag triple can run on the target.
    pub fn is_compatible(&self, python: &str, abi: &str, platform: &str) -> bool {
        let minor = self.python.minor;
        let own = self.python.tag();
        let pythons_ok = python.split('.').any(|tag| {
            tag == own
                || tag == "py3"
                || tag == format!("py3{minor}")
                || tag == "py2.py3"
                || (tag.starts_with("cp3") && abi.split('.').any(|abi| abi == "abi3") && {
                    // cp3X-abi3 runs on 3.Y when X ≤ Y.
                    tag[3..]
                        .parse::<u32>()
                        .is_ok_and(|tag_minor| tag_minor <= minor)
                })
        });
        let abi_tags = self.abi_tags();
        let abis_ok = abi
            .split('.')
            .any(|tag| abi_tags.iter().any(|known| known == tag));
        let known = self.platform_tags();
        let platforms_ok = platform
            .split('.')
            .any(|tag| known.iter().any(|known| known == tag));
        pythons_ok && abis_ok && platforms_ok
    }

    /// The target as uv's `--python-platform` names it: `x86_64-manylinux_2_36`.
    pub fn uv_platform(&self) -> String {
        format!(
            "{}-manylinux_2_{}",
            self.platform.architecture, self.platform.glibc_minor
        )
    }

    /// The tags, as one line for messages.
    pub fn describe(&self) -> String {
        format!(
            "CPython {} ({}, abi3 or none) on {} or older, or pure Python (any)",
            self.python,
            self.python.tag(),
            self.platform.tag()
        )
    }
}

/// The interpreter `--python` names: a version (`3.12`), or the path of an interpreter, which
/// is asked for its version (and later compiles the bytecode).
#[derive(Debug, Clone)]
pub struct RequestedPython {
    pub version: PythonVersion,
    pub interpreter: Option<std::path::PathBuf>,
}

impl RequestedPython {
    pub fn parse(text: &str) -> Result<RequestedPython> {
        if !text.contains('/') {
            return Ok(RequestedPython {
                version: PythonVersion::parse(text)?,
                interpreter: None,
            });
        }
        let path = std::path::PathBuf::from(text);
        let version = interpreter_version(&path)?;
        Ok(RequestedPython {
            version,
            interpreter: Some(path),
        })
    }
}

/// Asks `python` for its `major.minor`; refuses another implementation or a free-threaded build.
pub fn interpreter_version(python: &std::path::Path) -> Result<PythonVersion> {
    let output = std::process::Command::new(python)
        .args([
            "-I",
            "-c",
            "import sys; print(sys.implementation.name, '%d.%d' % sys.version_info[:2], getattr(sys, 'abiflags', ''))",
        ])
        .output()
        .with_context(|| format!("cannot run `{}`", python.display()))?;
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let fields: Vec<&str> = text.split_whitespace().collect();
    match fields.as_slice() {
        ["cpython", version] => PythonVersion::parse(version),
        ["cpython", version, flags] if flags.contains('t') => bail!(
            "`{}` is a free-threaded CPython {version}: not a target pyferry builds for yet",
            python.display()
        ),
        ["cpython", version, _] => PythonVersion::parse(version),
        [name, version, ..] => bail!(
            "`{}` is {name} {version}; pyferry builds for CPython",
            python.display()
        ),
        _ => bail!(
            "`{}` did not say which Python it is ({})",
            python.display(),
            String::from_utf8_lossy(&output.stderr).trim()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wheel_tags() {
        let target = Target::executable();
        assert!(target.is_compatible(
            "cp311",
            "cp311",
            "manylinux_2_17_x86_64.manylinux2014_x86_64"
        ));
        assert!(target.is_compatible("py3", "none", "any"));
        assert!(target.is_compatible("cp39", "abi3", "manylinux_2_28_x86_64"));
        assert!(!target.is_compatible("cp312", "cp312", "manylinux_2_17_x86_64"));
        assert!(!target.is_compatible("cp311", "cp311", "manylinux_2_39_x86_64"));
        assert!(!target.is_compatible("cp311", "cp311", "macosx_11_0_arm64"));
        assert!(!target.is_compatible("cp311", "cp311", "linux_x86_64"));
        assert!(!target.is_compatible("cp312", "abi3", "manylinux_2_17_x86_64"));
    }

    #[test]
    fn other_targets() {
        let target = Target {
            python: PythonVersion::parse("3.13").unwrap(),
            platform: Platform::parse("manylinux_2_28_aarch64").unwrap(),
        };
        assert!(target.is_compatible("cp313", "cp313", "manylinux_2_17_aarch64"));
        assert!(target.is_compatible("cp312", "abi3", "manylinux2014_aarch64"));
        assert!(!target.is_compatible("cp313", "cp313", "manylinux_2_17_x86_64"));
        assert!(!target.is_compatible("cp311", "cp311", "manylinux_2_17_aarch64"));
        assert!(!target.is_compatible("cp313", "cp313t", "manylinux_2_17_aarch64"));
        assert_eq!(target.uv_platform(), "aarch64-manylinux_2_28");
        let old = Target {
            python: PythonVersion::EMBEDDED,
            platform: Platform::parse("manylinux_2_12_x86_64").unwrap(),
        };
        assert!(!old
            .platform_tags()
            .contains(&"manylinux2014_x86_64".to_string()));
        assert!(old
            .platform_tags()
            .contains(&"manylinux2010_x86_64".to_string()));
    }

    #[test]
    fn parsing() {
        assert_eq!(
            Platform::parse("manylinux2014_x86_64").unwrap().glibc_minor,
            17
        );
        assert!(Platform::parse("musllinux_1_2_x86_64")
            .unwrap_err()
            .to_string()
            .contains("musl"));
        assert!(Platform::parse("macosx_11_0_arm64").is_err());
        assert!(PythonVersion::parse("3.13t")
            .unwrap_err()
            .to_string()
            .contains("free-threaded"));
        assert!(PythonVersion::parse("2.7").is_err());
        assert!(PythonVersion::parse("three").is_err());
        assert_eq!(PythonVersion::parse("3.12").unwrap().tag(), "cp312");
    }
}
