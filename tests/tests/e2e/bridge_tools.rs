//! Every bridge tool through the real binary and rmcp's client.

use bridge_tests::{Conv, Server};
use serde_json::json;

#[tokio::test(flavor = "multi_thread")]
async fn tools_keep_the_original_names() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let s = Server::start(&dir.path().join("b.db"), &[]).await?;
    let mut names: Vec<String> = s
        .client
        .list_all_tools()
        .await?
        .into_iter()
        .map(|t| t.name.into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "ack_messages",
            "check_messages",
            "check_partner_status",
            "create_conversation",
            "inbox_notify",
            "invite_participant",
            "list_participants",
            "send_to_partner",
            "update_my_status"
        ]
    );
    s.stop().await
}

#[tokio::test(flavor = "multi_thread")]
async fn two_sessions_exchange_messages_and_status() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let s = Server::start(&dir.path().join("b.db"), &[]).await?;
    let c = Conv::create(&s).await?;
    assert!(c.id.starts_with("conv_") && c.id.len() == 21);
    assert_eq!(c.token_a.len(), 64);
    let sent = s.ok("send_to_partner", c.args("a", json!({"message": "hello b", "action_type": "question", "files_involved": ["src/a.rs"]}))).await?;
    assert_eq!(sent["status"], "sent");
    assert_eq!(sent["redacted"], false);
    let inbox = s.ok("check_messages", c.args("b", json!({}))).await?;
    let msgs = inbox["messages"].as_array().unwrap();
    assert_eq!(msgs.len(), 1);
    assert_eq!(msgs[0]["message"], "hello b");
    assert_eq!(msgs[0]["from"], "a");
    assert_eq!(msgs[0]["kind"], "message");
    assert_eq!(msgs[0]["action_type"], "question");
    assert_eq!(msgs[0]["files_involved"], json!(["src/a.rs"]));
    assert_eq!(msgs[0]["id"], sent["message_id"]);
    // Read means read: a second check is empty.
    let again = s.ok("check_messages", c.args("b", json!({}))).await?;
    assert_eq!(again["messages"], json!([]));
    let st = s
        .ok(
            "update_my_status",
            c.args("b", json!({"status": "working"})),
        )
        .await?;
    assert_eq!(st["status"], "working");
    let p = s.ok("check_partner_status", c.args("a", json!({}))).await?;
    assert_eq!(p["status"], "working");
    assert_eq!(p["alive"], true);
    let p = s.ok("check_partner_status", c.args("b", json!({}))).await?;
    assert_eq!(p["status"], "unknown");
    assert_eq!(p["alive"], false);
    s.stop().await
}
