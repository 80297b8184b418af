//! Diagnostic logs that cannot hold a secret, whatever the level.
//!
//! Both binaries log through [`init`], whose writer redacts every formatted
//! event before it reaches stderr. That is structural: it covers our own
//! events, rmcp's `trace`/`debug` dumps of whole JSON-RPC requests and
//! responses, span fields, and anything a future dependency prints, at every
//! level and under either `BRIDGE_LOG`/`RUNNER_LOG` or `RUST_LOG`.
//!
//! Redaction runs in two passes over each event:
//! 1. **By field name.** The value after a key named `token`, `*_token`
//!    (`approval_token`, `session_a_token`, …), `code`, `*_code` for
//!    one-time codes, `*secret`, or `authorization` is replaced, in every
//!    spelling a log line can carry: `token=…`, `token: "…"`,
//!    `"token":"…"`, `\"token\":\"…\"` (JSON inside a debug-printed string)
//!    and `"token": String("…")` (a debug-printed `serde_json::Value`).
//!    Session tokens are 64 hex characters, the shape of the SHA-256 sums
//!    that content redaction must leave alone, so only their key can find
//!    them.
//! 2. **By content**, with the same [`Redactor`] the store uses (and its
//!    operator patterns once [`use_redactor`] installs them), so an AWS key
//!    in a message body is replaced wherever it is printed.

use std::io::Write;
use std::sync::OnceLock;

use regex::{Captures, Regex};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

use crate::redact::Redactor;

/// What replaces a value found by its field name.
pub const PLACEHOLDER: &str = "SECRET_REDACTED";

static REDACTOR: OnceLock<Redactor> = OnceLock::new();

/// Installs the tracing subscriber: `var` (e.g. `BRIDGE_LOG`), else
/// `RUST_LOG`, else `default`, written to stderr through the redactor.
pub fn init(var: &str, default: &str) {
    let filter = EnvFilter::try_from_env(var)
        .or_else(|_| EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_writer(RedactingStderr)
        // Colour codes between a key and its value would hide the key.
        .with_ansi(false)
        .with_env_filter(filter)
        .init();
}

/// Uses the operator's redactor (built-ins plus configured patterns) for
/// the content pass from now on; until then the built-ins apply.
pub fn use_redactor(redactor: Redactor) {
    let _ = REDACTOR.set(redactor);
}

/// Which values a field rule leaves alone.
#[derive(Debug, Clone, Copy)]
enum Keep {
    Nothing,
    /// JSON-RPC error codes (`"code": -32602`) stay readable.
    Numbers,
    /// Values no longer than an id.
    ShortIds,
}

fn field_rules() -> &'static [(Regex, Keep)] {
    static RULES: OnceLock<Vec<(Regex, Keep)>> = OnceLock::new();
    RULES.get_or_init(|| {
        vec![
            (
                // key, then the separator in any quoting, then the value.
                Regex::new(
                    r#"(?i)(?P<key>(?-u:\b)(?:[a-z_]*token|code|[a-z_]*_code|[a-z_]*secret|authorization|password)(?-u:\b))(?P<sep>(?:\\*")?\s*[:=]\s*(?:String\(|Some\()?\s*(?:\\*")?(?:bearer\s+)?)(?P<val>[^"\\\s,;)}\]]+)"#,
                )
                .expect("field-name redaction regex compiles (covered by tests)"),
                Keep::Numbers,
            ),
            (
                Regex::new(r#"(?i)(?P<key>(?-u:\b)bearer)(?P<sep>\s+)(?P<val>[^"\\\s,;)}\]]+)"#)
                    .expect("bearer redaction regex compiles (covered by tests)"),
                Keep::Nothing,
            ),
            (
                // An id field holding something far longer than any id
                // (conversation and proposal ids are 21 characters) is a
                // token pasted into the wrong field.
                Regex::new(
                    r#"(?i)(?P<key>(?-u:\b)(?:conversation_id|session_id|proposal_id)(?-u:\b))(?P<sep>(?:\\*")?\s*[:=]\s*(?:String\(|Some\()?\s*(?:\\*")?)(?P<val>[^"\\\s,;)}\]]+)"#,
                )
                .expect("id redaction regex compiles (covered by tests)"),
                Keep::ShortIds,
            ),
        ]
    })
}

/// Redacts one formatted log event (see the module docs).
pub fn redact_line(line: &str) -> String {
    let mut out = line.to_owned();
    for (re, keep) in field_rules() {
        out = re
            .replace_all(&out, |c: &Captures| {
                let val = &c["val"];
                let kept = match keep {
                    Keep::Nothing => false,
                    Keep::Numbers => is_number(val),
                    Keep::ShortIds => val.len() <= 24,
                };
                if kept || val == PLACEHOLDER {
                    c[0].to_owned()
                } else {
                    format!("{}{}{PLACEHOLDER}", &c["key"], &c["sep"])
                }
            })
            .into_owned();
    }
    // YOLO approval tokens have their own prefix, so they are found anywhere.
    static APPROVAL: OnceLock<Regex> = OnceLock::new();
    let approval = APPROVAL.get_or_init(|| {
        Regex::new(r"(?-u:\b)apv_[0-9a-f]{16,}").expect("approval-token regex compiles")
    });
    let out = approval.replace_all(&out, PLACEHOLDER);
    let redactor = REDACTOR.get_or_init(Redactor::builtin);
    redactor.redact(&out).into_owned()
}

fn is_number(s: &str) -> bool {
    let digits = s.strip_prefix('-').unwrap_or(s);
    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
}

/// A `MakeWriter` whose writer buffers one event and writes it, redacted,
/// to stderr when dropped (the fmt layer writes each event through a fresh
/// writer, so one buffer is one whole event, even a multi-line one).
#[derive(Debug, Clone, Copy, Default)]
pub struct RedactingStderr;

impl<'a> MakeWriter<'a> for RedactingStderr {
    type Writer = EventBuffer;
    fn make_writer(&'a self) -> Self::Writer {
        EventBuffer(Vec::new())
    }
}

/// An event as one line: a line break or carriage return inside it (from
/// an engine's error text, say) is written as `\n` or `\r`, so no field can
/// start a log line of its own; the event's own final newline stays.
fn one_line(event: &str) -> String {
    let (body, end) = match event.strip_suffix('\n') {
        Some(body) => (body, "\n"),
        None => (event, ""),
    };
    if !body.contains(['\n', '\r']) {
        return event.to_owned();
    }
    format!("{}{end}", body.replace('\r', "\\r").replace('\n', "\\n"))
}

/// One event on its way to stderr.
#[derive(Debug)]
pub struct EventBuffer(Vec<u8>);

impl Write for EventBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for EventBuffer {
    fn drop(&mut self) {
        if self.0.is_empty() {
            return;
        }
        let clean = one_line(&redact_line(&String::from_utf8_lossy(&self.0)));
        // Nowhere to report a failed write to stderr.
        let _ = std::io::stderr().lock().write_all(clean.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOK: &str = "3f1c9a0b7e2d4c6f8a1b3c5d7e9f0a2b4c6d8e0f1a3b5c7d9e1f2a4b6c8d0e2f";

    #[test]
    fn an_event_is_one_line_whatever_its_fields_hold() {
        // An engine's error text that would forge a second log line.
        let event = "WARN could not remove container error=gone\r\nINFO runner: job done ok\n";
        assert_eq!(
            one_line(event),
            "WARN could not remove container error=gone\\r\\nINFO runner: job done ok\n"
        );
        assert_eq!(one_line("plain event\n"), "plain event\n");
        assert_eq!(one_line("no newline"), "no newline");
    }

    #[test]
    fn values_are_found_by_field_name_in_every_spelling() {
        let cases = [
            format!("token={TOK} next=1"),
            format!("token=\"{TOK}\""),
            format!(
                "Caller {{ conversation_id: \"conv_1\", session_id: \"a\", token: \"{TOK}\" }}"
            ),
            format!("{{\"token\":\"{TOK}\"}}"),
            format!("{{\"session_a_token\": \"{TOK}\", \"session_b_token\":\"{TOK}\"}}"),
            format!("text: \"{{\\\"session_b_token\\\":\\\"{TOK}\\\"}}\""),
            format!("text: \"{{\\\\\\\"approval_token\\\\\\\":\\\\\\\"{TOK}\\\\\\\"}}\""),
            format!("Object {{\"token\": String(\"{TOK}\"), \"x\": Number(1)}}"),
            format!("arguments: Some(Object {{\"approval_token\": String(\n    \"{TOK}\",\n)}})"),
            format!("authorization: \"Bearer {TOK}\""),
            format!("headers: {{\"authorization\": \"Bearer {TOK}\"}}"),
            format!("TOKEN={TOK}"),
        ];
        for line in &cases {
            let out = redact_line(line);
            assert!(!out.contains(TOK), "{line} -> {out}");
            assert!(out.contains("_REDACTED"), "{line} -> {out}");
        }
    }

    #[test]
    fn one_time_codes_go_but_error_codes_and_digests_stay() {
        let out = redact_line(r#"code="K7QP-3XMA" one_time_code=ABCD-EFGH"#);
        assert!(!out.contains("K7QP") && !out.contains("ABCD"), "{out}");
        let rpc = r#"{"code":-32602,"message":"bad"} exit_code=3"#;
        assert_eq!(redact_line(rpc), rpc);
        // A SHA-256 sum under another name is not a secret.
        let sum = format!("proposal_hash={TOK} sha256:{TOK}");
        assert_eq!(redact_line(&sum), sum);
        // Words that merely contain the key names are left alone.
        let plain = "max_tokens=5 CancellationToken { is_cancelled: false } unicode: yes";
        assert_eq!(redact_line(plain), plain);
    }

    #[test]
    fn content_redaction_runs_over_free_text() {
        let out = redact_line("message: \"my key AKIAIOSFODNN7EXAMPLE ok\"");
        assert!(!out.contains("AKIAIOSFODNN7EXAMPLE"), "{out}");
        let misplaced =
            format!("{{\"conversation_id\": String(\"{TOK}\"), \"session_id\": \"a\"}}");
        let out = redact_line(&misplaced);
        assert!(!out.contains(TOK), "{out}");
        let fine =
            "conversation_id=conv_0123456789abcdef proposal_id=prop_0123456789abcdef session_id=b";
        assert_eq!(redact_line(fine), fine);
        let apv = format!("pasted apv_{}", "ab".repeat(24));
        assert!(!redact_line(&apv).contains("abab"), "{apv}");
    }

    #[test]
    fn redaction_is_stable_when_applied_twice() {
        let once = redact_line(&format!("token={TOK} {{\"code\": \"K7QP-3XMA\"}}"));
        assert_eq!(redact_line(&once), once);
    }
}
