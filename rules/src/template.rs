//! Jinja templates (minijinja): a rule's severity, labels and annotations.
//!
//! A template is compiled once, when its rule file is loaded, and rendered against a JSON
//! context the engine builds: `{"labels": {…}, "value": 21.5, "data": {…}, "subject":
//! "home/x", "rule": "name", "severity": "warning", "time": "RFC 3339"}`.
//!
//! Every template renders with the same settings:
//! - an undefined variable or field is an error, not empty text, so a typo shows up;
//! - a render may take at most [`TEMPLATE_FUEL`] steps, so a runaway loop fails quickly;
//! - nothing is HTML-escaped: the text goes to Telegram or mail, which escape it themselves;
//! - one trailing newline is dropped, as YAML block scalars (`|`) add one;
//! - values print as a household reads them, not as Python would: a whole number without
//!   `.0` (a count of 3 is `3`), `true`/`false`, nothing for none, objects and lists as
//!   compact JSON (`{"contact": false}`, not `{"contact": False}`).
//!
//! Besides minijinja's built-in filters (`round`, `upper`, `default`, `format`, …) there are
//! `humanize_duration` (seconds to `"3m 20s"`, `"2h 5m"`, `"1d 4h"`) and `fixed(n)` (a
//! number with `n` decimals: `21.456 | fixed(1)` is `"21.5"`).

use std::collections::BTreeSet;
use std::fmt;
use std::sync::{Arc, LazyLock};

use minijinja::{AutoEscape, Environment, ErrorKind, UndefinedBehavior};

/// The most steps (instructions of minijinja's machine) one render may take.
pub const TEMPLATE_FUEL: u64 = 50_000;

/// The longest template source accepted, in bytes.
pub const MAX_TEMPLATE_BYTES: usize = 8192;

/// The name a template has in its environment, which holds it alone.
const NAME: &str = "template";

/// The settings and filters every template shares, built once; each template gets a copy
/// holding it alone.
static BASE_ENV: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_fuel(Some(TEMPLATE_FUEL));
    env.set_auto_escape_callback(|_| AutoEscape::None);
    env.set_keep_trailing_newline(false);
    env.set_formatter(readable_formatter);
    env.add_filter("humanize_duration", humanize_duration);
    env.add_filter("fixed", fixed);
    env
});

/// A compiled template. Cheap to clone; `Send + Sync`.
#[derive(Clone)]
pub struct Template {
    source: Arc<str>,
    /// The environment holding the compiled template; `None` for static text, which needs
    /// no rendering.
    env: Option<Arc<Environment<'static>>>,
}

/// Why a template does not compile.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct TemplateError {
    /// The 1-based line within the template source.
    pub line: usize,
    /// The 1-based column, in characters, when known.
    pub column: Option<usize>,
    pub message: String,
}

/// Why a render failed: an undefined variable, a type error, running out of fuel, ….
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct RenderError(pub String);

impl Template {
    /// Compiles `source`, rejecting one that is too long or has a syntax error.
    pub fn compile(source: &str) -> Result<Self, TemplateError> {
        if source.len() > MAX_TEMPLATE_BYTES {
            let (line, column) = line_and_column(source, MAX_TEMPLATE_BYTES);
            return Err(TemplateError {
                line,
                column: Some(column),
                message: format!(
                    "template is too long: {} bytes, the limit is {MAX_TEMPLATE_BYTES}",
                    source.len()
                ),
            });
        }
        if is_static_text(source) {
            return Ok(Self {
                source: source.into(),
                env: None,
            });
        }
        let mut env = BASE_ENV.clone();
        env.add_template_owned(NAME, source.to_owned())
            .map_err(|error| {
                let (line, column) = match error.range() {
                    Some(range) => {
                        let (line, column) = line_and_column(source, range.start);
                        (line, Some(column))
                    }
                    None => (error.line().unwrap_or(1), None),
                };
                TemplateError {
                    line,
                    column,
                    message: describe(&error),
                }
            })?;
        Ok(Self {
            source: source.into(),
            env: Some(Arc::new(env)),
        })
    }

    /// The source the template was compiled from.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Whether the template is plain text, without `{{`, `{%` or `{#`: it renders as itself
    /// (less one trailing newline), so the engine can skip building a context for it.
    pub fn is_static(&self) -> bool {
        self.env.is_none()
    }

    /// Renders the template against `ctx`, a JSON object.
    pub fn render(&self, ctx: &serde_json::Value) -> Result<String, RenderError> {
        let Some(template) = self.compiled() else {
            return Ok(without_trailing_newline(&self.source).to_owned());
        };
        template.render(ctx).map_err(|error| {
            let mut message = match error.kind() {
                ErrorKind::UndefinedError => match self.undefined_path(&template, ctx, &error) {
                    Some(path) => format!("undefined variable or field `{path}`"),
                    None => "undefined variable or field".to_owned(),
                },
                ErrorKind::OutOfFuel => format!(
                    "template ran out of fuel: rendering it took more than {TEMPLATE_FUEL} steps"
                ),
                // Filters such as `round` take undefined values and fail on their own.
                _ if error.detail().is_some_and(|d| d.contains("undefined")) => {
                    match self.undefined_path(&template, ctx, &error) {
                        Some(path) => format!("{}: `{path}` is undefined", describe(&error)),
                        None => describe(&error),
                    }
                }
                _ => describe(&error),
            };
            if let Some(line) = error.line() {
                message.push_str(&format!(" (line {line})"));
            }
            RenderError(message)
        })
    }

    /// Label names referenced as `labels.x` or `labels["x"]`, for `atalaya check`.
    pub fn referenced_labels(&self) -> BTreeSet<String> {
        let Some(template) = self.compiled() else {
            return BTreeSet::new();
        };
        let mut names: BTreeSet<String> = template
            .undeclared_variables(true)
            .iter()
            .filter_map(|path| path.strip_prefix("labels."))
            .map(|rest| rest.split('.').next().unwrap_or(rest).to_owned())
            .collect();
        // minijinja reports `labels["x"]` as `labels` alone.
        names.extend(subscripted_labels(&self.source));
        names
    }

    /// Top-level variables referenced (`labels`, `value`, `data`, …), not counting
    /// minijinja's global functions such as `range`.
    pub fn referenced_variables(&self) -> BTreeSet<String> {
        let Some(template) = self.compiled() else {
            return BTreeSet::new();
        };
        let globals: BTreeSet<&str> = BASE_ENV.globals().map(|(name, _)| name).collect();
        template
            .undeclared_variables(false)
            .into_iter()
            .filter(|name| !globals.contains(name.as_str()))
            .collect()
    }

    /// The variable or field an undefined-value error is about. minijinja points at the
    /// expression that failed, which may be a filter applied to the undefined value: the
    /// answer is the referenced path missing from `ctx` that is written there, or else
    /// the closest before it.
    fn undefined_path(
        &self,
        template: &minijinja::Template<'_, '_>,
        ctx: &serde_json::Value,
        error: &minijinja::Error,
    ) -> Option<String> {
        let range = error.range().unwrap_or(0..self.source.len());
        let written = self.source.get(range.clone()).map(str::trim);
        let globals: BTreeSet<&str> = BASE_ENV.globals().map(|(name, _)| name).collect();
        let missing: Vec<String> = template
            .undeclared_variables(true)
            .into_iter()
            .filter(|path| !globals.contains(path.as_str()) && !resolves(ctx, path))
            .collect();
        if let Some(written) = written.filter(|w| missing.iter().any(|path| path == w)) {
            return Some(written.to_owned());
        }
        let before = self.source.get(..range.end).unwrap_or(&self.source);
        missing
            .into_iter()
            .filter_map(|path| before.rfind(path.as_str()).map(|at| (at, path)))
            .max()
            .map(|(_, path)| path)
    }

    fn compiled(&self) -> Option<minijinja::Template<'_, '_>> {
        // The environment was built holding this template: the lookup cannot fail.
        self.env
            .as_ref()
            .and_then(|env| env.get_template(NAME).ok())
    }
}

impl fmt::Debug for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Template").field(&&*self.source).finish()
    }
}

/// Two templates are equal when their sources are: the same source compiles the same.
impl PartialEq for Template {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

impl Eq for Template {}

/// Whether the dotted `path` names a value in `ctx`.
fn resolves(ctx: &serde_json::Value, path: &str) -> bool {
    let mut value = ctx;
    for field in path.split('.') {
        match value.get(field) {
            Some(inner) => value = inner,
            None => return false,
        }
    }
    true
}

fn is_static_text(source: &str) -> bool {
    !["{{", "{%", "{#"].iter().any(|open| source.contains(open))
}

/// What minijinja renders static text as, with `keep_trailing_newline` off.
fn without_trailing_newline(source: &str) -> &str {
    let source = source.strip_suffix('\n').unwrap_or(source);
    source.strip_suffix('\r').unwrap_or(source)
}

/// An error's kind and detail, without the template name and line minijinja appends.
fn describe(error: &minijinja::Error) -> String {
    match error.detail() {
        Some(detail) => format!("{}: {detail}", error.kind()),
        None => error.kind().to_string(),
    }
}

/// The 1-based line and 1-based char column of byte `byte` of `source`.
fn line_and_column(source: &str, byte: usize) -> (usize, usize) {
    let before = source.get(..byte).unwrap_or(source);
    let line_start = before.rfind('\n').map_or(0, |newline| newline + 1);
    let line = before.matches('\n').count() + 1;
    (line, before[line_start..].chars().count() + 1)
}

/// Names in `labels["x"]` and `labels['x']` inside the template's tags.
fn subscripted_labels(source: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for tag in tags(source) {
        let mut rest = tag;
        while let Some(at) = rest.find("labels") {
            let preceded_by_ident = rest[..at]
                .chars()
                .next_back()
                .is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '.');
            let after = &rest[at + "labels".len()..];
            rest = after;
            if preceded_by_ident {
                continue;
            }
            let Some(subscript) = after.trim_start().strip_prefix('[') else {
                continue;
            };
            let subscript = subscript.trim_start();
            let Some(quote) = subscript.chars().next().filter(|c| matches!(c, '"' | '\'')) else {
                continue;
            };
            let Some((name, tail)) = subscript[1..].split_once(quote) else {
                continue;
            };
            if tail.trim_start().starts_with(']') {
                names.insert(name.to_owned());
            }
        }
    }
    names
}

/// The insides of `{{ … }}` and `{% … %}` tags.
fn tags(source: &str) -> impl Iterator<Item = &str> {
    let mut rest = source;
    std::iter::from_fn(move || {
        loop {
            let open = rest.find('{')?;
            let after = &rest[open + 1..];
            let close = match after.chars().next() {
                Some('{') => "}}",
                Some('%') => "%}",
                _ => {
                    rest = after;
                    continue;
                }
            };
            let inside = &after[1..];
            let end = inside.find(close).unwrap_or(inside.len());
            rest = &inside[end..];
            return Some(&inside[..end]);
        }
    })
}

/// Writes `{{ value }}` as [`readable`] text; strings, and anything else this does not
/// rewrite, as minijinja would.
fn readable_formatter(
    out: &mut minijinja::Output<'_>,
    state: &minijinja::State<'_, '_>,
    value: &minijinja::Value,
) -> Result<(), minijinja::Error> {
    use minijinja::value::ValueKind;
    match value.kind() {
        ValueKind::None | ValueKind::Bool | ValueKind::Number | ValueKind::Seq | ValueKind::Map => {
            minijinja::escape_formatter(out, state, &minijinja::Value::from(readable(value)))
        }
        _ => minijinja::escape_formatter(out, state, value),
    }
}

/// A value as a person reads it: whole numbers without a fraction, `true`/`false`, none as
/// nothing, lists and objects as compact JSON (strings in them quoted).
fn readable(value: &minijinja::Value) -> String {
    use minijinja::value::ValueKind;
    match value.kind() {
        ValueKind::None | ValueKind::Undefined => String::new(),
        ValueKind::Bool => value.is_true().to_string(),
        ValueKind::Number => match f64::try_from(value.clone()) {
            // Exactly representable as an integer: print it as one (`3.0` is `3`).
            Ok(f) if f.fract() == 0.0 && f.abs() < 1e15 => format!("{}", f as i64),
            _ => value.to_string(),
        },
        ValueKind::Seq | ValueKind::Iterable => {
            let items: Vec<String> = value
                .try_iter()
                .into_iter()
                .flatten()
                .map(|item| json_item(&item))
                .collect();
            format!("[{}]", items.join(", "))
        }
        ValueKind::Map => {
            let entries: Vec<String> = value
                .try_iter()
                .into_iter()
                .flatten()
                .map(|key| {
                    let item = value.get_item(&key).unwrap_or_default();
                    format!("{}: {}", json_item(&key), json_item(&item))
                })
                .collect();
            format!("{{{}}}", entries.join(", "))
        }
        _ => value.to_string(),
    }
}

/// A value inside a list or an object: strings quoted as in JSON, none as `null`.
fn json_item(value: &minijinja::Value) -> String {
    match value.as_str() {
        Some(text) => serde_json::to_string(text).unwrap_or_default(),
        None if value.is_none() => "null".to_owned(),
        None => readable(value),
    }
}

/// A number of seconds as [`humanize_duration`] writes it (`12m`, `3m 20s`, `1d 2h`): the
/// `duration` of a rule's templates.
pub fn humanize_seconds(seconds: i64) -> String {
    humanize_duration(seconds as f64).unwrap_or_default()
}

/// `{{ 200 | humanize_duration }}` is `"3m 20s"`: the two largest units of a number of
/// seconds, rounded to the second.
fn humanize_duration(seconds: f64) -> Result<String, minijinja::Error> {
    if !seconds.is_finite() {
        return Err(minijinja::Error::new(
            ErrorKind::InvalidOperation,
            "humanize_duration needs a finite number of seconds",
        ));
    }
    let sign = if seconds <= -0.5 { "-" } else { "" };
    // A float-to-int `as` saturates: absurd durations print as about 2^64 seconds.
    let total = seconds.abs().round() as u64;
    let (days, hours) = (total / 86_400, total % 86_400 / 3_600);
    let (minutes, secs) = (total % 3_600 / 60, total % 60);
    let two_units = |big: u64, big_unit: &str, small: u64, small_unit: &str| {
        if small == 0 {
            format!("{sign}{big}{big_unit}")
        } else {
            format!("{sign}{big}{big_unit} {small}{small_unit}")
        }
    };
    Ok(if days > 0 {
        two_units(days, "d", hours, "h")
    } else if hours > 0 {
        two_units(hours, "h", minutes, "m")
    } else if minutes > 0 {
        two_units(minutes, "m", secs, "s")
    } else {
        format!("{sign}{secs}s")
    })
}

/// The most decimals `fixed` prints.
const MAX_FIXED_DECIMALS: usize = 20;

/// `{{ 21.456 | fixed(1) }}` is `"21.5"`: a number with exactly `decimals` decimals.
fn fixed(value: f64, decimals: usize) -> Result<String, minijinja::Error> {
    if decimals > MAX_FIXED_DECIMALS {
        return Err(minijinja::Error::new(
            ErrorKind::InvalidOperation,
            format!("fixed takes at most {MAX_FIXED_DECIMALS} decimals, not {decimals}"),
        ));
    }
    Ok(format!("{value:.decimals$}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn context() -> serde_json::Value {
        json!({
            "labels": {"room": "kitchen", "node": "pi-3"},
            "value": 21.5,
            "data": {"celsius": 21.5, "state": "ON"},
            "subject": "home/kitchen/temperature",
            "rule": "kitchen-hot",
            "severity": "warning",
            "time": "2025-01-31T18:04:05Z",
        })
    }

    fn render(source: &str) -> Result<String, RenderError> {
        Template::compile(source).unwrap().render(&context())
    }

    fn names(set: BTreeSet<String>) -> Vec<String> {
        set.into_iter().collect()
    }

    #[test]
    fn static_text_renders_as_itself() {
        let template = Template::compile("Kitchen is hot\n").unwrap();
        assert!(template.is_static());
        assert_eq!(template.render(&json!({})).unwrap(), "Kitchen is hot");
        assert_eq!(template.source(), "Kitchen is hot\n");
        assert!(template.referenced_variables().is_empty());
        // Braces that open no tag are text too.
        assert!(Template::compile("a {b} } {").unwrap().is_static());
        assert!(!Template::compile("a {# note #}").unwrap().is_static());
    }

    #[test]
    fn values_print_as_a_household_reads_them_not_as_python_would() {
        let ctx = json!({
            "count": 3.0,
            "celsius": 21.5,
            "big": 1e20,
            "door": {"contact": false, "battery": 97, "name": "front \"door\"", "seen": [1.0, null, true]},
            "gone": null,
        });
        let render = |source: &str| Template::compile(source).unwrap().render(&ctx).unwrap();
        assert_eq!(render("{{ count }} time(s)"), "3 time(s)");
        assert_eq!(render("{{ count | int }} / {{ count * 2 }}"), "3 / 6");
        assert_eq!(
            render("{{ celsius }} °C, {{ big }}"),
            "21.5 °C, 100000000000000000000.0"
        );
        assert_eq!(
            render("{{ door }}"),
            r#"{"battery": 97, "contact": false, "name": "front \"door\"", "seen": [1, null, true]}"#
        );
        assert_eq!(
            render("{{ door.contact }} {{ door.seen }}"),
            "false [1, null, true]"
        );
        assert_eq!(render("[{{ gone }}]"), "[]");
        assert_eq!(
            render("{{ 'text' }} {{ door.name }}"),
            r#"text front "door""#
        );
    }

    #[test]
    fn renders_variables_without_escaping() {
        assert_eq!(
            render("{{ labels.room }} is at {{ value }}°C ({{ rule }}, {{ severity }})\n").unwrap(),
            "kitchen is at 21.5°C (kitchen-hot, warning)"
        );
        assert_eq!(
            render(r#"{{ labels["node"] }} <b>{{ data.state }}</b> & {{ "<x>" }}"#).unwrap(),
            "pi-3 <b>ON</b> & <x>"
        );
        assert_eq!(
            render("{% if value > 20 %}critical{% else %}warning{% endif %}").unwrap(),
            "critical"
        );
    }

    #[test]
    fn an_undefined_variable_is_an_error_naming_it() {
        let error = render("ok\n{{ labels.room }} {{ valu }}").unwrap_err();
        assert_eq!(error.0, "undefined variable or field `valu` (line 2)");
        let error = render("{{ labels.zone | upper }}").unwrap_err();
        assert_eq!(
            error.0,
            "undefined variable or field `labels.zone` (line 1)"
        );
        let error = render("{{ labels.zone | default('') }}{{ data.x | round }}").unwrap_err();
        assert_eq!(
            error.0,
            "invalid operation: cannot round value (undefined): `data.x` is undefined (line 1)"
        );
        // `default` is the way to allow a missing value.
        assert_eq!(render("{{ labels.zone | default('-') }}").unwrap(), "-");
    }

    #[test]
    fn a_runaway_loop_runs_out_of_fuel_quickly() {
        let started = std::time::Instant::now();
        let error = render("{% for i in range(100000) %}{{ i }}{% endfor %}").unwrap_err();
        assert!(error.0.starts_with("template ran out of fuel"), "{error}");
        let nested =
            "{% for i in range(10000) %}{% for j in range(10000) %}x{% endfor %}{% endfor %}";
        assert!(render(nested).unwrap_err().0.contains("out of fuel"));
        assert!(render("{% for i in range(100000000) %}{{ i }}{% endfor %}").is_err());
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
    }

    #[test]
    fn reports_syntax_errors_by_line_and_column() {
        let error = Template::compile("Line one\n  {{ value + }}\nthree").unwrap_err();
        assert_eq!(error.line, 2);
        assert_eq!(error.column, Some(14), "at the `}}` that came too soon");
        assert_eq!(
            error.message,
            "syntax error: unexpected end of variable block"
        );
        let error = Template::compile("a\n{% if x %}\nb\n{% endfor %}").unwrap_err();
        assert_eq!((error.line, error.column), (4, Some(4)));
        assert!(error.message.contains("endfor"), "{error}");
    }

    #[test]
    fn rejects_deep_nesting_without_exhausting_the_stack() {
        let source = format!("{{{{ {}1{} }}}}", "(".repeat(500), ")".repeat(500));
        let error = Template::compile(&source).unwrap_err();
        assert!(error.message.contains("recursion"), "{error}");
    }

    #[test]
    fn rejects_a_too_long_template() {
        let source = format!("{{{{ value }}}}\n{}", "x".repeat(MAX_TEMPLATE_BYTES));
        let error = Template::compile(&source).unwrap_err();
        assert!(error.message.starts_with("template is too long"), "{error}");
        assert_eq!(error.line, 2);
    }

    #[test]
    fn finds_referenced_labels_and_variables() {
        let template = Template::compile(
            "{{ labels.node }} {{ labels[\"room\"] }} {{ labels['zone'] | default('') }}\n\
             {% if labels.floor == '1' %}{{ value | round(1) }}{% endif %}\
             {% for i in range(3) %}{{ data.x }}{% endfor %} labels[\"text\"]",
        )
        .unwrap();
        assert_eq!(
            names(template.referenced_labels()),
            ["floor", "node", "room", "zone"]
        );
        assert_eq!(
            names(template.referenced_variables()),
            ["data", "labels", "value"]
        );
    }

    #[test]
    fn has_filters_for_alert_text() {
        assert_eq!(
            render("{{ value | round }} {{ 21.46 | round(1) }}").unwrap(),
            "22 21.5"
        );
        assert_eq!(
            render("{{ value | fixed(2) }} {{ 3 | fixed(0) }}").unwrap(),
            "21.50 3"
        );
        assert!(render("{{ value | fixed(99) }}").is_err());
        let durations = "{{ 0 | humanize_duration }}, {{ 45.4 | humanize_duration }}, \
                         {{ 200 | humanize_duration }}, {{ 180 | humanize_duration }}, \
                         {{ 7500 | humanize_duration }}, {{ 100800 | humanize_duration }}, \
                         {{ -90 | humanize_duration }}";
        assert_eq!(
            render(durations).unwrap(),
            "0s, 45s, 3m 20s, 3m, 2h 5m, 1d 4h, -1m 30s"
        );
        assert!(render("{{ 'soon' | humanize_duration }}").is_err());
    }

    #[test]
    fn templates_can_move_between_tasks() {
        fn assert_send_sync<T: Send + Sync + Clone>() {}
        assert_send_sync::<Template>();
        let template = Template::compile("{{ value }}").unwrap();
        assert_eq!(template.clone(), template);
        let handle = std::thread::spawn(move || template.render(&json!({"value": 1})));
        assert_eq!(handle.join().unwrap().unwrap(), "1");
    }
}
