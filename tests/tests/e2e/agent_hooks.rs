//! `bridge inbox`, the hook helper that wakes idle agents, through the real
//! binary: each message is told once and never marked read, the hook
//! answers follow Claude Code's and Codex's contracts, a `Stop` hook cannot
//! loop, tokens come only from a 0600 file or the environment, and an empty
//! look writes no audit row; the same over HTTP (`--url`), against the real
//! server in HTTP mode with its bearer token.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use bridge_tests::{
    Conv, HttpBridge, Server, audit_rows_for, bin, call, connect_http, messages, ok, random_hex,
};
use serde_json::{Value, json};

/// Runs `bridge inbox` for session `b` of `c` with the token in the
/// environment, `extra` arguments, and `stdin`.
fn inbox(db: &Path, c: &Conv, extra: &[&str], stdin: &str) -> anyhow::Result<Output> {
    let mut child = Command::new(bin("bridge"))
        .arg("--db")
        .arg(db)
        .args(["inbox", "--conversation", &c.id, "--session", "b"])
        .args(extra)
        .env("BRIDGE_TOKEN", &c.token_b)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    child.stdin.take().unwrap().write_all(stdin.as_bytes())?;
    Ok(child.wait_with_output()?)
}

fn out(o: &Output) -> String {
    assert!(o.status.success(), "bridge inbox failed: {o:?}");
    String::from_utf8_lossy(&o.stdout).trim().to_owned()
}

fn hook(event: &str, stop_hook_active: bool) -> String {
    json!({"session_id": "x", "hook_event_name": event, "stop_hook_active": stop_hook_active})
        .to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn each_message_is_told_once_and_stays_unread() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let db = dir.path().join("b.db");
    let s = Server::start(&db, &[]).await?;
    let c = Conv::create(&s).await?;
    assert_eq!(out(&inbox(&db, &c, &[], "")?), "", "nothing to tell yet");
    s.ok(
        "send_to_partner",
        c.args(
            "a",
            json!({"message": "SECRET-PLAN please review", "action_type": "question"}),
        ),
    )
    .await?;
    let told = out(&inbox(&db, &c, &["--format", "json"], "")?);
    let v: Value = serde_json::from_str(&told)?;
    assert_eq!(v["new"].as_array().map(Vec::len), Some(1), "{v}");
    assert_eq!(v["new"][0]["from"], "a");
    assert_eq!(v["new"][0]["action_type"], "question");
    assert!(
        v["summary"]
            .as_str()
            .unwrap_or_default()
            .contains("check_messages"),
        "{v}"
    );
    // Never the text: one agent cannot write into another's context this way.
    assert!(!told.contains("SECRET-PLAN"), "{told}");
    // Told once.
    assert_eq!(out(&inbox(&db, &c, &[], "")?), "");
    // Not marked read: the agent still reads it.
    let got = messages(&s.ok("check_messages", c.args("b", json!({}))).await?);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0]["message"], "SECRET-PLAN please review");
    // One audit row for the call that told something, none for the others.
    assert_eq!(audit_rows_for(&db, "inbox.notify")?.len(), 1);
    s.stop().await
}

#[tokio::test(flavor = "multi_thread")]
async fn hook_answers_follow_the_clients_contracts_and_stop_cannot_loop() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let db = dir.path().join("b.db");
    let s = Server::start(&db, &[]).await?;
    let c = Conv::create(&s).await?;
    let send = |text: &'static str| s.ok("send_to_partner", c.args("a", json!({"message": text})));

    send("one").await?;
    let stop = out(&inbox(
        &db,
        &c,
        &["--format", "hook"],
        &hook("Stop", false),
    )?);
    let v: Value = serde_json::from_str(&stop)?;
    assert_eq!(v["decision"], "block", "{v}");
    assert!(
        v["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("1 new message"),
        "{v}"
    );
    // The same mail never blocks twice.
    assert_eq!(
        out(&inbox(
            &db,
            &c,
            &["--format", "hook"],
            &hook("Stop", false)
        )?),
        ""
    );

    // Once a Stop hook made the agent continue, it may stop: nothing is
    // told (so nothing is lost), and the next prompt hears of it.
    send("two").await?;
    assert_eq!(
        out(&inbox(&db, &c, &["--format", "hook"], &hook("Stop", true))?),
        ""
    );
    for event in ["UserPromptSubmit", "PostToolUse"] {
        let said = out(&inbox(&db, &c, &["--format", "hook"], &hook(event, false))?);
        if event == "UserPromptSubmit" {
            let v: Value = serde_json::from_str(&said)?;
            assert_eq!(v["hookSpecificOutput"]["hookEventName"], event, "{v}");
            let context = v["hookSpecificOutput"]["additionalContext"]
                .as_str()
                .unwrap_or_default();
            assert!(
                context.contains("1 new message") && context.contains(&c.id),
                "{v}"
            );
        } else {
            assert_eq!(said, "", "told twice");
        }
    }
    let bad = inbox(&db, &c, &["--format", "hook"], &hook("Nonsense", false))?;
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("unsupported hook event"));
    let garbage = inbox(&db, &c, &["--format", "hook"], "not json")?;
    assert!(String::from_utf8_lossy(&garbage.stderr).contains("hook_event_name"));
    s.stop().await
}

#[tokio::test(flavor = "multi_thread")]
async fn the_token_comes_from_a_private_file_or_the_environment_only() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let db = dir.path().join("b.db");
    let s = Server::start(&db, &[]).await?;
    let c = Conv::create(&s).await?;
    s.ok("send_to_partner", c.args("a", json!({"message": "hi"})))
        .await?;
    let file = dir.path().join("b.token");
    let saved = Command::new(bin("bridge"))
        .args(["inbox", "--save-token"])
        .arg(&file)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .and_then(|mut ch| {
            ch.stdin.take().unwrap().write_all(c.token_b.as_bytes())?;
            ch.wait_with_output()
        })?;
    assert!(saved.status.success(), "{saved:?}");
    assert_eq!(
        std::fs::metadata(&file)?.permissions().mode() & 0o777,
        0o600
    );

    let with_file = |extra: &[&str]| -> anyhow::Result<Output> {
        Ok(Command::new(bin("bridge"))
            .arg("--db")
            .arg(&db)
            .args([
                "inbox",
                "--conversation",
                &c.id,
                "--session",
                "b",
                "--token-file",
            ])
            .arg(&file)
            .args(extra)
            .env_remove("BRIDGE_TOKEN")
            .output()?)
    };
    assert!(out(&with_file(&[])?).contains("1 new message"));
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644))?;
    let open = with_file(&[])?;
    assert!(!open.status.success());
    assert!(
        String::from_utf8_lossy(&open.stderr).contains("chmod 600"),
        "{open:?}"
    );

    // A wrong token reads nothing.
    let wrong = Command::new(bin("bridge"))
        .arg("--db")
        .arg(&db)
        .args(["inbox", "--conversation", &c.id, "--session", "b"])
        .env("BRIDGE_TOKEN", &c.token_a)
        .output()?;
    assert!(!wrong.status.success());
    assert!(String::from_utf8_lossy(&wrong.stderr).contains("invalid or expired session token"));
    s.stop().await
}

/// Runs `bridge inbox --url URL` for session `b` of `c`, the session token
/// in the environment, the HTTP bearer token from `bearer_file` (when
/// given), no database anywhere in reach.
fn inbox_url(
    url: &str,
    bearer_file: Option<&Path>,
    c: &Conv,
    extra: &[&str],
    stdin: &str,
) -> anyhow::Result<Output> {
    let mut cmd = Command::new(bin("bridge"));
    cmd.args([
        "inbox",
        "--url",
        url,
        "--conversation",
        &c.id,
        "--session",
        "b",
    ])
    .args(extra)
    .env("BRIDGE_TOKEN", &c.token_b)
    .env_remove("BRIDGE_HTTP_TOKEN")
    .env("BRIDGE_DB", "/nonexistent/bridge.db")
    .stdin(Stdio::piped())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    if let Some(f) = bearer_file {
        cmd.arg("--http-token-file").arg(f);
    }
    let mut child = cmd.spawn()?;
    child.stdin.take().unwrap().write_all(stdin.as_bytes())?;
    Ok(child.wait_with_output()?)
}

#[tokio::test(flavor = "multi_thread")]
async fn over_http_each_message_is_told_once_stays_unread_and_answers_hooks() -> anyhow::Result<()>
{
    let dir = tempfile::tempdir()?;
    let db = dir.path().join("b.db");
    let bearer = random_hex(32);
    let server = HttpBridge::start(&db, &[], &[("BRIDGE_HTTP_TOKEN", &bearer)])?;
    let url = server.url();
    let a = connect_http(&url, Some(&bearer)).await?;
    let c = Conv::create_on(&a).await?;
    let bearer_file = dir.path().join("http.token");
    std::fs::write(&bearer_file, format!("{bearer}\n"))?;
    std::fs::set_permissions(&bearer_file, std::fs::Permissions::from_mode(0o600))?;
    let file = Some(bearer_file.as_path());
    let send = |text: &'static str, action: &'static str| {
        let a = &a;
        let args = c.args("a", json!({"message": text, "action_type": action}));
        async move { ok(call(a, "send_to_partner", args).await?) }
    };

    let nothing = inbox_url(&url, file, &c, &["--format", "hook"], &hook("Stop", false))?;
    assert_eq!(out(&nothing), "", "nothing to tell yet: {nothing:?}");

    // --format json: who sent what kind, never the text; then told once.
    send("SECRET-PLAN please review", "question").await?;
    let told = out(&inbox_url(&url, file, &c, &["--format", "json"], "")?);
    let v: Value = serde_json::from_str(&told)?;
    assert_eq!(v["conversation_id"], c.id.as_str(), "{v}");
    assert_eq!(v["session_id"], "b", "{v}");
    assert_eq!(v["new"].as_array().map(Vec::len), Some(1), "{v}");
    assert_eq!(v["new"][0]["from"], "a");
    assert_eq!(v["new"][0]["kind"], "message");
    assert_eq!(v["new"][0]["action_type"], "question");
    assert!(v["new"][0]["timestamp"].as_str().is_some(), "{v}");
    assert!(
        v["summary"]
            .as_str()
            .unwrap_or_default()
            .contains("check_messages"),
        "{v}"
    );
    assert!(!told.contains("SECRET-PLAN"), "{told}");
    let again: Value =
        serde_json::from_str(&out(&inbox_url(&url, file, &c, &["--format", "json"], "")?))?;
    assert_eq!(again["new"], json!([]), "told twice: {again}");
    assert_eq!(again["summary"], Value::Null, "{again}");

    // --format hook: Stop blocks once per message, never in a loop, and
    // the mail it let go is told at the next prompt.
    send("two", "info").await?;
    let stop: Value = serde_json::from_str(&out(&inbox_url(
        &url,
        file,
        &c,
        &["--format", "hook"],
        &hook("Stop", false),
    )?))?;
    assert_eq!(stop["decision"], "block", "{stop}");
    assert!(
        stop["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("1 new message"),
        "{stop}"
    );
    let stop2 = inbox_url(&url, file, &c, &["--format", "hook"], &hook("Stop", false))?;
    assert_eq!(out(&stop2), "", "the same mail blocked twice");
    send("three", "proposal").await?;
    let looping = inbox_url(&url, file, &c, &["--format", "hook"], &hook("Stop", true))?;
    assert_eq!(
        out(&looping),
        "",
        "stop_hook_active must let the agent stop"
    );
    let prompt: Value = serde_json::from_str(&out(&inbox_url(
        &url,
        file,
        &c,
        &["--format", "hook"],
        &hook("UserPromptSubmit", false),
    )?))?;
    assert_eq!(
        prompt["hookSpecificOutput"]["hookEventName"], "UserPromptSubmit",
        "{prompt}"
    );
    let context = prompt["hookSpecificOutput"]["additionalContext"]
        .as_str()
        .unwrap_or_default();
    assert!(
        context.contains("1 new message")
            && context.contains(&c.id)
            && context.contains("proposal"),
        "{prompt}"
    );

    // Hooks firing at once (Stop and PostToolUse together) tell a message
    // once between them: the cursor moves in the server's transaction.
    send("four", "info").await?;
    let racing: Vec<_> = (0..4)
        .map(|_| {
            let (url, c) = (url.clone(), c.clone());
            let file = bearer_file.clone();
            std::thread::spawn(move || inbox_url(&url, Some(&file), &c, &["--format", "json"], ""))
        })
        .collect();
    let mut told_ids = vec![];
    for h in racing {
        let o = h.join().expect("inbox thread")?;
        let v: Value = serde_json::from_str(&out(&o))?;
        told_ids.extend(
            v["new"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|n| n["id"].clone()),
        );
    }
    assert_eq!(told_ids.len(), 1, "told {told_ids:?}");

    // Nothing was marked read: the agent reads all four, text and all.
    let read = ok(call(&a, "check_messages", c.args("b", json!({}))).await?)?;
    let bodies: Vec<Value> = messages(&read)
        .iter()
        .map(|m| m["message"].clone())
        .collect();
    assert_eq!(
        bodies,
        [
            json!("SECRET-PLAN please review"),
            json!("two"),
            json!("three"),
            json!("four")
        ]
    );
    // One audit row per call that told something; the empty looks are
    // counted in aggregate, not itemized.
    assert_eq!(audit_rows_for(&db, "inbox.notify")?.len(), 4);

    // Refusals say what to do.
    let no_bearer = inbox_url(&url, None, &c, &[], "")?;
    assert!(!no_bearer.status.success());
    let err = String::from_utf8_lossy(&no_bearer.stderr);
    assert!(
        err.contains("HTTP 401") && err.contains("--http-token-file"),
        "{err}"
    );
    assert!(!err.contains(&bearer) && !err.contains(&c.token_b), "{err}");
    let mut wrong = c.clone();
    wrong.token_b = c.token_a.clone();
    let bad_token = inbox_url(&url, file, &wrong, &[], "")?;
    assert!(!bad_token.status.success());
    assert!(
        String::from_utf8_lossy(&bad_token.stderr).contains("invalid or expired session token"),
        "{bad_token:?}"
    );
    for (scheme_url, want) in [
        (
            url.replacen("http://", "https://", 1),
            "https is not supported",
        ),
        (url.replacen("http://", "ftp://", 1), "unsupported scheme"),
    ] {
        let o = inbox_url(&scheme_url, file, &c, &[], "")?;
        assert!(!o.status.success());
        assert!(
            String::from_utf8_lossy(&o.stderr).contains(want),
            "{scheme_url}: {o:?}"
        );
    }
    a.cancel().await?;
    drop(server);
    Ok(())
}
