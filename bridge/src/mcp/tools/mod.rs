//! The MCP face of the bridge: tool definitions, argument decoding and
//! validation, and the mapping of outcomes to tool results. Here: the
//! server for one client connection ([`BridgeServer`]), the tool list, the
//! dispatcher that authenticates, throttles and audits every call; in
//! [`args`] what each tool takes, in `calls` each tool's own step.
//!
//! Tool names and argument names match the original Python bridge so existing
//! agent prompts keep working. Arguments are decoded here rather than by
//! rmcp's `Parameters<T>` so that every bad input gets an error naming the
//! field and its bound, and is audited like any other refusal. Refusals are
//! tool results with `isError: true` (the agent reads them); only protocol
//! faults (unknown tool) are JSON-RPC errors.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation,
    JsonObject, ListToolsResult, PaginatedRequestParams, ServerCapabilities, ServerConfig, Tool,
    ToolAnnotations,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData as McpError, RoleServer, ServerHandler};

use crate::mcp::execution::{Execution, Proposed};
use crate::mcp::service::{
    Acked, Bridge, Caller, Created, Inbox, MyStatus, Notified, Participants, PartnerStatus, Sent,
    SessionGrant, ToolError,
};
use crate::mcp::throttle::{Gate, Key, Ticket};
use bridge_state::auth;
use bridge_state::messages::sender;

pub mod args;
mod calls;
mod in_flight;

use args::*;
pub use args::{MAX_FILE_CHARS, MAX_FILES, MAX_MESSAGE_CHARS, MAX_WAIT_SECONDS};
use in_flight::{CallSlot, MAX_CALLS_IN_FLIGHT};

/// The MCP server for one client connection. Cheap to clone.
#[derive(Clone)]
pub struct BridgeServer {
    bridge: Bridge,
    drain: tokio_util::sync::CancellationToken,
    tracker: tokio_util::task::TaskTracker,
    /// This connection's identity for per-client limits: an stdio server
    /// has one connection, an HTTP server one per MCP session.
    client: u64,
    /// This connection's tool calls in flight (see [`MAX_CALLS_IN_FLIGHT`]).
    calls: Arc<AtomicUsize>,
}

/// Numbers connections within this process.
static NEXT_CLIENT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

impl BridgeServer {
    pub fn new(bridge: Bridge) -> Self {
        Self {
            bridge,
            drain: Default::default(),
            tracker: Default::default(),
            client: NEXT_CLIENT.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            calls: Arc::default(),
        }
    }

    /// How audit rows name this connection (and its peer, over HTTP).
    fn client_label(&self, peer: Option<IpAddr>) -> String {
        match peer {
            Some(ip) => format!(
                "client {} of pid {} from {ip}",
                self.client,
                std::process::id()
            ),
            None => format!("client {} of pid {}", self.client, std::process::id()),
        }
    }

    /// Shares the HTTP server's shutdown drain: `drain` ends long polls,
    /// `tracker` counts calls in flight.
    pub fn draining(
        mut self,
        drain: tokio_util::sync::CancellationToken,
        tracker: tokio_util::task::TaskTracker,
    ) -> Self {
        self.drain = drain;
        self.tracker = tracker;
        self
    }

    /// The tools this server offers: the YOLO tools only when the operator
    /// started it with YOLO on.
    pub fn tools_for(&self) -> Vec<Tool> {
        let mut tools = Self::tools();
        if self.bridge.yolo_policy().is_some() {
            tools.extend(Self::yolo_tools());
        }
        tools
    }

    pub fn yolo_tools() -> Vec<Tool> {
        vec![
            Tool::new(
                "propose_command",
                "Propose a shell command to run in a throwaway, network-less sandbox container. Nothing runs until a human operator approves it on their terminal. Then either the operator runs it for you (their console): wait for the command_result message with check_messages and wait_seconds; or the operator gives you a single-use approval token: call execute_command with it.",
                JsonObject::new(),
            )
            .with_input_schema::<ProposeArgs>()
            .with_output_schema::<Proposed>(),
            Tool::new(
                "execute_command",
                "Run your own approved proposal (only the session that proposed it may) with the single-use approval token the operator gave you. Not needed when the operator ran it from their console: its result arrives as a command_result message. Returns the result (exit code, output) when it finishes in time, else the job id; the result also arrives to every participant as a command_result message. dry_run checks the token without spending it.",
                JsonObject::new(),
            )
            .with_input_schema::<ExecuteArgs>()
            .with_output_schema::<Execution>()
            .with_annotations(ToolAnnotations::new().destructive(true)),
        ]
    }

    pub fn tools() -> Vec<Tool> {
        let read_only = ToolAnnotations::new().read_only(true).destructive(false);
        vec![
            Tool::new(
                "create_conversation",
                "Start a conversation: with partner_role, between you and one partner (sessions \"a\" and \"b\"); with participants, a team of up to 16 (you are \"a\", the others \"b\", \"c\", ... in order). Returns the conversation id and one secret token per participant (shown once). Keep your token; give each participant theirs.",
                JsonObject::new(),
            )
            .with_input_schema::<CreateConversationArgs>()
            .with_output_schema::<Created>(),
            Tool::new(
                "send_to_partner",
                "Send a message to every other participant, or to those named in `to`. Secrets (API keys, private keys, passwords, tokens) are redacted before storage. Pass idempotency_key to make a retry after a lost answer safe. Rate limited per session.",
                JsonObject::new(),
            )
            .with_input_schema::<SendArgs>()
            .with_output_schema::<Sent>(),
            Tool::new(
                "check_messages",
                "Read messages addressed to you, oldest first, marking them read. Use wait_seconds (up to 50) to long-poll instead of polling on a timer: the call returns as soon as a message arrives. To lose nothing if you crash mid-task, use peek: true, act on the messages, then call ack_messages with the last id.",
                JsonObject::new(),
            )
            .with_input_schema::<CheckArgs>()
            .with_output_schema::<Inbox>(),
            Tool::new(
                "ack_messages",
                "Mark every message addressed to you up to up_to_id read. Use it after check_messages with peek: true once you have acted on them; check_messages without peek marks as it returns instead.",
                JsonObject::new(),
            )
            .with_input_schema::<AckArgs>()
            .with_output_schema::<Acked>(),
            Tool::new(
                "update_my_status",
                "Set your status (working, waiting, blocked, complete); also records a heartbeat.",
                JsonObject::new(),
            )
            .with_input_schema::<UpdateStatusArgs>()
            .with_output_schema::<MyStatus>(),
            Tool::new(
                "check_partner_status",
                "A partner's last status and heartbeat; alive means a heartbeat within 120 s. In a team, name the participant with `partner`.",
                JsonObject::new(),
            )
            .with_input_schema::<PartnerStatusArgs>()
            .with_output_schema::<PartnerStatus>()
            .with_annotations(read_only.clone()),
            Tool::new(
                "invite_participant",
                "Add a participant with a new role (creator \"a\" only; at most 16 participants). Returns its session id and token, shown once: hand the token to that agent only.",
                JsonObject::new(),
            )
            .with_input_schema::<InviteArgs>()
            .with_output_schema::<SessionGrant>(),
            Tool::new(
                "list_participants",
                "Every participant of the conversation: session id, role, status, last heartbeat and whether it is alive.",
                JsonObject::new(),
            )
            .with_input_schema::<ListParticipantsArgs>()
            .with_output_schema::<Participants>()
            .with_annotations(read_only),
            Tool::new(
                "inbox_notify",
                "For hooks (`bridge inbox --url`), not needed by agents: who sent you what kind of message since the last inbox_notify, each message once, never its text. Marks nothing read; read with check_messages.",
                JsonObject::new(),
            )
            .with_input_schema::<InboxNotifyArgs>()
            .with_output_schema::<Notified>()
            .with_annotations(ToolAnnotations::new().read_only(false).destructive(false)),
        ]
    }

    /// Runs one tool call; shared by the MCP handler and the demo.
    pub async fn dispatch(
        &self,
        name: &str,
        args: Option<JsonObject>,
        cancel: tokio_util::sync::CancellationToken,
    ) -> Result<CallToolResult, McpError> {
        self.dispatch_from(name, args, cancel, None).await
    }

    /// [`Self::dispatch`] for a client at `peer` (HTTP, when known).
    pub async fn dispatch_from(
        &self,
        name: &str,
        args: Option<JsonObject>,
        cancel: tokio_util::sync::CancellationToken,
        peer: Option<IpAddr>,
    ) -> Result<CallToolResult, McpError> {
        // Who the caller claims to be, for auditing refusals of bad input.
        // Claimed ids are recorded only when well-formed: a malformed one
        // may be a token sent in the wrong field.
        let claimed = args.as_ref().map(|a| {
            let conv = a
                .get("conversation_id")
                .and_then(|v| v.as_str())
                .filter(|v| auth::is_conversation_id(v))
                .map(str::to_owned);
            let sess = a
                .get("session_id")
                .and_then(|v| v.as_str())
                .filter(|v| sender::is_session(v))
                .map(str::to_owned);
            (conv, sess)
        });
        let label = self.client_label(peer);
        let mut keys = vec![Key::Client(self.client)];
        keys.extend(peer.map(Key::Peer));
        if let Some((Some(conv), _)) = &claimed {
            keys.push(Key::Conversation(conv.clone()));
        }
        // Failed-authentication backoff, before any database write.
        let authenticated = AUTHENTICATED_TOOLS.contains(&name);
        let mut ticket = None;
        if authenticated {
            let now = self.bridge.now();
            match self.bridge.throttle().gate(&keys, now) {
                Gate::Pass => ticket = Some(Ticket::new(self.bridge.throttle(), &keys, now)),
                Gate::VerifyFirst { retry_after_secs } => {
                    let correct = match caller_in(args.as_ref()) {
                        Some(c) => self.bridge.verify_caller(c).await.unwrap_or(false),
                        None => false,
                    };
                    if !correct {
                        self.bridge.throttle().failed_at_gate(&keys, now);
                        let e = ToolError::Throttled(format!(
                            "too many failed authentications from this client or for this conversation; retry in {retry_after_secs} s (a correct token is always accepted)"
                        ));
                        self.audit(&label, name, &claimed, &e).await;
                        return Ok(CallToolResult::error(vec![ContentBlock::text(
                            e.to_string(),
                        )]));
                    }
                }
            }
        }
        let result = self.run_tool(name, args, cancel).await?;
        if let Some(ticket) = ticket {
            let failed = matches!(result, Err(ToolError::Unauthorized));
            ticket.judge(self.bridge.now(), failed);
        }
        let result = match result {
            Ok(r) => r,
            Err(e) => {
                self.audit(&label, name, &claimed, &e).await;
                CallToolResult::error(vec![ContentBlock::text(e.to_string())])
            }
        };
        Ok(result)
    }

    /// Audits a refusal (itemized while the client's allowance lasts, then
    /// counted). Claimed ids are recorded only when well-formed: a
    /// malformed one may be a token sent in the wrong field.
    async fn audit(
        &self,
        label: &str,
        tool: &str,
        claimed: &Option<(Option<String>, Option<String>)>,
        e: &ToolError,
    ) {
        let caller = claimed
            .clone()
            .and_then(|(c, s)| Some((c?, s.unwrap_or_default())));
        let (action, detail) = match e {
            ToolError::Invalid { .. } => (
                "request.invalid",
                serde_json::json!({ "tool": tool, "reason": mask_token_like(&e.to_string()) }),
            ),
            ToolError::Unauthorized => ("auth.failed", serde_json::json!({ "tool": tool })),
            ToolError::RateLimited(x) => (
                "rate.limited",
                serde_json::json!({ "tool": tool, "window_secs": x.window.secs, "max": x.window.max, "retry_after_secs": x.retry_after_secs }),
            ),
            ToolError::Throttled(why) if tool == "create_conversation" => (
                "conversation.create.limited",
                serde_json::json!({ "tool": tool, "reason": why }),
            ),
            ToolError::Throttled(why) => (
                "auth.throttled",
                serde_json::json!({ "tool": tool, "reason": why }),
            ),
            // Rule refusals are audited where the rule ran; internal errors are logged.
            ToolError::Refused(_) | ToolError::Internal(_) => return,
        };
        self.bridge
            .audit_refused(label, action, caller, detail)
            .await;
    }

    async fn run_tool(
        &self,
        name: &str,
        args: Option<JsonObject>,
        cancel: tokio_util::sync::CancellationToken,
    ) -> Result<Result<CallToolResult, ToolError>, McpError> {
        Ok(match name {
            "create_conversation" => self.create(args).await.map(|c| {
                let text = format!(
                    "Conversation {} created with {} participants; it expires at {}. Keep your token (session a) secret and give each other participant its own token out of band.",
                    c.conversation_id, c.sessions.len(), c.expires_at
                );
                structured(text, &c)
            }),
            "send_to_partner" => self.send(args).await.map(|s| {
                let text = if s.redacted {
                    format!("Message {} sent (secrets were redacted before storing).", s.message_id)
                } else {
                    format!("Message {} sent.", s.message_id)
                };
                structured(text, &s)
            }),
            "check_messages" => self.check(args, cancel).await.map(|inbox| {
                let text = match inbox.messages.len() {
                    0 => "No new messages.".to_owned(),
                    n => format!(
                        "{n} message(s){}",
                        if inbox.has_more { "; more are waiting, call again" } else { "" }
                    ),
                };
                structured(text, &inbox)
            }),
            "ack_messages" => self.ack(args).await.map(|a| {
                structured(format!("{} message(s) marked read, up to id {}.", a.acked, a.up_to_id), &a)
            }),
            "invite_participant" => self.invite(args).await.map(|g| {
                structured(format!("Participant {} joined; hand it its token out of band (shown once).", g.session_id), &g)
            }),
            "list_participants" => self.list_participants(args).await.map(|p| {
                structured(format!("{} participant(s).", p.participants.len()), &p)
            }),
            "inbox_notify" => self.inbox_notify(args).await.map(|n| {
                structured(format!("{} new message(s) not told before.", n.new.len()), &n)
            }),
            "update_my_status" => self.update(args).await.map(|s| {
                structured(format!("Status set to {} at {}.", s.status, s.last_heartbeat), &s)
            }),
            "check_partner_status" => self.partner(args).await.map(|p| {
                let text = format!(
                    "Partner ({}) is {}{}.",
                    p.partner_role,
                    p.status,
                    if p.alive { ", alive" } else { ", not seen in the last 120 s" }
                );
                structured(text, &p)
            }),
            "propose_command" | "execute_command" if self.bridge.yolo_policy().is_none() => {
                Err(ToolError::Refused(bridge_state::yolo::YoloError::OperatorEnvMissing.to_string()))
            }
            "propose_command" => self.propose(args).await.map(|p| {
                structured(format!("Proposal {} is waiting for the operator. {}", p.proposal_id, p.next_step), &p)
            }),
            "execute_command" => self.execute(args, cancel).await.map(|e| structured(e.message.clone(), &e)),
            other => {
                return Err(McpError::invalid_params(
                    format!("unknown tool `{other}`; call tools/list for the available tools"),
                    None,
                ));
            }
        })
    }
}

/// The tools that take a session token.
const AUTHENTICATED_TOOLS: &[&str] = &[
    "send_to_partner",
    "check_messages",
    "update_my_status",
    "check_partner_status",
    "ack_messages",
    "invite_participant",
    "list_participants",
    "inbox_notify",
    "propose_command",
    "execute_command",
];

/// The caller named by a call's arguments, when every part is well-formed.
fn caller_in(args: Option<&JsonObject>) -> Option<Caller> {
    let a = args?;
    let field = |k: &str| a.get(k).and_then(|v| v.as_str());
    let (conversation_id, session_id, token) = (
        field("conversation_id")?,
        field("session_id")?,
        field("token")?,
    );
    (auth::is_conversation_id(conversation_id)
        && sender::is_session(session_id)
        && auth::is_token(token))
    .then(|| Caller {
        conversation_id: conversation_id.to_owned(),
        session_id: session_id.to_owned(),
        token: token.to_owned(),
    })
}

fn structured<T: serde::Serialize>(text: String, value: &T) -> CallToolResult {
    let json = serde_json::to_value(value).unwrap_or_default();
    let mut r = CallToolResult::structured(json.clone());
    // A short sentence first for humans, then the JSON for clients that
    // ignore structuredContent.
    r.content = vec![
        ContentBlock::text(text),
        ContentBlock::text(json.to_string()),
    ];
    r
}

impl ServerHandler for BridgeServer {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("bridge", env!("CARGO_PKG_VERSION")))
            .with_instructions(
                "Agent-to-agent bridge. One session calls create_conversation (a pair, or a team with participants) and gives each other participant the conversation_id, its session id and its own token. Pass conversation_id, session_id and token to every other tool. Use check_messages with wait_seconds to wait for replies instead of polling.",
            )
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        Ok(ListToolsResult::with_all_items(self.tools_for()))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        let _in_flight = self.tracker.token();
        let Some(_slot) = CallSlot::take(&self.calls) else {
            return Ok(CallToolResult::error(vec![ContentBlock::text(format!(
                "too many tool calls in flight on this connection (at most {MAX_CALLS_IN_FLIGHT}); wait for some answers before sending more"
            ))])
            .into());
        };
        // Ends when the client cancels or the server drains.
        let cancel = self.drain.child_token();
        let (ct, c2) = (context.ct.clone(), cancel.clone());
        tokio::spawn(async move {
            tokio::select! { _ = ct.cancelled() => c2.cancel(), _ = c2.cancelled() => {} }
        });
        let _end_helper = cancel.clone().drop_guard();
        // Over HTTP: the client's connection closed before its answer went out.
        let gone = context
            .extensions
            .get::<axum::http::request::Parts>()
            .and_then(|p| p.extensions.get::<crate::mcp::http::ClientGone>())
            .map(|g| g.0.clone())
            .unwrap_or_default();
        // Over HTTP, the peer address when the transport recorded it.
        let peer = context
            .extensions
            .get::<axum::http::request::Parts>()
            .and_then(|p| {
                p.extensions
                    .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
            })
            .map(|c| c.0.ip());
        let work = self.dispatch_from(&request.name, request.arguments, cancel.clone(), peer);
        tokio::select! {
            r = work => r.map(Into::into),
            _ = gone.cancelled(), if request.name == "check_messages" => {
                // Returning cancels `cancel` (the drop guard above), so a
                // write still queued for this call marks nothing read
                // (`Bridge::check`); one already committed cannot be undone,
                // which is why a client that must not lose a message peeks
                // and acknowledges (`ack_messages`).
                tracing::info!("client disconnected during check_messages; nothing consumed");
                Err(McpError::internal_error("the client disconnected", None))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::args::*;
    use super::*;
    use bridge_state::redact::Redactor;

    /// Every `properties.from` description in a JSON schema.
    fn from_descriptions(v: &serde_json::Value, out: &mut Vec<String>) {
        match v {
            serde_json::Value::Object(m) => {
                if let Some(d) = m
                    .get("properties")
                    .and_then(|p| p.get("from"))
                    .and_then(|f| f.get("description"))
                    .and_then(|d| d.as_str())
                {
                    out.push(d.to_owned());
                }
                m.values().for_each(|x| from_descriptions(x, out));
            }
            serde_json::Value::Array(a) => a.iter().for_each(|x| from_descriptions(x, out)),
            _ => {}
        }
    }

    #[test]
    fn the_message_schema_names_every_sender() {
        let tool = BridgeServer::tools()
            .into_iter()
            .find(|t| t.name == "check_messages")
            .unwrap();
        let schema = serde_json::to_value(tool.output_schema.unwrap()).unwrap();
        let mut found = vec![];
        from_descriptions(&schema, &mut found);
        assert_eq!(found.len(), 1, "{schema}");
        let named = |name: &str| found[0].contains(&format!("\"{name}\""));
        let sessions = sender::SESSIONS;
        for name in sender::PROCESSES
            .iter()
            .chain([&sessions[0], &sessions[1], &sessions[15]])
        {
            assert!(
                named(name),
                "`from` does not list the sender {name:?}: {}",
                found[0]
            );
        }
    }

    /// The tool schema's session ids are the repository's, in order.
    #[test]
    fn session_ids_match_the_repository() {
        for (i, s) in sender::SESSIONS.iter().enumerate() {
            let id: SessionId = serde_json::from_value(serde_json::json!(s)).unwrap();
            assert_eq!(id.as_str(), *s, "slot {i}");
        }
        assert!(serde_json::from_value::<SessionId>(serde_json::json!("q")).is_err());
    }

    #[test]
    fn decode_errors_name_the_field() {
        let cases = [
            (
                serde_json::json!({"my_role": "abc", "participants": "xyz"}),
                "participants",
            ),
            (
                serde_json::json!({"my_role": "abc", "partner_role": 5}),
                "partner_role",
            ),
            (
                serde_json::json!({"my_role": "abc", "partner_role": "xyz", "extra": 1}),
                "extra",
            ),
        ];
        for (args, field) in cases {
            let err =
                decode::<CreateConversationArgs>(args.as_object().cloned(), &Redactor::builtin())
                    .unwrap_err();
            match err {
                ToolError::Invalid { field: f, .. } => assert_eq!(f, field),
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn errors_repeat_at_most_a_short_start_of_what_the_client_sent() {
        let huge = "k".repeat(1 << 20);
        let mut args = serde_json::json!({"my_role": "abc", "partner_role": "xyz"});
        args[&huge] = serde_json::json!(1);
        let err = decode::<CreateConversationArgs>(args.as_object().cloned(), &Redactor::builtin())
            .unwrap_err();
        let text = err.to_string();
        assert!(text.len() < 400, "{} bytes: {}", text.len(), &text[..300]);
        assert!(
            text.contains(&format!("`{}…` (1048576 characters)", "k".repeat(40))),
            "{text}"
        );
        // A long value where a number belongs: its start, and what was expected.
        let args = serde_json::json!({"conversation_id": "c", "session_id": "a", "token": "t", "wait_seconds": "9".repeat(100_000)});
        let text = decode::<CheckArgs>(args.as_object().cloned(), &Redactor::builtin())
            .unwrap_err()
            .to_string();
        assert!(text.len() < 400, "{text}");
        assert!(
            text.contains("(100000 characters)") && text.contains("expected"),
            "{text}"
        );
        // Short echoes, escaped quotes included, stay whole.
        for short in [
            "unknown field `extra`, expected one of `a`, `b`",
            r#"invalid type: string "a \"quoted\" word", expected u64"#,
        ] {
            assert_eq!(elide_echoes(short, &|s: &str| s.to_owned()), short);
        }
    }

    #[test]
    fn a_token_or_secret_echoed_in_an_error_is_masked_before_it_is_cut() {
        // A 64-hex session token where a number belongs: cut first, 40 of
        // its characters would have been kept.
        let token = "ab".repeat(32);
        let args = serde_json::json!({"conversation_id": "c", "session_id": "a", "token": "t", "wait_seconds": token});
        let text = decode::<CheckArgs>(args.as_object().cloned(), &Redactor::builtin())
            .unwrap_err()
            .to_string();
        assert!(text.contains("TOKEN_REDACTED"), "{text}");
        assert!(!text.contains("abababababab"), "{text}");
        // A secret as an unknown field's name, longer than an echo.
        let key = format!("ghp_{}", "A1b2C3d4E5".repeat(4));
        let mut args = serde_json::json!({"my_role": "abc", "partner_role": "xyz"});
        args[&key] = serde_json::json!(1);
        let err = decode::<CreateConversationArgs>(args.as_object().cloned(), &Redactor::builtin())
            .unwrap_err();
        let text = err.to_string();
        assert!(!text.contains("A1b2C3d4E5A1b2"), "{text}");
        assert!(text.contains("REDACTED"), "{text}");
    }

    #[test]
    fn a_command_may_not_hold_a_tab_that_the_screen_shows_as_backslash_t() {
        // Typed: a backslash and a `t`.
        assert!(check_printable("command", r"rm -rf ./cache\t*", COMMAND_CHARS, "x").is_ok());
        let err = check_printable("command", "rm -rf ./cache\t*", COMMAND_CHARS, "x").unwrap_err();
        assert!(err.to_string().contains("U+0009"), "{err}");
        assert!(check_printable("command", "ls\npwd", COMMAND_CHARS, "x").is_ok());
    }

    #[test]
    fn unprintable_text_is_refused_naming_field_character_and_position() {
        for (field, value, allowed, want) in [
            ("command", "ls\n\tpwd", MULTI_LINE, None),
            (
                "command",
                "rm -rf x #\r\x1b[2K ls",
                MULTI_LINE,
                Some(
                    "invalid argument `command`: contains \\r (U+000D, a control character) at character 10 (byte 10; both counted from 0); ",
                ),
            ),
            (
                "reason",
                "é\u{202e}",
                MULTI_LINE,
                Some(
                    "invalid argument `reason`: contains \\u{202e} (U+202E, a bidirectional-text control) at character 1 (byte 2; ",
                ),
            ),
            (
                "my_role",
                "dev\nops",
                &[],
                Some(
                    "invalid argument `my_role`: contains \\n (U+000A, a control character) at character 3 (byte 3; ",
                ),
            ),
        ] {
            let got = check_printable(field, value, allowed, "what to do")
                .err()
                .map(|e| e.to_string());
            match (got, want) {
                (None, None) => {}
                (Some(g), Some(w)) => {
                    assert!(g.starts_with(w), "{g}");
                    assert!(
                        g.ends_with("what to do. Remove that character and send it again"),
                        "{g}"
                    );
                }
                (g, w) => panic!("{value:?}: got {g:?}, want {w:?}"),
            }
        }
    }

    #[test]
    fn tool_schemas_are_objects_with_output_schemas() {
        for t in BridgeServer::tools() {
            assert_eq!(
                t.input_schema.get("type").and_then(|v| v.as_str()),
                Some("object"),
                "{}",
                t.name
            );
            assert!(t.output_schema.is_some(), "{}", t.name);
        }
    }
}
