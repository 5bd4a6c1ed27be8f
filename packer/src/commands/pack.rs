//! `pyferry pack DIR -o OUT`: an application directory, plus the runtime, into one executable.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use anyhow::{anyhow, bail, Context, Result};
use pyferry_payload::{EntryPoint, Manifest, PayloadKind, FORMAT_VERSION, MANIFEST_PATH};

use crate::assemble::{self, Contents, PlannedEntry};
use crate::cli::PackArgs;
use crate::compile::{self, CompileItem};
use crate::elf::{self, SharedObject};
use crate::libraries;
use crate::runtime::Runtime;
use crate::tree::{self, TreeFile};

/// Runtime entries that belong to the packer's build helper, not to applications.
fn is_build_helper(name: &str) -> bool {
    name == MANIFEST_PATH || name.starts_with("_pyferry_build.")
}

/// Whether `module` (dotted) is importable from the tree's files.
fn tree_has_module(files: &[TreeFile], module: &str) -> bool {
    let base = module.replace('.', "/");
    files.iter().any(|file| {
        let name = file.name.as_str();
        name == format!("{base}.py")
            || name == format!("{base}/__init__.py")
            || (name.starts_with(&format!("{base}.")) && elf::is_shared_object_name(name))
            || name.starts_with(&format!("{base}/"))
    })
}

pub fn pack(args: &PackArgs) -> Result<()> {
    let started = Instant::now();
    let dir = &args.dir;
    if !dir.exists() {
        bail!("`{}` does not exist", dir.display());
    }
    if !dir.is_dir() {
        bail!(
            "`{}` is not a directory; give the directory that holds your application",
            dir.display()
        );
    }
    assemble::check_output(&args.output)?;
    let entry_point = match &args.entry_point {
        Some(spec) => EntryPoint::parse(spec).map_err(|error| anyhow!(error))?,
        None => {
            if !dir.join("__main__.py").is_file() {
                bail!(
                    "`{}` has no `__main__.py`; hint: name the entry point with `-e MODULE[:FUNCTION]`",
                    dir.display()
                );
            }
            EntryPoint {
                module: "__main__".to_string(),
                function: None,
            }
        }
    };
    let runtime = Runtime::locate()?;
    let runtime_archive = runtime.archive()?;

    tracing::info!("collecting `{}`", dir.display());
    let files = tree::collect(dir, std::slice::from_ref(&args.output))?;
    let top_module = entry_point.module.split('.').next().unwrap_or_default();
    let in_runtime = runtime_archive.index().kind(top_module).is_some()
        || runtime_archive
            .index()
            .position(&format!("{top_module}.pyc"))
            .is_some();
    if !tree_has_module(&files, &entry_point.module) && !in_runtime {
        bail!(
            "the entry point module `{}` is not in `{}`",
            entry_point.module,
            dir.display()
        );
    }

    let sources: Vec<CompileItem> = files
        .iter()
        .filter(|file| file.name.ends_with(".py"))
        .map(|file| CompileItem {
            source: file.path.clone(),
            name: file.name.clone(),
        })
        .collect();
    tracing::info!("compiling {} Python files", sources.len());
    let compiled = compile::compile(&runtime.path, &sources)?;
    for (name, error) in &compiled.failures {
        tracing::warn!("`{name}` does not compile ({error}); it is packed as source only");
    }

    let mut entries: Vec<PlannedEntry> = Vec::new();
    let mut app_names: BTreeSet<String> = BTreeSet::new();
    let mut objects: BTreeMap<String, SharedObject> = BTreeMap::new();
    for file in &files {
        if elf::is_shared_object_name(&file.name) {
            let bytes = fs_err::read(&file.path)?;
            if let Some(object) = elf::read_shared_object(&bytes) {
                objects.insert(file.name.clone(), object);
            }
        }
        if let Some(bytecode) = compiled.bytecode.get(&file.name) {
            let pyc_name = format!("{}c", file.name);
            app_names.insert(pyc_name.clone());
            entries.push(PlannedEntry {
                name: pyc_name,
                contents: Contents::Bytes(bytecode.clone()),
            });
        }
        app_names.insert(file.name.clone());
        entries.push(PlannedEntry {
            name: file.name.clone(),
            contents: Contents::File(file.path.clone()),
        });
    }
    let mut shadowed = Vec::new();
    for name in runtime_archive.index().names() {
        if is_build_helper(name) {
            continue;
        }
        if app_names.contains(name) {
            shadowed.push(name.to_string());
            continue;
        }
        if let Some(library) = name.strip_prefix(".pyferry/libs/") {
            objects.insert(
                name.to_string(),
                SharedObject {
                    soname: Some(library.to_string()),
                    needed: Vec::new(),
                },
            );
        }
        entries.push(PlannedEntry {
            name: name.to_string(),
            contents: Contents::Runtime,
        });
    }
    for name in shadowed.iter().filter(|name| name.ends_with(".pyc")) {
        tracing::warn!(
            "`{}` in `{}` replaces the standard library's",
            name.trim_end_matches('c'),
            dir.display()
        );
    }

    let graph = libraries::library_graph(&objects);
    if let Some((object, library)) = graph.linked_to_libpython.first() {
        bail!(
            "`{object}` is linked against `{library}`; pyferry's Python is built into the executable, so extension modules must not link libpython (manylinux wheels never do: rebuild it as one)"
        );
    }
    for (object, library) in &graph.missing {
        tracing::warn!(
            "`{object}` needs `{library}`, which is neither in the application nor a library manylinux lets wheels expect from the host; importing it fails where `{library}` is not installed"
        );
    }
    let mut shared_libraries = runtime_archive.manifest().shared_libraries.clone();
    shared_libraries.extend(graph.dependencies);
    let manifest = Manifest {
        format_version: FORMAT_VERSION,
        kind: PayloadKind::App,
        pyferry_version: env!("CARGO_PKG_VERSION").to_string(),
        python_version: runtime_archive.manifest().python_version.clone(),
        build_id: String::new(),
        entry_point,
        shared_libraries,
    };
    let extension_count = objects
        .keys()
        .filter(|name| !name.starts_with(".pyferry/") && !name.contains(".libs/"))
        .count();
    let entry_count = entries.len();
    let size = assemble::write_executable(
        &args.output,
        runtime.launcher_bytes()?,
        entries,
        Some(&runtime.zip_archive()?),
        &manifest,
    )
    .with_context(|| format!("cannot pack `{}`", args.output.display()))?;
    tracing::info!(
        "packed {}: {:.1} MB, {} files, {} shared objects from the app, {:.1} s",
        args.output.display(),
        size as f64 / 1e6,
        entry_count,
        extension_count,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
