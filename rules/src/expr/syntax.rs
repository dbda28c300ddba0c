//! From source to a checked syntax tree: the bracket and tree depth limits, the parser on a
//! thread with a stack of its own, its errors placed by character offset, and the rewrite of
//! `data.x` as `data["x"]`.

use cel::common::ast::{CallExpr, Expr, IdedExpr, LiteralValue, SourceInfo, operators};
use cel::common::types::CelString;

use super::cost::{self, Loops};
use super::tree::{for_each_child, for_each_child_mut};
use super::{CompileError, ENV, MAX_EXPRESSION_DEPTH, MAX_SYNTAX_TREE_DEPTH, VARIABLES};

/// The stack of the thread that parses an expression. The ANTLR parser recurses deeply: in
/// a debug build about 160 KiB per bracket level and 2 KiB per operator, so the deepest and
/// longest expressions accepted need some 6 MiB, more than a test or tokio thread has. Only
/// the pages used are committed.
const PARSER_STACK_BYTES: usize = 32 << 20;

/// The char offset of byte `byte` of `source` (or of the char containing it).
pub(super) fn char_offset_of_byte(source: &str, byte: usize) -> usize {
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
pub(super) fn parse_on_parser_stack(source: &str) -> Result<(IdedExpr, Loops), CompileError> {
    let parse = || {
        let parser = ENV
            .parser()
            .max_recursion_depth(u16::try_from(MAX_EXPRESSION_DEPTH).unwrap_or(u16::MAX));
        let (mut ast, source_info) = parser
            .parse_with_source_info(source)
            .map_err(|errors| parse_error(source, &errors))?;
        check_tree_depth(&ast, &source_info, source)?;
        let loops = cost::measure(&ast).map_err(|e| CompileError {
            offset: node_offset(&source_info, e.id, source),
            message: e.message,
        })?;
        index_variable_fields(&mut ast);
        Ok((ast, loops))
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
pub(super) fn check_bracket_depth(source: &str) -> Result<(), CompileError> {
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

/// Where node `id` starts in `source`, in characters.
fn node_offset(info: &SourceInfo, id: u64, source: &str) -> usize {
    info.offset_for(id)
        .map(|(start, _)| (start as usize).min(source.chars().count()))
        .unwrap_or(0)
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
            offset: node_offset(info, id, source),
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
