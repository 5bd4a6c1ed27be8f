//! Native code from memory: shared objects of the archive copied into memory files, loaded with
//! the system's dynamic loader, their code then mapped from the executable. No Python objects
//! here (except `fd_extension`, FreeBSD's stand-in for `_imp.create_dynamic`); the importer
//! calls in, never the other way round.
//!
//! - [`shared_objects`] — the registry of objects in memory or loaded, dependencies first;
//! - [`load_order`] — in which order an object's libraries load, cycles as one step;
//! - [`dynamic_names`] — `DT_SONAME`, `DT_NEEDED` and where their strings lie;
//! - [`prefetch`] — copying a package's objects on a background thread ahead of its imports;
//! - [`memfd`] — memory files and their fallbacks;
//! - [`dynamic_loader`] — `dlopen`;
//! - [`page_sharing`] — read-only segments remapped from the executable;
//! - [`constructors`] — running the constructors hidden from `dlopen`;
//! - [`fd_extension`] — FreeBSD, an extension module created from a descriptor;
//! - [`limits`] — the open-file limit the memory files need.

#[cfg(target_os = "linux")]
pub mod constructors;
pub mod dynamic_loader;
pub mod dynamic_names;
#[cfg(target_os = "freebsd")]
pub mod fd_extension;
pub mod limits;
pub mod load_order;
pub mod memfd;
#[cfg(target_os = "linux")]
pub mod page_sharing;
pub mod prefetch;
pub mod shared_objects;
