//! `homeassistant:` — where Home Assistant is, how to log in, which entities to take. Parsed
//! from the service config by the binary; [`Endpoint::parse`] is the one reading of `url`,
//! shared by the binary's checks and the connector.

use std::path::PathBuf;
use std::time::Duration;

use atalaya_bus::Pattern;
use atalaya_bus::secret::Secret;

use crate::tls::TlsConfig;

/// The path of Home Assistant's WebSocket API.
pub const WEBSOCKET_PATH: &str = "/api/websocket";

/// The Home Assistant source.
#[derive(Debug, Clone)]
pub struct HomeAssistantConfig {
    /// Where the WebSocket API is.
    pub endpoint: Endpoint,
    /// A long-lived access token (from `token_file`, or `ATALAYA__HOMEASSISTANT__TOKEN`), as
    /// read at start.
    pub token: Secret,
    /// The file the token came from, read again before every connection attempt, so a
    /// rotated token (a Kubernetes Secret updated in place) is used without a restart.
    pub token_file: Option<PathBuf>,
    /// Only entities whose subject (`ha/<domain>/<object_id>`) matches one of these; `+name`
    /// captures become labels. Empty: every entity.
    pub entities: Vec<Pattern>,
    /// Back-off between connection attempts: doubling from the first to the second, with
    /// jitter. Default 1 s to 60 s. A refused token waits the maximum.
    pub reconnect_min: Duration,
    pub reconnect_max: Duration,
    /// How often a ping is sent; a ping not answered by the next one means the connection
    /// is dead. Default 30 s.
    pub heartbeat: Duration,
    /// Whether `/readyz` waits for (and follows) the connection. Default false (see
    /// `MqttConfig::required_for_ready`).
    pub required_for_ready: bool,
    /// TLS for `wss://`: a private CA. Without it, the system's CA bundle.
    pub tls: Option<TlsConfig>,
    /// The largest WebSocket message (and frame) read. A larger one is counted
    /// (`stage="size"`) and the connection made again. Default 4 MiB; the entity registry
    /// of a large installation is the biggest message Home Assistant sends.
    pub max_frame_bytes: usize,
}

impl HomeAssistantConfig {
    /// Defaults for Home Assistant at `endpoint`, logging in with `token`.
    pub fn new(endpoint: Endpoint, token: Secret) -> Self {
        Self {
            endpoint,
            token,
            token_file: None,
            entities: Vec::new(),
            reconnect_min: Duration::from_secs(1),
            reconnect_max: Duration::from_secs(60),
            heartbeat: Duration::from_secs(30),
            required_for_ready: false,
            tls: None,
            max_frame_bytes: 4 << 20,
        }
    }
}

/// Home Assistant's WebSocket address, read from `url`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// `ws://host:port/api/websocket` or `wss://…`: what is connected to.
    pub url: String,
    /// `homeassistant://host:port`: the `source` of every event.
    pub source: String,
    /// `wss`: TLS.
    pub tls: bool,
}

impl Endpoint {
    /// Reads `ws://host:port/api/websocket`, `wss://…`, or Home Assistant's web address
    /// `http://host:8123` / `https://…` (the WebSocket path is added; `https` means `wss`).
    /// Without a port, the scheme's (80, 443). No user info, query or fragment.
    pub fn parse(url: &str) -> Result<Self, String> {
        let url = url.trim();
        let Some((scheme, rest)) = url.split_once("://") else {
            return Err(format!(
                "`{url}` is not a URL; write ws://homeassistant.local:8123/api/websocket or http://homeassistant.local:8123"
            ));
        };
        let (tls, web) = match scheme.to_ascii_lowercase().as_str() {
            "ws" => (false, false),
            "wss" => (true, false),
            "http" => (false, true),
            "https" => (true, true),
            other => {
                return Err(format!(
                    "`{other}` is not a scheme Home Assistant is reached by; use ws, wss, http or https"
                ));
            }
        };
        if rest.contains(['?', '#']) {
            return Err("a query or fragment has no place in the URL".to_owned());
        }
        let (authority, path) = match rest.find('/') {
            Some(at) => rest.split_at(at),
            None => (rest, ""),
        };
        if authority.contains('@') {
            return Err(
                "user info has no place in the URL: the token goes in token_file".to_owned(),
            );
        }
        let (host, port) = split_host_port(authority)?;
        let port = port.unwrap_or(if tls { 443 } else { 80 });
        let path = path.trim_end_matches('/');
        let path = if path.ends_with(WEBSOCKET_PATH) || (!web && !path.is_empty()) {
            path.to_owned()
        } else {
            format!("{path}{WEBSOCKET_PATH}")
        };
        let ws = if tls { "wss" } else { "ws" };
        Ok(Self {
            url: format!("{ws}://{host}:{port}{path}"),
            source: format!("homeassistant://{host}:{port}"),
            tls,
        })
    }
}

/// `host`, `host:port`, `[v6]`, `[v6]:port`.
fn split_host_port(authority: &str) -> Result<(&str, Option<u16>), String> {
    let bad_port = |p: &str| format!("`{p}` is not a port (1 to 65535)");
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let Some((inside, after)) = v6.split_once(']') else {
            return Err(format!(
                "`{authority}`: an IPv6 address needs its closing `]`"
            ));
        };
        let host = &authority[..inside.len() + 2];
        match after {
            "" => (host, None),
            _ => match after.strip_prefix(':') {
                Some(port) => (host, Some(port)),
                None => return Err(format!("`{authority}` is not host:port")),
            },
        }
    } else {
        match authority.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    if host.is_empty() || host.contains(|c: char| c.is_whitespace() || c.is_control()) {
        return Err("the URL names no host".to_owned());
    }
    let port = match port {
        None => None,
        Some(p) => Some(
            p.parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| bad_port(p))?,
        ),
    };
    Ok((host, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn websocket_and_web_addresses_become_the_websocket_url() {
        for (given, url, source, tls) in [
            (
                "ws://homeassistant.local:8123/api/websocket",
                "ws://homeassistant.local:8123/api/websocket",
                "homeassistant://homeassistant.local:8123",
                false,
            ),
            (
                "http://homeassistant.local:8123",
                "ws://homeassistant.local:8123/api/websocket",
                "homeassistant://homeassistant.local:8123",
                false,
            ),
            (
                "HTTPS://ha.example.org/",
                "wss://ha.example.org:443/api/websocket",
                "homeassistant://ha.example.org:443",
                true,
            ),
            (
                "https://proxy.lan/ha",
                "wss://proxy.lan:443/ha/api/websocket",
                "homeassistant://proxy.lan:443",
                true,
            ),
            (
                "ws://[::1]:8123",
                "ws://[::1]:8123/api/websocket",
                "homeassistant://[::1]:8123",
                false,
            ),
            (
                "wss://ha.lan:8443/custom/socket",
                "wss://ha.lan:8443/custom/socket",
                "homeassistant://ha.lan:8443",
                true,
            ),
        ] {
            let endpoint = Endpoint::parse(given).unwrap();
            assert_eq!(endpoint.url, url, "{given}");
            assert_eq!(endpoint.source, source, "{given}");
            assert_eq!(endpoint.tls, tls, "{given}");
        }
    }

    #[test]
    fn what_is_not_an_address_says_why() {
        for (given, says) in [
            ("homeassistant.local:8123", "is not a URL"),
            ("mqtt://broker:1883", "is not a scheme"),
            ("http://user:pw@ha:8123", "token_file"),
            ("http://ha:99999", "is not a port"),
            ("http://ha:0", "is not a port"),
            ("http://:8123", "no host"),
            ("ws://[::1:8123", "closing"),
            ("http://ha:8123/?x=1", "query"),
        ] {
            let error = Endpoint::parse(given).unwrap_err();
            assert!(error.contains(says), "{given}: {error}");
            assert!(!error.contains("pw"), "{error}");
        }
    }
}
