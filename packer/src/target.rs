//! The target every application is built for: the runtime's CPython, and the platform its
//! wheels are chosen for (`--python-platform`, uv's names: `x86_64-manylinux_2_28`). Wheels are
//! chosen, and checked, against these tags; the platform's glibc is the oldest glibc the
//! wheels may need.

use std::fmt;

use anyhow::{bail, Result};

/// `major.minor` of the embedded CPython.
pub const PYTHON_VERSION: &str = "3.11";

/// ABI tags a wheel may carry.
pub const ABI_TAGS: &[&str] = &["cp311", "abi3", "none"];

/// A glibc version, `(2, 28)`.
pub type GlibcVersion = (u32, u32);

/// The platform wheels are resolved for: an architecture and the newest glibc the wheels may
/// need (a manylinux level).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Platform {
    pub glibc: GlibcVersion,
}

/// The default: current numpy, scipy, pandas, Pillow, lxml and cryptography publish only
/// `manylinux_2_28` wheels for x86_64, so a lower default would resolve old releases of them;
/// glibc 2.28 covers RHEL 8+, Debian 10+, Ubuntu 20.04+, Amazon Linux 2023, SLES 15 SP4+
/// (docs/cli.md, "Which glibc the wheels need", measured with `bench/manylinux_levels.py`).
pub const DEFAULT_PLATFORM: Platform = Platform { glibc: (2, 28) };

/// The manylinux levels (glibc 2.N) a platform may name: those uv knows.
const LEVELS: &[u32] = &[17, 28, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40];

/// The legacy manylinux names and the glibc they stand for.
const LEGACY_TAGS: &[(&str, GlibcVersion)] = &[
    ("manylinux2014", (2, 17)),
    ("manylinux2010", (2, 12)),
    ("manylinux1", (2, 5)),
];

impl Platform {
    /// Parses uv's platform name: `x86_64-manylinux_2_28`, `x86_64-manylinux2014`.
    pub fn parse(text: &str) -> Result<Platform> {
        let hint = "expected ARCH-manylinux_2_NN, e.g. `x86_64-manylinux_2_28` (RHEL 8+, Ubuntu 20.04+) or `x86_64-manylinux_2_17` (CentOS 7, Amazon Linux 2)";
        let Some((arch, level)) = text.split_once('-') else {
            bail!("`{text}` is not a platform: {hint}");
        };
        if arch != "x86_64" {
            if arch == "aarch64" {
                bail!("`{text}`: only x86_64 runtimes are built so far (aarch64 is not)");
            }
            bail!("`{text}`: unknown architecture `{arch}`: {hint}");
        }
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
        Ok(Platform { glibc })
    }

    /// uv's name for it, `x86_64-manylinux_2_28`.
    pub fn uv_name(&self) -> String {
        format!("x86_64-manylinux_2_{}", self.glibc.1)
    }

    /// The wheel platform tags it accepts, newest first: `manylinux_2_28_x86_64` down to
    /// `manylinux_2_5`, the legacy aliases at or below its level, and pure Python.
    pub fn wheel_tags(&self) -> Vec<String> {
        let mut tags: Vec<String> = (5..=self.glibc.1)
            .rev()
            .map(|minor| format!("manylinux_2_{minor}_x86_64"))
            .collect();
        tags.extend(
            LEGACY_TAGS
                .iter()
                .filter(|(_, glibc)| *glibc <= self.glibc)
                .map(|(name, _)| format!("{name}_x86_64")),
        );
        tags.push("any".to_string());
        tags
    }

    /// The newest wheel platform tag it accepts, `manylinux_2_28_x86_64`.
    pub fn wheel_tag(&self) -> String {
        format!("manylinux_2_{}_x86_64", self.glibc.1)
    }

    /// The same platform at another glibc level.
    pub fn with_glibc_minor(&self, minor: u32) -> Platform {
        Platform { glibc: (2, minor) }
    }

    /// The levels above this one, oldest first, to look for one that a requirement has a wheel
    /// for.
    pub fn higher_levels(&self) -> impl Iterator<Item = Platform> + '_ {
        LEVELS
            .iter()
            .filter(|minor| **minor > self.glibc.1)
            .map(|minor| self.with_glibc_minor(*minor))
    }

    /// The lowest level that takes a wheel needing `glibc`, if any.
    pub fn level_for(glibc: GlibcVersion) -> Option<Platform> {
        LEVELS
            .iter()
            .find(|minor| (2, **minor) >= glibc)
            .map(|minor| Platform { glibc: (2, *minor) })
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
            let level = tag.strip_suffix("_x86_64")?;
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

/// Whether a wheel's `python-abi-platform` tag triple can run on the target.
pub fn is_compatible(python: &str, abi: &str, platform: &str, target: &Platform) -> bool {
    let pythons_ok = python.split('.').any(|tag| {
        tag == "cp311"
            || tag == "py3"
            || tag == "py311"
            || tag == "py2.py3"
            || (tag.starts_with("cp3") && abi.split('.').any(|abi| abi == "abi3") && {
                // cp3X-abi3 runs on 3.11 when X ≤ 11.
                tag[3..].parse::<u32>().is_ok_and(|minor| minor <= 11)
            })
    });
    let abis_ok = abi.split('.').any(|tag| ABI_TAGS.contains(&tag));
    let known = target.wheel_tags();
    let platforms_ok = platform
        .split('.')
        .any(|tag| known.iter().any(|known| known == tag));
    pythons_ok && abis_ok && platforms_ok
}

/// The tags, as one line for messages.
pub fn describe(target: &Platform) -> String {
    format!(
        "CPython {PYTHON_VERSION} (cp311, abi3 or none) on {} or older, or pure Python (any)",
        target.wheel_tag()
    )
}

/// `2.28`.
pub fn glibc_text(glibc: GlibcVersion) -> String {
    format!("{}.{}", glibc.0, glibc.1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wheel_tags() {
        let target = DEFAULT_PLATFORM;
        assert!(is_compatible(
            "cp311",
            "cp311",
            "manylinux_2_17_x86_64.manylinux2014_x86_64",
            &target
        ));
        assert!(is_compatible("py3", "none", "any", &target));
        assert!(is_compatible(
            "cp39",
            "abi3",
            "manylinux_2_28_x86_64",
            &target
        ));
        assert!(!is_compatible(
            "cp312",
            "cp312",
            "manylinux_2_17_x86_64",
            &target
        ));
        assert!(!is_compatible(
            "cp311",
            "cp311",
            "manylinux_2_31_x86_64",
            &target
        ));
        assert!(!is_compatible(
            "cp311",
            "cp311",
            "macosx_11_0_arm64",
            &target
        ));
        assert!(!is_compatible("cp311", "cp311", "linux_x86_64", &target));
        assert!(!is_compatible(
            "cp312",
            "abi3",
            "manylinux_2_17_x86_64",
            &target
        ));
        let old = Platform::parse("x86_64-manylinux2014").unwrap();
        assert!(!is_compatible(
            "cp311",
            "cp311",
            "manylinux_2_28_x86_64",
            &old
        ));
        assert!(is_compatible(
            "cp311",
            "cp311",
            "manylinux2014_x86_64",
            &old
        ));
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
            "aarch64-manylinux_2_17",
        ] {
            assert!(Platform::parse(bad).is_err(), "{bad}");
        }
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
        assert_eq!(Platform::level_for((2, 26)), Some(DEFAULT_PLATFORM));
        assert_eq!(Platform::level_for((2, 41)), None);
    }
}
