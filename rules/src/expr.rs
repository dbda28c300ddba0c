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

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::sync::{Arc, LazyLock};

use cel::common::ast::{CallExpr, EntryExpr, Expr, IdedExpr, LiteralValue, SourceInfo, operators};
use cel::common::types::{CelBool, CelDouble, CelList, CelMap, CelMapKey, CelNull, CelString};
use cel::common::value::{CowVal, Val};
use cel::context::VariableResolver;
use cel::{Context, Env, ExecutionError, Value};

/// The longest expression source accepted, in bytes.
pub const MAX_EXPRESSION_BYTES: usize = 4096;

/// How deeply an expression may nest brackets: `(`, `[` and `{`.
pub const MAX_EXPRESSION_DEPTH: usize = 32;

/// How deep an expression's syntax tree may be: brackets, operators, field selections and
/// macro loops all count.
const MAX_SYNTAX_TREE_DEPTH: usize = 2 * MAX_EXPRESSION_DEPTH;

/// The stack of the thread that parses an expression. The ANTLR parser recurses deeply: in
/// a debug build about 160 KiB per bracket level and 2 KiB per operator, so the deepest and
/// longest expressions accepted need some 6 MiB, more than a test or tokio thread has. Only
/// the pages used are committed.
const PARSER_STACK_BYTES: usize = 32 << 20;

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
        let ast = parse_on_parser_stack(source)?;
        Ok(Self {
            source: source.into(),
            ast: Arc::new(ast),
        })
    }

    /// The source the expression was compiled from.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Evaluates the expression.
    pub fn eval(&self, vars: &Vars) -> Result<RuleValue, EvalError> {
        let resolver = Resolver(vars);
        let mut context = Context::with_env(Arc::clone(&ENV));
        context.set_variable_resolver(&resolver);
        context
            .resolve(&self.ast)
            .map(RuleValue)
            .map_err(|error| EvalError(describe_error(&error)))
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
        }
    }

    /// Sets `value`, e.g. to the result of the rule's value expression.
    pub fn set_value(&mut self, value: RuleValue) {
        // Only a function value has no `Val` form, and neither JSON nor an evaluation's
        // result is one: the fallback is unreachable in practice.
        let val = Box::<dyn Val>::try_from(value.0).unwrap_or_else(|_| Box::new(CelNull));
        self.value = Some(val);
    }

    /// Makes `value` the event data again, for a rule without a value expression.
    pub fn clear_value(&mut self) {
        self.value = None;
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

fn json_to_value(v: &serde_json::Value) -> Value {
    match v {
        serde_json::Value::Null => Value::Null,
        serde_json::Value::Bool(b) => Value::Bool(*b),
        serde_json::Value::Number(n) => Value::Float(n.as_f64().unwrap_or(f64::NAN)),
        serde_json::Value::String(s) => Value::String(Arc::new(s.clone())),
        serde_json::Value::Array(items) => {
            Value::List(Arc::new(items.iter().map(json_to_value).collect()))
        }
        serde_json::Value::Object(fields) => Value::Map(cel::objects::Map {
            map: Arc::new(
                fields
                    .iter()
                    .map(|(k, v)| (cel::objects::Key::from(k.as_str()), json_to_value(v)))
                    .collect(),
            ),
        }),
    }
}

/// JSON straight to the interpreter's values, skipping [`Value`]: the per-event hot path.
fn json_to_val(v: &serde_json::Value) -> Box<dyn Val> {
    match v {
        serde_json::Value::Null => Box::new(CelNull),
        serde_json::Value::Bool(b) => Box::new(CelBool::from(*b)),
        serde_json::Value::Number(n) => Box::new(CelDouble::from(n.as_f64().unwrap_or(f64::NAN))),
        serde_json::Value::String(s) => Box::new(CelString::from(s.clone())),
        serde_json::Value::Array(items) => Box::new(CelList::from(
            items.iter().map(json_to_val).collect::<Vec<_>>(),
        )),
        serde_json::Value::Object(fields) => Box::new(CelMap::from(
            fields
                .iter()
                .map(|(k, v)| (CelMapKey::from(k.clone()), json_to_val(v)))
                .collect::<HashMap<_, _>>(),
        )),
    }
}

fn labels_to_val(labels: &atalaya_bus::Labels) -> Box<dyn Val> {
    Box::new(CelMap::from(
        labels
            .iter()
            .map(|(k, v)| {
                let v: Box<dyn Val> = Box::new(CelString::from(v.clone()));
                (CelMapKey::from(k.clone()), v)
            })
            .collect::<HashMap<_, _>>(),
    ))
}

/// 2^53: every whole double up to it is an exact integer.
const MAX_EXACT_INTEGER: f64 = 9_007_199_254_740_992.0;

fn value_to_json(v: &Value) -> serde_json::Value {
    match v {
        Value::Null => serde_json::Value::Null,
        Value::Bool(b) => (*b).into(),
        Value::Int(i) => (*i).into(),
        Value::UInt(u) => (*u).into(),
        // Every JSON number became a double: give a whole one back as the integer it was.
        Value::Float(f) if f.fract() == 0.0 && f.abs() <= MAX_EXACT_INTEGER => (*f as i64).into(),
        Value::Float(f) => serde_json::Number::from_f64(*f)
            .map(serde_json::Value::Number)
            .unwrap_or(serde_json::Value::Null),
        Value::String(s) => s.as_str().into(),
        Value::List(items) => items.iter().map(value_to_json).collect(),
        Value::Map(map) => serde_json::Value::Object(
            map.map
                .iter()
                .map(|(k, v)| (k.to_string(), value_to_json(v)))
                .collect(),
        ),
        // Bytes become base64; what has no JSON form (a function, say) becomes null.
        other => other.json().unwrap_or(serde_json::Value::Null),
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

/// The char offset of byte `byte` of `source` (or of the char containing it).
fn char_offset_of_byte(source: &str, byte: usize) -> usize {
    source.char_indices().take_while(|(i, _)| *i < byte).count()
}

/// The char offset of the 1-based `line` and 1-based char `column` cel reports.
fn char_offset_of_position(source: &str, line: isize, column: isize) -> usize {
    let line = usize::try_from(line).unwrap_or(1).max(1);
    let column = usize::try_from(column).unwrap_or(1).max(1);
    let line_start: usize = source
        .split_inclusive('\n')
        .take(line - 1)
        .map(|l| l.chars().count())
        .sum();
    (line_start + column - 1).min(source.chars().count())
}

/// The first of cel's parse errors, worded for people and placed by char offset.
fn parse_error(source: &str, errors: &cel::ParseErrors) -> CompileError {
    let Some(first) = errors.errors.first() else {
        return CompileError {
            offset: 0,
            message: "syntax error".to_owned(),
        };
    };
    if errors
        .errors
        .iter()
        .any(|e| e.msg.contains("Recursion limit"))
    {
        // The parser's own nesting limit (say, a long chain of `? :`), whose position is
        // not a line and column: report where the first error is.
        return CompileError {
            offset: char_offset_of_position(source, first.pos.0, first.pos.1),
            message: format!(
                "expression nests too deeply: more than {MAX_EXPRESSION_DEPTH} levels"
            ),
        };
    }
    CompileError {
        offset: char_offset_of_position(source, first.pos.0, first.pos.1),
        message: syntax_message(&first.msg),
    }
}

/// ANTLR's messages name the input and then every token that could have come instead:
/// keep what was wrong.
fn syntax_message(msg: &str) -> String {
    let msg = msg.strip_prefix("Syntax error: ").unwrap_or(msg);
    for prefix in [
        "extraneous input ",
        "mismatched input ",
        "no viable alternative at input ",
    ] {
        if let Some(rest) = msg.strip_prefix(prefix) {
            let token = rest.split(" expecting ").next().unwrap_or(rest);
            return if token == "'<EOF>'" {
                "syntax error: unexpected end of expression".to_owned()
            } else {
                format!("syntax error: unexpected {token}")
            };
        }
    }
    format!("syntax error: {msg}")
}

/// Parses `source` on a thread of its own with a [`PARSER_STACK_BYTES`] stack, and checks
/// the depth of the tree.
fn parse_on_parser_stack(source: &str) -> Result<IdedExpr, CompileError> {
    let parse = || {
        let parser = ENV
            .parser()
            .max_recursion_depth(u16::try_from(MAX_EXPRESSION_DEPTH).unwrap_or(u16::MAX));
        let (mut ast, source_info) = parser
            .parse_with_source_info(source)
            .map_err(|errors| parse_error(source, &errors))?;
        check_tree_depth(&ast, &source_info, source)?;
        index_variable_fields(&mut ast);
        Ok(ast)
    };
    let failed = |message: String| CompileError { offset: 0, message };
    std::thread::scope(|scope| {
        std::thread::Builder::new()
            .name("cel-parser".to_owned())
            .stack_size(PARSER_STACK_BYTES)
            .spawn_scoped(scope, parse)
            .map_err(|error| failed(format!("cannot start the expression parser: {error}")))?
            .join()
            .map_err(|_| failed("the expression parser failed on this expression".to_owned()))?
    })
}

/// Rejects brackets nested deeper than [`MAX_EXPRESSION_DEPTH`], before the parser
/// (which recurses on them) sees them. Skips string literals and comments.
fn check_bracket_depth(source: &str) -> Result<(), CompileError> {
    let chars: Vec<char> = source.chars().collect();
    let mut depth = 0usize;
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '(' | '[' | '{' => {
                depth += 1;
                if depth > MAX_EXPRESSION_DEPTH {
                    return Err(CompileError {
                        offset: i,
                        message: format!(
                            "expression nests too deeply: more than {MAX_EXPRESSION_DEPTH} \
                             levels of brackets"
                        ),
                    });
                }
            }
            ')' | ']' | '}' => depth = depth.saturating_sub(1),
            '/' if chars.get(i + 1) == Some(&'/') => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
            }
            quote @ ('"' | '\'') => i = skip_string(&chars, i, quote),
            _ => {}
        }
        i += 1;
    }
    Ok(())
}

/// The index of the last char of the string literal opening at `start` (or of the end of
/// the line, or the source, if it is unterminated: the parser reports that).
fn skip_string(chars: &[char], start: usize, quote: char) -> usize {
    let prefix = |back: usize, set: &str| start >= back && set.contains(chars[start - back]);
    let raw = prefix(1, "rR") || (prefix(1, "bB") && prefix(2, "rR"));
    let triple = chars.get(start + 1) == Some(&quote) && chars.get(start + 2) == Some(&quote);
    let mut i = start + if triple { 3 } else { 1 };
    while i < chars.len() {
        match chars[i] {
            '\\' if !raw => i += 1,
            '\n' if !triple => return i,
            c if c == quote => {
                if !triple {
                    return i;
                }
                if chars.get(i + 1) == Some(&quote) && chars.get(i + 2) == Some(&quote) {
                    return i + 2;
                }
            }
            _ => {}
        }
        i += 1;
    }
    chars.len()
}

/// Rejects a syntax tree deeper than [`MAX_SYNTAX_TREE_DEPTH`]: evaluating it recurses.
fn check_tree_depth(ast: &IdedExpr, info: &SourceInfo, source: &str) -> Result<(), CompileError> {
    fn deepest(expr: &IdedExpr, depth: usize) -> Option<u64> {
        if depth > MAX_SYNTAX_TREE_DEPTH {
            return Some(expr.id);
        }
        let mut found = None;
        for_each_child(expr, &mut |child| {
            if found.is_none() {
                found = deepest(child, depth + 1);
            }
        });
        found
    }
    match deepest(ast, 1) {
        None => Ok(()),
        Some(id) => Err(CompileError {
            offset: info
                .offset_for(id)
                .map(|(start, _)| (start as usize).min(source.chars().count()))
                .unwrap_or(0),
            message: format!(
                "expression is too complex: its operators, fields and brackets nest more than \
                 {MAX_SYNTAX_TREE_DEPTH} levels deep"
            ),
        }),
    }
}

/// Rewrites `data.celsius` as `data["celsius"]`, which means the same on our variables
/// (none has a dot in its name, and a field of a map is its key) but evaluates a third
/// faster: cel resolves a selection as a qualified name first, trying `data.celsius` as a
/// variable and as a type. `has(data.x)` keeps its selection.
fn index_variable_fields(expr: &mut IdedExpr) {
    fn on_variable(expr: &IdedExpr) -> bool {
        match &expr.expr {
            Expr::Ident(name) => VARIABLES.contains(&name.as_str()),
            Expr::Select(select) => !select.test && on_variable(&select.operand),
            _ => false,
        }
    }
    if let Expr::Select(select) = &mut expr.expr
        && !select.test
        && on_variable(&select.operand)
    {
        let operand = std::mem::take(&mut *select.operand);
        let key = IdedExpr {
            id: expr.id,
            expr: Expr::Literal(LiteralValue::String(CelString::from(std::mem::take(
                &mut select.field,
            )))),
        };
        expr.expr = Expr::Call(CallExpr {
            func_name: operators::INDEX.to_owned(),
            target: None,
            args: vec![operand, key],
        });
    }
    for_each_child_mut(expr, &mut index_variable_fields);
}

/// Calls `f` on each direct child of `expr`.
fn for_each_child<'a>(expr: &'a IdedExpr, f: &mut impl FnMut(&'a IdedExpr)) {
    match &expr.expr {
        Expr::Call(call) => {
            if let Some(target) = &call.target {
                f(target);
            }
            call.args.iter().for_each(f);
        }
        Expr::Comprehension(c) => {
            for child in [
                &c.iter_range,
                &c.accu_init,
                &c.loop_cond,
                &c.loop_step,
                &c.result,
            ] {
                f(child);
            }
        }
        Expr::List(list) => list.elements.iter().for_each(f),
        Expr::Map(map) => map
            .entries
            .iter()
            .for_each(|entry| entry_children(&entry.expr, f)),
        Expr::Struct(st) => st
            .entries
            .iter()
            .for_each(|entry| entry_children(&entry.expr, f)),
        Expr::Select(select) => f(&select.operand),
        Expr::Ident(_) | Expr::Literal(_) | Expr::Unspecified => {}
    }
}

/// Calls `f` on each direct child of `expr`, mutably.
fn for_each_child_mut(expr: &mut IdedExpr, f: &mut impl FnMut(&mut IdedExpr)) {
    let entry = |entry: &mut EntryExpr, f: &mut dyn FnMut(&mut IdedExpr)| match entry {
        EntryExpr::MapEntry(e) => {
            f(&mut e.key);
            f(&mut e.value);
        }
        EntryExpr::StructField(field) => f(&mut field.value),
    };
    match &mut expr.expr {
        Expr::Call(call) => {
            if let Some(target) = &mut call.target {
                f(target);
            }
            call.args.iter_mut().for_each(f);
        }
        Expr::Comprehension(c) => {
            let c = &mut **c;
            for child in [
                &mut c.iter_range,
                &mut c.accu_init,
                &mut c.loop_cond,
                &mut c.loop_step,
                &mut c.result,
            ] {
                f(child);
            }
        }
        Expr::List(list) => list.elements.iter_mut().for_each(f),
        Expr::Map(map) => map.entries.iter_mut().for_each(|e| entry(&mut e.expr, f)),
        Expr::Struct(st) => st.entries.iter_mut().for_each(|e| entry(&mut e.expr, f)),
        Expr::Select(select) => f(&mut select.operand),
        Expr::Ident(_) | Expr::Literal(_) | Expr::Unspecified => {}
    }
}

fn entry_children<'a>(entry: &'a EntryExpr, f: &mut impl FnMut(&'a IdedExpr)) {
    match entry {
        EntryExpr::MapEntry(e) => {
            f(&e.key);
            f(&e.value);
        }
        EntryExpr::StructField(field) => f(&field.value),
    }
}

/// Calls `f` on `expr` and every expression under it. The depth checks at compile time
/// bound the recursion.
fn walk(expr: &IdedExpr, f: &mut impl FnMut(&IdedExpr)) {
    f(expr);
    for_each_child(expr, &mut |child| walk(child, f));
}

fn is_ident(expr: &IdedExpr, name: &str) -> bool {
    matches!(&expr.expr, Expr::Ident(ident) if ident == name)
}

/// Collects the identifiers of `expr` not bound by an enclosing macro loop (`bound`).
fn free_variables(expr: &IdedExpr, bound: &mut Vec<String>, names: &mut BTreeSet<String>) {
    match &expr.expr {
        Expr::Ident(name) => {
            if !bound.contains(name) {
                names.insert(name.clone());
            }
        }
        Expr::Call(call) => {
            match call.target.as_deref() {
                Some(target) if NAMESPACES.iter().any(|ns| is_ident(target, ns)) => {}
                Some(target) => free_variables(target, bound, names),
                None => {}
            }
            for arg in &call.args {
                free_variables(arg, bound, names);
            }
        }
        Expr::Comprehension(c) => {
            free_variables(&c.iter_range, bound, names);
            let outer = bound.len();
            bound.push(c.accu_var.clone());
            free_variables(&c.accu_init, bound, names);
            bound.push(c.iter_var.clone());
            bound.extend(c.iter_var2.clone());
            for child in [&c.loop_cond, &c.loop_step, &c.result] {
                free_variables(child, bound, names);
            }
            bound.truncate(outer);
        }
        _ => for_each_child(expr, &mut |child| free_variables(child, bound, names)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn vars(data: serde_json::Value) -> Vars {
        let labels = atalaya_bus::Labels::from([
            ("room".to_owned(), "kitchen".to_owned()),
            ("node".to_owned(), "pi-3".to_owned()),
        ]);
        let subject = atalaya_bus::Subject::parse("home/kitchen/temperature").unwrap();
        let time: jiff::Timestamp = "2025-01-31T18:04:05Z".parse().unwrap();
        Vars::new(&data, &labels, &subject, time)
    }

    fn eval(source: &str, vars: &Vars) -> Result<RuleValue, EvalError> {
        Expression::compile(source).unwrap().eval(vars)
    }

    fn is_true(source: &str, vars: &Vars) -> bool {
        Expression::compile(source)
            .unwrap()
            .eval_bool(vars)
            .unwrap()
    }

    fn eval_error(source: &str, vars: &Vars) -> String {
        eval(source, vars).unwrap_err().0
    }

    fn compile_error(source: &str) -> CompileError {
        Expression::compile(source).unwrap_err()
    }

    #[test]
    fn compares_event_numbers_with_ints_and_doubles() {
        let v = vars(json!({"celsius": 85, "humidity": 21.5}));
        assert!(is_true("data.celsius > 80.0", &v));
        assert!(is_true("data.celsius > 80", &v));
        assert!(is_true("data.humidity > 20", &v));
        assert!(
            is_true("data.celsius == 85", &v),
            "a whole JSON number equals an int"
        );
        assert!(is_true("21.5 > 20", &v));
        assert!(!is_true("data.humidity >= 22", &v));
    }

    #[test]
    fn value_is_the_data_until_set_and_compares_either_way() {
        let mut v = vars(json!(81));
        assert!(is_true("value > 80", &v));
        assert!(is_true("value > 80.0", &v));
        v.set_value(RuleValue::from_json(&json!(79)));
        assert!(!is_true("value > 80", &v));
        assert!(!is_true("value > 80.0", &v));
        v.set_value(eval("size([1, 2, 3])", &v).unwrap());
        assert!(is_true("value == 3 && value > 2.5", &v));
        v.clear_value();
        assert!(is_true("value == data", &v));
    }

    #[test]
    fn does_arithmetic_on_event_numbers() {
        let v = vars(json!({"celsius": 20, "watts": [100, 250.5]}));
        let fahrenheit = eval("data.celsius * 1.8 + 32.0", &v).unwrap();
        assert_eq!(fahrenheit.as_f64(), Some(68.0));
        let total = eval("data.watts[0] + data.watts[1]", &v).unwrap();
        assert_eq!(total.to_json(), json!(350.5));
        let mixed = eval_error("data.celsius + 1", &v);
        assert!(
            mixed.contains("cannot apply '+' to double and int"),
            "{mixed}"
        );
        assert!(mixed.contains("32.0"), "{mixed}");
    }

    #[test]
    fn reads_labels_subject_and_time() {
        let v = vars(json!({"state": "ON"}));
        assert!(is_true(r#"labels.room == "kitchen""#, &v));
        assert!(is_true(r#"labels["node"] == "pi-3""#, &v));
        assert!(is_true(r#"subject.startsWith("home/")"#, &v));
        assert!(is_true(r#"data.state == "ON""#, &v));
        assert!(is_true(r#"data.state.lowerAscii() == "on""#, &v));
        assert!(is_true(r#"time == "2025-01-31T18:04:05Z""#, &v));
        assert!(is_true("time_unix == 1738346645.0", &v));
        assert!(is_true("math.round(2.6) == 3.0", &v));
    }

    #[test]
    fn set_labels_replaces_the_labels() {
        let mut v = vars(json!(null));
        let labels = atalaya_bus::Labels::from([("sensor".to_owned(), "s1".to_owned())]);
        v.set_labels(&labels);
        assert!(is_true(r#"labels.sensor == "s1" && !has(labels.room)"#, &v));
    }

    #[test]
    fn has_tests_for_a_field() {
        let v = vars(json!({"x": 1, "nested": {"y": null}}));
        assert!(is_true("has(data.x)", &v));
        assert!(!is_true("has(data.nope)", &v));
        assert!(is_true("has(data.nested.y)", &v));
        assert!(is_true(r#"has(data.x) && "x" in data"#, &v));
    }

    #[test]
    fn a_missing_field_is_an_error() {
        let v = vars(json!({"x": 1}));
        assert_eq!(eval_error("data.nope > 1", &v), "no such key 'nope'");
        let unknown = eval_error("dat.x > 1", &v);
        assert!(
            unknown.starts_with("unknown variable or function 'dat'"),
            "{unknown}"
        );
    }

    #[test]
    fn a_type_error_is_an_error() {
        let v = vars(json!({}));
        assert_eq!(
            eval_error(r#""a" > 1"#, &v),
            "cannot apply '>' to string and int"
        );
        assert_eq!(
            eval_error("1.0 / 0.0 > 1 ? 1 / 0 : 0", &v),
            "division by zero"
        );
        let call = eval_error(r#""abc".startsWith(1)"#, &v);
        assert!(call.contains("startsWith"), "{call}");
    }

    #[test]
    fn eval_bool_wants_a_boolean() {
        let v = vars(json!({"celsius": 21.5, "state": "ON"}));
        let condition = Expression::compile("data.celsius").unwrap();
        assert_eq!(
            condition.eval_bool(&v).unwrap_err().0,
            "expected true or false, got a number (21.5)"
        );
        let condition = Expression::compile("data.state").unwrap();
        assert_eq!(
            condition.eval_bool(&v).unwrap_err().0,
            r#"expected true or false, got a string ("ON")"#
        );
    }

    #[test]
    fn reports_syntax_errors_where_they_are() {
        let error = compile_error("value >> 3");
        assert_eq!(error.offset, 7);
        assert_eq!(error.message, "syntax error: unexpected '>'");
        let error = compile_error("value > ");
        assert_eq!(error.offset, 8);
        assert_eq!(error.message, "syntax error: unexpected end of expression");
        // Offsets count characters, across lines.
        let error = compile_error("\"é\" == x &&\n  ) y");
        assert_eq!(error.offset, 14);
        assert_eq!(error.message, "syntax error: unexpected ')'");
        assert_eq!(compile_error("  ").message, "expression is empty");
    }

    #[test]
    fn rejects_too_long_and_too_deep_expressions() {
        let long = format!("value > {}", "1".repeat(MAX_EXPRESSION_BYTES));
        let error = compile_error(&long);
        assert!(
            error.message.starts_with("expression is too long"),
            "{error}"
        );
        assert_eq!(error.offset, MAX_EXPRESSION_BYTES);

        let deep = |n: usize| format!("{}1{}", "(".repeat(n), ")".repeat(n));
        assert!(Expression::compile(&deep(MAX_EXPRESSION_DEPTH)).is_ok());
        let error = compile_error(&deep(MAX_EXPRESSION_DEPTH + 1));
        assert_eq!(error.offset, MAX_EXPRESSION_DEPTH);
        assert!(error.message.contains("nests too deeply"), "{error}");
        let lists = format!("{}{}", "[".repeat(40), "]".repeat(40));
        assert!(compile_error(&lists).message.contains("nests too deeply"));
        // Brackets inside strings and comments don't count.
        let quoted = format!(
            "\"{}\" == '{}' // {}\n",
            "(".repeat(40),
            "[".repeat(40),
            "{".repeat(40)
        );
        assert!(Expression::compile(&quoted).is_ok());

        let chain = format!("1{}", " + 1".repeat(2 * MAX_EXPRESSION_DEPTH + 5));
        let error = compile_error(&chain);
        assert!(error.message.contains("too complex"), "{error}");
        let ternaries = format!("{}0", "true ? 1 : ".repeat(40));
        assert!(
            compile_error(&ternaries)
                .message
                .contains("nests too deeply")
        );
    }

    #[test]
    fn the_deepest_expressions_compile_on_a_small_stack_and_evaluate() {
        let on_stack = |bytes: usize, f: Box<dyn FnOnce() + Send>| {
            let thread = std::thread::Builder::new().stack_size(bytes).spawn(f);
            thread.unwrap().join().unwrap();
        };
        // Compiling rejects this chain, but parses it first, as deep as the source allows.
        let chain = format!("1{}", "+1".repeat(MAX_EXPRESSION_BYTES / 2 - 1));
        let parens = |n| format!("{}1{}", "(".repeat(n), ")".repeat(n));
        let (deepest, nested) = (
            parens(MAX_EXPRESSION_DEPTH),
            parens(MAX_EXPRESSION_DEPTH + 1),
        );
        on_stack(
            256 << 10,
            Box::new(move || {
                assert!(Expression::compile(&chain).is_err());
                assert!(Expression::compile(&deepest).is_ok());
                assert!(Expression::compile(&nested).is_err());
            }),
        );

        // The deepest tree accepted. Evaluating recurses on the caller's stack: a release
        // build needs a few KiB per level, a debug build tens.
        let deepest = format!("1{}", "+1".repeat(MAX_SYNTAX_TREE_DEPTH - 1));
        let lists = format!(
            "{}1{}",
            "[".repeat(MAX_EXPRESSION_DEPTH),
            "]".repeat(MAX_EXPRESSION_DEPTH)
        );
        let stack = if cfg!(debug_assertions) {
            8 << 20
        } else {
            512 << 10
        };
        on_stack(
            stack,
            Box::new(move || {
                let v = vars(json!(null));
                let sum = Expression::compile(&deepest).unwrap().eval(&v).unwrap();
                assert_eq!(sum.to_json(), json!(MAX_SYNTAX_TREE_DEPTH));
                assert!(Expression::compile(&lists).unwrap().eval(&v).is_ok());
            }),
        );
    }

    #[test]
    fn finds_referenced_labels_and_variables() {
        let expr = Expression::compile(
            r#"labels.room == "kitchen" && labels["node"] != "" && has(labels.zone)
               && "floor" in labels && data.x.exists(l, l == labels.sensor) && math.round(value) > 1.0"#,
        )
        .unwrap();
        let labels: Vec<_> = expr.referenced_labels().into_iter().collect();
        assert_eq!(labels, ["floor", "node", "room", "sensor", "zone"]);
        let variables: Vec<_> = expr.referenced_variables().into_iter().collect();
        assert_eq!(variables, ["data", "labels", "value"]);
    }

    #[test]
    fn converts_values_to_and_from_json() {
        let json = json!({"a": [1, 2.5, "x", true, null], "b": {"c": 3}});
        let value = RuleValue::from_json(&json);
        assert_eq!(value, RuleValue::from_json(&value.to_json()));
        assert_eq!(
            value.to_json().to_string(),
            json.to_string(),
            "81 stays 81, not 81.0"
        );
        let v = vars(json!({"x": 2.5}));
        assert_eq!(eval("data.x * 2.0", &v).unwrap().to_json().to_string(), "5");
        assert_eq!(
            eval("data.x / 2.0", &v).unwrap().to_json().to_string(),
            "1.25"
        );
        assert_eq!(eval("-0.0", &v).unwrap().to_json().to_string(), "0");
        assert_eq!(eval("1e300", &v).unwrap().to_json().to_string(), "1e+300");
        assert_eq!(eval("1 + 2", &v).unwrap().to_json(), json!(3));
        assert_eq!(eval("1.0 / 0.0", &v).unwrap().to_json(), json!(null));
        assert_eq!(
            eval("{'k': [1u]}", &v).unwrap().to_json(),
            json!({"k": [1]})
        );
        assert_eq!(eval("3", &v).unwrap().as_f64(), Some(3.0));
        assert_eq!(eval("3u", &v).unwrap().as_f64(), Some(3.0));
        assert_eq!(eval("'3'", &v).unwrap().as_f64(), None);
        assert_eq!(eval("true", &v).unwrap().as_f64(), None);
    }

    #[test]
    fn expressions_and_vars_can_move_between_tasks() {
        fn assert_send_sync<T: Send + Sync + Clone>() {}
        assert_send_sync::<Expression>();
        assert_send_sync::<RuleValue>();
        assert_send_sync::<Vars>();
        let expr = Expression::compile("value").unwrap();
        assert_eq!(expr.source(), "value");
        assert_eq!(expr.clone(), expr);
    }
}
