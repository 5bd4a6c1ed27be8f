//! Where the embedded OpenSSL finds the host's CA certificates.
//!
//! The runtime's OpenSSL is configured with the directory `/etc/ssl` (docs/runtime.md): its
//! default CA file is `/etc/ssl/cert.pem` and its default hashed directory `/etc/ssl/certs`,
//! which is what Debian, Ubuntu, Alpine and their relatives provide. RHEL, Fedora, CentOS,
//! Amazon Linux and openSUSE keep one bundle file elsewhere (their `/etc/ssl/certs`, where it
//! exists, links to a directory with no hash links). So at start-up, when the user has set
//! neither `SSL_CERT_FILE` nor `SSL_CERT_DIR`, and OpenSSL's defaults hold nothing, the launcher
//! sets `SSL_CERT_FILE` to the first bundle of [`BUNDLES`] that exists, as OpenSSL's own
//! variable (the application and its children see it in their environment). On a Debian host
//! that costs one `stat`. `PYFERRY_INFO=1` says what was chosen, or what was tried.

use std::path::Path;

use crate::environment;

/// OpenSSL's defaults in the runtime (`OPENSSLDIR=/etc/ssl`): a file, and a directory whose
/// certificates Debian-like systems name by hash, next to one bundle of them all.
const DEFAULT_FILE: &str = "/etc/ssl/cert.pem";
const DEBIAN_BUNDLE_IN_DEFAULT_DIR: &str = "/etc/ssl/certs/ca-certificates.crt";

/// Bundle files of the other layouts, most common first.
const BUNDLES: &[&str] = &[
    // RHEL, CentOS, Fedora, Amazon Linux, Oracle Linux, Rocky, Alma
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",
    // openSUSE, SLES
    "/etc/ssl/ca-bundle.pem",
    "/var/lib/ca-certificates/ca-bundle.pem",
    // OpenELEC and others
    "/etc/pki/tls/cacert.pem",
];

/// What the launcher found for OpenSSL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertificateSource {
    /// `SSL_CERT_FILE` or `SSL_CERT_DIR` was set by the user: left alone.
    SetByUser,
    /// OpenSSL's own defaults hold certificates (this path exists).
    OpenSslDefault(&'static str),
    /// `SSL_CERT_FILE` was set to this bundle.
    Bundle(&'static str),
    /// Nothing found: TLS connections will fail to verify.
    None,
}

impl std::fmt::Display for CertificateSource {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CertificateSource::SetByUser => {
                write!(formatter, "as set by SSL_CERT_FILE / SSL_CERT_DIR")
            }
            CertificateSource::OpenSslDefault(path) => {
                write!(formatter, "{path} (OpenSSL's default)")
            }
            CertificateSource::Bundle(path) => write!(formatter, "{path} (SSL_CERT_FILE set)"),
            CertificateSource::None => write!(
                formatter,
                "none found (tried {DEFAULT_FILE}, {DEBIAN_BUNDLE_IN_DEFAULT_DIR}, {}); set SSL_CERT_FILE to your CA bundle",
                BUNDLES.join(", ")
            ),
        }
    }
}

/// Finds the certificates, without changing anything.
pub fn find() -> CertificateSource {
    find_in(environment::ssl_certificates_set_by_user(), |path| {
        Path::new(path).exists()
    })
}

fn find_in(set_by_user: bool, exists: impl Fn(&str) -> bool) -> CertificateSource {
    if set_by_user {
        return CertificateSource::SetByUser;
    }
    for default in [DEFAULT_FILE, DEBIAN_BUNDLE_IN_DEFAULT_DIR] {
        if exists(default) {
            return CertificateSource::OpenSslDefault(default);
        }
    }
    BUNDLES
        .iter()
        .find(|bundle| exists(bundle))
        .map_or(CertificateSource::None, |bundle| {
            CertificateSource::Bundle(bundle)
        })
}

/// Points OpenSSL at the host's bundle when its defaults find nothing. Called before any other
/// thread exists (it sets an environment variable).
pub fn configure() -> CertificateSource {
    let source = find();
    if let CertificateSource::Bundle(path) = source {
        std::env::set_var(environment::SSL_CERT_FILE, path);
    }
    tracing::debug!(%source, "CA certificates");
    source
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_layout_finds_its_certificates() {
        let only = |present: &'static str| move |path: &str| path == present;
        assert_eq!(
            find_in(false, only("/etc/ssl/certs/ca-certificates.crt")),
            CertificateSource::OpenSslDefault("/etc/ssl/certs/ca-certificates.crt")
        );
        assert_eq!(
            find_in(false, only("/etc/pki/tls/certs/ca-bundle.crt")),
            CertificateSource::Bundle("/etc/pki/tls/certs/ca-bundle.crt")
        );
        assert_eq!(
            find_in(false, only("/etc/ssl/ca-bundle.pem")),
            CertificateSource::Bundle("/etc/ssl/ca-bundle.pem")
        );
        assert_eq!(
            find_in(true, only("/etc/pki/tls/certs/ca-bundle.crt")),
            CertificateSource::SetByUser
        );
        assert_eq!(find_in(false, |_| false), CertificateSource::None);
        assert!(CertificateSource::None
            .to_string()
            .contains("/etc/pki/tls/certs/ca-bundle.crt"));
    }
}
