//! TLS settings shared by the connectors that speak TLS (MQTT, NATS). rustls only.

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
