//! [`ConsoleNotifier`]: a `console_configs` entry — one line per notification on standard
//! output.

use std::io::Write;
use std::sync::{Arc, Mutex};

use atalaya_bus::delivery::{
    DeliveryError, Integration, IntegrationContext, Notification, Notifier, NotifyFuture,
};
use atalaya_bus::yaml::Node;
use serde::Deserialize;

use super::render_notification;
use crate::notifiers::NotifierContext;

/// `console_configs` entry, as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConsoleSpec {
    #[serde(default)]
    send_resolved: Option<bool>,
}

/// Compiles one `console_configs` entry: only `send_resolved` (default true); the console
/// integration has no settings of its own.
pub(super) fn compile(ctx: &mut IntegrationContext<'_>, node: &Node) -> Option<Integration> {
    let spec = ctx.decoder.decode::<ConsoleSpec>(node)?;
    Some(Integration::new(
        "console",
        spec.send_resolved.unwrap_or(true),
        (),
    ))
}

/// Where console notifications are written: standard output in the service, a buffer in
/// tests. One line is written with one call, under the lock.
pub type ConsoleWriter = Arc<Mutex<dyn Write + Send>>;

/// Writes each notification as one line.
pub struct ConsoleNotifier {
    out: ConsoleWriter,
}

impl ConsoleNotifier {
    pub fn open(context: &NotifierContext) -> Arc<dyn Notifier> {
        Arc::new(Self {
            out: Arc::clone(&context.console),
        })
    }
}

impl Notifier for ConsoleNotifier {
    fn kind(&self) -> &'static str {
        "console"
    }

    fn notify<'a>(&'a self, notification: &'a Notification) -> NotifyFuture<'a> {
        let mut line = render_notification(notification);
        line.push('\n');
        let mut out = self.out.lock().unwrap_or_else(|e| e.into_inner());
        let written = out
            .write_all(line.as_bytes())
            .and_then(|()| out.flush())
            .map_err(|e| DeliveryError::transient("write", format!("cannot write: {e}")));
        Box::pin(std::future::ready(written))
    }
}
