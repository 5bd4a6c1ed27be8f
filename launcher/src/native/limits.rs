//! The open-file limit (`RLIMIT_NOFILE`) the application needs.
//!
//! Every shared object loaded from memory keeps its memory file open for the life of the
//! process (see `memfd.rs`: closing one would let `dlopen` confuse a later file with it), so an
//! app that imports many extension modules holds many descriptors. Under a low soft limit
//! (`ulimit -n 32`) those imports would fail one by one with `EMFILE`. At start-up the soft limit
//! is raised to what the app may need, when the hard limit allows; otherwise start-up fails
//! with one line saying how many descriptors are needed.
//!
//! What the app may need is counted from the archive: one descriptor for each shared object it
//! carries (it may load any of them) plus [`RESERVE`] for the standard streams, the executable,
//! Python and the app's own first files. The limit is raised only as far as that, and only when
//! it is lower: a process manager's higher limit is left alone, and child processes inherit at
//! most that much more.
#![allow(unsafe_code)]

use pyferry_payload::is_shared_object;

use crate::executable::context::ArchiveContext;

/// Descriptors beyond the shared objects: the standard streams, the executable, and room for
/// Python and the app's first files.
const RESERVE: u64 = 32;

fn current_limit() -> Option<libc::rlimit> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `getrlimit` only writes the struct it is given, which lives on this stack frame.
    let result = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) };
    (result == 0).then_some(limit)
}

// `rlim_t` is `u64` on Linux but signed elsewhere (FreeBSD): the conversion is needed there.
#[allow(clippy::useless_conversion)]
fn as_u64(value: libc::rlim_t) -> u64 {
    if value == libc::RLIM_INFINITY {
        u64::MAX
    } else {
        u64::try_from(value).unwrap_or(u64::MAX)
    }
}

/// Makes sure the soft `RLIMIT_NOFILE` covers every shared object of the archive plus
/// [`RESERVE`], raising it when the hard limit allows. The error is the one line to print.
pub fn ensure_descriptors(context: &ArchiveContext) -> Result<(), String> {
    let Some(limit) = current_limit() else {
        // Unknown limit: carry on, as Python would.
        return Ok(());
    };
    let soft = as_u64(limit.rlim_cur);
    let index = context.archive.index();
    // Cheap check first: no archive holds more shared objects than entries.
    if soft >= index.len() as u64 + RESERVE {
        return Ok(());
    }
    let shared_objects = index.names().filter(|name| is_shared_object(name)).count() as u64;
    let needed = shared_objects + RESERVE;
    if soft >= needed {
        return Ok(());
    }
    let hard = as_u64(limit.rlim_max);
    let hint = format!(
        "{}: needs up to {needed} open file descriptors ({shared_objects} shared objects it may hold in memory, plus {RESERVE}), but the limit is {soft}",
        context.root
    );
    if hard < needed {
        return Err(format!(
            "{hint} and the hard limit {hard}; raise both with `ulimit -n {needed}`"
        ));
    }
    let raised = libc::rlimit {
        rlim_cur: needed as libc::rlim_t,
        rlim_max: limit.rlim_max,
    };
    // SAFETY: `setrlimit` only reads the struct it is given; lowering nothing, it affects no
    // descriptor already open.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } != 0 {
        let error = std::io::Error::last_os_error();
        return Err(format!("{hint}, and raising it failed: {error}"));
    }
    tracing::debug!(
        from = soft,
        to = needed,
        shared_objects,
        "raised the soft limit of open files"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::is_shared_object;

    #[test]
    fn shared_objects_are_extensions_and_versioned_libraries() {
        for name in [
            "_json.cpython-311-x86_64-linux-gnu.so",
            "numpy.libs/libscipy_openblas64_-56d6093b.so",
            ".pyferry/libs/libssl.so.3",
            "PIL.libs/libjpeg-0988b44a.so.62.4.0",
        ] {
            assert!(is_shared_object(name), "{name}");
        }
        for name in [
            "json/__init__.pyc",
            "pkg/so.py",
            "data/x.so.txt/readme",
            "a.sop",
        ] {
            assert!(!is_shared_object(name), "{name}");
        }
    }
}
