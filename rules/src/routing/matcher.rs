//! Label matchers, written as in Alertmanager: `name="value"`, `name!=value`,
//! `name=~"regex"`, `name!~"regex"`, optionally as a `{…}` list separated by commas.
//! Regexes are anchored at both ends, as in Alertmanager.
//!
//! The grammar is Alertmanager's classic matcher parser (`pkg/labels/parse.go`), which both
//! the `matchers:` entries of its configuration and `amtool` read: whitespace around each
//! token is allowed; a value is quoted (`"…"`) or not; inside it `\"`, `\\` and `\n` are
//! escapes and any other backslash is kept as written (so `=~"\d+"` means what it says). A
//! list splits on commas outside quotes, may be wrapped in `{` `}` and may end with a comma.

use std::fmt;

use atalaya_bus::Labels;
use atalaya_bus::event::is_valid_label_name;

/// How a matcher compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum MatchOp {
    #[serde(rename = "=")]
    Equal,
    #[serde(rename = "!=")]
    NotEqual,
    #[serde(rename = "=~")]
    Regex,
    #[serde(rename = "!~")]
    NotRegex,
}

impl MatchOp {
    /// As written: `=`, `!=`, `=~`, `!~`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Equal => "=",
            Self::NotEqual => "!=",
            Self::Regex => "=~",
            Self::NotRegex => "!~",
        }
    }

    /// Alertmanager's order of match types (`MatchEqual` first), for sorting.
    fn rank(self) -> u8 {
        match self {
            Self::Equal => 0,
            Self::NotEqual => 1,
            Self::Regex => 2,
            Self::NotRegex => 3,
        }
    }
}

impl fmt::Display for MatchOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One matcher. A missing label matches as the empty string, as in Alertmanager.
#[derive(Debug, Clone)]
pub struct Matcher {
    pub name: String,
    pub op: MatchOp,
    pub value: String,
    /// Compiled for `=~` and `!~`: `^(?:value)$`.
    regex: Option<regex::Regex>,
}

/// Why a matcher could not be parsed or compiled; `column` is 1-based within the text.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct MatcherError {
    pub column: usize,
    pub message: String,
}

impl MatcherError {
    fn at(column: usize, message: impl Into<String>) -> Self {
        Self {
            column,
            message: message.into(),
        }
    }
}

impl Matcher {
    /// A matcher from its parts; the name must be a label name and, for `=~` and `!~`, the
    /// value a regular expression. Errors are at column 1.
    pub fn new(name: &str, op: MatchOp, value: &str) -> Result<Self, MatcherError> {
        if !is_valid_label_name(name) {
            return Err(MatcherError::at(1, invalid_name(name)));
        }
        let regex = match op {
            MatchOp::Regex | MatchOp::NotRegex => Some(
                regex::Regex::new(&format!("^(?:{value})$"))
                    .map_err(|e| MatcherError::at(1, regex_message(value, &e)))?,
            ),
            MatchOp::Equal | MatchOp::NotEqual => None,
        };
        Ok(Self {
            name: name.to_owned(),
            op,
            value: value.to_owned(),
            regex,
        })
    }

    /// Parses one matcher: `name="value"`, `name=value`, `name=~"re"`, ...
    pub fn parse(text: &str) -> Result<Self, MatcherError> {
        let chars: Vec<char> = text.chars().collect();
        parse_one(&chars, 0)
    }

    pub fn matches(&self, labels: &Labels) -> bool {
        let value = labels.get(&self.name).unwrap_or("");
        match (&self.op, &self.regex) {
            (MatchOp::Equal, _) => value == self.value,
            (MatchOp::NotEqual, _) => value != self.value,
            (MatchOp::Regex, Some(regex)) => regex.is_match(value),
            (MatchOp::NotRegex, Some(regex)) => !regex.is_match(value),
            // `new` compiles a regex for every regex matcher; none is ever missing.
            (MatchOp::Regex | MatchOp::NotRegex, None) => false,
        }
    }
}

impl PartialEq for Matcher {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name && self.op == other.op && self.value == other.value
    }
}

/// Written back as Alertmanager prints it: `name="value"` (value quoted and escaped).
///
/// The escaping is Alertmanager's (OpenMetrics'): `\` as `\\`, a line feed as `\n`, `"` as
/// `\"`, everything else as is.
impl fmt::Display for Matcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}\"", self.name, self.op)?;
        for c in self.value.chars() {
            match c {
                '\\' => f.write_str("\\\\")?,
                '\n' => f.write_str("\\n")?,
                '"' => f.write_str("\\\"")?,
                c => write!(f, "{c}")?,
            }
        }
        f.write_str("\"")
    }
}

/// Matchers that must all match.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Matchers(pub Vec<Matcher>);

impl Matchers {
    /// Parses `{a="b", c=~"d"}` or `a="b", c=~"d"` (what `amtool` and the `matchers:` list
    /// entries accept).
    pub fn parse(text: &str) -> Result<Self, MatcherError> {
        let chars: Vec<char> = text.chars().collect();
        // As Alertmanager: an optional `{` first and `}` last (here, also after or before
        // spaces).
        let first = chars
            .iter()
            .position(|c| !c.is_whitespace())
            .unwrap_or(chars.len());
        let last = chars
            .iter()
            .rposition(|c| !c.is_whitespace())
            .map_or(first, |i| i + 1);
        let start = first + usize::from(chars.get(first) == Some(&'{'));
        let end = last - usize::from(last > start && chars.get(last - 1) == Some(&'}'));
        let inner = &chars[start..end];

        let mut tokens: Vec<(usize, usize)> = Vec::new();
        let (mut token_start, mut inside_quotes, mut escaped) = (0, false, false);
        for (i, c) in inner.iter().enumerate() {
            match c {
                ',' if !inside_quotes => {
                    tokens.push((token_start, i));
                    token_start = i + 1;
                    escaped = false;
                    continue;
                }
                '"' if !escaped => inside_quotes = !inside_quotes,
                '\\' => {
                    escaped = !escaped;
                    continue;
                }
                _ => {}
            }
            escaped = false;
        }
        let last = &inner[token_start..];
        if last.iter().any(|c| !c.is_whitespace()) {
            tokens.push((token_start, inner.len()));
        } else if tokens.is_empty() {
            // Nothing at all (`{}`, or blank).
            return Ok(Self::default());
        }
        let mut matchers = Vec::with_capacity(tokens.len());
        for (from, to) in tokens {
            matchers.push(parse_one(&inner[from..to], start + from)?);
        }
        Ok(Self(matchers))
    }

    pub fn matches(&self, labels: &Labels) -> bool {
        self.0.iter().all(|m| m.matches(labels))
    }

    /// Sorts as Alertmanager sorts a route's matchers: by name, then value, then `=`, `!=`,
    /// `=~`, `!~`.
    pub fn sort(&mut self) {
        self.0.sort_by(|a, b| {
            (&a.name, &a.value, a.op.rank()).cmp(&(&b.name, &b.value, b.op.rank()))
        });
    }

    /// As Alertmanager's `Matchers.String()`, the form its route keys and group keys use:
    /// `{a="b",c=~"d"}` (no space after the comma).
    pub fn alertmanager_string(&self) -> String {
        let parts: Vec<String> = self.0.iter().map(ToString::to_string).collect();
        format!("{{{}}}", parts.join(","))
    }
}

/// `{a="b", c=~"d"}`.
impl fmt::Display for Matchers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("{")?;
        for (i, m) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{m}")?;
        }
        f.write_str("}")
    }
}

fn invalid_name(name: &str) -> String {
    format!(
        "`{name}` is not a label name: use a letter or `_`, then letters, digits or `_` \
         (at most {} bytes)",
        atalaya_bus::event::MAX_LABEL_NAME_BYTES
    )
}

/// The regex crate's error in one line: `invalid regular expression `(`: unclosed group`.
fn regex_message(value: &str, error: &regex::Error) -> String {
    let detail = match error {
        regex::Error::Syntax(text) => text
            .lines()
            .rev()
            .find_map(|line| line.strip_prefix("error: "))
            .unwrap_or(text)
            .to_owned(),
        other => other.to_string(),
    };
    format!("invalid regular expression `{value}`: {detail}")
}

/// Parses one matcher written in `chars`, whose first char is at 0-based char `offset` of
/// the whole text (for error columns).
fn parse_one(chars: &[char], offset: usize) -> Result<Matcher, MatcherError> {
    let column = |i: usize| offset + i + 1;
    let skip_space = |mut i: usize| {
        while chars.get(i).is_some_and(|c| c.is_whitespace()) {
            i += 1;
        }
        i
    };

    let name_start = skip_space(0);
    let mut i = name_start;
    if chars
        .get(i)
        .is_some_and(|c| c.is_ascii_alphabetic() || *c == '_')
    {
        i += 1;
        while chars
            .get(i)
            .is_some_and(|c| c.is_ascii_alphanumeric() || *c == '_')
        {
            i += 1;
        }
    }
    if i == name_start {
        let message = match chars.get(i) {
            None => "empty matcher; write it like `name=\"value\"`".to_owned(),
            Some(c) => format!("expected a label name, found `{c}`"),
        };
        return Err(MatcherError::at(column(i), message));
    }
    let name: String = chars[name_start..i].iter().collect();
    if !is_valid_label_name(&name) {
        return Err(MatcherError::at(column(name_start), invalid_name(&name)));
    }

    i = skip_space(i);
    let op = match (chars.get(i), chars.get(i + 1)) {
        (Some('='), Some('~')) => MatchOp::Regex,
        (Some('='), _) => MatchOp::Equal,
        (Some('!'), Some('=')) => MatchOp::NotEqual,
        (Some('!'), Some('~')) => MatchOp::NotRegex,
        (found, _) => {
            let found = found.map_or("the end".to_owned(), |c| format!("`{c}`"));
            return Err(MatcherError::at(
                column(i),
                format!("expected `=`, `!=`, `=~` or `!~` after `{name}`, found {found}"),
            ));
        }
    };
    i += op.as_str().len();

    let value_start = skip_space(i);
    let value = parse_value(chars, value_start, &column)?;
    Matcher::new(&name, op, &value).map_err(|e| MatcherError::at(column(value_start), e.message))
}

/// The value starting at `start` (after the operator and any space), unescaped.
fn parse_value(
    chars: &[char],
    start: usize,
    column: &dyn Fn(usize) -> usize,
) -> Result<String, MatcherError> {
    let quoted = chars.get(start) == Some(&'"');
    let mut end = chars.len();
    if !quoted {
        while end > start && chars[end - 1].is_whitespace() {
            end -= 1;
        }
    }
    let mut value = String::new();
    let mut i = start + usize::from(quoted);
    while i < end {
        match chars[i] {
            '\\' if i + 1 < end => {
                match chars[i + 1] {
                    'n' => value.push('\n'),
                    c @ ('"' | '\\') => value.push(c),
                    // Any other escape is kept as written, as Alertmanager does.
                    c => {
                        value.push('\\');
                        value.push(c);
                    }
                }
                i += 2;
            }
            '"' if quoted => {
                let rest = (i + 1..chars.len()).find(|&j| !chars[j].is_whitespace());
                return match rest {
                    None => Ok(value),
                    Some(j) => Err(MatcherError::at(
                        column(j),
                        format!(
                            "unexpected `{}` after the closing quote; escape a quote inside \
                             the value as `\\\"`",
                            chars[j]
                        ),
                    )),
                };
            }
            '"' => {
                return Err(MatcherError::at(
                    column(i),
                    "unescaped `\"` in the value: quote the whole value (`name=\"…\"`) and \
                     write a quote inside it as `\\\"`",
                ));
            }
            c => {
                value.push(c);
                i += 1;
            }
        }
    }
    if quoted {
        return Err(MatcherError::at(
            column(start),
            "unterminated quoted value: missing the closing `\"`",
        ));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn parsed(text: &str) -> (String, MatchOp, String) {
        let m = Matcher::parse(text).unwrap_or_else(|e| panic!("{text}: {e:?}"));
        (m.name, m.op, m.value)
    }

    fn owned(name: &str, op: MatchOp, value: &str) -> (String, MatchOp, String) {
        (name.to_owned(), op, value.to_owned())
    }

    #[test]
    fn parses_every_operator_quoted_or_not() {
        use MatchOp::*;
        assert_eq!(parsed("a=b"), owned("a", Equal, "b"));
        assert_eq!(parsed(r#"a="b""#), owned("a", Equal, "b"));
        assert_eq!(parsed("a!=b"), owned("a", NotEqual, "b"));
        assert_eq!(parsed(r#"a=~"b|c""#), owned("a", Regex, "b|c"));
        assert_eq!(parsed("a!~b.*"), owned("a", NotRegex, "b.*"));
        assert_eq!(parsed(r#"  team  =  "ops"  "#), owned("team", Equal, "ops"));
        assert_eq!(
            parsed(" a = hello world "),
            owned("a", Equal, "hello world")
        );
        assert_eq!(parsed("a="), owned("a", Equal, ""));
        assert_eq!(parsed(r#"a="""#), owned("a", Equal, ""));
        assert_eq!(parsed("a==b"), owned("a", Equal, "=b"));
    }

    #[test]
    fn unescapes_like_alertmanager() {
        use MatchOp::*;
        assert_eq!(parsed(r#"a="x\"y""#), owned("a", Equal, "x\"y"));
        assert_eq!(parsed(r#"a="x\\y""#), owned("a", Equal, "x\\y"));
        assert_eq!(parsed(r#"a="x\ny""#), owned("a", Equal, "x\ny"));
        // Other escapes keep their backslash: regex classes work as written.
        assert_eq!(parsed(r#"a=~"\d+""#), owned("a", Regex, "\\d+"));
        assert_eq!(parsed(r"a=x\"), owned("a", Equal, "x\\"));
    }

    #[test]
    fn errors_have_columns() {
        let error = |text: &str| Matcher::parse(text).expect_err(text);
        assert_eq!(error("").column, 1);
        assert_eq!(error("  =b").column, 3);
        assert_eq!(error("1a=b").column, 1);
        assert_eq!(error("a b").column, 3);
        assert_eq!(error("a:b=c").column, 2);
        assert_eq!(error(r#"a="b"#).column, 3);
        assert_eq!(error(r#"a="b" c"#).column, 7);
        assert_eq!(error(r#"a=b"c"#).column, 4);
        let regex = error("room =~ (kitchen");
        assert_eq!(regex.column, 9);
        assert!(
            regex.message.contains("unclosed group"),
            "{}",
            regex.message
        );
    }

    #[test]
    fn a_missing_label_matches_as_empty() {
        let set = |text: &str| Matcher::parse(text).unwrap();
        let none = labels(&[]);
        let team = labels(&[("team", "ops")]);
        assert!(set(r#"team="""#).matches(&none));
        assert!(!set(r#"team="""#).matches(&team));
        assert!(set(r#"team!="""#).matches(&team));
        assert!(!set(r#"team!="""#).matches(&none));
        assert!(set("team!=dev").matches(&none));
        assert!(set("team=~|ops").matches(&none));
        assert!(set("team!~ops").matches(&none));
    }

    #[test]
    fn regexes_are_anchored() {
        let m = Matcher::parse("room=~kitchen|hall").unwrap();
        assert!(m.matches(&labels(&[("room", "kitchen")])));
        assert!(m.matches(&labels(&[("room", "hall")])));
        assert!(!m.matches(&labels(&[("room", "kitchenette")])));
        assert!(!m.matches(&labels(&[("room", "the hall")])));
        let not = Matcher::parse("room!~kitchen|hall").unwrap();
        assert!(not.matches(&labels(&[("room", "kitchenette")])));
        assert!(!not.matches(&labels(&[("room", "hall")])));
    }

    #[test]
    fn new_checks_the_name_and_regex() {
        assert!(Matcher::new("a-b", MatchOp::Equal, "x").is_err());
        assert!(Matcher::new("", MatchOp::Equal, "x").is_err());
        assert!(Matcher::new("a", MatchOp::Regex, "(").is_err());
        assert!(Matcher::new("a", MatchOp::Equal, "(").is_ok());
    }

    #[test]
    fn parses_lists() {
        let list = Matchers::parse(r#"{severity="critical", room=~"kitchen|hall"}"#).unwrap();
        assert_eq!(list.0.len(), 2);
        assert_eq!(list.0[1].value, "kitchen|hall");
        assert_eq!(Matchers::parse("a=b,c!=d,").unwrap().0.len(), 2);
        assert_eq!(
            Matchers::parse(r#"{a="x,y}", b=z}"#).unwrap().0[0].value,
            "x,y}"
        );
        assert_eq!(
            Matchers::parse(r#"q="say \"hi, there\"""#).unwrap().0.len(),
            1
        );
        assert_eq!(Matchers::parse("{}").unwrap().0.len(), 0);
        assert_eq!(Matchers::parse(" { a=b } ").unwrap().0[0].value, "b");
        assert_eq!(Matchers::parse("  ").unwrap().0.len(), 0);
        assert_eq!(Matchers::parse("").unwrap().0.len(), 0);
        assert_eq!(Matchers::parse("a=b,,c=d").unwrap_err().column, 5);
        assert_eq!(Matchers::parse("{a=b, c}").unwrap_err().column, 8);
        assert_eq!(Matchers::parse(",").unwrap_err().column, 1);
    }

    #[test]
    fn displays_as_alertmanager() {
        let m = Matcher::new("a", MatchOp::NotEqual, "x\"y\\z\nw\té").unwrap();
        assert_eq!(m.to_string(), "a!=\"x\\\"y\\\\z\\nw\té\"");
        let mut list = Matchers::parse(r#"team=~"a", severity!="x", team="b", team="a""#).unwrap();
        list.sort();
        assert_eq!(
            list.alertmanager_string(),
            r#"{severity!="x",team="a",team=~"a",team="b"}"#
        );
        assert_eq!(
            list.to_string(),
            r#"{severity!="x", team="a", team=~"a", team="b"}"#
        );
        assert_eq!(Matchers::default().alertmanager_string(), "{}");
    }

    fn matcher_strategy() -> impl Strategy<Value = Matcher> {
        let op = prop_oneof![
            Just(MatchOp::Equal),
            Just(MatchOp::NotEqual),
            Just(MatchOp::Regex),
            Just(MatchOp::NotRegex),
        ];
        ("[a-zA-Z_][a-zA-Z0-9_]{0,6}", op, any::<String>()).prop_map(|(name, op, value)| {
            let value = match op {
                MatchOp::Regex | MatchOp::NotRegex => regex::escape(&value),
                _ => value,
            };
            // The value is a literal regex or any string: `new` cannot fail.
            Matcher::new(&name, op, &value).unwrap()
        })
    }

    proptest! {
        #[test]
        fn display_then_parse_round_trips(m in matcher_strategy()) {
            prop_assert_eq!(Matcher::parse(&m.to_string()).unwrap(), m);
        }

        #[test]
        fn lists_round_trip(list in proptest::collection::vec(matcher_strategy(), 0..4)) {
            let list = Matchers(list);
            prop_assert_eq!(Matchers::parse(&list.to_string()).unwrap(), list.clone());
            prop_assert_eq!(Matchers::parse(&list.alertmanager_string()).unwrap(), list);
        }

        #[test]
        fn parsing_never_panics(text in r#"[a-z{}=!~", \\]{0,16}"#) {
            if let Err(e) = Matchers::parse(&text) {
                prop_assert!(e.column >= 1 && e.column <= text.chars().count() + 1);
            }
        }
    }
}
