//! Starting and running CPython: which mode a start is (the application or python's command
//! line), its configuration and start-up phases, running the entry point and turning how it
//! ended into an exit status. Uses the importer (the runner finds the entry module through it),
//! never the other way round.
//!
//! - [`certificates`] — where the embedded OpenSSL finds the host's CA certificates;
//! - [`command_line`] — the application, or the embedded interpreter with python's command line;
//! - [`lifecycle`] — `PyPreConfig`/`PyConfig`, the start-up phases, finalization (C API);
//! - [`lineage`] — which runs of the same application a start descends from: the marker for
//!   python children and the count that stops endless self-re-runs;
//! - [`runner`] — the entry point, `SystemExit` and exit statuses, the excepthook.

pub mod certificates;
pub mod command_line;
pub mod lifecycle;
pub mod lineage;
pub mod runner;

pub use lifecycle::{
    exit_by_sigint, finalize, initialize, initialize_main, pre_initialize, run_main, with_python,
    InitError, InterpreterSettings,
};
