//! Compiling Python sources to bytecode with the interpreter that will run them.
//!
//! The packer has no Python of its own and needs none on the host for CPython 3.11: it runs the
//! runtime, whose entry point is pyferry's build helper (`packer/python/_pyferry_build.py`), on a
//! job file. A pyz for another version is compiled by a `python3.X` of that version, running the
//! same helper as a script. The sources are split over one helper process per CPU.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use serde::Deserialize;

/// One source to compile.
#[derive(Debug, Clone)]
pub struct CompileItem {
    pub source: PathBuf,
    /// The archive name of the source (`pkg/mod.py`), used as the code's file name.
    pub name: String,
}

/// What compiling produced.
#[derive(Debug, Default)]
pub struct Compiled {
    /// Archive name of the source → contents of its `.pyc`.
    pub bytecode: BTreeMap<String, Vec<u8>>,
    /// Sources that did not compile (shipped as source only), with the reason.
    pub failures: Vec<(String, String)>,
}

#[derive(Deserialize)]
struct Report {
    name: String,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    fatal: Option<String>,
}

/// What compiles the bytecode.
#[derive(Debug, Clone)]
pub enum Compiler {
    /// A pyferry runtime (or the app-less stage-one runtime during `build-runtime`): its entry
    /// point is the build helper.
    Runtime(PathBuf),
    /// A Python interpreter, which runs the build helper as a script.
    Interpreter(PathBuf),
}

/// The build helper's source, written next to the job files for an interpreter to run.
const BUILD_HELPER: &str = include_str!("../python/_pyferry_build.py");

/// Compiles `items` with `compiler`.
pub fn compile(compiler: &Compiler, items: &[CompileItem]) -> Result<Compiled> {
    if items.is_empty() {
        return Ok(Compiled::default());
    }
    let work = tempfile::Builder::new()
        .prefix("pyferry-compile-")
        .tempdir()
        .context("cannot create a temporary directory")?;
    if let Compiler::Interpreter(_) = compiler {
        fs_err::write(work.path().join("_pyferry_build.py"), BUILD_HELPER)?;
    }
    let workers = std::thread::available_parallelism()
        .map_or(2, |count| count.get())
        .min(items.len());
    let chunk_size = items.len().div_ceil(workers);
    let chunks: Vec<&[CompileItem]> = items.chunks(chunk_size).collect();
    let results: Vec<Result<Compiled>> = std::thread::scope(|scope| {
        let handles: Vec<_> = chunks
            .iter()
            .enumerate()
            .map(|(worker, chunk)| {
                let work = work.path();
                scope.spawn(move || compile_chunk(compiler, work, worker, chunk))
            })
            .collect();
        handles
            .into_iter()
            .map(|handle| {
                handle
                    .join()
                    .unwrap_or_else(|_| bail!("a compile worker panicked"))
            })
            .collect()
    });
    let mut compiled = Compiled::default();
    for result in results {
        let part = result?;
        compiled.bytecode.extend(part.bytecode);
        compiled.failures.extend(part.failures);
    }
    compiled.failures.sort();
    Ok(compiled)
}

fn compile_chunk(
    compiler: &Compiler,
    work: &Path,
    worker: usize,
    items: &[CompileItem],
) -> Result<Compiled> {
    let job: Vec<(String, String, String)> = items
        .iter()
        .enumerate()
        .map(|(position, item)| {
            (
                item.source.to_string_lossy().into_owned(),
                item.name.clone(),
                work.join(format!("{worker}-{position}.pyc"))
                    .to_string_lossy()
                    .into_owned(),
            )
        })
        .collect();
    let job_path = work.join(format!("job-{worker}.json"));
    fs_err::write(&job_path, serde_json::to_vec(&job)?)?;
    let (program, description) = match compiler {
        Compiler::Runtime(path) => (path, "the pyferry runtime"),
        Compiler::Interpreter(path) => (path, "the Python"),
    };
    let mut command = Command::new(program);
    if let Compiler::Interpreter(_) = compiler {
        command
            .args(["-I", "-S"])
            .arg(work.join("_pyferry_build.py"));
    }
    let output = command
        .arg("compile")
        .arg(&job_path)
        .env_remove("PYFERRY_LOG")
        .output()
        .with_context(|| format!("cannot run {description} `{}`", program.display()))?;
    let mut compiled = Compiled::default();
    let mut failed = std::collections::BTreeSet::new();
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let Ok(report) = serde_json::from_str::<Report>(line) else {
            continue;
        };
        if let Some(fatal) = report.fatal {
            bail!("cannot compile `{}`: {fatal}", report.name);
        }
        if let Some(error) = report.error {
            failed.insert(report.name.clone());
            compiled.failures.push((report.name, error));
        }
    }
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        bail!(
            "{description} `{}` failed while compiling bytecode ({}): {}",
            program.display(),
            output.status,
            stderr.trim().lines().last().unwrap_or("no message")
        );
    }
    for (item, (_, _, pyc_path)) in items.iter().zip(&job) {
        if failed.contains(&item.name) {
            continue;
        }
        let bytecode =
            fs_err::read(pyc_path).context("the build helper did not write its output")?;
        compiled.bytecode.insert(item.name.clone(), bytecode);
    }
    Ok(compiled)
}
