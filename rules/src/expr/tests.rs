//! Tests of compiling and evaluating expressions, their limits and error messages.

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
    assert_eq!(
        eval_error("data.nope > 1", &v),
        "`data` has no field `nope` (it has x); test with `has(data.nope)` first if it is optional"
    );
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

mod fast_path {
    use proptest::prelude::*;
    use serde_json::{Value as Json, json};

    use super::super::*;

    fn operand() -> impl Strategy<Value = Json> {
        prop_oneof![
            any::<i32>().prop_map(|n| json!(n)),
            (-1e6f64..1e6).prop_map(|f| json!(f)),
            Just(json!(80)),
            Just(json!(80.0)),
            "[a-z]{0,4}".prop_map(|s| json!(s)),
            any::<bool>().prop_map(|b| json!(b)),
            Just(Json::Null),
            Just(json!({"x": 1})),
        ]
    }

    fn vars_for(value: &Json, data: &Json) -> Vars {
        let subject = atalaya_bus::Subject::parse("t").unwrap();
        let mut vars = Vars::new(
            data,
            &atalaya_bus::Labels::new(),
            &subject,
            jiff::Timestamp::UNIX_EPOCH,
        );
        vars.set_value(RuleValue::from_json(value));
        vars
    }

    proptest! {
        /// Whenever the native path answers, CEL answers the same.
        #[test]
        fn agrees_with_cel(
            x in operand(),
            op in prop::sample::select(vec![">", ">=", "<", "<=", "==", "!="]),
            literal in prop::sample::select(vec!["80", "80.0", "-3", "21.5", "1e2", "0"]),
            on_data in any::<bool>(),
        ) {
            let (source, value, data) = if on_data {
                (format!("data.x {op} {literal}"), json!(0), json!({"x": x}))
            } else {
                (format!("value {op} {literal}"), x.clone(), json!({}))
            };
            let expression = Expression::compile(&source).unwrap();
            if let Some(fast) = expression.fast_bool(&value, &data) {
                let cel = expression.eval_bool(&vars_for(&value, &data));
                prop_assert_eq!(cel, Ok(fast), "{}", source);
            } else {
                prop_assert!(!x.is_number(), "numbers take the native path: {}", source);
            }
        }

        #[test]
        fn paths_agree_with_cel(x in operand()) {
            let data = json!({"a": {"b": x}});
            let expression = Expression::compile("data.a.b").unwrap();
            let fast = expression.fast_value(&json!(0), &data).unwrap();
            let cel = expression.eval(&vars_for(&json!(0), &data)).unwrap().to_json();
            prop_assert_eq!(fast, cel);
        }
    }
}

/// `[0, 1, …, n-1]` as CEL source.
fn literal_list(n: usize) -> String {
    let items: Vec<String> = (0..n).map(|i| i.to_string()).collect();
    format!("[{}]", items.join(","))
}

#[test]
fn loops_nested_past_the_limit_are_refused_at_compile_time() {
    // From the issue: 1.5 KB that hung `atalaya check` and froze the engine for good.
    let l = literal_list(100);
    let five = format!("{l}.all(a, {l}.all(b, {l}.all(c, {l}.all(d, {l}.all(e, e >= 0)))))");
    let error = compile_error(&five);
    assert!(error.message.contains("nest more than 2 deep"), "{error:?}");
    // The column points at the third loop.
    assert!(error.offset > 2 * l.len(), "{error:?}");
    let strings = format!(
        "size({l}.map(a, {l}.map(b, {l}.map(c, {l}.map(d, \"{}\"))))) > 0",
        "x".repeat(100)
    );
    assert!(compile_error(&strings).message.contains("nest more than 2"));
    let long_string = format!("{l}.map(a, \"{}\").size() > 0", "x".repeat(300));
    assert!(
        compile_error(&long_string)
            .message
            .contains("string inside a loop")
    );
    // Two deep over the expression's own 400 items: 160 000 steps.
    let wide = literal_list(400);
    let error = compile_error(&format!("{wide}.all(a, {wide}.all(b, a >= b || b > a))"));
    assert!(error.message.contains("loops too much"), "{error:?}");
    // Within the limits: fine.
    assert!(is_true(
        &format!("{l}.all(a, {l}.exists(b, b == a))"),
        &vars(json!({}))
    ));
}

#[test]
fn loops_over_long_lists_in_event_data_are_refused_at_run_time() {
    let nested = "data.items.all(a, data.items.all(b, a + b >= 0))";
    let long = vars(json!({"items": (0..400).collect::<Vec<_>>()}));
    let error = eval_error(nested, &long);
    assert!(error.contains("not evaluated"), "{error}");
    // One loop over the same list is 400 steps: fine.
    assert!(is_true("data.items.all(a, a >= 0)", &long));
    let short = vars(json!({"items": (0..100).collect::<Vec<_>>()}));
    assert!(is_true(nested, &short));
}

#[test]
fn type_errors_name_the_variable_and_what_it_holds() {
    let warm = vars(json!("warm"));
    assert_eq!(
        eval_error("data.temperature > -10.0", &warm),
        r#"cannot apply '[]' to string and string: `data` is a string ("warm"), not an object, so it has no field `temperature`"#
    );
    let text = vars(json!({"sensor": {"temperature": "warm"}, "n": 1}));
    assert_eq!(
        eval_error("data.sensor.temperature > -10", &text),
        r#"cannot apply '>' to string and int: `data.sensor.temperature` is a string ("warm"), not a number"#
    );
    assert_eq!(
        eval_error("data.sensor.temperature * 1.8 + 32.0", &text),
        r#"cannot apply '*' to string and double: `data.sensor.temperature` is a string ("warm"), not a number"#
    );
    let mut set = vars(json!({}));
    set.set_value(RuleValue::from_json(&json!(true)));
    assert_eq!(
        eval_error("value + 1.0", &set),
        "cannot apply '+' to bool and double: `value` is true, not a number"
    );
    // Paths that are fine are not named.
    assert_eq!(
        eval_error(r#"data.n > 0.0 && data.sensor["temperature"] > 1.0"#, &text),
        r#"cannot apply '>' to string and double: `data.sensor.temperature` is a string ("warm"), not a number"#
    );
}

#[test]
fn a_missing_field_names_the_fields_there_are() {
    let v = vars(json!({"sensor": {"temperature": 1, "battery": 90}}));
    assert_eq!(
        eval_error("data.sensor.humidity > 1.0", &v),
        "`data.sensor` has no field `humidity` (it has battery, temperature); test with `has(data.sensor.humidity)` first if it is optional"
    );
}
