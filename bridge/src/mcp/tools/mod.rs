//! The MCP face of the bridge: tool definitions, argument decoding and
//! validation, and the mapping of outcomes to tool results.
//!
//! Tool names and argument names match the original Python bridge so existing
//! agent prompts keep working. Arguments are decoded here rather than by
//! rmcp's `Parameters<T>` so that every bad input gets an error naming the
//! field and its bound, and is audited like any other refusal. Refusals are
//! tool results with `isError: true` (the agent reads them); only protocol
//! faults (unknown tool) are JSON-RPC errors.

use std::net::IpAddr;
use std::time::Duration;

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation,
    JsonObject, ListToolsResult, PaginatedRequestParams, ServerCapabilities, ServerConfig, Tool,
    ToolAnnotations,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData as McpError, RoleServer, ServerHandler};
use schemars::JsonSchema;
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::mcp::execution::{Execution, Proposed};
use crate::mcp::service::{
    ActionType, Bridge, Caller, Created, Inbox, MyStatus, Outgoing, PartnerStatus, Sent,
    SessionStatus, ToolError,
};
use crate::mcp::throttle::{Gate, Key};
use bridge_state::auth;

pub const MAX_MESSAGE_CHARS: usize = 50_000;
pub const MAX_FILES: usize = 20;
pub const MAX_FILE_CHARS: usize = 1024;
pub const MAX_WAIT_SECONDS: u64 = 50;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
pub enum SessionId {
    #[serde(rename = "a")]
    A,
    #[serde(rename = "b")]
    B,
}

impl SessionId {
    fn as_str(self) -> &'static str {
        match self {
            Self::A => "a",
            Self::B => "b",
        }
    }
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateConversationArgs {
    /// Your role in this collaboration, e.g. "backend_developer" (3-100 printable characters on one line).
    #[schemars(length(min = 3, max = 100))]
    pub my_role: String,
    /// Your partner's role, e.g. "frontend_developer" (3-100 printable characters on one line).
    #[schemars(length(min = 3, max = 100))]
    pub partner_role: String,
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
            /// Your session: "a" (the creator) or "b" (the partner).
            pub session_id: SessionId,
            /// Your session token (64 hex characters). Keep it secret.
            #[schemars(regex(pattern = r"^[0-9a-f]{64}$"))]
            pub token: String,
            $($(#[$fm])* pub $f: $t,)*
        }
        impl $name {
            fn caller(&self) -> Result<Caller, ToolError> {
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
    pub struct PartnerStatusArgs {}
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
fn decode<T: DeserializeOwned>(args: Option<JsonObject>) -> Result<T, ToolError> {
    let value = serde_json::Value::Object(args.unwrap_or_default());
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner().to_string();
        // serde names the field itself for missing/unknown fields.
        let field = if path == "." {
            field_in(&inner).unwrap_or_else(|| "arguments".into())
        } else {
            path
        };
        ToolError::invalid(field, inner)
    })
}

/// serde echoes argument values in its errors; one may be a token sent in
/// the wrong field. Audit rows keep the field and the problem, never a
/// token-shaped value. (Not a redactor rule: 64-hex digests are ordinary in
/// messages.)
fn mask_token_like(s: &str) -> String {
    static TOKENISH: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
        regex::Regex::new(r"(apv_)?[0-9A-Fa-f]{48,}").expect("valid regex")
    });
    TOKENISH.replace_all(s, "TOKEN_REDACTED").into_owned()
}

fn field_in(serde_msg: &str) -> Option<String> {
    let start = serde_msg.find('`')? + 1;
    let len = serde_msg[start..].find('`')?;
    Some(serde_msg[start..start + len].to_owned())
}

/// Text a person will read must be printable: a control, format or
/// invisible character could rewrite their screen or hide part of it (see
/// `untrusted`). `allowed` lists the exceptions (newline and tab in
/// multi-line fields); `what` says what the field may hold.
fn check_printable(
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

const MULTI_LINE: &[char] = &['\n', '\t'];

fn check_len(field: &str, value: &str, min: usize, max: usize) -> Result<(), ToolError> {
    let n = value.chars().count();
    if n < min || n > max {
        return Err(ToolError::invalid(
            field,
            format!("must be {min} to {max} characters long (got {n})"),
        ));
    }
    Ok(())
}

/// The MCP server for one client connection. Cheap to clone.
#[derive(Clone)]
pub struct BridgeServer {
    bridge: Bridge,
    drain: tokio_util::sync::CancellationToken,
    tracker: tokio_util::task::TaskTracker,
    /// This connection's identity for per-client limits: an stdio server
    /// has one connection, an HTTP server one per MCP session.
    client: u64,
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
                "Propose a shell command to run in a throwaway, network-less sandbox container. Nothing runs until a human operator approves it on their terminal and you call execute_command with the approval token they give you.",
                JsonObject::new(),
            )
            .with_input_schema::<ProposeArgs>()
            .with_output_schema::<Proposed>(),
            Tool::new(
                "execute_command",
                "Run an approved proposal with its single-use approval token. Returns the result (exit code, output) when it finishes in time, else the job id; the result also arrives to both sessions as a command_result message. dry_run checks the token without spending it.",
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
                "Start a conversation between two agent sessions. Returns the conversation id and one secret token per session (shown once). Keep your token; give the partner theirs.",
                JsonObject::new(),
            )
            .with_input_schema::<CreateConversationArgs>()
            .with_output_schema::<Created>(),
            Tool::new(
                "send_to_partner",
                "Send a message to your partner session. Secrets (API keys, private keys, passwords, tokens) are redacted before storage. Rate limited per session.",
                JsonObject::new(),
            )
            .with_input_schema::<SendArgs>()
            .with_output_schema::<Sent>(),
            Tool::new(
                "check_messages",
                "Read messages addressed to you, oldest first, marking them read. Use wait_seconds (up to 50) to long-poll instead of polling on a timer: the call returns as soon as a message arrives.",
                JsonObject::new(),
            )
            .with_input_schema::<CheckArgs>()
            .with_output_schema::<Inbox>(),
            Tool::new(
                "update_my_status",
                "Set your status (working, waiting, blocked, complete); also records a heartbeat.",
                JsonObject::new(),
            )
            .with_input_schema::<UpdateStatusArgs>()
            .with_output_schema::<MyStatus>(),
            Tool::new(
                "check_partner_status",
                "Your partner's last status and heartbeat; alive means a heartbeat within 120 s.",
                JsonObject::new(),
            )
            .with_input_schema::<PartnerStatusArgs>()
            .with_output_schema::<PartnerStatus>()
            .with_annotations(read_only),
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
                .filter(|v| matches!(*v, "a" | "b"))
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
        let mut ticket = false;
        if authenticated {
            let now = self.bridge.now();
            match self.bridge.throttle().gate(&keys, now) {
                Gate::Pass => ticket = true,
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
        if ticket {
            let failed = matches!(result, Err(ToolError::Unauthorized));
            self.bridge
                .throttle()
                .judged(&keys, self.bridge.now(), failed);
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
                    "Conversation {} created; it expires at {}. Keep session_a_token secret and give session_b_token to your partner out of band.",
                    c.conversation_id, c.expires_at
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

    async fn create(&self, args: Option<JsonObject>) -> Result<Created, ToolError> {
        let a: CreateConversationArgs = decode(args)?;
        check_len("my_role", &a.my_role, 3, 100)?;
        check_len("partner_role", &a.partner_role, 3, 100)?;
        for (field, role) in [("my_role", &a.my_role), ("partner_role", &a.partner_role)] {
            check_printable(
                field,
                role,
                &[],
                "a role must be printable text on one line (no control, format or invisible characters)",
            )?;
        }
        if let Err(e) = self
            .bridge
            .throttle()
            .take_create(self.client, self.bridge.now())
        {
            return Err(ToolError::Throttled(format!(
                "too many conversations created by this client: at most {} per {} s; retry in {} s",
                e.window.max, e.window.secs, e.retry_after_secs
            )));
        }
        self.bridge
            .create_conversation(a.my_role, a.partner_role)
            .await
    }

    async fn send(&self, args: Option<JsonObject>) -> Result<Sent, ToolError> {
        let a: SendArgs = decode(args)?;
        let caller = a.caller()?;
        check_len("message", &a.message, 1, MAX_MESSAGE_CHARS)?;
        let files = a.files_involved.unwrap_or_default();
        if files.len() > MAX_FILES {
            return Err(ToolError::invalid(
                "files_involved",
                format!("at most {MAX_FILES} entries (got {})", files.len()),
            ));
        }
        for (i, f) in files.iter().enumerate() {
            check_len(&format!("files_involved[{i}]"), f, 1, MAX_FILE_CHARS)?;
        }
        self.bridge
            .send(
                caller,
                Outgoing {
                    message: a.message,
                    action_type: a.action_type.unwrap_or(ActionType::Info),
                    files_involved: files,
                },
            )
            .await
    }

    async fn check(
        &self,
        args: Option<JsonObject>,
        cancel: tokio_util::sync::CancellationToken,
    ) -> Result<Inbox, ToolError> {
        let a: CheckArgs = decode(args)?;
        let caller = a.caller()?;
        let wait = a.wait_seconds.unwrap_or(0);
        if wait > MAX_WAIT_SECONDS {
            return Err(ToolError::invalid(
                "wait_seconds",
                format!("must be between 0 and {MAX_WAIT_SECONDS} (got {wait})"),
            ));
        }
        if let Some(id) = a.since_id
            && id < 0
        {
            return Err(ToolError::invalid(
                "since_id",
                format!("must be 0 or more (got {id})"),
            ));
        }
        self.bridge
            .check(
                caller,
                Duration::from_secs(wait),
                a.peek.unwrap_or(false),
                a.since_id,
                cancel,
            )
            .await
    }

    async fn update(&self, args: Option<JsonObject>) -> Result<MyStatus, ToolError> {
        let a: UpdateStatusArgs = decode(args)?;
        let caller = a.caller()?;
        self.bridge.update_status(caller, a.status).await
    }

    async fn propose(&self, args: Option<JsonObject>) -> Result<Proposed, ToolError> {
        let a: ProposeArgs = decode(args)?;
        let caller = a.caller()?;
        if a.command.trim().is_empty() {
            return Err(ToolError::invalid("command", "must not be empty"));
        }
        if a.command.len() > bridge_state::yolo::MAX_COMMAND_BYTES {
            return Err(ToolError::invalid(
                "command",
                format!(
                    "must be at most {} bytes (got {})",
                    bridge_state::yolo::MAX_COMMAND_BYTES,
                    a.command.len()
                ),
            ));
        }
        if a.command.contains('\0') {
            return Err(ToolError::invalid("command", "must not contain NUL bytes"));
        }
        check_printable(
            "command",
            &a.command,
            MULTI_LINE,
            "a command may hold printable characters, newlines and tabs only; to use another character, have the command produce it (e.g. with printf and an octal escape)",
        )?;
        if let Some(r) = &a.reason {
            check_len("reason", r, 0, 1000)?;
            check_printable(
                "reason",
                r,
                MULTI_LINE,
                "a reason may hold printable text, newlines and tabs only",
            )?;
        }
        self.bridge
            .propose(caller, a.command, a.timeout_seconds, a.reason)
            .await
    }

    async fn execute(
        &self,
        args: Option<JsonObject>,
        cancel: tokio_util::sync::CancellationToken,
    ) -> Result<Execution, ToolError> {
        let a: ExecuteArgs = decode(args)?;
        let caller = a.caller()?;
        let id_ok = a.proposal_id.len() == 21
            && a.proposal_id.starts_with("prop_")
            && a.proposal_id[5..]
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if !id_ok {
            return Err(ToolError::invalid(
                "proposal_id",
                "must be `prop_` followed by 16 lowercase hex characters, as returned by propose_command",
            ));
        }
        if !bridge_state::yolo::is_approval_token(&a.approval_token) {
            return Err(ToolError::invalid(
                "approval_token",
                "must be `apv_` followed by 48 lowercase hex characters, as printed by `bridge yolo approve`",
            ));
        }
        self.bridge
            .execute(
                caller,
                a.proposal_id,
                a.approval_token,
                a.dry_run.unwrap_or(false),
                cancel,
            )
            .await
    }

    async fn partner(&self, args: Option<JsonObject>) -> Result<PartnerStatus, ToolError> {
        let a: PartnerStatusArgs = decode(args)?;
        let caller = a.caller()?;
        self.bridge.partner_status(caller).await
    }
}

/// The tools that take a session token.
const AUTHENTICATED_TOOLS: &[&str] = &[
    "send_to_partner",
    "check_messages",
    "update_my_status",
    "check_partner_status",
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
        && matches!(session_id, "a" | "b")
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
                "Agent-to-agent bridge. One session calls create_conversation and shares the conversation_id and session_b_token with its partner. Pass conversation_id, session_id and token to every other tool. Use check_messages with wait_seconds to wait for replies instead of polling.",
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
                tracing::info!("client disconnected during check_messages; nothing consumed");
                Err(McpError::internal_error("the client disconnected", None))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        for name in bridge_state::messages::sender::ALL {
            assert!(
                found[0].contains(&format!("\"{name}\"")),
                "`from` does not list the sender {name:?}: {}",
                found[0]
            );
        }
    }

    #[test]
    fn decode_errors_name_the_field() {
        let cases = [
            (serde_json::json!({"my_role": "abc"}), "partner_role"),
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
            let err = decode::<CreateConversationArgs>(args.as_object().cloned()).unwrap_err();
            match err {
                ToolError::Invalid { field: f, .. } => assert_eq!(f, field),
                other => panic!("{other:?}"),
            }
        }
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
