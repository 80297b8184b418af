//! Fuzzes the redactor. Input: one selector byte, then text; the text is
//! split at its first NUL and a known secret of the selected class is placed
//! between the halves on its own line.
//!
//! Properties: the secret never survives (beyond copies the text itself
//! held); `redact_report` agrees with `redact` and names a class exactly when
//! something changed; a changed text really differs; a second pass changes
//! nothing (idempotence); `redact_json` on a string, a keyed value and a key
//! removes the secret too.
#![no_main]

use std::borrow::Cow;
use std::sync::LazyLock;

use bridge_state::redact::Redactor;
use libfuzzer_sys::fuzz_target;
use serde_json::{Value, json};

/// (class, line holding the secret, the secret itself). Assembled at run time
/// so the file holds nothing a secret scanner would flag.
fn secrets() -> Vec<(&'static str, String, String)> {
    let pem = "MIIEowIBAAKCAQEAfakefakefakefakefakefakefake0123456789abcdefABCDEF";
    let aws = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
    let ghp = format!("ghp_{}", "a1B2c3D4e5F6".repeat(3));
    let ant = format!("sk-ant-api03-{}AA", "Ab1-Cd2_".repeat(11));
    let oai = format!("sk-proj-{}", "Xy9_Zw8-".repeat(10));
    let slack = format!("xoxb-1234567890-9876543210-{}", "AbCdEf".repeat(4));
    let stripe = format!("sk_live_{}", "4eC39HqLyj".repeat(3));
    let google = format!("AIza{}", &"Sy0-_abcD9".repeat(4)[..35]);
    let jwt = format!(
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.{}",
        "dozjgNryP4J3jVmN".repeat(2)
    );
    let s = |class, line: String, secret: &str| (class, line, secret.to_owned());
    vec![
        s("private-key", format!("-----BEGIN RSA PRIVATE KEY-----\n{pem}\n-----END RSA PRIVATE KEY-----"), pem),
        s("private-key", format!("-----BEGIN OPENSSH PRIVATE KEY-----\n{pem}"), pem),
        s("aws-access-key", "AKIAIOSFODNN7EXAMPLE".into(), "AKIAIOSFODNN7EXAMPLE"),
        s("aws-secret-key", format!("aws_secret_access_key = {aws}"), aws),
        s("github-token", ghp.clone(), &ghp),
        s("anthropic-key", format!("ANTHROPIC_API_KEY={ant}"), &ant),
        s("openai-key", format!("\"{oai}\""), &oai),
        s("slack-token", slack.clone(), &slack),
        s("stripe-key", format!("Stripe.api_key = {stripe}"), &stripe),
        s("google-api-key", format!("maps?key={google}"), &google),
        s("jwt", format!("session={jwt};"), &jwt),
        s("url-password", "postgres://app:Sup3rS3cretQ@db.internal:5432/app".into(), "Sup3rS3cretQ"),
        s("authorization-header", "Authorization: Basic dXNlcjpwYXNzd29yZA==".into(), "dXNlcjpwYXNzd29yZA"),
        s("bearer-token", "curl -H 'X-Auth: bearer 4f9aZq81kPq0LmN2' url".into(), "4f9aZq81kPq0LmN2"),
        s("password-assignment", "password=hunter2Xq9".into(), "hunter2Xq9"),
        s("password-assignment", "{\"Passwd\" : \"open-sesame-77\"}".into(), "open-sesame-77"),
        s("secret-assignment", "https://api.example.com/v1?api_key=abcd1234efgh&x=1".into(), "abcd1234efgh"),
        s("secret-assignment", "CLIENT_SECRET='m7#Qp!zz'".into(), "m7#Qp!zz"),
    ]
}

fn check_plain(r: &Redactor, text: &str) -> String {
    let (out, classes) = r.redact_report(text);
    assert_eq!(out, r.redact(text), "redact_report and redact disagree on {text:?}");
    match &out {
        Cow::Borrowed(_) => assert!(classes.is_empty(), "unchanged, yet reported {classes:?}"),
        Cow::Owned(o) => {
            assert!(!classes.is_empty(), "changed {text:?} with no class reported");
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
static SECRETS: LazyLock<Vec<(&str, String, String)>> = LazyLock::new(secrets);

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else { return };
    let r = &*REDACTOR;
    let text = String::from_utf8_lossy(rest);
    check_plain(r, &text);

    let (class, line, secret) = &SECRETS[selector as usize % SECRETS.len()];
    let (prefix, suffix) = text.split_once('\0').unwrap_or((&text, ""));
    let seeded = format!("{prefix}\n{line}\n{suffix}");
    let copies = prefix.matches(secret.as_str()).count() + suffix.matches(secret.as_str()).count();
    let out = check_plain(r, &seeded);
    assert!(
        out.matches(secret.as_str()).count() <= copies,
        "{class} secret survived: {out:?}"
    );

    let mut as_string = Value::String(seeded.clone());
    r.redact_json(&mut as_string);
    assert_eq!(as_string.as_str(), Some(out.as_str()), "redact_json differs from redact");
    let mut keyed = json!({ "note": seeded, "password": seeded, seeded.clone(): 1 });
    r.redact_json(&mut keyed);
    for (key, value) in keyed.as_object().expect("object") {
        let value = value.as_str().unwrap_or_default();
        for t in [key.as_str(), value] {
            assert!(t.matches(secret.as_str()).count() <= copies, "{class} secret survived in JSON: {keyed}");
        }
    }
    assert!(!r.redact_json(&mut keyed), "redact_json is not idempotent: {keyed}");
});
