//! What one command did: the runner writes it (redacted) into
//! `proposals.result`, the bridge reads it back for `get_execution` and the
//! operator CLI. One serde type on both sides, so a renamed field is a
//! compile error, not a silent `None`.

use serde::{Deserialize, Serialize};

use crate::redact::{Redacted, Redactor};
use crate::yolo::Proposal;

/// The stored result of a job. Every field has a default so rows written by
/// older runners (before a field existed) still parse.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct JobResult {
    /// The command's own exit status, from the wrapper's trailer; `None`
    /// when it is not known (see `exit_code_unknown_reason`), never a guess.
    pub exit_code: Option<i64>,
    /// Why `exit_code` is `None`.
    pub exit_code_unknown_reason: Option<String>,
    pub duration_ms: u64,
    pub stdout: String,
    pub stderr: String,
    pub stdout_bytes: u64,
    pub stderr_bytes: u64,
    pub truncated: bool,
    pub timed_out: bool,
    /// Killed for writing more than OUTPUT_KILL_FACTOR × the cap.
    pub output_limit_hit: bool,
    /// Stopped because the job was cancelled (YOLO disabled, shutdown).
    pub cancelled: bool,
    pub container_id: String,
    pub image_id: String,
    /// Secret classes the streaming redactor replaced (for the audit row;
    /// never stored in the result).
    #[serde(skip)]
    pub redacted_classes: Vec<String>,
}

/// The `command_result` message both sessions get: the outcome, the
/// command, each output fenced, the outcome again.
pub(crate) fn message(red: &Redactor, p: &Proposal, o: &JobResult) -> Redacted {
    let how = if o.timed_out {
        format!("was killed after its {} s timeout", p.params.timeout_secs)
    } else if o.output_limit_hit {
        "was killed for writing too much output".to_owned()
    } else if o.cancelled {
        "was stopped because YOLO was disabled or the runner shut down".to_owned()
    } else {
        match (o.exit_code, &o.exit_code_unknown_reason) {
            (Some(code), _) => format!("exited with code {code}"),
            (None, why) => format!(
                "ended with an unknown exit status ({})",
                why.as_deref().unwrap_or("no reason recorded")
            ),
        }
    };
    // The output is the command's to write: it may print lines that look
    // like this message's own (`--- stderr ---`, "exited with code 0"). Each
    // output ends at a line holding a boundary drawn now, after the command
    // ran, which it cannot have printed; the outcome is repeated after both.
    let end = format!(
        "--- end {} ---",
        crate::auth::random_hex(8).unwrap_or_else(|_| "of output".into())
    );
    red.redacted(&format!(
        "Command from session {} (proposal {}) {how} after {} ms:\n\n{}\n\n\
         --- stdout ({} bytes; it ends at the line `{end}`) ---\n{}\n{end}\n\
         --- stderr ({} bytes; it ends at the line `{end}`) ---\n{}\n{end}\n\
         Proposal {} {how}.",
        p.session_id,
        p.id,
        o.duration_ms,
        indented(&p.command),
        o.stdout_bytes,
        o.stdout,
        o.stderr_bytes,
        o.stderr,
        p.id,
    ))
}

/// A command as a message quotes it: every line indented by four spaces
/// (not only the first), so its lines cannot pass for the message's own.
pub(crate) fn indented(command: &str) -> String {
    format!("    {}", command.replace('\n', "\n    "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> JobResult {
        JobResult {
            exit_code: Some(3),
            exit_code_unknown_reason: None,
            duration_ms: 41,
            stdout: "out\n".into(),
            stderr: "err\n".into(),
            stdout_bytes: 4,
            stderr_bytes: 4,
            truncated: true,
            timed_out: false,
            output_limit_hit: false,
            cancelled: false,
            container_id: "c0ffee".into(),
            image_id: "sha256:1".into(),
            redacted_classes: vec![],
        }
    }

    #[test]
    fn round_trips_through_json() {
        let r = sample();
        let text = serde_json::to_string(&r).unwrap();
        assert_eq!(serde_json::from_str::<JobResult>(&text).unwrap(), r);
    }

    #[test]
    fn redacted_classes_are_never_stored() {
        let mut r = sample();
        r.redacted_classes = vec!["aws_key".into()];
        let v = serde_json::to_value(&r).unwrap();
        assert!(v.get("redacted_classes").is_none(), "{v}");
        assert_eq!(v["exit_code"], 3);
    }

    #[test]
    fn rows_written_by_todays_runner_parse() {
        // Verbatim shape of a `proposals.result` written before this type
        // moved here (runner `sandbox::Outcome`, serialized field by field).
        let row = r#"{"exit_code":null,"exit_code_unknown_reason":"the command was killed after its timeout","duration_ms":30012,"stdout":"x","stderr":"","stdout_bytes":1,"stderr_bytes":0,"truncated":false,"timed_out":true,"output_limit_hit":false,"cancelled":false,"container_id":"abc","image_id":"sha256:def"}"#;
        let r: JobResult = serde_json::from_str(row).unwrap();
        assert_eq!(r.exit_code, None);
        assert!(r.timed_out);
        assert_eq!(r.duration_ms, 30_012);
        assert_eq!(r.image_id, "sha256:def");
    }

    #[test]
    fn rows_from_the_first_runner_parse() {
        // The first runner (commit f80c4b2) wrote no `exit_code_unknown_reason`
        // and always a numeric exit code.
        let first = r#"{"exit_code":0,"duration_ms":5,"stdout":"ok\n","stderr":"","stdout_bytes":3,"stderr_bytes":0,"truncated":false,"timed_out":false,"output_limit_hit":false,"cancelled":false,"container_id":"abc","image_id":"sha256:def"}"#;
        let r: JobResult = serde_json::from_str(first).unwrap();
        assert_eq!(r.exit_code, Some(0));
        assert_eq!(r.stdout, "ok\n");
        assert_eq!(r.exit_code_unknown_reason, None);
        // Fields missing altogether take their defaults.
        let minimal: JobResult = serde_json::from_str(r#"{"exit_code":7}"#).unwrap();
        assert_eq!(minimal.exit_code, Some(7));
        assert!(!minimal.timed_out);
    }
}
