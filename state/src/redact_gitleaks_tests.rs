//! Tests of the gitleaks-format rule loader: team rule files with secret
//! groups, allowlists and entropy thresholds, RE2 class semantics and
//! `[extend]` paths.

use std::borrow::Cow;
use std::path::PathBuf;

use super::*;
use crate::redact::{RedactError, Redactor, load_rules_file};

fn temp_dir(tag: &str) -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let dir = std::env::temp_dir().join(format!("gitleaks-{}-{nanos}-{tag}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn load(contents: &str) -> Result<Redactor, RedactError> {
    let dir = temp_dir("one");
    let path = dir.join(".gitleaks.toml");
    std::fs::write(&path, contents).unwrap();
    let rules = load_rules_file(&path);
    std::fs::remove_dir_all(&dir).unwrap();
    Redactor::with_operator(&rules?)
}

const TEAM: &str = r#"
title = "team rules"
[extend]
useDefault = true

[[rules]]
id = "internal-ticket"
description = "ticket service tokens"
regex = '''tkt_(\d{4})_([a-f0-9]{16})'''
secretGroup = 2
keywords = ["TKT_"]
tags = ["internal"]

[[rules.allowlists]]
description = "the documented sample"
regexes = ['''^0{16}$''']

[[rules]]
id = "build-key"
regex = '''bld\s*->\s*(\w{20,})'''
entropy = 3.0
keywords = ["bld"]

[[allowlists]]
targetRules = ["build-key"]
stopwords = ["sample"]
"#;

#[test]
fn team_rules_redact_with_secret_group_allowlists_and_entropy() {
    let r = load(TEAM).unwrap();
    let hex = "a1b2c3d4e5f60718";
    // secretGroup 2: the id part is kept.
    assert_eq!(
        r.redact(&format!("see tkt_1234_{hex} now")),
        "see tkt_1234_INTERNAL_TICKET_REDACTED now"
    );
    // The rule's allowlist lets the documented sample through.
    assert!(matches!(
        r.redact("tkt_1234_0000000000000000"),
        Cow::Borrowed(_)
    ));
    // No secretGroup: the first capture group is the secret.
    assert_eq!(
        r.redact("bld -> Zq8xV3mN7pL2kR9tW4yB"),
        "bld -> BUILD_KEY_REDACTED"
    );
    // Entropy gate and the global stopword allowlist.
    assert!(matches!(
        r.redact("bld -> aaaaaaaaaaaaaaaaaaaaaaaa"),
        Cow::Borrowed(_)
    ));
    assert!(matches!(
        r.redact("bld -> sample_Zq8xV3mN7pL2kR9t"),
        Cow::Borrowed(_)
    ));
    // Built-ins still apply.
    assert_eq!(r.redact("password=hunter2"), "password=PASSWORD_REDACTED");
}

#[test]
fn re2_classes_are_ascii() {
    // RE2's \d is ASCII: Arabic-Indic digits must not match, as under gitleaks.
    let r = load("[[rules]]\nid = \"pin\"\nregex = '''pin=(\\d{4})'''\n").unwrap();
    assert_eq!(r.redact("pin=1234"), "pin=PIN_REDACTED");
    assert!(matches!(r.redact("pin=١٢٣٤"), Cow::Borrowed(_)));
    assert_eq!(
        translate(r"\d\w\s\b[\d_]").unwrap(),
        r"[0-9][0-9A-Za-z_][\t\n\f\r ](?-u:\b)[0-9_]"
    );
    assert_eq!(
        translate(r"[^\S\W][[:alpha:]\]]").unwrap(),
        r"[^[:^space:][:^word:]][[:alpha:]\]]"
    );
}

#[test]
fn extend_path_merges_a_base_file() {
    let dir = temp_dir("extend");
    std::fs::write(
        dir.join("base.toml"),
        "[[rules]]\nid = \"base-token\"\nregex = '''BASE-[A-Z]{8}'''\n",
    )
    .unwrap();
    let top = dir.join(".gitleaks.toml");
    std::fs::write(&top, "[extend]\npath = \"base.toml\"\n[[rules]]\nid = \"top-token\"\nregex = '''TOP-[A-Z]{8}'''\n").unwrap();
    let rules = load_rules_file(&top).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    let r = Redactor::with_operator(&rules).unwrap();
    assert_eq!(
        r.redact("BASE-ABCDEFGH TOP-ABCDEFGH"),
        "BASE_TOKEN_REDACTED TOP_TOKEN_REDACTED"
    );
}

#[test]
#[rustfmt::skip]
fn unsupported_parts_are_errors_naming_the_rule() {
    // (file, substrings the error must contain)
    let cases: &[(&str, &[&str])] = &[
        ("[[rules]]\nid = \"q\"\nregex = '''\\Qa.b\\E'''\n", &["rule `q`", "\\Q"]),
        ("[[rules]]\nid = \"f\"\nregex = 'x+'\nseverity = \"high\"\n", &["rule `f`", "field `severity`"]),
        ("[[rules]]\nid = \"p\"\npath = '''\\.env'''\n", &["rule `p`", "path"]),
        ("[[rules]]\nid = \"e\"\nregex = 'x*'\n", &["rule `e`", "empty text"]),
        ("[[rules]]\nid = \"g\"\nregex = 'x(y)'\nsecretGroup = 3\n", &["rule `g`", "secretGroup"]),
        ("[[rules]]\nid = \"b\"\nregex = 'x('\n", &["rule `b`", "does not compile"]),
        ("[[rules]]\nid = \"a\"\nregex = 'xy'\n[[rules.allowlists]]\npaths = ['''x''']\n", &["rule `a`", "paths"]),
        ("[allowlist]\ncommits = [\"abc\"]\n", &["global allowlist #1", "commits"]),
        ("[extend]\ndisabledRules = [\"aws\"]\n", &["[extend]", "disabledRules"]),
        ("title = \"t\"\n[[pattern]]\nname = \"x\"\n", &["cannot be mixed"]),
        ("[[rules]]\nid = \"jwt\"\nregex = 'xyz'\n", &["`jwt` is used twice"]),
    ];
    for (file, wants) in cases {
        let msg = match load(file) {
            Ok(_) => panic!("accepted {file:?}"),
            Err(e) => e.to_string(),
        };
        for want in *wants {
            assert!(msg.contains(want), "{file:?}: {msg}");
        }
    }
}

#[test]
fn the_pattern_format_still_loads_through_the_same_entry_point() {
    let r = load("[[pattern]]\nname = \"t\"\nregex = 'TKT-[0-9A-F]{16}'\nplaceholder = \"TICKET_REDACTED\"\n").unwrap();
    assert_eq!(r.redact("TKT-0123456789ABCDEF"), "TICKET_REDACTED");
}
