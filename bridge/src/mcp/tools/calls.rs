//! Each tool's own step: decode and check its arguments, then call the
//! service (or, for YOLO's tools, `execution`). Refusals come back as
//! `ToolError`s for `run_tool` to audit and turn into tool results.

use std::time::Duration;

use rmcp::model::JsonObject;

use super::BridgeServer;
use super::args::*;
use crate::mcp::execution::{Execution, Proposed};
use crate::mcp::service::{
    ActionType, Created, Inbox, MyStatus, Outgoing, PartnerStatus, Sent, ToolError,
};

impl BridgeServer {
    pub(super) async fn create(&self, args: Option<JsonObject>) -> Result<Created, ToolError> {
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

    pub(super) async fn send(&self, args: Option<JsonObject>) -> Result<Sent, ToolError> {
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

    pub(super) async fn check(
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

    pub(super) async fn update(&self, args: Option<JsonObject>) -> Result<MyStatus, ToolError> {
        let a: UpdateStatusArgs = decode(args)?;
        let caller = a.caller()?;
        self.bridge.update_status(caller, a.status).await
    }

    pub(super) async fn propose(&self, args: Option<JsonObject>) -> Result<Proposed, ToolError> {
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

    pub(super) async fn execute(
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

    pub(super) async fn partner(
        &self,
        args: Option<JsonObject>,
    ) -> Result<PartnerStatus, ToolError> {
        let a: PartnerStatusArgs = decode(args)?;
        let caller = a.caller()?;
        self.bridge.partner_status(caller).await
    }
}
