//! Whether a notification goes out silently: the router's decision, carried on the
//! notification as [`Notification::silent`], so receivers only obey it.

use std::collections::HashMap;

use atalaya_bus::delivery::integration::{Integration, QuietRule};
use atalaya_bus::delivery::notification::Notification;
use jiff::Timestamp;

use super::time_interval::NamedTimeInterval;

/// Whether `notification`, created at `now` for `integration`, goes out silently: always
/// (Telegram's `disable_notifications`), or when one of its `quiet` rules applies (time
/// intervals looked up in `intervals`, the policy's named intervals). Kinds that cannot send
/// silently have no quiet settings, so they are never silent.
pub fn is_quiet(
    integration: &Integration,
    notification: &Notification,
    intervals: &HashMap<String, NamedTimeInterval>,
    now: Timestamp,
) -> bool {
    let quiet = &integration.quiet;
    quiet.always
        || quiet
            .rules
            .iter()
            .any(|rule| applies(rule, notification, intervals, now))
}

/// Whether `rule` holds: both of what it gives (at least one is given).
fn applies(
    rule: &QuietRule,
    notification: &Notification,
    intervals: &HashMap<String, NamedTimeInterval>,
    now: Timestamp,
) -> bool {
    if rule.severities.is_empty() && rule.time_intervals.is_empty() {
        return false;
    }
    let by_severity = rule.severities.is_empty()
        || (!notification.alerts.is_empty()
            && notification.alerts.iter().all(|a| {
                a.labels
                    .get("severity")
                    .is_some_and(|s| rule.severities.iter().any(|x| x == s))
            }));
    let by_time = rule.time_intervals.is_empty()
        || rule
            .time_intervals
            .iter()
            .any(|name| intervals.get(name).is_some_and(|i| i.contains(now)));
    by_severity && by_time
}
