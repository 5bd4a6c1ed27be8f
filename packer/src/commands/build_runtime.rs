//! `pyferry build-runtime`: the launcher plus the standard library, compiled by the launcher's
//! own interpreter, into the runtime that `pack` copies into every application. Every extension
//! module of the standard library is built into the launcher (runtime/build), so the runtime
//! holds no shared object at all.
//!
//! Two stages, so that no host Python is needed: stage one packs the standard library as
//! sources (the launcher compiles them at import time, slowly but correctly) with the build
//! helper as entry point; stage one then compiles every source, and stage two packs the
//! bytecode.

use anyhow::{bail, Result};
use pyferry_payload::{Archive, ArchiveError, EntryPoint, Manifest, PayloadKind, FORMAT_VERSION};

use crate::assemble::{self, Contents, PlannedEntry};
use crate::cli::BuildRuntimeArgs;
use crate::compile::{self, CompileItem};
use crate::sbom::runtime_description;
use crate::stdlib;

/// The build helper's source, embedded in `pyferry`.
const BUILD_HELPER: &str = include_str!("../../python/_pyferry_build.py");
const BUILD_HELPER_NAME: &str = "_pyferry_build.py";

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
    if let Some(extension) = stdlib::extension_modules(&args.stdlib)?.first() {
        bail!(
            "`{}` holds extension modules (`lib-dynload/{}`): the runtime's standard library must have every extension module built into the launcher (runtime/build makes such a CPython)",
            args.stdlib.display(),
            extension.name
        );
    }
    let library = stdlib::library_files(&args.stdlib)?;
    let runtime_info = match &args.runtime_info {
        // Read whole to be carried as it is; parsed first, so that a damaged file is refused.
        Some(path) => {
            runtime_description::read(path)?;
            Some(fs_err::read(path)?)
        }
        None => None,
    };

    let mut floor = crate::glibc_floor::FloorBuilder::default();
    floor.add_launcher(&launcher);
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
        shared_libraries: Default::default(),
        load_plans: Default::default(),
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
    // Stage one: sources.
    let stage_one = work.path().join("stage-one");
    let mut entries: Vec<PlannedEntry> = library
        .iter()
        .map(|file| PlannedEntry {
            name: file.name.clone(),
            contents: Contents::File(file.path.clone()),
        })
        .collect();
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
    let mut entries = Vec::new();
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
    if let Some(info) = runtime_info {
        entries.push(PlannedEntry {
            name: runtime_description::ARCHIVE_PATH.to_string(),
            contents: Contents::Bytes(info),
        });
    }
    let size =
        assemble::write_executable(&args.output, &launcher, entries, None, &manifest, false)?;
    tracing::info!(
        "runtime {}: {:.1} MB, {} standard library files",
        args.output.display(),
        size as f64 / 1e6,
        library.len()
    );
    Ok(())
}
