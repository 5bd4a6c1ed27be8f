//! Shared objects of the archive (extension modules and the libraries they link) put in
//! memory files and loaded from there, each once per process.
//!
//! A registry of slots (`Preparing`, `InMemory`, `Loaded`) is shared by the importing thread and
//! the prefetch thread (`prefetch.rs`): whichever comes first does the work, the other waits,
//! nothing is done twice. A library is loaded dependencies first (`DT_NEEDED` as the packer
//! recorded it in the manifest) and its read-only pages are then mapped from the executable
//! (`page_sharing.rs`). No Python here: the importer's `ExtensionLoader` calls
//! [`prepare`] and hands the memory file to CPython; the archive filesystem's `dlopen` calls
//! [`open_for_dlopen`].

use std::collections::HashMap;
use std::sync::{Condvar, LazyLock, Mutex, MutexGuard, OnceLock};

use crate::executable::context::ArchiveContext;
use crate::native::dynamic_loader;
use crate::native::dynamic_names;
use crate::native::load_order::{self, Step};
use crate::native::memfd::{self, CopyThreads, LeaveOut};
use pyferry_payload::LoadPlan;

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
pub(super) struct Registry {
    slots: Mutex<HashMap<String, Slot>>,
    changed: Condvar,
}

pub(super) static REGISTRY: LazyLock<Registry> = LazyLock::new(|| Registry {
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

    /// The memory file of `name`, when it is in memory or loaded.
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    fn known_path(&self, name: &str) -> Option<String> {
        match self.lock().get(name) {
            Some(Slot::InMemory(path) | Slot::Loaded(path)) => Some(path.clone()),
            _ => None,
        }
    }

    /// Forgets the slots among `names` that this process left `Preparing` (a prefetch thread
    /// that stopped abnormally), so that importers do the work themselves.
    pub(super) fn release_preparing(&self, names: &[String]) {
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
        // Libraries that need each other are loaded by one `dlopen`, constructors and all.
        let usable = crate::native::page_sharing::enabled()
            && !cycles(context).contains_key(name)
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
    crate::native::page_sharing::note_created(file.fd());
    tracing::debug!(name, backing = %file.backing, path = %file.proc_path(), "in memory");
    Ok(file.proc_path())
}

/// `name` in a memory file, made by this thread or another.
pub(super) fn memory_path(
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
    if !crate::native::page_sharing::enabled() {
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
    crate::native::page_sharing::without_forks(|| {
        if let Err(error) = open() {
            complete(&left_out, true)?;
            return Err(error);
        }
        let shared = range
            .clone()
            .ok_or_else(|| "it is not stored uncompressed".to_string())
            .and_then(|range| {
                crate::native::page_sharing::share_read_only_pages(
                    &crate::native::page_sharing::SharedObject {
                        loaded_from: path,
                        memory_file,
                        image_fd: context.image_fd,
                        image: context.image,
                        offset_in_image: range.start,
                        len: range.len(),
                        left_out: &left_out,
                    },
                )
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
        let bias = crate::native::page_sharing::load_bias(path)
            .ok_or_else(|| format!("`{name}` is not among the loaded objects"))?;
        crate::native::constructors::run(bias, plan);
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

/// Libraries of the archive that need each other, computed once from the packer's graph.
fn cycles(context: &ArchiveContext) -> &'static HashMap<String, Vec<String>> {
    static CYCLES: OnceLock<HashMap<String, Vec<String>>> = OnceLock::new();
    CYCLES.get_or_init(|| load_order::cycles(&context.archive.manifest().shared_libraries))
}

/// The libraries `name` needs, transitively, dependencies first, each once (a cycle as one
/// step), each with the object that needs it.
pub(super) fn libraries_in_load_order(context: &ArchiveContext, name: &str) -> Vec<(Step, String)> {
    load_order::libraries_in_load_order(
        &context.archive.manifest().shared_libraries,
        cycles(context),
        name,
    )
}

/// Loads libraries that need each other by one `dlopen`, as the dynamic loader loads a cycle:
/// each member is put in a memory file whole (no load plan: the loader runs its constructors),
/// the `DT_NEEDED` names of the others are rewritten in each member's memory file to the
/// others' `/proc/self/fd/N` paths, and the first is opened: the loader maps the others by
/// those paths, relocates them together and runs their constructors, dependencies first.
/// (Without the rewriting, the first would need the others loaded before it, and they it.)
fn load_together(
    context: &ArchiveContext,
    members: &[String],
    needed_by: &str,
    threads: CopyThreads,
) -> Result<(), String> {
    // Claimed in the members' (sorted) order, so two threads never wait for each other.
    let mut claimed: Vec<(String, String)> = Vec::new();
    let mut paths: Vec<(String, String)> = Vec::new();
    let release = |claimed: &[(String, String)]| {
        for (member, path) in claimed {
            REGISTRY.finish(
                member,
                (!path.is_empty()).then(|| Slot::InMemory(path.clone())),
            );
        }
    };
    for member in members {
        match REGISTRY.claim(member, true) {
            Claim::Done(Slot::Loaded(path) | Slot::InMemory(path)) => {
                paths.push((member.clone(), path));
            }
            Claim::Done(Slot::Preparing { .. }) => unreachable!("claim never returns Preparing"),
            Claim::Mine { in_memory } => {
                let path = match in_memory {
                    Some(path) => Ok(path),
                    None => to_memory(context, member, threads),
                };
                match path {
                    Ok(path) => {
                        claimed.push((member.clone(), path.clone()));
                        paths.push((member.clone(), path));
                    }
                    Err(error) => {
                        claimed.push((member.clone(), String::new()));
                        release(&claimed);
                        return Err(error);
                    }
                }
            }
        }
    }
    let Some((first, first_path)) = claimed.first().cloned() else {
        return Ok(());
    };
    let loaded = point_at_each_other(context, &paths, &claimed)
        .and_then(|()| dynamic_loader::open_library(&first_path));
    match loaded {
        Ok(()) => {
            tracing::debug!(
                ?members,
                needed_by,
                "libraries that need each other loaded together"
            );
            for (member, path) in &claimed {
                REGISTRY.finish(member, Some(Slot::Loaded(path.clone())));
            }
            Ok(())
        }
        Err(error) => {
            release(&claimed);
            Err(format!(
                "cannot load `{first}` and the libraries it needs that need it ({}), needed by `{needed_by}`: {error}",
                members.join(", ")
            ))
        }
    }
}

/// Rewrites, in the memory file of each member in `to_rewrite`, every `DT_NEEDED` name of
/// another member (its `SONAME`, or its file name) to that member's memory-file path.
fn point_at_each_other(
    context: &ArchiveContext,
    paths: &[(String, String)],
    to_rewrite: &[(String, String)],
) -> Result<(), String> {
    let names_of = |member: &str| -> Result<dynamic_names::DynamicNames, String> {
        let bytes = context
            .archive
            .read(member)
            .map_err(|error| error.to_string())?
            .ok_or_else(|| format!("`{member}` is missing from the application"))?;
        dynamic_names::read(&bytes).map_err(|error| format!("`{member}`: {error}"))
    };
    let mut names = HashMap::new();
    let mut known: Vec<(String, &str)> = Vec::new();
    for (member, path) in paths {
        let file_name = member.rsplit('/').next().unwrap_or(member);
        known.push((file_name.to_string(), path));
        let member_names = names_of(member)?;
        if let Some(soname) = &member_names.soname {
            known.push((soname.clone(), path));
        }
        names.insert(member.as_str(), member_names);
    }
    for (member, path) in to_rewrite {
        let fd = memfd::descriptor_of(path)?;
        let needed_names = names.get(member.as_str()).map(|found| &found.needed);
        for needed in needed_names.into_iter().flatten() {
            let Some((_, target)) = known.iter().find(|(name, _)| *name == needed.name) else {
                continue;
            };
            let mut replacement = target.as_bytes().to_vec();
            replacement.push(0);
            if replacement.len() > needed.room {
                return Err(format!(
                    "`{member}` names `{}` in too few bytes to name `{target}` instead",
                    needed.name
                ));
            }
            memfd::write_at(fd, &replacement, needed.offset)
                .map_err(|error| format!("cannot rewrite `{member}` in memory: {error}"))?;
        }
    }
    Ok(())
}

/// Loads the libraries `name` needs, dependencies first.
fn load_dependencies(context: &ArchiveContext, name: &str) -> Result<(), String> {
    for (step, needed_by) in libraries_in_load_order(context, name) {
        match step {
            Step::One(library) => load_library(context, &library, &needed_by, CopyThreads::Two)?,
            Step::Together(members) => {
                load_together(context, &members, &needed_by, CopyThreads::Two)?
            }
        }
    }
    Ok(())
}

/// Puts shared object `name` (an archive path: an extension module, or a library loaded by
/// path) in a memory file, then loads the libraries it needs, dependencies first; returns the
/// memory file's path (`/proc/self/fd/N`). The object's own copy comes first: a prefetch thread
/// may be busy with its libraries meanwhile.
pub fn prepare(context: &ArchiveContext, name: &str) -> Result<String, String> {
    let path = memory_path(context, name, CopyThreads::Two)?;
    load_dependencies(context, name)?;
    Ok(path)
}

/// Loads shared object `name` from its memory file at `path` with the `dlopen` flags of whoever
/// loads it next (CPython for an extension module), just before it does (its own `dlopen` then
/// finds it loaded), so that its read-only pages are mapped from the executable before anything
/// forks. A failure to load is left for that `dlopen` to report (the memory file is whole again
/// by then); the error returned is an object loaded but not completed, which it would find
/// half-done.
#[cfg(target_os = "linux")]
pub fn load_early(
    context: &ArchiveContext,
    name: &str,
    path: &str,
    flags: libc::c_int,
) -> Result<(), String> {
    let opened = share_after(context, name, path, || {
        dynamic_loader::open_extension(path, flags)
    });
    match opened {
        Err(error) if crate::native::page_sharing::load_bias(path).is_some() => Err(error),
        _ => Ok(()),
    }
}

/// For a `dlopen` of archive file `name` by its path (`ctypes.CDLL`, `cffi`): the path of the
/// memory file that `dlopen` should open instead, with the object's libraries loaded and the
/// object itself loaded early ([`load_early`]). With `RTLD_NOLOAD`, only an object already in
/// memory.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
pub fn open_for_dlopen(
    context: &ArchiveContext,
    name: &str,
    flags: libc::c_int,
) -> Result<String, String> {
    if flags & libc::RTLD_NOLOAD != 0 {
        return REGISTRY
            .known_path(name)
            .ok_or_else(|| format!("`{name}` is not loaded"));
    }
    let path = prepare(context, name)?;
    #[cfg(target_os = "linux")]
    if crate::native::page_sharing::enabled() {
        load_early(context, name, &path, flags)?;
    }
    Ok(path)
}
