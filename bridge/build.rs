//! Links `bridge` with packed relative relocations (`DT_RELR`) where the C
//! library loads them.
//!
//! A Rust executable is position-independent, and every pointer in its
//! static data needs a relocation at start-up: 870 KB of `.rela.dyn` that
//! the dynamic loader reads whole, so each idle `bridge serve` kept it
//! resident. In the `RELR` encoding the same relocations take 9 KB (idle
//! RSS of the `dist` build 12.6–12.8 → 11.8–11.9 MB, BENCHMARKS.md).
//!
//! glibc loads `RELR` from 2.36 on, and refuses a binary that uses it
//! without naming that need; an older loader would not apply them at all.
//! So it is only asked for when building for this machine (not a cross
//! build) against a glibc whose headers say 2.36 or later: elsewhere the
//! build is as before.

use std::path::Path;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=/usr/include/features.h");
    let env = |k: &str| std::env::var(k).unwrap_or_default();
    let native = env("TARGET") == env("HOST");
    let linux_gnu = env("CARGO_CFG_TARGET_OS") == "linux" && env("CARGO_CFG_TARGET_ENV") == "gnu";
    if native
        && linux_gnu
        && glibc_version(Path::new("/usr/include/features.h")).is_some_and(|v| v >= (2, 36))
    {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
}

/// glibc's version as its `features.h` defines it.
fn glibc_version(features_h: &Path) -> Option<(u32, u32)> {
    let text = std::fs::read_to_string(features_h).ok()?;
    let define = |name: &str| {
        text.lines().find_map(|line| {
            let mut words = line.split_whitespace();
            (words.next()? == "#define" && words.next()? == name)
                .then(|| words.next()?.parse().ok())
                .flatten()
        })
    };
    Some((define("__GLIBC__")?, define("__GLIBC_MINOR__")?))
}
