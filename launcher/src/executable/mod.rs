//! The running executable and the application appended to it: the bottom layer, which every
//! other folder may use and which uses none of them.
//!
//! - [`image`] — the executable's own file, found through `/proc/self/exe` and mapped read-only;
//! - [`context`] — the parsed archive with the executable's path as the prefix of every virtual
//!   path (`/opt/myapp/pkg/mod.py`).

pub mod context;
pub mod image;
