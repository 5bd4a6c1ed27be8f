//! Giving back the memory-file copy of a loaded shared object's read-only pages.
//!
//! `dlopen` needs a whole file, so every shared object the launcher loads is first copied into a
//! memory file: numpy's 39 MB, of which a run touches about 5. That copy is private to the
//! process, and freeing it is the slowest part of process exit. Once the dynamic loader has
//! mapped an object and run its constructors, this module maps its read-only segments (code,
//! constants, unwind tables) again, at the same addresses and with the same protection, from
//! the executable file itself, and releases the memory file's pages under them on a background
//! thread. The bytes seen at every address are the same before and after: the packer stores
//! each shared object uncompressed, starting on a page boundary of the executable, so a segment
//! at offset `o` of the object is the executable's bytes at `start + o`. What remains in the
//! memory file is what must stay private or be found by tools: the first segment (ELF headers,
//! dynamic symbols, build id), the writable segments, and anything they share a page with.
//!
//! The read-only pages then come from the executable's page cache: shared between processes,
//! read from disk only when touched, and free to drop at exit.
//!
//! Skipped (the object keeps its memory-file pages, as before): objects whose data in the
//! executable is compressed or not page-aligned, objects with text relocations, segments whose
//! bytes in memory differ from the file at their first or last page, and the whole mechanism
//! with `PYFERRY_SHARE_PAGES=0` (e.g. to have `perf` attribute code to the memory file's name).
//!
//! Forks: a forked child shares the parent's memory files, so pages are released only when no
//! other process can still need them. A `pthread_atfork` handler makes `fork` wait while an
//! object is between its `dlopen` and its new mappings (a child forked in between would keep
//! mappings of pages the parent then releases), and pages are released only from memory files
//! this process created with no fork since (a child forked earlier may `dlopen` the file later,
//! and so may the parent of a child).
#![allow(unsafe_code)]

use std::cell::UnsafeCell;
use std::collections::BTreeMap;
use std::ffi::{c_int, c_void, CStr, CString};
use std::ops::Range;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Sender};
use std::sync::{Mutex, Once};

use crate::environment;
use pyferry_payload::ranges::subtract;

/// ELF constants (`<elf.h>`).
const PT_LOAD: u32 = 1;
const PT_DYNAMIC: u32 = 2;
const PF_X: u32 = 1;
const PF_W: u32 = 2;
const PF_R: u32 = 4;
const DT_NULL: i64 = 0;
const DT_TEXTREL: i64 = 22;
const DT_FLAGS: i64 = 30;
const DF_TEXTREL: u64 = 4;

/// One entry of the dynamic section (`Elf64_Dyn`).
#[repr(C)]
struct DynamicEntry {
    tag: i64,
    value: u64,
}

/// A loaded object's segment, as its program header says.
#[derive(Debug, Clone, Copy)]
struct Segment {
    kind: u32,
    flags: u32,
    offset: u64,
    address: u64,
    file_size: u64,
    memory_size: u64,
}

/// Where a loaded object is: its load bias and program headers.
struct LoadedObject {
    bias: usize,
    segments: Vec<Segment>,
}

/// The bytes of a shared object inside the executable, for [`share_read_only_pages`].
pub struct SharedObject<'a> {
    /// The path it was loaded from (`/proc/self/fd/N`).
    pub loaded_from: &'a str,
    /// Its memory file.
    pub memory_file: RawFd,
    /// The executable: its descriptor, its mapped bytes, and where the object's bytes start.
    pub image_fd: RawFd,
    pub image: &'a [u8],
    pub offset_in_image: usize,
    /// The object's size (its entry's), in bytes.
    pub len: usize,
    /// Byte ranges of the object left out of its memory file (holes there): mapped from the
    /// executable here without comparing bytes first.
    pub left_out: &'a [Range<u64>],
}

/// What [`share_read_only_pages`] did.
pub struct Shared {
    /// The object's byte ranges now mapped from the executable.
    pub remapped: Vec<Range<u64>>,
    /// How many bytes of the memory file will be released.
    pub released: u64,
}

/// A mutex that `fork` takes too (through `pthread_atfork`), so no fork happens while it is
/// held. A plain pthread mutex: the handlers lock and unlock it outside any Rust guard.
struct ForkLock(UnsafeCell<libc::pthread_mutex_t>);

// SAFETY: the mutex is only used through the pthread functions, which are thread-safe.
unsafe impl Sync for ForkLock {}

static FORK_LOCK: ForkLock = ForkLock(UnsafeCell::new(libc::PTHREAD_MUTEX_INITIALIZER));

/// Forks this process made (counted in the `pthread_atfork` prepare handler).
static FORKS: AtomicU64 = AtomicU64::new(0);

/// Memory files this process created: descriptor → the value of [`FORKS`] at the time.
static CREATED: Mutex<BTreeMap<RawFd, u64>> = Mutex::new(BTreeMap::new());

extern "C" fn prepare_fork() {
    lock_fork_lock();
    FORKS.fetch_add(1, Ordering::SeqCst);
}

extern "C" fn lock_fork_lock() {
    // SAFETY: FORK_LOCK is a statically initialized mutex that lives for the whole process.
    unsafe { libc::pthread_mutex_lock(FORK_LOCK.0.get()) };
}

extern "C" fn unlock_fork_lock() {
    // SAFETY: called by `fork` in the parent and in the child after `lock_fork_lock` ran in
    // the forking thread, which therefore owns the mutex.
    unsafe { libc::pthread_mutex_unlock(FORK_LOCK.0.get()) };
}

/// Runs `body` (a `dlopen`, then [`share_read_only_pages`]) with forks held off.
pub fn without_forks<R>(body: impl FnOnce() -> R) -> R {
    static HANDLERS: Once = Once::new();
    HANDLERS.call_once(|| {
        // SAFETY: the handlers are plain functions that lock and unlock a static mutex.
        unsafe {
            libc::pthread_atfork(
                Some(prepare_fork),
                Some(unlock_fork_lock),
                Some(unlock_fork_lock),
            )
        };
    });
    struct Unlock;
    impl Drop for Unlock {
        fn drop(&mut self) {
            unlock_fork_lock();
        }
    }
    lock_fork_lock();
    let _unlock = Unlock;
    body()
}

/// Records that this process created `memory_file` (a memory file's pages are only ever
/// released by the process that created it, and only when it has not forked since).
pub fn note_created(memory_file: RawFd) {
    without_forks(|| {
        CREATED
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .insert(memory_file, FORKS.load(Ordering::SeqCst));
    });
}

/// Whether no other process can hold `memory_file` unloaded: this process created it and has
/// not forked since. Called with forks held off.
fn only_this_process_can_load(memory_file: RawFd) -> bool {
    let created = CREATED
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    created.get(&memory_file) == Some(&FORKS.load(Ordering::SeqCst))
}

/// Whether page sharing is on (`PYFERRY_SHARE_PAGES`, on unless `0`).
pub fn enabled() -> bool {
    environment::share_pages_enabled()
}

/// Maps the read-only segments of the object loaded from `object.loaded_from` from the
/// executable and, when no other process can need them, queues the release of the memory
/// file's pages under them. Returns what was done, or why nothing was. Call it inside
/// [`without_forks`], right after the `dlopen` that loaded the object.
pub fn share_read_only_pages(object: &SharedObject<'_>) -> Result<Shared, String> {
    // SAFETY: `sysconf` has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    let page = u64::try_from(page)
        .ok()
        .filter(|page| page.is_power_of_two())
        .ok_or("no page size")?;
    if object.offset_in_image as u64 % page != 0 {
        return Err("its bytes are not page-aligned in the executable".into());
    }
    let loaded = find_loaded(object.loaded_from).ok_or("not among the loaded objects")?;
    if has_text_relocations(&loaded) {
        return Err("it has text relocations".into());
    }
    let floor = |value: u64| value & !(page - 1);
    let ceil = |value: u64| (value + page - 1) & !(page - 1);
    let object_len = object.len as u64;
    let loads: Vec<&Segment> = loaded
        .segments
        .iter()
        .filter(|segment| segment.kind == PT_LOAD)
        .collect();
    let candidate = |segment: &Segment| {
        segment.flags & PF_W == 0
            && segment.flags & PF_R != 0
            && segment.offset >= page
            && segment.file_size > 0
            && segment.file_size == segment.memory_size
            && segment.address % page == segment.offset % page
            && segment.offset + segment.file_size <= object_len
    };
    let memory_pages =
        |segment: &Segment| floor(segment.address)..ceil(segment.address + segment.memory_size);
    let overlaps = |a: &Range<u64>, b: &Range<u64>| a.start < b.end && b.start < a.end;
    let mut remapped: Vec<Range<u64>> = Vec::new();
    let mut kept: Vec<Range<u64>> = Vec::new();
    for segment in &loads {
        let file_pages = floor(segment.offset)..ceil(segment.offset + segment.file_size);
        // A page of memory shared with a segment that stays as it is (writable data placed in
        // the same page, say) must not be replaced.
        let shareable = candidate(segment)
            && loads.iter().all(|other| {
                std::ptr::eq(*other, *segment)
                    || candidate(other)
                    || !overlaps(&memory_pages(segment), &memory_pages(other))
            });
        if !shareable {
            kept.push(file_pages);
            continue;
        }
        match remap(object, &loaded, segment, page) {
            Ok(()) => remapped.push(file_pages),
            Err(error) => {
                tracing::debug!(object = object.loaded_from, %error, "segment kept in memory");
                kept.push(file_pages);
            }
        }
    }
    // A forked process may still load the memory file: its pages stay.
    // (Left-out ranges hold no pages.)
    let releasable = if only_this_process_can_load(object.memory_file) {
        subtract(&subtract(&remapped, &kept), object.left_out)
    } else {
        Vec::new()
    };
    let released = releasable.iter().map(|range| range.end - range.start).sum();
    if !releasable.is_empty() {
        queue_release(object.memory_file, releasable);
    }
    Ok(Shared { remapped, released })
}

/// The load bias of the object `dlopen` loaded from `path`.
pub fn load_bias(path: &str) -> Option<usize> {
    find_loaded(path).map(|loaded| loaded.bias)
}

/// Maps `segment` again from the executable, after checking that its first and last page hold
/// the same bytes there as in memory.
fn remap(
    object: &SharedObject<'_>,
    loaded: &LoadedObject,
    segment: &Segment,
    page: u64,
) -> Result<(), String> {
    let start = segment.address & !(page - 1);
    let end = (segment.address + segment.memory_size + page - 1) & !(page - 1);
    let file_start = segment.offset & !(page - 1);
    let image_start = object.offset_in_image as u64 + file_start;
    let len = end - start;
    let address = loaded.bias as u64 + start;
    // Compare what is mapped now with what will be: the first page, and the segment's last
    // bytes (the rest of its last page may lie beyond the object's end).
    let checks = [
        (
            0,
            page.min(segment.file_size + (segment.offset - file_start)),
        ),
        (
            segment.offset + segment.file_size - file_start - 1,
            segment.offset + segment.file_size - file_start,
        ),
    ];
    let left_out = |from: u64, to: u64| {
        object
            .left_out
            .iter()
            .any(|range| range.start <= file_start + from && file_start + to <= range.end)
    };
    for (from, to) in checks {
        // Holes in the memory file: nothing to compare (the packer's layout guarantees them).
        if left_out(from, to) {
            continue;
        }
        let in_image = object
            .image
            .get((image_start + from) as usize..(image_start + to) as usize)
            .ok_or("the segment lies outside the executable")?;
        // SAFETY: `address + from .. address + to` lies inside the segment's mapping, which
        // the loader made readable (only segments with PF_R get here).
        let in_memory = unsafe {
            std::slice::from_raw_parts((address + from) as *const u8, (to - from) as usize)
        };
        if in_memory != in_image {
            return Err("its bytes differ from the executable's".into());
        }
    }
    let protection = libc::PROT_READ
        | if segment.flags & PF_X != 0 {
            libc::PROT_EXEC
        } else {
            0
        };
    // SAFETY: the range is exactly the loader's mapping of this read-only segment (the same
    // page-rounded bounds it used), and the new mapping has the same bytes (checked above and
    // guaranteed by the packer's layout) and the same protection, so code running in it, on
    // this thread or another, sees no difference. MAP_FIXED replaces the old mapping atomically.
    let mapped = unsafe {
        libc::mmap(
            address as *mut c_void,
            len as usize,
            protection,
            libc::MAP_PRIVATE | libc::MAP_FIXED,
            object.image_fd,
            image_start as libc::off_t,
        )
    };
    if mapped == libc::MAP_FAILED || mapped as u64 != address {
        return Err(format!("mmap: {}", std::io::Error::last_os_error()));
    }
    Ok(())
}

/// The object `dlopen` loaded from `path`, found with `dl_iterate_phdr`.
fn find_loaded(path: &str) -> Option<LoadedObject> {
    struct Search {
        path: CString,
        found: Option<LoadedObject>,
    }
    unsafe extern "C" fn visit(
        info: *mut libc::dl_phdr_info,
        _size: libc::size_t,
        data: *mut c_void,
    ) -> c_int {
        // SAFETY: `data` is the `Search` passed below, alive for the whole iteration; `info`
        // is valid during the callback, its name a C string and its headers an array of
        // `dlpi_phnum` entries, all owned by the loader.
        unsafe {
            let search = &mut *(data as *mut Search);
            let info = &*info;
            if info.dlpi_name.is_null() || CStr::from_ptr(info.dlpi_name) != search.path.as_c_str()
            {
                return 0;
            }
            let headers = std::slice::from_raw_parts(info.dlpi_phdr, usize::from(info.dlpi_phnum));
            search.found = Some(LoadedObject {
                bias: info.dlpi_addr as usize,
                segments: headers
                    .iter()
                    .map(|header| Segment {
                        kind: header.p_type,
                        flags: header.p_flags,
                        offset: header.p_offset,
                        address: header.p_vaddr,
                        file_size: header.p_filesz,
                        memory_size: header.p_memsz,
                    })
                    .collect(),
            });
            1
        }
    }
    let mut search = Search {
        path: CString::new(path).ok()?,
        found: None,
    };
    // SAFETY: `visit` matches the callback signature and only touches `search` through `data`.
    unsafe { libc::dl_iterate_phdr(Some(visit), &mut search as *mut Search as *mut c_void) };
    search.found
}

/// Whether the object's dynamic section asks for text relocations (its code is patched at
/// load time, so its pages in memory differ from the file).
fn has_text_relocations(object: &LoadedObject) -> bool {
    let Some(dynamic) = object
        .segments
        .iter()
        .find(|segment| segment.kind == PT_DYNAMIC)
    else {
        return false;
    };
    let count = dynamic.memory_size as usize / std::mem::size_of::<DynamicEntry>();
    let first = (object.bias as u64 + dynamic.address) as *const DynamicEntry;
    for index in 0..count {
        // SAFETY: the dynamic section is mapped (the loader just used it) and holds `count`
        // entries; reading stops at DT_NULL.
        let entry = unsafe { &*first.add(index) };
        match entry.tag {
            DT_NULL => break,
            DT_TEXTREL => return true,
            DT_FLAGS if entry.value & DF_TEXTREL != 0 => return true,
            _ => {}
        }
    }
    false
}

/// Work for the release thread: ranges of a memory file to give back.
struct Release {
    memory_file: RawFd,
    ranges: Vec<Range<u64>>,
}

/// Hands `ranges` of `memory_file` to the release thread (started on first use, and again in a
/// forked child, where the parent's thread does not exist).
fn queue_release(memory_file: RawFd, ranges: Vec<Range<u64>>) {
    static WORKER: Mutex<Option<(u32, Sender<Release>)>> = Mutex::new(None);
    let pid = std::process::id();
    let mut worker = WORKER
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let job = Release {
        memory_file,
        ranges,
    };
    let job = match &*worker {
        Some((owner, sender)) if *owner == pid => match sender.send(job) {
            Ok(()) => return,
            Err(mpsc::SendError(job)) => job,
        },
        _ => job,
    };
    let (sender, receiver) = mpsc::channel::<Release>();
    let spawned = std::thread::Builder::new()
        .name("pyferry-release".to_string())
        .spawn(move || {
            for job in receiver {
                release(&job);
            }
        });
    match spawned {
        Ok(_) => {
            let _ = sender.send(job);
            *worker = Some((pid, sender));
        }
        // No thread: release right here.
        Err(_) => release(&job),
    }
}

/// Gives back the pages of `job`'s ranges: nothing maps them any more.
fn release(job: &Release) {
    for range in &job.ranges {
        // SAFETY: `fallocate` on a descriptor this process owns (never closed); punching a hole
        // keeps the size and only drops pages that no mapping uses any more.
        let result = unsafe {
            libc::fallocate(
                job.memory_file,
                libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
                range.start as libc::off_t,
                (range.end - range.start) as libc::off_t,
            )
        };
        if result != 0 {
            tracing::debug!(error = %std::io::Error::last_os_error(), "pages not released");
            return;
        }
    }
}
