//! Secrets are redacted before anything is stored or audited, through the
//! real binary; extra patterns load from a file, and a bad one stops startup.

use std::path::Path;
use std::process::Stdio;

use bridge_tests::{Conv, Server, audit_rows, bin, contains, db_bytes, messages};
use serde_json::json;

const AWS_KEY: &str = "AKIAIOSFODNN7EXAMPLE";
const AWS_KEY_IN_PATH: &str = "AKIAJ7Q3XK5ZEXAMPLE2";
const PASSWORD: &str = "hunter2hunter2";
const PEM_BODY: &str = "MIIEpAIBAAKCAQEA7bq98wVs1xN0pQzTuvW3pLk8JrQ9mH2cXeYb4sN6fT1gUoD5";
const JWT: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c";

fn github_token() -> String {
    format!("ghp_{}", "aB3dE5fG7hJ9kL1mN3pQ5rS7tU9vW1xY3zA5")
}

fn anthropic_key() -> String {
    let body: String = "Xq7Lm2Np9Rt4Vw6Yz8Bc1Df3Gh5Jk0"
        .chars()
        .cycle()
        .take(93)
        .collect();
    format!("sk-ant-api03-{body}AA")
}

/// The raw secret values that must never reach the database.
fn raw_secrets() -> Vec<String> {
    vec![
        AWS_KEY.into(),
        AWS_KEY_IN_PATH.into(),
        PASSWORD.into(),
        github_token(),
        anthropic_key(),
        PEM_BODY.into(),
        JWT.into(),
    ]
}

fn message_with_secrets() -> String {
    format!(
        "Deploy notes for the staging box.\n\
         aws key: {AWS_KEY}\n\
         db: password={PASSWORD}\n\
         gh: {gh}\n\
         claude: {ant}\n\
         -----BEGIN RSA PRIVATE KEY-----\n{PEM_BODY}\n-----END RSA PRIVATE KEY-----\n\
         session cookie: {JWT}\n\
         That is everything.",
        gh = github_token(),
        ant = anthropic_key(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn secrets_are_replaced_before_storage_and_audit() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let db = dir.path().join("b.db");
    let s = Server::start(&db, &[]).await?;
    let c = Conv::create(&s).await?;
    let path = format!("secrets/{AWS_KEY_IN_PATH}/creds.pem");
    let sent = s
        .ok(
            "send_to_partner",
            c.args(
                "a",
                json!({"message": message_with_secrets(), "files_involved": ["src/deploy.rs", path]}),
            ),
        )
        .await?;
    assert_eq!(sent["redacted"], true);

    let inbox = s.ok("check_messages", c.args("b", json!({}))).await?;
    let got = messages(&inbox);
    assert_eq!(got.len(), 1);
    let body = got[0]["message"].as_str().unwrap();
    for raw in raw_secrets() {
        assert!(!body.contains(&raw), "partner received {raw:?}: {body}");
    }
    assert!(body.contains("AWS_KEY_REDACTED"), "{body}");
    // One placeholder per secret, each naming its class.
    assert!(
        body.matches("_REDACTED").count() >= 6,
        "expected a placeholder for each of the 6 secrets: {body}"
    );
    // The prose around the secrets survives.
    assert!(
        body.starts_with("Deploy notes for the staging box."),
        "{body}"
    );
    assert!(body.ends_with("That is everything."), "{body}");
    let files = got[0]["files_involved"].as_array().unwrap();
    assert_eq!(files[0], "src/deploy.rs");
    let redacted_path = files[1].as_str().unwrap();
    assert!(
        redacted_path.starts_with("secrets/")
            && redacted_path.contains("AWS_KEY_REDACTED")
            && !redacted_path.contains(AWS_KEY_IN_PATH),
        "{redacted_path}"
    );

    // A refused request that echoes a secret back must not audit it either.
    let echoed = s
        .refused(
            "send_to_partner",
            c.args(
                "a",
                json!({"message": "hi", "files_involved": message_with_secrets()}),
            ),
        )
        .await?;
    assert!(echoed.contains("files_involved"), "{echoed}");
    let refused_session = s
        .refused(
            "check_partner_status",
            json!({"conversation_id": c.id, "session_id": format!("password={PASSWORD}"), "token": c.token_a}),
        )
        .await?;
    assert!(refused_session.contains("session_id"), "{refused_session}");
    s.stop().await?;

    let audit = audit_rows(&db)?;
    let send_row = audit
        .iter()
        .find(|r| r.action == "message.send")
        .expect("the send was audited");
    assert!(
        send_row.detail.contains("redacted_classes"),
        "{}",
        send_row.detail
    );
    assert_eq!(
        audit
            .iter()
            .filter(|r| r.action == "request.invalid")
            .count(),
        2
    );
    let stored = db_bytes(&db);
    for raw in raw_secrets() {
        assert!(!contains(&stored, &raw), "{raw:?} is in the database file");
    }
    assert!(
        contains(&stored, "AWS_KEY_REDACTED"),
        "sanity: rows are there"
    );
    Ok(())
}

fn write_patterns(dir: &Path, toml: &str) -> anyhow::Result<std::path::PathBuf> {
    let p = dir.join("patterns.toml");
    std::fs::write(&p, toml)?;
    Ok(p)
}

#[tokio::test(flavor = "multi_thread")]
async fn extra_patterns_from_a_file_apply_alongside_the_builtin_ones() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let patterns = write_patterns(
        dir.path(),
        r#"
[[pattern]]
name = "ticket"
regex = 'TKT-[0-9]{6}'
placeholder = "TICKET_REDACTED"
"#,
    )?;
    let text = format!("see TKT-123456, key {AWS_KEY}");

    // Without the file the ticket id is ordinary text.
    let plain_db = dir.path().join("plain.db");
    let plain = Server::start(&plain_db, &[]).await?;
    let c = Conv::create(&plain).await?;
    plain
        .ok("send_to_partner", c.args("a", json!({"message": text})))
        .await?;
    let got = messages(&plain.ok("check_messages", c.args("b", json!({}))).await?);
    assert_eq!(got[0]["message"], "see TKT-123456, key AWS_KEY_REDACTED");
    plain.stop().await?;

    let db = dir.path().join("b.db");
    let s = Server::start(&db, &["--redaction-patterns", patterns.to_str().unwrap()]).await?;
    let c = Conv::create(&s).await?;
    let sent = s
        .ok(
            "send_to_partner",
            c.args(
                "a",
                json!({"message": text, "files_involved": ["tickets/TKT-654321.md"]}),
            ),
        )
        .await?;
    assert_eq!(sent["redacted"], true);
    let got = messages(&s.ok("check_messages", c.args("b", json!({}))).await?);
    assert_eq!(
        got[0]["message"],
        "see TICKET_REDACTED, key AWS_KEY_REDACTED"
    );
    assert_eq!(
        got[0]["files_involved"],
        json!(["tickets/TICKET_REDACTED.md"])
    );
    s.stop().await?;
    let stored = db_bytes(&db);
    assert!(!contains(&stored, "TKT-123456") && !contains(&stored, "TKT-654321"));
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn an_invalid_extra_pattern_stops_the_server_and_names_the_pattern() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let patterns = write_patterns(
        dir.path(),
        r#"
[[pattern]]
name = "fine_ticket"
regex = 'TKT-[0-9]{6}'
placeholder = "TICKET_REDACTED"

[[pattern]]
name = "broken_ticket"
regex = 'TKT-([0-9'
placeholder = "TICKET_REDACTED"
"#,
    )?;
    let out = std::process::Command::new(bin("bridge"))
        .arg("--db")
        .arg(dir.path().join("b.db"))
        .args(["serve", "--redaction-patterns"])
        .arg(&patterns)
        .env("BRIDGE_LOG", "warn")
        .stdin(Stdio::null())
        .output()?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "serve started: {stderr}");
    assert!(stderr.contains("broken_ticket"), "{stderr}");
    assert!(
        !stderr.contains("fine_ticket"),
        "only the bad pattern is blamed: {stderr}"
    );
    assert!(out.stdout.is_empty(), "nothing on the MCP channel");
    Ok(())
}
