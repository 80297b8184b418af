//! `bridge demo`: two MCP clients talk through a bridge on a temporary
//! database, so a newcomer sees the whole exchange in one command. The
//! clients speak real MCP to the real server over in-memory pipes (no child
//! process: the bridge starts none but the runner). Its narration quotes
//! what the clients sent and received, so it goes through `untrusted` too.

use std::sync::Arc;

use anyhow::{Context, bail};
use rmcp::ServiceExt;
use rmcp::model::{CallToolRequestParams, CallToolResult};
use rmcp::service::{RoleClient, RunningService};
use serde_json::{Value, json};

use crate::mcp::service::{Bridge, BridgeParts};
use crate::mcp::tools::BridgeServer;
use bridge_state::auth::ServerSecret;
use bridge_state::clock::SystemClock;
use bridge_state::config::DEFAULT_TTL;
use bridge_state::ratelimit::Limits;
use bridge_state::redact::Redactor;
use bridge_state::store::{Db, Sync};

type Client = RunningService<RoleClient, ()>;

async fn connect(bridge: &Bridge) -> anyhow::Result<Client> {
    let (client_end, server_end) = tokio::io::duplex(1 << 20);
    let server = BridgeServer::new(bridge.clone());
    tokio::spawn(async move {
        if let Ok(running) = server.serve(server_end).await {
            let _ = running.waiting().await;
        }
    });
    Ok(().serve(client_end).await?)
}

async fn call(client: &Client, tool: &str, args: Value) -> anyhow::Result<Value> {
    let params = CallToolRequestParams::new(tool.to_owned())
        .with_arguments(args.as_object().cloned().unwrap_or_default());
    let r: CallToolResult = client.call_tool(params).await?;
    if r.is_error == Some(true) {
        bail!("{tool} refused: {:?}", r.content);
    }
    r.structured_content.context("no structured content")
}

fn say(who: &str, what: impl std::fmt::Display) {
    let what = crate::untrusted::Escaped(&what.to_string()).to_string();
    // Narration only: a closed stdout (`bridge demo | head`) is no failure.
    let _ = crate::untrusted::terminal::println(format_args!("{who:>9} │ {what}"));
}

pub async fn run() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let db_path = dir.path().join("demo.db");
    let bridge = Bridge::new(BridgeParts {
        db: Db::open(&db_path, Sync::Normal)?,
        secret: ServerSecret::ephemeral()?,
        redactor: Redactor::builtin(),
        limits: Limits::default(),
        conversation_ttl: DEFAULT_TTL,
        clock: Arc::new(SystemClock),
        yolo: None,
        quotas: Default::default(),
    });
    say(
        "bridge",
        format!("demo database {} (deleted afterwards)", db_path.display()),
    );
    let a = connect(&bridge).await?;
    let b = connect(&bridge).await?;
    let tools = a.list_all_tools().await?;
    say(
        "bridge",
        format!(
            "tools: {}",
            tools
                .iter()
                .map(|t| t.name.as_ref())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    );

    let conv = call(
        &a,
        "create_conversation",
        json!({"my_role": "backend_developer", "partner_role": "frontend_developer"}),
    )
    .await?;
    let cid = conv["conversation_id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let ta = conv["session_a_token"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let tb = conv["session_b_token"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    say(
        "session a",
        format!(
            "created {cid} (expires {}); hands session_b_token to b",
            conv["expires_at"]
        ),
    );

    // B waits for a message while A is still typing.
    let b_wait = {
        let (cid, tb) = (cid.clone(), tb.clone());
        let b = b.peer().clone();
        tokio::spawn(async move {
            let params = CallToolRequestParams::new("check_messages").with_arguments(
                json!({"conversation_id": cid, "session_id": "b", "token": tb, "wait_seconds": 10})
                    .as_object()
                    .cloned()
                    .unwrap_or_default(),
            );
            let started = std::time::Instant::now();
            let r = b.call_tool(params).await;
            (r, started.elapsed())
        })
    };
    say("session b", "check_messages wait_seconds=10 (long poll)…");
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;

    let text = "Proposed API: POST /todos {title}. Staging key for you: AKIAIOSFODNN7EXAMPLE";
    say("session a", format!("send_to_partner: {text:?}"));
    let sent = call(&a, "send_to_partner", json!({"conversation_id": cid, "session_id": "a", "token": ta, "message": text, "action_type": "proposal", "files_involved": ["api/routes.rs"]})).await?;
    say(
        "bridge",
        format!(
            "stored message {} (redacted: {})",
            sent["message_id"], sent["redacted"]
        ),
    );

    let (r, waited) = b_wait.await?;
    let inbox = r?.structured_content.context("no structured content")?;
    for m in inbox["messages"].as_array().cloned().unwrap_or_default() {
        say(
            "session b",
            format!(
                "received after {:.1} ms: {}",
                waited.as_secs_f64() * 1000.0 - 300.0,
                m["message"]
            ),
        );
    }

    call(&b, "send_to_partner", json!({"conversation_id": cid, "session_id": "b", "token": tb, "message": "Agreed. Building the form against POST /todos.", "action_type": "info"})).await?;
    say("session b", "replied");
    let inbox = call(
        &a,
        "check_messages",
        json!({"conversation_id": cid, "session_id": "a", "token": ta}),
    )
    .await?;
    for m in inbox["messages"].as_array().cloned().unwrap_or_default() {
        say("session a", format!("received: {}", m["message"]));
    }

    call(
        &b,
        "update_my_status",
        json!({"conversation_id": cid, "session_id": "b", "token": tb, "status": "working"}),
    )
    .await?;
    let st = call(
        &a,
        "check_partner_status",
        json!({"conversation_id": cid, "session_id": "a", "token": ta}),
    )
    .await?;
    say(
        "session a",
        format!("partner is {} (alive: {})", st["status"], st["alive"]),
    );

    let bad = a
        .call_tool(
            CallToolRequestParams::new("send_to_partner").with_arguments(
                json!({"conversation_id": cid, "session_id": "a", "token": tb, "message": "spoof"})
                    .as_object()
                    .cloned()
                    .unwrap_or_default(),
            ),
        )
        .await?;
    say(
        "session a",
        format!(
            "tries b's token as a → refused: {}",
            bad.is_error == Some(true)
        ),
    );

    let v = bridge
        .db()
        .call(|c| Ok(bridge_state::audit::verify(c)?))
        .await?;
    say(
        "bridge",
        format!(
            "audit chain: {} rows, intact: {}",
            v.rows,
            v.first_break.is_none()
        ),
    );
    a.cancel().await?;
    b.cancel().await?;
    Ok(())
}
