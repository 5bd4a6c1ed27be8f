//! The Rust importer: finding modules in the archive's index and loading them, as `zipimport`
//! and `FileFinder` would, plus what Python asks of a loader besides code (resources, source
//! lines, data). Uses the native layer to load extension modules; the native layer never
//! uses it.
//!
//! - [`finder`] — the `sys.meta_path` finder and loader, the `sys.path_hooks` entry;
//! - [`modules`] — `FileFinder`'s search order over the entry index (pure Rust);
//! - [`bytecode`] — `.pyc` bytes to code objects (marshal C API);
//! - [`extension_loader`] — the loader of extension modules;
//! - [`resources`] — `importlib.resources` readers and traversables;
//! - [`linecache`] — source lines for callers that pass only a file name;
//! - [`extract`] — packages that need real files, written once into a private cache.

pub mod bytecode;
pub mod extension_loader;
pub mod extract;
pub mod finder;
pub mod linecache;
pub mod modules;
pub mod resources;
