//! The pyz archive (`pyferry pack --format pyz`): what goes in it beside the application, and
//! the tags it records.
//!
//! ```text
//! #!/usr/bin/env python3.11
//! __main__.py, __main__.pyc      the start-up: the tag check, then pyferry_bootstrap.main()
//! pyferry_bootstrap.py, .pyc     the importer (packer/python/pyferry_bootstrap.py)
//! __pyferry_main__.py, .pyc      the application's own __main__.py, renamed
//! ...                            the application and its dependencies, with their bytecode
//! .pyferry/manifest.json, RECORD
//! ```
//!
//! Large shared objects get the load plans executables use (`load_plan.rs`): the bootstrap maps
//! their code from the archive instead of copying it into memory.
//!
//! The tags are those of a wheel: the interpreter (`cp311`) and the platform its native code
//! needs (`manylinux_2_17_x86_64`, or `any` without native code), worked out from what is packed
//! (the glibc floor of `crate::glibc_floor`, the shared objects' architecture), not only from
//! what was asked for. docs/pyz.md describes the whole path.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use serde_json::{Map, Value};

use crate::elf::SharedObject;
use crate::target::Target;

/// The bootstrap module, at the archive's root (also usable on its own: docs/pyz.md).
pub const BOOTSTRAP_SOURCE: &str = include_str!("../python/pyferry_bootstrap.py");
pub const BOOTSTRAP_NAME: &str = "pyferry_bootstrap.py";

/// The start-up script, with `__PYFERRY_CONFIG__` standing for its settings.
const START_UP_TEMPLATE: &str = include_str!("../python/pyz_main.py");
pub const START_UP_NAME: &str = "__main__.py";
const CONFIG_PLACEHOLDER: &str = "__PYFERRY_CONFIG__";

/// Where the application's own `__main__.py` goes (the archive's is the start-up), and the
/// module name the start-up runs it under.
pub const APPLICATION_MAIN_NAME: &str = "__pyferry_main__.py";
pub const APPLICATION_MAIN_MODULE: &str = "__pyferry_main__";

/// Names of the archive's root that the pyz's own files take.
pub fn is_reserved(name: &str) -> bool {
    matches!(
        name,
        BOOTSTRAP_NAME | "pyferry_bootstrap.pyc" | APPLICATION_MAIN_NAME | "__pyferry_main__.pyc"
    )
}

/// The archive name of an application file: a tree's `__main__.py` is renamed.
pub fn archive_name(name: &str) -> &str {
    if name == START_UP_NAME {
        APPLICATION_MAIN_NAME
    } else {
        name
    }
}

/// What the start-up script knows: the tags it checks, what it runs, and the loading order of
/// the shared objects.
pub struct StartUp<'a> {
    pub target: &'a Target,
    pub platform: &'a str,
    /// `module` or `module:function`.
    pub entry_point: String,
    pub scripts: BTreeMap<String, String>,
    pub libraries: &'a BTreeMap<String, Vec<String>>,
    pub needed_names: &'a BTreeMap<String, BTreeMap<String, [u64; 2]>>,
    pub load_plans: &'a BTreeMap<String, pyferry_payload::LoadPlan>,
}

/// The least a shared object must leave out of its memory file for a pyz to map its code from
/// the archive: below that, importing `ctypes` (about 2 ms) costs about what the copy does.
pub const SHARED_CODE_THRESHOLD: u64 = 4 << 20;

/// The load plans worth using in a pyz: those that leave out at least
/// [`SHARED_CODE_THRESHOLD`] bytes.
pub fn worthwhile_plans(
    plans: BTreeMap<String, pyferry_payload::LoadPlan>,
) -> BTreeMap<String, pyferry_payload::LoadPlan> {
    plans
        .into_iter()
        .filter(|(_, plan)| {
            plan.mapped_ranges()
                .iter()
                .map(|range| range.end - range.start)
                .sum::<u64>()
                >= SHARED_CODE_THRESHOLD
        })
        .collect()
}

impl StartUp<'_> {
    /// The `__main__.py` source: the template with its settings as a Python literal (JSON made
    /// of strings, numbers, lists and objects only, which Python reads as the same values).
    pub fn render(&self) -> String {
        let strings = |map: &BTreeMap<String, String>| -> Value {
            Value::Object(
                map.iter()
                    .map(|(key, value)| (key.clone(), Value::String(value.clone())))
                    .collect(),
            )
        };
        let mut config = Map::new();
        config.insert("python".into(), self.target.python.dotted().into());
        config.insert("interpreter".into(), self.target.python.tag().into());
        config.insert("platform".into(), self.platform.into());
        config.insert("entry_point".into(), self.entry_point.clone().into());
        config.insert("scripts".into(), strings(&self.scripts));
        config.insert(
            "libraries".into(),
            Value::Object(
                self.libraries
                    .iter()
                    .map(|(object, needs)| (object.clone(), needs.clone().into()))
                    .collect(),
            ),
        );
        config.insert(
            "needed_names".into(),
            Value::Object(
                self.needed_names
                    .iter()
                    .map(|(object, names)| {
                        let names: Map<String, Value> = names
                            .iter()
                            .map(|(library, position)| {
                                (library.clone(), Value::from(position.to_vec()))
                            })
                            .collect();
                        (object.clone(), Value::Object(names))
                    })
                    .collect(),
            ),
        );
        // The manifest's own serialization of a plan (absent fields left out, never `null`).
        config.insert(
            "load_plans".into(),
            serde_json::to_value(self.load_plans).unwrap_or_default(),
        );
        let literal = Value::Object(config).to_string();
        START_UP_TEMPLATE.replacen(CONFIG_PLACEHOLDER, &literal, 1)
    }
}

/// The `#!` line: `--shebang COMMAND`, or `/usr/bin/env python3.X`.
pub fn shebang(command: Option<&str>, target: &Target) -> Result<Vec<u8>> {
    let command = match command {
        Some(command) => command.trim().to_string(),
        None => format!("/usr/bin/env python{}", target.python.dotted()),
    };
    if command.is_empty() || command.contains(['\n', '\r', '\0']) {
        bail!("`--shebang` must be one line naming the interpreter, e.g. `/usr/bin/python3.11`");
    }
    // Linux reads at most 255 bytes of a `#!` line (127 before 5.1).
    if command.len() > 125 {
        bail!(
            "`--shebang` is {} bytes; a `#!` line longer than 127 bytes is cut short by older kernels",
            command.len()
        );
    }
    Ok(format!("#!{command}\n").into_bytes())
}

/// Refuses native code of another architecture than the target's (the `--python-platform`
/// the requirements were resolved for): it would be tagged for the wrong machine.
pub fn check_architecture(objects: &BTreeMap<String, SharedObject>, target: &Target) -> Result<()> {
    let wanted = target.platform.architecture;
    if let Some((name, object)) = objects
        .iter()
        .find(|(_, object)| object.architecture.is_some_and(|found| found != wanted))
    {
        let found = object.architecture.unwrap_or("another architecture");
        bail!(
            "`{name}` is built for {found}, but the pyz is for {wanted} ({}); hint: `--python-platform {}`",
            target.platform,
            target.platform.with_architecture(found)
        );
    }
    Ok(())
}

/// The platform tag of a pyz: `any` without native code, else `manylinux_2_N_ARCH` with 2.N the
/// glibc floor of what is packed (`crate::glibc_floor`: the wheels' declared tags and the
/// shared objects' `GLIBC_2.N` symbol versions), at least manylinux's oldest, 2.5.
pub fn platform_tag(
    objects: &BTreeMap<String, SharedObject>,
    floor: Option<&pyferry_payload::GlibcFloor>,
    target: &Target,
) -> String {
    if !objects.values().any(|object| object.architecture.is_some()) {
        return "any".to_string();
    }
    let minor = floor
        .and_then(|floor| floor.glibc.strip_prefix("2.")?.parse::<u32>().ok())
        .unwrap_or(5)
        .max(5);
    format!("manylinux_2_{minor}_{}", target.platform.architecture)
}

/// The name a pyz gets when `-o` is a directory or absent: `NAME-cp311-manylinux_2_17_x86_64.pyz`,
/// NAME escaped as in a wheel's file name (anything but letters, digits, `_` and `.` becomes
/// `_`).
pub fn default_file_name(name: &str, tags: &pyferry_payload::Tags) -> String {
    let escaped: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let escaped = escaped.trim_matches('.');
    let escaped = if escaped.is_empty() { "app" } else { escaped };
    format!("{escaped}-{}.pyz", tags.joined())
}

/// Where a pyz goes: the file named by `-o`, or a directory (`-o DIR`, or the current one) in
/// which it gets its default name.
#[derive(Debug, Clone)]
pub enum Destination {
    File(PathBuf),
    Directory(PathBuf),
}

impl Destination {
    pub fn from_output(output: Option<&Path>) -> Result<Destination> {
        match output {
            None => Ok(Destination::Directory(PathBuf::from("."))),
            Some(path) if path.is_dir() => Ok(Destination::Directory(path.to_path_buf())),
            Some(path) if path.as_os_str().to_string_lossy().ends_with('/') => bail!(
                "cannot write into `{}`: the directory does not exist",
                path.display()
            ),
            Some(path) => {
                crate::assemble::check_output(path)?;
                Ok(Destination::File(path.to_path_buf()))
            }
        }
    }

    /// Files never to pack from a tree: the output itself, or the `*.pyz` files already in the
    /// output directory (an earlier pack's, when it is written into the tree).
    pub fn exclusions(&self) -> Vec<PathBuf> {
        match self {
            Destination::File(path) => vec![path.clone()],
            Destination::Directory(dir) => std::fs::read_dir(dir)
                .into_iter()
                .flatten()
                .filter_map(|entry| entry.ok().map(|entry| entry.path()))
                .filter(|path| path.extension().is_some_and(|extension| extension == "pyz"))
                .collect(),
        }
    }

    pub fn path(&self, name: &str, tags: &pyferry_payload::Tags) -> PathBuf {
        match self {
            Destination::File(path) => path.clone(),
            Destination::Directory(dir) => dir.join(default_file_name(name, tags)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::target::PythonVersion;

    #[test]
    fn start_up_settings_are_a_python_literal() {
        let target = Target {
            python: PythonVersion::parse("3.12").unwrap(),
            platform: crate::target::DEFAULT_PLATFORM,
        };
        let libraries = BTreeMap::from([(
            "pkg/_ext.so".to_string(),
            vec!["pkg.libs/libé-1.so".to_string()],
        )]);
        let needed_names = BTreeMap::from([(
            "pkg.libs/liba.so".to_string(),
            BTreeMap::from([("pkg.libs/libb.so".to_string(), [1024, 20])]),
        )]);
        let load_plans = BTreeMap::from([(
            "pkg.libs/liba.so".to_string(),
            pyferry_payload::LoadPlan {
                mapped: vec![[4096, 8192]],
                hidden_init_tags: vec![100],
                init: None,
                init_array: Some([0x3000, 2]),
            },
        )]);
        let script = StartUp {
            target: &target,
            platform: "manylinux_2_17_x86_64",
            entry_point: "pkg.cli:main".into(),
            scripts: BTreeMap::from([("tool".to_string(), "pkg.tool:run".to_string())]),
            libraries: &libraries,
            needed_names: &needed_names,
            load_plans: &load_plans,
        }
        .render();
        let line = script
            .lines()
            .find(|line| line.starts_with("PYFERRY = "))
            .unwrap();
        assert!(!script.contains(CONFIG_PLACEHOLDER));
        for word in ["true", "false", "null"] {
            assert!(!line.contains(word), "{line}");
        }
        assert!(line.contains(r#""interpreter":"cp312""#), "{line}");
        assert!(line.contains(r#""pkg.libs/libb.so":[1024,20]"#), "{line}");
        assert!(
            line.contains(r#""load_plans":{"pkg.libs/liba.so":{"hidden_init_tags":[100],"init_array":[12288,2],"mapped":[[4096,8192]]}}"#),
            "{line}"
        );
    }

    #[test]
    fn default_names_are_escaped_like_wheels() {
        let tags = pyferry_payload::Tags {
            interpreter: "cp311".into(),
            platform: "any".into(),
        };
        assert_eq!(default_file_name("my-app", &tags), "my_app-cp311-any.pyz");
        assert_eq!(default_file_name("", &tags), "app-cp311-any.pyz");
    }

    #[test]
    fn shebang_lines() {
        let target = Target::executable(crate::target::DEFAULT_PLATFORM);
        assert_eq!(
            shebang(None, &target).unwrap(),
            b"#!/usr/bin/env python3.11\n"
        );
        assert_eq!(
            shebang(Some("/usr/bin/python3.11 -sE"), &target).unwrap(),
            b"#!/usr/bin/python3.11 -sE\n"
        );
        assert!(shebang(Some("a\nb"), &target).is_err());
    }
}
