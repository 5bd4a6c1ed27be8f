//! Packages that need real files, materialized once into a private, content-addressed cache.
//!
//! Everything else stays in memory. A package is extracted when the packer was told to
//! (`--extract PACKAGE`) or found that it needs it (a shared library loaded by path with
//! `ctypes`, data opened next to `__file__`); the manifest lists them. At its first import the
//! package (with its `PACKAGE.libs/` directory) is written under
//! `$PYFERRY_CACHE_DIR`, else `$XDG_CACHE_HOME/pyferry`, else `~/.cache/pyferry`, in a
//! directory named after the hash of its contents, and imported from there by CPython's own
//! path-based finder.
//!
//! Trust: the cache root must be a real directory (not a symbolic link) owned by the user and
//! closed to everyone else (mode `0700`); it is created so. A package directory is written
//! under a temporary name, completed with a marker holding its hash, and renamed into place
//! atomically; an existing one is used only when it passes the same checks and its marker
//! matches. Nothing another user could have planted is trusted.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::executable::context::ArchiveContext;

/// Overrides the cache directory.
pub const CACHE_DIR_VARIABLE: &str = "PYFERRY_CACHE_DIR";

/// The file that marks a complete extraction; it holds the content hash.
const MARKER: &str = ".pyferry-complete";

/// The cache root, created private if missing, checked if present.
fn cache_root() -> Result<PathBuf, String> {
    let root = match std::env::var_os(CACHE_DIR_VARIABLE).filter(|value| !value.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => match std::env::var_os("XDG_CACHE_HOME").filter(|value| !value.is_empty()) {
            Some(dir) => PathBuf::from(dir).join("pyferry"),
            None => match std::env::var_os("HOME").filter(|value| !value.is_empty()) {
                Some(home) => PathBuf::from(home).join(".cache/pyferry"),
                None => return Err(format!("no cache directory: neither {CACHE_DIR_VARIABLE}, XDG_CACHE_HOME nor HOME is set")),
            },
        },
    };
    if fs::symlink_metadata(&root).is_err() {
        if let Some(parent) = root.parent() {
            fs::create_dir_all(parent)
                .map_err(|error| format!("cannot create `{}`: {error}", parent.display()))?;
        }
        match fs::DirBuilder::new().mode(0o700).create(&root) {
            Ok(()) => {}
            Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(error) => return Err(format!("cannot create `{}`: {error}", root.display())),
        }
    }
    check_private_dir(&root)?;
    Ok(root)
}

/// A directory this user owns, that is not a symbolic link, and that nobody else may enter.
fn check_private_dir(dir: &Path) -> Result<(), String> {
    let metadata = fs::symlink_metadata(dir)
        .map_err(|error| format!("cannot inspect `{}`: {error}", dir.display()))?;
    if !metadata.file_type().is_dir() {
        return Err(format!(
            "`{}` is not a directory (a symbolic link?); refusing it",
            dir.display()
        ));
    }
    let uid = nix::unistd::getuid().as_raw();
    if metadata.uid() != uid {
        return Err(format!(
            "`{}` is owned by uid {}, not by this user (uid {uid}); refusing it",
            dir.display(),
            metadata.uid()
        ));
    }
    if metadata.mode() & 0o077 != 0 {
        return Err(format!(
            "`{}` is open to other users (mode {:o}); refusing it",
            dir.display(),
            metadata.mode() & 0o777
        ));
    }
    Ok(())
}

/// The archive files of `package`: its own directory, its vendored `package.libs/`, and every
/// library of the archive that its shared objects need (directly or not) wherever it lies:
/// wheels vendor under the distribution's name (`scikit_learn.libs/` for `sklearn`), and the
/// extracted objects find those through their `$ORIGIN`-relative run paths, so they keep their
/// archive paths.
fn package_files<'a>(context: &'a ArchiveContext, package: &str) -> Vec<&'a str> {
    let own = format!("{package}/");
    let libs = format!("{package}.libs/");
    let index = context.archive.index();
    let mut files: std::collections::BTreeSet<&'a str> = index
        .names()
        .filter(|name| name.starts_with(&own) || name.starts_with(&libs))
        .collect();
    let needs = &context.archive.manifest().shared_libraries;
    let mut pending: Vec<&str> = files.iter().copied().collect();
    while let Some(name) = pending.pop() {
        for library in needs.get(name).into_iter().flatten() {
            if let Some(stored) = index.names().find(|stored| stored == library) {
                if files.insert(stored) {
                    pending.push(stored);
                }
            }
        }
    }
    files.into_iter().collect()
}

/// A hash naming this exact content: file names, sizes and SHA-256 of the contents' RECORD
/// identity (name and size are enough to find the file; the marker check guards the rest).
fn content_key(context: &ArchiveContext, files: &[&str]) -> String {
    let mut identity = String::new();
    for name in files {
        identity.push_str(name);
        identity.push('\0');
        identity.push_str(&context.archive.size(name).unwrap_or(0).to_string());
        identity.push('\0');
    }
    identity.push_str(&context.archive.manifest().build_id);
    pyferry_payload::seal::digest(identity.as_bytes())[..24].to_string()
}

/// Where a file goes: `x.pyc` next to `x.py` becomes `__pycache__/x.cpython-311.pyc`, which
/// CPython's loader accepts without re-checking (the bytecode is unchecked hash-based).
fn destination(root: &Path, name: &str) -> PathBuf {
    if let Some(stem_path) = name.strip_suffix(".pyc") {
        let path = Path::new(stem_path);
        let stem = path
            .file_name()
            .map(|stem| stem.to_string_lossy().into_owned())
            .unwrap_or_default();
        let parent = path.parent().map(Path::to_path_buf).unwrap_or_default();
        return root
            .join(parent)
            .join("__pycache__")
            .join(format!("{stem}.cpython-311.pyc"));
    }
    root.join(name)
}

/// Whether an archive name stays below the directory it is extracted into: plain components
/// only, no `..`, `.`, empty or absolute parts.
fn stays_inside(name: &str) -> bool {
    !name.starts_with('/')
        && name
            .split('/')
            .all(|part| !part.is_empty() && part != "." && part != "..")
}

fn write_package(
    context: &ArchiveContext,
    files: &[&str],
    directory: &Path,
    key: &str,
) -> Result<(), String> {
    let io =
        |path: &Path, error: std::io::Error| format!("cannot write `{}`: {error}", path.display());
    if let Some(name) = files.iter().find(|name| !stays_inside(name)) {
        return Err(format!(
            "entry `{}` would be written outside the cache; the application is damaged",
            name.escape_debug()
        ));
    }
    for name in files {
        let data = context
            .archive
            .read(name)
            .map_err(|error| error.to_string())?
            .ok_or_else(|| format!("`{name}` is missing from the application"))?;
        let path = destination(directory, name);
        if let Some(parent) = path.parent() {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(parent)
                .map_err(|error| io(parent, error))?;
        }
        let mode = if name.contains(".so") { 0o700 } else { 0o600 };
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&path)
            .map_err(|error| io(&path, error))?;
        file.write_all(&data).map_err(|error| io(&path, error))?;
    }
    let marker = directory.join(MARKER);
    fs::write(&marker, key).map_err(|error| io(&marker, error))?;
    Ok(())
}

/// Extracts `package` (once; later runs reuse it) and returns the directory holding it, to be
/// searched like a `sys.path` entry.
pub fn materialize(context: &ArchiveContext, package: &str) -> Result<PathBuf, String> {
    let files = package_files(context, package);
    let key = content_key(context, &files);
    let root = cache_root()?;
    let target = root.join(format!("{package}-{key}"));
    if fs::symlink_metadata(&target).is_ok() {
        check_private_dir(&target)?;
        let marker = fs::read_to_string(target.join(MARKER)).unwrap_or_default();
        if marker == key {
            tracing::debug!(package, path = %target.display(), "extracted package reused");
            return Ok(target);
        }
        return Err(format!(
            "`{}` exists but is incomplete or altered; remove it",
            target.display()
        ));
    }
    #[cfg(target_os = "linux")]
    if files.iter().any(|name| name.contains(".so"))
        && crate::native::memfd::mount_is_noexec(&root).unwrap_or(false)
    {
        return Err(format!(
            "`{}` is on a noexec mount, where its shared libraries cannot be loaded",
            root.display()
        ));
    }
    let temporary = root.join(format!(".{package}-{key}.{}.partial", std::process::id()));
    let _ = fs::remove_dir_all(&temporary);
    fs::DirBuilder::new()
        .mode(0o700)
        .create(&temporary)
        .map_err(|error| format!("cannot create `{}`: {error}", temporary.display()))?;
    if let Err(error) = write_package(context, &files, &temporary, &key) {
        let _ = fs::remove_dir_all(&temporary);
        return Err(error);
    }
    let _ = fs::set_permissions(&temporary, fs::Permissions::from_mode(0o700));
    match fs::rename(&temporary, &target) {
        Ok(()) => {
            tracing::debug!(package, path = %target.display(), files = files.len(), "package extracted");
            Ok(target)
        }
        Err(_) if target.join(MARKER).is_file() => {
            // Another process extracted it first.
            let _ = fs::remove_dir_all(&temporary);
            check_private_dir(&target)?;
            Ok(target)
        }
        Err(error) => {
            let _ = fs::remove_dir_all(&temporary);
            Err(format!(
                "cannot move the extracted package into `{}`: {error}",
                target.display()
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::stays_inside;

    #[test]
    fn traversal_names_never_leave_the_cache() {
        assert!(stays_inside("pkg/data/file.txt"));
        for name in [
            "pkg/../../etc/passwd",
            "pkg/./x",
            "/abs",
            "pkg//x",
            "pkg/..",
        ] {
            assert!(!stays_inside(name), "{name}");
        }
    }
}
