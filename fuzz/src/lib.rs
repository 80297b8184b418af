//! Shared by the fuzz targets: a real [`Bridge`] on a throwaway database driven
//! on a paused-clock runtime, and the documented contract of every tool's
//! arguments, used as an oracle for what decoding must accept and refuse.

use std::sync::Arc;
use std::time::Duration;

use bridge::mcp::service::BridgeParts;
use bridge::{Bridge, BridgeServer};
use bridge_state::clock::{Clock, ManualClock};
use bridge_state::policy::{Mode, Policy};
use bridge_state::ratelimit::Limits;
use bridge_state::redact::Redactor;
use bridge_state::store::{Db, Sync as Durability};
use rmcp::model::{CallToolResult, JsonObject};
use serde_json::Value;

/// A database grows by an audit row per refusal; start afresh after this many
/// calls so a long run measures the code, not an ever larger SQLite file. The
/// reset happens only between inputs ([`Fixture::begin_input`]): an input
/// that sends and then reads back must see one conversation throughout.
pub const CALLS_PER_DATABASE: u64 = 20_000;

/// The reply to a well-formed call whose token is wrong: an authentication
/// refusal, never a decoding one.
pub const UNAUTHORIZED: &str = "invalid or expired session token";

/// The mode the fixture's conversation runs proposals in.
pub const YOLO_MODE: Mode = Mode::Restricted;

/// A bridge with YOLO on (so every tool decodes) on a fresh temporary
/// database, and one conversation, YOLO-enabled in [`YOLO_MODE`] as an
/// operator would, whose ids the JSON-RPC target splices in.
pub struct Fixture {
    pub bridge: Bridge,
    pub server: BridgeServer,
    pub conversation_id: String,
    pub token_a: String,
    pub token_b: String,
    clock: ManualClock,
    runtime: tokio::runtime::Runtime,
    calls: u64,
    reset_every: u64,
    _dir: tempfile::TempDir,
}

impl Fixture {
    pub fn new() -> Self {
        Self::with_reset_interval(CALLS_PER_DATABASE)
    }

    /// A fixture that starts afresh at the first input boundary after
    /// `reset_every` calls (tests use a tiny interval).
    pub fn with_reset_interval(reset_every: u64) -> Self {
        // Paused time: a `check_messages` long poll of 50 s finishes as soon
        // as the runtime is idle, instead of stalling the fuzzer.
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .expect("tokio runtime");
        let dir = tempfile::tempdir().expect("temporary directory");
        let db = Db::open(&dir.path().join("fuzz.db"), Durability::Normal).expect("open database");
        let clock = ManualClock::at(1_800_000_000_000);
        let bridge = Bridge::new(BridgeParts {
            db,
            secret: bridge_state::auth::ServerSecret::ephemeral().expect("random secret"),
            redactor: Redactor::builtin(),
            limits: Limits::default(),
            conversation_ttl: Duration::from_secs(86_400),
            clock: Arc::new(clock.clone()),
            yolo: Some(Policy::builtin()),
            // The oracles judge answers, not throttling: a frozen clock would
            // otherwise turn every later wrong token into "retry in N s".
            quotas: bridge::mcp::throttle::Quotas::unlimited(),
        });
        let server = BridgeServer::new(bridge.clone());
        let args = serde_json::json!({"my_role": "fuzzer_a", "partner_role": "fuzzer_b"});
        let created = runtime
            .block_on(server.dispatch(
                "create_conversation",
                args.as_object().cloned(),
                Default::default(),
            ))
            .expect("create_conversation is a known tool");
        let created = created.structured_content.expect("structured result");
        let field = |k: &str| created[k].as_str().expect("created field").to_owned();
        let conversation_id = field("conversation_id");
        let settings = bridge_state::yolo::Settings {
            mode: YOLO_MODE,
            workspace: None,
            workspace_rw: false,
            image: "bridge-sandbox:fuzz".into(),
            runtime: None,
            timeout_secs: 600,
            limits: Default::default(),
        };
        let now = clock.now_ms();
        bridge
            .db()
            .call_blocking(|conn| {
                let day = 86_400_000;
                bridge_state::yolo::enable(
                    conn,
                    bridge.redactor(),
                    &conversation_id,
                    &settings,
                    day,
                    now,
                )
            })
            .expect("enable YOLO");
        Self {
            conversation_id,
            token_a: field("session_a_token"),
            token_b: field("session_b_token"),
            bridge,
            server,
            clock,
            runtime,
            calls: 0,
            reset_every: reset_every.max(1),
            _dir: dir,
        }
    }

    /// Called by a target before each input: starts afresh (a new database
    /// and conversation) once the interval has passed. Never called inside an
    /// input, so the ids an input was spliced with stay valid to its end.
    pub fn begin_input(&mut self) {
        if self.calls >= self.reset_every {
            *self = Self::with_reset_interval(self.reset_every);
        }
    }

    /// Runs one tool call exactly as the MCP handler does, one second of
    /// bridge time after the previous one (rate windows and expiry move).
    pub fn call(
        &mut self,
        name: &str,
        args: Option<JsonObject>,
    ) -> Result<CallToolResult, rmcp::ErrorData> {
        self.calls += 1;
        self.clock.advance_secs(1);
        let work = self.server.dispatch(name, args, Default::default());
        self.runtime.block_on(work)
    }
}

impl Default for Fixture {
    fn default() -> Self {
        Self::new()
    }
}

/// The text of a tool result's first content block.
pub fn first_text(result: &CallToolResult) -> String {
    result
        .content
        .first()
        .and_then(|c| c.as_text())
        .map(|t| t.text.clone())
        .unwrap_or_default()
}

/// What one argument must look like, as the tool schemas document it.
#[derive(Debug, Clone, Copy)]
pub enum Shape {
    /// A string of `min..=max` characters.
    Chars(usize, usize),
    /// `min..=max` characters a terminal prints as themselves, on one line
    /// (roles): nothing `bridge::untrusted::is_unprintable` flags.
    Printable(usize, usize),
    /// `min..=max` printable characters, newlines and tabs allowed (reason).
    Text(usize, usize),
    /// `conv_` + 16 lowercase hex.
    ConversationId,
    /// A session id, `a` to `p`.
    Session,
    /// `min..=max` session ids (`to`).
    Sessions(usize, usize),
    /// 1..=15 roles, each printable, 3..=100 characters (`participants`).
    Roles,
    /// 64 lowercase hex.
    Token,
    /// One of these strings.
    OneOf(&'static [&'static str]),
    /// At most 20 strings of 1..=1024 characters.
    Files,
    /// An unsigned integer no larger than this.
    UpTo(u64),
    /// A non-negative integer that fits i64.
    NonNegative,
    Bool,
    /// Not blank, at most 8 KiB, printable characters, newlines and tabs.
    Command,
    /// `prop_` + 16 lowercase hex.
    ProposalId,
    /// `apv_` + 48 lowercase hex.
    ApprovalToken,
}

/// (argument, shape, required). Optional arguments also accept `null`.
type Contract = &'static [(&'static str, Shape, bool)];

const AUTH: Contract = &[
    ("conversation_id", Shape::ConversationId, true),
    ("session_id", Shape::Session, true),
    ("token", Shape::Token, true),
];

/// Every tool and its arguments beyond the three authentication fields
/// (`create_conversation` has none of those).
pub const TOOLS: &[(&str, Contract)] = &[
    (
        "create_conversation",
        &[
            ("my_role", Shape::Printable(3, 100), true),
            // Exactly one of these two, roles unique: see `cross_field_refuses`.
            ("partner_role", Shape::Printable(3, 100), false),
            ("participants", Shape::Roles, false),
        ],
    ),
    (
        "send_to_partner",
        &[
            ("message", Shape::Chars(1, 50_000), true),
            (
                "action_type",
                Shape::OneOf(&["question", "info", "proposal", "blocked", "complete"]),
                false,
            ),
            ("files_involved", Shape::Files, false),
            ("to", Shape::Sessions(1, 15), false),
            ("idempotency_key", Shape::Chars(1, 64), false),
        ],
    ),
    (
        "check_messages",
        &[
            ("wait_seconds", Shape::UpTo(50), false),
            ("peek", Shape::Bool, false),
            ("since_id", Shape::NonNegative, false),
        ],
    ),
    (
        "update_my_status",
        &[(
            "status",
            Shape::OneOf(&["working", "waiting", "blocked", "complete"]),
            true,
        )],
    ),
    (
        "check_partner_status",
        &[("partner", Shape::Session, false)],
    ),
    ("ack_messages", &[("up_to_id", Shape::NonNegative, true)]),
    (
        "invite_participant",
        &[("role", Shape::Printable(3, 100), true)],
    ),
    ("list_participants", &[]),
    ("inbox_notify", &[]),
    (
        "propose_command",
        &[
            ("command", Shape::Command, true),
            ("timeout_seconds", Shape::UpTo(u32::MAX as u64), false),
            ("reason", Shape::Text(0, 1000), false),
        ],
    ),
    (
        "execute_command",
        &[
            ("proposal_id", Shape::ProposalId, true),
            ("approval_token", Shape::ApprovalToken, true),
            ("dry_run", Shape::Bool, false),
        ],
    ),
];

/// The arguments `tool` takes, authentication fields included; None for an
/// unknown tool.
pub fn arguments_of(tool: &str) -> Option<Vec<&'static str>> {
    let (_, own) = TOOLS.iter().find(|(t, _)| *t == tool)?;
    let auth = if tool == "create_conversation" {
        &[][..]
    } else {
        AUTH
    };
    Some(auth.iter().chain(own.iter()).map(|f| f.0).collect())
}

/// Whether the documented contract refuses `args` for `tool` (None for an
/// unknown tool): an unknown or missing argument, or one of the wrong shape.
pub fn contract_refuses(tool: &str, args: &JsonObject) -> Option<bool> {
    let (_, own) = TOOLS.iter().find(|(t, _)| *t == tool)?;
    let auth = if tool == "create_conversation" {
        &[][..]
    } else {
        AUTH
    };
    let fields: Vec<_> = auth.iter().chain(own.iter()).collect();
    let unknown = args.keys().any(|k| !fields.iter().any(|f| f.0 == k));
    let bad = fields
        .iter()
        .any(|&&(name, shape, required)| match args.get(name) {
            None => required,
            Some(Value::Null) if !required => false,
            Some(v) => !fits(shape, v),
        });
    Some(unknown || bad || cross_field_refuses(tool, args))
}

/// The rules that span arguments: a conversation is created with either
/// `partner_role` or `participants` (not both, not neither), and a team's
/// roles are unique, none equal to `my_role`.
fn cross_field_refuses(tool: &str, args: &JsonObject) -> bool {
    if tool != "create_conversation" {
        return false;
    }
    let given = |k: &str| args.get(k).is_some_and(|v| !v.is_null());
    let mut roles: Vec<&str> = args
        .get("my_role")
        .and_then(Value::as_str)
        .into_iter()
        .collect();
    match (given("partner_role"), given("participants")) {
        // A pair may have two equal roles, as before teams.
        (true, false) => return false,
        (false, true) => roles.extend(
            args.get("participants")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str),
        ),
        _ => return true,
    }
    (1..roles.len()).any(|i| roles[..i].contains(&roles[i]))
}

fn fits(shape: Shape, v: &Value) -> bool {
    let hex = |s: &str, n: usize| {
        s.len() == n && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    };
    let chars = |s: &str, min: usize, max: usize| (min..=max).contains(&s.chars().count());
    let printable = |s: &str, allowed: &[char]| {
        s.chars()
            .all(|c| allowed.contains(&c) || !bridge::untrusted::is_unprintable(c))
    };
    match (shape, v) {
        (Shape::Chars(min, max), Value::String(s)) => chars(s, min, max),
        (Shape::Printable(min, max), Value::String(s)) => chars(s, min, max) && printable(s, &[]),
        (Shape::Text(min, max), Value::String(s)) => {
            chars(s, min, max) && printable(s, &['\n', '\t'])
        }
        (Shape::ConversationId, Value::String(s)) => {
            s.strip_prefix("conv_").is_some_and(|h| hex(h, 16))
        }
        // serde also reads a unit variant from `{"name": null}`; the schemas say string only,
        // but it is harmless (the same variant results), so the oracle accepts it too.
        (Shape::Session | Shape::OneOf(_), Value::Object(m)) if m.len() == 1 => {
            let (name, unit) = m.iter().next().expect("one entry");
            unit.is_null() && fits(shape, &Value::String(name.clone()))
        }
        (Shape::Session, Value::String(s)) => bridge_state::messages::sender::is_session(s),
        (Shape::Sessions(min, max), Value::Array(items)) => {
            (min..=max).contains(&items.len())
                && items.iter().all(|i| {
                    i.as_str()
                        .is_some_and(bridge_state::messages::sender::is_session)
                })
        }
        (Shape::Roles, Value::Array(items)) => {
            (1..=15).contains(&items.len())
                && items.iter().all(|i| {
                    i.as_str()
                        .is_some_and(|s| chars(s, 3, 100) && printable(s, &[]))
                })
        }
        (Shape::Token, Value::String(s)) => hex(s, 64),
        (Shape::OneOf(names), Value::String(s)) => names.contains(&s.as_str()),
        (Shape::Files, Value::Array(items)) => {
            items.len() <= 20
                && items
                    .iter()
                    .all(|i| i.as_str().is_some_and(|s| chars(s, 1, 1024)))
        }
        (Shape::UpTo(max), Value::Number(n)) => n.as_u64().is_some_and(|n| n <= max),
        (Shape::NonNegative, Value::Number(n)) => n.as_i64().is_some_and(|n| n >= 0),
        (Shape::Bool, Value::Bool(_)) => true,
        (Shape::Command, Value::String(s)) => {
            !s.trim().is_empty() && s.len() <= 8192 && printable(s, &['\n'])
        }
        (Shape::ProposalId, Value::String(s)) => {
            s.strip_prefix("prop_").is_some_and(|h| hex(h, 16))
        }
        (Shape::ApprovalToken, Value::String(s)) => {
            s.strip_prefix("apv_").is_some_and(|h| hex(h, 48))
        }
        _ => false,
    }
}

/// Properties every answer to a tool call has, whatever the input:
/// protocol errors only for unknown tools; a refusal says something; a
/// decoding refusal names an argument the tool has or the caller sent.
pub fn check_answer(
    tool: &str,
    args: Option<&JsonObject>,
    answer: &Result<CallToolResult, rmcp::ErrorData>,
) {
    let Some(known) = arguments_of(tool) else {
        let err = answer
            .as_ref()
            .expect_err("an unknown tool is a protocol error");
        assert!(err.message.contains("unknown tool"), "{err:?}");
        return;
    };
    let result = answer
        .as_ref()
        .unwrap_or_else(|e| panic!("known tool {tool} gave a protocol error: {e:?}"));
    let text = first_text(result);
    if result.is_error != Some(true) {
        return;
    }
    assert!(!text.trim().is_empty(), "{tool}: empty refusal");
    if let Some(rest) = text.strip_prefix("invalid argument `") {
        let (field, problem) = rest
            .split_once("`: ")
            .unwrap_or_else(|| panic!("{tool}: malformed refusal {text:?}"));
        assert!(
            !problem.trim().is_empty(),
            "{tool}: no problem stated in {text:?}"
        );
        // An unknown argument is named as sent; a known one may carry a
        // path (`files_involved[3]`), whose root is the argument.
        let root = field.split(['[', '.']).next().unwrap_or_default();
        // A long name is repeated only in part: its start, then `…`. A
        // secret or token-shaped stretch in it is masked (`…REDACTED`), so
        // only what comes before the first mask is the name as sent.
        let head = match field.find("REDACTED") {
            Some(at) => Some(field[..at].trim_end_matches(|c: char| {
                c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'
            })),
            None => field.split_once('…').map(|(head, _)| head),
        };
        let sent = args.is_some_and(|a| {
            a.contains_key(field) || head.is_some_and(|h| a.keys().any(|k| k.starts_with(h)))
        });
        assert!(
            known.contains(&root) || sent || field == "arguments",
            "{tool}: refusal names `{field}`, which is neither an argument of the tool nor one sent: {text:?}"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn args(v: Value) -> Option<JsonObject> {
        v.as_object().cloned()
    }

    /// The CI flake: with the reset inside `call`, a reset falling between a
    /// send and the partner's read-back made the read use the old
    /// conversation's ids ("invalid or expired session token"). With an
    /// interval of 2 every input below would straddle a reset.
    #[test]
    fn a_reset_never_falls_inside_an_input() {
        let mut f = Fixture::with_reset_interval(2);
        for round in 0..4 {
            f.begin_input();
            let conv = f.conversation_id.clone();
            let sent = f
                .call(
                    "send_to_partner",
                    args(json!({"conversation_id": conv, "session_id": "a",
                                "token": f.token_a, "message": format!("hello {round}")})),
                )
                .expect("known tool");
            assert_ne!(sent.is_error, Some(true), "{}", first_text(&sent));
            for _ in 0..3 {
                let read = f
                    .call(
                        "check_messages",
                        args(json!({"conversation_id": conv, "session_id": "b",
                                    "token": f.token_b, "peek": true})),
                    )
                    .expect("known tool");
                assert_ne!(
                    read.is_error,
                    Some(true),
                    "round {round}: {}",
                    first_text(&read)
                );
                assert_eq!(
                    f.conversation_id, conv,
                    "the fixture was replaced inside an input"
                );
            }
        }
    }

    #[test]
    fn the_fixture_starts_afresh_between_inputs_after_the_interval() {
        let mut f = Fixture::with_reset_interval(3);
        let first = f.conversation_id.clone();
        for _ in 0..2 {
            f.call("check_partner_status", args(json!({})))
                .expect("known tool");
        }
        f.begin_input();
        assert_eq!(f.conversation_id, first, "reset before the interval passed");
        f.call("check_partner_status", args(json!({})))
            .expect("known tool");
        f.begin_input();
        assert_ne!(
            f.conversation_id, first,
            "no reset after the interval passed"
        );
    }
}
