//! What an SBOM takes from a distribution's core metadata (`*.dist-info/METADATA`): its name,
//! version, summary, licence and the requirements it declares.
//!
//! Licences: `License-Expression` (metadata 2.4, PEP 639) is an SPDX expression and is used as
//! it is. Otherwise a `License` field or a single licence classifier becomes an SPDX
//! identifier only where the mapping is unambiguous (`MIT License` is `MIT`; `BSD License`
//! could be several, and stays a name); what cannot be mapped is kept as the licence's name.

use super::cyclonedx::{License, LicenseChoice};

/// The fields of a METADATA file the SBOM uses.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CoreMetadata {
    pub name: String,
    pub version: String,
    pub summary: Option<String>,
    pub license_expression: Option<String>,
    pub license: Option<String>,
    pub classifiers: Vec<String>,
    pub requires_dist: Vec<String>,
}

/// Parses the header section of a METADATA file (RFC 822 style: `Name: value` lines,
/// continuation lines start with whitespace, the body starts after the first empty line).
pub fn parse(text: &str) -> CoreMetadata {
    let mut fields: Vec<(String, String)> = Vec::new();
    for line in text.lines() {
        if line.trim().is_empty() {
            break;
        }
        if line.starts_with([' ', '\t']) {
            if let Some((_, value)) = fields.last_mut() {
                value.push('\n');
                value.push_str(line.trim());
            }
            continue;
        }
        if let Some((key, value)) = line.split_once(':') {
            fields.push((key.trim().to_ascii_lowercase(), value.trim().to_string()));
        }
    }
    let mut metadata = CoreMetadata::default();
    for (key, value) in fields {
        match key.as_str() {
            "name" => metadata.name = value,
            "version" => metadata.version = value,
            "summary" if !value.is_empty() => metadata.summary = Some(value),
            "license-expression" if !value.is_empty() => metadata.license_expression = Some(value),
            "license" if !value.is_empty() && value != "UNKNOWN" => metadata.license = Some(value),
            "classifier" => metadata.classifiers.push(value),
            "requires-dist" => metadata.requires_dist.push(value),
            _ => {}
        }
    }
    metadata
}

/// Licence classifiers whose licence is one SPDX identifier; the others (`BSD License`,
/// `Apache Software License`, `GNU General Public License v3 (GPLv3)` without "or later"...)
/// name a family or leave a choice open.
const CLASSIFIERS: &[(&str, &str)] = &[
    ("License :: OSI Approved :: MIT License", "MIT"),
    (
        "License :: OSI Approved :: MIT No Attribution License (MIT-0)",
        "MIT-0",
    ),
    ("License :: OSI Approved :: ISC License (ISCL)", "ISC"),
    (
        "License :: OSI Approved :: Mozilla Public License 2.0 (MPL 2.0)",
        "MPL-2.0",
    ),
    (
        "License :: OSI Approved :: Python Software Foundation License",
        "PSF-2.0",
    ),
    (
        "License :: OSI Approved :: The Unlicense (Unlicense)",
        "Unlicense",
    ),
    ("License :: OSI Approved :: Zero-Clause BSD (0BSD)", "0BSD"),
    (
        "License :: OSI Approved :: Boost Software License 1.0 (BSL-1.0)",
        "BSL-1.0",
    ),
    ("License :: OSI Approved :: zlib/libpng License", "Zlib"),
    (
        "License :: OSI Approved :: European Union Public Licence 1.2 (EUPL 1.2)",
        "EUPL-1.2",
    ),
    (
        "License :: OSI Approved :: University of Illinois/NCSA Open Source License",
        "NCSA",
    ),
    (
        "License :: OSI Approved :: Historical Permission Notice and Disclaimer (HPND)",
        "HPND",
    ),
    (
        "License :: OSI Approved :: Universal Permissive License (UPL)",
        "UPL-1.0",
    ),
    (
        "License :: OSI Approved :: PostgreSQL License",
        "PostgreSQL",
    ),
    (
        "License :: OSI Approved :: GNU General Public License v2 or later (GPLv2+)",
        "GPL-2.0-or-later",
    ),
    (
        "License :: OSI Approved :: GNU General Public License v3 or later (GPLv3+)",
        "GPL-3.0-or-later",
    ),
    (
        "License :: OSI Approved :: GNU Lesser General Public License v2 or later (LGPLv2+)",
        "LGPL-2.0-or-later",
    ),
    (
        "License :: OSI Approved :: GNU Lesser General Public License v3 or later (LGPLv3+)",
        "LGPL-3.0-or-later",
    ),
    (
        "License :: OSI Approved :: GNU Affero General Public License v3 or later (AGPLv3+)",
        "AGPL-3.0-or-later",
    ),
    (
        "License :: CC0 1.0 Universal (CC0 1.0) Public Domain Dedication",
        "CC0-1.0",
    ),
];

/// `License` field values (compared without case) that name one SPDX licence.
const LICENSE_NAMES: &[(&str, &str)] = &[
    ("mit", "MIT"),
    ("mit license", "MIT"),
    ("the mit license", "MIT"),
    ("mit-0", "MIT-0"),
    ("apache-2.0", "Apache-2.0"),
    ("apache 2.0", "Apache-2.0"),
    ("apache license 2.0", "Apache-2.0"),
    ("apache license, version 2.0", "Apache-2.0"),
    ("apache software license 2.0", "Apache-2.0"),
    ("bsd-2-clause", "BSD-2-Clause"),
    ("bsd-3-clause", "BSD-3-Clause"),
    ("bsd 3-clause", "BSD-3-Clause"),
    ("bsd 3-clause license", "BSD-3-Clause"),
    ("3-clause bsd", "BSD-3-Clause"),
    ("0bsd", "0BSD"),
    ("isc", "ISC"),
    ("isc license", "ISC"),
    ("mpl-2.0", "MPL-2.0"),
    ("mpl 2.0", "MPL-2.0"),
    ("mozilla public license 2.0", "MPL-2.0"),
    ("psf-2.0", "PSF-2.0"),
    ("psf license", "PSF-2.0"),
    ("python software foundation license", "PSF-2.0"),
    ("unlicense", "Unlicense"),
    ("zlib", "Zlib"),
    ("cc0-1.0", "CC0-1.0"),
    ("bsl-1.0", "BSL-1.0"),
    ("lgpl-2.1-or-later", "LGPL-2.1-or-later"),
    ("lgpl-3.0-or-later", "LGPL-3.0-or-later"),
    ("gpl-2.0-or-later", "GPL-2.0-or-later"),
    ("gpl-3.0-or-later", "GPL-3.0-or-later"),
];

/// The SPDX identifier a `License` field value names, if it names exactly one.
fn mapped_license_field(value: &str) -> Option<&'static str> {
    let value = value.trim();
    if value.contains('\n') {
        return None;
    }
    LICENSE_NAMES
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(value))
        .map(|(_, id)| *id)
}

/// Where a distribution's licence was found, and what it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Licence {
    /// An SPDX expression, and the field it came from.
    Expression(String, &'static str),
    /// Licence names that are not SPDX identifiers (the `License` field's first line, licence
    /// classifiers).
    Names(Vec<String>),
}

impl CoreMetadata {
    /// The distribution's licence, as precisely as its metadata states it; `None` when it
    /// states none.
    pub fn licence(&self) -> Option<Licence> {
        if let Some(expression) = &self.license_expression {
            return Some(Licence::Expression(
                expression.clone(),
                "License-Expression",
            ));
        }
        if let Some(id) = self.license.as_deref().and_then(mapped_license_field) {
            return Some(Licence::Expression(id.to_string(), "License"));
        }
        let classifiers: Vec<&str> = self
            .classifiers
            .iter()
            .map(String::as_str)
            .filter(|classifier| classifier.starts_with("License ::"))
            .collect();
        if self.license.is_none() && classifiers.len() == 1 {
            if let Some((_, id)) = CLASSIFIERS
                .iter()
                .find(|(classifier, _)| *classifier == classifiers[0])
            {
                return Some(Licence::Expression(id.to_string(), "classifier"));
            }
        }
        let mut names: Vec<String> = Vec::new();
        if let Some(first) = self
            .license
            .as_deref()
            .and_then(|text| text.lines().map(str::trim).find(|line| !line.is_empty()))
        {
            names.push(shorten(first, 200));
        }
        for classifier in classifiers {
            let name = classifier.rsplit(" :: ").next().unwrap_or(classifier);
            if !names.iter().any(|known| known == name) {
                names.push(name.to_string());
            }
        }
        (!names.is_empty()).then_some(Licence::Names(names))
    }
}

impl Licence {
    /// CycloneDX `licenses`: one expression, or named licences; all declared by the
    /// distribution's authors.
    pub fn to_cyclonedx(&self) -> Vec<LicenseChoice> {
        let declared = Some("declared".to_string());
        match self {
            Licence::Expression(expression, _) => vec![LicenseChoice::Expression {
                expression: expression.clone(),
                acknowledgement: declared,
            }],
            Licence::Names(names) => names
                .iter()
                .map(|name| LicenseChoice::License {
                    license: License {
                        id: None,
                        name: Some(name.clone()),
                        acknowledgement: declared.clone(),
                    },
                })
                .collect(),
        }
    }

    /// The field it came from, for the component's properties.
    pub fn source(&self) -> &'static str {
        match self {
            Licence::Expression(_, source) => source,
            Licence::Names(_) => "License, classifiers",
        }
    }
}

/// `text` cut to at most `limit` characters, with `...` when cut.
fn shorten(text: &str, limit: usize) -> String {
    if text.chars().count() <= limit {
        return text.to_string();
    }
    let mut short: String = text.chars().take(limit).collect();
    short.push_str("...");
    short
}

/// A `Requires-Dist` value split into the distribution name and its marker (after `;`).
pub fn requirement_parts(requirement: &str) -> Option<(String, Option<&str>)> {
    let (specification, marker) = match requirement.split_once(';') {
        Some((specification, marker)) => (specification, Some(marker.trim())),
        None => (requirement, None),
    };
    let name: String = specification
        .trim()
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        .collect();
    (!name.is_empty()).then_some((name, marker.filter(|marker| !marker.is_empty())))
}

#[cfg(test)]
mod tests {
    use super::*;

    const REQUESTS: &str = "Metadata-Version: 2.1\nName: requests\nVersion: 2.32.3\nSummary: Python HTTP for Humans.\nLicense: Apache-2.0\nClassifier: License :: OSI Approved :: Apache Software License\nRequires-Dist: charset-normalizer<4,>=2\nRequires-Dist: idna<4,>=2.5\nRequires-Dist: PySocks!=1.5.7,>=1.5.6; extra == \"socks\"\n\nbody: not a header\n";

    #[test]
    fn headers_until_the_body() {
        let metadata = parse(REQUESTS);
        assert_eq!(metadata.name, "requests");
        assert_eq!(metadata.version, "2.32.3");
        assert_eq!(metadata.summary.as_deref(), Some("Python HTTP for Humans."));
        assert_eq!(metadata.requires_dist.len(), 3);
        assert_eq!(
            metadata.licence(),
            Some(Licence::Expression("Apache-2.0".into(), "License"))
        );
    }

    #[test]
    fn licence_expression_wins_and_ambiguous_classifiers_stay_names() {
        let numpy = parse("Name: numpy\nVersion: 2.4.6\nLicense-Expression: BSD-3-Clause AND 0BSD\nClassifier: License :: OSI Approved :: BSD License\n");
        assert_eq!(
            numpy.licence(),
            Some(Licence::Expression(
                "BSD-3-Clause AND 0BSD".into(),
                "License-Expression"
            ))
        );
        let old = parse("Name: numpy\nVersion: 2.2.6\nLicense: Copyright (c) 2005-2024, NumPy Developers.\n        All rights reserved.\nClassifier: License :: OSI Approved :: BSD License\n");
        assert_eq!(
            old.licence(),
            Some(Licence::Names(vec![
                "Copyright (c) 2005-2024, NumPy Developers.".into(),
                "BSD License".into()
            ]))
        );
        let mit =
            parse("Name: x\nVersion: 1\nClassifier: License :: OSI Approved :: MIT License\n");
        assert_eq!(
            mit.licence(),
            Some(Licence::Expression("MIT".into(), "classifier"))
        );
        let two = parse("Name: x\nVersion: 1\nClassifier: License :: OSI Approved :: MIT License\nClassifier: License :: OSI Approved :: Apache Software License\n");
        assert_eq!(
            two.licence(),
            Some(Licence::Names(vec![
                "MIT License".into(),
                "Apache Software License".into()
            ]))
        );
        assert_eq!(
            parse("Name: x\nVersion: 1\nLicense: UNKNOWN\n").licence(),
            None
        );
    }

    #[test]
    fn requirement_names_and_markers() {
        assert_eq!(
            requirement_parts("PySocks!=1.5.7,>=1.5.6; extra == \"socks\""),
            Some(("PySocks".into(), Some("extra == \"socks\"")))
        );
        assert_eq!(
            requirement_parts("zope.interface (>=5)"),
            Some(("zope.interface".into(), None))
        );
        assert_eq!(
            requirement_parts("typing_extensions[x]>=4 ;python_version<'3.12'"),
            Some(("typing_extensions".into(), Some("python_version<'3.12'")))
        );
        assert_eq!(requirement_parts(" ; x"), None);
    }
}
