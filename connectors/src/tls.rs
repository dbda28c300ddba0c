//! TLS settings shared by the connectors that speak TLS (MQTT, NATS, Home Assistant). rustls
//! only.

use std::path::PathBuf;

/// `tls:` of a connector. Present means "use TLS".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsConfig {
    /// PEM file of the CA(s) to trust. Default: the system's roots.
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate (chain), for mutual TLS; needs `key_file`.
    pub cert_file: Option<PathBuf>,
    /// PEM private key of `cert_file`.
    pub key_file: Option<PathBuf>,
}

/// Well-known locations of the system's CA bundle (Debian/Ubuntu/Alpine, Fedora/RHEL,
/// openSUSE, macOS and BSDs), tried in order when `ca_file` is not set. `SSL_CERT_FILE`, when
/// set, is tried first.
#[cfg(any(feature = "mqtt", feature = "homeassistant"))]
const SYSTEM_CA_BUNDLES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/ca-bundle.pem",
    "/etc/ssl/cert.pem",
];

/// Why TLS settings cannot be turned into a rustls client configuration. Errors name the
/// file and the problem, never the file's contents.
#[cfg(any(feature = "mqtt", feature = "homeassistant"))]
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {what} `{path}`: {source}")]
    Read {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{what} `{path}` holds no PEM certificate")]
    NoCertificate { what: &'static str, path: PathBuf },
    #[error("tls.key_file `{path}` holds no PEM private key (PKCS#8, PKCS#1 or SEC1)")]
    NoPrivateKey { path: PathBuf },
    #[error("tls.cert_file and tls.key_file go together: set both for mutual TLS, or neither")]
    HalfClientAuth,
    #[error(
        "tls.ca_file is not set and no system CA bundle was found (tried {tried}); set tls.ca_file"
    )]
    NoSystemRoots { tried: String },
    #[error("tls.cert_file `{cert}` and tls.key_file `{key}` are not a usable pair: {source}")]
    ClientAuth {
        cert: PathBuf,
        key: PathBuf,
        #[source]
        source: rustls::Error,
    },
    #[error("the TLS crypto provider refused the default protocol versions: {0}")]
    Provider(#[source] rustls::Error),
}

/// Builds the rustls client configuration of `tls`: the CAs of `ca_file` (or the system's
/// bundle when it is not set), and the client certificate and key for mutual TLS when both
/// are set. Uses the process's crypto provider (ring, installed at start), or ring if none
/// was installed.
#[cfg(any(feature = "mqtt", feature = "homeassistant"))]
pub fn client_config(tls: &TlsConfig) -> Result<rustls::ClientConfig, TlsError> {
    use std::sync::Arc;

    let roots = root_store(tls.ca_file.as_deref())?;
    let provider = rustls::crypto::CryptoProvider::get_default()
        .cloned()
        .unwrap_or_else(|| Arc::new(rustls::crypto::ring::default_provider()));
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(TlsError::Provider)?
        .with_root_certificates(roots);
    match (&tls.cert_file, &tls.key_file) {
        (None, None) => Ok(builder.with_no_client_auth()),
        (Some(cert), Some(key)) => {
            let chain = read_certificates("tls.cert_file", cert)?;
            let private_key = read_private_key(key)?;
            builder
                .with_client_auth_cert(chain, private_key)
                .map_err(|source| TlsError::ClientAuth {
                    cert: cert.clone(),
                    key: key.clone(),
                    source,
                })
        }
        _ => Err(TlsError::HalfClientAuth),
    }
}

#[cfg(any(feature = "mqtt", feature = "homeassistant"))]
fn root_store(ca_file: Option<&std::path::Path>) -> Result<rustls::RootCertStore, TlsError> {
    let (what, path) = match ca_file {
        Some(path) => ("tls.ca_file", path.to_path_buf()),
        None => ("the system CA bundle", system_bundle()?),
    };
    let mut roots = rustls::RootCertStore::empty();
    let (added, _ignored) = roots.add_parsable_certificates(read_certificates(what, &path)?);
    if added == 0 {
        return Err(TlsError::NoCertificate { what, path });
    }
    Ok(roots)
}

#[cfg(any(feature = "mqtt", feature = "homeassistant"))]
fn system_bundle() -> Result<PathBuf, TlsError> {
    let from_env = std::env::var_os("SSL_CERT_FILE").map(PathBuf::from);
    let candidates: Vec<PathBuf> = from_env
        .into_iter()
        .chain(SYSTEM_CA_BUNDLES.iter().map(PathBuf::from))
        .collect();
    candidates
        .iter()
        .find(|path| path.is_file())
        .cloned()
        .ok_or_else(|| TlsError::NoSystemRoots {
            tried: candidates
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
        })
}

#[cfg(any(feature = "mqtt", feature = "homeassistant"))]
fn open(
    what: &'static str,
    path: &std::path::Path,
) -> Result<std::io::BufReader<std::fs::File>, TlsError> {
    std::fs::File::open(path)
        .map(std::io::BufReader::new)
        .map_err(|source| TlsError::Read {
            what,
            path: path.to_path_buf(),
            source,
        })
}

#[cfg(any(feature = "mqtt", feature = "homeassistant"))]
fn read_certificates(
    what: &'static str,
    path: &std::path::Path,
) -> Result<Vec<rustls::pki_types::CertificateDer<'static>>, TlsError> {
    let certs = rustls_pemfile::certs(&mut open(what, path)?)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| TlsError::Read {
            what,
            path: path.to_path_buf(),
            source,
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate {
            what,
            path: path.to_path_buf(),
        });
    }
    Ok(certs)
}

#[cfg(any(feature = "mqtt", feature = "homeassistant"))]
fn read_private_key(
    path: &std::path::Path,
) -> Result<rustls::pki_types::PrivateKeyDer<'static>, TlsError> {
    rustls_pemfile::private_key(&mut open("tls.key_file", path)?)
        .map_err(|source| TlsError::Read {
            what: "tls.key_file",
            path: path.to_path_buf(),
            source,
        })?
        .ok_or_else(|| TlsError::NoPrivateKey {
            path: path.to_path_buf(),
        })
}

#[cfg(all(test, any(feature = "mqtt", feature = "homeassistant")))]
mod tests {
    use super::*;

    fn write(dir: &std::path::Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn errors_name_the_file_and_never_its_contents() {
        let dir = std::env::temp_dir().join(format!("atalaya-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let missing = dir.join("missing.pem");
        let err = client_config(&TlsConfig {
            ca_file: Some(missing.clone()),
            ..TlsConfig::default()
        })
        .unwrap_err();
        assert!(matches!(err, TlsError::Read { .. }));
        assert!(err.to_string().contains("tls.ca_file"), "{err}");
        assert!(
            err.to_string().contains(&missing.display().to_string()),
            "{err}"
        );

        let secret = write(&dir, "not-a-cert.pem", "hunter2 is not a certificate\n");
        let err = client_config(&TlsConfig {
            ca_file: Some(secret.clone()),
            ..TlsConfig::default()
        })
        .unwrap_err();
        assert!(matches!(err, TlsError::NoCertificate { .. }), "{err}");
        assert!(!err.to_string().contains("hunter2"), "{err}");

        let err = client_config(&TlsConfig {
            ca_file: None,
            cert_file: Some(secret),
            key_file: None,
        });
        // Either the system bundle is missing (a bare container) or the half pair is refused.
        assert!(matches!(
            err,
            Err(TlsError::HalfClientAuth | TlsError::NoSystemRoots { .. })
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
