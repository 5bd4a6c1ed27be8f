//! What an application is built for: the CPython version of its bytecode and extension modules,
//! and the platform its wheels are chosen for (`--python-platform`, uv's names:
//! `x86_64-manylinux_2_28`). Wheels are chosen, and checked, against these tags; the platform's
//! glibc is the oldest glibc the wheels may need.
//!
//! An executable's CPython is the launcher's (3.11) and its architecture x86_64 (the only
//! runtime built so far). A pyz runs on the host's own Python, so its version is chosen too
//! (`--python 3.X`), and so may its architecture be.

use std::fmt;

use anyhow::{bail, Context, Result};

/// A glibc version, `(2, 28)`.
pub type GlibcVersion = (u32, u32);

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

impl fmt::Display for PythonVersion {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{}.{}", self.major, self.minor)
    }
}

/// The platform wheels are resolved for: an architecture and the newest glibc the wheels may
/// need (a manylinux level).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Platform {
    pub glibc: GlibcVersion,
    /// As wheel tags name it: `x86_64`, `aarch64`...
    pub architecture: &'static str,
}

/// The default: current numpy, scipy, pandas, Pillow, lxml and cryptography publish only
/// `manylinux_2_28` wheels for x86_64, so a lower default would resolve old releases of them;
/// glibc 2.28 covers RHEL 8+, Debian 10+, Ubuntu 20.04+, Amazon Linux 2023, SLES 15 SP4+
/// (docs/cli.md, "Which glibc the wheels need", measured with `bench/manylinux_levels.py`).
pub const DEFAULT_PLATFORM: Platform = Platform {
    glibc: (2, 28),
    architecture: "x86_64",
};

/// The manylinux levels (glibc 2.N) a platform may name: those uv knows.
const LEVELS: &[u32] = &[17, 28, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40];

/// The legacy manylinux names and the glibc they stand for.
const LEGACY_TAGS: &[(&str, GlibcVersion)] = &[
    ("manylinux2014", (2, 17)),
    ("manylinux2010", (2, 12)),
    ("manylinux1", (2, 5)),
];

/// The architectures manylinux wheels are built for (the executable's runtime: x86_64 only).
pub const ARCHITECTURES: &[&str] = &["x86_64", "aarch64", "i686", "ppc64le", "s390x", "armv7l"];

impl Platform {
    /// Parses uv's platform name: `x86_64-manylinux_2_28`, `x86_64-manylinux2014`,
    /// `aarch64-manylinux_2_28`.
    pub fn parse(text: &str) -> Result<Platform> {
        let hint = "expected ARCH-manylinux_2_NN, e.g. `x86_64-manylinux_2_28` (RHEL 8+, Ubuntu 20.04+) or `x86_64-manylinux_2_17` (CentOS 7, Amazon Linux 2)";
        if text.contains("musl") {
            bail!("`{text}` is not a platform pyferry builds for: musl's dynamic loader finds libraries by file name only, not by the SONAME of a library already loaded, so the libraries of a wheel cannot be loaded from memory there (a pyz of pure Python runs on musl: it is tagged `any`)");
        }
        let Some((arch, level)) = text.split_once('-') else {
            bail!("`{text}` is not a platform: {hint}");
        };
        let Some(architecture) = ARCHITECTURES.iter().copied().find(|known| *known == arch) else {
            bail!("`{text}`: unknown architecture `{arch}`: {hint}");
        };
        let glibc = if let Some(minor) = level.strip_prefix("manylinux_2_") {
            let Ok(minor) = minor.parse::<u32>() else {
                bail!("`{text}` is not a platform: {hint}");
            };
            (2, minor)
        } else if let Some((_, glibc)) = LEGACY_TAGS.iter().find(|(name, _)| *name == level) {
            *glibc
        } else {
            bail!("`{text}` is not a platform: {hint}");
        };
        if !LEVELS.contains(&glibc.1) {
            let known = LEVELS
                .iter()
                .map(|minor| format!("2_{minor}"))
                .collect::<Vec<_>>()
                .join(", ");
            bail!("`{text}`: the manylinux level must be one of {known} (as uv names them)");
        }
        Ok(Platform {
            glibc,
            architecture,
        })
    }

    /// uv's name for it, `x86_64-manylinux_2_28`.
    pub fn uv_name(&self) -> String {
        format!("{}-manylinux_2_{}", self.architecture, self.glibc.1)
    }

    /// The wheel platform tags it accepts, newest first: `manylinux_2_28_x86_64` down to
    /// `manylinux_2_5`, the legacy aliases at or below its level, and pure Python.
    pub fn wheel_tags(&self) -> Vec<String> {
        let architecture = self.architecture;
        let mut tags: Vec<String> = (5..=self.glibc.1)
            .rev()
            .map(|minor| format!("manylinux_2_{minor}_{architecture}"))
            .collect();
        tags.extend(
            LEGACY_TAGS
                .iter()
                .filter(|(_, glibc)| *glibc <= self.glibc)
                .map(|(name, _)| format!("{name}_{architecture}")),
        );
        tags.push("any".to_string());
        tags
    }

    /// The newest wheel platform tag it accepts, `manylinux_2_28_x86_64`.
    pub fn wheel_tag(&self) -> String {
        format!("manylinux_2_{}_{}", self.glibc.1, self.architecture)
    }

    /// The same level for another architecture (one of [`ARCHITECTURES`]).
    pub fn with_architecture(&self, architecture: &str) -> Platform {
        Platform {
            glibc: self.glibc,
            architecture: ARCHITECTURES
                .iter()
                .copied()
                .find(|known| *known == architecture)
                .unwrap_or(self.architecture),
        }
    }

    /// The same platform at another glibc level.
    pub fn with_glibc_minor(&self, minor: u32) -> Platform {
        Platform {
            glibc: (2, minor),
            architecture: self.architecture,
        }
    }

    /// The levels above this one, oldest first, to look for one that a requirement has a wheel
    /// for.
    pub fn higher_levels(&self) -> impl Iterator<Item = Platform> + '_ {
        LEVELS
            .iter()
            .filter(|minor| **minor > self.glibc.1)
            .map(|minor| self.with_glibc_minor(*minor))
    }

    /// The lowest level of this architecture that takes a wheel needing `glibc`, if any.
    pub fn level_for(&self, glibc: GlibcVersion) -> Option<Platform> {
        LEVELS
            .iter()
            .find(|minor| (2, **minor) >= glibc)
            .map(|minor| self.with_glibc_minor(*minor))
    }
}

/// uv's name, as `--python-platform` takes it.
impl fmt::Display for Platform {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.uv_name())
    }
}

/// The glibc a wheel's platform tag set (`manylinux_2_17_x86_64.manylinux2014_x86_64`) needs:
/// the lowest level it is tagged for; `None` for pure wheels and non-manylinux tags.
pub fn wheel_glibc(platform_tags: &str) -> Option<GlibcVersion> {
    platform_tags
        .split('.')
        .filter_map(|tag| {
            let level = ARCHITECTURES
                .iter()
                .find_map(|architecture| tag.strip_suffix(&format!("_{architecture}")))?;
            if let Some(minor) = level.strip_prefix("manylinux_2_") {
                return minor.parse().ok().map(|minor| (2, minor));
            }
            LEGACY_TAGS
                .iter()
                .find(|(name, _)| *name == level)
                .map(|(_, glibc)| *glibc)
        })
        .min()
}

/// The CPython and the platform an application is built for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Target {
    pub python: PythonVersion,
    pub platform: Platform,
}

impl Target {
    /// An executable for `platform`: the launcher's CPython.
    pub fn executable(platform: Platform) -> Target {
        Target {
            python: PythonVersion::EMBEDDED,
            platform,
        }
    }

    /// ABI tags a wheel may carry.
    pub fn abi_tags(&self) -> Vec<String> {
        vec![self.python.tag(), "abi3".to_string(), "none".to_string()]
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
        let known = self.platform.wheel_tags();
        let platforms_ok = platform
            .split('.')
            .any(|tag| known.iter().any(|known| known == tag));
        pythons_ok && abis_ok && platforms_ok
    }

    /// The tags, as one line for messages.
    pub fn describe(&self) -> String {
        format!(
            "CPython {} ({}, abi3 or none) on {} or older, or pure Python (any)",
            self.python,
            self.python.tag(),
            self.platform.wheel_tag()
        )
    }
}

/// `2.28`.
pub fn glibc_text(glibc: GlibcVersion) -> String {
    format!("{}.{}", glibc.0, glibc.1)
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
        let target = Target::executable(DEFAULT_PLATFORM);
        assert!(target.is_compatible(
            "cp311",
            "cp311",
            "manylinux_2_17_x86_64.manylinux2014_x86_64"
        ));
        assert!(target.is_compatible("py3", "none", "any"));
        assert!(target.is_compatible("cp39", "abi3", "manylinux_2_28_x86_64"));
        assert!(!target.is_compatible("cp312", "cp312", "manylinux_2_17_x86_64"));
        assert!(!target.is_compatible("cp311", "cp311", "manylinux_2_31_x86_64"));
        assert!(!target.is_compatible("cp311", "cp311", "macosx_11_0_arm64"));
        assert!(!target.is_compatible("cp311", "cp311", "linux_x86_64"));
        assert!(!target.is_compatible("cp312", "abi3", "manylinux_2_17_x86_64"));
        let old = Target::executable(Platform::parse("x86_64-manylinux2014").unwrap());
        assert!(!old.is_compatible("cp311", "cp311", "manylinux_2_28_x86_64"));
        assert!(old.is_compatible("cp311", "cp311", "manylinux2014_x86_64"));
    }

    #[test]
    fn other_pythons_and_architectures() {
        let target = Target {
            python: PythonVersion::parse("3.13").unwrap(),
            platform: Platform::parse("aarch64-manylinux_2_28").unwrap(),
        };
        assert!(target.is_compatible("cp313", "cp313", "manylinux_2_17_aarch64"));
        assert!(target.is_compatible("cp312", "abi3", "manylinux2014_aarch64"));
        assert!(!target.is_compatible("cp313", "cp313", "manylinux_2_17_x86_64"));
        assert!(!target.is_compatible("cp311", "cp311", "manylinux_2_17_aarch64"));
        assert!(!target.is_compatible("cp313", "cp313t", "manylinux_2_17_aarch64"));
        assert_eq!(target.platform.uv_name(), "aarch64-manylinux_2_28");
        assert_eq!(
            wheel_glibc("manylinux_2_17_aarch64.manylinux2014_aarch64"),
            Some((2, 17))
        );
        assert!(PythonVersion::parse("3.13t")
            .unwrap_err()
            .to_string()
            .contains("free-threaded"));
        assert!(PythonVersion::parse("2.7").is_err());
        assert!(PythonVersion::parse("three").is_err());
        assert_eq!(PythonVersion::parse("3.12").unwrap().tag(), "cp312");
    }

    #[test]
    fn platforms_parse_as_uv_names_them() {
        assert_eq!(
            Platform::parse("x86_64-manylinux_2_28").unwrap(),
            DEFAULT_PLATFORM
        );
        assert_eq!(
            Platform::parse("x86_64-manylinux2014").unwrap().glibc,
            (2, 17)
        );
        assert_eq!(DEFAULT_PLATFORM.uv_name(), "x86_64-manylinux_2_28");
        for bad in [
            "manylinux_2_28",
            "x86_64-manylinux_2_5",
            "x86_64-manylinux_2_26",
            "x86_64-musllinux_1_2",
            "riscv64-manylinux_2_28",
        ] {
            assert!(Platform::parse(bad).is_err(), "{bad}");
        }
        assert!(Platform::parse("x86_64-musllinux_1_2")
            .unwrap_err()
            .to_string()
            .contains("musl's dynamic loader"));
    }

    #[test]
    fn a_wheel_needs_its_lowest_tag() {
        assert_eq!(
            wheel_glibc("manylinux_2_17_x86_64.manylinux2014_x86_64"),
            Some((2, 17))
        );
        assert_eq!(
            wheel_glibc("manylinux_2_27_x86_64.manylinux_2_28_x86_64"),
            Some((2, 27))
        );
        assert_eq!(wheel_glibc("any"), None);
        assert_eq!(DEFAULT_PLATFORM.level_for((2, 26)), Some(DEFAULT_PLATFORM));
        assert_eq!(DEFAULT_PLATFORM.level_for((2, 41)), None);
    }
}
