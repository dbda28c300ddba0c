//! A native path for the simplest and most common expressions, so most events need no CEL:
//! a field of the data (`data.temperature`, as a value expression) and a comparison of `value`
//! or such a field with a number (`value > 80`, `data.battery <= 15`).
//!
//! The fast path answers only when its answer is certainly CEL's: the operand must be a JSON
//! number (compared as a double, like every JSON number in atalaya's CEL). Anything else —
//! a missing field, a string, a richer expression — is left to CEL (`None`), which then gives
//! its own result or error.

use serde_json::Value as Json;

/// The shape of a simple expression.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Fast {
    /// `data.a.b`: a field of the data.
    Path(Operand),
    /// `<operand> <op> <number>`.
    Compare(Operand, Op, f64),
}

#[derive(Debug, Clone, PartialEq)]
pub(super) enum Operand {
    Value,
    /// The field names after `data`.
    Data(Vec<String>),
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Op {
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
    Ne,
}

impl Fast {
    /// Recognises a simple expression; `None` for anything else.
    pub(super) fn parse(source: &str) -> Option<Self> {
        let source = source.trim();
        for (text, op) in [
            (">=", Op::Ge),
            ("<=", Op::Le),
            ("==", Op::Eq),
            ("!=", Op::Ne),
            (">", Op::Gt),
            ("<", Op::Lt),
        ] {
            if let Some((left, right)) = source.split_once(text) {
                let operand = Operand::parse(left.trim())?;
                let number = parse_number(right.trim())?;
                return Some(Self::Compare(operand, op, number));
            }
        }
        match Operand::parse(source)? {
            operand @ Operand::Data(_) => Some(Self::Path(operand)),
            Operand::Value => None,
        }
    }

    /// The value of a `Path` expression, when the field exists (normalised as CEL's result
    /// would be: a whole number is an integer).
    pub(super) fn value(&self, value: &Json, data: &Json) -> Option<Json> {
        match self {
            Self::Path(operand) => operand.resolve(value, data).map(normalise),
            Self::Compare(..) => None,
        }
    }

    /// The outcome of a `Compare` expression, when its operand is a number.
    pub(super) fn bool(&self, value: &Json, data: &Json) -> Option<bool> {
        let Self::Compare(operand, op, number) = self else {
            return None;
        };
        let x = operand.resolve(value, data)?.as_f64()?;
        Some(match op {
            Op::Lt => x < *number,
            Op::Le => x <= *number,
            Op::Gt => x > *number,
            Op::Ge => x >= *number,
            Op::Eq => x == *number,
            Op::Ne => x != *number,
        })
    }
}

impl Operand {
    fn parse(text: &str) -> Option<Self> {
        if text == "value" {
            return Some(Self::Value);
        }
        let mut parts = text.split('.');
        if parts.next()? != "data" {
            return None;
        }
        let fields: Vec<String> = parts.map(str::to_owned).collect();
        (!fields.is_empty() && fields.iter().all(|f| is_ident(f))).then_some(Self::Data(fields))
    }

    fn resolve<'a>(&self, value: &'a Json, data: &'a Json) -> Option<&'a Json> {
        match self {
            Self::Value => Some(value),
            Self::Data(fields) => fields.iter().try_fold(data, |node, field| node.get(field)),
        }
    }
}

fn is_ident(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !matches!(s, "true" | "false" | "null" | "in")
}

/// A CEL number literal in its plain decimal forms: `80`, `-10`, `21.5`, `1e3`.
fn parse_number(text: &str) -> Option<f64> {
    let digits = text.strip_prefix('-').unwrap_or(text);
    let (mantissa, exponent) = match digits.split_once(['e', 'E']) {
        Some((m, e)) => (m, Some(e)),
        None => (digits, None),
    };
    let (int, frac) = match mantissa.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (mantissa, None),
    };
    let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let exponent_ok = exponent.is_none_or(|e| all_digits(e.strip_prefix(['+', '-']).unwrap_or(e)));
    (all_digits(int) && frac.is_none_or(all_digits) && exponent_ok)
        .then(|| text.parse().ok())
        .flatten()
        .filter(|n: &f64| n.is_finite())
}

/// What CEL's result gives back as JSON for a number: whole doubles as integers.
fn normalise(v: &Json) -> Json {
    match v.as_f64() {
        Some(f) if v.is_f64() && f.fract() == 0.0 && f.abs() < 9e15 => Json::from(f as i64),
        _ => v.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_only_simple_shapes() {
        assert_eq!(
            Fast::parse(" value > 80 "),
            Some(Fast::Compare(Operand::Value, Op::Gt, 80.0))
        );
        assert_eq!(
            Fast::parse("data.battery <= -1.5e1"),
            Some(Fast::Compare(
                Operand::Data(vec!["battery".into()]),
                Op::Le,
                -15.0
            ))
        );
        assert_eq!(
            Fast::parse("data.a.b"),
            Some(Fast::Path(Operand::Data(vec!["a".into(), "b".into()])))
        );
        for complex in [
            "value > 80 && value < 90",
            "value > data.x",
            "value == \"ON\"",
            "value > 0x10",
            "has(data.x)",
            "value",
            "data",
            "data.a-b > 1",
            "value > inf",
            "value >= 1.",
            "labels.room == 1",
        ] {
            assert_eq!(Fast::parse(complex), None, "{complex}");
        }
    }
}
