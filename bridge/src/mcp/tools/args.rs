//! What each tool takes: the argument structs (their JSON schemas are the
//! tool surface agents see), the bounds, and decoding that names the
//! offending field and its bound on every bad input.

use rmcp::model::JsonObject;
use schemars::JsonSchema;
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::mcp::service::{ActionType, Caller, SessionStatus, ToolError};
use bridge_state::auth;
use bridge_state::redact::Redactor;

pub const MAX_MESSAGE_CHARS: usize = 50_000;
pub const MAX_FILES: usize = 20;
pub const MAX_FILE_CHARS: usize = 1024;
pub const MAX_WAIT_SECONDS: u64 = 50;

/// Declares [`SessionId`]: one variant per participant slot, named as
/// `messages::sender::SESSIONS` names them (a test keeps the two in step).
macro_rules! session_ids {
    ($($v:ident = $s:literal),+ $(,)?) => {
        /// A participant's session id: "a" (the creator), "b", ... "p", in
        /// order of joining.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
        pub enum SessionId {
            $(#[serde(rename = $s)] $v,)+
        }

        impl SessionId {
            pub(crate) fn as_str(self) -> &'static str {
                match self {
                    $(Self::$v => $s,)+
                }
            }
        }
    };
}

session_ids! {
    A = "a", B = "b", C = "c", D = "d", E = "e", F = "f", G = "g", H = "h",
    I = "i", J = "j", K = "k", L = "l", M = "m", N = "n", O = "o", P = "p",
}

/// At most this many participants besides the creator at creation.
pub const MAX_INVITED: usize = 15;
/// At most this many characters in an idempotency key.
pub const MAX_IDEMPOTENCY_KEY_CHARS: usize = 64;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateConversationArgs {
    /// Your role in this collaboration, e.g. "backend_developer" (3-100 printable characters on one line).
    #[schemars(length(min = 3, max = 100))]
    pub my_role: String,
    /// For a pair: your partner's role, e.g. "frontend_developer" (3-100 printable characters on one line). Give this or `participants`, not both.
    #[serde(default)]
    #[schemars(length(min = 3, max = 100))]
    pub partner_role: Option<String>,
    /// For a team: the other participants' roles (1-15, unique, each 3-100 printable characters, none equal to my_role). They get session ids "b", "c", ... in this order. Give this or `partner_role`, not both.
    #[serde(default)]
    #[schemars(length(min = 1, max = 15))]
    pub participants: Option<Vec<String>>,
}

/// The three authentication fields every other tool takes.
macro_rules! auth_args {
    ($(#[$m:meta])* pub struct $name:ident { $($(#[$fm:meta])* pub $f:ident : $t:ty,)* }) => {
        $(#[$m])*
        #[derive(Debug, Deserialize, JsonSchema)]
        #[serde(deny_unknown_fields)]
        pub struct $name {
            /// The conversation id from create_conversation (`conv_` + 16 hex characters).
            #[schemars(regex(pattern = r"^conv_[0-9a-f]{16}$"))]
            pub conversation_id: String,
            /// Your session id: "a" (the creator), "b" (the partner), or in a team "c" to "p".
            pub session_id: SessionId,
            /// Your session token (64 hex characters). Keep it secret.
            #[schemars(regex(pattern = r"^[0-9a-f]{64}$"))]
            pub token: String,
            $($(#[$fm])* pub $f: $t,)*
        }
        impl $name {
            pub(crate) fn caller(&self) -> Result<Caller, ToolError> {
                if !auth::is_conversation_id(&self.conversation_id) {
                    return Err(ToolError::invalid("conversation_id", "must be `conv_` followed by 16 lowercase hex characters, as returned by create_conversation"));
                }
                if !auth::is_token(&self.token) {
                    return Err(ToolError::invalid("token", "must be 64 lowercase hex characters, as returned by create_conversation"));
                }
                Ok(Caller {
                    conversation_id: self.conversation_id.clone(),
                    session_id: self.session_id.as_str().to_owned(),
                    token: self.token.clone(),
                })
            }
        }
    };
}

auth_args! {
    pub struct SendArgs {
        /// The message (at most 50 000 characters). Secrets are redacted before storage.
        #[schemars(length(min = 1, max = 50000))]
        pub message: String,
        /// question, info (default), proposal, blocked or complete.
        #[serde(default)]
        pub action_type: Option<ActionType>,
        /// Paths this message is about (at most 20, each at most 1024 characters).
        #[serde(default)]
        #[schemars(length(max = 20))]
        pub files_involved: Option<Vec<String>>,
        /// Session ids to send to (default: every other participant). Unknown or repeated ids are refused.
        #[serde(default)]
        #[schemars(length(min = 1, max = 15))]
        pub to: Option<Vec<String>>,
        /// Makes a retry safe (at most 64 characters): a send with a key you used before returns the first send's message_id with duplicate: true and delivers nothing new; the same key with different content is refused.
        #[serde(default)]
        #[schemars(length(min = 1, max = 64))]
        pub idempotency_key: Option<String>,
    }
}

auth_args! {
    pub struct CheckArgs {
        /// Long poll: wait up to this many seconds (0-50, default 0) for a message to arrive.
        #[serde(default)]
        #[schemars(range(min = 0, max = 50))]
        pub wait_seconds: Option<u64>,
        /// Return messages without marking them read.
        #[serde(default)]
        pub peek: Option<bool>,
        /// Re-read every message addressed to you with an id above this, read or not (crash recovery).
        #[serde(default)]
        #[schemars(range(min = 0))]
        pub since_id: Option<i64>,
    }
}

auth_args! {
    pub struct UpdateStatusArgs {
        /// working, waiting, blocked or complete.
        pub status: SessionStatus,
    }
}

auth_args! {
    pub struct PartnerStatusArgs {
        /// Whose status: a session id. Optional in a pair; required in a team (see list_participants).
        #[serde(default)]
        pub partner: Option<SessionId>,
    }
}

auth_args! {
    pub struct InviteArgs {
        /// The new participant's role (3-100 printable characters on one line, unlike every current role).
        #[schemars(length(min = 3, max = 100))]
        pub role: String,
    }
}

auth_args! {
    pub struct ListParticipantsArgs {}
}

auth_args! {
    pub struct InboxNotifyArgs {}
}

auth_args! {
    pub struct AckArgs {
        /// Marks every message addressed to you with an id up to and including this one read.
        #[schemars(range(min = 0))]
        pub up_to_id: i64,
    }
}

auth_args! {
    pub struct ProposeArgs {
        /// The exact shell command to run in the sandbox (at most 8 KiB; run with /bin/sh -c). Printable characters, newlines and tabs only: no other control, format or invisible characters.
        #[schemars(length(min = 1, max = 8192))]
        pub command: String,
        /// Seconds before the command is killed; at most the operator's limit (default: that limit).
        #[serde(default)]
        #[schemars(range(min = 1, max = 3600))]
        pub timeout_seconds: Option<u32>,
        /// Why you want to run it; shown to the operator and your partner (at most 1000 printable characters; newlines and tabs allowed).
        #[serde(default)]
        #[schemars(length(max = 1000))]
        pub reason: Option<String>,
    }
}

auth_args! {
    pub struct ExecuteArgs {
        /// The proposal_id returned by propose_command.
        #[schemars(regex(pattern = r"^prop_[0-9a-f]{16}$"))]
        pub proposal_id: String,
        /// The single-use token the operator gave you (`apv_` + 48 hex characters).
        #[schemars(regex(pattern = r"^apv_[0-9a-f]{48}$"))]
        pub approval_token: String,
        /// Check the token without spending it or running anything.
        #[serde(default)]
        pub dry_run: Option<bool>,
    }
}

/// Decodes tool arguments, naming the offending field on failure.
///
/// The error repeats what the client sent, and it goes to the audit log:
/// secrets and token-shaped values are masked while each echo is still
/// whole (up to [`SCAN_CHARS`]), and only then cut to [`ECHO_CHARS`]. Cut
/// first, a 64-hex session token sent in the wrong field would keep 40 of
/// its characters, and a rule needing a secret's full length would miss it.
pub(crate) fn decode<T: DeserializeOwned>(
    args: Option<JsonObject>,
    red: &Redactor,
) -> Result<T, ToolError> {
    let value = serde_json::Value::Object(args.unwrap_or_default());
    let clean = |s: &str| mask_token_like(&red.redact(s));
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let inner = elide_echoes(&e.into_inner().to_string(), &clean);
        // serde names the field itself for missing/unknown fields.
        let field = if path == "." {
            field_in(&inner).unwrap_or_else(|| "arguments".into())
        } else {
            clean(&bounded(&path, SCAN_CHARS))
        };
        // A field name is the client's too (an unknown one, or a path through one).
        ToolError::invalid(bounded(&field, ECHO_CHARS), inner)
    })
}

/// How much of each echo is scanned for secrets before it is cut to
/// [`ECHO_CHARS`]: longer than any secret the redactor knows, short enough
/// that a megabyte-long field name does not cost a megabyte of scanning.
const SCAN_CHARS: usize = 4096;

/// Longest stretch of an argument's name or value that an error repeats.
const ECHO_CHARS: usize = 40;

/// serde repeats what the client sent in its errors (an unknown field's
/// name, a string sent where a number belongs), and the error goes back to
/// the client and into the audit log. Each quoted stretch (`"…"` or
/// `` `…` ``) longer than [`ECHO_CHARS`] keeps only its start, so a
/// megabyte-long field name costs a short row, not a megabyte per call.
pub(crate) fn elide_echoes(msg: &str, clean: &dyn Fn(&str) -> String) -> String {
    static QUOTED: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
        regex::Regex::new(r#""(?:[^"\\]|\\.)*"|`[^`]*`"#).expect("valid regex")
    });
    let elided = QUOTED.replace_all(msg, |c: &regex::Captures| {
        let quoted = &c[0];
        let (q, inner) = (&quoted[..1], &quoted[1..quoted.len() - 1]);
        let n = inner.chars().count();
        // Cleaned whole (as far as it is scanned), then cut.
        let shown = clean(&inner.chars().take(SCAN_CHARS).collect::<String>());
        if n <= SCAN_CHARS && shown.chars().count() <= ECHO_CHARS {
            return format!("{q}{shown}{q}");
        }
        let head: String = shown.chars().take(ECHO_CHARS).collect();
        format!("{q}{head}…{q} ({n} characters)")
    });
    // An unterminated quote (cut off by serde) is bounded as a whole, and
    // the text around the echoes is cleaned too.
    bounded(&clean(&bounded(&elided, 8 * SCAN_CHARS)), 8 * ECHO_CHARS)
}

/// `s`, cut to at most `max` characters with a note of how many were left out.
fn bounded(s: &str, max: usize) -> String {
    let n = s.chars().count();
    if n <= max {
        return s.to_owned();
    }
    let head: String = s.chars().take(max).collect();
    format!("{head}… ({} more characters)", n - max)
}

/// serde echoes argument values in its errors; one may be a token sent in
/// the wrong field. Audit rows keep the field and the problem, never a
/// token-shaped value. (Not a redactor rule: 64-hex digests are ordinary in
/// messages.)
pub(crate) fn mask_token_like(s: &str) -> String {
    static TOKENISH: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
        regex::Regex::new(r"(apv_)?[0-9A-Fa-f]{48,}").expect("valid regex")
    });
    TOKENISH.replace_all(s, "TOKEN_REDACTED").into_owned()
}

pub(crate) fn field_in(serde_msg: &str) -> Option<String> {
    let start = serde_msg.find('`')? + 1;
    let len = serde_msg[start..].find('`')?;
    Some(serde_msg[start..start + len].to_owned())
}

/// Text a person will read must be printable: a control, format or
/// invisible character could rewrite their screen or hide part of it (see
/// `untrusted`). `allowed` lists the exceptions (newline and tab in
/// multi-line fields); `what` says what the field may hold.
pub(crate) fn check_printable(
    field: &str,
    value: &str,
    allowed: &[char],
    what: &str,
) -> Result<(), ToolError> {
    match crate::untrusted::first_unprintable(value, allowed) {
        None => Ok(()),
        Some(bad) => Err(ToolError::invalid(
            field,
            format!("{bad}; {what}. Remove that character and send it again"),
        )),
    }
}

pub(crate) const MULTI_LINE: &[char] = &['\n', '\t'];

/// What a command may hold besides printable characters: newlines only.
pub(crate) const COMMAND_CHARS: &[char] = &['\n'];

pub(crate) fn check_len(field: &str, value: &str, min: usize, max: usize) -> Result<(), ToolError> {
    let n = value.chars().count();
    if n < min || n > max {
        return Err(ToolError::invalid(
            field,
            format!("must be {min} to {max} characters long (got {n})"),
        ));
    }
    Ok(())
}
