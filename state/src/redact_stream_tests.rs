//! Tests of the streaming redactor: secrets at every offset relative to
//! chunk boundaries and release cuts, over-long secrets, split UTF-8.

use super::*;

/// A PEM private key of `lines` base64 lines (64 chars each); its body uses
/// only `Q`, `k` and digits, so fragments are easy to look for.
fn pem(kind: &str, lines: usize) -> String {
    let mut s = format!("-----BEGIN {kind}PRIVATE KEY-----\n");
    for i in 0..lines {
        let line: String = (0..64)
            .map(|j| match (i * 7 + j) % 3 {
                0 => 'Q',
                1 => 'k',
                _ => char::from(b'0' + ((i + j) % 10) as u8),
            })
            .collect();
        s.push_str(&line);
        s.push('\n');
    }
    s.push_str(&format!("-----END {kind}PRIVATE KEY-----"));
    s
}

/// True if `out` holds any 12-byte run of the key's body.
fn leaks_key_body(out: &str) -> Option<String> {
    let re = Regex::new(r"[Qk0-9]{12,}").unwrap();
    re.find(out).map(|m| m.as_str().to_owned())
}

fn run(r: &mut StreamRedactor, input: &[u8], chunk: usize) -> String {
    let mut out = String::new();
    for c in input.chunks(chunk.max(1)) {
        out.push_str(&r.push(c));
        assert!(
            r.pending.len() <= r.window + r.batch + chunk,
            "the buffer grew past window + batch + chunk"
        );
    }
    out.push_str(&r.finish());
    out
}

/// Line-structured filler text: `n` bytes, no secrets.
fn filler(n: usize) -> String {
    let mut s = String::new();
    let mut i = 0;
    while s.len() < n {
        s.push_str(&format!("line {i} of ordinary build output\n"));
        i += 1;
    }
    s.truncate(n);
    s
}

fn secrets() -> Vec<(&'static str, String)> {
    vec![
        ("private-key", pem("RSA ", 2)),
        ("private-key", pem("", 1)),
        ("aws-access-key", "AKIAQQQQ0000QQQQ1111".into()),
        // Only the normalisation shadow sees these two: a zero-width space
        // inside the key, a fullwidth key name.
        ("aws-access-key", "AKIA\u{200b}QQQQ0000QQQQ1111".into()),
        (
            "password-assignment",
            "ｐａｓｓｗｏｒｄ=Qk0123456789QkQk".into(),
        ),
        ("github-token", format!("ghp_{}", "Qk01".repeat(9))),
        ("password-assignment", "password=Qk0123456789QkQk".into()),
        ("url-password", "postgres://u:Qk0123456789QkQk@db/x".into()),
        (
            "jwt",
            "eyJQk0123456789.eyJQk0123456789Qk.Qk0123456789Qk".into(),
        ),
    ]
}

#[test]
fn secrets_at_every_offset_and_chunk_size_are_redacted_whole() {
    let red = Redactor::builtin();
    // A small window so that every offset around every release cut is
    // reachable; the secrets are all shorter than it.
    let (window, batch) = (256, 128);
    for (class, secret) in secrets() {
        assert!(
            secret.len() < window,
            "{class}: test secret longer than the window"
        );
        // Releases come every `batch` bytes once the window is full, so
        // window + batch offsets put the secret at every position relative
        // to a cut.
        for offset in 0..(window + batch) {
            let mut text = filler(offset);
            text.push(' ');
            text.push_str(&secret);
            text.push('\n');
            text.push_str(&filler(window + 3 * batch));
            // Every offset byte by byte; other chunk sizes at every eighth
            // offset (debug-build regexes are slow).
            let sizes: &[usize] = if offset % 8 == 0 {
                &[1, 3, 64, 4096]
            } else {
                &[1]
            };
            let whole = red.redact(&text);
            for &chunk in sizes {
                let mut r = StreamRedactor::with_window(&red, window, batch);
                let out = run(&mut r, text.as_bytes(), chunk);
                assert_eq!(
                    out, whole,
                    "{class} at offset {offset}, chunks of {chunk}: streaming differs from whole-text redaction"
                );
                assert!(
                    r.classes().contains(&class.to_owned()),
                    "{class} at offset {offset}, chunks of {chunk}: not reported"
                );
            }
        }
    }
}

#[test]
fn secrets_without_line_breaks_near_them_never_leak() {
    // No newline near the cut, so cuts fall mid-text: the result may differ
    // from whole-text redaction at a word boundary, but no secret survives.
    let red = Redactor::builtin();
    let (window, batch) = (256, 128);
    for (class, secret) in secrets() {
        for offset in (0..(window + batch)).step_by(5) {
            let text = format!(
                "{}{secret} {}",
                "x ".repeat(offset / 2),
                "y ".repeat(window + batch)
            );
            for chunk in [1, 100] {
                let mut r = StreamRedactor::with_window(&red, window, batch);
                let out = run(&mut r, text.as_bytes(), chunk);
                assert_eq!(
                    leaks_key_body(&out),
                    None,
                    "{class} at offset {offset}, chunks of {chunk} leaked: {out}"
                );
            }
        }
    }
}

#[test]
fn a_real_size_key_is_redacted_at_the_real_window() {
    let red = Redactor::builtin();
    // 8192-bit RSA: about 100 lines of 64 base64 characters.
    let key = pem("RSA ", 100);
    assert!(
        key.len() < WINDOW / 2,
        "the window must hold the largest keys"
    );
    for offset in (0..3 * BATCH).step_by(4099) {
        let text = format!("{}{key}\n{}", filler(offset), filler(2 * BATCH));
        for chunk in [4096, 32 * 1024] {
            let mut r = StreamRedactor::new(&red);
            let out = run(&mut r, text.as_bytes(), chunk);
            assert_eq!(leaks_key_body(&out), None, "offset {offset}, chunk {chunk}");
            assert!(out.contains("PRIVATE_KEY_REDACTED"));
        }
    }
}

#[test]
fn an_over_long_key_is_replaced_up_to_the_cut_and_dropped_to_its_end() {
    let red = Redactor::builtin();
    let (window, batch) = (256, 128);
    let text = format!("before\n{}\nafter the key\n", pem("", 40));
    for chunk in [1, 50, 4096] {
        let mut r = StreamRedactor::with_window(&red, window, batch);
        let out = run(&mut r, text.as_bytes(), chunk);
        assert_eq!(leaks_key_body(&out), None, "chunks of {chunk}: {out}");
        assert!(out.starts_with("before\nPRIVATE_KEY_REDACTED"), "{out}");
        assert!(out.ends_with("\nafter the key\n"), "{out}");
    }
}

#[test]
fn an_unterminated_key_is_redacted_to_the_end_of_the_stream() {
    let red = Redactor::builtin();
    let mut key = pem("OPENSSH ", 30);
    key.truncate(key.find("-----END").unwrap());
    for (window, batch) in [(256, 128), (WINDOW, BATCH)] {
        for chunk in [1, 333] {
            let mut r = StreamRedactor::with_window(&red, window, batch);
            let out = run(&mut r, format!("head\n{key}").as_bytes(), chunk);
            assert_eq!(leaks_key_body(&out), None, "window {window}: {out}");
            assert_eq!(out, "head\nPRIVATE_KEY_REDACTED");
        }
    }
}

#[test]
fn an_over_long_token_is_dropped_to_the_end_of_its_line() {
    let red = Redactor::builtin();
    let text = format!("ghp_{}\nnext line\n", "Qk01".repeat(500));
    for chunk in [1, 64, 4096] {
        let mut r = StreamRedactor::with_window(&red, 256, 128);
        let out = run(&mut r, text.as_bytes(), chunk);
        assert_eq!(
            out, "GITHUB_TOKEN_REDACTED\nnext line\n",
            "chunks of {chunk}"
        );
    }
}

#[test]
fn utf8_split_across_chunks_survives_and_invalid_bytes_are_replaced() {
    let red = Redactor::builtin();
    let text = "héllo wörld ✓ 😀\n".repeat(50);
    let mut r = StreamRedactor::with_window(&red, 64, 32);
    assert_eq!(run(&mut r, text.as_bytes(), 1), text);
    let mut r = StreamRedactor::new(&red);
    assert_eq!(run(&mut r, b"a\xffb\xe2\x9c", 1), "a\u{fffd}b\u{fffd}");
}

#[test]
fn the_window_covers_every_bounded_rule() {
    let red = Redactor::builtin();
    assert_eq!(window_for(&red), WINDOW);
    for i in 0..red.rule_count() {
        let (name, pattern, _) = red.rule(i);
        if let Some(n) = max_match_len(pattern) {
            assert!(
                n <= WINDOW,
                "{name} can match {n} bytes, more than the window"
            );
        }
    }
    let big = crate::redact::PatternSpec {
        name: "huge".into(),
        regex: "HUGE[A-Z]{30000}".into(),
        placeholder: "HUGE_REDACTED".into(),
    };
    let red = Redactor::with_extra(&[big]).unwrap();
    assert!(window_for(&red) >= 30_004);
    assert!(private_key_end().is_match("-----END PGP PRIVATE KEY BLOCK-----"));
}

#[test]
fn a_keyword_that_left_the_window_still_gates_its_rule_for_the_rest_of_the_stream() {
    let red = Redactor::builtin();
    // `kubectl get secret -o yaml` with a long annotation: the data line
    // comes more than a window after `kind: Secret`.
    let mut r = StreamRedactor::new(&red);
    let lines = 2 * (r.window + r.batch) / 30 + 1;
    let filler: String = (0..lines)
        .map(|i| format!("    note-{i}: just some words here\n"))
        .collect();
    let input = format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  annotations:\n{filler}data:\n  DB_PASS: aHVudGVyMjAyNg==\n"
    );
    assert!(input.len() > 2 * (r.window + r.batch), "{}", input.len());
    for chunk in [4096, 65_536] {
        let mut r = StreamRedactor::new(&red);
        let out = run(&mut r, input.as_bytes(), chunk);
        assert!(
            !out.contains("aHVudGVyMjAyNg=="),
            "chunk {chunk}: the data line leaked"
        );
        assert!(out.contains("K8S_SECRET_REDACTED"));
        assert!(r.classes().contains(&"k8s-secret-data".to_owned()));
    }
    // The same data line in a stream that never said `kind: Secret` stays.
    let plain = format!("{filler}  DB_PASS: aHVudGVyMjAyNg==\n");
    let out = run(&mut r, plain.as_bytes(), 4096);
    assert!(out.contains("aHVudGVyMjAyNg=="));
}
