//! `pyferry build-runtime`: the launcher plus the standard library, compiled by the launcher's
//! own interpreter, into the runtime that `pack` copies into every application.
//!
//! Two stages, so that no host Python is needed: stage one packs the standard library as
//! sources (the launcher compiles them at import time, slowly but correctly) with the build
//! helper as entry point; stage one then compiles every source, and stage two packs the
//! bytecode.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use pyferry_payload::{Archive, ArchiveError, EntryPoint, Manifest, PayloadKind, FORMAT_VERSION};

use crate::assemble::{self, Contents, PlannedEntry};
use crate::cli::BuildRuntimeArgs;
use crate::compile::{self, CompileItem};
use crate::elf::{self, SharedObject};
use crate::libraries;
use crate::stdlib;

/// The build helper's source, embedded in `pyferry`.
const BUILD_HELPER: &str = include_str!("../../python/_pyferry_build.py");
const BUILD_HELPER_NAME: &str = "_pyferry_build.py";

/// Where the host's shared libraries are looked up (Debian's multiarch layout).
const HOST_LIBRARY_DIRS: &[&str] = &["/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu"];

/// Archive directory of the system libraries that the standard library's extensions need.
pub const RUNTIME_LIBRARY_DIR: &str = ".pyferry/libs";

pub fn build_runtime(args: &BuildRuntimeArgs) -> Result<()> {
    let launcher = fs_err::read(&args.launcher)?;
    match Archive::parse(&launcher) {
        Err(ArchiveError::NoPayload) => {}
        Ok(_) => bail!(
            "`{}` already carries a payload; give the bare launcher",
            args.launcher.display()
        ),
        Err(error) => bail!("`{}`: {error}", args.launcher.display()),
    }
    if !args.stdlib.join("os.py").is_file() {
        bail!(
            "`{}` is not a Python standard library (no `os.py`)",
            args.stdlib.display()
        );
    }
    let library = stdlib::library_files(&args.stdlib)?;
    let extensions = stdlib::extension_modules(&args.stdlib)?;

    let mut objects: BTreeMap<String, SharedObject> = BTreeMap::new();
    let mut needed = Vec::new();
    for extension in &extensions {
        let bytes = fs_err::read(&extension.path)?;
        let object = elf::read_shared_object(&bytes)
            .with_context(|| format!("`{}` is not a shared object", extension.path.display()))?;
        needed.extend(object.needed.iter().cloned());
        objects.insert(extension.name.clone(), object);
    }
    let search_dirs: Vec<PathBuf> = HOST_LIBRARY_DIRS.iter().map(PathBuf::from).collect();
    let (host_libraries, unresolved) = libraries::host_closure(needed, &search_dirs, |path| {
        elf::read_shared_object(&std::fs::read(path).ok()?)
    });
    for name in &unresolved {
        tracing::warn!("the standard library needs `{name}`, which is not installed here; modules that use it will not import");
    }
    let mut library_entries = Vec::new();
    for (soname, path) in &host_libraries {
        let name = format!("{RUNTIME_LIBRARY_DIR}/{soname}");
        let bytes = fs_err::read(path)?;
        let mut object = elf::read_shared_object(&bytes).unwrap_or_default();
        object.soname = Some(soname.clone());
        objects.insert(name.clone(), object);
        library_entries.push(PlannedEntry {
            name,
            contents: Contents::File(path.clone()),
        });
    }
    let graph = libraries::library_graph(&objects);
    let mut floor = crate::glibc_floor::FloorBuilder::default();
    floor.add_launcher(&launcher);
    floor.add_objects(&objects);
    let manifest = Manifest {
        format_version: FORMAT_VERSION,
        kind: PayloadKind::Runtime,
        pyferry_version: env!("CARGO_PKG_VERSION").to_string(),
        python_version: "3.11".to_string(),
        build_id: String::new(),
        entry_point: EntryPoint {
            module: "_pyferry_build".to_string(),
            function: Some("main".to_string()),
        },
        shared_libraries: graph.dependencies,
        load_plans: libraries::load_plans(&objects),
        scripts: Default::default(),
        distributions: Default::default(),
        glibc_floor: floor.finish(None),
        inherit_python_env: false,
        extract: Vec::new(),
        needed_names: Default::default(),
        tags: None,
    };

    let work = tempfile::Builder::new()
        .prefix("pyferry-runtime-")
        .tempdir()?;
    let helper_path = work.path().join(BUILD_HELPER_NAME);
    fs_err::write(&helper_path, BUILD_HELPER)?;
    let fixed_entries = || {
        let mut entries: Vec<PlannedEntry> = extensions
            .iter()
            .map(|file| PlannedEntry {
                name: file.name.clone(),
                contents: Contents::File(file.path.clone()),
            })
            .collect();
        entries.extend(library_entries.iter().map(|entry| PlannedEntry {
            name: entry.name.clone(),
            contents: match &entry.contents {
                Contents::File(path) => Contents::File(path.clone()),
                _ => unreachable!("library entries are files"),
            },
        }));
        entries
    };

    // Stage one: sources.
    let stage_one = work.path().join("stage-one");
    let mut entries = fixed_entries();
    entries.extend(library.iter().map(|file| PlannedEntry {
        name: file.name.clone(),
        contents: Contents::File(file.path.clone()),
    }));
    entries.push(PlannedEntry {
        name: BUILD_HELPER_NAME.to_string(),
        contents: Contents::File(helper_path.clone()),
    });
    assemble::write_executable(&stage_one, &launcher, entries, None, &manifest, false)?;

    // Stage one compiles everything.
    let mut sources: Vec<CompileItem> = library
        .iter()
        .filter(|file| file.name.ends_with(".py"))
        .map(|file| CompileItem {
            source: file.path.clone(),
            name: file.name.clone(),
        })
        .collect();
    sources.push(CompileItem {
        source: helper_path.clone(),
        name: BUILD_HELPER_NAME.to_string(),
    });
    tracing::info!("compiling {} standard library files", sources.len());
    let compiled = compile::compile(&compile::Compiler::Runtime(stage_one.clone()), &sources)?;
    for (name, error) in &compiled.failures {
        tracing::warn!("`{name}` does not compile ({error}); it is packed as source only");
    }
    if !compiled.bytecode.contains_key(BUILD_HELPER_NAME) {
        bail!("the build helper did not compile");
    }

    // Stage two: bytecode only (sources of what did not compile).
    let mut entries = fixed_entries();
    for file in library
        .iter()
        .chain(std::iter::once(&crate::tree::TreeFile {
            path: helper_path.clone(),
            name: BUILD_HELPER_NAME.to_string(),
        }))
    {
        match compiled.bytecode.get(&file.name) {
            Some(bytecode) => entries.push(PlannedEntry {
                name: format!("{}c", file.name),
                contents: Contents::Bytes(bytecode.clone()),
            }),
            None => entries.push(PlannedEntry {
                name: file.name.clone(),
                contents: Contents::File(file.path.clone()),
            }),
        }
    }
    let size =
        assemble::write_executable(&args.output, &launcher, entries, None, &manifest, false)?;
    tracing::info!(
        "runtime {}: {:.1} MB, {} extension modules, {} system libraries",
        args.output.display(),
        size as f64 / 1e6,
        extensions.len(),
        host_libraries.len()
    );
    Ok(())
}
