//! `runtime.json`: what the portable runtime's recipe (runtime/build) says it built: CPython's
//! version and sources, and each C library with its version, licence and source. Only the
//! fields the SBOM uses are read; the file has many more.

use std::path::Path;

use anyhow::{Context, Result};
use serde::Deserialize;

use super::cyclonedx::{Component, Issue, LicenseChoice, Patch, Pedigree};

/// The file's name in the runtime's directory.
pub const FILE_NAME: &str = "runtime.json";

/// Where the runtime (`pyferry build-runtime --runtime-info`) and every executable packed from
/// it carry the file.
pub const ARCHIVE_PATH: &str = ".pyferry/runtime.json";

#[derive(Debug, Clone, Deserialize)]
pub struct RuntimeDescription {
    pub cpython: CpythonDescription,
    #[serde(default)]
    pub libraries: Vec<LibraryDescription>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct CpythonDescription {
    pub version: String,
    #[serde(default)]
    pub spdx: Option<String>,
    #[serde(default)]
    pub debian_package: Option<String>,
    #[serde(default)]
    pub debian_version: Option<String>,
    #[serde(default)]
    pub files: Vec<SourceFile>,
    #[serde(default)]
    pub debian_patches_applied: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct SourceFile {
    pub name: String,
    pub sha256: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct LibraryDescription {
    pub name: String,
    pub version: String,
    #[serde(default)]
    pub spdx: Option<String>,
    #[serde(default)]
    pub source: Option<LibrarySource>,
}

/// Where a library's source came from.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum LibrarySource {
    /// A crate that vendors the library's source (`openssl-src`).
    Crate {
        #[serde(rename = "crate")]
        name: String,
        version: String,
        #[serde(default)]
        sha256: Option<String>,
    },
    /// A Debian source package, built with or without Debian's patches.
    DebianSource {
        package: String,
        version: String,
        #[serde(default)]
        files: Vec<SourceFile>,
        #[serde(default)]
        debian_patches_applied: bool,
    },
    /// A Debian binary package, used as built (libgcc).
    DebianBinary {
        package: String,
        version: String,
        #[serde(default)]
        sha256: Option<String>,
    },
    #[serde(other)]
    Other,
}

/// Reads `path`; the error names the file and the cause.
pub fn read(path: &Path) -> Result<RuntimeDescription> {
    let text = fs_err::read_to_string(path)?;
    parse(&text).with_context(|| format!("`{}` is not a runtime description", path.display()))
}

pub fn parse(text: &str) -> Result<RuntimeDescription> {
    Ok(serde_json::from_str(text)?)
}

/// CPEs of the libraries the National Vulnerability Database names, for scanners that match
/// C libraries by CPE rather than purl: name → `vendor:product`.
const CPE_PRODUCTS: &[(&str, &str)] = &[
    ("openssl", "openssl:openssl"),
    ("sqlite", "sqlite:sqlite"),
    ("zlib", "zlib:zlib"),
    ("xz", "tukaani:xz"),
    ("bzip2", "bzip:bzip2"),
    ("expat", "libexpat_project:libexpat"),
    ("libffi", "libffi_project:libffi"),
    ("ncurses", "gnu:ncurses"),
];

fn cpe(product: &str, version: &str) -> String {
    format!("cpe:2.3:a:{product}:{version}:*:*:*:*:*:*:*")
}

/// `text` percent-encoded for a purl's name or version: everything but letters, digits and
/// `.-_~` (so a version's `+` is `%2B`).
pub fn purl_encode(text: &str) -> String {
    let mut encoded = String::new();
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'.' | b'-' | b'_' | b'~') {
            encoded.push(byte as char);
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

fn expression(spdx: &Option<String>) -> Vec<LicenseChoice> {
    spdx.iter()
        .map(|expression| LicenseChoice::Expression {
            expression: expression.clone(),
            acknowledgement: Some("concluded".to_string()),
        })
        .collect()
}

/// A source file as a component of kind `file` with its SHA-256.
fn source_file(file: &SourceFile) -> Component {
    let mut component = Component::new("file", file.name.clone());
    component.sha256(file.sha256.to_ascii_lowercase());
    component
}

/// A Debian source package as a component (`pkg:deb/debian/NAME@VERSION?arch=source`) holding
/// its files.
fn debian_source(package: &str, version: &str, files: &[SourceFile]) -> Component {
    let mut component = Component::new("library", package);
    component.version = Some(version.to_string());
    component.purl = Some(format!(
        "pkg:deb/debian/{}@{}?arch=source",
        purl_encode(package),
        purl_encode(version)
    ));
    component.components = files.iter().map(source_file).collect();
    component
}

impl RuntimeDescription {
    /// The CPython component: its version, licence, CPE, and the Debian source it was built
    /// from with the patches applied.
    pub fn cpython(&self) -> Component {
        let cpython = &self.cpython;
        let mut component = cpython_component(&cpython.version);
        component.licenses = expression(&cpython.spdx);
        let mut pedigree = Pedigree::default();
        if let (Some(package), Some(version)) = (&cpython.debian_package, &cpython.debian_version) {
            pedigree
                .ancestors
                .push(debian_source(package, version, &cpython.files));
        } else {
            component.components = cpython.files.iter().map(source_file).collect();
        }
        pedigree.patches = cpython
            .debian_patches_applied
            .iter()
            .map(|patch| {
                let stem = patch.trim_end_matches(".patch").trim_end_matches(".diff");
                // A patch named for a CVE fixes that CVE (`CVE-2024-0450.patch`,
                // `CVE-2025-4516-1.patch`).
                let cve = stem
                    .strip_prefix("CVE-")
                    .map(|rest| {
                        let mut parts = rest.split('-');
                        format!(
                            "CVE-{}-{}",
                            parts.next().unwrap_or_default(),
                            parts.next().unwrap_or_default()
                        )
                    })
                    .filter(|id| id.len() > "CVE-0000-".len());
                Patch {
                    kind: "backport".to_string(),
                    resolves: vec![match cve {
                        Some(id) => Issue {
                            kind: "security".to_string(),
                            id: Some(id),
                            name: Some(patch.clone()),
                        },
                        None => Issue {
                            kind: "defect".to_string(),
                            id: None,
                            name: Some(patch.clone()),
                        },
                    }],
                }
            })
            .collect();
        if !pedigree.patches.is_empty() {
            pedigree.notes = Some(format!(
                "built from Debian's source package with Debian's patches applied, in series order ({} patches)",
                pedigree.patches.len()
            ));
        }
        if pedigree != Pedigree::default() {
            component.pedigree = Some(pedigree);
        }
        component
    }

    /// One component per C library built into the runtime.
    pub fn libraries(&self) -> Vec<Component> {
        self.libraries.iter().map(library_component).collect()
    }
}

/// CPython `version` as a component: `pkg:generic/cpython`, and the CPE under which the NVD
/// lists CPython's vulnerabilities.
pub fn cpython_component(version: &str) -> Component {
    let mut component = Component::new("platform", "cpython");
    component.bom_ref = Some(format!("pkg:generic/cpython@{}", purl_encode(version)));
    component.version = Some(version.to_string());
    component.description =
        Some("CPython, the Python interpreter, built into the executable".to_string());
    component.purl = component.bom_ref.clone();
    component.cpe = Some(cpe("python:python", version));
    component
}

fn library_component(library: &LibraryDescription) -> Component {
    let mut component = Component::new("library", library.name.clone());
    let purl = format!(
        "pkg:generic/{}@{}",
        purl_encode(&library.name),
        purl_encode(&library.version)
    );
    component.bom_ref = Some(purl.clone());
    component.version = Some(library.version.clone());
    component.purl = Some(purl);
    component.licenses = expression(&library.spdx);
    if let Some((_, product)) = CPE_PRODUCTS.iter().find(|(name, _)| *name == library.name) {
        component.cpe = Some(cpe(product, &library.version));
    }
    let ancestor = match &library.source {
        Some(LibrarySource::Crate {
            name,
            version,
            sha256,
        }) => {
            let mut source = Component::new("library", name.clone());
            source.version = Some(version.clone());
            source.purl = Some(format!(
                "pkg:cargo/{}@{}",
                purl_encode(name),
                purl_encode(version)
            ));
            if let Some(sha256) = sha256 {
                source.sha256(sha256.to_ascii_lowercase());
            }
            source.property("pyferry:source", "the crate's copy of the library's source");
            Some(source)
        }
        Some(LibrarySource::DebianSource {
            package,
            version,
            files,
            debian_patches_applied,
        }) => {
            let mut source = debian_source(package, version, files);
            source.property(
                "pyferry:debian-patches-applied",
                debian_patches_applied.to_string(),
            );
            Some(source)
        }
        Some(LibrarySource::DebianBinary {
            package,
            version,
            sha256,
        }) => {
            let mut source = Component::new("library", package.clone());
            source.version = Some(version.clone());
            source.purl = Some(format!(
                "pkg:deb/debian/{}@{}?arch=amd64",
                purl_encode(package),
                purl_encode(version)
            ));
            if let Some(sha256) = sha256 {
                source.sha256(sha256.to_ascii_lowercase());
            }
            Some(source)
        }
        Some(LibrarySource::Other) | None => None,
    };
    if let Some(ancestor) = ancestor {
        component.pedigree = Some(Pedigree {
            ancestors: vec![ancestor],
            ..Pedigree::default()
        });
    }
    component
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The runtime.json of a real build of the portable runtime (runtime/build, recipe
    /// 314c2011a596a95b), as it was written.
    const RUNTIME_JSON: &str = include_str!("../../tests/fixtures/runtime.json");

    #[test]
    fn a_real_runtime_description() {
        let description = parse(RUNTIME_JSON).expect("parses");
        let cpython = description.cpython();
        assert_eq!(cpython.version.as_deref(), Some("3.11.2"));
        assert_eq!(cpython.purl.as_deref(), Some("pkg:generic/cpython@3.11.2"));
        assert_eq!(
            cpython.cpe.as_deref(),
            Some("cpe:2.3:a:python:python:3.11.2:*:*:*:*:*:*:*")
        );
        let pedigree = cpython.pedigree.as_ref().expect("pedigree");
        assert_eq!(
            pedigree.ancestors[0].purl.as_deref(),
            Some("pkg:deb/debian/python3.11@3.11.2-6%2Bdeb12u8?arch=source")
        );
        assert_eq!(pedigree.ancestors[0].components.len(), 2);
        assert_eq!(pedigree.patches.len(), 47);
        let cve = pedigree
            .patches
            .iter()
            .flat_map(|patch| &patch.resolves)
            .find(|issue| issue.name.as_deref() == Some("CVE-2025-4516-1.patch"))
            .expect("a CVE patch");
        assert_eq!(
            (cve.kind.as_str(), cve.id.as_deref()),
            ("security", Some("CVE-2025-4516"))
        );

        let libraries = description.libraries();
        let names: Vec<&str> = libraries
            .iter()
            .map(|library| library.name.as_str())
            .collect();
        assert_eq!(
            names,
            [
                "openssl", "sqlite", "xz", "bzip2", "zlib", "libffi", "expat", "libuuid",
                "ncurses", "libedit", "libgcc"
            ]
        );
        let openssl = &libraries[0];
        assert_eq!(openssl.purl.as_deref(), Some("pkg:generic/openssl@3.6.3"));
        assert_eq!(
            openssl.cpe.as_deref(),
            Some("cpe:2.3:a:openssl:openssl:3.6.3:*:*:*:*:*:*:*")
        );
        let source = &openssl.pedigree.as_ref().expect("pedigree").ancestors[0];
        assert_eq!(
            source.purl.as_deref(),
            Some("pkg:cargo/openssl-src@300.6.1%2B3.6.3")
        );
        assert_eq!(
            source.hashes[0].content,
            "46eb8fb9fb3b61ce1c0f8a026c4c1a0714d3a9e138e7fbde78753ce2babc3846"
        );
        let libgcc = &libraries[10];
        assert_eq!(
            libgcc.licenses,
            vec![LicenseChoice::Expression {
                expression: "GPL-3.0-or-later WITH GCC-exception-3.1".into(),
                acknowledgement: Some("concluded".into())
            }]
        );
        assert_eq!(
            libgcc.pedigree.as_ref().expect("pedigree").ancestors[0]
                .purl
                .as_deref(),
            Some("pkg:deb/debian/libgcc-12-dev@12.2.0-14%2Bdeb12u1?arch=amd64")
        );
    }

    #[test]
    fn damaged_descriptions_are_errors() {
        assert!(parse("{}").is_err());
        assert!(parse("{\"cpython\": {}}").is_err());
        let unknown_source = parse(
            "{\"cpython\": {\"version\": \"3.11.9\"}, \"libraries\": [{\"name\": \"x\", \"version\": \"1\", \"source\": {\"kind\": \"tarball\"}}]}",
        )
        .expect("an unknown source kind is accepted");
        assert!(unknown_source.libraries()[0].pedigree.is_none());
    }
}
