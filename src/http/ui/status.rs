//! `/status`: the version, how long it has been up, the components and broker connections
//! (what `/readyz` reports), and the state store's size on disk.

use std::sync::Arc;

use axum::extract::{OriginalUri, State};
use axum::http::HeaderMap;
use axum::response::Response;
use maud::html;

use super::layout::{Ctx, MAX_LABEL_CHARS, Nav, clip};
use super::text::Text;
use crate::http::ApiState;

pub async fn page(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    OriginalUri(uri): OriginalUri,
) -> Response {
    let ctx = Ctx::new(&state, &headers);
    if let Some(login) = ctx.must_log_in(&uri) {
        return login;
    }
    let report = state.readiness.report();
    let connections = state.connectors.connections();
    let store_path = state.history.store().path().to_owned();
    let store_bytes =
        tokio::task::spawn_blocking(move || std::fs::metadata(&store_path).map(|m| m.len()).ok())
            .await
            .ok()
            .flatten();
    let revision = option_env!("ATALAYA_REVISION").unwrap_or("");
    let live = html! {
        dl.facts {
            dt { (ctx.t(Text::Version)) }
            dd { "atalaya " (env!("CARGO_PKG_VERSION")) @if !revision.is_empty() { " (" code { (revision) } ")" } }
            dt { (ctx.t(Text::Uptime)) }
            dd { (ctx.ago(state.started_at)) }
            dt { (ctx.t(Text::StoreSize)) }
            dd { @match store_bytes { Some(bytes) => (size_text(bytes)), None => (ctx.t(Text::Unknown)) } }
        }
        h2 { (ctx.t(Text::Components)) }
        ul.states {
            @for (name, ready) in &report.components {
                li {
                    span.badge.resolved[*ready].firing[!*ready] {
                        @if *ready { (ctx.t(Text::Ready)) } @else { (ctx.t(Text::NotReady)) }
                    }
                    " " bdi { (clip(name, MAX_LABEL_CHARS)) }
                }
            }
        }
        h2 { (ctx.t(Text::Connectors)) }
        @if connections.is_empty() { p.empty { (ctx.t(Text::NoConnectors)) } }
        ul.states {
            @for (name, connected) in &connections {
                li {
                    span.badge.resolved[*connected].firing[!*connected] {
                        @if *connected { (ctx.t(Text::Connected)) } @else { (ctx.t(Text::Disconnected)) }
                    }
                    " " bdi { (clip(name, MAX_LABEL_CHARS)) }
                }
            }
        }
    };
    ctx.live_page(Nav::Status, ctx.t(Text::Status), html! {}, live)
}

/// `12.3 MB`.
fn size_text(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KB", "MB", "GB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit < UNITS.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn sizes_read_well() {
        assert_eq!(super::size_text(512), "512 B");
        assert_eq!(super::size_text(1_234_567), "1.2 MB");
    }
}
