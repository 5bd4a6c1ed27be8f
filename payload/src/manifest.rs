//! The manifest: the one JSON entry that says what a payload is and how to start it.
//!
//! It is read before the interpreter exists, so it carries everything the launcher must check
//! up front (format version, Python version) and the entry point. The format version is read
//! first, on its own, so a launcher can reject a newer format with a precise message instead of
//! a confusing field error.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The path of the manifest inside the zip. A leading dot keeps it from ever being importable.
pub const MANIFEST_PATH: &str = ".pyferry/manifest.json";

/// The payload format this code writes and reads. Bump it on every incompatible change.
/// Version 2 added the `pyz` kind, `tags` and `needed_names`.
pub const FORMAT_VERSION: u32 = 2;

/// What the launcher runs when the application starts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntryPoint {
    /// The module to import, e.g. `mycli.main`, or `__main__` for a zipapp-style tree.
    pub module: String,
    /// The attribute to call (may be dotted, as in console scripts: `Cli.main`). When absent, the
    /// module itself runs as `__main__`, like `python -m module`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function: Option<String>,
}

impl EntryPoint {
    /// Parses `module[:function]`, the syntax of `-e` and of console-script definitions.
    pub fn parse(spec: &str) -> Result<EntryPoint, String> {
        let (module, function) = match spec.split_once(':') {
            Some((module, function)) => (module.trim(), Some(function.trim())),
            None => (spec.trim(), None),
        };
        let is_dotted_name = |text: &str| {
            !text.is_empty()
                && text.split('.').all(|part| {
                    let mut chars = part.chars();
                    matches!(chars.next(), Some(c) if c == '_' || c.is_alphabetic())
                        && chars.all(|c| c == '_' || c.is_alphanumeric())
                })
        };
        if !is_dotted_name(module) {
            return Err(format!(
                "`{spec}` is not a module name (expected MODULE[:FUNCTION])"
            ));
        }
        if let Some(function) = function {
            if !is_dotted_name(function) {
                return Err(format!("`{spec}` has an invalid function name after `:`"));
            }
        }
        Ok(EntryPoint {
            module: module.to_string(),
            function: function.map(str::to_string),
        })
    }
}

impl std::fmt::Display for EntryPoint {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.function {
            Some(function) => write!(formatter, "{}:{}", self.module, function),
            None => write!(formatter, "{}", self.module),
        }
    }
}

/// Whether the payload is an application or the bare runtime the packer builds apps from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum PayloadKind {
    /// An executable: the launcher (with CPython built in) in front of the zip.
    #[default]
    App,
    /// The launcher plus the standard library and pyferry's build helper; `pyferry` runs it to
    /// compile bytecode and copies its entries into every app.
    Runtime,
    /// A zipapp run by the host's own Python (`pyferry pack --format pyz`): a `#!` line in
    /// front of the zip, no launcher, no standard library; `pyferry_bootstrap.py` serves its
    /// imports (docs/pyz.md).
    Pyz,
}

/// What a pyz needs from the interpreter that runs it, in the words of wheel tags.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tags {
    /// The interpreter and ABI, e.g. `cp311`: the bytecode's version, and the extension modules'.
    pub interpreter: String,
    /// The platform its native code needs, e.g. `manylinux_2_17_x86_64` (glibc 2.17 or newer on
    /// x86_64: its `glibc_floor`), or `any` when it holds none.
    pub platform: String,
}

impl Tags {
    /// `cp311-manylinux_2_17_x86_64`, as it appears in a pyz's default file name.
    pub fn joined(&self) -> String {
        format!("{}-{}", self.interpreter, self.platform)
    }
}

/// The parsed manifest.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub format_version: u32,
    pub kind: PayloadKind,
    /// Version of pyferry that wrote the payload.
    pub pyferry_version: String,
    /// `major.minor` of the CPython the payload's bytecode and extensions were built for.
    pub python_version: String,
    /// Hex SHA-256 over the payload's entries (names and contents), computed by the packer.
    pub build_id: String,
    pub entry_point: EntryPoint,
    /// For each extension module and shared library in the archive that needs other shared
    /// libraries of the archive: those libraries (archive paths), in `DT_NEEDED` order. The
    /// launcher loads them, dependencies first, before the object that needs them.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub shared_libraries: BTreeMap<String, Vec<String>>,
    /// For libraries that need each other (a cycle), where each one names the others: object →
    /// (library of the cycle → `[file offset, length]` of the `DT_NEEDED` string naming it). A
    /// loader that cannot find libraries by name (they live in memory files) overwrites those
    /// strings with the memory files' paths, and loads the whole cycle with one `dlopen`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub needed_names: BTreeMap<String, BTreeMap<String, [u64; 2]>>,
    /// For a pyz: the interpreter and platform it was built for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<Tags>,
    /// For shared objects whose code the launcher maps from the executable instead of copying
    /// into their memory file: archive path → how (see [`LoadPlan`]).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub load_plans: BTreeMap<String, LoadPlan>,
    /// Entry points chosen by the name the executable is started as (`argv[0]`'s base name),
    /// busybox style; `entry_point` runs under any other name. Written by `--all-scripts`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub scripts: BTreeMap<String, EntryPoint>,
    /// Whether the interpreter reads Python's environment variables (`PYTHONWARNINGS`,
    /// `PYTHONUNBUFFERED`...); off by default: the application runs isolated, like `python -I`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub inherit_python_env: bool,
    /// Top-level packages that need real files: extracted at their first import into a private
    /// cache directory and imported from there (see `launcher/src/importer/extract.rs`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extract: Vec<String>,
    /// Distributions installed in the archive: name → version (for `pyferry inspect`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub distributions: BTreeMap<String, String>,
    /// The oldest glibc the file runs on and why (for `pyferry inspect`; the launcher does not
    /// read it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub glibc_floor: Option<GlibcFloor>,
}

/// The oldest glibc a file runs on: the highest of what the launcher, every shared object (its
/// `GLIBC_2.N` symbol versions) and every packed wheel (its manylinux tag) need.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GlibcFloor {
    /// `2.28`.
    pub glibc: String,
    /// What needs it, e.g. `numpy 2.4.6 (wheel tag manylinux_2_28_x86_64)` or `the launcher`.
    pub set_by: String,
    /// The platform wheels were resolved for (`x86_64-manylinux_2_28`); empty for a runtime.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub requested: String,
}

/// How to load a shared object whose read-only segments (code, constants) are mapped from the
/// executable rather than copied: written by the packer from the object's ELF headers, so the
/// launcher reads no ELF at start-up. Offsets are in the object's bytes, addresses are its
/// virtual addresses (before the load bias).
///
/// The launcher copies everything but `mapped` into the memory file (those ranges stay holes),
/// hides the object's constructors from the dynamic loader by overwriting the tags at
/// `hidden_init_tags`, `dlopen`s it, maps `mapped` from the executable, and then runs the
/// constructors itself: `init`, then the `init_array` entries. Nothing the dynamic loader
/// reads before that lies in `mapped`: the packer gives no plan to objects with text
/// relocations or `IFUNC`s, and keeps out of `mapped` every page that a dynamic-section
/// pointer, a note, the TLS image or a writable segment touches.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoadPlan {
    /// Page-aligned `[start, end)` byte ranges of the object left out of its memory file.
    pub mapped: Vec<[u64; 2]>,
    /// Offsets of the `d_tag` words of the `DT_INIT`, `DT_INIT_ARRAY` and `DT_INIT_ARRAYSZ`
    /// entries of the object's dynamic section.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hidden_init_tags: Vec<u64>,
    /// `DT_INIT`'s address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init: Option<u64>,
    /// `DT_INIT_ARRAY`'s address and its number of entries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init_array: Option<[u64; 2]>,
}

impl LoadPlan {
    /// `mapped` as ranges.
    pub fn mapped_ranges(&self) -> Vec<std::ops::Range<u64>> {
        self.mapped.iter().map(|&[start, end]| start..end).collect()
    }

    /// Whether the plan is usable for an object of `len` bytes: page-aligned ranges, sorted,
    /// within the object and past its first page, tags within it (a damaged manifest must not make the launcher read
    /// out of bounds).
    pub fn fits(&self, len: u64, page: u64) -> bool {
        let mut at = 0;
        self.mapped.iter().all(|&[start, end]| {
            // Never the first page: the ELF header is read from the file.
            let fits = at.max(page) <= start && start < end && end <= len.next_multiple_of(page);
            at = end;
            fits && start % page == 0 && end % page == 0
        }) && self
            .hidden_init_tags
            .iter()
            .all(|&tag| tag.checked_add(8).is_some_and(|end| end <= len))
    }
}

/// Why a manifest was refused.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("the manifest is not valid JSON: {0}")]
    Syntax(serde_json::Error),
    #[error("the manifest has no `format_version`")]
    MissingVersion,
    #[error(
        "payload format version {found} is not supported by this launcher (it reads version {supported}); rebuild the app with a matching pyferry"
    )]
    UnsupportedVersion { found: u64, supported: u32 },
    #[error("the manifest is invalid: {0}")]
    Invalid(serde_json::Error),
}

impl Manifest {
    /// Parses a manifest, checking the format version before anything else.
    pub fn from_json(bytes: &[u8]) -> Result<Manifest, ManifestError> {
        let value: serde_json::Value =
            serde_json::from_slice(bytes).map_err(ManifestError::Syntax)?;
        let found = value
            .get("format_version")
            .and_then(serde_json::Value::as_u64)
            .ok_or(ManifestError::MissingVersion)?;
        if found != u64::from(FORMAT_VERSION) {
            return Err(ManifestError::UnsupportedVersion {
                found,
                supported: FORMAT_VERSION,
            });
        }
        serde_json::from_value(value).map_err(ManifestError::Invalid)
    }

    /// Serializes the manifest deterministically (fixed field order, no trailing whitespace).
    pub fn to_json(&self) -> Vec<u8> {
        let mut bytes = serde_json::to_vec_pretty(self).expect("a manifest always serializes");
        bytes.push(b'\n');
        bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Manifest {
        Manifest {
            format_version: FORMAT_VERSION,
            kind: PayloadKind::App,
            pyferry_version: "0.1.0".into(),
            python_version: "3.11".into(),
            build_id: "ab".repeat(32),
            entry_point: EntryPoint::parse("pkg.cli:main").unwrap(),
            shared_libraries: BTreeMap::from([(
                "pkg/_ext.so".to_string(),
                vec!["pkg.libs/libz-1.so".to_string()],
            )]),
            load_plans: BTreeMap::from([(
                "pkg.libs/libz-1.so".to_string(),
                LoadPlan {
                    mapped: vec![[0x1000, 0x5000]],
                    hidden_init_tags: vec![0x6010, 0x6020],
                    init: Some(0x1000),
                    init_array: Some([0x7000, 2]),
                },
            )]),
            scripts: BTreeMap::from([(
                "tool".to_string(),
                EntryPoint::parse("pkg.tool:main").unwrap(),
            )]),
            distributions: BTreeMap::from([("pkg".to_string(), "1.0".to_string())]),
            glibc_floor: None,
            inherit_python_env: true,
            extract: vec!["certifi".to_string()],
            needed_names: BTreeMap::from([(
                "pkg.libs/liba.so".to_string(),
                BTreeMap::from([("pkg.libs/libb.so".to_string(), [0x3f0, 24])]),
            )]),
            tags: Some(Tags {
                interpreter: "cp311".into(),
                platform: "manylinux_2_17_x86_64".into(),
            }),
        }
    }

    #[test]
    fn load_plans_out_of_bounds_do_not_fit() {
        let plan = |mapped: Vec<[u64; 2]>, hidden_init_tags: Vec<u64>| LoadPlan {
            mapped,
            hidden_init_tags,
            ..LoadPlan::default()
        };
        assert!(plan(vec![[4096, 8192]], vec![100]).fits(9000, 4096));
        assert!(!plan(vec![[4096, 16384]], vec![]).fits(9000, 4096));
        assert!(!plan(vec![[4000, 8192]], vec![]).fits(9000, 4096));
        assert!(!plan(vec![[0, 4096]], vec![]).fits(9000, 4096));
        assert!(!plan(vec![[8192, 12288], [4096, 8192]], vec![]).fits(20000, 4096));
        assert!(!plan(vec![], vec![8995]).fits(9000, 4096));
        assert!(!plan(vec![], vec![u64::MAX]).fits(9000, 4096));
    }

    #[test]
    fn manifest_round_trips() {
        let manifest = sample();
        assert_eq!(Manifest::from_json(&manifest.to_json()).unwrap(), manifest);
    }

    #[test]
    fn newer_format_version_is_named_in_the_error() {
        let text = br#"{"format_version": 7, "whatever": true}"#;
        let error = Manifest::from_json(text).unwrap_err().to_string();
        assert!(error.contains("format version 7"), "{error}");
    }

    #[test]
    fn entry_point_syntax() {
        assert_eq!(EntryPoint::parse("a.b").unwrap().function, None);
        assert_eq!(
            EntryPoint::parse("a.b:Cli.run")
                .unwrap()
                .function
                .as_deref(),
            Some("Cli.run")
        );
        assert!(EntryPoint::parse("a-b").is_err());
        assert!(EntryPoint::parse("a:").is_err());
        assert!(EntryPoint::parse("").is_err());
        assert_eq!(EntryPoint::parse("m:f").unwrap().to_string(), "m:f");
    }
}
