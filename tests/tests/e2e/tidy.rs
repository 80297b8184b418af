//! Tidy: source rules the compiler does not check, over the workspace's
//! library and binary sources (`bridge/src`, `state/src`, `runner/src`,
//! `tests/src`):
//!
//! - every `.rs` file opens with a `//!` header saying what it holds;
//! - no file has more than [`MAX_LINES`] lines before its inline
//!   `#[cfg(test)]` module (files that are themselves test modules are
//!   exempt);
//! - no `println!`/`print!`/`eprintln!`/`eprint!` outside the binaries and
//!   the few operator-facing places in [`PRINTS`] (stdout is the bridge's
//!   MCP channel; the operator CLI writes through `untrusted::terminal`);
//! - no `anyhow` in the library code of `state/` and `runner/` (library
//!   errors are typed, with thiserror);
//! - no `.unwrap()` in the bridge's non-test code without a `// unwrap:`
//!   comment on the same or the previous line saying why it cannot fail.
//!
//! The allowlists below are ratchets: they record what exists today, an
//! entry's number may only go down, and an entry that is no longer needed
//! must be removed (the test says so). Never add an entry or raise a number
//! to make this test pass: split the file or fix the code.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The source trees checked, relative to the workspace root.
const ROOTS: &[&str] = &["bridge/src", "state/src", "runner/src", "tests/src"];

/// Lines a file may have before its inline `#[cfg(test)]` module.
const MAX_LINES: usize = 500;

/// Files over [`MAX_LINES`] when this test was written, with their line
/// count before the tests then. May only shrink: a file may not grow past
/// its number, and an entry is removed once its file is split below
/// [`MAX_LINES`] (issue 12 splits these).
const OVERSIZED: &[(&str, usize)] = &[("tests/src/bin/bench_flood.rs", 636)];

/// Files (or folders, ending in `/`) that may print, and why.
const PRINTS: &[(&str, &str)] = &[
    (
        "bridge/src/main.rs",
        "the binary's entry point reports a fatal error on stderr",
    ),
    (
        "bridge/src/startup.rs",
        "tells an operator who started `bridge serve` on a terminal that it speaks MCP on stdio (stderr)",
    ),
    (
        "bridge/src/operator/yolo.rs",
        "operator CLI: warns on stderr when a refusal could not be audited",
    ),
    (
        "runner/src/main.rs",
        "the runner binary reports fatal errors and `health` failures on stderr",
    ),
    (
        "tests/src/bin/",
        "benchmark and probe binaries print their reports",
    ),
    (
        "tests/src/flood.rs",
        "benchmark helper: reports a failed read to the benchmark's stderr",
    ),
    (
        "tests/src/ssh_engine.rs",
        "test helper: the loud skip line when sshd is not installed",
    ),
    (
        "tests/src/yolo.rs",
        "test helper: the loud skip line when no Docker engine answers",
    ),
];

/// Library files of `state/` and `runner/` that use `anyhow` today, with
/// the number of lines naming it. Empty since the runner's `run` and
/// `health` return `RunnerError`: keep it that way.
const ANYHOW: &[(&str, usize)] = &[];

/// Binaries, where `anyhow` is the right tool.
const ANYHOW_OK: &[&str] = &["runner/src/main.rs"];

/// Bridge files with unjustified `.unwrap()` calls in non-test code today,
/// with their count. Empty when written: keep it that way.
const UNWRAPS: &[(&str, usize)] = &[];

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// One source file, read and classified.
struct Source {
    /// Path relative to the workspace root, with `/` separators.
    rel: String,
    text: String,
    /// The file is itself a `#[cfg(test)]` module of its parent.
    test_only: bool,
}

impl Source {
    /// The lines before the file's inline `#[cfg(test)] mod … {`, or all.
    fn code_lines(&self) -> Vec<&str> {
        let lines: Vec<&str> = self.text.lines().collect();
        let cut = (0..lines.len())
            .find(|&i| lines[i] == "#[cfg(test)]" && inline_mod_follows(&lines[i + 1..]))
            .unwrap_or(lines.len());
        lines[..cut].to_vec()
    }

    /// Non-comment code lines before the tests, with 1-based numbers.
    fn code(&self) -> impl Iterator<Item = (usize, &str)> {
        self.code_lines()
            .into_iter()
            .enumerate()
            .map(|(i, l)| (i + 1, l))
            .filter(|(_, l)| !l.trim_start().starts_with("//"))
            .collect::<Vec<_>>()
            .into_iter()
    }
}

/// Whether the next item after attribute lines is an inline `mod x {`.
fn inline_mod_follows(rest: &[&str]) -> bool {
    let item = rest
        .iter()
        .map(|l| l.trim())
        .find(|l| !l.starts_with("#[") && !l.is_empty());
    item.is_some_and(|l| l.starts_with("mod ") && l.ends_with('{'))
}

/// Out-of-line modules declared under `#[cfg(test)]` in `text` (a file at
/// `path`), resolved to their file paths.
fn test_module_files(path: &Path, text: &str) -> Vec<PathBuf> {
    let dir = path.parent().expect("a source file has a folder");
    let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("");
    let mod_dir = if matches!(stem, "mod" | "lib" | "main") {
        dir.to_path_buf()
    } else {
        dir.join(stem)
    };
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        if line.trim() != "#[cfg(test)]" {
            continue;
        }
        let mut explicit = None;
        for next in lines[i + 1..].iter().map(|l| l.trim()) {
            if let Some(p) = next
                .strip_prefix("#[path = \"")
                .and_then(|p| p.strip_suffix("\"]"))
            {
                explicit = Some(dir.join(p));
            } else if next.starts_with("#[") {
                continue;
            } else {
                let name = next
                    .strip_prefix("mod ")
                    .or_else(|| next.strip_prefix("pub mod "))
                    .and_then(|n| n.strip_suffix(';'));
                if let Some(name) = name {
                    out.push(explicit.take().unwrap_or_else(|| {
                        let flat = mod_dir.join(format!("{name}.rs"));
                        if flat.exists() {
                            flat
                        } else {
                            mod_dir.join(name).join("mod.rs")
                        }
                    }));
                }
                break;
            }
        }
    }
    out
}

fn rs_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for entry in entries {
        let path = entry.expect("a readable folder entry").path();
        if path.is_dir() {
            rs_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn sources() -> Vec<Source> {
    let root = workspace();
    let mut paths = Vec::new();
    for r in ROOTS {
        rs_files(&root.join(r), &mut paths);
    }
    paths.sort();
    let texts: Vec<(PathBuf, String)> = paths
        .into_iter()
        .map(|p| {
            let text =
                std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            (p, text)
        })
        .collect();
    let test_files: Vec<PathBuf> = texts
        .iter()
        .flat_map(|(p, t)| test_module_files(p, t))
        .filter_map(|p| p.canonicalize().ok())
        .collect();
    texts
        .into_iter()
        .map(|(p, text)| {
            let test_only = p.canonicalize().is_ok_and(|c| test_files.contains(&c));
            let rel = p
                .strip_prefix(&root)
                .expect("under the workspace")
                .to_string_lossy()
                .replace('\\', "/");
            Source {
                rel,
                text,
                test_only,
            }
        })
        .collect()
}

/// Checks `counts` (file → today's count) against a ratchet allowlist.
fn ratchet(
    rule: &str,
    list_name: &str,
    counts: &BTreeMap<String, usize>,
    allowed: &[(&str, usize)],
    existing: &[Source],
    errors: &mut Vec<String>,
) {
    for (file, &n) in counts {
        match allowed.iter().find(|(f, _)| *f == file.as_str()) {
            None => errors.push(format!("{file}: {rule} ({n}); fix it (do not add it to {list_name})")),
            Some((_, max)) if n > *max => errors.push(format!(
                "{file}: {rule} ({n}), more than the {max} {list_name} allows; the list may only shrink"
            )),
            Some(_) => {}
        }
    }
    for (file, _) in allowed {
        if !counts.contains_key(*file) {
            let why = if existing.iter().any(|s| s.rel == *file) {
                "is clean now"
            } else {
                "no longer exists"
            };
            errors.push(format!("{file} {why}: remove its entry from {list_name}"));
        }
    }
}

fn check(sources: &[Source]) -> Vec<String> {
    let mut errors = Vec::new();
    let mut long = BTreeMap::new();
    let mut anyhow = BTreeMap::new();
    let mut unwraps = BTreeMap::new();
    for s in sources {
        let first = s.text.lines().find(|l| !l.trim().is_empty());
        if !first.is_some_and(|l| l.starts_with("//!")) {
            errors.push(format!(
                "{}: no `//!` header; open the file with a comment saying what it holds",
                s.rel
            ));
        }
        if s.test_only {
            continue;
        }
        let n = s.code_lines().len();
        if n > MAX_LINES {
            long.insert(s.rel.clone(), n);
        }
        let may_print = PRINTS.iter().any(|(p, _)| {
            if p.ends_with('/') {
                s.rel.starts_with(p)
            } else {
                s.rel == *p
            }
        });
        if !may_print {
            for (no, line) in s.code() {
                if ["println!", "print!", "eprint"]
                    .iter()
                    .any(|m| line.contains(m))
                {
                    errors.push(format!(
                        "{}:{no}: prints ({}); stdout is the MCP channel: return the text, \
                         log it with tracing, or write through untrusted::terminal in the operator CLI",
                        s.rel,
                        line.trim()
                    ));
                }
            }
        }
        let library = (s.rel.starts_with("state/src/") || s.rel.starts_with("runner/src/"))
            && !ANYHOW_OK.contains(&s.rel.as_str());
        if library {
            let n = s.code().filter(|(_, l)| l.contains("anyhow")).count();
            if n > 0 {
                anyhow.insert(s.rel.clone(), n);
            }
        }
        if s.rel.starts_with("bridge/src/") {
            let lines = s.code_lines();
            let n = (0..lines.len())
                .filter(|&i| {
                    let l = lines[i];
                    let prev = if i > 0 { lines[i - 1] } else { "" };
                    !l.trim_start().starts_with("//")
                        && l.contains(".unwrap()")
                        && !l.contains("// unwrap:")
                        && !prev.trim_start().starts_with("// unwrap:")
                })
                .count();
            if n > 0 {
                unwraps.insert(s.rel.clone(), n);
            }
        }
    }
    ratchet(
        &format!("over {MAX_LINES} lines before its tests"),
        "OVERSIZED",
        &long,
        OVERSIZED,
        sources,
        &mut errors,
    );
    ratchet(
        "uses anyhow in library code (use a thiserror type)",
        "ANYHOW",
        &anyhow,
        ANYHOW,
        sources,
        &mut errors,
    );
    ratchet(
        "has `.unwrap()` on the server path without a `// unwrap:` reason",
        "UNWRAPS",
        &unwraps,
        UNWRAPS,
        sources,
        &mut errors,
    );
    errors
}

#[test]
fn the_workspace_sources_are_tidy() {
    let sources = sources();
    assert!(
        sources.len() > 50,
        "found only {} source files under {ROOTS:?}: is the workspace root right?",
        sources.len()
    );
    let errors = check(&sources);
    assert!(
        errors.is_empty(),
        "tidy found {} problem(s) (see tests/tests/e2e/tidy.rs):\n{}",
        errors.len(),
        errors.join("\n")
    );
}

/// The rules themselves catch what they are for (a tidy test that cannot
/// fail checks nothing).
#[test]
fn tidy_flags_each_kind_of_violation() {
    let src = |rel: &str, text: &str| Source {
        rel: rel.into(),
        text: text.into(),
        test_only: false,
    };
    let long = format!("//! x\n{}", "fn f() {}\n".repeat(MAX_LINES));
    let long_with_tests = format!(
        "//! x\n{}#[cfg(test)]\nmod tests {{\n{}}}\n",
        "\n".repeat(10),
        "\n".repeat(MAX_LINES)
    );
    let bad = [
        src("bridge/src/nohead.rs", "fn f() {}\n"),
        src("bridge/src/long.rs", &long),
        src(
            "bridge/src/talk.rs",
            "//! x\nfn f() { println!(\"hi\"); }\n",
        ),
        src(
            "state/src/lib_err.rs",
            "//! x\nfn f() -> anyhow::Result<()> { Ok(()) }\n",
        ),
        src(
            "bridge/src/unw.rs",
            "//! x\nfn f() { None::<u8>.unwrap(); }\n",
        ),
    ];
    let errors = check(&bad).join("\n");
    for needle in [
        "bridge/src/nohead.rs: no `//!` header",
        "bridge/src/long.rs: over 500 lines",
        "bridge/src/talk.rs:2: prints",
        "state/src/lib_err.rs: uses anyhow",
        "bridge/src/unw.rs: has `.unwrap()`",
    ] {
        assert!(errors.contains(needle), "expected {needle:?} in:\n{errors}");
    }
    let good = [
        src("bridge/src/tested.rs", &long_with_tests),
        src(
            "bridge/src/why.rs",
            "//! x\nfn f() {\n    // unwrap: a literal always parses\n    \"1\".parse::<u8>().unwrap();\n}\n",
        ),
        src(
            "bridge/src/main.rs",
            "//! x\nfn main() { eprintln!(\"e\"); }\n",
        ),
    ];
    let errors: Vec<String> = check(&good)
        .into_iter()
        .filter(|e| !e.contains("remove its entry"))
        .collect();
    assert!(errors.is_empty(), "{errors:#?}");
}
