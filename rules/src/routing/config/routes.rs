//! Compiling `route:` into a [`RouteTree`], with Alertmanager's rules: settings a route
//! leaves unset come from its parent (receiver, `group_by`, timings), time intervals and
//! `continue` do not; the root needs a receiver and takes every alert (no matchers, no
//! time intervals, no `continue`).

use std::collections::{BTreeMap, HashSet};

use atalaya_bus::event::is_valid_label_name;

use super::spec::{RouteSpec, Text};
use super::{Compiler, Names, did_you_mean};
use crate::routing::matcher::{MatchOp, Matcher, Matchers};
use crate::routing::tree::{GroupBy, Route, RouteTree};
use crate::yaml::{Node, NodeKind};

/// Where a matcher set is written: the keys of its legacy `=` map, legacy `=~` map and
/// matcher list (`match`, `match_re`, `matchers` in a route).
pub(super) struct MatcherKeys {
    pub(super) equal: &'static str,
    pub(super) regex: &'static str,
    pub(super) list: &'static str,
}

/// The written matchers of a route or one side of an inhibition rule.
pub(super) struct MatcherSpecs<'a> {
    pub(super) equal: Option<&'a BTreeMap<String, Text>>,
    pub(super) regex: Option<&'a BTreeMap<String, Text>>,
    pub(super) list: Option<&'a [String]>,
}

impl Compiler<'_> {
    /// The route tree under `route:`; `None` if the root could not be read.
    pub(super) fn route_tree(&mut self, node: &Node, names: &Names) -> Option<RouteTree> {
        if !matches!(node.kind, NodeKind::Map(_)) {
            self.error(
                node.position,
                format!(
                    "`route` must be a mapping (at least `receiver:`), found {}",
                    node.describe()
                ),
            );
            return None;
        }
        Some(RouteTree::new(self.route(node, None, names)))
    }

    /// One route and its children; with errors reported, a best effort.
    fn route(&mut self, node: &Node, parent: Option<&Route>, names: &Names) -> Route {
        let mut route = match parent {
            Some(parent) => parent.child(Matchers::default()),
            None => Route::root(""),
        };
        if let Some(spec) = self.decode::<RouteSpec>(node) {
            self.route_settings(node, &spec, parent.is_none(), names, &mut route);
        }
        if let Some(children) = node.get("routes") {
            for child in self.items(children, "routes") {
                let child = self.route(child, Some(&route), names);
                route.routes.push(child);
            }
        }
        route
    }

    fn route_settings(
        &mut self,
        node: &Node,
        spec: &RouteSpec,
        is_root: bool,
        names: &Names,
        route: &mut Route,
    ) {
        let keys = MatcherKeys {
            equal: "match",
            regex: "match_re",
            list: "matchers",
        };
        let written = MatcherSpecs {
            equal: spec.match_equal.as_ref(),
            regex: spec.match_re.as_ref(),
            list: spec.matchers.as_deref(),
        };
        route.matchers = self.matchers(node, &keys, &written);
        // Alertmanager sorts a route's matchers; its route keys show them sorted.
        route.matchers.sort();

        match spec.receiver.as_deref().filter(|r| !r.is_empty()) {
            Some(receiver) => {
                if !names.receivers.contains(receiver) {
                    let position = node.get("receiver").map_or(node.position, |v| v.position);
                    self.error(
                        position,
                        format!(
                            "unknown receiver `{receiver}`; define it under `receivers:`{}",
                            did_you_mean(receiver, &names.receivers)
                        ),
                    );
                }
                receiver.clone_into(&mut route.receiver);
            }
            None if is_root => self.error(
                node.position,
                "the root route needs a `receiver:`: where alerts no other route takes go",
            ),
            None => {}
        }

        if let Some(group_by) = self.group_by(node, spec.group_by.as_deref()) {
            route.group_by = group_by;
        }
        if let Some(d) = self.duration(node, "group_wait", spec.group_wait.as_ref(), false) {
            route.group_wait = d;
        }
        if let Some(d) = self.duration(node, "group_interval", spec.group_interval.as_ref(), true) {
            route.group_interval = d;
        }
        if let Some(d) = self.duration(node, "repeat_interval", spec.repeat_interval.as_ref(), true)
        {
            route.repeat_interval = d;
        }
        route.continue_matching = spec.continue_matching.unwrap_or(false);
        route.mute_time_intervals = self.interval_names(
            node,
            "mute_time_intervals",
            spec.mute_time_intervals.as_deref(),
            names,
        );
        route.active_time_intervals = self.interval_names(
            node,
            "active_time_intervals",
            spec.active_time_intervals.as_deref(),
            names,
        );

        if is_root {
            let refused = [
                ("match", "matchers: it takes every alert"),
                ("match_re", "matchers: it takes every alert"),
                ("matchers", "matchers: it takes every alert"),
                ("continue", "`continue`: it has no siblings"),
                ("mute_time_intervals", "time intervals"),
                ("active_time_intervals", "time intervals"),
            ];
            for (key, what) in refused {
                if let Some(position) = node.key_position(key) {
                    self.error(position, format!("the root route cannot have {what}"));
                }
            }
        }
    }

    /// `group_by`: `None` when unset or empty (inherited, as in Alertmanager).
    fn group_by(&mut self, node: &Node, labels: Option<&[String]>) -> Option<GroupBy> {
        let labels = labels.filter(|l| !l.is_empty())?;
        let items = node.get("group_by").map(|n| self.items(n, "group_by"));
        let position = |i: usize| {
            items
                .and_then(|items| items.get(i))
                .map_or(node.position, |n| n.position)
        };
        if labels.iter().any(|l| l == "...") {
            if let Some(i) = labels.iter().position(|l| l != "...") {
                self.error(
                    position(i),
                    "group_by: `...` (every label) cannot be combined with label names",
                );
            }
            return Some(GroupBy::All);
        }
        let mut seen = HashSet::new();
        for (i, label) in labels.iter().enumerate() {
            if !is_valid_label_name(label) {
                self.error(
                    position(i),
                    format!("group_by: `{label}` is not a label name"),
                );
            } else if !seen.insert(label) {
                self.error(position(i), format!("group_by: `{label}` is listed twice"));
            }
        }
        Some(GroupBy::Labels(labels.to_vec()))
    }

    /// The names under `key`, each checked to be a defined time interval.
    fn interval_names(
        &mut self,
        node: &Node,
        key: &str,
        written: Option<&[String]>,
        names: &Names,
    ) -> Vec<String> {
        let written = written.unwrap_or_default();
        let items = node
            .get(key)
            .map(|n| self.items(n, key))
            .unwrap_or_default();
        for (name, item) in written.iter().zip(items) {
            if !names.intervals.contains(name) {
                self.error(
                    item.position,
                    format!(
                        "{key}: unknown time interval `{name}`; define it under \
                         `time_intervals:`{}",
                        did_you_mean(name, &names.intervals)
                    ),
                );
            }
        }
        written.to_vec()
    }

    /// The matchers written under `keys` of `node`, in the order written (legacy `=` map,
    /// legacy `=~` map, then the list), each error at its key or string.
    pub(super) fn matchers(
        &mut self,
        node: &Node,
        keys: &MatcherKeys,
        written: &MatcherSpecs<'_>,
    ) -> Matchers {
        let mut matchers = Vec::new();
        for (key, map, op) in [
            (keys.equal, written.equal, MatchOp::Equal),
            (keys.regex, written.regex, MatchOp::Regex),
        ] {
            let (Some(map), Some(map_node)) = (map, node.get(key)) else {
                continue;
            };
            for (name, value) in map {
                match Matcher::new(name, op, value.as_str()) {
                    Ok(m) => matchers.push(m),
                    Err(e) => {
                        let position = if is_valid_label_name(name) {
                            map_node.get(name).map(|v| v.position)
                        } else {
                            map_node.key_position(name)
                        };
                        self.error(
                            position.unwrap_or(map_node.position),
                            format!("{key}: {}", e.message),
                        );
                    }
                }
            }
        }
        if let (Some(list), Some(list_node)) = (written.list, node.get(keys.list)) {
            let items = self.items(list_node, keys.list);
            for (i, text) in list.iter().enumerate() {
                match Matchers::parse(text) {
                    Ok(parsed) => matchers.extend(parsed.0),
                    Err(e) => {
                        let position = items.get(i).map_or(list_node.position, |item| {
                            self.inside(item, e.column.saturating_sub(1))
                        });
                        self.error(position, format!("{}: {}", keys.list, e.message));
                    }
                }
            }
        }
        Matchers(matchers)
    }
}
