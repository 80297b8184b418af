//! Tests of the redactor: every class caught in context, ordinary text untouched, idempotence,
//! JSON, operator patterns, adversarial speed, the normalisation shadow and split secrets.

use super::*;
use std::time::{Duration, Instant};

/// (class, input, secret that must disappear). Secrets are assembled at run time so this file
/// holds no literal that looks like a live credential to secret scanners.
#[rustfmt::skip]
fn positives() -> Vec<(&'static str, String, String)> {
    let pem = "MIIEowIBAAKCAQEAfakefakefakefakefakefakefake0123456789abcdefABCDEF";
    let jwt = format!("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.{}", "dozjgNryP4J3jVmN".repeat(2));
    let ghp = format!("ghp_{}", "a1B2c3D4e5F6".repeat(3));
    let pat = format!("github_pat_11{}_{}", "A1b2C3d4E5f".repeat(2), "x9Y8w7".repeat(10));
    let ant = format!("sk-ant-api03-{}AA", "Ab1-Cd2_".repeat(11));
    let oai = format!("sk-{}", "T3BlbkFJ".repeat(6));
    let proj = format!("sk-proj-{}", "Xy9_Zw8-".repeat(10));
    let slack = format!("xoxb-1234567890-9876543210-{}", "AbCdEf".repeat(4));
    let stripe = format!("sk_live_{}", "4eC39HqLyj".repeat(3));
    let google = format!("AIza{}", &"Sy0-_abcD9".repeat(4)[..35]);
    let aws = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
    let p = |class, input: String, secret: &str| (class, input, secret.to_owned());
    vec![
        p("aws-access-key", "key id AKIAIOSFODNN7EXAMPLE in use".into(), "AKIAIOSFODNN7EXAMPLE"),
        p("aws-access-key", "ASIAY34FZKBOKMUTVV7A,".into(), "ASIAY34FZKBOKMUTVV7A"),
        p("aws-secret-key", format!("aws_secret_access_key = {aws}\n"), aws),
        p("aws-secret-key", format!("export AWS_SECRET_ACCESS_KEY=\"{aws}\""), aws),
        p("private-key", format!("a\n-----BEGIN RSA PRIVATE KEY-----\n{pem}\n-----END RSA PRIVATE KEY-----\nb"), pem),
        p("private-key", format!("-----BEGIN OPENSSH PRIVATE KEY-----\n{pem}\n-----END OPENSSH PRIVATE KEY-----"), pem),
        p("private-key", format!("-----BEGIN PGP PRIVATE KEY BLOCK-----\n{pem}\n-----END PGP PRIVATE KEY BLOCK-----"), pem),
        p("private-key", format!("-----BEGIN PRIVATE KEY-----\n{pem}\n(truncated)"), pem),
        p("private-key", format!("\"-----BEGIN EC PRIVATE KEY-----\\n{pem}\\n-----END EC PRIVATE KEY-----\\n\""), pem),
        p("bearer-token", "curl -H 'X-Auth: bearer 4f9aZq81kPq0LmN2' url".into(), "4f9aZq81kPq0LmN2"),
        p("password-assignment", "password=hunter2".into(), "hunter2"),
        p("password-assignment", "DB_PASSWORD: \"s3cr3t with spaces\"".into(), "s3cr3t with spaces"),
        p("password-assignment", "mysql --pwd='p@55w0rd!'".into(), "p@55w0rd!"),
        p("password-assignment", "{\"Passwd\" : \"open sesame\"}".into(), "open sesame"),
        p("secret-assignment", "https://api.example.com/v1?api_key=abcd1234efgh&x=1".into(), "abcd1234efgh"),
        p("secret-assignment", "apikey: 9f8e7d6c5b4a".into(), "9f8e7d6c5b4a"),
        p("secret-assignment", "X-Api-Key: 0123456789abcdef".into(), "0123456789abcdef"),
        p("secret-assignment", "CLIENT_SECRET='m7#Qp!zz'".into(), "m7#Qp!zz"),
        p("secret-assignment", "access_token=ya29.a0AfH6SMBx".into(), "ya29.a0AfH6SMBx"),
        p("secret-assignment", "SECRET_KEY = \"django-insecure-xyz\"".into(), "django-insecure-xyz"),
        p("github-token", format!("GITHUB_TOKEN={ghp}"), &ghp),
        p("github-token", format!("token {pat} end"), &pat),
        p("github-token", format!("gho_{}", "Zz9Yy8Xx7Ww6".repeat(3)), "Zz9Yy8Xx7Ww6"),
        p("github-token", format!("ghs_{}", "Qq1Rr2Ss3Tt4".repeat(3)), "Qq1Rr2Ss3Tt4"),
        p("github-token", format!("ghu_{} ghr_{}", "Uu5".repeat(12), "Rr6".repeat(12)), "Uu5Uu5"),
        p("anthropic-key", format!("ANTHROPIC_API_KEY={ant}"), &ant),
        p("openai-key", format!("key: {oai}."), &oai),
        p("openai-key", format!("\"{proj}\""), &proj),
        p("slack-token", format!("slack {slack}"), &slack),
        p("stripe-key", format!("Stripe.api_key = {stripe}"), &stripe),
        p("stripe-key", format!("rk_live_{} and sk_test_{}", "Ab12Cd34Ef56Gh78", "Zz99Yy88Xx77Ww66"), "Ab12Cd34Ef56Gh78"),
        p("google-api-key", format!("maps?key={google}"), &google),
        p("jwt", format!("session={jwt};"), &jwt),
        p("url-password", "postgres://app:Sup3rS3cret@db.internal:5432/app".into(), "Sup3rS3cret"),
        p("url-password", "redis://:hunter22@cache:6379/0".into(), "hunter22"),
        p("url-password", "https://bob:p@ss:w0rd@example.com/x".into(), "ss:w0rd"),
        p("authorization-header", "Authorization: Basic dXNlcjpwYXNzd29yZA==\r\nHost: x".into(), "dXNlcjpwYXNzd29yZA"),
        p("authorization-header", "{\"authorization\": \"Token abc123def\"}".into(), "abc123def"),
        p("authorization-header", "proxy-authorization:Digest username=\"u\"".into(), "Digest"),
    ]
    .into_iter()
    .chain(redact_rules::corpus_positives())
    .collect()
}

#[test]
fn every_class_is_caught() {
    let r = Redactor::builtin();
    for (class, input, secret) in positives() {
        let (out, classes) = r.redact_report(&input);
        let placeholder = BUILTIN.iter().find(|b| b.0 == class).map(|b| b.2).unwrap();
        assert!(
            !out.contains(&secret),
            "{class}: secret survived in {out:?}"
        );
        assert!(
            out.contains(placeholder),
            "{class}: no {placeholder} in {out:?}"
        );
        assert!(
            classes.iter().any(|c| c == class),
            "{class}: report {classes:?} for {input:?}"
        );
    }
}

/// Built-in rules compile on first use (a process compiles only those whose keywords its texts
/// hold), so this is where a pattern that does not compile is caught: here, not in production.
#[test]
fn every_builtin_regex_compiles() {
    let red = Redactor::with_operator(&OperatorRules::default()).unwrap();
    assert_eq!(red.rules.len(), BUILTIN.len());
    for (&(name, pattern, _, _), rule) in BUILTIN.iter().zip(&red.rules) {
        if let Err(e) = regex::Regex::new(pattern) {
            panic!("built-in rule {name} does not compile: {e}");
        }
        assert_eq!(rule.regex().as_str(), pattern, "{name}");
    }
}

#[test]
fn every_builtin_class_has_a_sample() {
    let samples = positives();
    for name in Redactor::builtin().class_names() {
        assert!(
            samples.iter().any(|s| s.0 == name),
            "no positive sample for {name}"
        );
    }
}

#[test]
#[rustfmt::skip]
fn context_around_secrets_is_kept() {
    let ant = format!("sk-ant-api03-{}", "Ab1-Cd2_".repeat(11));
    let jwt = format!("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.{}", "sIgNaTuRe".repeat(3));
    // (input, exact output, classes reported)
    let cases: Vec<(String, &str, Vec<&str>)> = vec![
        ("password=hunter2".into(), "password=PASSWORD_REDACTED", vec!["password-assignment"]),
        ("pwd: 'x y'".into(), "pwd: 'PASSWORD_REDACTED'", vec!["password-assignment"]),
        ("if password == \"letmein\" {".into(), "if password == \"PASSWORD_REDACTED\" {", vec!["password-assignment"]),
        (r#"{"password":"hun\"ter2"}"#.into(), r#"{"password":"PASSWORD_REDACTED"}"#, vec!["password-assignment"]),
        ("client_secret=abc&grant=1".into(), "client_secret=SECRET_REDACTED&grant=1", vec!["secret-assignment"]),
        ("mysql://root:toor@localhost/db".into(), "mysql://root:URL_PASSWORD_REDACTED@localhost/db", vec!["url-password"]),
        ("Authorization: Basic dXNlcjpw\nnext".into(), "Authorization: AUTHORIZATION_REDACTED\nnext", vec!["authorization-header"]),
        (format!("Authorization: Bearer {jwt}"), "Authorization: AUTHORIZATION_REDACTED", vec!["jwt", "authorization-header"]),
        ("aws_secret_access_key=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY".into(), "aws_secret_access_key=AWS_SECRET_REDACTED", vec!["aws-secret-key"]),
        (format!("{ant} and AKIAIOSFODNN7EXAMPLE, AKIAIOSFODNN7EXAMPLF, password=x"),
         "ANTHROPIC_KEY_REDACTED and AWS_KEY_REDACTED, AWS_KEY_REDACTED, password=PASSWORD_REDACTED",
         vec!["aws-access-key", "anthropic-key", "password-assignment"]),
    ];
    let r = Redactor::builtin();
    for (input, want, want_classes) in cases {
        let (out, classes) = r.redact_report(&input);
        assert_eq!(out, want, "for {input:?}");
        assert_eq!(classes, want_classes, "for {input:?}");
    }
}

#[test]
fn ordinary_text_is_untouched() {
    let cases = [
        "let password_field = form.get(\"password\");",
        "fn secret_sauce() {}",
        "The token bucket refills at 10/min",
        "sk-",
        "pip install sk-learn; ask-me-anything",
        "git checkout -b feature/skip-tests",
        "https://example.com/path?x=1",
        "https://example.com:8443/api and ssh://git@github.com/org/repo",
        "mail user@example.com or git@github.com:org/repo.git",
        "```rust\nfn main() {\n    println!(\"hello\");\n}\n```\n",
        "let mut m: HashMap<String, u32> = HashMap::new();\nm.insert(\"alice\".to_string(), 10);",
        "struct Login { password: String, token: Option<String>, secret: &str, api_key: Key, }",
        "let token = get_token(); def connect(password: str = None): pass",
        "password = os.environ[\"DB_PASSWORD\"]; secret=${SECRET}",
        "{\"max_tokens\": 1024, \"password\": null, \"token\": true}",
        "Authorization is handled by the middleware",
        "The bearer of bad news; bearer tokens are in RFC 6750",
        "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==",
        "550e8400-e29b-41d4-a716-446655440000",
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE\n-----END PUBLIC KEY-----",
        "Ünïcödé prose — 日本語のテキスト",
    ];
    let r = Redactor::builtin();
    let long = "A".repeat(10_000);
    for text in cases.into_iter().chain([long.as_str()]) {
        let out = r.redact(text);
        assert!(
            matches!(out, Cow::Borrowed(_)),
            "changed {text:?} to {out:?}"
        );
    }
}

#[test]
fn redaction_is_idempotent() {
    let r = Redactor::builtin();
    let mut inputs: Vec<String> = positives().into_iter().map(|p| p.1).collect();
    inputs.push(inputs.join("\n"));
    for input in inputs {
        let once = r.redact(&input).into_owned();
        let twice = r.redact(&once);
        assert!(
            matches!(twice, Cow::Borrowed(_)),
            "second pass changed {once:?} to {twice:?}"
        );
    }
}

#[test]
fn a_placeholder_that_completes_an_earlier_match_is_redacted_in_the_same_call() {
    // Found by fuzz/fuzz_targets/redact.rs: the first pass left a URL password for a second.
    let r = Redactor::builtin();
    let (once, classes) = r.redact_report("w://:pwd=/;@");
    assert_eq!(once, "w://:URL_PASSWORD_REDACTED@");
    assert_eq!(classes, ["url-password", "password-assignment"]);
    assert!(matches!(r.redact(&once), Cow::Borrowed(_)), "{once:?}");
}

#[test]
fn placeholders_are_never_rematched() {
    let r = Redactor::builtin();
    for &(_, _, ph, _) in BUILTIN {
        for framed in [
            ph.to_owned(),
            format!("password={ph}"),
            format!("token: \"{ph}\""),
            format!("Bearer {ph}"),
            format!("Authorization: {ph}"),
            format!("https://u:{ph}@host"),
        ] {
            assert!(
                matches!(r.redact(&framed), Cow::Borrowed(_)),
                "{framed:?} changed"
            );
        }
    }
}

#[test]
fn json_strings_and_keys_are_redacted() {
    let r = Redactor::builtin();
    let mut v = serde_json::json!({
        "count": 3, "ok": true, "none": null, "ratio": 0.5,
        "note": "plain",
        "password": "hunter2",
        "headers": { "Authorization": "Basic dXNlcjpwYXNz" },
        "nested": { "items": ["plain", "id AKIAIOSFODNN7EXAMPLE", { "deep": "password=letmein" }] },
        "AKIAIOSFODNN7EXAMPLE": 1,
        "AKIAIOSFODNN7EXAMPLF": 2,
    });
    assert!(r.redact_json(&mut v));
    let text = v.to_string();
    for secret in ["hunter2", "dXNlcjpwYXNz", "AKIAIOSFODNN7EXAMPL", "letmein"] {
        assert!(!text.contains(secret), "{secret} survived in {text}");
    }
    assert_eq!(v["count"], 3);
    assert_eq!(v["ok"], true);
    assert_eq!(v["none"], Value::Null);
    assert_eq!(v["ratio"], 0.5);
    assert_eq!(v["note"], "plain");
    assert_eq!(v["password"], "PASSWORD_REDACTED");
    assert_eq!(v["headers"]["Authorization"], "AUTHORIZATION_REDACTED");
    assert_eq!(v["nested"]["items"][0], "plain");
    assert_eq!(v["nested"]["items"][1], "id AWS_KEY_REDACTED");
    // Both secret keys survive as distinct entries, so no value is silently lost.
    let mut values = [&v["AWS_KEY_REDACTED"], &v["AWS_KEY_REDACTED#2"]].map(|x| x.as_i64());
    values.sort();
    assert_eq!(values, [Some(1), Some(2)]);
    assert!(!r.redact_json(&mut v), "second pass changed {v}");

    let session = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    let mut clean = serde_json::json!({ "a": ["b", 1, false], "session": session, "tokens": 7 });
    let before = clean.clone();
    assert!(!r.redact_json(&mut clean));
    assert_eq!(clean, before);
}

fn spec(name: &str, regex: &str, placeholder: &str) -> PatternSpec {
    PatternSpec {
        name: name.into(),
        regex: regex.into(),
        placeholder: placeholder.into(),
    }
}

#[test]
#[rustfmt::skip]
fn extra_patterns_are_checked() {
    let ok = spec("internal-ticket-token", "TKT-[0-9A-F]{16}", "TICKET_TOKEN_REDACTED");
    // (extras, substring the error message must contain, or "" for success)
    let cases = [
        (vec![ok.clone()], ""),
        (vec![spec("bad", "TKT-[", "X_REDACTED")], "`bad` has an invalid regex"),
        (vec![spec("  ", "x", "X_REDACTED")], "#1 has an empty `name`"),
        (vec![spec("t", "x", " ")], "`t` has an empty `placeholder`"),
        (vec![spec("t", "(TKT-1)?", "X_REDACTED")], "can match empty text"),
        (vec![spec("t", "tok_[a-z]+", "tok_redacted_now")], "is itself matched by pattern `t`"),
        (vec![spec("t", "x[0-9]+", "password=1")], "matched by pattern `password-assignment`"),
        (vec![ok.clone(), ok.clone()], "used twice"),
        (vec![spec("jwt", "x[0-9]", "X_REDACTED")], "used twice"),
    ];
    for (extra, want) in cases {
        match (Redactor::with_extra(&extra), want) {
            (Ok(_), "") => {}
            (Ok(_), want) => panic!("{extra:?} accepted, wanted error with {want:?}"),
            (Err(e), want) => assert!(!want.is_empty() && e.to_string().contains(want), "{extra:?}: {e}"),
        }
    }
    let r = Redactor::with_extra(&[ok]).unwrap();
    assert_eq!(r.class_names().last(), Some(&"internal-ticket-token"));
    assert_eq!(r.class_names().len(), BUILTIN.len() + 1);
    let (out, classes) = r.redact_report("see TKT-0123456789ABCDEF now");
    assert_eq!(out, "see TICKET_TOKEN_REDACTED now");
    assert_eq!(classes, ["internal-ticket-token"]);
}

#[test]
fn extra_pattern_secret_group_keeps_context() {
    let pin = spec("pin", r"pin=(?P<secret>\d{4,})", "PIN_REDACTED");
    let r = Redactor::with_extra(&[pin]).unwrap();
    assert_eq!(r.redact("card pin=123456 ok"), "card pin=PIN_REDACTED ok");
    assert!(matches!(
        r.redact("card pin=PIN_REDACTED ok"),
        Cow::Borrowed(_)
    ));
}

fn temp_file(tag: &str, contents: &str) -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let name = format!("redact-{}-{nanos}-{tag}.toml", std::process::id());
    let path = std::env::temp_dir().join(name);
    std::fs::write(&path, contents).unwrap();
    path
}

#[test]
#[rustfmt::skip]
fn patterns_file_round_trip_and_errors() {
    let good = "[[pattern]]\nname = \"internal-ticket-token\"\nregex = 'TKT-[0-9A-F]{16}'\nplaceholder = \"TICKET_TOKEN_REDACTED\"\n";
    // (file contents, substring the error must contain, or "" for success)
    let cases = [
        (good.to_owned(), ""),
        (String::new(), ""),
        (format!("{good}flags = \"i\"\n"), "unknown field `flags`"),
        ("[[patterns]]\nname = \"x\"\n".to_owned(), "unknown field `patterns`"),
        ("[[pattern]]\nname = \"x\"\nregex = 'TKT-['\nplaceholder = \"X_REDACTED\"\n".to_owned(), "`x` has an invalid regex"),
        ("[[pattern]]\nname = \"x\"\n".to_owned(), "missing field"),
    ];
    for (i, (contents, want)) in cases.into_iter().enumerate() {
        let path = temp_file(&format!("case{i}"), &contents);
        let result = load_patterns_file(&path);
        std::fs::remove_file(&path).unwrap();
        match result {
            Ok(specs) => {
                assert_eq!(want, "", "case {i} accepted");
                let r = Redactor::with_extra(&specs).unwrap();
                let want = if specs.is_empty() { "TKT-0123456789ABCDEF" } else { "TICKET_TOKEN_REDACTED" };
                assert_eq!(r.redact("TKT-0123456789ABCDEF"), want);
            }
            Err(e) => {
                let msg = e.to_string();
                assert!(!want.is_empty() && msg.contains(want), "case {i}: {msg}");
                assert!(msg.contains(&path.display().to_string()), "case {i} does not name the file: {msg}");
            }
        }
    }
    let missing = std::env::temp_dir().join("redact-no-such-file.toml");
    let e = load_patterns_file(&missing).unwrap_err();
    assert!(matches!(e, RedactError::ReadFile { .. }) && e.to_string().contains("redact-no-such-file"), "{e}");
}

#[test]
fn adversarial_input_stays_fast() {
    // Four times the largest message the bridge accepts.
    const MB: usize = 256 << 10;
    let fill = |unit: &str| unit.repeat(MB / unit.len());
    let cases = [
        ("password=…", fill("password=")),
        ("BEGIN without END", fill("-----BEGIN PRIVATE KEY-----\n")),
        ("eyJ and dots", fill("eyJ.")),
        ("eyJ segments", fill("eyJabcdefghijk.")),
        ("a:a@", fill("a:a@")),
        ("scheme + a:a@", format!("x://{}", fill("a:a@"))),
        ("Authorization: ", fill("Authorization: ")),
        ("bearer bearer", fill("bearer ")),
        ("token=\"", fill("token=\"")),
        ("non-ASCII + password=", fill("é password=x ")),
        ("sk-ant-", fill("sk-ant-")),
    ];
    let r = Redactor::builtin();
    let mut worst = (Duration::ZERO, "");
    for (name, input) in &cases {
        let start = Instant::now();
        let out = r.redact(input);
        let took = start.elapsed();
        eprintln!("  {name}: {took:?}");
        // Not a benchmark (timings live in tests/src/bin): a backtracking
        // engine would take hours here, so a minute only catches that.
        assert!(took < Duration::from_secs(60), "{name} took {took:?}");
        assert!(out.len() <= input.len() * 3, "{name} grew too much");
        if took > worst.0 {
            worst = (took, name);
        }
    }
    eprintln!("worst adversarial case: {:?} took {:?}", worst.1, worst.0);
}

#[test]
#[rustfmt::skip]
fn the_normalisation_shadow_sees_through_invisible_and_fullwidth_characters() {
    let r = Redactor::builtin();
    // (input, exact output, classes)
    let cases = [
        ("key AKIA\u{200b}IOSFODNN7EXAMPLE ok", "key AWS_KEY_REDACTED ok", vec!["aws-access-key"]),
        ("AK\u{2060}IA\u{feff}IOSFODNN7EXAMPLE", "AWS_KEY_REDACTED", vec!["aws-access-key"]),
        // Letters and marks drawn as nothing (not Cf): a variation selector, a Hangul filler.
        ("AKIA\u{fe0f}IOSFODNN7EXAMPLE", "AWS_KEY_REDACTED", vec!["aws-access-key"]),
        ("AKIAIOSF\u{3164}ODNN7EXAMPLE x", "AWS_KEY_REDACTED x", vec!["aws-access-key"]),
        ("ｐａｓｓｗｏｒｄ=hunter2 ok", "ｐａｓｓｗｏｒｄ=PASSWORD_REDACTED ok", vec!["password-assignment"]),
        ("password＝ｈｕｎｔｅｒ２", "password＝PASSWORD_REDACTED", vec!["password-assignment"]),
        ("tok\u{ad}en: s3cr\u{200d}3t!", "tok\u{ad}en: SECRET_REDACTED", vec!["secret-assignment"]),
        ("password=abc;def", "password=PASSWORD_REDACTED", vec!["password-assignment"]),
        ("Server=db;Password=abc;User Id=app", "Server=db;Password=PASSWORD_REDACTED;User Id=app", vec!["password-assignment"]),
    ];
    for (input, want, want_classes) in cases {
        let (out, classes) = r.redact_report(input);
        assert_eq!(out, want, "for {input:?}");
        assert_eq!(classes, want_classes, "for {input:?}");
        assert!(matches!(r.redact(&out), Cow::Borrowed(_)), "not idempotent: {out:?}");
    }
}

#[test]
fn a_secret_split_across_fields_is_caught_in_every_piece() {
    let r = Redactor::builtin();
    let fields: Vec<String> = ["src/main.rs", "AKIAIOSF", "ODNN7EXAMPLE", "README.md"]
        .map(String::from)
        .to_vec();
    let (out, changed) = r.redact_fields(&fields);
    assert!(changed);
    assert_eq!(
        out,
        [
            "src/main.rs",
            "AWS_KEY_REDACTED",
            "AWS_KEY_REDACTED",
            "README.md"
        ]
    );
    let plain: Vec<String> = ["a.rs", "b.rs"].map(String::from).to_vec();
    assert_eq!(r.redact_fields(&plain), (plain.clone(), false));
    let whole: Vec<String> = vec!["password=hunter2".into()];
    assert_eq!(r.redact_fields(&whole).0, ["password=PASSWORD_REDACTED"]);
}

#[test]
fn a_secret_split_between_reason_and_command_or_across_lines_is_caught() {
    let r = Redactor::builtin();
    let gh = format!("ghp_{}", "a1B2c3D4e5F6".repeat(3));
    let (head, tail) = gh.split_at(14);
    // Reason, then command.
    let (cmd, reason, classes) =
        r.redacted_proposal(&format!("{tail} | deploy"), Some(&format!("use {head}")));
    assert_eq!(cmd.as_str(), "GITHUB_TOKEN_REDACTED | deploy");
    assert_eq!(reason.unwrap().as_str(), "use GITHUB_TOKEN_REDACTED");
    assert_eq!(classes, ["github-token"]);
    // Across lines of the command.
    let (cmd, reason, classes) =
        r.redacted_proposal(&format!("echo {head}\\\n{tail} | wc\nls"), None);
    assert_eq!(
        cmd.as_str(),
        "echo GITHUB_TOKEN_REDACTED\\\nGITHUB_TOKEN_REDACTED | wc\nls"
    );
    assert!(reason.is_none());
    assert_eq!(classes, ["github-token"]);
    // A secret in the reason alone is redacted there and does not refuse the command.
    let (cmd, reason, classes) =
        r.redacted_proposal("cargo test", Some(&format!("token {gh}\nplease")));
    assert_eq!(cmd.as_str(), "cargo test");
    assert_eq!(
        reason.unwrap().as_str(),
        "token GITHUB_TOKEN_REDACTED\nplease"
    );
    assert!(classes.is_empty());
    // Joining adds nothing that neither side holds: each line ends a word, and `password`
    // at a reason's end does not make the command's first word its value.
    let (cmd, reason, classes) = r.redacted_proposal(
        "=hunter2 ls -la\ncat notes",
        Some("we must not print the password"),
    );
    assert_eq!(cmd.as_str(), "=hunter2 ls -la\ncat notes");
    assert_eq!(reason.unwrap().as_str(), "we must not print the password");
    assert!(classes.is_empty());
}

#[test]
fn a_proposal_whose_secret_needs_another_lines_context_is_caught_whole() {
    let r = Redactor::builtin();
    // A Kubernetes Secret in a heredoc: no line alone is a secret.
    let command = "kubectl apply -f - <<EOF\napiVersion: v1\nkind: Secret\ndata:\n  DB_PASS: aHVudGVyMjAyNg==\nEOF";
    let (cmd, _, classes) = r.redacted_proposal(command, None);
    assert!(!cmd.as_str().contains("aHVudGVyMjAyNg=="), "{cmd}");
    assert_eq!(classes, ["k8s-secret-data"]);
    // The same in a reason (never refused, only redacted) before a command.
    let (cmd, reason, classes) = r.redacted_proposal("kubectl apply -f secret.yaml", Some(command));
    assert_eq!(cmd.as_str(), "kubectl apply -f secret.yaml");
    assert!(!reason.unwrap().as_str().contains("aHVudGVyMjAyNg=="));
    assert!(classes.is_empty());
    // .netrc lines written by a command: login on one line, password on the next.
    let (cmd, _, classes) = r.redacted_proposal(
        "cat >> ~/.netrc <<EOF\nmachine h\nlogin bob\npassword s3cretpw\nEOF",
        None,
    );
    assert!(!cmd.as_str().contains("s3cretpw"), "{cmd}");
    assert_eq!(classes, ["netrc-password"]);
}

#[test]
fn an_assignment_in_escaped_json_is_redacted_value_whole() {
    let r = Redactor::builtin();
    for (input, secret) in [
        // JSON inside a JSON string or a code literal.
        (
            r#"{\"password\": \"hunter2 with spaces\"}"#,
            "hunter2 with spaces",
        ),
        // Escaped twice (a log line of a log line).
        (
            r#"\\\"db_password\\\": \\\"s3cr3t-v4lue\\\""#,
            "s3cr3t-v4lue",
        ),
        // Rust's `{:?}` of `DB_PASSWORD: "hunter2"` (rmcp's debug log of a request).
        (r#"DB_PASSWORD: \"hunter2\""#, "hunter2"),
        (r#"\"api_key\":\"9f8e7d6c5b4a3210\""#, "9f8e7d6c5b4a3210"),
    ] {
        let out = r.redact(input);
        assert!(!out.contains(secret), "{input} -> {out}");
        assert!(
            matches!(r.redact(&out), Cow::Borrowed(_)),
            "not idempotent: {out:?}"
        );
    }
    // A bare value keeps its backslashes (a Windows-style password).
    let out = r.redact(r"password=ab\cd\ef");
    assert_eq!(out, "password=PASSWORD_REDACTED");
}

#[test]
fn redacted_text_is_the_redactors_output() {
    let red = Redactor::builtin();
    let r = red.redacted("id AKIAIOSFODNN7EXAMPLE");
    assert_eq!(r.as_str(), "id AWS_KEY_REDACTED");
    assert_eq!(r.to_string(), "id AWS_KEY_REDACTED");
    let (r, classes) = red.redacted_report("password=hunter2");
    assert!(!r.as_str().contains("hunter2"));
    assert_eq!(classes.len(), 1);
    let (j, changed) = red.redacted_json(serde_json::json!({"out": "AKIAIOSFODNN7EXAMPLE"}));
    assert!(changed && !j.as_str().contains("AKIAIOSFODNN7EXAMPLE"));
    assert_eq!(
        serde_json::to_string(&r).unwrap(),
        format!("{:?}", r.as_str())
    );
}

/// Every rule's corpus examples, planted on their own line among surroundings of many kinds
/// (Unicode, format characters, fullwidth letters, CRLF, code fences, open JSON, bare key names,
/// control bytes), never survive. The `redact` fuzz target checks the same on fuzzer-chosen
/// surroundings; this runs a fixed spread of them in every `cargo test`.
#[test]
fn every_rules_examples_never_survive_their_surroundings() {
    const AROUND: &[(&str, &str)] = &[
        ("", ""),
        ("héllo wörld 日本語 😀", "\u{2028}fin ½"),
        ("\u{200b}\u{feff}\u{ad}", "\u{200d}"),
        ("line one\r\nline two", "\r\nlast\r\n"),
        ("```\nsome code", "```"),
        ("{\"a\": 1, \"b\": \"", "\"}"),
        ("password=", "token="),
        ("Authorization:", "x"),
        ("\t\t", "    "),
        ("ｐａｓｓ éè", "\u{7f}\u{1}"),
        ("see below:", "thanks!"),
        ("datadog mistral cohere", "-----END PRIVATE KEY-----"),
    ];
    const BREAKS: &[&str] = &["\n", "\r\n", "\n\n", "\n \t"];
    let r = Redactor::builtin();
    let mut failures = Vec::new();
    for (n, (rule, text, secret)) in crate::redact_rules::corpus_positives().iter().enumerate() {
        // Seven of the 12 × 12 × 4 combinations per example, spread over the whole grid.
        for k in 0..7 {
            let (prefix, _) = AROUND[(n + 5 * k) % AROUND.len()];
            let (_, suffix) = AROUND[(3 * n + 7 * k + 1) % AROUND.len()];
            let brk = BREAKS[(n + k) % BREAKS.len()];
            let planted = format!("{prefix}{brk}{text}{brk}{suffix}");
            let out = r.redact(&planted);
            if out.contains(secret.as_str()) {
                failures.push(format!("{rule}: {planted:?} -> {out:?}"));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} planted secrets survived:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
