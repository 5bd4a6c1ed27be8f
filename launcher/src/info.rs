//! `PYFERRY_INFO=1 ./myapp`: what the launcher knows about itself and this host, printed
//! without starting Python. The first thing to paste into a bug report.

use std::ffi::OsString;

use crate::context::ArchiveContext;
use crate::memfd;

/// Prints the report on stdout.
pub fn print(context: &ArchiveContext, argv: &[OsString]) {
    let manifest = context.archive.manifest();
    println!("pyferry launcher {}", env!("CARGO_PKG_VERSION"));
    println!("application:      {}", context.root);
    println!(
        "packed by:        pyferry {} (payload format {})",
        manifest.pyferry_version, manifest.format_version
    );
    println!(
        "python:           {} (embedded CPython {})",
        manifest.python_version,
        crate::PYTHON_VERSION
    );
    println!("build id:         {}", manifest.build_id);
    println!(
        "entry point:      {}",
        if manifest.entry_point.module.is_empty() {
            "(by script name)".to_string()
        } else {
            manifest.entry_point.to_string()
        }
    );
    for (name, entry) in &manifest.scripts {
        println!("script:           {name} -> {entry}");
    }
    println!(
        "started as:       {:?}",
        argv.first()
            .map(|name| name.to_string_lossy())
            .unwrap_or_default()
    );
    println!("entries:          {}", context.archive.index().len());
    println!("loading shared objects on this host (first that works is used):");
    for (way, result) in memfd::probe() {
        println!("  {way:<40} {result}");
    }
}
