//! The compiled route tree, and which routes an alert's labels reach (Alertmanager's
//! depth-first matching with `continue`).
//!
//! Matching is Alertmanager's `Route.Match` (`dispatch/route.go`): a route whose matchers
//! hold tries its children in order; each matching child adds what it matches, and a
//! matching child without `continue` stops its later siblings; a route none of whose
//! children match is itself the answer. Settings are resolved when the tree is compiled
//! (see [`crate::routing::config`]), so each [`Route`] carries its own.

use std::collections::HashSet;
use std::time::Duration;

use atalaya_bus::Labels;

use super::matcher::Matchers;

/// Alertmanager's default `group_wait` at the root.
pub const DEFAULT_GROUP_WAIT: Duration = Duration::from_secs(30);
/// Alertmanager's default `group_interval` at the root.
pub const DEFAULT_GROUP_INTERVAL: Duration = Duration::from_secs(5 * 60);
/// Alertmanager's default `repeat_interval` at the root.
pub const DEFAULT_REPEAT_INTERVAL: Duration = Duration::from_secs(4 * 60 * 60);

/// Which labels group alerts into one notification.
#[derive(Debug, Clone, PartialEq)]
pub enum GroupBy {
    /// `group_by: ['...']`: every label; each alert is its own group.
    All,
    /// These labels (possibly none: one group for the route).
    Labels(Vec<String>),
}

/// A route with every inherited setting resolved.
#[derive(Debug, Clone)]
pub struct Route {
    /// Alertmanager's route key: the matchers of the path from the root, as in
    /// `{}/{severity="critical"}`, with the child index appended where siblings would
    /// otherwise share one (so group keys are unique and stable across reloads when the
    /// tree does not change).
    pub id: String,
    pub matchers: Matchers,
    pub receiver: String,
    pub group_by: GroupBy,
    pub group_wait: Duration,
    pub group_interval: Duration,
    pub repeat_interval: Duration,
    /// `continue`: after this route matches, siblings after it are still tried.
    pub continue_matching: bool,
    /// Names of time intervals during which notifications are muted.
    pub mute_time_intervals: Vec<String>,
    /// Names of time intervals outside which notifications are muted (empty: always active).
    pub active_time_intervals: Vec<String>,
    pub routes: Vec<Route>,
}

impl Route {
    /// A root route sending everything to `receiver`, with Alertmanager's defaults: one
    /// group, 30 s wait, 5 min interval, 4 h repeat.
    pub fn root(receiver: &str) -> Self {
        Self {
            id: String::new(),
            matchers: Matchers::default(),
            receiver: receiver.to_owned(),
            group_by: GroupBy::Labels(Vec::new()),
            group_wait: DEFAULT_GROUP_WAIT,
            group_interval: DEFAULT_GROUP_INTERVAL,
            repeat_interval: DEFAULT_REPEAT_INTERVAL,
            continue_matching: false,
            mute_time_intervals: Vec::new(),
            active_time_intervals: Vec::new(),
            routes: Vec::new(),
        }
    }

    /// A child of `self` with `matchers` and every inheritable setting (receiver, grouping,
    /// timings) taken from `self`, as Alertmanager does for what a route leaves unset.
    /// `continue`, time intervals and children are not inherited.
    pub fn child(&self, matchers: Matchers) -> Self {
        Self {
            id: String::new(),
            matchers,
            receiver: self.receiver.clone(),
            group_by: self.group_by.clone(),
            group_wait: self.group_wait,
            group_interval: self.group_interval,
            repeat_interval: self.repeat_interval,
            continue_matching: false,
            mute_time_intervals: Vec::new(),
            active_time_intervals: Vec::new(),
            routes: Vec::new(),
        }
    }

    /// Every route of this subtree, depth first, this one first (Alertmanager's `Walk`).
    pub fn walk(&self) -> Vec<&Route> {
        let mut all = vec![self];
        for child in &self.routes {
            all.extend(child.walk());
        }
        all
    }

    /// Sets the ids of this route's descendants from its own, as [`RouteTree::new`]
    /// describes.
    fn assign_child_ids(&mut self) {
        let mut seen = HashSet::new();
        for (index, child) in self.routes.iter_mut().enumerate() {
            let key = format!("{}/{}", self.id, child.matchers.alertmanager_string());
            child.id = if seen.insert(key.clone()) {
                key
            } else {
                format!("{key}/{index}")
            };
            child.assign_child_ids();
        }
    }

    /// Adds the routes `labels` reach under this one to `found`; false if this route's
    /// matchers do not hold.
    fn collect<'a>(&'a self, labels: &Labels, found: &mut Vec<&'a Route>) -> bool {
        if !self.matchers.matches(labels) {
            return false;
        }
        let before = found.len();
        for child in &self.routes {
            if child.collect(labels, found) && !child.continue_matching {
                break;
            }
        }
        if found.len() == before {
            found.push(self);
        }
        true
    }
}

/// The route tree.
#[derive(Debug, Clone)]
pub struct RouteTree {
    pub root: Route,
}

impl RouteTree {
    /// The tree under `root`, with every route's `id` set to Alertmanager's route key: `{}`
    /// for the root, then the parent's id, `/`, and the route's matchers as Alertmanager
    /// prints them (`{}/{severity="critical"}/{room=~"kitchen|hall"}`). When a route's key
    /// equals an earlier sibling's, `/` and its index among its siblings follow (as in
    /// Alertmanager's `Route.ID()`), so ids are unique while group keys of distinct routes
    /// stay as Alertmanager writes them.
    pub fn new(mut root: Route) -> Self {
        root.id = root.matchers.alertmanager_string();
        root.assign_child_ids();
        Self { root }
    }

    /// The routes an alert with `labels` reaches, in Alertmanager's order: depth first; a
    /// route whose children match none is itself the answer; a matching child without
    /// `continue` stops its siblings. The root always matches.
    pub fn matching(&self, labels: &Labels) -> Vec<&Route> {
        let mut found = Vec::new();
        // The root has no matchers (the policy refuses them), so it always matches.
        self.root.collect(labels, &mut found);
        found
    }

    /// The receivers reached, comma-separated, exactly as `amtool config routes test` prints
    /// them.
    ///
    /// As amtool: one receiver per route reached, in order, repeats kept
    /// (`team-a,team-a,default` when two routes of `team-a` match).
    pub fn receivers_line(&self, labels: &Labels) -> String {
        let receivers: Vec<&str> = self
            .matching(labels)
            .iter()
            .map(|r| r.receiver.as_str())
            .collect();
        receivers.join(",")
    }

    /// The route with this id.
    pub fn route(&self, id: &str) -> Option<&Route> {
        self.root.walk().into_iter().find(|r| r.id == id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn route(parent: &Route, matchers: &str, receiver: Option<&str>) -> Route {
        let mut matchers = Matchers::parse(matchers).unwrap();
        matchers.sort();
        let mut child = parent.child(matchers);
        if let Some(receiver) = receiver {
            child.receiver = receiver.to_owned();
        }
        child
    }

    /// root (default)
    /// ├─ severity="critical" → pager, continue
    /// │   └─ room=~"kitchen|hall" → house
    /// ├─ team="ops" → ops
    /// │   ├─ severity="info" (inherits ops) → ops
    /// │   └─ alertname="Fire" → fire, continue
    /// └─ team="ops" → ops-copy
    fn tree() -> RouteTree {
        let root = Route::root("default");
        let mut critical = route(&root, r#"severity="critical""#, Some("pager"));
        critical.continue_matching = true;
        let house = route(&critical, r#"room=~"kitchen|hall""#, Some("house"));
        critical.routes.push(house);
        let mut ops = route(&root, r#"team="ops""#, Some("ops"));
        let info = route(&ops, r#"severity="info""#, None);
        let mut fire = route(&ops, "alertname=Fire", Some("fire"));
        fire.continue_matching = true;
        ops.routes.extend([info, fire]);
        let ops_copy = route(&root, r#"team="ops""#, Some("ops-copy"));
        let mut root = root;
        root.routes.extend([critical, ops, ops_copy]);
        RouteTree::new(root)
    }

    #[test]
    fn unmatched_alerts_go_to_the_root() {
        assert_eq!(tree().receivers_line(&labels(&[])), "default");
        assert_eq!(
            tree().receivers_line(&labels(&[("team", "dev"), ("severity", "warning")])),
            "default"
        );
    }

    #[test]
    fn a_route_with_no_matching_child_is_the_answer() {
        let critical = labels(&[("severity", "critical"), ("room", "garage")]);
        assert_eq!(tree().receivers_line(&critical), "pager");
        let kitchen = labels(&[("severity", "critical"), ("room", "kitchen")]);
        assert_eq!(tree().receivers_line(&kitchen), "house");
    }

    #[test]
    fn continue_lets_later_siblings_match_and_repeats_are_kept() {
        let alert = labels(&[("severity", "critical"), ("room", "hall"), ("team", "ops")]);
        // critical continues, so ops is tried; ops stops its sibling ops-copy.
        assert_eq!(tree().receivers_line(&alert), "house,ops");
        let fire = labels(&[("team", "ops"), ("alertname", "Fire"), ("severity", "info")]);
        // info matches first and does not continue: fire is not tried.
        assert_eq!(tree().receivers_line(&fire), "ops");
        let fire = labels(&[("team", "ops"), ("alertname", "Fire")]);
        assert_eq!(tree().receivers_line(&fire), "fire");
    }

    #[test]
    fn duplicates_are_kept_as_amtool_prints_them() {
        let root = Route::root("default");
        let mut a = route(&root, "team=ops", Some("ops"));
        a.continue_matching = true;
        let b = route(&root, "severity=~.+", Some("ops"));
        let mut root = root;
        root.routes.extend([a, b]);
        let tree = RouteTree::new(root);
        let alert = labels(&[("team", "ops"), ("severity", "x")]);
        assert_eq!(tree.receivers_line(&alert), "ops,ops");
        let matched: Vec<&str> = tree
            .matching(&alert)
            .iter()
            .map(|r| r.id.as_str())
            .collect();
        assert_eq!(matched, [r#"{}/{team="ops"}"#, r#"{}/{severity=~".+"}"#]);
    }

    #[test]
    fn ids_are_alertmanager_route_keys_made_unique() {
        let tree = tree();
        let ids: Vec<&str> = tree.root.walk().iter().map(|r| r.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "{}",
                r#"{}/{severity="critical"}"#,
                r#"{}/{severity="critical"}/{room=~"kitchen|hall"}"#,
                r#"{}/{team="ops"}"#,
                r#"{}/{team="ops"}/{severity="info"}"#,
                r#"{}/{team="ops"}/{alertname="Fire"}"#,
                r#"{}/{team="ops"}/2"#,
            ]
        );
        assert_eq!(
            tree.route(r#"{}/{team="ops"}/2"#).unwrap().receiver,
            "ops-copy"
        );
    }

    #[test]
    fn children_inherit_receiver_grouping_and_timings_only() {
        let mut root = Route::root("default");
        root.group_by = GroupBy::All;
        root.repeat_interval = Duration::from_secs(60);
        root.mute_time_intervals = vec!["night".to_owned()];
        root.continue_matching = true;
        let child = root.child(Matchers::default());
        assert_eq!(child.receiver, "default");
        assert_eq!(child.group_by, GroupBy::All);
        assert_eq!(child.repeat_interval, Duration::from_secs(60));
        assert_eq!(child.group_wait, DEFAULT_GROUP_WAIT);
        assert!(child.mute_time_intervals.is_empty());
        assert!(!child.continue_matching);
    }
}
