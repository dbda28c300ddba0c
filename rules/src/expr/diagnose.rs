//! Saying which variable an evaluation error is about. CEL's errors name types (`cannot
//! apply '[]' to string and string`), not the variable that held the unexpected value; when
//! an evaluation fails, the variable paths of the expression (`data.temperature`, `value`,
//! `labels.room`) are evaluated on their own and the ones that explain the error are named,
//! with what they hold: `` `data` is a string ("warm"), not an object ``.
//!
//! This runs only when an evaluation has failed, so it costs nothing on the normal path.

use cel::common::ast::{Expr, IdedExpr, LiteralValue, operators};
use cel::{Context, ExecutionError, Value};

use super::tree::for_each_child;
use super::{VARIABLES, cel_type_name, describe_value};

/// The most variables one message names.
const MAX_NOTES: usize = 2;

/// The most field names listed for a missing one.
const MAX_FIELDS_LISTED: usize = 8;

/// A path into a variable: `data["temperature"]` (`data.temperature` as written), `value`.
struct Path<'a> {
    /// The nodes from the variable to the whole path, each with the key that follows it
    /// (`None` for the last).
    steps: Vec<(&'a IdedExpr, Option<String>)>,
}

impl Path<'_> {
    /// The path as a rule's author writes it, up to step `end` (inclusive).
    fn text(&self, end: usize) -> String {
        let mut text = String::new();
        for (i, (node, _)) in self.steps.iter().enumerate().take(end + 1) {
            if i == 0 {
                if let Expr::Ident(name) = &node.expr {
                    text.push_str(name);
                }
            } else if let Some(key) = &self.steps[i - 1].1 {
                if key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                    && !key.is_empty()
                    && !key.starts_with(|c: char| c.is_ascii_digit())
                {
                    text.push('.');
                    text.push_str(key);
                } else {
                    text.push_str(&format!("[{key:?}]"));
                }
            }
        }
        text
    }
}

/// What explains `error` in `ast`, evaluated in `context`: notes to append to the message,
/// or a replacement for it (a missing field, named with the fields there are).
pub(super) fn explain(ast: &IdedExpr, context: &Context, error: &ExecutionError) -> Explanation {
    let mut paths = Vec::new();
    collect_paths(ast, &mut paths);
    let resolve = |node: &IdedExpr| context.resolve(node).ok();
    match error {
        ExecutionError::NoSuchKey(key) => {
            for path in &paths {
                for (i, (node, next)) in path.steps.iter().enumerate() {
                    if next.as_deref() != Some(key.as_str()) {
                        continue;
                    }
                    if let Some(Value::Map(map)) = resolve(node) {
                        let mut fields: Vec<String> =
                            map.map.keys().map(|k| k.to_string()).collect();
                        fields.sort();
                        let listed = if fields.is_empty() {
                            "it has none".to_owned()
                        } else if fields.len() > MAX_FIELDS_LISTED {
                            format!("it has {}, …", fields[..MAX_FIELDS_LISTED].join(", "))
                        } else {
                            format!("it has {}", fields.join(", "))
                        };
                        return Explanation::Replace(format!(
                            "`{}` has no field `{key}` ({listed}); test with `has({})` first if it is optional",
                            path.text(i),
                            path.text(i + 1)
                        ));
                    }
                }
            }
            Explanation::Notes(Vec::new())
        }
        ExecutionError::NoSuchOverload(_)
        | ExecutionError::UnsupportedBinaryOperator(..)
        | ExecutionError::ValuesNotComparable(..) => {
            let types = error_types(error);
            let is_numeric = |t: &String| matches!(t.as_str(), "double" | "int" | "uint");
            let numeric = types.iter().any(is_numeric);
            let mixed_kinds = numeric && !types.iter().all(is_numeric);
            let mut notes = Vec::new();
            for path in &paths {
                if notes.len() == MAX_NOTES {
                    break;
                }
                // A step that is not an object where a field is read from it.
                let mut blocked = false;
                for (i, (node, next)) in path.steps.iter().enumerate() {
                    let Some(key) = next else { continue };
                    match resolve(node) {
                        Some(Value::Map(_)) => {}
                        Some(other) => {
                            notes.push(format!(
                                "`{}` is {}, not an object, so it has no field `{key}`",
                                path.text(i),
                                describe_value(&other)
                            ));
                            blocked = true;
                            break;
                        }
                        None => {
                            blocked = true;
                            break;
                        }
                    }
                }
                if blocked {
                    continue;
                }
                // The whole path holds a type the error names.
                let Some((last, _)) = path.steps.last() else {
                    continue;
                };
                if let Some(v) = resolve(last)
                    && types.iter().any(|t| t == cel_type_name(&v))
                {
                    let is_number = matches!(v, Value::Float(_) | Value::Int(_) | Value::UInt(_));
                    // A number beside something else is what was meant: name the other.
                    if is_number && mixed_kinds {
                        continue;
                    }
                    notes.push(format!(
                        "`{}` is {}{}",
                        path.text(path.steps.len() - 1),
                        describe_value(&v),
                        if numeric && !is_number {
                            ", not a number"
                        } else {
                            ""
                        }
                    ));
                }
            }
            notes.dedup();
            Explanation::Notes(notes)
        }
        _ => Explanation::Notes(Vec::new()),
    }
}

/// How to word an error better.
pub(super) enum Explanation {
    /// Append these to the message (none: leave it).
    Notes(Vec<String>),
    /// Say this instead.
    Replace(String),
}

/// The types an error names, as CEL names them.
fn error_types(error: &ExecutionError) -> Vec<String> {
    match error {
        ExecutionError::NoSuchOverload(overload) => overload.argument_types().to_vec(),
        ExecutionError::UnsupportedBinaryOperator(_, lhs, rhs)
        | ExecutionError::ValuesNotComparable(lhs, rhs) => {
            vec![cel_type_name(lhs).to_owned(), cel_type_name(rhs).to_owned()]
        }
        _ => Vec::new(),
    }
}

/// The variable paths of `expr`, longest first within each chain, outside macro loops
/// (whose variables may shadow ours).
fn collect_paths<'a>(expr: &'a IdedExpr, paths: &mut Vec<Path<'a>>) {
    if let Some(path) = path_of(expr) {
        if !paths
            .iter()
            .any(|p| p.text(p.steps.len() - 1) == path.text(path.steps.len() - 1))
        {
            paths.push(path);
        }
        return;
    }
    if let Expr::Comprehension(c) = &expr.expr {
        return collect_paths(&c.iter_range, paths);
    }
    for_each_child(expr, &mut |child| collect_paths(child, paths));
}

/// `expr` as a path into a variable, if it is one.
fn path_of(expr: &IdedExpr) -> Option<Path<'_>> {
    let mut steps = Vec::new();
    let mut node = expr;
    let mut key: Option<String> = None;
    loop {
        steps.push((node, key.take()));
        match &node.expr {
            Expr::Ident(name) if VARIABLES.contains(&name.as_str()) => break,
            Expr::Select(select) if !select.test => {
                key = Some(select.field.clone());
                node = &select.operand;
            }
            Expr::Call(call) if call.func_name == operators::INDEX && call.target.is_none() => {
                let [operand, index] = call.args.as_slice() else {
                    return None;
                };
                let Expr::Literal(LiteralValue::String(text)) = &index.expr else {
                    return None;
                };
                key = Some(text.inner().to_owned());
                node = operand;
            }
            _ => return None,
        }
    }
    // From the variable to the whole path, each step with the key read from it next.
    steps.reverse();
    Some(Path { steps })
}
