//! `PYFERRY_INFO=1 ./myapp`: what the launcher knows about itself and this host, printed
//! without starting Python. The first thing to paste into a bug report.

use std::ffi::OsString;

use crate::executable::context::ArchiveContext;
use crate::native::memfd;

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
    println!(
        "CA certificates:  {}",
        crate::interpreter::certificates::find()
    );
    if let Some(setting) = shmem_huge_pages() {
        println!("memory-file huge pages: {setting}");
    }
}

/// The host's huge-page policy for memory files (`memfd`), with what it means for start-up:
/// filling memory files page by page is where an app with large native libraries loses time
/// against a venv (docs/benchmarks.md measured numpy at 1.21× with `never`, 1.07× with
/// `within_size`). Linux only; `None` when the file is absent.
fn shmem_huge_pages() -> Option<String> {
    let text = std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/shmem_enabled").ok()?;
    let setting = text
        .split_whitespace()
        .find_map(|word| word.strip_prefix('[')?.strip_suffix(']'))?
        .to_string();
    Some(match setting.as_str() {
        "within_size" | "always" | "force" => format!("{setting} (large libraries load faster)"),
        _ => format!(
            "{setting} (an operator can set `within_size` in \
             /sys/kernel/mm/transparent_hugepage/shmem_enabled: large native libraries then load \
             several times faster)"
        ),
    })
}
