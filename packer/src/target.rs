//! The target every application is built for: the runtime's CPython and the platforms its
//! launcher can load extensions on. Wheels are chosen, and checked, against these tags.

/// `major.minor` of the embedded CPython.
pub const PYTHON_VERSION: &str = "3.11";

/// The newest glibc the launcher may meet as a floor: it is linked on Debian 12 (glibc 2.36).
pub const GLIBC_FLOOR: (u32, u32) = (2, 36);

/// ABI tags a wheel may carry.
pub const ABI_TAGS: &[&str] = &["cp311", "abi3", "none"];

/// Platform tags a wheel may carry, newest first: `manylinux_2_36_x86_64` down to
/// `manylinux_2_5`, the legacy aliases, and pure Python.
pub fn platform_tags() -> Vec<String> {
    let mut tags: Vec<String> = (5..=GLIBC_FLOOR.1)
        .rev()
        .map(|minor| format!("manylinux_2_{minor}_x86_64"))
        .collect();
    tags.extend(
        [
            "manylinux2014_x86_64",
            "manylinux2010_x86_64",
            "manylinux1_x86_64",
            "any",
        ]
        .map(str::to_string),
    );
    tags
}

/// Whether a wheel's `python-abi-platform` tag triple can run on the target.
pub fn is_compatible(python: &str, abi: &str, platform: &str) -> bool {
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
    let known = platform_tags();
    let platforms_ok = platform
        .split('.')
        .any(|tag| known.iter().any(|known| known == tag));
    pythons_ok && abis_ok && platforms_ok
}

/// The tags, as one line for messages.
pub fn describe() -> String {
    format!(
        "CPython {PYTHON_VERSION} (cp311, abi3 or none) on manylinux_2_{}_x86_64 or older, or pure Python (any)",
        GLIBC_FLOOR.1
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wheel_tags() {
        assert!(is_compatible(
            "cp311",
            "cp311",
            "manylinux_2_17_x86_64.manylinux2014_x86_64"
        ));
        assert!(is_compatible("py3", "none", "any"));
        assert!(is_compatible("cp39", "abi3", "manylinux_2_28_x86_64"));
        assert!(!is_compatible("cp312", "cp312", "manylinux_2_17_x86_64"));
        assert!(!is_compatible("cp311", "cp311", "manylinux_2_39_x86_64"));
        assert!(!is_compatible("cp311", "cp311", "macosx_11_0_arm64"));
        assert!(!is_compatible("cp311", "cp311", "linux_x86_64"));
        assert!(!is_compatible("cp312", "abi3", "manylinux_2_17_x86_64"));
    }
}
