//! Loading extension modules (and the shared libraries they need) from memory.
//!
//! An extension found in the archive gets this loader. `create_module` first loads, from memory,
//! the libraries the packer recorded as its dependencies (dependencies first), then copies the
//! extension into a memory file and hands `/proc/self/fd/N` to `_imp.create_dynamic`, exactly
//! what CPython's `ExtensionFileLoader` does with a path on disk. `__file__` is then set to the
//! virtual path inside the executable.

use std::collections::HashMap;
use std::sync::{Condvar, LazyLock, Mutex, MutexGuard};

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyDict;

use crate::context::ArchiveContext;
use crate::finder::import_error;
use crate::memfd::{self, CopyThreads, LeaveOut};
use crate::{dynamic_loader, environment};
use pyferry_payload::LoadPlan;

static LOADER: PyOnceLock<Py<ExtensionLoader>> = PyOnceLock::new();

/// The state of one shared object of the archive.
#[derive(Debug, Clone)]
enum Slot {
    /// A thread of process `pid` is putting it in memory (and, for a library, loading it).
    Preparing { pid: u32 },
    /// In a memory file at this `/proc/self/fd/N` path, not yet loaded.
    InMemory(String),
    /// A library loaded with `dlopen` from this path.
    Loaded(String),
}

/// Every shared object the process has touched, shared between the importing thread and the
/// prefetch thread.
struct Registry {
    slots: Mutex<HashMap<String, Slot>>,
    changed: Condvar,
}

static REGISTRY: LazyLock<Registry> = LazyLock::new(|| Registry {
    slots: Mutex::new(HashMap::new()),
    changed: Condvar::new(),
});

/// What to do for an object, decided under the registry's lock.
enum Claim {
    Done(Slot),
    /// This thread owns the work; the slot is marked `Preparing`. `in_memory` is the memory
    /// file the object is already in, when only loading is left to do.
    Mine {
        in_memory: Option<String>,
    },
}

impl Registry {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, Slot>> {
        self.slots
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Waits while another thread of this process prepares `name`, then either returns its
    /// state or hands the work to the caller. A `Preparing` left by the parent of a forked
    /// child (whose thread does not exist in the child) is taken over.
    fn claim(&self, name: &str, want_loaded: bool) -> Claim {
        let pid = std::process::id();
        let mut slots = self.lock();
        loop {
            match slots.get(name) {
                Some(Slot::Preparing { pid: owner }) if *owner == pid => {
                    slots = self
                        .changed
                        .wait(slots)
                        .unwrap_or_else(|poisoned| poisoned.into_inner());
                }
                Some(Slot::Loaded(path)) => return Claim::Done(Slot::Loaded(path.clone())),
                Some(Slot::InMemory(path)) if !want_loaded => {
                    return Claim::Done(Slot::InMemory(path.clone()))
                }
                Some(Slot::InMemory(path)) => {
                    let in_memory = Some(path.clone());
                    slots.insert(name.to_string(), Slot::Preparing { pid });
                    return Claim::Mine { in_memory };
                }
                _ => {
                    slots.insert(name.to_string(), Slot::Preparing { pid });
                    return Claim::Mine { in_memory: None };
                }
            }
        }
    }

    /// Forgets the slots among `names` that this process left `Preparing` (a prefetch thread
    /// that stopped abnormally), so that importers do the work themselves.
    fn release_preparing(&self, names: &[String]) {
        let pid = std::process::id();
        let mut slots = self.lock();
        for name in names {
            if matches!(slots.get(name), Some(Slot::Preparing { pid: owner }) if *owner == pid) {
                slots.remove(name);
            }
        }
        drop(slots);
        self.changed.notify_all();
    }

    /// Records the outcome of work claimed with [`Registry::claim`]: `None` forgets the slot so
    /// that the next attempt starts over (and reports the error itself).
    fn finish(&self, name: &str, slot: Option<Slot>) {
        let mut slots = self.lock();
        match slot {
            Some(slot) => slots.insert(name.to_string(), slot),
            None => slots.remove(name),
        };
        drop(slots);
        self.changed.notify_all();
    }
}

/// The load plan archive entry `name` is copied and loaded with: only where its read-only
/// pages are mapped from the executable (Linux, page sharing on) and its bytes are stored,
/// page-aligned, as the plan expects.
fn load_plan<'a>(context: &'a ArchiveContext, name: &str) -> Option<&'a LoadPlan> {
    #[cfg(target_os = "linux")]
    {
        // The writer's alignment is the page size the plan was made for.
        let page = u64::from(pyferry_payload::SHARED_OBJECT_ALIGNMENT);
        let range = context.archive.stored_range(name)?;
        let plan = context.archive.manifest().load_plans.get(name)?;
        let usable = crate::page_sharing::enabled()
            && range.start as u64 % page == 0
            && plan.fits(range.len() as u64, page);
        usable.then_some(plan)
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (context, name);
        None
    }
}

/// Copies archive entry `name` into a memory file (without a copy through user space when the
/// entry is stored; without the parts its load plan maps from the executable) and returns the
/// path `dlopen` takes.
fn to_memory(context: &ArchiveContext, name: &str, threads: CopyThreads) -> Result<String, String> {
    let archive = &context.archive;
    let file = match archive.stored_range(name) {
        Some(range) => {
            let bytes = &context.image[range.clone()];
            let plan = load_plan(context, name);
            let mapped = plan.map(LoadPlan::mapped_ranges).unwrap_or_default();
            let leave_out = plan.map_or_else(LeaveOut::default, |plan| LeaveOut {
                ranges: &mapped,
                hidden_tags: &plan.hidden_init_tags,
            });
            memfd::load(
                name,
                context.image_fd,
                range.start as u64,
                bytes,
                threads,
                leave_out,
            )
        }
        None => {
            let data = archive
                .read(name)
                .map_err(|error| error.to_string())?
                .ok_or_else(|| format!("`{name}` is missing from the application"))?;
            memfd::load_bytes(name, &data)
        }
    };
    let file = file.map_err(|error| error.to_string())?;
    #[cfg(target_os = "linux")]
    crate::page_sharing::note_created(file.fd());
    tracing::debug!(name, backing = %file.backing, path = %file.proc_path(), "in memory");
    Ok(file.proc_path())
}

/// `name` in a memory file, made by this thread or another.
fn memory_path(
    context: &ArchiveContext,
    name: &str,
    threads: CopyThreads,
) -> Result<String, String> {
    match REGISTRY.claim(name, false) {
        Claim::Done(Slot::InMemory(path) | Slot::Loaded(path)) => Ok(path),
        Claim::Done(Slot::Preparing { .. }) => unreachable!("claim never returns Preparing"),
        Claim::Mine { .. } => {
            let result = to_memory(context, name, threads);
            REGISTRY.finish(
                name,
                result
                    .as_ref()
                    .ok()
                    .map(|path| Slot::InMemory(path.clone())),
            );
            result
        }
    }
}

/// Loads library `library` (needed by `needed_by`) from memory, once per process.
fn load_library(
    context: &ArchiveContext,
    library: &str,
    needed_by: &str,
    threads: CopyThreads,
) -> Result<(), String> {
    let path = match REGISTRY.claim(library, true) {
        Claim::Done(_) => return Ok(()),
        Claim::Mine {
            in_memory: Some(path),
        } => path,
        Claim::Mine { in_memory: None } => match to_memory(context, library, threads) {
            Ok(path) => path,
            Err(error) => {
                REGISTRY.finish(library, None);
                return Err(error);
            }
        },
    };
    let opened = share_after(context, library, &path, || {
        dynamic_loader::open_library(&path)
    });
    match opened {
        Ok(()) => {
            tracing::debug!(library, needed_by, "library loaded from memory");
            REGISTRY.finish(library, Some(Slot::Loaded(path)));
            Ok(())
        }
        Err(error) => {
            REGISTRY.finish(library, Some(Slot::InMemory(path)));
            Err(format!(
                "cannot load `{library}` (needed by `{needed_by}`): {error}"
            ))
        }
    }
}

/// Runs `open` (a `dlopen` of archive entry `name` from its memory file at `path`) and, when it
/// succeeds, maps the object's read-only pages from the executable (`page_sharing.rs`), with
/// forks held off in between. An object loaded with a load plan then gets whatever could not be
/// mapped written into its memory file, and its constructors run; when `open` fails, its memory
/// file is made whole again for whoever tries next.
#[cfg(target_os = "linux")]
fn share_after(
    context: &ArchiveContext,
    name: &str,
    path: &str,
    open: impl FnOnce() -> Result<(), String>,
) -> Result<(), String> {
    if !crate::page_sharing::enabled() {
        return open();
    }
    let plan = load_plan(context, name);
    let range = context.archive.stored_range(name);
    let memory_file = memfd::descriptor_of(path)?;
    // Writes the left-out `ranges` (and the hidden tags, when `restore_tags`) into the file.
    let complete = |ranges: &[std::ops::Range<u64>], restore_tags: bool| {
        let (Some(plan), Some(range)) = (plan, &range) else {
            return Ok(());
        };
        let tags: &[u64] = if restore_tags {
            &plan.hidden_init_tags
        } else {
            &[]
        };
        memfd::complete(
            memory_file,
            context.image_fd,
            range.start as u64,
            &context.image[range.clone()],
            ranges,
            tags,
        )
        .map_err(|error| format!("cannot complete its memory file: {error}"))
    };
    let left_out = plan.map(LoadPlan::mapped_ranges).unwrap_or_default();
    crate::page_sharing::without_forks(|| {
        if let Err(error) = open() {
            complete(&left_out, true)?;
            return Err(error);
        }
        let shared = range
            .clone()
            .ok_or_else(|| "it is not stored uncompressed".to_string())
            .and_then(|range| {
                crate::page_sharing::share_read_only_pages(&crate::page_sharing::SharedObject {
                    loaded_from: path,
                    memory_file,
                    image_fd: context.image_fd,
                    image: context.image,
                    offset_in_image: range.start,
                    len: range.len(),
                    left_out: &left_out,
                })
            });
        let remapped = match shared {
            Ok(shared) => {
                tracing::debug!(
                    name,
                    released = shared.released,
                    "read-only pages shared with the executable"
                );
                shared.remapped
            }
            Err(reason) => {
                tracing::debug!(name, %reason, "pages kept in the memory file");
                Vec::new()
            }
        };
        let missing = pyferry_payload::ranges::subtract(&left_out, &remapped);
        if !missing.is_empty() {
            tracing::debug!(
                name,
                ranges = missing.len(),
                "left-out pages written after all"
            );
        }
        complete(&missing, false)
    })?;
    if let Some(plan) = plan {
        let bias = crate::page_sharing::load_bias(path)
            .ok_or_else(|| format!("`{name}` is not among the loaded objects"))?;
        crate::constructors::run(bias, plan);
        tracing::debug!(name, "constructors run after mapping its code");
    }
    Ok(())
}

#[cfg(not(target_os = "linux"))]
fn share_after(
    _context: &ArchiveContext,
    _name: &str,
    _path: &str,
    open: impl FnOnce() -> Result<(), String>,
) -> Result<(), String> {
    open()
}

/// The libraries `name` needs, transitively, dependencies first, each once.
fn libraries_in_load_order(
    context: &ArchiveContext,
    name: &str,
) -> Result<Vec<(String, String)>, String> {
    fn visit(
        graph: &std::collections::BTreeMap<String, Vec<String>>,
        name: &str,
        depth: usize,
        order: &mut Vec<(String, String)>,
    ) -> Result<(), String> {
        if depth > 64 {
            return Err(format!(
                "library dependencies of `{name}` nest too deep (a cycle?)"
            ));
        }
        for library in graph.get(name).into_iter().flatten() {
            if order.iter().any(|(known, _)| known == library) {
                continue;
            }
            visit(graph, library, depth + 1, order)?;
            order.push((library.clone(), name.to_string()));
        }
        Ok(())
    }
    let mut order = Vec::new();
    visit(
        &context.archive.manifest().shared_libraries,
        name,
        0,
        &mut order,
    )?;
    Ok(order)
}

/// Loads the libraries `name` needs, dependencies first.
fn load_dependencies(context: &ArchiveContext, name: &str) -> Result<(), String> {
    for (library, needed_by) in libraries_in_load_order(context, name)? {
        load_library(context, &library, &needed_by, CopyThreads::Two)?;
    }
    Ok(())
}

/// Starts putting in memory, on a background thread, the shared objects that a top-level
/// package's extension modules will need: the libraries they link
/// and the extension modules that link them. The importing thread meanwhile runs the
/// package's Python code; when it reaches an extension, the work is done or under way (it then
/// waits), never done twice. Turned off by `PYFERRY_PREFETCH=0`.
pub fn prefetch_package(context: &'static ArchiveContext, package: &str) {
    static STARTED: Mutex<Vec<String>> = Mutex::new(Vec::new());
    if !environment::prefetch_enabled() {
        return;
    }
    {
        let mut started = STARTED
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if started.iter().any(|known| known == package) {
            return;
        }
        started.push(package.to_string());
    }
    let prefix = format!("{package}/");
    let graph = &context.archive.manifest().shared_libraries;
    let users: Vec<String> = graph
        .range(prefix.clone()..)
        .take_while(|(name, _)| name.starts_with(&prefix))
        .map(|(name, _)| name.clone())
        .collect();
    if users.is_empty() {
        return;
    }
    let mut libraries: Vec<(String, String)> = Vec::new();
    for user in &users {
        for pair in libraries_in_load_order(context, user).unwrap_or_default() {
            if !libraries.iter().any(|(known, _)| *known == pair.0) {
                libraries.push(pair);
            }
        }
    }
    tracing::debug!(
        package,
        libraries = libraries.len(),
        extensions = users.len(),
        "prefetching"
    );
    let spawned = std::thread::Builder::new()
        .name("pyferry-prefetch".to_string())
        .spawn(move || {
            // Whatever happens, a slot this thread claimed must not stay `Preparing`: the
            // importing thread would wait for it forever.
            let claimed: Vec<String> = libraries
                .iter()
                .map(|(library, _)| library.clone())
                .chain(users.iter().cloned())
                .collect();
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                prefetch(context, &libraries, &users)
            }));
            if outcome.is_err() {
                REGISTRY.release_preparing(&claimed);
            }
        });
    if let Err(error) = spawned {
        tracing::debug!(%error, "no prefetch thread");
    }
}

/// The prefetch thread's work: libraries, then extension modules, into memory files. Loading
/// them is left to the importing thread, when the import needs them, as CPython in a venv
/// would: their constructors (OpenBLAS starts its thread pool) run there and then.
fn prefetch(context: &'static ArchiveContext, libraries: &[(String, String)], users: &[String]) {
    for (library, _) in libraries {
        if let Err(error) = memory_path(context, library, CopyThreads::One) {
            tracing::debug!(%error, "prefetch failed; the import will retry and report");
            return;
        }
    }
    for user in users {
        let _ = memory_path(context, user, CopyThreads::One);
    }
}

/// The loader of extension modules in the archive. One instance serves every extension.
#[pyclass(frozen, module = "pyferry", name = "ExtensionLoader")]
pub struct ExtensionLoader {
    context: &'static ArchiveContext,
}

impl ExtensionLoader {
    pub fn for_context<'py>(
        py: Python<'py>,
        context: &'static ArchiveContext,
    ) -> PyResult<Bound<'py, ExtensionLoader>> {
        LOADER
            .get_or_try_init(py, || Py::new(py, ExtensionLoader { context }))
            .map(|loader| loader.bind(py).clone())
    }
}

#[pymethods]
impl ExtensionLoader {
    fn create_module<'py>(
        slf: &Bound<'py, Self>,
        spec: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let py = slf.py();
        let context = slf.get().context;
        let name: String = spec.getattr("name")?.extract()?;
        let origin: String = spec.getattr("origin")?.extract()?;
        let fail = |message: String| import_error(py, message, &name, &origin);
        let relative = context
            .relative_path(&origin)
            .ok_or_else(|| fail(format!("`{origin}` is not inside this application")))?;
        let span = tracing::debug_span!("extension", module = %name).entered();
        // The GIL is released while libraries load: a prefetch thread may still be copying them.
        let fd_path = py
            .detach(|| {
                // The extension's own copy first: a prefetch thread may be busy with its
                // libraries meanwhile.
                let path = memory_path(context, relative, CopyThreads::Two)?;
                load_dependencies(context, relative)?;
                Ok::<_, String>(path)
            })
            .map_err(|error| fail(format!("cannot import `{name}`: {error}")))?;
        // Loaded here first (CPython's `dlopen` then finds it) so that its read-only pages can
        // be shared before anything forks. A failure to load is left for `create_dynamic` to
        // report (its memory file is whole again by then).
        #[cfg(target_os = "linux")]
        if crate::page_sharing::enabled() {
            let flags: libc::c_int = py
                .import("sys")?
                .call_method0("getdlopenflags")?
                .extract()?;
            let opened = share_after(context, relative, &fd_path, || {
                dynamic_loader::open_extension(&fd_path, flags)
            });
            // Loaded, but not completed: CPython would find it half-done.
            if let Err(error) = opened {
                if crate::page_sharing::load_bias(&fd_path).is_some() {
                    return Err(fail(format!("cannot import `{name}`: {error}")));
                }
            }
        }
        // FreeBSD (untested): no path reaches a memory file without fdescfs; create the module
        // from the descriptor.
        #[cfg(target_os = "freebsd")]
        {
            let fd = memfd::descriptor_of(&fd_path).map_err(fail)?;
            let module = crate::fd_extension::create_module(py, spec, fd, &origin)
                .map_err(|error| fail(error.value(py).to_string()))?;
            drop(span);
            return Ok(module);
        }
        // `create_dynamic` reads the spec's `name` and `origin`: give it a copy whose origin is
        // the memory file.
        #[cfg_attr(target_os = "freebsd", allow(unreachable_code))]
        let kwargs = PyDict::new(py);
        kwargs.set_item("origin", &fd_path)?;
        let memory_spec = crate::finder::module_spec_type(py)?.call((&name, slf), Some(&kwargs))?;
        // `dlopen`'s errors name the memory file: name the archive entry instead.
        let module = py
            .import("_imp")?
            .getattr("create_dynamic")?
            .call1((memory_spec,))
            .map_err(|error| fail(error.value(py).to_string().replace(&fd_path, &origin)))?;
        // Single-phase modules get `__file__` from the path they were loaded from.
        if module.hasattr("__file__")? {
            module.setattr("__file__", &origin)?;
        }
        drop(span);
        Ok(module)
    }

    fn exec_module(&self, module: &Bound<'_, PyAny>) -> PyResult<()> {
        module
            .py()
            .import("_imp")?
            .getattr("exec_dynamic")?
            .call1((module,))?;
        Ok(())
    }

    #[pyo3(signature = (fullname))]
    fn get_code(&self, py: Python<'_>, fullname: &str) -> Py<PyAny> {
        let _ = fullname;
        py.None()
    }

    #[pyo3(signature = (fullname))]
    fn get_source(&self, py: Python<'_>, fullname: &str) -> Py<PyAny> {
        let _ = fullname;
        py.None()
    }

    fn __repr__(&self) -> String {
        format!("<pyferry.ExtensionLoader for {:?}>", self.context.root)
    }
}

/// The top-level names that `source` imports at the start of a line (`import a.b, c` and
/// `from a.b import x`), in order, each once. A cheap textual scan, not a parse: it only
/// decides what to prefetch.
pub fn imported_top_level_names(source: &str) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for line in source.lines() {
        let line = line.trim_start();
        let modules = if let Some(rest) = line.strip_prefix("import ") {
            rest.split(',').collect::<Vec<_>>()
        } else if let Some(rest) = line.strip_prefix("from ") {
            vec![rest.split_whitespace().next().unwrap_or_default()]
        } else {
            continue;
        };
        for module in modules {
            let top = module.trim().split(['.', ' ']).next().unwrap_or_default();
            if !top.is_empty()
                && top.chars().all(|c| c == '_' || c.is_alphanumeric())
                && !names.iter().any(|known| known == top)
            {
                names.push(top.to_string());
            }
        }
    }
    names
}

/// At start-up, before the interpreter exists: prefetch the native libraries of the packages
/// that the entry point's module imports directly (read from its shipped source).
pub fn prefetch_for_entry_point(
    context: &'static ArchiveContext,
    entry_point: &pyferry_payload::EntryPoint,
) {
    let module = entry_point.module.replace('.', "/");
    let source = [
        format!("{module}.py"),
        format!("{module}/__init__.py"),
        format!("{module}/__main__.py"),
    ]
    .iter()
    .find_map(|name| context.archive.read(name).ok().flatten());
    let Some(source) = source else {
        return;
    };
    for name in imported_top_level_names(&String::from_utf8_lossy(&source)) {
        prefetch_package(context, &name);
    }
}

#[cfg(test)]
mod tests {
    use super::imported_top_level_names;

    #[test]
    fn import_lines_name_their_top_level_packages() {
        let source = "import os, numpy.linalg as la\nfrom pandas.core import frame\n  import scipy\nx = 'import nope'\nfrom . import sibling\n";
        assert_eq!(
            imported_top_level_names(source),
            vec!["os", "numpy", "pandas", "scipy"]
        );
    }
}
