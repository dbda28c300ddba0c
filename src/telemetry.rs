//! Logs and the metrics registry.

use std::io::IsTerminal;

use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use prometheus::{Encoder, IntGaugeVec, Opts, Registry, TextEncoder};
use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Installs the global `tracing` subscriber: text (colored on a terminal) or JSON lines, on
/// stderr. Stdout belongs to the console receiver.
pub fn init_logging(format: LogFormat, filter: &str) {
    // Client libraries log every connection attempt; their warnings are enough unless the
    // filter names them.
    let mut directives = filter.to_owned();
    for noisy in ["async_nats", "rumqttc"] {
        if !filter.contains(noisy) {
            directives.push_str(&format!(",{noisy}=warn"));
        }
    }
    // kube warns at every retry of a refused watch and at every resumed watch stream; the
    // Kubernetes bridge logs those itself, once per outage, saying what to do.
    for noisy in ["kube_runtime", "kube_client"] {
        if !filter.contains(noisy) {
            directives.push_str(&format!(",{noisy}=error"));
        }
    }
    // The filter was validated with the config; fall back to `info` rather than fail here.
    let filter = EnvFilter::builder()
        .parse(&directives)
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .init(),
    }
}

/// A registry with `atalaya_build_info` and the process metrics (`process_*`: resident
/// memory, open and maximum file descriptors, CPU seconds, threads, start time) in it.
pub fn new_registry() -> prometheus::Result<Registry> {
    let registry = Registry::new();
    let info = IntGaugeVec::new(
        Opts::new(
            "atalaya_build_info",
            "The running atalaya version (always 1).",
        ),
        &["version"],
    )?;
    info.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
    registry.register(Box::new(info))?;
    #[cfg(target_os = "linux")]
    registry.register(Box::new(
        prometheus::process_collector::ProcessCollector::for_self(),
    ))?;
    Ok(registry)
}

/// `registry` as `/metrics` answers it (Prometheus's text format), or a 500 saying why not.
pub fn metrics_response(registry: &Registry) -> Response {
    let mut text = Vec::new();
    match TextEncoder::new().encode(&registry.gather(), &mut text) {
        Ok(()) => (
            [(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
            text,
        )
            .into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot encode metrics: {e}\n"),
        )
            .into_response(),
    }
}
