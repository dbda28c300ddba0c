//! Bounding the work of an evaluation. cel has no evaluation budget, and its macros
//! (`all`, `exists`, `map`, `filter`) are loops: five nested over a 100-item list are 10¹⁰
//! steps, and a rule file of 1.5 KB froze the engine for good. So:
//!
//! - at compile time, loops nest at most [`MAX_LOOP_NESTING`] deep, string literals inside a
//!   loop are at most [`MAX_LOOP_STRING_BYTES`] long, and the loops over the expression's own
//!   list literals stay within [`LOOP_BUDGET`] steps;
//! - at run time, before an expression with loops is evaluated, the longest list its
//!   variables hold, raised to its nesting, must stay within [`LOOP_BUDGET`] as well —
//!   otherwise the evaluation fails (counted and logged like any evaluation error) instead
//!   of stalling every other rule.

use cel::common::ast::{Expr, IdedExpr, LiteralValue};

use super::tree::for_each_child;

/// How deeply loops (`all`, `exists`, `exists_one`, `map`, `filter`) may nest.
pub const MAX_LOOP_NESTING: u32 = 2;

/// The most loop steps one evaluation may take: the longest list it can iterate raised to
/// its loop nesting.
pub const LOOP_BUDGET: u64 = 100_000;

/// The longest string literal inside a loop: each step may copy it.
pub const MAX_LOOP_STRING_BYTES: usize = 256;

/// The loops of an expression, as far as its syntax tells.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Loops {
    /// How deeply loops nest (0: none).
    pub nesting: u32,
    /// The longest list literal in the expression.
    pub longest_literal: usize,
}

impl Loops {
    /// The steps loops over lists of `longest` items would take.
    pub fn steps(&self, longest: usize) -> u64 {
        (longest.max(1) as u64).saturating_pow(self.nesting)
    }

    /// Whether evaluating over variables whose longest list has `longest` items stays
    /// within [`LOOP_BUDGET`].
    pub fn within_budget(&self, longest: usize) -> bool {
        self.nesting == 0 || self.steps(longest.max(self.longest_literal)) <= LOOP_BUDGET
    }
}

/// Why an expression's loops are refused: the node at fault and the message.
pub(super) struct LoopError {
    pub id: u64,
    pub message: String,
}

/// Measures the loops of `ast`, refusing what no evaluation could afford.
pub(super) fn measure(ast: &IdedExpr) -> Result<Loops, LoopError> {
    let mut loops = Loops::default();
    walk(ast, 0, &mut loops)?;
    if !loops.within_budget(0) {
        return Err(LoopError {
            id: ast.id,
            message: format!(
                "expression loops too much: {} steps over its list of {} items, the limit is \
                 {LOOP_BUDGET}",
                loops.steps(loops.longest_literal),
                loops.longest_literal
            ),
        });
    }
    Ok(loops)
}

fn walk(expr: &IdedExpr, depth: u32, loops: &mut Loops) -> Result<(), LoopError> {
    match &expr.expr {
        Expr::Comprehension(c) => {
            // The range is computed once, outside the loop; the rest runs at every step.
            walk(&c.iter_range, depth, loops)?;
            walk(&c.accu_init, depth, loops)?;
            let inner = depth + 1;
            if inner > MAX_LOOP_NESTING {
                return Err(LoopError {
                    id: expr.id,
                    message: format!(
                        "loops (all, exists, map, filter) nest more than {MAX_LOOP_NESTING} \
                         deep"
                    ),
                });
            }
            loops.nesting = loops.nesting.max(inner);
            for body in [&c.loop_cond, &c.loop_step, &c.result] {
                walk(body, inner, loops)?;
            }
            return Ok(());
        }
        Expr::List(list) => loops.longest_literal = loops.longest_literal.max(list.elements.len()),
        Expr::Map(map) => loops.longest_literal = loops.longest_literal.max(map.entries.len()),
        Expr::Literal(LiteralValue::String(s)) if depth > 0 && s.len() > MAX_LOOP_STRING_BYTES => {
            return Err(LoopError {
                id: expr.id,
                message: format!(
                    "a string inside a loop is {} bytes long, the limit is \
                     {MAX_LOOP_STRING_BYTES}",
                    s.len()
                ),
            });
        }
        _ => {}
    }
    let mut result = Ok(());
    for_each_child(expr, &mut |child| {
        if result.is_ok() {
            result = walk(child, depth, loops);
        }
    });
    result
}

/// The longest list (or map) anywhere in `value`.
pub(super) fn longest_list(value: &serde_json::Value) -> usize {
    match value {
        serde_json::Value::Array(items) => items
            .iter()
            .map(longest_list)
            .max()
            .unwrap_or(0)
            .max(items.len()),
        serde_json::Value::Object(fields) => fields
            .values()
            .map(longest_list)
            .max()
            .unwrap_or(0)
            .max(fields.len()),
        _ => 0,
    }
}
