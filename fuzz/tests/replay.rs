//! Replays every checked-in corpus input through each fuzz target once, as
//! `fuzz/run.sh replay` does with libFuzzer (`-runs=0`), but as a plain
//! test: no cargo-fuzz, no instrumented build. Each target's file is
//! compiled here as a module with `fuzz_target!` defined as a function
//! `run(bytes)`, so the code replayed is exactly the code fuzzed; inputs go
//! in libFuzzer's order (smallest first). A failing input is named with its
//! panic message; every input of the target is still run.
//!
//! CI runs this (`cargo test --manifest-path fuzz/Cargo.toml`); exploring
//! for new inputs still needs `fuzz/run.sh SECONDS`.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;

/// libfuzzer-sys's macro, minus libFuzzer: raw bytes are passed as they
/// are; a typed input is built with `arbitrary` from the whole input, and
/// bytes that do not build one are skipped, as libfuzzer-sys skips them.
macro_rules! fuzz_target {
    (|$data:ident: &[u8]| $body:block) => {
        pub fn run($data: &[u8]) $body
    };
    (|$data:ident: $dty:ty| $body:block) => {
        pub fn run(bytes: &[u8]) {
            let u = arbitrary::Unstructured::new(bytes);
            let Ok($data) = <$dty as arbitrary::Arbitrary>::arbitrary_take_rest(u) else {
                return;
            };
            $body
        }
    };
}

// The target files open with `#![no_main]` (a crate attribute, unused in
// a module) and import libfuzzer-sys's macro only outside `cfg(test)`.
#[allow(unused_attributes)]
#[path = "../fuzz_targets/http.rs"]
mod http;
#[allow(unused_attributes)]
#[path = "../fuzz_targets/jsonrpc.rs"]
mod jsonrpc;
#[allow(unused_attributes)]
#[path = "../fuzz_targets/policy.rs"]
mod policy;
#[allow(unused_attributes)]
#[path = "../fuzz_targets/redact.rs"]
mod redact;
#[allow(unused_attributes)]
#[path = "../fuzz_targets/tool_args.rs"]
mod tool_args;

fn replay(target: &str, run: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("corpus")
        .join(target);
    let mut inputs: Vec<(usize, String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|entry| {
            let path = entry.expect("a corpus entry").path();
            let bytes = std::fs::read(&path).expect("a readable corpus input");
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            (bytes.len(), name, bytes)
        })
        .collect();
    assert!(!inputs.is_empty(), "{} holds no inputs", dir.display());
    inputs.sort();
    let mut failed = Vec::new();
    for (_, name, bytes) in &inputs {
        if let Err(panic) = catch_unwind(AssertUnwindSafe(|| run(bytes))) {
            let why = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            failed.push(format!("corpus/{target}/{name}: {why}"));
        }
    }
    assert!(
        failed.is_empty(),
        "{} of {} {target} inputs failed (explore or reproduce with fuzz/run.sh):\n{}",
        failed.len(),
        inputs.len(),
        failed.join("\n")
    );
    eprintln!("{target}: {} inputs replayed, none failed", inputs.len());
}

#[test]
fn http_corpus() {
    replay("http", http::run);
}

#[test]
fn jsonrpc_corpus() {
    replay("jsonrpc", jsonrpc::run);
}

#[test]
fn policy_corpus() {
    replay("policy", policy::run);
}

#[test]
fn redact_corpus() {
    replay("redact", redact::run);
}

#[test]
fn tool_args_corpus() {
    replay("tool_args", tool_args::run);
}
