//! Compact series notation for rule unit tests: promtool's "expanding notation".
//!
//! A rule unit test feeds a rule one event per step; its `values:` line is written as
//! space-separated items:
//!
//! | item    | steps                                   | example                  |
//! |---------|-----------------------------------------|--------------------------|
//! | `a`     | the value `a`                           | `-1.5e3`                 |
//! | `a+bxn` | n+1 values counting up: a, a+b, …, a+nb | `1+1x3` is `1 2 3 4`     |
//! | `a-bxn` | n+1 values counting down                | `10-2.5x2` is `10 7.5 5` |
//! | `axn`   | n+1 copies of `a` (`a+0xn`)             | `0x2` is `0 0 0`         |
//! | `_`     | one step without an event               |                          |
//! | `_xn`   | n steps without an event                | `1 _x2 3` is `1 _ _ 3`   |
//!
//! Values are decimal numbers, optionally signed or with an exponent; they must be finite.
//! promtool's `stale` has no meaning for events and is rejected with a hint to use `_`.
//!
//! Each value of a run is `a + i·b` computed exactly in decimal and rounded once, so
//! `0.1+0.1x2` ends at exactly `0.3` (as if written out), not `0.30000000000000004`. A series
//! expands to at most [`MAX_STEPS`] steps; longer ones are an error found before expanding.

/// One step of a series: a value, or no event at that step (`_`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Step {
    /// An event with this value.
    Value(f64),
    /// No event at this step.
    Skip,
}

/// A malformed series, pointing at the item at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("column {column}: {message}")]
pub struct NotationError {
    /// 1-based character column, in the series string, of the item at fault.
    pub column: usize,
    /// What is wrong, quoting the item or the part of it at fault.
    pub message: String,
}

/// The most steps a series may expand to, so a typo such as `1x1000000000` is an error rather
/// than an out-of-memory kill.
pub const MAX_STEPS: usize = 100_000;

/// Expands `series` into its steps. An empty series has none.
pub fn expand(series: &str) -> Result<Vec<Step>, NotationError> {
    let mut steps = Vec::new();
    for (column, item) in items(series) {
        let run = parse_item(item).map_err(|message| NotationError { column, message })?;
        if run.len() > MAX_STEPS - steps.len() {
            return Err(NotationError {
                column,
                message: format!("the series would have more than {MAX_STEPS} steps"),
            });
        }
        run.append_to(&mut steps)
            .map_err(|message| NotationError { column, message })?;
    }
    Ok(steps)
}

/// The whitespace-separated items of `series`, each with its 1-based character column.
fn items(series: &str) -> impl Iterator<Item = (usize, &str)> {
    let mut column = 1;
    // Each separator is one character, so a piece ends one column before the next begins.
    series.split(char::is_whitespace).filter_map(move |piece| {
        let at = column;
        column += piece.chars().count() + 1;
        (!piece.is_empty()).then_some((at, piece))
    })
}

/// What one item expands to.
enum Run {
    Skips(usize),
    /// `count` values `first + i·increment`, i = 0..count.
    Values {
        first: Number,
        increment: Number,
        count: usize,
    },
}

impl Run {
    fn len(&self) -> usize {
        match self {
            Run::Skips(count) | Run::Values { count, .. } => *count,
        }
    }

    fn append_to(&self, steps: &mut Vec<Step>) -> Result<(), String> {
        match self {
            Run::Skips(count) => steps.extend(std::iter::repeat_n(Step::Skip, *count)),
            Run::Values {
                first,
                increment,
                count,
            } => {
                // Rounding keeps `first + i·increment` monotonic in i, so if the last value is
                // finite, all are.
                let last = value_at(first, increment, count.saturating_sub(1));
                if !last.is_finite() {
                    return Err("the values grow past the largest finite number".to_owned());
                }
                steps.extend((0..*count).map(|i| Step::Value(value_at(first, increment, i))));
            }
        }
        Ok(())
    }
}

fn parse_item(item: &str) -> Result<Run, String> {
    if item.eq_ignore_ascii_case("stale") {
        return Err(
            "`stale` is not supported: test series are events, and a step without one \
                    is written `_`"
                .to_owned(),
        );
    }
    if let Some(rest) = item.strip_prefix('_') {
        return match rest.strip_prefix('x') {
            None if rest.is_empty() => Ok(Run::Skips(1)),
            None => Err(format!("`{item}`: expected `_` or `_xN`")),
            Some(count) => parse_count(count, item).map(Run::Skips),
        };
    }
    let (expression, count) = match item.split_once('x') {
        Some((expression, count)) => (expression, Some(parse_count(count, item)?)),
        None => (item, None),
    };
    // Number errors name the item too when the number is only part of it.
    let number = |text: &str| {
        parse_number(text).map_err(|problem| {
            if text == item {
                problem
            } else {
                format!("`{item}`: {problem}")
            }
        })
    };
    let (first, increment) = match operator_position(expression) {
        Some(at) => {
            let (first, rest) = expression.split_at(at);
            let (sign, increment) = rest.split_at(1);
            if increment.starts_with(['+', '-']) {
                return Err(format!(
                    "`{item}`: the increment takes no sign; write `a+bxN` to count up, \
                     `a-bxN` to count down"
                ));
            }
            if count.is_none() {
                return Err(format!(
                    "`{item}`: a run needs a count, e.g. `{expression}x3`"
                ));
            }
            let increment = number(increment)?;
            (
                number(first)?,
                if sign == "-" {
                    increment.negated()
                } else {
                    increment
                },
            )
        }
        None => (number(expression)?, Number::ZERO),
    };
    let count = count.map_or(1, |n| n + 1);
    Ok(Run::Values {
        first,
        increment,
        count,
    })
}

/// The byte position of the `+` or `-` between `a` and `b` in `a+b`: not a leading sign, and
/// not the sign of an exponent (`1e-3`).
fn operator_position(expression: &str) -> Option<usize> {
    let bytes = expression.as_bytes();
    (1..bytes.len())
        .find(|at| matches!(bytes[*at], b'+' | b'-') && !matches!(bytes[at - 1], b'e' | b'E'))
}

/// The `n` of `xn`: a plain decimal count, small enough to expand.
fn parse_count(text: &str, item: &str) -> Result<usize, String> {
    if text.is_empty() {
        return Err(format!("`{item}`: a count is missing after `x`"));
    }
    if !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "`{item}`: `{text}` is not a count; expected digits after `x`"
        ));
    }
    match text.parse::<usize>() {
        Ok(count) if count <= MAX_STEPS => Ok(count),
        _ => Err(format!(
            "`{item}`: the count {text} is more than a series may have ({MAX_STEPS} steps)"
        )),
    }
}

/// A value as written: its nearest `f64`, and its exact decimal form when it is short enough
/// to compute with exactly.
#[derive(Debug, Clone, Copy)]
struct Number {
    value: f64,
    decimal: Option<Decimal>,
}

/// `mantissa × 10^exponent`, exactly.
#[derive(Debug, Clone, Copy)]
struct Decimal {
    mantissa: i64,
    exponent: i32,
}

impl Number {
    const ZERO: Number = Number {
        value: 0.0,
        decimal: Some(Decimal {
            mantissa: 0,
            exponent: 0,
        }),
    };

    fn negated(self) -> Number {
        Number {
            value: -self.value,
            decimal: self.decimal.map(|d| Decimal {
                mantissa: -d.mantissa,
                exponent: d.exponent,
            }),
        }
    }
}

fn parse_number(text: &str) -> Result<Number, String> {
    match text.parse::<f64>() {
        Ok(value) if value.is_finite() => Ok(Number {
            value,
            decimal: parse_decimal(text),
        }),
        Ok(_) => Err(format!("`{text}` is not a finite number")),
        Err(_) if text.is_empty() => Err("a number is missing".to_owned()),
        Err(_) => Err(format!("`{text}` is not a number")),
    }
}

/// The exact decimal form of a number Rust's `f64` parser accepted and found finite, if it
/// has at most 18 significant digits and a modest exponent.
fn parse_decimal(text: &str) -> Option<Decimal> {
    let (negative, unsigned) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    let (digits, exponent) = match unsigned.split_once(['e', 'E']) {
        Some((digits, exponent)) => (digits, exponent.parse::<i32>().ok()?),
        None => (unsigned, 0),
    };
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
    let significant = format!("{whole}{fraction}");
    let significant = significant.trim_start_matches('0');
    if significant.len() > 18 || !significant.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mantissa: i64 = if significant.is_empty() {
        0
    } else {
        significant.parse().ok()?
    };
    let exponent = exponent.checked_sub(i32::try_from(fraction.len()).ok()?)?;
    Some(Decimal {
        mantissa: if negative { -mantissa } else { mantissa },
        exponent,
    })
}

/// Powers of ten that `f64` holds exactly.
const EXACT_POWERS_OF_TEN: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

/// `first + i·increment`: exact in decimal and rounded once when both are short decimals,
/// else in `f64` (never by repeated addition).
fn value_at(first: &Number, increment: &Number, i: usize) -> f64 {
    exact_value_at(first, increment, i).unwrap_or(first.value + i as f64 * increment.value)
}

fn exact_value_at(first: &Number, increment: &Number, i: usize) -> Option<f64> {
    let (a, b) = (first.decimal?, increment.decimal?);
    let exponent = a.exponent.min(b.exponent);
    let scale = |d: Decimal| -> Option<i128> {
        let shift = u32::try_from(d.exponent - exponent).ok()?;
        i128::from(d.mantissa).checked_mul(10i128.checked_pow(shift)?)
    };
    let sum = scale(a)?.checked_add(scale(b)?.checked_mul(i128::try_from(i).ok()?)?)?;
    // Both the integer and the power of ten are exact in `f64`, so the one multiplication or
    // division below is the only rounding.
    if sum.unsigned_abs() > 1u128 << f64::MANTISSA_DIGITS {
        return None;
    }
    let power = *EXACT_POWERS_OF_TEN.get(usize::try_from(exponent.unsigned_abs()).ok()?)?;
    let sum = sum as f64;
    Some(if exponent >= 0 {
        sum * power
    } else {
        sum / power
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn values(series: &str) -> Vec<Option<f64>> {
        let steps = expand(series).unwrap_or_else(|e| panic!("`{series}`: {e}"));
        steps
            .into_iter()
            .map(|step| match step {
                Step::Value(v) => Some(v),
                Step::Skip => None,
            })
            .collect()
    }

    fn error(series: &str) -> String {
        expand(series).expect_err("invalid series").to_string()
    }

    #[test]
    fn expands_promtools_documented_examples() {
        assert_eq!(
            values("1+1x3"),
            [Some(1.0), Some(2.0), Some(3.0), Some(4.0)]
        );
        assert_eq!(
            values("1-1x3"),
            [Some(1.0), Some(0.0), Some(-1.0), Some(-2.0)]
        );
        assert_eq!(values("1 _x3 2"), [Some(1.0), None, None, None, Some(2.0)]);
        assert_eq!(values("1x3"), [Some(1.0); 4]);
        assert_eq!(values("1+0x3"), [Some(1.0); 4]);
        assert_eq!(values("_ 2 _"), [None, Some(2.0), None]);
        assert_eq!(values("-2+4x1 1x0 _x0"), [Some(-2.0), Some(2.0), Some(1.0)]);
    }

    #[test]
    fn takes_signs_decimals_and_exponents() {
        assert_eq!(
            values("-1.5e3 +2 .5 3. 1E-2"),
            [Some(-1500.0), Some(2.0), Some(0.5), Some(3.0), Some(0.01)]
        );
        assert_eq!(
            values("-1e-3-1e-3x2"),
            [Some(-0.001), Some(-0.002), Some(-0.003)]
        );
        assert_eq!(values("1e+2+1e+1x1"), [Some(100.0), Some(110.0)]);
    }

    #[test]
    fn decimal_runs_land_on_the_values_as_written() {
        assert_eq!(values("0.1+0.1x2"), [Some(0.1), Some(0.2), Some(0.3)]);
        assert_eq!(values("1-0.1x10").last(), Some(&Some(0.0)));
        let up = values("20.5+0.7x100");
        assert_eq!(up[37], Some("46.4".parse().expect("a number")));
        // Too precise to compute in decimal: plain `a + i·b`.
        assert_eq!(
            values("0.1234567890123456789+1x1")[1],
            Some("0.1234567890123456789".parse::<f64>().expect("a number") + 1.0)
        );
    }

    #[test]
    fn whitespace_of_any_kind_separates_items() {
        assert_eq!(values("  1\t2\n _  "), [Some(1.0), Some(2.0), None]);
        assert_eq!(values(""), []);
        assert_eq!(values("   "), []);
    }

    #[test]
    fn errors_point_at_the_item() {
        assert_eq!(error("1 2 abc"), "column 5: `abc` is not a number");
        assert_eq!(error("1 \u{f1} 2"), "column 3: `\u{f1}` is not a number");
        assert_eq!(
            error("1 _x3 stale"),
            "column 7: `stale` is not supported: test series are events, and a step without one is written `_`"
        );
        assert_eq!(error("NaN"), "column 1: `NaN` is not a finite number");
        assert_eq!(error("1 +Inf"), "column 3: `+Inf` is not a finite number");
        assert_eq!(error("1e999"), "column 1: `1e999` is not a finite number");
        assert_eq!(
            error("1+inf x3"),
            "column 1: `1+inf`: a run needs a count, e.g. `1+infx3`"
        );
        assert_eq!(
            error("1+1"),
            "column 1: `1+1`: a run needs a count, e.g. `1+1x3`"
        );
        assert_eq!(
            error("1+-1x3"),
            "column 1: `1+-1x3`: the increment takes no sign; write `a+bxN` to count up, `a-bxN` to count down"
        );
        assert_eq!(error("1+x3"), "column 1: `1+x3`: a number is missing");
        assert_eq!(
            error("1+1x"),
            "column 1: `1+1x`: a count is missing after `x`"
        );
        assert_eq!(
            error("1+1x2.5"),
            "column 1: `1+1x2.5`: `2.5` is not a count; expected digits after `x`"
        );
        assert_eq!(error("_y"), "column 1: `_y`: expected `_` or `_xN`");
        assert_eq!(
            error("1e308+1e308x2"),
            "column 1: the values grow past the largest finite number"
        );
    }

    #[test]
    fn the_step_limit_is_checked_before_expanding() {
        assert_eq!(expand("_x100000").map(|steps| steps.len()), Ok(MAX_STEPS));
        assert_eq!(expand("1x99999").map(|steps| steps.len()), Ok(MAX_STEPS));
        assert_eq!(
            error("1x100000"),
            "column 1: the series would have more than 100000 steps"
        );
        assert_eq!(
            error("1 _x99999 2"),
            "column 11: the series would have more than 100000 steps"
        );
        assert_eq!(
            error("1x1000000000000"),
            "column 1: `1x1000000000000`: the count 1000000000000 is more than a series may have (100000 steps)"
        );
        assert_eq!(
            error("1x99999999999999999999999"),
            "column 1: `1x99999999999999999999999`: the count 99999999999999999999999 is more than a series may have (100000 steps)"
        );
    }

    /// One item and the steps it stands for.
    fn any_item() -> impl Strategy<Value = (String, Vec<Option<f64>>)> {
        let count = 0..40usize;
        prop_oneof![
            (-1000..1000i32).prop_map(|a| (a.to_string(), vec![Some(f64::from(a))])),
            (-1000..1000i32, 0..100i32, count.clone()).prop_map(|(a, b, n)| {
                (
                    format!("{a}+{b}x{n}"),
                    (0..=n as i32).map(|i| Some(f64::from(a + i * b))).collect(),
                )
            }),
            (-1000..1000i32, 0..100i32, count.clone()).prop_map(|(a, b, n)| {
                (
                    format!("{a}-{b}x{n}"),
                    (0..=n as i32).map(|i| Some(f64::from(a - i * b))).collect(),
                )
            }),
            (-1000..1000i32, count.clone())
                .prop_map(|(a, n)| (format!("{a}x{n}"), vec![Some(f64::from(a)); n + 1])),
            Just(("_".to_owned(), vec![None])),
            count.prop_map(|n| (format!("_x{n}"), vec![None; n])),
        ]
    }

    /// `cents` hundredths written as a decimal, e.g. `-0.05`.
    fn decimal(cents: i64) -> String {
        let sign = if cents < 0 { "-" } else { "" };
        format!("{sign}{}.{:02}", cents.abs() / 100, cents.abs() % 100)
    }

    proptest! {
        #[test]
        fn expands_to_the_steps_of_its_items(
            items in prop::collection::vec(any_item(), 0..20),
            separators in prop::collection::vec(prop::sample::select(vec![" ", "  ", "\t", " \n "]), 20),
        ) {
            let series: String = items.iter().zip(&separators).map(|((item, _), sep)| format!("{item}{sep}")).collect();
            let expected: Vec<Option<f64>> = items.iter().flat_map(|(_, steps)| steps.clone()).collect();
            prop_assert_eq!(values(&series), expected);
        }

        #[test]
        fn decimal_runs_match_the_values_written_out(a in -100_000..100_000i64, b in 0..10_000i64, n in 0..50i64, down: bool) {
            let (op, step) = if down { ("-", -b) } else { ("+", b) };
            let series = format!("{}{op}{}x{n}", decimal(a), decimal(b));
            let expected: Vec<Option<f64>> = (0..=n).map(|i| Some(decimal(a + i * step).parse().expect("a number"))).collect();
            prop_assert_eq!(values(&series), expected);
        }
    }
}
