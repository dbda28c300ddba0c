//! Links the functions atalaya runs from exec to idle next to each other at the start of
//! `.text`, in the order it first enters them (deploy/startup-order.txt, written by
//! scripts/startup-order). Scattered over the binary, start-up code faults in most of it: the
//! kernel maps 64 KiB around each fault. Packed together, it is a few MiB of resident memory
//! instead of ten (docs/benchmarks.md).
//!
//! Only for optimized builds on x86_64-unknown-linux-gnu with Rust's own linker, rust-lld,
//! which that target uses by default since Rust 1.90 (the MSRV); GNU ld has no such option.
//! Symbols the file names that a build does not have (another profile, target, feature set
//! or toolchain) are skipped without a word.

use std::env;
use std::path::Path;

fn main() {
    let order =
        Path::new(&env::var("CARGO_MANIFEST_DIR").unwrap()).join("deploy/startup-order.txt");
    println!("cargo::rerun-if-changed={}", order.display());
    println!("cargo::rerun-if-env-changed=RUSTC_LINKER");
    let optimized = env::var("PROFILE").is_ok_and(|profile| profile == "release");
    let rust_lld = env::var("TARGET").is_ok_and(|target| target == "x86_64-unknown-linux-gnu")
        && env::var_os("RUSTC_LINKER").is_none();
    if optimized && rust_lld && order.exists() {
        println!(
            "cargo::rustc-link-arg-bin=atalaya=-Wl,--symbol-ordering-file={}",
            order.display()
        );
        println!("cargo::rustc-link-arg-bin=atalaya=-Wl,--no-warn-symbol-ordering");
    }
}
