//! CEL (Common Expression Language) expressions: a rule's `value:` and `condition:`.
//!
//! An expression is compiled once, when its rule file is loaded, and evaluated for every
//! event that reaches its rule. Every expression sees the same variables ([`VARIABLES`]):
//!
//! - `value`: the rule's value, the result of its `value:` expression, or the event data when
//!   the rule has none;
//! - `data`: the event's JSON payload;
//! - `labels`: the event's labels, a map of strings to strings;
//! - `subject`: the event's subject, a string such as `"home/kitchen/temperature"`;
//! - `time`: the event time as an RFC 3339 string (`"2025-01-31T18:04:05Z"`), and
//!   `time_unix`: the same instant as seconds since the Unix epoch, a double. (Our cel build
//!   leaves out the `chrono` feature that CEL's `timestamp` type needs, so a time is either
//!   text to show or a number to compute with.)
//!
//! # Numbers
//!
//! Every JSON number becomes a CEL `double`, `21` as well as `21.5`: a sensor that sends
//! whole readings now and then must not make the same rule fail now and then. Comparisons
//! mix numeric types freely (`data.celsius > 80` and `> 80.0` both work), but CEL's
//! arithmetic does not: write `data.celsius * 1.8 + 32.0`, not `+ 32`. The error for a
//! mixed `+` says so. JSON integers beyond 2^53 lose precision. Back in JSON (for
//! templates, say), a whole double is an integer again: `81`, not `81.0`.
//!
//! # Limits
//!
//! An expression is at most [`MAX_EXPRESSION_BYTES`] long and nests brackets at most
//! [`MAX_EXPRESSION_DEPTH`] deep; its syntax tree, which also counts operators, field
//! selections and the loops macros such as `exists` expand to, is at most twice that deep.
//! This bounds the stack an evaluation needs.
//!
//! # Layout
//! - this file: [`Expression`] (compiling and evaluating), [`Vars`], [`RuleValue`], their
//!   errors, and evaluation errors worded for a rule's author.
//! - `cost`: bounds on the work of an evaluation (loop nesting, loop steps).
//! - `diagnose`: naming the variable behind an evaluation error, and what it holds.
//! - `json`: conversion between JSON and CEL values, both ways.
//! - `syntax`: from source to a checked syntax tree: the nesting limits, the parser on a
//!   thread of its own, its errors placed by character offset, and the `data.x` rewrite.
//! - `tree`: walking the syntax tree, and finding the variables an expression reads.

mod cost;
mod diagnose;
mod fast;
mod json;
mod syntax;
#[cfg(test)]
mod tests;
mod tree;

use std::collections::BTreeSet;
use std::fmt;
use std::sync::{Arc, LazyLock};

use cel::common::ast::{Expr, IdedExpr, LiteralValue, operators};
use cel::common::types::{CelDouble, CelNull, CelString};
use cel::common::value::{CowVal, Val};
use cel::context::VariableResolver;
use cel::{Context, Env, ExecutionError, Value};

use self::cost::Loops;
pub use self::cost::{LOOP_BUDGET, MAX_LOOP_NESTING, MAX_LOOP_STRING_BYTES};
use self::diagnose::Explanation;
use self::fast::Fast;
use self::json::{json_to_val, json_to_value, labels_to_val, value_to_json};
use self::syntax::{char_offset_of_byte, check_bracket_depth, parse_on_parser_stack};
use self::tree::{free_variables, is_ident, walk};

/// The longest expression source accepted, in bytes.
pub const MAX_EXPRESSION_BYTES: usize = 4096;

/// How deeply an expression may nest brackets: `(`, `[` and `{`.
pub const MAX_EXPRESSION_DEPTH: usize = 32;

/// How deep an expression's syntax tree may be: brackets, operators, field selections and
/// macro loops all count.
const MAX_SYNTAX_TREE_DEPTH: usize = 2 * MAX_EXPRESSION_DEPTH;

/// The variables every expression can use.
pub const VARIABLES: [&str; 6] = ["value", "data", "labels", "subject", "time", "time_unix"];

/// Function namespaces of [`ENV`]: `math.round(x)` calls a function, it reads no variable.
const NAMESPACES: [&str; 1] = ["math"];

/// The CEL standard library plus the `strings` (`lowerAscii`, `split`, `trim`, …) and `math`
/// (`math.round`, `math.greatest`, …) extensions, built once: every evaluation shares it.
static ENV: LazyLock<Arc<Env>> = LazyLock::new(|| {
    let mut env = Env::stdlib();
    // Neither extension declares anything the standard library does, so neither can fail.
    env.add_extension(cel::extensions::strings)
        .expect("the strings extension fits the standard library");
    env.add_extension(cel::extensions::math)
        .expect("the math extension fits the standard library");
    Arc::new(env)
});

/// A compiled CEL expression. Cheap to clone; `Send + Sync`.
#[derive(Clone)]
pub struct Expression {
    source: Arc<str>,
    /// The syntax tree, macros expanded: what the interpreter walks.
    ast: Arc<IdedExpr>,
    /// The native path, for expressions simple enough to need no interpreter.
    fast: Option<Arc<Fast>>,
    /// Its loops, which bound what it may iterate (see `cost`).
    loops: Loops,
}

/// Why an expression does not compile.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct CompileError {
    /// Where the problem is: a 0-based offset, in characters, into the expression source.
    pub offset: usize,
    pub message: String,
}

/// Why an evaluation failed: a missing field, a type mismatch, a division by zero, ….
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct EvalError(pub String);

impl Expression {
    /// Compiles `source`, rejecting one that is too long, nests too deeply or does not parse.
    pub fn compile(source: &str) -> Result<Self, CompileError> {
        if source.len() > MAX_EXPRESSION_BYTES {
            return Err(CompileError {
                offset: char_offset_of_byte(source, MAX_EXPRESSION_BYTES),
                message: format!(
                    "expression is too long: {} bytes, the limit is {MAX_EXPRESSION_BYTES}",
                    source.len()
                ),
            });
        }
        if source.trim().is_empty() {
            return Err(CompileError {
                offset: 0,
                message: "expression is empty".to_owned(),
            });
        }
        check_bracket_depth(source)?;
        let (ast, loops) = parse_on_parser_stack(source)?;
        Ok(Self {
            source: source.into(),
            ast: Arc::new(ast),
            fast: Fast::parse(source).map(Arc::new),
            loops,
        })
    }

    /// The expression's value computed natively, when it is a field of the data that exists
    /// (`data.temperature`); `None` means "evaluate with CEL". `value` is the rule's value,
    /// `data` the event's.
    pub fn fast_value(
        &self,
        value: &serde_json::Value,
        data: &serde_json::Value,
    ) -> Option<serde_json::Value> {
        self.fast.as_ref()?.value(value, data)
    }

    /// The condition's outcome computed natively, when it compares a number with a number
    /// (`value > 80`); `None` means "evaluate with CEL".
    pub fn fast_bool(&self, value: &serde_json::Value, data: &serde_json::Value) -> Option<bool> {
        self.fast.as_ref()?.bool(value, data)
    }

    /// The source the expression was compiled from.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Evaluates the expression.
    pub fn eval(&self, vars: &Vars) -> Result<RuleValue, EvalError> {
        let longest = vars.longest_list();
        if !self.loops.within_budget(longest) {
            return Err(EvalError(format!(
                "not evaluated: a list of {longest} items, looped over {} deep, is more than \
                 {LOOP_BUDGET} steps",
                self.loops.nesting
            )));
        }
        let resolver = Resolver(vars);
        let mut context = Context::with_env(Arc::clone(&ENV));
        context.set_variable_resolver(&resolver);
        context.resolve(&self.ast).map(RuleValue).map_err(|error| {
            let message = describe_error(&error);
            EvalError(match diagnose::explain(&self.ast, &context, &error) {
                Explanation::Replace(message) => message,
                Explanation::Notes(notes) if notes.is_empty() => message,
                Explanation::Notes(notes) => format!("{message}: {}", notes.join("; ")),
            })
        })
    }

    /// Evaluates the expression as a condition, which must be `true` or `false`.
    pub fn eval_bool(&self, vars: &Vars) -> Result<bool, EvalError> {
        match self.eval(vars)?.0 {
            Value::Bool(b) => Ok(b),
            other => Err(EvalError(format!(
                "expected true or false, got {}",
                describe_value(&other)
            ))),
        }
    }

    /// Label names the expression reads: `labels.x`, `labels["x"]`, `has(labels.x)` and
    /// `"x" in labels`. For `atalaya check`.
    pub fn referenced_labels(&self) -> BTreeSet<String> {
        let mut names = BTreeSet::new();
        walk(&self.ast, &mut |expr| match &expr.expr {
            Expr::Select(select) if is_ident(&select.operand, "labels") => {
                names.insert(select.field.clone());
            }
            Expr::Call(call) => {
                let key = match (call.func_name.as_str(), call.args.as_slice()) {
                    (operators::INDEX | operators::OPT_INDEX, [map, key])
                    | (operators::IN, [key, map])
                        if is_ident(map, "labels") =>
                    {
                        key
                    }
                    _ => return,
                };
                if let Expr::Literal(LiteralValue::String(key)) = &key.expr {
                    names.insert(key.inner().to_owned());
                }
            }
            _ => {}
        });
        names
    }

    /// Top-level variables the expression reads (`value`, `data`, …, or a misspelt one),
    /// not counting the loop variables of macros such as `exists(x, …)`.
    pub fn referenced_variables(&self) -> BTreeSet<String> {
        let mut names = BTreeSet::new();
        free_variables(&self.ast, &mut Vec::new(), &mut names);
        names
    }
}

impl fmt::Debug for Expression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Expression").field(&&*self.source).finish()
    }
}

/// Two expressions are equal when their sources are: the same source compiles the same.
impl PartialEq for Expression {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

impl Eq for Expression {}

/// A CEL value the engine passes around: a rule's value, an expression's result. Cheap to
/// clone (lists, maps and strings are shared).
#[derive(Clone, Debug, PartialEq)]
pub struct RuleValue(Value);

impl RuleValue {
    /// Converts JSON, every number becoming a double (see the module docs).
    pub fn from_json(v: &serde_json::Value) -> Self {
        Self(json_to_value(v))
    }

    /// Converts to JSON: ints stay ints, doubles become numbers (NaN and infinities `null`),
    /// lists and maps are converted recursively. A whole double becomes an integer
    /// (`81.0` is `81`), as every JSON number became a double: `{{ value }}` in a
    /// template shows `81` when the sensor sent `81`.
    pub fn to_json(&self) -> serde_json::Value {
        value_to_json(&self.0)
    }

    /// The value as a number, if it is one: a numeric string is not.
    pub fn as_f64(&self) -> Option<f64> {
        match self.0 {
            Value::Int(i) => Some(i as f64),
            Value::UInt(u) => Some(u as f64),
            Value::Float(f) => Some(f),
            _ => None,
        }
    }
}

/// The variables of one evaluation. Built once per event, which converts its JSON once;
/// the engine then sets `value` per rule.
#[derive(Debug)]
pub struct Vars {
    data: Box<dyn Val>,
    labels: Box<dyn Val>,
    subject: Box<dyn Val>,
    time: Box<dyn Val>,
    time_unix: Box<dyn Val>,
    /// The rule's value; `None` while it is the event data, which then needs no copy.
    value: Option<Box<dyn Val>>,
    /// The longest list or map in the data, and in the value when set: what a loop can
    /// iterate (see `cost`).
    data_longest: usize,
    value_longest: usize,
}

impl Vars {
    /// The variables of an event; `value` is its data until [`set_value`](Self::set_value).
    pub fn new(
        data: &serde_json::Value,
        labels: &atalaya_bus::Labels,
        subject: &atalaya_bus::Subject,
        time: jiff::Timestamp,
    ) -> Self {
        Self {
            data: json_to_val(data),
            labels: labels_to_val(labels),
            subject: Box::new(CelString::from(subject.as_str().to_owned())),
            time: Box::new(CelString::from(time.to_string())),
            time_unix: Box::new(CelDouble::from(time.as_duration().as_secs_f64())),
            value: None,
            data_longest: cost::longest_list(data),
            value_longest: 0,
        }
    }

    /// The longest list or map the variables hold.
    fn longest_list(&self) -> usize {
        self.data_longest.max(self.value_longest)
    }

    /// Sets `value`, e.g. to the result of the rule's value expression.
    pub fn set_value(&mut self, value: RuleValue) {
        self.value_longest = match &value.0 {
            Value::List(_) | Value::Map(_) => cost::longest_list(&value.to_json()),
            _ => 0,
        };
        // Only a function value has no `Val` form, and neither JSON nor an evaluation's
        // result is one: the fallback is unreachable in practice.
        let val = Box::<dyn Val>::try_from(value.0).unwrap_or_else(|_| Box::new(CelNull));
        self.value = Some(val);
    }

    /// Makes `value` the event data again, for a rule without a value expression.
    pub fn clear_value(&mut self) {
        self.value = None;
        self.value_longest = 0;
    }

    /// Replaces the labels, e.g. once the engine has added a subject pattern's captures.
    pub fn set_labels(&mut self, labels: &atalaya_bus::Labels) {
        self.labels = labels_to_val(labels);
    }
}

impl Clone for Vars {
    fn clone(&self) -> Self {
        Self {
            data: self.data.clone_as_boxed(),
            labels: self.labels.clone_as_boxed(),
            subject: self.subject.clone_as_boxed(),
            time: self.time.clone_as_boxed(),
            time_unix: self.time_unix.clone_as_boxed(),
            value: self.value.as_ref().map(|v| v.clone_as_boxed()),
            data_longest: self.data_longest,
            value_longest: self.value_longest,
        }
    }
}

/// Lends [`Vars`] to the interpreter without copying them.
struct Resolver<'a>(&'a Vars);

impl VariableResolver for Resolver<'_> {
    fn resolve<'b>(&'b self, variable: &str) -> Option<CowVal<'b, 'b>> {
        let vars = self.0;
        let val: &dyn Val = match variable {
            "value" => vars.value.as_deref().unwrap_or(&*vars.data),
            "data" => &*vars.data,
            "labels" => &*vars.labels,
            "subject" => &*vars.subject,
            "time" => &*vars.time,
            "time_unix" => &*vars.time_unix,
            _ => return None,
        };
        Some(CowVal::Borrowed(val))
    }
}

/// A value as an error message shows it: `a number (21.5)`, `a string ("on")`.
fn describe_value(v: &Value) -> String {
    match v {
        Value::Null => "null".to_owned(),
        Value::Bool(b) => b.to_string(),
        Value::Int(i) => format!("a number ({i})"),
        Value::UInt(u) => format!("a number ({u})"),
        Value::Float(f) => format!("a number ({f})"),
        Value::String(s) if s.chars().count() > 40 => {
            let head: String = s.chars().take(40).collect();
            format!("a string ({head:?}…)")
        }
        Value::String(s) => format!("a string ({s:?})"),
        Value::List(items) => format!("a list of {} items", items.len()),
        Value::Map(map) => format!("a map of {} entries", map.map.len()),
        other => format!("a value of type {}", other.type_of()),
    }
}

/// The message for an evaluation error, in the words of a rule's author.
fn describe_error(error: &ExecutionError) -> String {
    const MIXED_HINT: &str = " (CEL does not mix int and double in arithmetic: event numbers are \
                              doubles, so write 32.0 rather than 32, or convert with double())";
    let mixed = |types: &[&str]| types.contains(&"int") && types.contains(&"double");
    match error {
        ExecutionError::NoSuchKey(key) => format!("no such key '{key}'"),
        ExecutionError::UndeclaredReference(name) => format!(
            "unknown variable or function '{name}' (the variables are {})",
            VARIABLES.join(", ")
        ),
        ExecutionError::NoSuchOverload(overload) => {
            let types: Vec<&str> = overload
                .argument_types()
                .iter()
                .map(String::as_str)
                .collect();
            let function = overload.function();
            // Operators are named `_>_`, `-_`, `_[_]`, `@in`.
            let is_operator = !function.chars().any(char::is_alphanumeric) || function == "@in";
            match function.replace(['_', '@'], "") {
                op if is_operator => format!(
                    "cannot apply '{op}' to {}{}",
                    types.join(" and "),
                    if mixed(&types) { MIXED_HINT } else { "" }
                ),
                _ => format!(
                    "no overload of '{function}' takes ({}){}",
                    types.join(", "),
                    if mixed(&types) { MIXED_HINT } else { "" }
                ),
            }
        }
        ExecutionError::UnsupportedBinaryOperator(op, lhs, rhs) => {
            let symbol = match *op {
                "add" => "+",
                "sub" => "-",
                "mul" => "*",
                "div" => "/",
                "rem" => "%",
                other => other,
            };
            let (lhs, rhs) = (cel_type_name(lhs), cel_type_name(rhs));
            format!(
                "cannot apply '{symbol}' to {lhs} and {rhs}{}",
                if mixed(&[lhs, rhs]) { MIXED_HINT } else { "" }
            )
        }
        ExecutionError::ValuesNotComparable(lhs, rhs) => format!(
            "cannot compare {} with {}",
            cel_type_name(lhs),
            cel_type_name(rhs)
        ),
        ExecutionError::DivisionByZero(_) => "division by zero".to_owned(),
        ExecutionError::RemainderByZero(_) => "remainder by zero".to_owned(),
        other => other.to_string(),
    }
}

/// A value's type as CEL names it in expressions and overload errors.
fn cel_type_name(v: &Value) -> &'static str {
    match v {
        Value::Float(_) => "double",
        Value::Null => "null_type",
        Value::List(_) => "list",
        Value::Map(_) => "map",
        Value::Int(_) => "int",
        Value::UInt(_) => "uint",
        Value::String(_) => "string",
        Value::Bytes(_) => "bytes",
        Value::Bool(_) => "bool",
        _ => "value",
    }
}
