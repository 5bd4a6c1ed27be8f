//! SPDX 2.3 (JSON) from the CycloneDX document a file carries, for `pyferry inspect --sbom
//! --format spdx` and `pack --sbom FILE.spdx.json`: the same facts, converted, so both formats
//! always agree.
//!
//! Every component (nested ones too, and the sources named in a pedigree) becomes a package;
//! nesting becomes `CONTAINS`, `dependencies` become `DEPENDS_ON`, a pedigree's ancestors
//! `GENERATED_FROM`. SPDX requires a creation time: the CycloneDX timestamp when there is one
//! (`SOURCE_DATE_EPOCH`), else 1980-01-01, the time every archive entry carries. A licence
//! that is not an SPDX expression (or refers to a `LicenseRef-` this document does not define)
//! becomes `NOASSERTION`, with its names in `licenseComments`.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::cyclonedx::{Bom, Component, LicenseChoice};

/// The creation time when the CycloneDX document has none: the zip entries' 1980-01-01.
const DEFAULT_CREATED: &str = "1980-01-01T00:00:00Z";

struct Converter {
    packages: Vec<Value>,
    relationships: Vec<(String, &'static str, String)>,
    /// CycloneDX `bom-ref` → SPDX identifier.
    identifiers: BTreeMap<String, String>,
}

/// An SPDX identifier: `SPDXRef-` and letters, digits, `.` and `-`.
fn identifier(position: usize, name: &str) -> String {
    let cleaned: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    format!("SPDXRef-{position}-{cleaned}")
}

fn purpose(kind: &str) -> &'static str {
    match kind {
        "application" => "APPLICATION",
        "framework" => "FRAMEWORK",
        "library" => "LIBRARY",
        "container" => "CONTAINER",
        "operating-system" => "OPERATING-SYSTEM",
        "device" => "DEVICE",
        "firmware" => "FIRMWARE",
        "file" => "FILE",
        _ => "OTHER",
    }
}

fn algorithm(alg: &str) -> Option<&'static str> {
    Some(match alg {
        "MD5" => "MD5",
        "SHA-1" => "SHA1",
        "SHA-256" => "SHA256",
        "SHA-384" => "SHA384",
        "SHA-512" => "SHA512",
        "SHA3-256" => "SHA3-256",
        "SHA3-384" => "SHA3-384",
        "SHA3-512" => "SHA3-512",
        "BLAKE2b-256" => "BLAKE2b-256",
        "BLAKE2b-384" => "BLAKE2b-384",
        "BLAKE2b-512" => "BLAKE2b-512",
        "BLAKE3" => "BLAKE3",
        _ => return None,
    })
}

/// Whether `expression` can be an SPDX licence expression of this document: identifiers,
/// `AND`/`OR`/`WITH`, `+` and parentheses, no `LicenseRef-` (none is defined here).
fn usable_expression(expression: &str) -> bool {
    !expression.is_empty()
        && !expression.contains("LicenseRef-")
        && !expression.contains("DocumentRef-")
        && expression
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || " .-+()".contains(c))
}

impl Converter {
    fn add(&mut self, component: &Component, parent: Option<&str>) -> String {
        let id = identifier(self.packages.len() + 1, &component.name);
        if let Some(reference) = &component.bom_ref {
            self.identifiers.insert(reference.clone(), id.clone());
        }
        let mut package = json!({
            "SPDXID": id,
            "name": component.name,
            "downloadLocation": "NOASSERTION",
            "filesAnalyzed": false,
            "primaryPackagePurpose": purpose(&component.kind),
            "licenseConcluded": "NOASSERTION",
            "copyrightText": component.copyright.clone().unwrap_or_else(|| "NOASSERTION".to_string()),
        });
        let object = package.as_object_mut().expect("a JSON object");
        if let Some(version) = &component.version {
            object.insert("versionInfo".into(), json!(version));
        }
        if let Some(description) = &component.description {
            object.insert("description".into(), json!(description));
        }
        let checksums: Vec<Value> = component
            .hashes
            .iter()
            .filter_map(|hash| {
                Some(json!({"algorithm": algorithm(&hash.alg)?, "checksumValue": hash.content.to_ascii_lowercase()}))
            })
            .collect();
        if !checksums.is_empty() {
            object.insert("checksums".into(), Value::Array(checksums));
        }
        let mut references = Vec::new();
        if let Some(purl) = &component.purl {
            references.push(json!({"referenceCategory": "PACKAGE-MANAGER", "referenceType": "purl", "referenceLocator": purl}));
        }
        if let Some(cpe) = component
            .cpe
            .as_ref()
            .filter(|cpe| cpe.starts_with("cpe:2.3:"))
        {
            references.push(json!({"referenceCategory": "SECURITY", "referenceType": "cpe23Type", "referenceLocator": cpe}));
        }
        if !references.is_empty() {
            object.insert("externalRefs".into(), Value::Array(references));
        }
        let (declared, comment) = match component.licenses.as_slice() {
            [] => ("NOASSERTION".to_string(), None),
            [LicenseChoice::Expression { expression, .. }] if usable_expression(expression) => {
                (expression.clone(), None)
            }
            choices => {
                let names: Vec<String> = choices
                    .iter()
                    .filter_map(|choice| match choice {
                        LicenseChoice::Expression { expression, .. } => Some(expression.clone()),
                        LicenseChoice::License { license } => {
                            license.id.clone().or_else(|| license.name.clone())
                        }
                    })
                    .collect();
                (
                    "NOASSERTION".to_string(),
                    Some(format!("declared as: {}", names.join("; "))),
                )
            }
        };
        object.insert("licenseDeclared".into(), json!(declared));
        if let Some(comment) = comment {
            object.insert("licenseComments".into(), json!(comment));
        }
        if let Some(pedigree) = &component.pedigree {
            let mut source = Vec::new();
            if let Some(notes) = &pedigree.notes {
                source.push(notes.clone());
            }
            let patches: Vec<String> = pedigree
                .patches
                .iter()
                .flat_map(|patch| &patch.resolves)
                .filter_map(|issue| issue.name.clone().or_else(|| issue.id.clone()))
                .collect();
            if !patches.is_empty() {
                source.push(format!("patches: {}", patches.join(", ")));
            }
            if !source.is_empty() {
                object.insert("sourceInfo".into(), json!(source.join("; ")));
            }
        }
        if !component.properties.is_empty() {
            let text: Vec<String> = component
                .properties
                .iter()
                .map(|property| format!("{}={}", property.name, property.value))
                .collect();
            object.insert("comment".into(), json!(text.join("\n")));
        }
        self.packages.push(package);
        if let Some(parent) = parent {
            self.relationships
                .push((parent.to_string(), "CONTAINS", id.clone()));
        }
        for nested in &component.components {
            self.add(nested, Some(&id));
        }
        if let Some(pedigree) = &component.pedigree {
            for ancestor in &pedigree.ancestors {
                let ancestor_id = self.add(ancestor, None);
                self.relationships
                    .push((id.clone(), "GENERATED_FROM", ancestor_id));
            }
        }
        id
    }
}

/// The SPDX 2.3 document for `bom`, as pretty JSON with a final newline.
pub fn convert(bom: &Bom) -> anyhow::Result<Vec<u8>> {
    let mut converter = Converter {
        packages: Vec::new(),
        relationships: Vec::new(),
        identifiers: BTreeMap::new(),
    };
    let application = converter.add(&bom.metadata.component, None);
    for component in &bom.components {
        converter.add(component, Some(&application));
    }
    let mut relationships = vec![json!({
        "spdxElementId": "SPDXRef-DOCUMENT",
        "relationshipType": "DESCRIBES",
        "relatedSpdxElement": application,
    })];
    for (from, kind, to) in &converter.relationships {
        relationships.push(
            json!({"spdxElementId": from, "relationshipType": kind, "relatedSpdxElement": to}),
        );
    }
    for dependency in &bom.dependencies {
        let Some(from) = converter.identifiers.get(&dependency.reference) else {
            continue;
        };
        for target in &dependency.depends_on {
            if let Some(to) = converter.identifiers.get(target) {
                relationships.push(json!({"spdxElementId": from, "relationshipType": "DEPENDS_ON", "relatedSpdxElement": to}));
            }
        }
    }
    let tool = bom
        .metadata
        .tools
        .as_ref()
        .and_then(|tools| tools.components.first())
        .map(|tool| {
            format!(
                "Tool: {}-{}",
                tool.name,
                tool.version.as_deref().unwrap_or("unknown")
            )
        })
        .unwrap_or_else(|| "Tool: pyferry".to_string());
    let mut document = json!({
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": bom.metadata.component.name,
        "documentNamespace": "",
        "creationInfo": {
            "created": bom.metadata.timestamp.clone().unwrap_or_else(|| DEFAULT_CREATED.to_string()),
            "creators": [tool],
            "comment": format!(
                "Converted by pyferry from the CycloneDX {} SBOM recorded in the file ({}).",
                bom.spec_version,
                bom.serial_number.as_deref().unwrap_or("no serial number")
            ),
        },
        "packages": converter.packages,
        "relationships": relationships,
    });
    let unnamed = serde_json::to_vec(&document)?;
    document["documentNamespace"] = json!(format!("urn:uuid:{}", super::content_uuid(&unnamed)));
    let mut bytes = serde_json::to_vec_pretty(&document)?;
    bytes.push(b'\n');
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sbom::cyclonedx::{Dependency, Metadata};

    #[test]
    fn components_nesting_and_dependencies_become_packages_and_relationships() {
        let mut application = Component::new("application", "app");
        application.bom_ref = Some("application".into());
        let mut numpy = Component::new("library", "numpy");
        numpy.bom_ref = Some("pkg:pypi/numpy@2.4.6".into());
        numpy.version = Some("2.4.6".into());
        numpy.purl = numpy.bom_ref.clone();
        numpy.sha256("ab".repeat(32));
        numpy.licenses = vec![LicenseChoice::Expression {
            expression: "BSD-3-Clause AND 0BSD".into(),
            acknowledgement: None,
        }];
        let mut library = Component::new("library", "libgfortran.so");
        library.bom_ref = Some("pkg:pypi/numpy@2.4.6#numpy.libs/libgfortran.so".into());
        numpy.components.push(library);
        let mut odd = Component::new("library", "odd name/with slashes");
        odd.licenses = vec![LicenseChoice::Expression {
            expression: "LicenseRef-Proprietary".into(),
            acknowledgement: None,
        }];
        let bom = Bom {
            spec_version: "1.6".into(),
            metadata: Metadata {
                component: application,
                ..Metadata::default()
            },
            components: vec![numpy, odd],
            dependencies: vec![Dependency {
                reference: "application".into(),
                depends_on: vec!["pkg:pypi/numpy@2.4.6".into(), "missing".into()],
            }],
            ..Bom::default()
        };
        let bytes = convert(&bom).expect("converts");
        assert_eq!(bytes, convert(&bom).expect("converts"), "deterministic");
        let document: Value = serde_json::from_slice(&bytes).expect("JSON");
        let packages = document["packages"].as_array().expect("packages");
        assert_eq!(packages.len(), 4);
        assert_eq!(packages[1]["SPDXID"], "SPDXRef-2-numpy");
        assert_eq!(packages[1]["licenseDeclared"], "BSD-3-Clause AND 0BSD");
        assert_eq!(packages[1]["checksums"][0]["algorithm"], "SHA256");
        assert_eq!(packages[3]["SPDXID"], "SPDXRef-4-odd-name-with-slashes");
        assert_eq!(packages[3]["licenseDeclared"], "NOASSERTION");
        assert_eq!(document["creationInfo"]["created"], DEFAULT_CREATED);
        let relationships: Vec<(String, String, String)> = document["relationships"]
            .as_array()
            .expect("relationships")
            .iter()
            .map(|relationship| {
                (
                    relationship["spdxElementId"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                    relationship["relationshipType"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                    relationship["relatedSpdxElement"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                )
            })
            .collect();
        assert!(relationships.contains(&(
            "SPDXRef-2-numpy".into(),
            "CONTAINS".into(),
            "SPDXRef-3-libgfortran.so".into()
        )));
        assert!(relationships.contains(&(
            "SPDXRef-1-app".into(),
            "DEPENDS_ON".into(),
            "SPDXRef-2-numpy".into()
        )));
        assert!(document["documentNamespace"]
            .as_str()
            .is_some_and(|namespace| namespace.starts_with("urn:uuid:")));
    }
}
