//! Splitting a Telegram HTML message into messages Telegram accepts: each at most
//! [`MAX_MESSAGE_LEN`] UTF-16 code units (Telegram's 4096 characters, counted before entity
//! parsing, which only shortens), never cutting inside a tag or an entity, every part's tags
//! balanced (closed at the cut, opened again in the next part).
//!
//! Cuts prefer a blank line (between alerts), then a line end, then a space, as long as that
//! keeps a part at least half full (a quarter for a blank line); otherwise the part is cut
//! where it is full. A tag so long that reopening it would not leave room for text (an
//! `<a href>` of thousands of characters) is dropped from the following parts.

/// The longest message Telegram takes, in UTF-16 code units.
pub const MAX_MESSAGE_LEN: usize = 4096;

/// One indivisible piece of a message.
#[derive(Debug, Clone, PartialEq)]
enum Atom<'a> {
    /// `<b>`, `<a href="…">`: the tag name, and the whole tag.
    Open(&'a str, &'a str),
    /// `</b>`: the tag name, and the whole tag.
    Close(&'a str, &'a str),
    /// A character, an entity (`&amp;`), or a tag that opens nothing (`<br/>`).
    Text(&'a str),
}

impl Atom<'_> {
    fn text(&self) -> &str {
        match self {
            Self::Open(_, t) | Self::Close(_, t) | Self::Text(t) => t,
        }
    }
}

fn utf16_len(text: &str) -> usize {
    text.chars().map(char::len_utf16).sum()
}

/// Cuts `html` into atoms. A `<` without a closing `>` and an `&` that starts no entity
/// are single characters.
fn atoms(html: &str) -> Vec<Atom<'_>> {
    let mut atoms = Vec::new();
    let mut rest = html;
    while let Some(c) = rest.chars().next() {
        let len = match c {
            // A tag: `<` then a letter or `/`, up to the first `>`, with no `<` inside.
            '<' => rest
                .find('>')
                .filter(|end| !rest[1..*end].contains('<'))
                .filter(|_| rest[1..].starts_with(|c: char| c.is_ascii_alphabetic() || c == '/'))
                .map(|end| end + 1),
            '&' => rest
                .char_indices()
                .skip(1)
                .take(32)
                .find(|(_, c)| !(c.is_ascii_alphanumeric() || *c == '#'))
                .filter(|(i, c)| *c == ';' && *i > 1)
                .map(|(i, _)| i + 1),
            _ => None,
        };
        let (piece, after) = rest.split_at(len.unwrap_or(c.len_utf8()));
        let atom = match (c, len) {
            ('<', Some(_)) => {
                let inner = &piece[1..piece.len() - 1];
                let name_of = |s: &'_ str| {
                    s.find(|c: char| c.is_whitespace() || c == '/')
                        .unwrap_or(s.len())
                };
                if let Some(closing) = inner.strip_prefix('/') {
                    Atom::Close(&closing[..name_of(closing)], piece)
                } else if inner.ends_with('/') || inner.is_empty() {
                    Atom::Text(piece)
                } else {
                    Atom::Open(&inner[..name_of(inner)], piece)
                }
            }
            _ => Atom::Text(piece),
        };
        atoms.push(atom);
        rest = after;
    }
    atoms
}

/// A tag open in the part being built.
#[derive(Debug, Clone)]
struct OpenTag<'a> {
    name: &'a str,
    tag: &'a str,
}

/// The part being built, and where it could best be cut.
struct Part<'a> {
    text: String,
    len: usize,
    /// Atoms added since the part began (after the tags it reopened).
    added: usize,
    open: Vec<OpenTag<'a>>,
    /// Tags dropped (too long to reopen): their closing tags are skipped.
    dropped: Vec<&'a str>,
}

/// A place the part could be cut: after atom `next - 1`, with the part's state there.
#[derive(Clone)]
struct Break<'a> {
    next: usize,
    bytes: usize,
    len: usize,
    open: Vec<OpenTag<'a>>,
    dropped: Vec<&'a str>,
}

fn closers_len(open: &[OpenTag<'_>]) -> usize {
    open.iter().map(|t| t.name.len() + 3).sum()
}

fn close_all(text: &mut String, open: &[OpenTag<'_>]) {
    for tag in open.iter().rev() {
        text.push_str("</");
        text.push_str(tag.name);
        text.push('>');
    }
}

/// Splits `html` into parts of at most `limit` UTF-16 code units (see the module docs).
/// The parts' text, less the tags added at cuts, is `html`'s.
pub fn split_html(html: &str, limit: usize) -> Vec<String> {
    if utf16_len(html) <= limit {
        return vec![html.to_owned()];
    }
    let atoms = atoms(html);
    let mut parts = Vec::new();
    let mut part = Part {
        text: String::new(),
        len: 0,
        added: 0,
        open: Vec::new(),
        dropped: Vec::new(),
    };
    // The best cut so far in this part, per kind: blank line, line end, space.
    let mut breaks: [Option<Break<'_>>; 3] = [None, None, None];
    let mut i = 0;
    while i < atoms.len() {
        let atom = &atoms[i];
        // What the part would need after this atom: its length, and closing tags.
        let (extra_len, open_after) = match atom {
            Atom::Open(name, tag) => {
                let mut open = part.open.clone();
                open.push(OpenTag { name, tag });
                (utf16_len(tag), open)
            }
            Atom::Close(name, _) if part.open.last().is_some_and(|t| t.name == *name) => {
                let mut open = part.open.clone();
                open.pop();
                (atom.text().len(), open)
            }
            Atom::Close(name, _) if part.dropped.last() == Some(name) => (0, part.open.clone()),
            other => (utf16_len(other.text()), part.open.clone()),
        };
        let fits = part.len + extra_len + closers_len(&open_after) <= limit;
        if !fits && part.added == 0 {
            // Not even this one atom fits in a part of its own: a tag is dropped; text
            // sheds the tags reopened around it, or (a limit shorter than one character
            // or entity) goes over.
            match atom {
                Atom::Open(name, _) => {
                    part.dropped.push(name);
                    i += 1;
                    continue;
                }
                _ if !part.open.is_empty() => {
                    let names: Vec<&str> = part.open.iter().map(|t| t.name).collect();
                    part.dropped.extend(names);
                    part.open.clear();
                    part.text.clear();
                    part.len = 0;
                    continue;
                }
                _ => {}
            }
        }
        if fits || part.added == 0 {
            part.added += 1;
            match atom {
                Atom::Close(name, _) if part.dropped.last() == Some(name) => {
                    part.dropped.pop();
                }
                other => {
                    part.text.push_str(other.text());
                    part.len += extra_len;
                }
            }
            part.open = open_after;
            i += 1;
            let kind = match atom.text() {
                "\n" if part.text.ends_with("\n\n") => Some(0),
                "\n" => Some(1),
                " " => Some(2),
                _ => None,
            };
            if let Some(kind) = kind {
                breaks[kind] = Some(Break {
                    next: i,
                    bytes: part.text.len(),
                    len: part.len,
                    open: part.open.clone(),
                    dropped: part.dropped.clone(),
                });
            }
            continue;
        }
        // Full: cut at the best break that keeps the part full enough, or here.
        let cut = breaks
            .iter()
            .enumerate()
            .filter_map(|(kind, b)| b.as_ref().map(|b| (kind, b)))
            .find(|(kind, b)| b.len >= if *kind == 0 { limit / 4 } else { limit / 2 })
            .map(|(_, b)| b.clone());
        let (open, dropped) = match cut {
            Some(b) => {
                part.text.truncate(b.bytes);
                i = b.next;
                (b.open, b.dropped)
            }
            None => (part.open.clone(), part.dropped.clone()),
        };
        close_all(&mut part.text, &open);
        parts.push(std::mem::take(&mut part.text));
        // The next part reopens what was open, unless that would leave too little room.
        let reopen_len: usize =
            open.iter().map(|t| utf16_len(t.tag)).sum::<usize>() + closers_len(&open);
        part = if reopen_len <= limit / 4 {
            let text: String = open.iter().map(|t| t.tag).collect();
            Part {
                len: utf16_len(&text),
                added: 0,
                text,
                open,
                dropped,
            }
        } else {
            let mut dropped = dropped;
            dropped.extend(open.iter().map(|t| t.name));
            Part {
                text: String::new(),
                len: 0,
                added: 0,
                open: Vec::new(),
                dropped,
            }
        };
        breaks = [None, None, None];
    }
    if part.added > 0 {
        close_all(&mut part.text, &part.open);
        parts.push(part.text);
    }
    parts
}

/// The text of `html` as a person reads it: tags removed, Telegram's entities decoded.
/// What is sent instead when Telegram cannot parse a message's HTML.
pub fn plain_text(html: &str) -> String {
    atoms(html)
        .iter()
        .filter_map(|atom| match atom {
            Atom::Text(t) if t.starts_with('<') && t.len() > 1 => None,
            Atom::Text(t) => Some(match *t {
                "&lt;" => "<",
                "&gt;" => ">",
                "&amp;" => "&",
                "&quot;" => "\"",
                other => other,
            }),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// The text of `html` with every tag removed (entities kept as written).
    fn without_tags(html: &str) -> String {
        atoms(html)
            .iter()
            .filter_map(|a| match a {
                Atom::Text(t) => Some(*t),
                _ => None,
            })
            .collect()
    }

    /// Whether every tag of `html` is closed, in order.
    fn balanced(html: &str) -> bool {
        let mut stack = Vec::new();
        for atom in atoms(html) {
            match atom {
                Atom::Open(name, _) => stack.push(name),
                Atom::Close(name, _) => {
                    if stack.pop() != Some(name) {
                        return false;
                    }
                }
                Atom::Text(_) => {}
            }
        }
        stack.is_empty()
    }

    /// Every `&` starts a whole entity, or stands alone.
    fn entities_whole(html: &str) -> bool {
        atoms(html)
            .iter()
            .all(|a| a.text() == "&" || !a.text().starts_with('&') || a.text().ends_with(';'))
    }

    /// The characters and entities of `html`, tags removed, each as one item: a cut
    /// inside an entity would change them.
    fn text_atoms(html: &str) -> Vec<String> {
        atoms(html)
            .iter()
            .filter_map(|a| match a {
                Atom::Text(t) => Some((*t).to_owned()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn short_messages_are_one_part() {
        assert_eq!(split_html("<b>hi</b>", 4096), ["<b>hi</b>"]);
    }

    #[test]
    fn alerts_are_kept_whole_when_they_can_be() {
        let block = |n| format!("🔴 <b>alert {n}</b>\n📍 somewhere\n🕐 for 5m");
        let html: Vec<String> = (0..200).map(block).collect();
        let html = html.join("\n\n");
        let parts = split_html(&html, MAX_MESSAGE_LEN);
        assert!(parts.len() > 1);
        for part in &parts {
            assert!(utf16_len(part) <= MAX_MESSAGE_LEN);
            let trimmed = part.trim();
            assert!(trimmed.starts_with("🔴 <b>alert "), "{trimmed:.40}");
            assert!(trimmed.ends_with("for 5m"), "{trimmed}");
        }
        let joined: String = parts.concat();
        assert_eq!(joined, html);
    }

    #[test]
    fn a_huge_alert_is_cut_with_its_tags_closed_and_reopened() {
        let html = format!("<b>title</b>\n<i>{}</i> end", "word &amp; ".repeat(1000));
        let parts = split_html(&html, 1000);
        for part in &parts {
            assert!(utf16_len(part) <= 1000, "{}", utf16_len(part));
            assert!(balanced(part), "{part}");
            assert!(entities_whole(part), "{part}");
        }
        assert!(parts[1].starts_with("<i>"), "{}", &parts[1][..20]);
        assert_eq!(
            parts.iter().map(|p| without_tags(p)).collect::<String>(),
            without_tags(&html)
        );
    }

    #[test]
    fn a_link_too_long_to_reopen_is_dropped_not_broken() {
        let url = "x".repeat(900);
        let html = format!("<a href=\"{url}\">{}</a> after", "link text ".repeat(100));
        let parts = split_html(&html, 1000);
        for part in &parts {
            assert!(utf16_len(part) <= 1000);
            assert!(balanced(part), "{part}");
        }
        assert_eq!(
            parts.iter().map(|p| without_tags(p)).collect::<String>(),
            without_tags(&html)
        );
    }

    #[test]
    fn plain_text_decodes_what_escaping_encoded() {
        assert_eq!(
            plain_text("🔴 <b>R&amp;D &lt;lab&gt;</b> <a href=\"x\">open</a> 5 < 6 &"),
            "🔴 R&D <lab> open 5 < 6 &"
        );
    }

    /// Pieces of Telegram HTML, to be strung together at random.
    fn piece() -> impl Strategy<Value = String> {
        prop_oneof![
            "[a-z ]{1,12}",
            Just("\n".to_owned()),
            Just("\n\n".to_owned()),
            Just("&amp;".to_owned()),
            Just("&lt;".to_owned()),
            Just("&quot;".to_owned()),
            Just("&#128308;".to_owned()),
            Just("🔴".to_owned()),
            Just("ñ".to_owned()),
            Just("<".to_owned()),
            Just("&".to_owned()),
            "[a-zé]{0,5}".prop_map(|t| format!("<b>{t}</b>")),
            ("[a-z/:.]{0,60}", "[a-z ]{0,20}")
                .prop_map(|(u, t)| format!("<a href=\"{u}\">{t}</a>")),
            "[a-z ]{0,40}".prop_map(|t| format!("<i><u>{t}</u></i>")),
            "[a-z ]{0,200}".prop_map(|t| format!("<pre>{t}</pre>")),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]
        #[test]
        fn parts_fit_keep_tags_balanced_and_entities_whole_and_lose_no_text(
            pieces in proptest::collection::vec(piece(), 0..300),
            limit in 40usize..600,
        ) {
            let html: String = pieces.concat();
            let parts = split_html(&html, limit);
            for part in &parts {
                prop_assert!(utf16_len(part) <= limit, "{} > {limit}: {part:?}", utf16_len(part));
                prop_assert!(balanced(part), "unbalanced: {part:?}");
                prop_assert!(entities_whole(part), "broken entity: {part:?}");
            }
            let text: Vec<String> = parts.iter().flat_map(|p| text_atoms(p)).collect();
            prop_assert_eq!(text, text_atoms(&html));
        }
    }
}
