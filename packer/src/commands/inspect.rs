//! `pyferry inspect FILE`: what a packed application holds, for people (`--json` for scripts,
//! `--sbom` for vulnerability scanners).

use std::path::Path;

use anyhow::{bail, Context, Result};
use pyferry_payload::{Archive, EntryKind, PayloadKind, SBOM_PATH};
use serde::Serialize;

use crate::cli::{InspectArgs, SbomFormat};

/// One distribution installed in the application.
#[derive(Debug, Serialize)]
struct Distribution {
    name: String,
    version: String,
    /// Bytes of its files, with their compiled bytecode.
    size: u64,
    extension_modules: usize,
    vendored_libraries: Vec<String>,
}

#[derive(Debug, Serialize)]
struct Report {
    file: String,
    size: u64,
    /// `executable`, `pyz` or `runtime`.
    kind: String,
    pyferry_version: String,
    format_version: u32,
    python_version: String,
    /// The exact CPython built into an executable's launcher, from its runtime's build record
    /// (`.pyferry/runtime.json`; absent in a pyz and in files packed before it was recorded).
    #[serde(skip_serializing_if = "Option::is_none")]
    cpython: Option<String>,
    build_id: String,
    /// A pyz's tags: the interpreter and the platform it needs.
    #[serde(skip_serializing_if = "Option::is_none")]
    tags: Option<pyferry_payload::Tags>,
    /// The platform wheels were resolved for, as uv names it (empty for files packed before it
    /// was recorded).
    platform: String,
    /// The oldest glibc the file runs on, and what needs it.
    glibc_floor: Option<String>,
    glibc_floor_set_by: Option<String>,
    entry_point: String,
    scripts: std::collections::BTreeMap<String, String>,
    entries: usize,
    /// The archive entry holding the file's SBOM (`None` for files packed before SBOMs).
    sbom: Option<String>,
    distributions: Vec<Distribution>,
}

/// Opens `path` as a pyferry application, with a one-line error otherwise.
pub fn open(path: &Path) -> Result<Vec<u8>> {
    fs_err::read(path).context("cannot read the application")
}

pub fn parse<'a>(path: &Path, bytes: &'a [u8]) -> Result<Archive<'a>> {
    Archive::parse(bytes)
        .with_context(|| format!("`{}` is not a pyferry application", path.display()))
}

/// What the file is: `executable`, `pyz` or `runtime`.
fn kind(manifest: &pyferry_payload::Manifest) -> &'static str {
    match manifest.kind {
        PayloadKind::App => "executable",
        PayloadKind::Pyz => "pyz",
        PayloadKind::Runtime => "runtime",
    }
}

fn distributions(archive: &Archive<'_>) -> Vec<Distribution> {
    let index = archive.index();
    let mut found = Vec::new();
    for (dir, kind) in index.children("") {
        let Some(stem) = dir.strip_suffix(".dist-info") else {
            continue;
        };
        if kind != EntryKind::Directory {
            continue;
        }
        let (name, version) = stem.rsplit_once('-').unwrap_or((stem, ""));
        let record = archive
            .read(&format!("{dir}/RECORD"))
            .ok()
            .flatten()
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
            .unwrap_or_default();
        let files: Vec<&str> = record
            .lines()
            .filter_map(|line| line.split(',').next())
            .filter(|name| !name.is_empty())
            .collect();
        let size = files
            .iter()
            .map(|file| {
                archive.size(file).unwrap_or(0) + archive.size(&format!("{file}c")).unwrap_or(0)
            })
            .sum();
        let extension_modules = files
            .iter()
            .filter(|file| file.ends_with(".so") && !file.contains(".libs/"))
            .count();
        let vendored_libraries = files
            .iter()
            .filter(|file| file.contains(".libs/"))
            .map(|file| file.to_string())
            .collect();
        found.push(Distribution {
            name: name.to_string(),
            version: version.to_string(),
            size,
            extension_modules,
            vendored_libraries,
        });
    }
    found
}

/// The SBOM `archive` carries, in `format`: the recorded CycloneDX bytes, or SPDX converted
/// from them.
/// "CPython 3.11.2, built from Debian's python3.11 3.11.2-6+deb12u8" from the build record the
/// runtime carries, if the file has one.
fn built_in_cpython(archive: &Archive<'_>) -> Option<String> {
    use crate::sbom::runtime_description;
    let record = archive.read(runtime_description::ARCHIVE_PATH).ok()??;
    let cpython = runtime_description::parse(&String::from_utf8_lossy(&record))
        .ok()?
        .cpython;
    let version = &cpython.version;
    Some(match (&cpython.debian_package, &cpython.debian_version) {
        (Some(package), Some(debian)) => {
            format!("CPython {version} built in, from Debian's {package} {debian}")
        }
        _ => format!("CPython {version} built in"),
    })
}

pub fn sbom(path: &Path, archive: &Archive<'_>, format: SbomFormat) -> Result<Vec<u8>> {
    let manifest = archive.manifest();
    let Some(recorded) = archive
        .read(SBOM_PATH)
        .with_context(|| format!("`{}`: cannot read `{SBOM_PATH}`", path.display()))?
    else {
        if manifest.kind == PayloadKind::Runtime {
            bail!(
                "`{}` is the pyferry runtime, which carries no SBOM; every file `pyferry pack` writes does",
                path.display()
            );
        }
        bail!(
            "`{}` carries no SBOM: it was packed by pyferry {}, before SBOMs were recorded; hint: pack it again",
            path.display(),
            manifest.pyferry_version
        );
    };
    match format {
        SbomFormat::Cyclonedx => Ok(recorded.into_owned()),
        SbomFormat::Spdx => {
            let bom: crate::sbom::cyclonedx::Bom =
                serde_json::from_slice(&recorded).with_context(|| {
                    format!(
                        "`{}`: `{SBOM_PATH}` is not a CycloneDX document pyferry can read",
                        path.display()
                    )
                })?;
            crate::sbom::spdx::convert(&bom)
        }
    }
}

pub fn inspect(args: &InspectArgs) -> Result<()> {
    let bytes = open(&args.file)?;
    let archive = parse(&args.file, &bytes)?;
    if args.sbom {
        let document = sbom(&args.file, &archive, args.format)?;
        std::io::Write::write_all(&mut std::io::stdout().lock(), &document)
            .context("cannot write the SBOM to standard output")?;
        return Ok(());
    }
    let manifest = archive.manifest();
    let report = Report {
        file: args.file.display().to_string(),
        size: bytes.len() as u64,
        kind: kind(manifest).to_string(),
        pyferry_version: manifest.pyferry_version.clone(),
        format_version: manifest.format_version,
        python_version: manifest.python_version.clone(),
        cpython: built_in_cpython(&archive),
        build_id: manifest.build_id.clone(),
        tags: manifest.tags.clone(),
        platform: manifest
            .glibc_floor
            .as_ref()
            .map(|floor| floor.requested.clone())
            .unwrap_or_default(),
        glibc_floor: manifest
            .glibc_floor
            .as_ref()
            .map(|floor| floor.glibc.clone()),
        glibc_floor_set_by: manifest
            .glibc_floor
            .as_ref()
            .map(|floor| floor.set_by.clone()),
        entry_point: manifest.entry_point.to_string(),
        scripts: manifest
            .scripts
            .iter()
            .map(|(name, entry)| (name.clone(), entry.to_string()))
            .collect(),
        entries: archive.index().len(),
        sbom: archive
            .index()
            .position(SBOM_PATH)
            .map(|_| SBOM_PATH.to_string()),
        distributions: distributions(&archive),
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    println!(
        "file:          {} ({}, {:.1} MB, {} entries)",
        report.file,
        report.kind,
        report.size as f64 / 1e6,
        report.entries
    );
    println!(
        "pyferry:       {} (payload format {})",
        report.pyferry_version, report.format_version
    );
    match &report.cpython {
        Some(cpython) => println!("python:        {} ({cpython})", report.python_version),
        None => println!("python:        {}", report.python_version),
    }
    println!("build id:      {}", report.build_id);
    // An executable is x86_64 (the only runtime built); a pyz's architecture is its tag's.
    let architecture = match &report.tags {
        Some(tags) => tags
            .platform
            .rsplit_once("_2_")
            .and_then(|(_, rest)| rest.split_once('_'))
            .map_or("", |(_, architecture)| architecture),
        None => "x86_64",
    };
    if let Some(tags) = &report.tags {
        println!(
            "run by:        the host's python{} ({})",
            report.python_version, tags.interpreter
        );
    }
    match (&report.glibc_floor, &report.glibc_floor_set_by) {
        (Some(glibc), Some(set_by)) => println!(
            "runs on:       Linux {architecture} with glibc {glibc} or newer (set by {set_by})"
        ),
        _ if report.tags.is_some() => println!("runs on:       any platform (no native code)"),
        _ => println!("runs on:       Linux x86_64 (glibc floor not recorded)"),
    }
    if !report.platform.is_empty() {
        println!("wheels for:    {}", report.platform);
    }
    if let Some(tags) = &report.tags {
        println!("tags:          {}", tags.joined());
    }
    println!(
        "entry point:   {}",
        if report.entry_point.is_empty() {
            "(by script name)"
        } else {
            &report.entry_point
        }
    );
    for (name, entry) in &report.scripts {
        println!("script:        {name} -> {entry}");
    }
    match &report.sbom {
        Some(path) => println!(
            "sbom:          CycloneDX 1.6 in {path} (`pyferry inspect --sbom {}`)",
            report.file
        ),
        None if manifest.kind != PayloadKind::Runtime => {
            println!("sbom:          none (packed before SBOMs were recorded)")
        }
        None => {}
    }
    if report.distributions.is_empty() {
        println!("distributions: none");
        return Ok(());
    }
    println!("distributions:");
    println!(
        "  {:<28} {:<14} {:>10} {:>10}  vendored libraries",
        "name", "version", "size", "extensions"
    );
    for distribution in &report.distributions {
        println!(
            "  {:<28} {:<14} {:>9.1}M {:>10}  {}",
            distribution.name,
            distribution.version,
            distribution.size as f64 / 1e6,
            distribution.extension_modules,
            distribution
                .vendored_libraries
                .iter()
                .map(|library| library.rsplit('/').next().unwrap_or(library))
                .collect::<Vec<_>>()
                .join(" ")
        );
    }
    Ok(())
}
