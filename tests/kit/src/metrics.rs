//! Reading one sample out of a test's metrics registry, or out of a `/metrics` page.

use prometheus::Registry;

/// The value of metric `family` whose labels include every one of `labels` (0 if none). A
/// metric is a counter or a gauge; the other reads 0.
pub fn sample(registry: &Registry, family: &str, labels: &[(&str, &str)]) -> f64 {
    registry
        .gather()
        .iter()
        .filter(|f| f.name() == family)
        .flat_map(|f| f.get_metric())
        .find(|m| {
            labels.iter().all(|(name, value)| {
                m.get_label()
                    .iter()
                    .any(|l| l.name() == *name && l.value() == *value)
            })
        })
        .map(|m| m.get_counter().get_value() + m.get_gauge().get_value())
        .unwrap_or(0.0)
}

/// The value of the sample `name` with exactly these `labels` (`{a="b"}`, or "" for none) in
/// a Prometheus text exposition (what `/metrics` serves).
pub fn sample_text(metrics: &str, name: &str, labels: &str) -> Option<f64> {
    let key = format!("{name}{labels} ");
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(&key))
        .map(|v| v.trim().parse().expect("a number"))
}
