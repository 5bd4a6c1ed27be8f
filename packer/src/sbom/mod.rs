//! The software bill of materials every packed file carries: a CycloneDX 1.6 JSON document at
//! [`pyferry_payload::SBOM_PATH`], written by `pack` from what it packed, printed by `inspect
//! --sbom` (or converted to SPDX 2.3 there, `spdx.rs`). docs/sbom.md says what is recorded and
//! where each fact comes from.
//!
//! The document is made only of what the packer read: each distribution's core metadata
//! (`metadata.rs`), the wheel it was installed from (file name, SHA-256), its vendored
//! libraries (`*.libs/`, with their SHA-256), the SBOMs its wheel carries (`wheel_sboms.rs`),
//! its requirements evaluated for the target (`markers.rs`); for an executable, the launcher,
//! CPython's exact version (asked of the runtime) and what `runtime.json` says about the runtime
//! (`runtime_description.rs`). It holds no clock time and no path of the packing machine: the
//! same inputs give the same bytes. Its serial number is derived from its own contents.

pub mod cyclonedx;
pub mod markers;
pub mod metadata;
pub mod runtime_description;
pub mod spdx;
pub mod wheel_sboms;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use anyhow::Result;
use sha2::{Digest, Sha256};

use crate::tree::TreeFile;
use cyclonedx::{Bom, Component, Dependency, Metadata, Tools};
use runtime_description::{purl_encode, RuntimeDescription};

/// The `bom-ref` of the application, the document's subject.
pub const APPLICATION_REF: &str = "application";
/// The `bom-ref` of pyferry's launcher in an executable.
pub const LAUNCHER_REF: &str = "pyferry-launcher";

/// The wheel a distribution was installed from.
#[derive(Debug, Clone)]
pub struct WheelOrigin {
    pub file_name: String,
    pub sha256: String,
}

/// What the application is, as the manifest says it.
#[derive(Debug, Clone, Default)]
pub struct Application {
    pub name: String,
    /// `executable` or `pyz`.
    pub format: &'static str,
    pub entry_point: String,
    pub scripts: Vec<String>,
    /// `major.minor`.
    pub python_version: String,
    /// A pyz's tags: interpreter (`cp311`) and platform.
    pub tags: Option<pyferry_payload::Tags>,
    pub glibc_floor: Option<String>,
    /// The platform wheels were resolved for (`x86_64-manylinux_2_28`).
    pub platform: String,
}

/// What an executable's runtime holds.
#[derive(Debug, Clone)]
pub struct RuntimeFacts {
    /// The pyferry version that built the runtime (its launcher).
    pub pyferry_version: String,
    /// SHA-256 of the launcher bytes in front of the zip.
    pub launcher_sha256: String,
    /// CPython's version as the runtime reports it (`platform.python_version()`).
    pub python_version: String,
    /// `sys.version`.
    pub sys_version: String,
    /// The recipe's `runtime.json`, when the runtime has one.
    pub description: Option<RuntimeDescription>,
    /// System libraries the runtime copies into every executable (`.pyferry/libs/*`): archive
    /// path and SHA-256.
    pub libraries: Vec<(String, String)>,
}

/// Everything the document is made from.
pub struct Inputs<'a> {
    pub application: Application,
    /// The application's files (trees and installed distributions), by archive name.
    pub files: &'a [TreeFile],
    /// `*.dist-info` directory → the wheel it was installed from.
    pub wheels: &'a BTreeMap<String, WheelOrigin>,
    /// Normalized names of the distributions the user asked for.
    pub listed: &'a BTreeSet<String>,
    pub runtime: Option<RuntimeFacts>,
    pub environment: markers::Environment,
    /// `SOURCE_DATE_EPOCH`: the document's timestamp when set (none otherwise).
    pub epoch: Option<u64>,
}

/// A distribution found in the files.
struct Distribution {
    normalized: String,
    reference: String,
    metadata: metadata::CoreMetadata,
    component: Component,
}

/// `name` as a purl's pypi name: lower case, `_` as `-`.
fn pypi_purl(name: &str, version: &str) -> String {
    format!(
        "pkg:pypi/{}@{}",
        purl_encode(&name.to_ascii_lowercase().replace('_', "-")),
        purl_encode(version)
    )
}

/// `epoch` seconds as an RFC 3339 UTC time.
pub fn rfc3339(epoch: u64) -> String {
    let days = (epoch / 86_400) as i64;
    let seconds = epoch % 86_400;
    // Howard Hinnant's days-to-civil algorithm.
    let shifted = days + 719_468;
    let era = shifted.div_euclid(146_097);
    let day_of_era = shifted.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        seconds / 3600,
        seconds / 60 % 60,
        seconds % 60
    )
}

/// A name-based UUID (version 8, RFC 9562) from a SHA-256 of `bytes`.
pub fn content_uuid(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    let mut octets = [0u8; 16];
    octets.copy_from_slice(&digest[..16]);
    octets[6] = (octets[6] & 0x0f) | 0x80;
    octets[8] = (octets[8] & 0x3f) | 0x80;
    let hex: String = octets.iter().map(|byte| format!("{byte:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

/// The document as pretty JSON with a final newline.
pub fn to_bytes(bom: &Bom) -> Result<Vec<u8>> {
    let mut bytes = serde_json::to_vec_pretty(bom)?;
    bytes.push(b'\n');
    Ok(bytes)
}

/// Builds the document; warnings (a wheel's SBOM that cannot be merged) go to the log.
pub fn build(inputs: &Inputs<'_>) -> Result<Bom> {
    let paths: BTreeMap<&str, &PathBuf> = inputs
        .files
        .iter()
        .map(|file| (file.name.as_str(), &file.path))
        .collect();
    let mut distributions: Vec<Distribution> = Vec::new();
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (name, path) in &paths {
        let Some(dist_info) = name
            .strip_suffix("/METADATA")
            .filter(|dir| dir.ends_with(".dist-info") && !dir.contains('/'))
        else {
            continue;
        };
        // Core metadata is UTF-8; an older file in another encoding loses only the odd
        // character of a name or summary, never the pack.
        let text = String::from_utf8_lossy(&fs_err::read(path)?).into_owned();
        let mut core = metadata::parse(&text);
        let stem = dist_info.trim_end_matches(".dist-info");
        let (stem_name, stem_version) = stem.rsplit_once('-').unwrap_or((stem, ""));
        if core.name.is_empty() {
            core.name = stem_name.to_string();
        }
        if core.version.is_empty() {
            core.version = stem_version.to_string();
        }
        let reference = pypi_purl(&core.name, &core.version);
        let mut component = Component::new("library", core.name.clone());
        component.bom_ref = Some(reference.clone());
        component.version = Some(core.version.clone());
        component.description = core.summary.clone();
        component.purl = Some(reference.clone());
        let wheel = inputs.wheels.get(dist_info);
        if let Some(wheel) = wheel {
            component.sha256(wheel.sha256.clone());
            component.property("pyferry:wheel", wheel.file_name.clone());
        }
        if let Some(licence) = core.licence() {
            component.licenses = licence.to_cyclonedx();
            component.property("pyferry:license-source", licence.source());
        }
        component.property("pyferry:dist-info", dist_info);

        // The libraries its wheel vendors, as its RECORD lists them.
        let record = paths
            .get(format!("{dist_info}/RECORD").as_str())
            .map(fs_err::read)
            .transpose()?
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
            .unwrap_or_default();
        let mut vendored: BTreeSet<&str> = BTreeSet::new();
        for line in record.lines() {
            let file = line.split(',').next().unwrap_or_default();
            let in_libs = file
                .split_once('/')
                .is_some_and(|(top, _)| top.ends_with(".libs"));
            if in_libs && paths.contains_key(file) {
                vendored.insert(file);
            }
        }
        for file in vendored {
            let bytes = fs_err::read(paths[file])?;
            let base = file.rsplit('/').next().unwrap_or(file);
            let mut library = Component::new("library", base);
            library.bom_ref = Some(format!("{reference}#{file}"));
            library.sha256(hex(&Sha256::digest(&bytes)));
            library.property("pyferry:path", file);
            if let Some(wheel) = wheel {
                library.property("pyferry:wheel", wheel.file_name.clone());
            }
            component.components.push(library);
        }

        // The SBOMs its wheel carries (PEP 770).
        let sboms_dir = format!("{dist_info}/sboms/");
        for (file, path) in paths.range(sboms_dir.as_str()..) {
            let Some(file_name) = file.strip_prefix(&sboms_dir) else {
                break;
            };
            component.property("pyferry:sbom-file", *file);
            let bytes = fs_err::read(path)?;
            match wheel_sboms::merge(&reference, file_name, &bytes) {
                Ok(merged) => {
                    component.components.extend(merged.components);
                    for dependency in merged.dependencies {
                        graph
                            .entry(dependency.reference)
                            .or_default()
                            .extend(dependency.depends_on);
                    }
                }
                Err(error) => tracing::warn!(
                    "`{file}` is left in the archive but not merged into the SBOM: {error}"
                ),
            }
        }
        distributions.push(Distribution {
            normalized: crate::inputs::normalize(&core.name),
            reference,
            metadata: core,
            component,
        });
    }
    distributions.sort_by(|left, right| left.normalized.cmp(&right.normalized));

    // Requirements between installed distributions, for the target.
    let installed: BTreeMap<&str, &str> = distributions
        .iter()
        .map(|distribution| {
            (
                distribution.normalized.as_str(),
                distribution.reference.as_str(),
            )
        })
        .collect();
    let mut required: BTreeSet<String> = BTreeSet::new();
    for distribution in &distributions {
        let edges = graph.entry(distribution.reference.clone()).or_default();
        for requirement in &distribution.metadata.requires_dist {
            let Some((name, marker)) = metadata::requirement_parts(requirement) else {
                continue;
            };
            if marker.is_some_and(|marker| !inputs.environment.evaluate(marker)) {
                continue;
            }
            let normalized = crate::inputs::normalize(&name);
            if normalized == distribution.normalized {
                continue;
            }
            if let Some(target) = installed.get(normalized.as_str()) {
                edges.insert(target.to_string());
                required.insert(target.to_string());
            }
        }
    }

    // The application depends on what was asked for and on whatever nothing else requires.
    let mut application_needs: BTreeSet<String> = distributions
        .iter()
        .filter(|distribution| {
            inputs.listed.contains(&distribution.normalized)
                || !required.contains(&distribution.reference)
        })
        .map(|distribution| distribution.reference.clone())
        .collect();

    let mut application = Component::new("application", inputs.application.name.clone());
    application.bom_ref = Some(APPLICATION_REF.to_string());
    let facts = &inputs.application;
    application.property("pyferry:format", facts.format);
    if !facts.entry_point.is_empty() {
        application.property("pyferry:entry-point", facts.entry_point.clone());
    }
    for script in &facts.scripts {
        application.property("pyferry:script", script.clone());
    }
    application.property("pyferry:python-version", facts.python_version.clone());
    if let Some(tags) = &facts.tags {
        application.property("pyferry:interpreter-tag", tags.interpreter.clone());
        application.property("pyferry:platform-tag", tags.platform.clone());
    }
    if let Some(glibc) = &facts.glibc_floor {
        application.property("pyferry:glibc-floor", glibc.clone());
    }
    if !facts.platform.is_empty() {
        application.property("pyferry:wheels-for", facts.platform.clone());
    }

    let mut components: Vec<Component> = distributions
        .into_iter()
        .map(|distribution| distribution.component)
        .collect();
    if let Some(runtime) = &inputs.runtime {
        let mut launcher = Component::new("application", "pyferry-launcher");
        launcher.bom_ref = Some(LAUNCHER_REF.to_string());
        launcher.version = Some(runtime.pyferry_version.clone());
        launcher.description = Some(
            "pyferry's launcher: starts the built-in CPython and imports from the archive"
                .to_string(),
        );
        launcher.sha256(runtime.launcher_sha256.clone());
        launcher.property("pyferry:path", pyferry_payload::record::LAUNCHER);

        let mut cpython = match &runtime.description {
            Some(description) => description.cpython(),
            None => runtime_description::cpython_component(&runtime.python_version),
        };
        cpython.property("pyferry:sys.version", runtime.sys_version.clone());
        let cpython_ref = cpython.bom_ref.clone().unwrap_or_default();
        let mut libraries: Vec<Component> = runtime
            .description
            .as_ref()
            .map(RuntimeDescription::libraries)
            .unwrap_or_default();
        for (path, sha256) in &runtime.libraries {
            let base = path.rsplit('/').next().unwrap_or(path);
            let mut library = Component::new("library", base);
            library.bom_ref = Some(format!("runtime:{path}"));
            library.description = Some(
                "a system library the standard library's extension modules need, copied from the machine that built the runtime"
                    .to_string(),
            );
            library.sha256(sha256.clone());
            library.property("pyferry:path", path.clone());
            libraries.push(library);
        }
        graph
            .entry(LAUNCHER_REF.to_string())
            .or_default()
            .insert(cpython_ref.clone());
        graph.entry(cpython_ref.clone()).or_default().extend(
            libraries
                .iter()
                .filter_map(|library| library.bom_ref.clone()),
        );
        for library in &libraries {
            if let Some(reference) = &library.bom_ref {
                graph.entry(reference.clone()).or_default();
            }
        }
        application_needs.insert(LAUNCHER_REF.to_string());
        application_needs.insert(cpython_ref);
        components.push(launcher);
        components.push(cpython);
        components.extend(libraries);
    }
    graph.insert(APPLICATION_REF.to_string(), application_needs);

    let mut tool = Component::new("application", "pyferry");
    tool.version = Some(env!("CARGO_PKG_VERSION").to_string());
    let mut bom = Bom {
        schema: cyclonedx::SCHEMA.to_string(),
        bom_format: "CycloneDX".to_string(),
        spec_version: cyclonedx::SPEC_VERSION.to_string(),
        serial_number: None,
        version: 1,
        metadata: Metadata {
            timestamp: inputs.epoch.map(rfc3339),
            tools: Some(Tools {
                components: vec![tool],
            }),
            component: application,
            properties: Vec::new(),
        },
        components,
        dependencies: graph
            .into_iter()
            .map(|(reference, depends_on)| Dependency {
                reference,
                depends_on: depends_on.into_iter().collect(),
            })
            .collect(),
    };
    let unnumbered = to_bytes(&bom)?;
    bom.serial_number = Some(format!("urn:uuid:{}", content_uuid(&unnumbered)));
    Ok(bom)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// The SHA-256 of `bytes` as lower-case hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_from_source_date_epoch() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(315_532_800), "1980-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(rfc3339(951_868_800), "2000-03-01T00:00:00Z");
    }

    #[test]
    fn serial_numbers_are_uuids_of_the_contents() {
        let uuid = content_uuid(b"document");
        assert_eq!(uuid, content_uuid(b"document"));
        assert_ne!(uuid, content_uuid(b"another document"));
        assert_eq!(uuid.len(), 36);
        assert_eq!(&uuid[14..15], "8", "version 8");
        assert!("89ab".contains(&uuid[19..20]), "RFC 9562 variant");
    }

    #[test]
    fn pypi_purls_are_normalized_and_encoded() {
        assert_eq!(
            pypi_purl("Charset_Normalizer", "3.4.0"),
            "pkg:pypi/charset-normalizer@3.4.0"
        );
        assert_eq!(
            pypi_purl("jaraco.functools", "4.0.1+local"),
            "pkg:pypi/jaraco.functools@4.0.1%2Blocal"
        );
    }
}
