//! `pyferry pack INPUT... -o OUT`: application trees, projects, wheels and requirements, plus
//! the runtime, into one executable; or with `--format pyz`, without the runtime, into a zipapp
//! for the host's Python (the archive's layout: `crate::pyz`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{anyhow, bail, Context, Result};
use pyferry_payload::{
    EntryPoint, Manifest, PayloadKind, FORMAT_VERSION, MANIFEST_PATH, SBOM_PATH,
};

use crate::assemble::{self, Contents, PlannedEntry};
use crate::cli::{Format, PackArgs};
use crate::compile::{self, CompileItem, Compiler};
use crate::elf::{self, SharedObject};
use crate::inputs::{self, Input};
use crate::libraries;
use crate::resolve::{self, IndexOptions};
use crate::runtime::Runtime;
use crate::target::{PythonVersion, RequestedPython, Target};
use crate::tree::{self, TreeFile};
use crate::wheel::{self, Installed};

/// Runtime entries that are the runtime's own (its manifest and record, the packer's build
/// helper), not the application's.
fn is_runtime_only(name: &str) -> bool {
    name == MANIFEST_PATH
        || name == pyferry_payload::record::RECORD_PATH
        || name.starts_with("_pyferry_build.")
}

/// Whether `module` (dotted) is importable from the files.
fn files_have_module(files: &[TreeFile], module: &str) -> bool {
    let base = module.replace('.', "/");
    files.iter().any(|file| {
        let name = file.name.as_str();
        name == format!("{base}.py")
            || name == format!("{base}/__init__.py")
            || (name.starts_with(&format!("{base}.")) && pyferry_payload::is_shared_object(name))
            || name.starts_with(&format!("{base}/"))
    })
}

/// Builds a project directory into a wheel with its PEP 517 backend (through pip).
fn build_project(project: &Path, destination: &Path) -> Result<PathBuf> {
    let python = resolve::pip_python();
    let _step = crate::progress::Step::start(format!(
        "building `{}` with its build backend",
        project.display()
    ));
    let output = Command::new(&python)
        .args([
            "-m",
            "pip",
            "wheel",
            "--disable-pip-version-check",
            "--no-input",
            "--no-deps",
            "--wheel-dir",
        ])
        .arg(destination)
        .arg(project)
        .output()
        .with_context(|| {
            format!(
                "cannot run `{python} -m pip wheel` to build `{}`",
                project.display()
            )
        })?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let last = stderr
            .lines()
            .rev()
            .find(|line| !line.trim().is_empty())
            .unwrap_or("no message");
        bail!(
            "cannot build `{}` into a wheel: {}",
            project.display(),
            last.trim()
        );
    }
    let mut built: Vec<PathBuf> = fs_err::read_dir(destination)?
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| path.extension().is_some_and(|extension| extension == "whl"))
        .collect();
    built.sort();
    built
        .pop()
        .with_context(|| format!("building `{}` produced no wheel", project.display()))
}

/// Every input resolved to files: tree files as they are, and the installed distributions.
struct Gathered {
    trees: Vec<PathBuf>,
    files: Vec<TreeFile>,
    installed: Vec<Installed>,
    /// Normalized names of the distributions the user listed (not dependencies).
    listed: BTreeSet<String>,
    _staging: Option<tempfile::TempDir>,
}

/// Resolves the inputs of `args` for `target`; `exclude` lists files of the trees never to pack
/// (the output, when it is written inside a tree).
fn gather(args: &PackArgs, target: &Target, exclude: &[PathBuf]) -> Result<Gathered> {
    let inputs: Vec<Input> = args
        .inputs
        .iter()
        .map(|text| inputs::classify(text))
        .collect::<Result<_>>()?;
    let mut trees = Vec::new();
    let mut wheels = Vec::new();
    let mut projects = Vec::new();
    let mut requirements = Vec::new();
    for input in inputs {
        match input {
            Input::Tree(dir) => trees.push(dir),
            Input::Wheel(path) => wheels.push(path),
            Input::Project(dir) => projects.push(dir),
            Input::Requirement(text) => requirements.push(text),
        }
    }
    for file in &args.requirements {
        if !file.is_file() {
            bail!("requirements file `{}` does not exist", file.display());
        }
    }
    let mut listed: BTreeSet<String> = requirements
        .iter()
        .filter_map(|text| inputs::requirement_name(text))
        .collect();
    for file in &args.requirements {
        let text = fs_err::read_to_string(file)?;
        listed.extend(text.lines().filter_map(inputs::requirement_name));
    }

    let mut files = Vec::new();
    for dir in &trees {
        files.extend(tree::collect(dir, exclude)?);
    }
    let needs_distributions = !wheels.is_empty()
        || !projects.is_empty()
        || !requirements.is_empty()
        || !args.requirements.is_empty();
    if !needs_distributions {
        return Ok(Gathered {
            trees,
            files,
            installed: Vec::new(),
            listed,
            _staging: None,
        });
    }

    let staging = tempfile::Builder::new()
        .prefix("pyferry-pack-")
        .tempdir()
        .context("cannot create a temporary directory")?;
    let built_dir = staging.path().join("built");
    let download_dir = staging.path().join("wheels");
    let site = staging.path().join("site");
    fs_err::create_dir_all(&built_dir)?;
    fs_err::create_dir_all(&download_dir)?;
    fs_err::create_dir_all(&site)?;
    for project in &projects {
        let built = build_project(project, &built_dir)?;
        wheels.push(built);
    }
    for wheel_path in &wheels {
        let name = wheel::check_tags(wheel_path, target)?;
        listed.insert(inputs::normalize(&name.distribution));
    }
    let wheel_paths: Vec<PathBuf> =
        if args.no_deps && requirements.is_empty() && args.requirements.is_empty() {
            // Local wheels alone: no resolver, no Python, no network.
            wheels.clone()
        } else {
            let mut arguments: Vec<String> = requirements.clone();
            for file in &args.requirements {
                arguments.push("-r".into());
                arguments.push(file.to_string_lossy().into_owned());
            }
            arguments.extend(
                wheels
                    .iter()
                    .map(|path| path.to_string_lossy().into_owned()),
            );
            let options = IndexOptions {
                index_url: args.index_url.clone(),
                find_links: args.find_links.clone(),
                no_index: args.no_index,
                no_deps: args.no_deps,
                target: *target,
            };
            let _step = crate::progress::Step::start(format!(
                "resolving and downloading for {}",
                target.describe()
            ));
            resolve::download(&arguments, &options, args.resolver, &download_dir)?
        };
    let _step = crate::progress::Step::start(format!("installing {} wheels", wheel_paths.len()));
    let mut installed = Vec::new();
    for wheel_path in &wheel_paths {
        tracing::debug!("installing `{}`", wheel_path.display());
        installed.push(wheel::install(wheel_path, &site, target)?);
    }
    let tree_names: BTreeSet<String> = files.iter().map(|file| file.name.clone()).collect();
    for file in tree::collect(&site, &[])? {
        if tree_names.contains(&file.name) {
            tracing::warn!(
                "`{}` from your directory replaces the one installed from a wheel",
                file.name
            );
            continue;
        }
        files.push(file);
    }
    files.sort_by(|left, right| left.name.cmp(&right.name));
    Ok(Gathered {
        trees,
        files,
        installed,
        listed,
        _staging: Some(staging),
    })
}

/// The scripts of the installed distributions: name → (distribution, entry point). Console
/// scripts, and the Python scripts of `*.data/scripts/`, as the modules they were installed as
/// (run as `__main__`); a console script wins over a script of the same name.
fn console_scripts(
    installed: &[Installed],
    only: Option<&BTreeSet<String>>,
) -> BTreeMap<String, (String, String)> {
    let mut scripts = BTreeMap::new();
    for distribution in installed {
        let name = inputs::normalize(&distribution.name.distribution);
        if only.is_some_and(|only| !only.contains(&name)) {
            continue;
        }
        for (script, module) in &distribution.data_scripts {
            scripts.insert(script.clone(), (name.clone(), module.clone()));
        }
    }
    for distribution in installed {
        let name = inputs::normalize(&distribution.name.distribution);
        if only.is_some_and(|only| !only.contains(&name)) {
            continue;
        }
        for (script, value) in &distribution.console_scripts {
            scripts.insert(script.clone(), (name.clone(), value.clone()));
        }
    }
    scripts
}

/// Decides what runs: `-e`, `-c`, `--all-scripts`, or `__main__.py` of a tree. `output_name` is
/// the file name the output is written under (with `--all-scripts`, the script of that name is
/// the default).
fn entry_points(
    args: &PackArgs,
    gathered: &Gathered,
    output_name: &str,
) -> Result<(EntryPoint, BTreeMap<String, EntryPoint>)> {
    let available = console_scripts(&gathered.installed, None);
    let list = |scripts: &BTreeMap<String, (String, String)>| {
        if scripts.is_empty() {
            "none".to_string()
        } else {
            scripts.keys().cloned().collect::<Vec<_>>().join(", ")
        }
    };
    let mut scripts = BTreeMap::new();
    if args.all_scripts {
        let listed_scripts = console_scripts(&gathered.installed, Some(&gathered.listed));
        if listed_scripts.is_empty() {
            bail!("`--all-scripts`: the listed requirements have no console scripts (all installed: {})", list(&available));
        }
        for (name, (_, value)) in &listed_scripts {
            scripts.insert(
                name.clone(),
                EntryPoint::parse(value)
                    .map_err(|error| anyhow!("console script `{name}`: {error}"))?,
            );
        }
    }
    if let Some(spec) = &args.entry_point {
        return Ok((
            EntryPoint::parse(spec).map_err(|error| anyhow!(error))?,
            scripts,
        ));
    }
    if let Some(name) = &args.console_script {
        let Some((_, value)) = available.get(name) else {
            if let Some(distribution) = gathered
                .installed
                .iter()
                .find(|distribution| distribution.native_scripts.contains(name))
            {
                bail!(
                    "`{name}` of {} {} is a program, not a Python entry point (`.data/scripts/{name}` is not a `#!python` script): pyferry packs Python applications; run that program as it is",
                    distribution.name.distribution,
                    distribution.name.version
                );
            }
            bail!(
                "no console script named `{name}` in the installed distributions (available: {})",
                list(&available)
            );
        };
        return Ok((
            EntryPoint::parse(value)
                .map_err(|error| anyhow!("console script `{name}`: {error}"))?,
            scripts,
        ));
    }
    if gathered
        .trees
        .iter()
        .any(|dir| dir.join("__main__.py").is_file())
    {
        return Ok((
            EntryPoint {
                module: "__main__".into(),
                function: None,
            },
            scripts,
        ));
    }
    if args.all_scripts {
        // Started under a name that is none of the scripts, the launcher lists them.
        let default = scripts.get(output_name).cloned().unwrap_or_default();
        return Ok((default, scripts));
    }
    match gathered.trees.first() {
        Some(dir) => bail!(
            "`{}` has no `__main__.py`; hint: name the entry point with `-e MODULE[:FUNCTION]`{}",
            dir.display(),
            if available.is_empty() { String::new() } else { format!(" or `-c NAME` (console scripts: {})", list(&available)) }
        ),
        None => bail!("no entry point: name one with `-c NAME` (console scripts: {}), `-e MODULE[:FUNCTION]` or `--all-scripts`", list(&available)),
    }
}

pub fn pack(args: &PackArgs) -> Result<()> {
    if args.inputs.len() == 1 && args.requirements.is_empty() {
        // The one-directory form keeps its precise messages.
        let path = Path::new(&args.inputs[0]);
        if path.exists() && !path.is_dir() && !args.inputs[0].ends_with(".whl") {
            bail!(
                "`{}` is not a directory; give the directory that holds your application",
                path.display()
            );
        }
    }
    match args.format {
        Format::Exe => pack_executable(args),
        Format::Pyz => pack_pyz(args),
    }
}

/// Refuses, with the entry point's module named, entry points that are neither in the packed
/// files nor in the standard library (as the runtime holds it, when it is at hand).
fn check_entry_modules(
    gathered: &Gathered,
    runtime_archive: Option<&pyferry_payload::Archive<'_>>,
    entries: impl IntoIterator<Item = EntryPoint>,
) -> Result<()> {
    for entry in entries {
        if entry.module.is_empty() {
            continue;
        }
        let top = entry.module.split('.').next().unwrap_or_default();
        let in_runtime = runtime_archive.is_some_and(|runtime| {
            runtime.index().kind(top).is_some()
                || runtime.index().position(&format!("{top}.pyc")).is_some()
        });
        if !files_have_module(&gathered.files, &entry.module) && !in_runtime {
            let place = gathered
                .trees
                .first()
                .map(|dir| format!("`{}`", dir.display()))
                .unwrap_or_else(|| "the installed distributions".to_string());
            bail!(
                "the entry point module `{}` is not in {place}",
                entry.module
            );
        }
    }
    Ok(())
}

/// The shared objects among `files`, read as ELF.
fn read_shared_objects(files: &[TreeFile]) -> Result<BTreeMap<String, SharedObject>> {
    let mut objects = BTreeMap::new();
    for file in files {
        if pyferry_payload::is_shared_object(&file.name) {
            let bytes = fs_err::read(&file.path)?;
            if let Some(object) = elf::read_shared_object(&bytes) {
                objects.insert(file.name.clone(), object);
            }
        }
    }
    Ok(objects)
}

/// Every `*.dist-info` directory packed, whoever installed it (pyferry, or pip into a DIR):
/// name → version.
fn distributions_of(files: &[TreeFile]) -> BTreeMap<String, String> {
    files
        .iter()
        .filter_map(|file| file.name.split_once(".dist-info/").map(|(stem, _)| stem))
        .filter(|stem| !stem.contains('/'))
        .filter_map(|stem| stem.rsplit_once('-'))
        .map(|(name, version)| (name.to_string(), version.to_string()))
        .collect()
}

/// The wheel each installed `*.dist-info` came from.
fn wheel_origins(installed: &[Installed]) -> BTreeMap<String, crate::sbom::WheelOrigin> {
    installed
        .iter()
        .map(|distribution| {
            (
                distribution.dist_info.clone(),
                crate::sbom::WheelOrigin {
                    file_name: distribution.wheel_file.clone(),
                    sha256: distribution.wheel_sha256.clone(),
                },
            )
        })
        .collect()
}

/// The application's name in its SBOM: what it runs (the script `-c` names, the module `-e`
/// names), else the first distribution asked for with `--all-scripts`, else `application`.
/// Never the output's name or a directory's: the same inputs give the same bytes wherever they
/// lie and whatever the output is called.
fn sbom_application_name(args: &PackArgs, gathered: &Gathered) -> String {
    if let Some(script) = &args.console_script {
        return script.clone();
    }
    if let Some(entry) = &args.entry_point {
        if let Some(module) = entry
            .split(':')
            .next()
            .map(str::trim)
            .filter(|module| !module.is_empty())
        {
            return module.to_string();
        }
    }
    if args.all_scripts {
        if let Some(first) = gathered.listed.iter().next() {
            return first.clone();
        }
    }
    "application".to_string()
}

/// The entry points of the manifest, as the SBOM names them.
fn script_names(scripts: &BTreeMap<String, EntryPoint>) -> Vec<String> {
    scripts
        .iter()
        .map(|(name, entry)| format!("{name} = {entry}"))
        .collect()
}

/// Writes `document` to `path` as the output is written: into a temporary file beside it,
/// renamed over it when complete.
fn write_sbom_file(path: &Path, document: &[u8]) -> Result<()> {
    let parent = assemble::directory_of(path);
    let mut temporary = assemble::partial_file_beside(path, &parent)
        .with_context(|| format!("cannot write the SBOM `{}`", path.display()))?;
    std::io::Write::write_all(&mut temporary, document)
        .with_context(|| format!("cannot write the SBOM `{}`", path.display()))?;
    temporary
        .as_file()
        .set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o644))
        .with_context(|| format!("cannot write the SBOM `{}`", path.display()))?;
    temporary
        .persist(path)
        .map_err(|error| error.error)
        .with_context(|| format!("cannot replace the SBOM `{}`", path.display()))?;
    Ok(())
}

/// Whether `left` and `right` name the same file (made absolute, not resolved).
fn same_path(left: &Path, right: &Path) -> bool {
    match (std::path::absolute(left), std::path::absolute(right)) {
        (Ok(left), Ok(right)) => left == right,
        _ => left == right,
    }
}

/// Checks, before anything is packed, that `--sbom FILE` can be written: not a directory, in
/// an existing directory, not the output itself.
fn check_sbom_path(path: &Path, output: Option<&Path>) -> Result<()> {
    if output.is_some_and(|output| same_path(path, output)) {
        bail!(
            "`--sbom {}` names the output itself; give the SBOM another name (`{}.cdx.json`)",
            path.display(),
            path.display()
        );
    }
    if path.is_dir() {
        bail!(
            "`--sbom {}` is a directory; give the path of the SBOM file to write",
            path.display()
        );
    }
    let parent = path
        .parent()
        .filter(|parent| !parent.as_os_str().is_empty());
    if let Some(parent) = parent.filter(|parent| !parent.is_dir()) {
        bail!(
            "cannot write the SBOM `{}`: directory `{}` does not exist",
            path.display(),
            parent.display()
        );
    }
    Ok(())
}

/// `--sbom FILE`: the recorded document, or its SPDX conversion for a `.spdx.json` name.
fn sbom_for_file(
    path: &Path,
    bom: &crate::sbom::cyclonedx::Bom,
    recorded: &[u8],
) -> Result<Vec<u8>> {
    let name = path.to_string_lossy();
    if name.ends_with(".spdx.json") {
        crate::sbom::spdx::convert(bom)
    } else {
        Ok(recorded.to_vec())
    }
}

fn pack_executable(args: &PackArgs) -> Result<()> {
    let started = Instant::now();
    if let Some(python) = &args.python {
        if RequestedPython::parse(python)?.version != PythonVersion::EMBEDDED {
            bail!("`--python {python}`: an executable carries pyferry's own CPython {}; hint: `--format pyz` builds for the host's Python {python}", PythonVersion::EMBEDDED);
        }
    }
    if args.shebang.is_some() {
        bail!("`--shebang` is for `--format pyz`: an executable starts itself");
    }
    if args.python_platform.architecture != "x86_64" {
        bail!(
            "`--python-platform {}`: only x86_64 runtimes are built so far ({} is not); hint: `--format pyz` builds for the host's Python on any architecture",
            args.python_platform,
            args.python_platform.architecture
        );
    }
    let Some(output) = &args.output else {
        bail!("no output: name the executable to write with `-o FILE`");
    };
    assemble::check_output(output)?;
    if let Some(path) = &args.sbom {
        check_sbom_path(path, Some(output))?;
    }
    let target = Target::executable(args.python_platform);
    let mut exclude = vec![output.clone()];
    exclude.extend(args.sbom.clone());
    let gathered = gather(args, &target, &exclude)?;
    let output_name = output
        .file_name()
        .and_then(|name| name.to_str())
        .unwrap_or_default();
    let (entry_point, scripts) = entry_points(args, &gathered, output_name)?;
    let runtime = Runtime::locate()?;
    let runtime_archive = runtime.archive()?;
    let files = &gathered.files;
    check_entry_modules(
        &gathered,
        Some(&runtime_archive),
        std::iter::once(entry_point.clone()).chain(scripts.values().cloned()),
    )?;

    let sources: Vec<CompileItem> = files
        .iter()
        .filter(|file| file.name.ends_with(".py"))
        .map(|file| CompileItem {
            source: file.path.clone(),
            name: file.name.clone(),
        })
        .collect();
    let step = crate::progress::Step::start(format!("compiling {} Python files", sources.len()));
    let compiled = compile::compile(&Compiler::Runtime(runtime.path.clone()), &sources)?;
    drop(step);
    for (name, error) in &compiled.failures {
        tracing::warn!("`{name}` does not compile ({error}); it is packed as source only");
    }

    let mut entries: Vec<PlannedEntry> = Vec::new();
    let mut app_names: BTreeSet<String> = BTreeSet::new();
    let mut objects = read_shared_objects(files)?;
    for file in files {
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
        if is_runtime_only(name) {
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
                    ..SharedObject::default()
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
            "`{}` in the application replaces the standard library's",
            name.trim_end_matches('c')
        );
    }

    let graph = libraries::library_graph(&objects);
    let extract = crate::extraction::packages_to_extract(&args.extract);
    for (package, reason) in &extract {
        tracing::info!(
            "`{package}` will be served from real files, extracted once at run time: {reason}"
        );
    }
    for (package, program) in crate::extraction::bundled_programs(files, &args.extract) {
        tracing::info!(
            "`{program}` is a program: a program run with `subprocess` needs a real file; hint: if the application runs it, pack with `--extract {package}`"
        );
    }
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
    let mut load_plans = runtime_archive.manifest().load_plans.clone();
    load_plans.extend(libraries::load_plans(&objects));
    let distributions = distributions_of(files);
    let mut floor = crate::glibc_floor::FloorBuilder::default();
    floor.add_launcher(runtime.launcher_bytes()?);
    floor.add_recorded(runtime_archive.manifest().glibc_floor.as_ref());
    floor.add_objects(&objects);
    floor.add_wheel_tags(files);
    let glibc_floor = floor.finish(Some(&args.python_platform));
    if let Some(floor) = &glibc_floor {
        tracing::info!(
            "the application needs glibc {} or newer (set by {})",
            floor.glibc,
            floor.set_by
        );
    }
    let python_build = runtime.python_build()?;
    let description = runtime.description()?;
    if let Some((origin, description)) = &description {
        if description.cpython.version != python_build.version {
            bail!(
                "{origin} describes CPython {}, but the runtime `{}` runs CPython {}; hint: the description is stale, rebuild the runtime (`make build`)",
                description.cpython.version,
                runtime.path.display(),
                python_build.version
            );
        }
    }
    let mut runtime_libraries = Vec::new();
    for name in runtime_archive.index().names() {
        if name.starts_with(".pyferry/libs/") {
            let bytes = runtime_archive
                .read(name)
                .with_context(|| format!("`{}`: cannot read `{name}`", runtime.path.display()))?
                .unwrap_or_default();
            runtime_libraries.push((name.to_string(), crate::sbom::sha256_hex(&bytes)));
        }
    }
    let wheels = wheel_origins(&gathered.installed);
    let bom = crate::sbom::build(&crate::sbom::Inputs {
        application: crate::sbom::Application {
            name: sbom_application_name(args, &gathered),
            format: "executable",
            entry_point: entry_point.to_string(),
            scripts: script_names(&scripts),
            python_version: runtime_archive.manifest().python_version.clone(),
            tags: None,
            glibc_floor: glibc_floor.as_ref().map(|floor| floor.glibc.clone()),
            platform: args.python_platform.uv_name(),
        },
        files,
        wheels: &wheels,
        listed: &gathered.listed,
        runtime: Some(crate::sbom::RuntimeFacts {
            pyferry_version: runtime_archive.manifest().pyferry_version.clone(),
            launcher_sha256: pyferry_payload::seal::digest(runtime.launcher_bytes()?),
            python_version: python_build.version.clone(),
            sys_version: python_build.sys_version.clone(),
            description: description.map(|(_, description)| description),
            libraries: runtime_libraries,
        }),
        environment: crate::sbom::markers::Environment {
            python_version: target.python.dotted(),
            python_full_version: Some(python_build.version.clone()),
            platform_machine: target.platform.architecture.to_string(),
        },
        epoch: assemble::source_date_epoch(),
    })?;
    let sbom = crate::sbom::to_bytes(&bom)?;
    entries.push(PlannedEntry {
        name: SBOM_PATH.to_string(),
        contents: Contents::Bytes(sbom.clone()),
    });
    let manifest = Manifest {
        format_version: FORMAT_VERSION,
        kind: PayloadKind::App,
        pyferry_version: env!("CARGO_PKG_VERSION").to_string(),
        python_version: runtime_archive.manifest().python_version.clone(),
        build_id: String::new(),
        entry_point,
        shared_libraries,
        load_plans,
        scripts,
        distributions,
        inherit_python_env: args.inherit_python_env,
        extract: extract.keys().cloned().collect(),
        needed_names: Default::default(),
        tags: None,
        glibc_floor,
    };
    let extension_count = objects
        .keys()
        .filter(|name| {
            !name.starts_with(".pyferry/") && !name.contains(".libs/") && !name.contains(".so.")
        })
        .count();
    let step = crate::progress::Step::start(format!("writing {}", output.display()));
    let size = assemble::write_executable(
        output,
        runtime.launcher_bytes()?,
        entries,
        Some(&runtime.zip_archive()?),
        &manifest,
        args.compress,
    )
    .with_context(|| format!("cannot pack `{}`", output.display()))?;
    drop(step);
    if let Some(path) = &args.sbom {
        write_sbom_file(path, &sbom_for_file(path, &bom, &sbom)?)?;
        tracing::info!("wrote the SBOM to {}", path.display());
    }
    tracing::info!(
        "packed {}: {:.1} MB, {} distributions, {} extension modules, {:.1} s",
        output.display(),
        size as f64 / 1e6,
        manifest.distributions.len(),
        extension_count,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// The name a pyz is called by default: the console script, else the application directory,
/// else the first distribution asked for, else the entry point's package.
fn application_name(args: &PackArgs, gathered: &Gathered) -> String {
    if let Some(script) = &args.console_script {
        return script.clone();
    }
    if let Some(dir) = gathered.trees.first() {
        let named = dir.canonicalize().ok().and_then(|dir| {
            dir.file_name()
                .map(|name| name.to_string_lossy().into_owned())
        });
        if let Some(name) = named {
            return name;
        }
    }
    for input in &args.inputs {
        let name = match inputs::classify(input) {
            Ok(Input::Wheel(path)) => path
                .file_name()
                .and_then(|name| wheel::WheelName::parse(&name.to_string_lossy()))
                .map(|name| name.distribution),
            Ok(Input::Project(dir)) => dir.canonicalize().ok().and_then(|dir| {
                dir.file_name()
                    .map(|name| name.to_string_lossy().into_owned())
            }),
            Ok(Input::Requirement(text)) => inputs::requirement_name(&text),
            _ => None,
        };
        if let Some(name) = name {
            return name;
        }
    }
    if let Some(entry) = &args.entry_point {
        if let Some(top) = entry.split([':', '.']).next().filter(|top| !top.is_empty()) {
            return top.to_string();
        }
    }
    gathered
        .listed
        .iter()
        .next()
        .cloned()
        .unwrap_or_else(|| "app".to_string())
}

/// What compiles a pyz's bytecode for `version`: the interpreter `--python` named, pyferry's
/// runtime for 3.11, or a `python3.X` on PATH; `None` (sources only) when there is none.
fn pyz_compiler(requested: &RequestedPython) -> Result<Option<Compiler>> {
    if let Some(interpreter) = &requested.interpreter {
        return Ok(Some(Compiler::Interpreter(interpreter.clone())));
    }
    let version = requested.version;
    if version == PythonVersion::EMBEDDED {
        if let Ok(runtime) = Runtime::locate() {
            return Ok(Some(Compiler::Runtime(runtime.path)));
        }
    }
    let name = format!("python{}", version.dotted());
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(&name))
            .find(|candidate| candidate.is_file())
    });
    let Some(interpreter) = found else {
        return Ok(None);
    };
    match crate::target::interpreter_version(&interpreter) {
        Ok(found) if found == version => Ok(Some(Compiler::Interpreter(interpreter))),
        Ok(found) => {
            tracing::warn!(
                "`{}` is Python {found}, not {version}: not used to compile",
                interpreter.display()
            );
            Ok(None)
        }
        Err(error) => {
            tracing::warn!("{error:#}; it is not used to compile");
            Ok(None)
        }
    }
}

fn pack_pyz(args: &PackArgs) -> Result<()> {
    let started = Instant::now();
    if !args.extract.is_empty() {
        bail!("`--extract` is for executables: a pyz writes nothing to disk, and serves every package from the archive");
    }
    if args.inherit_python_env {
        bail!("`--inherit-python-env` is for executables: a pyz runs on the host's Python, which reads its environment as it always does");
    }
    let requested = RequestedPython::parse(args.python.as_deref().unwrap_or("3.11"))?;
    let target = Target {
        python: requested.version,
        platform: args.python_platform,
    };
    let shebang = crate::pyz::shebang(args.shebang.as_deref(), &target)?;
    if let Some(path) = &args.sbom {
        check_sbom_path(path, None)?;
    }
    let destination = crate::pyz::Destination::from_output(args.output.as_deref())?;
    let mut exclude = destination.exclusions();
    exclude.extend(args.sbom.clone());
    let gathered = gather(args, &target, &exclude)?;
    if let Some(file) = gathered
        .files
        .iter()
        .find(|file| crate::pyz::is_reserved(&file.name))
    {
        bail!(
            "`{}`: `{}` is the name of the pyz's own start-up files; rename it",
            file.path.display(),
            file.name
        );
    }
    let output_name = match &destination {
        crate::pyz::Destination::File(path) => path
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_default(),
        crate::pyz::Destination::Directory(_) => String::new(),
    };
    let (entry_point, scripts) = entry_points(args, &gathered, &output_name)?;
    let runtime = Runtime::locate().ok();
    let runtime_archive = match &runtime {
        Some(runtime) => Some(runtime.archive()?),
        None => None,
    };
    check_entry_modules(
        &gathered,
        runtime_archive.as_ref(),
        std::iter::once(entry_point.clone()).chain(scripts.values().cloned()),
    )?;
    let files = &gathered.files;

    let objects = read_shared_objects(files)?;
    let graph = libraries::library_graph(&objects);
    if let Some((object, library)) = graph.linked_to_libpython.first() {
        bail!("`{object}` is linked against `{library}`; extension modules must not link libpython (manylinux wheels never do: rebuild it as one)");
    }
    for (object, library) in &graph.missing {
        tracing::warn!(
            "`{object}` needs `{library}`, which is neither in the application nor a library manylinux lets wheels expect from the host; importing it fails where `{library}` is not installed"
        );
    }
    let (needed_names, unusable) = libraries::cycle_needed_names(&objects, &graph.dependencies);
    for (object, library) in &unusable {
        tracing::warn!(
            "`{object}` and `{library}` need each other, and the name of `{library}` in `{object}` cannot be replaced by a path: the pyz cannot load them from memory"
        );
    }
    let needed_by_others: BTreeSet<String> =
        graph.dependencies.values().flatten().cloned().collect();
    for (package, reason) in
        crate::path_readers::packages_reading_files(files, &objects, &needed_by_others)
    {
        tracing::warn!("`{package}` may need real files ({reason}); a pyz holds it only in the archive, where `open()` on a path below `__file__` finds nothing");
    }
    let load_plans = crate::pyz::worthwhile_plans(libraries::load_plans(&objects));
    crate::pyz::check_architecture(&objects, &target)?;
    let mut floor = crate::glibc_floor::FloorBuilder::default();
    floor.add_objects(&objects);
    floor.add_wheel_tags(files);
    let glibc_floor = floor.finish(Some(&target.platform));
    let platform_tag = crate::pyz::platform_tag(&objects, glibc_floor.as_ref(), &target);
    if let Some(floor) = &glibc_floor {
        tracing::info!(
            "the pyz needs glibc {} or newer (set by {})",
            floor.glibc,
            floor.set_by
        );
    }
    let tags = pyferry_payload::Tags {
        interpreter: target.python.tag(),
        platform: platform_tag.clone(),
    };
    let output = destination.path(&application_name(args, &gathered), &tags);
    if let Some(path) = &args.sbom {
        check_sbom_path(path, Some(&output))?;
    }

    let run_name = |entry: &EntryPoint| -> String {
        if entry.module == "__main__" && entry.function.is_none() {
            crate::pyz::APPLICATION_MAIN_MODULE.to_string()
        } else {
            entry.to_string()
        }
    };
    let start_up = crate::pyz::StartUp {
        target: &target,
        platform: &platform_tag,
        entry_point: run_name(&entry_point),
        scripts: scripts
            .iter()
            .map(|(name, entry)| (name.clone(), run_name(entry)))
            .collect(),
        libraries: &graph.dependencies,
        needed_names: &needed_names,
        load_plans: &load_plans,
    }
    .render();
    let work = tempfile::Builder::new()
        .prefix("pyferry-pyz-")
        .tempdir()
        .context("cannot create a temporary directory")?;
    let own_files = [
        (crate::pyz::START_UP_NAME, start_up.as_str()),
        (crate::pyz::BOOTSTRAP_NAME, crate::pyz::BOOTSTRAP_SOURCE),
    ];
    let mut packed: Vec<TreeFile> = Vec::new();
    for (name, source) in own_files {
        let path = work.path().join(name);
        fs_err::write(&path, source)?;
        packed.push(TreeFile {
            path,
            name: name.to_string(),
        });
    }
    packed.extend(files.iter().map(|file| TreeFile {
        path: file.path.clone(),
        name: crate::pyz::archive_name(&file.name).to_string(),
    }));

    let sources: Vec<CompileItem> = packed
        .iter()
        .filter(|file| file.name.ends_with(".py"))
        .map(|file| CompileItem {
            source: file.path.clone(),
            name: file.name.clone(),
        })
        .collect();
    let compiled = match pyz_compiler(&requested)? {
        Some(compiler) => {
            let _step = crate::progress::Step::start(format!(
                "compiling {} Python files for Python {}",
                sources.len(),
                target.python
            ));
            compile::compile(&compiler, &sources)?
        }
        None => {
            tracing::warn!(
                "no python{} on PATH to compile bytecode with: the pyz holds sources only, and Python compiles every module it imports at every start (several times slower); hint: put python{} on PATH, or name it with `--python /path/to/python{}`",
                target.python,
                target.python,
                target.python
            );
            compile::Compiled::default()
        }
    };
    for (name, error) in &compiled.failures {
        tracing::warn!("`{name}` does not compile ({error}); it is packed as source only");
    }
    let mut entries: Vec<PlannedEntry> = Vec::new();
    for file in &packed {
        if let Some(bytecode) = compiled.bytecode.get(&file.name) {
            entries.push(PlannedEntry {
                name: format!("{}c", file.name),
                contents: Contents::Bytes(bytecode.clone()),
            });
        }
        entries.push(PlannedEntry {
            name: file.name.clone(),
            contents: Contents::File(file.path.clone()),
        });
    }
    let wheels = wheel_origins(&gathered.installed);
    let bom = crate::sbom::build(&crate::sbom::Inputs {
        application: crate::sbom::Application {
            name: sbom_application_name(args, &gathered),
            format: "pyz",
            entry_point: entry_point.to_string(),
            scripts: script_names(&scripts),
            python_version: target.python.dotted(),
            tags: Some(tags.clone()),
            glibc_floor: glibc_floor.as_ref().map(|floor| floor.glibc.clone()),
            platform: target.platform.uv_name(),
        },
        files,
        wheels: &wheels,
        listed: &gathered.listed,
        runtime: None,
        environment: crate::sbom::markers::Environment {
            python_version: target.python.dotted(),
            python_full_version: None,
            platform_machine: target.platform.architecture.to_string(),
        },
        epoch: assemble::source_date_epoch(),
    })?;
    let sbom = crate::sbom::to_bytes(&bom)?;
    entries.push(PlannedEntry {
        name: SBOM_PATH.to_string(),
        contents: Contents::Bytes(sbom.clone()),
    });
    let manifest = Manifest {
        format_version: FORMAT_VERSION,
        kind: PayloadKind::Pyz,
        pyferry_version: env!("CARGO_PKG_VERSION").to_string(),
        python_version: target.python.dotted(),
        build_id: String::new(),
        entry_point,
        shared_libraries: graph.dependencies.clone(),
        load_plans,
        scripts,
        distributions: distributions_of(files),
        inherit_python_env: false,
        extract: Vec::new(),
        needed_names,
        tags: Some(tags),
        glibc_floor,
    };
    let step = crate::progress::Step::start(format!("writing {}", output.display()));
    let size =
        assemble::write_executable(&output, &shebang, entries, None, &manifest, args.compress)
            .with_context(|| format!("cannot pack `{}`", output.display()))?;
    drop(step);
    if let Some(path) = &args.sbom {
        write_sbom_file(path, &sbom_for_file(path, &bom, &sbom)?)?;
        tracing::info!("wrote the SBOM to {}", path.display());
    }
    let extension_count = objects
        .values()
        .filter(|object| object.extension_module)
        .count();
    tracing::info!(
        "packed {}: {:.1} MB, {} distributions, {} extension modules, for CPython {} on {}, {:.1} s",
        output.display(),
        size as f64 / 1e6,
        manifest.distributions.len(),
        extension_count,
        target.python,
        platform_tag,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
