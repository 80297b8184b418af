//! Fuzzes the redactor with every rule of the catalogue. Input: a rule
//! selector byte, an example selector byte (its top two bits pick the line
//! break around the example), then text; the text is split at its first NUL
//! and one of the selected rule's examples from the positive corpus
//! (`tests/corpus/redaction/positives.tsv`, the secret in its own context) is
//! planted between the halves on its own line.
//!
//! Properties: the rule's secret never survives (beyond copies the text
//! itself held), whatever bytes, Unicode or line breaks surround it;
//! `redact_report` agrees with `redact` and names a class exactly when
//! something changed; a changed text really differs; a second pass changes
//! nothing (idempotence); `redact_json` on a string, a keyed value and a key
//! removes the secret too.
#![no_main]

use std::borrow::Cow;
use std::sync::LazyLock;

use bridge_state::redact::{Redactor, corpus_examples};
// Not in `fuzz/tests/replay.rs`, which defines its own `fuzz_target!`.
#[cfg(not(test))]
use libfuzzer_sys::fuzz_target;
use serde_json::{Value, json};

const POSITIVES: &str = include_str!("../../tests/corpus/redaction/positives.tsv");

/// Line breaks put around the planted example.
const BREAKS: [&str; 4] = ["\n", "\r\n", "\n\n", "\n \t"];

/// Per built-in rule, in catalogue order: its (text, secret) examples.
fn examples() -> Vec<(String, Vec<(String, String)>)> {
    let all = corpus_examples(POSITIVES);
    Redactor::builtin()
        .class_names()
        .into_iter()
        .map(|rule| {
            let mine: Vec<(String, String)> = all
                .iter()
                .filter(|e| e.rule == rule)
                .map(|e| (e.text.clone(), e.secret.clone()))
                .collect();
            assert!(!mine.is_empty(), "rule {rule} has no corpus example");
            (rule.to_owned(), mine)
        })
        .collect()
}

fn check_plain(r: &Redactor, text: &str) -> String {
    let (out, classes) = r.redact_report(text);
    assert_eq!(
        out,
        r.redact(text),
        "redact_report and redact disagree on {text:?}"
    );
    match &out {
        Cow::Borrowed(_) => assert!(classes.is_empty(), "unchanged, yet reported {classes:?}"),
        Cow::Owned(o) => {
            assert!(
                !classes.is_empty(),
                "changed {text:?} with no class reported"
            );
            assert_ne!(o, text, "reported a change that is none ({classes:?})");
        }
    }
    let again = r.redact(&out);
    assert!(
        matches!(again, Cow::Borrowed(_)),
        "not idempotent:\n  input  {text:?}\n  once   {out:?}\n  twice  {again:?}"
    );
    out.into_owned()
}

// Cloning a `Redactor` gives its regexes fresh, cold caches; the bridge
// clones once at start-up, so the harness keeps one too.
static REDACTOR: LazyLock<Redactor> = LazyLock::new(Redactor::builtin);
static EXAMPLES: LazyLock<Vec<(String, Vec<(String, String)>)>> = LazyLock::new(examples);

fuzz_target!(|data: &[u8]| {
    let [rule_sel, example_sel, rest @ ..] = data else {
        return;
    };
    let r = &*REDACTOR;
    let text = String::from_utf8_lossy(rest);
    check_plain(r, &text);

    let (rule, examples) = &EXAMPLES[usize::from(*rule_sel) % EXAMPLES.len()];
    let (line, secret) = &examples[usize::from(example_sel & 0x3f) % examples.len()];
    let brk = BREAKS[usize::from(example_sel >> 6)];
    let (prefix, suffix) = text.split_once('\0').unwrap_or((&text, ""));
    let seeded = format!("{prefix}{brk}{line}{brk}{suffix}");
    let copies = prefix.matches(secret.as_str()).count() + suffix.matches(secret.as_str()).count();
    let out = check_plain(r, &seeded);
    assert!(
        out.matches(secret.as_str()).count() <= copies,
        "{rule} secret survived: {out:?}"
    );

    let mut as_string = Value::String(seeded.clone());
    r.redact_json(&mut as_string);
    assert_eq!(
        as_string.as_str(),
        Some(out.as_str()),
        "redact_json differs from redact"
    );
    let mut keyed = json!({ "note": seeded, "password": seeded, seeded.clone(): 1 });
    r.redact_json(&mut keyed);
    for (key, value) in keyed.as_object().expect("object") {
        let value = value.as_str().unwrap_or_default();
        for t in [key.as_str(), value] {
            assert!(
                t.matches(secret.as_str()).count() <= copies,
                "{rule} secret survived in JSON: {keyed}"
            );
        }
    }
    assert!(
        !r.redact_json(&mut keyed),
        "redact_json is not idempotent: {keyed}"
    );
});
