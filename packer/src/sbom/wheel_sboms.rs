//! The SBOMs wheels carry in `*.dist-info/sboms/` (PEP 770): auditwheel writes one for the
//! system libraries it grafts into `*.libs/`, and some projects write their own for the code
//! they vendor. A CycloneDX document's components and dependencies are merged into the
//! distribution's component; the file itself stays in the archive, named by a property.
//!
//! Only what CycloneDX 1.6 defines and pyferry can check is carried over (type, name, version,
//! group, description, purl, CPE, hashes, licences, external references, properties, nested
//! components): a wheel's document may be of another CycloneDX version (1.4 from auditwheel,
//! 1.7 from Pillow), and anything copied blindly could make the whole SBOM invalid. Each
//! component's `bom-ref` is prefixed with the distribution's, so two wheels' documents never
//! collide; the document's own subject (the wheel) becomes the distribution itself.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::cyclonedx::{
    Component, Dependency, ExternalReference, Hash, License, LicenseChoice, Property,
    COMPONENT_TYPES, HASH_ALGORITHMS, REFERENCE_TYPES,
};

/// What a wheel's SBOM adds to its distribution.
#[derive(Debug, Default)]
pub struct Merged {
    pub components: Vec<Component>,
    pub dependencies: Vec<Dependency>,
}

/// Why a file of `sboms/` could not be merged.
#[derive(Debug, thiserror::Error)]
pub enum NotMerged {
    #[error("it is not JSON ({0})")]
    NotJson(serde_json::Error),
    #[error("it is not a CycloneDX document (an SPDX document, or another format, stays in the archive as it is)")]
    NotCycloneDx,
}

/// Merges the CycloneDX document `bytes` (the file `file_name`) into the distribution whose
/// `bom-ref` is `owner`.
pub fn merge(owner: &str, file_name: &str, bytes: &[u8]) -> Result<Merged, NotMerged> {
    let document: Value = serde_json::from_slice(bytes).map_err(NotMerged::NotJson)?;
    if document.get("bomFormat").and_then(Value::as_str) != Some("CycloneDX") {
        return Err(NotMerged::NotCycloneDx);
    }
    let prefix = format!("{owner}#sbom/{file_name}/");
    // The document's subject is the wheel, that is, the distribution.
    let subject = document
        .pointer("/metadata/component/bom-ref")
        .and_then(Value::as_str)
        .map(str::to_string);
    let mut references = References {
        prefix,
        owner: owner.to_string(),
        subject,
        known: BTreeSet::new(),
    };
    let subject = references.subject.clone();
    let components: Vec<Component> = array(&document, "components")
        .filter(|component| {
            let reference = component.get("bom-ref").and_then(Value::as_str);
            reference.is_none() || reference != subject.as_deref()
        })
        .filter_map(|component| references.component(component))
        .collect();
    let mut dependencies: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for dependency in array(&document, "dependencies") {
        let Some(from) = dependency
            .get("ref")
            .and_then(Value::as_str)
            .and_then(|reference| references.resolve(reference))
        else {
            continue;
        };
        let targets: BTreeSet<String> = dependency
            .get("dependsOn")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .filter_map(|reference| references.resolve(reference))
            .filter(|target| *target != from)
            .collect();
        dependencies.entry(from).or_default().extend(targets);
    }
    Ok(Merged {
        components,
        dependencies: dependencies
            .into_iter()
            .map(|(reference, depends_on)| Dependency {
                reference,
                depends_on: depends_on.into_iter().collect(),
            })
            .collect(),
    })
}

/// The `bom-ref`s of one merged document.
struct References {
    prefix: String,
    owner: String,
    subject: Option<String>,
    /// The prefixed references of the components carried over.
    known: BTreeSet<String>,
}

impl References {
    /// The reference in the merged SBOM of `reference` in the wheel's, if it names something
    /// carried over.
    fn resolve(&self, reference: &str) -> Option<String> {
        if Some(reference) == self.subject.as_deref() {
            return Some(self.owner.clone());
        }
        let prefixed = format!("{}{reference}", self.prefix);
        self.known.contains(&prefixed).then_some(prefixed)
    }

    /// The component `value`, with only the fields pyferry can vouch for; `None` without a
    /// name.
    fn component(&mut self, value: &Value) -> Option<Component> {
        let text = |key: &str| {
            value
                .get(key)
                .and_then(Value::as_str)
                .filter(|text| !text.is_empty())
                .map(str::to_string)
        };
        let name = text("name")?;
        let kind = text("type")
            .filter(|kind| COMPONENT_TYPES.contains(&kind.as_str()))
            .unwrap_or_else(|| "library".to_string());
        let mut component = Component::new(&kind, name);
        if let Some(reference) = text("bom-ref") {
            let prefixed = format!("{}{reference}", self.prefix);
            if self.known.insert(prefixed.clone()) {
                component.bom_ref = Some(prefixed);
            }
        }
        component.group = text("group");
        component.version = text("version");
        component.description = text("description");
        component.publisher = text("publisher");
        component.copyright = text("copyright");
        component.cpe = text("cpe");
        component.purl = text("purl");
        component.scope = text("scope")
            .filter(|scope| ["required", "optional", "excluded"].contains(&scope.as_str()));
        component.hashes = array(value, "hashes").filter_map(hash).collect();
        component.licenses = licenses(value);
        component.external_references = array(value, "externalReferences")
            .filter_map(external_reference)
            .collect();
        component.properties = array(value, "properties")
            .filter_map(|property| {
                Some(Property {
                    name: property.get("name")?.as_str()?.to_string(),
                    value: property.get("value")?.as_str()?.to_string(),
                })
            })
            .collect();
        component.components = array(value, "components")
            .filter_map(|nested| self.component(nested))
            .collect();
        Some(component)
    }
}

fn array<'a>(value: &'a Value, key: &str) -> impl Iterator<Item = &'a Value> {
    value
        .get(key)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
}

fn hash(value: &Value) -> Option<Hash> {
    let alg = value.get("alg")?.as_str()?;
    let content = value.get("content")?.as_str()?;
    let valid = HASH_ALGORITHMS.contains(&alg)
        && [32, 40, 64, 96, 128].contains(&content.len())
        && content.bytes().all(|byte| byte.is_ascii_hexdigit());
    valid.then(|| Hash {
        alg: alg.to_string(),
        content: content.to_string(),
    })
}

/// `licenses`: one expression is kept as it is; licences given by SPDX identifier or name
/// keep the name (an identifier this SBOM cannot check against the SPDX list becomes a name,
/// unless it is the only licence, when it is an expression of one identifier).
fn licenses(value: &Value) -> Vec<LicenseChoice> {
    let entries: Vec<&Value> = array(value, "licenses").collect();
    let acknowledgement = |value: &Value| {
        value
            .get("acknowledgement")
            .and_then(Value::as_str)
            .filter(|text| ["declared", "concluded"].contains(text))
            .map(str::to_string)
    };
    if let [entry] = entries.as_slice() {
        if let Some(expression) = entry.get("expression").and_then(Value::as_str) {
            return vec![LicenseChoice::Expression {
                expression: expression.to_string(),
                acknowledgement: acknowledgement(entry),
            }];
        }
        if let Some(license) = entry.get("license") {
            if let Some(id) = license.get("id").and_then(Value::as_str) {
                return vec![LicenseChoice::Expression {
                    expression: id.to_string(),
                    acknowledgement: acknowledgement(license),
                }];
            }
        }
    }
    entries
        .iter()
        .filter_map(|entry| {
            let license = entry.get("license")?;
            let name = license
                .get("id")
                .or_else(|| license.get("name"))?
                .as_str()?;
            Some(LicenseChoice::License {
                license: License {
                    id: None,
                    name: Some(name.to_string()),
                    acknowledgement: acknowledgement(license),
                },
            })
        })
        .collect()
}

/// An external reference whose URL is an absolute URL without spaces (CycloneDX checks the
/// format); unknown types become `other`.
fn external_reference(value: &Value) -> Option<ExternalReference> {
    let url = value.get("url")?.as_str()?;
    let (scheme, rest) = url.split_once("://")?;
    let usable = !scheme.is_empty()
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
        && !rest.is_empty()
        && url.chars().all(|c| c.is_ascii_graphic());
    if !usable {
        return None;
    }
    let kind = value
        .get("type")
        .and_then(Value::as_str)
        .filter(|kind| REFERENCE_TYPES.contains(kind))
        .unwrap_or("other");
    Some(ExternalReference {
        kind: kind.to_string(),
        url: url.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// auditwheel 6.8.2's SBOM in Pillow 13.0.0's wheel.
    const AUDITWHEEL: &str = r#"{"bomFormat": "CycloneDX", "specVersion": "1.4", "version": 1, "metadata": {"component": {"type": "library", "bom-ref": "pkg:pypi/pillow@13.0.0?file_name=pillow-13.0.0-cp311-cp311-manylinux_2_27_x86_64.manylinux_2_28_x86_64.whl", "name": "pillow", "version": "13.0.0", "purl": "pkg:pypi/pillow@13.0.0?file_name=pillow-13.0.0-cp311-cp311-manylinux_2_27_x86_64.manylinux_2_28_x86_64.whl"}, "tools": [{"name": "auditwheel", "version": "6.8.2"}]}, "components": [{"type": "library", "bom-ref": "pkg:pypi/pillow@13.0.0?file_name=pillow-13.0.0-cp311-cp311-manylinux_2_27_x86_64.manylinux_2_28_x86_64.whl", "name": "pillow", "version": "13.0.0", "purl": "pkg:pypi/pillow@13.0.0?file_name=pillow-13.0.0-cp311-cp311-manylinux_2_27_x86_64.manylinux_2_28_x86_64.whl"}, {"type": "library", "bom-ref": "pkg:rpm/almalinux/libXau@1.0.9-3.el8#ac77887fa9a50833ff7a34d7e27ebe243468552bc94f6628693cb1dfdaf102e7", "name": "libXau", "version": "1.0.9-3.el8", "purl": "pkg:rpm/almalinux/libXau@1.0.9-3.el8"}], "dependencies": [{"ref": "pkg:pypi/pillow@13.0.0?file_name=pillow-13.0.0-cp311-cp311-manylinux_2_27_x86_64.manylinux_2_28_x86_64.whl", "dependsOn": ["pkg:rpm/almalinux/libXau@1.0.9-3.el8#ac77887fa9a50833ff7a34d7e27ebe243468552bc94f6628693cb1dfdaf102e7"]}, {"ref": "pkg:rpm/almalinux/libXau@1.0.9-3.el8#ac77887fa9a50833ff7a34d7e27ebe243468552bc94f6628693cb1dfdaf102e7"}]}"#;

    #[test]
    fn auditwheel_grafted_libraries_join_their_distribution() {
        let merged = merge(
            "pkg:pypi/pillow@13.0.0",
            "auditwheel.cdx.json",
            AUDITWHEEL.as_bytes(),
        )
        .expect("merges");
        assert_eq!(
            merged.components.len(),
            1,
            "the wheel itself is the distribution"
        );
        let libxau = &merged.components[0];
        assert_eq!(libxau.name, "libXau");
        assert_eq!(
            libxau.purl.as_deref(),
            Some("pkg:rpm/almalinux/libXau@1.0.9-3.el8")
        );
        let reference = "pkg:pypi/pillow@13.0.0#sbom/auditwheel.cdx.json/pkg:rpm/almalinux/libXau@1.0.9-3.el8#ac77887fa9a50833ff7a34d7e27ebe243468552bc94f6628693cb1dfdaf102e7";
        assert_eq!(libxau.bom_ref.as_deref(), Some(reference));
        assert_eq!(
            merged.dependencies,
            vec![
                Dependency {
                    reference: "pkg:pypi/pillow@13.0.0".into(),
                    depends_on: vec![reference.into()]
                },
                Dependency {
                    reference: reference.into(),
                    depends_on: vec![]
                }
            ]
        );
    }

    #[test]
    fn only_what_cyclonedx_1_6_defines_is_carried_over() {
        let document = r#"{"bomFormat": "CycloneDX", "specVersion": "1.7", "metadata": {"component": {"bom-ref": "me", "name": "x"}},
          "components": [
            {"bom-ref": "a", "type": "something-new", "name": "a", "hashes": [{"alg": "SHA-256", "content": "zz"}, {"alg": "SHA-1", "content": "0123456789012345678901234567890123456789"}],
             "licenses": [{"license": {"id": "MIT-CMU", "acknowledgement": "declared"}}], "pedigree": {"notes": "dropped"},
             "externalReferences": [{"type": "website", "url": "https://example.org/a"}, {"type": "new-kind", "url": "https://example.org/b"}, {"type": "vcs", "url": "not a url"}]},
            {"bom-ref": "b", "type": "library", "name": "b", "licenses": [{"license": {"id": "MIT"}}, {"license": {"name": "Custom"}}]},
            {"type": "library"}
          ],
          "dependencies": [{"ref": "a", "dependsOn": ["b", "missing", "a"]}, {"ref": "me", "dependsOn": ["a"]}]}"#;
        let merged = merge("owner", "own.cdx.json", document.as_bytes()).expect("merges");
        assert_eq!(
            merged.components.len(),
            2,
            "a component without a name is left out"
        );
        let a = &merged.components[0];
        assert_eq!(a.kind, "library");
        assert_eq!(a.hashes.len(), 1);
        assert_eq!(
            a.licenses,
            vec![LicenseChoice::Expression {
                expression: "MIT-CMU".into(),
                acknowledgement: Some("declared".into())
            }]
        );
        assert!(a.pedigree.is_none());
        assert_eq!(
            a.external_references
                .iter()
                .map(|reference| reference.kind.as_str())
                .collect::<Vec<_>>(),
            ["website", "other"]
        );
        assert_eq!(merged.components[1].licenses.len(), 2);
        assert_eq!(
            merged.dependencies,
            vec![
                Dependency {
                    reference: "owner".into(),
                    depends_on: vec!["owner#sbom/own.cdx.json/a".into()]
                },
                Dependency {
                    reference: "owner#sbom/own.cdx.json/a".into(),
                    depends_on: vec!["owner#sbom/own.cdx.json/b".into()]
                },
            ]
        );
    }

    #[test]
    fn other_files_are_not_merged() {
        assert!(matches!(
            merge("o", "x.spdx.json", br#"{"spdxVersion": "SPDX-2.3"}"#),
            Err(NotMerged::NotCycloneDx)
        ));
        assert!(matches!(
            merge("o", "x.json", b"{"),
            Err(NotMerged::NotJson(_))
        ));
    }
}
