//! [`MailSender`]: one mail per notification, through a pooled SMTP transport per server
//! and account.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::config::{EmailConfig, MailTls};
use atalaya_bus::delivery::notification::Notification;
use atalaya_bus::fingerprint::fnv1a;
use lettre::transport::smtp::PoolConfig;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use tracing::warn;

use super::error::MailError;
use super::message::build_message;
use crate::secret::read_secret;
use crate::templates::MessageTemplates;

type Transport = AsyncSmtpTransport<Tokio1Executor>;

/// Connections kept per transport (one server and account).
const POOL_SIZE: u32 = 2;
/// An idle pooled connection is closed after this long.
const POOL_IDLE: Duration = Duration::from_secs(60);
/// Transports kept; past this many (settings changed again and again), the cache starts
/// afresh.
const MAX_TRANSPORTS: usize = 32;

/// Sends notifications by mail. Cheap to clone: clones share the transports.
#[derive(Clone, Default)]
pub struct MailSender {
    /// By everything the connection depends on (the password as a hash).
    transports: Arc<Mutex<HashMap<u64, Transport>>>,
    templates: MessageTemplates,
}

impl MailSender {
    /// Sends `notification` as one mail to every `to` of `config`.
    pub async fn send(
        &self,
        config: &EmailConfig,
        notification: &Notification,
        external_url: &str,
    ) -> Result<(), MailError> {
        let password = match &config.auth_password {
            Some(source) => Some(read_secret(source).await?),
            None => None,
        };
        let (message, failures) =
            build_message(config, notification, external_url, &self.templates)?;
        for failure in failures {
            warn!(
                receiver = %notification.receiver,
                notification = %notification.id,
                error = %failure,
                "An email template failed; the built-in one is sent instead."
            );
        }
        let transport = self.transport(config, password.as_deref()).await?;
        transport
            .send(message)
            .await
            .map(drop)
            .map_err(|e| MailError::from_smtp(&e, password.as_deref().unwrap_or_default()))
    }

    /// The pooled transport for `config` (and this password), made when first needed.
    async fn transport(
        &self,
        config: &EmailConfig,
        password: Option<&str>,
    ) -> Result<Transport, MailError> {
        let key = fnv1a(&[
            &config.host,
            &config.port.to_string(),
            &format!("{:?}/{}", config.tls, config.require_tls),
            config.auth_username.as_deref().unwrap_or_default(),
            password.unwrap_or_default(),
            &format!("{:?}", config.ca_file),
            config.server_name.as_deref().unwrap_or_default(),
            &config.insecure_skip_verify.to_string(),
            config.hello.as_deref().unwrap_or_default(),
            &format!("{:?}", config.timeout),
        ]);
        if let Some(transport) = self.cached(key) {
            return Ok(transport);
        }
        let transport = build_transport(config, password).await?;
        let mut transports = self.transports.lock().unwrap_or_else(|e| e.into_inner());
        if transports.len() >= MAX_TRANSPORTS {
            transports.clear();
        }
        transports.insert(key, transport.clone());
        Ok(transport)
    }

    fn cached(&self, key: u64) -> Option<Transport> {
        self.transports
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
            .cloned()
    }
}

async fn build_transport(
    config: &EmailConfig,
    password: Option<&str>,
) -> Result<Transport, MailError> {
    let tls = match config.tls {
        MailTls::None => Tls::None,
        mode => {
            let params = tls_parameters(config).await?;
            match mode {
                MailTls::Implicit => Tls::Wrapper(params),
                _ if config.require_tls => Tls::Required(params),
                _ => Tls::Opportunistic(params),
            }
        }
    };
    let hello = config
        .hello
        .clone()
        .unwrap_or_else(|| default_hello(&config.from));
    let mut builder = Transport::builder_dangerous(&config.host)
        .port(config.port)
        .tls(tls)
        .hello_name(ClientId::Domain(hello))
        .timeout(Some(config.timeout))
        .pool_config(
            PoolConfig::new()
                .max_size(POOL_SIZE)
                .idle_timeout(POOL_IDLE),
        );
    if let Some(username) = &config.auth_username {
        builder = builder.credentials(Credentials::new(
            username.clone(),
            password.unwrap_or_default().to_owned(),
        ));
    }
    Ok(builder.build())
}

async fn tls_parameters(config: &EmailConfig) -> Result<TlsParameters, MailError> {
    let name = config
        .server_name
        .clone()
        .unwrap_or_else(|| config.host.clone());
    let mut builder = TlsParameters::builder(name)
        .dangerous_accept_invalid_certs(config.insecure_skip_verify)
        .dangerous_accept_invalid_hostnames(config.insecure_skip_verify);
    if let Some(path) = &config.ca_file {
        let pem = tokio::fs::read(path).await.map_err(|e| MailError::CaFile {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        let certificate = Certificate::from_pem(&pem).map_err(|e| MailError::Tls(e.to_string()))?;
        builder = builder.add_root_certificate(certificate);
    }
    builder
        .build_rustls()
        .map_err(|e| MailError::Tls(e.to_string()))
}

/// The EHLO name when `hello` is not given: the `from` address' domain.
fn default_hello(from: &str) -> String {
    from.rsplit_once('@')
        .map(|(_, d)| d.trim_end_matches('>').trim().to_owned())
        .filter(|d| !d.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}
