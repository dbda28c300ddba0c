//! Walking an expression's syntax tree: its children, every node under it, and the free
//! variables it reads.

use std::collections::BTreeSet;

use cel::common::ast::{EntryExpr, Expr, IdedExpr};

use super::NAMESPACES;

/// Calls `f` on each direct child of `expr`.
pub(super) fn for_each_child<'a>(expr: &'a IdedExpr, f: &mut impl FnMut(&'a IdedExpr)) {
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
pub(super) fn for_each_child_mut(expr: &mut IdedExpr, f: &mut impl FnMut(&mut IdedExpr)) {
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
pub(super) fn walk(expr: &IdedExpr, f: &mut impl FnMut(&IdedExpr)) {
    f(expr);
    for_each_child(expr, &mut |child| walk(child, f));
}

pub(super) fn is_ident(expr: &IdedExpr, name: &str) -> bool {
    matches!(&expr.expr, Expr::Ident(ident) if ident == name)
}

/// Collects the identifiers of `expr` not bound by an enclosing macro loop (`bound`).
pub(super) fn free_variables(
    expr: &IdedExpr,
    bound: &mut Vec<String>,
    names: &mut BTreeSet<String>,
) {
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
