//! Placing an error found inside a scalar (an expression, a template) at its line and column
//! in the rule file, for plain, quoted and block scalars alike.

use crate::yaml::Position;

/// Char offset of (1-based) `line` and `column` in `source`.
pub(super) fn line_offset(source: &str, line: usize, column: usize) -> usize {
    let mut offset = 0;
    for (i, l) in source.split('\n').enumerate() {
        if i + 1 == line {
            return offset + column.saturating_sub(1).min(l.chars().count());
        }
        offset += l.chars().count() + 1;
    }
    offset
}

/// The file position of char `offset` inside a scalar whose node starts at `start`: plain
/// and quoted scalars start at their node (after the quote); block scalars (`|`, `>`) on the
/// next line, at its indentation.
pub(super) fn scalar_offset(text: &str, start: Position, source: &str, offset: usize) -> Position {
    let line_text = text.lines().nth(start.line.saturating_sub(1)).unwrap_or("");
    let first = line_text.chars().nth(start.column.saturating_sub(1));
    let (mut line, mut column) = match first {
        Some('"' | '\'') => (start.line, start.column + 1),
        Some('|' | '>') => {
            let next = text.lines().nth(start.line).unwrap_or("");
            let indent = next.chars().take_while(|c| *c == ' ').count();
            (start.line + 1, indent + 1)
        }
        _ => (start.line, start.column),
    };
    let block_indent = if matches!(first, Some('|' | '>')) {
        column
    } else {
        1
    };
    for c in source.chars().take(offset) {
        if c == '\n' {
            line += 1;
            column = block_indent;
        } else {
            column += 1;
        }
    }
    Position { line, column }
}
