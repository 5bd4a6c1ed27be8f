//! The archive as the importer sees it: the parsed payload plus the path prefix that makes
//! virtual file names (`/path/myapp/pkg/mod.py`).

use pyferry_payload::Archive;

/// Shared, read-only state of the running application, leaked for the process lifetime.
pub struct ArchiveContext {
    pub archive: Archive<'static>,
    /// The executable's path: the root of every virtual path, and `sys.path[0]`.
    pub root: String,
    /// The executable's bytes (mapped) and an open descriptor on it, to copy entries in the
    /// kernel.
    pub image: &'static [u8],
    pub image_fd: std::os::fd::RawFd,
}

impl ArchiveContext {
    /// The virtual absolute path of archive path `relative` (`""` is the root).
    pub fn virtual_path(&self, relative: &str) -> String {
        if relative.is_empty() {
            self.root.clone()
        } else {
            format!("{}/{relative}", self.root)
        }
    }

    /// The archive path of a virtual absolute path, if it lies inside the executable.
    pub fn relative_path<'a>(&self, path: &'a str) -> Option<&'a str> {
        let rest = path.strip_prefix(self.root.as_str())?;
        if rest.is_empty() {
            return Some("");
        }
        let rest = rest.strip_prefix('/')?;
        Some(rest.trim_end_matches('/'))
    }
}
