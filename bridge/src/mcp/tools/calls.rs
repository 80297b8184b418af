//! Each tool's own step: decode and check its arguments, then call the
//! service (or, for YOLO's tools, `execution`). Refusals come back as
//! `ToolError`s for `run_tool` to audit and turn into tool results.

use std::time::Duration;

use rmcp::model::JsonObject;

use super::BridgeServer;
use super::args::*;
use crate::mcp::execution::{Execution, Proposed};
use crate::mcp::service::{
    Acked, ActionType, Created, Inbox, MyStatus, Notified, Outgoing, Participants, PartnerStatus,
    Sent, SessionGrant, ToolError,
};

impl BridgeServer {
    pub(super) async fn create(&self, args: Option<JsonObject>) -> Result<Created, ToolError> {
        let a: CreateConversationArgs = decode(args, self.bridge.redactor())?;
        let (others, listed) = match (a.partner_role, a.participants) {
            (Some(partner), None) => (vec![partner], false),
            (None, Some(list)) => (list, true),
            (Some(_), Some(_)) => {
                return Err(ToolError::invalid(
                    "participants",
                    "give either partner_role (a pair) or participants (a team), not both",
                ));
            }
            (None, None) => {
                return Err(ToolError::invalid(
                    "partner_role",
                    "missing: give partner_role (your partner's role, for a pair) or participants (the other roles, for a team)",
                ));
            }
        };
        if others.is_empty() || others.len() > MAX_INVITED {
            return Err(ToolError::invalid(
                "participants",
                format!("must list 1 to {MAX_INVITED} roles (got {})", others.len()),
            ));
        }
        check_role("my_role", &a.my_role)?;
        for (i, role) in others.iter().enumerate() {
            let field = if listed {
                format!("participants[{i}]")
            } else {
                "partner_role".into()
            };
            check_role(&field, role)?;
            // A pair keeps today's rules (two equal roles are allowed).
            if listed && (role == &a.my_role || others[..i].contains(role)) {
                return Err(ToolError::invalid(
                    field,
                    "every role must be unique, and differ from my_role",
                ));
            }
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
        self.bridge.create_conversation(a.my_role, others).await
    }

    pub(super) async fn send(&self, args: Option<JsonObject>) -> Result<Sent, ToolError> {
        let a: SendArgs = decode(args, self.bridge.redactor())?;
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
        if let Some(to) = &a.to {
            if to.is_empty() || to.len() > MAX_INVITED {
                return Err(ToolError::invalid(
                    "to",
                    format!(
                        "must list 1 to {MAX_INVITED} session ids, or be left out to send to everyone else (got {})",
                        to.len()
                    ),
                ));
            }
            if let Some(i) = to
                .iter()
                .position(|s| !bridge_state::messages::sender::is_session(s))
            {
                return Err(ToolError::invalid(
                    format!("to[{i}]"),
                    "must be a session id, \"a\" to \"p\" (list_participants shows who is in the conversation)",
                ));
            }
        }
        if let Some(key) = &a.idempotency_key {
            check_len("idempotency_key", key, 1, MAX_IDEMPOTENCY_KEY_CHARS)?;
        }
        self.bridge
            .send(
                caller,
                Outgoing {
                    message: a.message,
                    action_type: a.action_type.unwrap_or(ActionType::Info),
                    files_involved: files,
                    to: a.to,
                    idempotency_key: a.idempotency_key,
                },
            )
            .await
    }

    pub(super) async fn check(
        &self,
        args: Option<JsonObject>,
        cancel: tokio_util::sync::CancellationToken,
    ) -> Result<Inbox, ToolError> {
        let a: CheckArgs = decode(args, self.bridge.redactor())?;
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

    pub(super) async fn update(&self, args: Option<JsonObject>) -> Result<MyStatus, ToolError> {
        let a: UpdateStatusArgs = decode(args, self.bridge.redactor())?;
        let caller = a.caller()?;
        self.bridge.update_status(caller, a.status).await
    }

    pub(super) async fn propose(&self, args: Option<JsonObject>) -> Result<Proposed, ToolError> {
        let a: ProposeArgs = decode(args, self.bridge.redactor())?;
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
        // No tab: the operator's screen shows one as `\t`, which a backslash
        // and a `t` typed in the command would look exactly like, and a tab
        // separates words where `\t` does not.
        check_printable(
            "command",
            &a.command,
            COMMAND_CHARS,
            "a command may hold printable characters and newlines only (the operator could not tell a tab from a typed `\\t`); indent with spaces, and to use another character have the command produce it (e.g. printf '\\t')",
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

    pub(super) async fn execute(
        &self,
        args: Option<JsonObject>,
        cancel: tokio_util::sync::CancellationToken,
    ) -> Result<Execution, ToolError> {
        let a: ExecuteArgs = decode(args, self.bridge.redactor())?;
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

    pub(super) async fn partner(
        &self,
        args: Option<JsonObject>,
    ) -> Result<PartnerStatus, ToolError> {
        let a: PartnerStatusArgs = decode(args, self.bridge.redactor())?;
        let caller = a.caller()?;
        let partner = a.partner.map(|p| p.as_str().to_owned());
        self.bridge.partner_status(caller, partner).await
    }

    pub(super) async fn invite(&self, args: Option<JsonObject>) -> Result<SessionGrant, ToolError> {
        let a: InviteArgs = decode(args, self.bridge.redactor())?;
        let caller = a.caller()?;
        check_role("role", &a.role)?;
        self.bridge.invite(caller, a.role).await
    }

    pub(super) async fn list_participants(
        &self,
        args: Option<JsonObject>,
    ) -> Result<Participants, ToolError> {
        let a: ListParticipantsArgs = decode(args, self.bridge.redactor())?;
        let caller = a.caller()?;
        self.bridge.participants(caller).await
    }

    pub(super) async fn inbox_notify(
        &self,
        args: Option<JsonObject>,
    ) -> Result<Notified, ToolError> {
        let a: InboxNotifyArgs = decode(args, self.bridge.redactor())?;
        self.bridge.notify_inbox(a.caller()?).await
    }

    pub(super) async fn ack(&self, args: Option<JsonObject>) -> Result<Acked, ToolError> {
        let a: AckArgs = decode(args, self.bridge.redactor())?;
        let caller = a.caller()?;
        if a.up_to_id < 0 {
            return Err(ToolError::invalid(
                "up_to_id",
                format!("must be 0 or more (got {})", a.up_to_id),
            ));
        }
        self.bridge.ack(caller, a.up_to_id).await
    }
}

/// A role: 3-100 printable characters on one line.
fn check_role(field: &str, role: &str) -> Result<(), ToolError> {
    check_len(field, role, 3, 100)?;
    check_printable(
        field,
        role,
        &[],
        "a role must be printable text on one line (no control, format or invisible characters)",
    )
}
