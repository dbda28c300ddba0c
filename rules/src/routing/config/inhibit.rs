//! Compiling `inhibit_rules:`: source and target matchers (the `*_matchers` lists or the
//! legacy `*_match` and `*_match_re` maps) and the `equal` label names.

use atalaya_bus::event::is_valid_label_name;

use super::Compiler;
use super::routes::{MatcherKeys, MatcherSpecs};
use super::spec::InhibitRuleSpec;
use crate::routing::inhibit::InhibitRule;
use crate::yaml::Node;

impl Compiler<'_> {
    pub(super) fn inhibit_rules(&mut self, node: &Node) -> Vec<InhibitRule> {
        let mut rules = Vec::new();
        for item in self.items(node, "inhibit_rules") {
            let Some(spec) = self.decode::<InhibitRuleSpec>(item) else {
                continue;
            };
            let before = self.errors.len();
            let source = self.matchers(
                item,
                &MatcherKeys {
                    equal: "source_match",
                    regex: "source_match_re",
                    list: "source_matchers",
                },
                &MatcherSpecs {
                    equal: spec.source_match.as_ref(),
                    regex: spec.source_match_re.as_ref(),
                    list: spec.source_matchers.as_deref(),
                },
            );
            let target = self.matchers(
                item,
                &MatcherKeys {
                    equal: "target_match",
                    regex: "target_match_re",
                    list: "target_matchers",
                },
                &MatcherSpecs {
                    equal: spec.target_match.as_ref(),
                    regex: spec.target_match_re.as_ref(),
                    list: spec.target_matchers.as_deref(),
                },
            );
            let equal = spec.equal.unwrap_or_default();
            let equal_items = item
                .get("equal")
                .map(|n| self.items(n, "equal"))
                .unwrap_or_default();
            for (label, label_node) in equal.iter().zip(equal_items) {
                if !is_valid_label_name(label) {
                    self.error(
                        label_node.position,
                        format!("equal: `{label}` is not a label name"),
                    );
                }
            }
            if self.errors.len() == before {
                rules.push(InhibitRule {
                    source,
                    target,
                    equal,
                });
            }
        }
        rules
    }
}
