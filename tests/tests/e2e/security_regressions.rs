//! The security regression suite: one test per weakness of the original
//! Python bridge, named after it, proving through the real binaries that it
//! stays fixed. SECURITY.md maps each test to the control it exercises.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::os::unix::fs::MetadataExt;
use std::time::{Duration, Instant};

use anyhow::Context;
use bridge_tests::yolo::{self, Enabled, World};
use bridge_tests::{
    Conv, HttpBridge, Server, audit_rows_for, audit_verify, connect_http, contains, db_bytes,
    free_port, messages, random_hex, raw_post, sql,
};
use serde_json::{Value, json};

const UNAUTHORIZED: &str = "invalid or expired session token";

fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The names `tools/list` offers.
async fn tool_names(s: &Server) -> anyhow::Result<BTreeSet<String>> {
    Ok(s.client
        .list_all_tools()
        .await?
        .into_iter()
        .map(|t| t.name.into_owned())
        .collect())
}

fn count(db: &std::path::Path, table: &str) -> anyhow::Result<i64> {
    Ok(sql(db)?.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))?)
}

/// Original: session tokens sat in the database in plaintext, so a copy of
/// the file was a copy of every credential.
#[tokio::test(flavor = "multi_thread")]
async fn weakness_plaintext_tokens_are_not_recoverable_from_the_database_file() -> anyhow::Result<()>
{
    let dir = tempfile::tempdir()?;
    let db = dir.path().join("b.db");
    let s = Server::start(&db, &[]).await?;
    let c = Conv::create(&s).await?;
    s.ok("send_to_partner", c.args("a", json!({"message": "hello"})))
        .await?;

    // What the file holds in place of each token is not a credential.
    let stored: Vec<(String, Vec<u8>)> = sql(&db)?
        .prepare("SELECT session_id, token_hash FROM sessions WHERE conversation_id = ?1 ORDER BY session_id")?
        .query_map([&c.id], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    assert_eq!(stored.len(), 2, "{stored:?}");
    for (session, hash) in &stored {
        let token = if session == "a" {
            &c.token_a
        } else {
            &c.token_b
        };
        assert_ne!(to_hex(hash), *token, "session {session}'s token is stored");
        let presented = Conv {
            token_a: to_hex(hash),
            token_b: to_hex(hash),
            ..c.clone()
        };
        let no = s
            .refused("check_messages", presented.args(session, json!({})))
            .await?;
        assert_eq!(no, UNAUTHORIZED, "the stored value of session {session}");
    }
    s.stop().await?;
    let bytes = db_bytes(&db);
    for token in [&c.token_a, &c.token_b] {
        assert!(!contains(&bytes, token), "a token is in the database file");
    }

    // A stolen copy of the database (without its `.secret`) cannot even
    // check a token: the hashes are keyed by a secret that is not in it.
    let stolen = tempfile::tempdir()?;
    let copy = stolen.path().join("b.db");
    std::fs::copy(&db, &copy)?;
    let wal = dir.path().join("b.db-wal");
    if wal.exists() {
        std::fs::copy(&wal, stolen.path().join("b.db-wal"))?;
    }
    let thief = Server::start(&copy, &[]).await?;
    for session in ["a", "b"] {
        let no = thief
            .refused("check_messages", c.args(session, json!({})))
            .await?;
        assert_eq!(no, UNAUTHORIZED, "session {session} on the stolen copy");
    }
    thief.stop().await?;
    assert_eq!(
        sql(&copy)?.query_row(
            "SELECT count(*) FROM conversations WHERE id = ?1",
            [&c.id],
            |r| r.get::<_, i64>(0)
        )?,
        1,
        "sanity: the copy holds the conversation"
    );
    // With its secret, the original still accepts them.
    let s = Server::start(&db, &[]).await?;
    let inbox = s.ok("check_messages", c.args("b", json!({}))).await?;
    assert_eq!(messages(&inbox).len(), 1);
    s.stop().await
}

/// Original: the audit log was an ordinary table anyone with the file could
/// quietly edit.
#[tokio::test(flavor = "multi_thread")]
async fn weakness_editable_audit_log_edits_are_detected() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let db = dir.path().join("b.db");
    let s = Server::start(&db, &[]).await?;
    let c = Conv::create(&s).await?;
    // An intruder's attempt, then ordinary traffic after it.
    let intruder = Conv {
        token_a: random_hex(32),
        ..c.clone()
    };
    s.refused(
        "send_to_partner",
        intruder.args("a", json!({"message": "let me in"})),
    )
    .await?;
    s.ok("send_to_partner", c.args("a", json!({"message": "after"})))
        .await?;
    s.ok("check_messages", c.args("b", json!({}))).await?;
    s.stop().await?;

    let (intact, anchor) = audit_verify(&db)?;
    assert!(intact, "{anchor}");
    let anchored_head = anchor["head_hash"]
        .as_str()
        .context("head_hash")?
        .to_owned();
    let attempt = audit_rows_for(&db, "auth.failed")?;
    assert_eq!(attempt.len(), 1, "{attempt:?}");
    let row = &attempt[0];

    // Every way of hiding the attempt in place is caught at that very row;
    // undoing the edit makes the chain whole again.
    let conn = sql(&db)?;
    let edits: [(&str, &str, &str); 3] = [
        ("outcome", "ok", "refused"),
        ("action", "message.check", "auth.failed"),
        ("session_id", "b", "a"),
    ];
    for (column, forged, original) in edits {
        let set = format!("UPDATE audit SET {column} = ?2 WHERE id = ?1");
        conn.execute(&set, rusqlite::params![row.id, forged])?;
        let (intact, report) = audit_verify(&db)?;
        assert!(!intact, "editing {column} went unnoticed: {report}");
        assert_eq!(report["first_break"]["id"], row.id, "{column}: {report}");
        conn.execute(&set, rusqlite::params![row.id, original])?;
    }
    let (intact, report) = audit_verify(&db)?;
    assert!(intact, "{report}");
    assert_eq!(report["head_hash"], anchored_head.as_str());

    // Cutting off the attempt and everything after it leaves a shorter
    // chain; the head hash anchored elsewhere is what gives it away.
    conn.execute("DELETE FROM audit WHERE id >= ?1", [row.id])?;
    let (_, report) = audit_verify(&db)?;
    assert_ne!(
        report["head_hash"],
        anchored_head.as_str(),
        "a truncated chain has the anchored head: {report}"
    );
    Ok(())
}

/// Original: one global rate limit, so one busy agent throttled everyone.
#[tokio::test(flavor = "multi_thread")]
async fn weakness_global_rate_limit_is_now_per_session_and_per_conversation() -> anyhow::Result<()>
{
    let dir = tempfile::tempdir()?;
    let db = dir.path().join("b.db");
    let s = Server::start(&db, &["--rate-limit", "3/1m"]).await?;
    let x = Conv::create(&s).await?;
    let y = Conv::create(&s).await?;
    let senders = [(&x, "a"), (&x, "b"), (&y, "a"), (&y, "b")];
    // Round robin: a shared counter would run dry in the first round.
    for round in 0..3 {
        for (c, session) in senders {
            s.ok(
                "send_to_partner",
                c.args(session, json!({"message": format!("round {round}")})),
            )
            .await
            .with_context(|| format!("round {round}, {} {session}", c.id))?;
        }
    }
    // Each of the four now hits its own limit, and only its own.
    for (c, session) in senders {
        let no = s
            .refused(
                "send_to_partner",
                c.args(session, json!({"message": "one more"})),
            )
            .await?;
        assert!(no.contains("3 sends per 60 s"), "{} {session}: {no}", c.id);
    }
    s.stop().await?;
    let limited: BTreeSet<(String, String)> = audit_rows_for(&db, "rate.limited")?
        .into_iter()
        .map(|r| {
            (
                r.conversation_id.unwrap_or_default(),
                r.session_id.unwrap_or_default(),
            )
        })
        .collect();
    let expected: BTreeSet<(String, String)> = senders
        .iter()
        .map(|(c, session)| (c.id.clone(), session.to_string()))
        .collect();
    assert_eq!(limited, expected);
    assert_eq!(audit_rows_for(&db, "message.send")?.len(), 12);
    Ok(())
}

/// Original: requests were counted before authentication, so anyone could
/// exhaust a session's quota by sending garbage in its name.
#[tokio::test(flavor = "multi_thread")]
async fn weakness_failed_auth_cannot_spend_another_sessions_quota() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let db = dir.path().join("b.db");
    let s = Server::start(&db, &["--rate-limit", "3/1m"]).await?;
    let victim = Conv::create(&s).await?;
    let other = Conv::create(&s).await?;
    // Tokens an attacker may really hold, presented in session a's name.
    let forged = [
        ("the partner's own token", victim.token_b.clone()),
        ("another conversation's token", other.token_a.clone()),
        ("a guessed token", random_hex(32)),
    ];
    for round in 0..4 {
        for (what, token) in &forged {
            let as_victim = Conv {
                token_a: token.clone(),
                ..victim.clone()
            };
            let no = s
                .refused(
                    "send_to_partner",
                    as_victim.args("a", json!({"message": format!("spend {round}")})),
                )
                .await?;
            assert_eq!(no, UNAUTHORIZED, "{what}");
        }
    }
    // Twelve refusals later every quota involved is untouched: the victim's,
    // and those of the sessions whose tokens were misused.
    for (c, session) in [(&victim, "a"), (&victim, "b"), (&other, "a")] {
        for i in 0..3 {
            s.ok(
                "send_to_partner",
                c.args(session, json!({"message": format!("mine {i}")})),
            )
            .await
            .with_context(|| format!("{} {session}, send {i}", c.id))?;
        }
    }
    let no = s
        .refused(
            "send_to_partner",
            victim.args("a", json!({"message": "fourth"})),
        )
        .await?;
    assert!(no.contains("rate limit"), "{no}");
    s.stop().await?;
    let failed = audit_rows_for(&db, "auth.failed")?;
    assert_eq!(failed.len(), 12);
    assert!(
        failed
            .iter()
            .all(|r| r.conversation_id.as_deref() == Some(victim.id.as_str())
                && r.session_id.as_deref() == Some("a")),
        "{failed:?}"
    );
    assert_eq!(audit_rows_for(&db, "rate.limited")?.len(), 1);
    Ok(())
}

/// Original: an agent could switch command execution on for itself.
#[tokio::test(flavor = "multi_thread")]
async fn weakness_agents_enabling_execution_is_operator_only() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let db = dir.path().join("b.db");
    let base = BTreeSet::from(
        [
            "create_conversation",
            "send_to_partner",
            "check_messages",
            "update_my_status",
            "check_partner_status",
            "ack_messages",
            "invite_participant",
            "list_participants",
            "inbox_notify",
        ]
        .map(String::from),
    );

    // The operator did not turn YOLO on: agents are not even offered it.
    let s = Server::start(&db, &[]).await?;
    assert_eq!(tool_names(&s).await?, base);
    let c = Conv::create(&s).await?;
    let calls = [
        ("propose_command", json!({"command": "id"})),
        (
            "execute_command",
            json!({"proposal_id": "prop_0000000000000000", "approval_token": format!("apv_{}", "0".repeat(48))}),
        ),
    ];
    for (tool, extra) in &calls {
        let no = s.refused(tool, c.args("a", extra.clone())).await?;
        assert!(no.contains("YOLO_MODE=1"), "{tool}: {no}");
    }
    s.stop().await?;

    // The operator offers the tools but has enabled no conversation. No tool
    // and no argument enables anything.
    let s = Server::start_with_env(&db, &[], &[("YOLO_MODE", "1")]).await?;
    let mut offered = base.clone();
    offered.extend(["propose_command".to_owned(), "execute_command".to_owned()]);
    assert_eq!(tool_names(&s).await?, offered);
    let no = s
        .refused("propose_command", c.args("a", json!({"command": "id"})))
        .await?;
    assert!(no.contains("not enabled"), "{no}");
    for field in ["yolo", "enable", "yolo_mode", "confirm"] {
        let mut args = c.args("a", json!({"command": "id"}));
        args[field] = json!(true);
        let no = s.refused("propose_command", args).await?;
        assert!(no.contains(field), "{field}: {no}");
    }
    // An agent that runs the operator's command from its own process, even
    // with YOLO_MODE=1 in its environment, has no terminal to answer with.
    let out = yolo::operator_yolo(&db, &["yolo", "enable", &c.id, "--mode", "yolo"])?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("interactive terminal"), "{stderr}");
    s.stop().await?;

    assert_eq!(count(&db, "yolo_enablements")?, 0);
    assert_eq!(count(&db, "proposals")?, 0);
    assert_eq!(audit_rows_for(&db, "yolo.enable")?.len(), 1);
    Ok(())
}

/// Original: the agent chose the working directory its commands ran in.
#[tokio::test(flavor = "multi_thread")]
async fn weakness_agents_choosing_workspace_or_image_is_operator_only() -> anyhow::Result<()> {
    let ws = tempfile::tempdir()?;
    let ws_path = std::fs::canonicalize(ws.path())?;
    let e = Enabled::start(&[
        "--mode",
        "restricted",
        "--image",
        yolo::test_image(),
        "--timeout",
        "5",
        "--workspace",
        ws_path.to_str().context("workspace path")?,
    ])
    .await?;
    let attempts = [
        ("workspace", json!("/")),
        ("workspace_rw", json!(true)),
        ("image", json!("alpine:latest")),
        ("mode", json!("yolo")),
        ("runtime", json!("runc")),
        (
            "mounts",
            json!(["/var/run/docker.sock:/var/run/docker.sock"]),
        ),
    ];
    for (field, value) in attempts {
        let mut args = e.conv.args("a", json!({"command": "ls"}));
        args[field] = value;
        let no = e.server.refused("propose_command", args).await?;
        assert!(no.contains(field), "{field}: {no}");
    }
    let no = e
        .server
        .refused(
            "propose_command",
            e.conv
                .args("a", json!({"command": "ls", "timeout_seconds": 3600})),
        )
        .await?;
    assert!(no.contains("timeout_seconds"), "{no}");

    // What an agent can propose carries the operator's settings, and the
    // approval hash covers them.
    let p = e
        .server
        .ok(
            "propose_command",
            e.conv.args("a", json!({"command": "ls"})),
        )
        .await?;
    assert_eq!(p["image"], yolo::test_image(), "{p}");
    assert_eq!(p["mode"], "restricted", "{p}");
    assert_eq!(p["workspace"], ws_path.to_str().unwrap(), "{p}");
    assert_eq!(p["workspace_read_only"], true, "{p}");
    assert_eq!(p["timeout_seconds"], 5, "{p}");
    let id = p["proposal_id"].as_str().context("proposal_id")?;
    let params: String =
        sql(&e.db)?.query_row("SELECT params FROM proposals WHERE id = ?1", [id], |r| {
            r.get(0)
        })?;
    let params: Value = serde_json::from_str(&params)?;
    assert_eq!(params["image"], yolo::test_image(), "{params}");
    assert_eq!(params["workspace"], ws_path.to_str().unwrap(), "{params}");
    assert_eq!(params["workspace_rw"], false, "{params}");
    assert_eq!(params["runtime"], Value::Null, "{params}");
    assert_eq!(count(&e.db, "proposals")?, 1);
    e.server.stop().await
}

/// Original: an approval, once given, was not tied to one command or one use.
#[tokio::test(flavor = "multi_thread")]
async fn weakness_reusable_approval_tokens_are_single_use_and_bound_to_the_command()
-> anyhow::Result<()> {
    if !yolo::docker_or_skip(
        "weakness_reusable_approval_tokens_are_single_use_and_bound_to_the_command",
    ) {
        return Ok(());
    }
    let mut w = World::start(&["--timeout", "10"]).await?;
    let approved = w.propose("echo approved-once").await?;
    let other = w.propose("echo never-approved").await?;
    let token = yolo::approve(&w.db, &approved, &[])?;
    let exec = |proposal: &str| json!({"proposal_id": proposal, "approval_token": token});

    // Bound to its proposal: useless for another one.
    let no = w
        .server
        .refused("execute_command", w.conv.args("a", exec(&other)))
        .await?;
    assert!(no.contains("approval token"), "{no}");
    // Bound to the exact command: refused while the stored command differs
    // from what the operator approved, accepted once it is the same again.
    let set_command = |command: &str| -> anyhow::Result<()> {
        let n = sql(&w.db)?.execute(
            "UPDATE proposals SET command = ?2 WHERE id = ?1",
            [approved.as_str(), command],
        )?;
        anyhow::ensure!(n == 1, "no proposal {approved}");
        Ok(())
    };
    set_command("echo swapped")?;
    let no = w
        .server
        .refused("execute_command", w.conv.args("a", exec(&approved)))
        .await?;
    assert!(no.contains("changed"), "{no}");
    set_command("echo approved-once")?;
    let r = w.execute(&approved, &token).await?;
    assert_eq!(r["state"], "done", "{r}");
    assert_eq!(r["stdout"], "approved-once\n", "{r}");

    // Single use: spent, for either session, even as a dry run.
    for (session, dry_run) in [("a", false), ("b", false), ("b", true)] {
        let mut args = w.conv.args(session, exec(&approved));
        args["dry_run"] = json!(dry_run);
        let no = w.server.refused("execute_command", args).await?;
        // The other session is refused before the token is looked at.
        let refused = if session == "a" {
            "already used"
        } else {
            "only the session that proposed"
        };
        assert!(no.contains(refused), "{session} {dry_run}: {no}");
    }
    assert_eq!(yolo::job_starts(&w.db, &approved)?, 1);
    assert_eq!(yolo::job_starts(&w.db, &other)?, 0);
    assert_eq!(yolo::job(&w.db, &other)?.state, "proposed");
    w.assert_healthy().await?;
    w.finish().await
}

/// Original: no network transport at all; ours must not reopen the hole an
/// unauthenticated HTTP port would be.
#[tokio::test(flavor = "multi_thread")]
async fn weakness_unauthenticated_http_is_refused() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let db = dir.path().join("b.db");
    // Reachable from other machines without a token: it will not start.
    let everywhere = SocketAddr::from(([0, 0, 0, 0], free_port()));
    match HttpBridge::start_on(&db, everywhere, &[], &[]) {
        Ok(_) => anyhow::bail!("serve --http {everywhere} started without a token"),
        Err(e) => assert!(e.to_string().contains("without authentication"), "{e:#}"),
    }

    let secret = random_hex(32);
    let server = HttpBridge::start(&db, &[], &[("BRIDGE_HTTP_TOKEN", &secret)])?;
    let host = format!("127.0.0.1:{}", server.addr.port());
    let wrong = format!("Bearer {}", random_hex(32));
    let refused: [(&str, &[(&str, &str)]); 3] = [
        ("no token", &[]),
        ("a wrong token", &[("Authorization", wrong.as_str())]),
        (
            "the token without `Bearer`",
            &[("Authorization", secret.as_str())],
        ),
    ];
    for (what, headers) in refused {
        assert_eq!(raw_post(server.addr, &host, headers)?, 401, "{what}");
    }
    let bearer = format!("Bearer {secret}");
    assert_eq!(
        raw_post(server.addr, &host, &[("Authorization", &bearer)])?,
        200
    );
    // A real MCP client gets nowhere without it, and everywhere with it.
    let without = tokio::time::timeout(Duration::from_secs(10), connect_http(&server.url(), None))
        .await
        .context("connecting without a token hung")?;
    assert!(without.is_err(), "an MCP client connected without a token");
    let client = connect_http(&server.url(), Some(&secret)).await?;
    Conv::create_on(&client).await?;
    client.cancel().await?;
    assert_eq!(count(&db, "conversations")?, 1);
    Ok(())
}

/// DNS rebinding: a web page whose name resolves to 127.0.0.1 must not be
/// able to drive the local HTTP server from the operator's browser.
#[tokio::test(flavor = "multi_thread")]
async fn weakness_foreign_host_header_is_refused() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let db = dir.path().join("b.db");
    // The default local set-up (loopback, no token) is what rebinding targets.
    let server = HttpBridge::start(&db, &[], &[])?;
    let port = server.addr.port();
    let local = format!("localhost:{port}");
    assert_eq!(raw_post(server.addr, &local, &[])?, 200);
    for host in [
        format!("rebind.attacker.example:{port}"),
        format!("127.0.0.1.attacker.example:{port}"),
        "attacker.example".to_owned(),
    ] {
        assert_eq!(raw_post(server.addr, &host, &[])?, 403, "Host: {host}");
    }
    // The browser's Origin gives the page away even under a local Host.
    assert_eq!(
        raw_post(
            server.addr,
            &local,
            &[("Origin", "http://rebind.attacker.example")]
        )?,
        403
    );
    drop(server);

    // A token does not make a foreign Host acceptable.
    let secret = random_hex(32);
    let server = HttpBridge::start(&db, &[], &[("BRIDGE_HTTP_TOKEN", &secret)])?;
    let bearer = format!("Bearer {secret}");
    let foreign = format!("rebind.attacker.example:{}", server.addr.port());
    assert_eq!(
        raw_post(server.addr, &foreign, &[("Authorization", &bearer)])?,
        403
    );
    Ok(())
}

/// Original: command output went back to agents as it was, secrets included.
#[tokio::test(flavor = "multi_thread")]
async fn weakness_secrets_in_command_output_are_redacted_before_storage() -> anyhow::Result<()> {
    if !yolo::docker_or_skip("weakness_secrets_in_command_output_are_redacted_before_storage") {
        return Ok(());
    }
    const AWS_KEY: &str = "AKIAIOSFODNN7EXAMPLE";
    let github = format!("ghp_{}", "k7Lm2Np9Rt4Vw6Yz8Bc1Df3Gh5Jq0Xs2Ua4");
    let mut w = World::start(&["--timeout", "10"]).await?;
    // The secrets exist only once the command runs: the proposal is clean.
    let r = w
        .run(&format!(
            "printf 'key AKIA%s\\n' {}; printf 'gh%s_%s\\n' p {} >&2",
            &AWS_KEY[4..],
            &github[4..]
        ))
        .await?;
    assert_eq!(r.job.state, "done", "{r:?}");
    assert_eq!(r.reply["stdout"], "key AWS_KEY_REDACTED\n", "{r:?}");
    assert_eq!(r.reply["stderr"], "GITHUB_TOKEN_REDACTED\n", "{r:?}");
    for session in ["a", "b"] {
        let result = yolo::inbox(&w.server, &w.conv, session)
            .await?
            .into_iter()
            .find(|m| m["kind"] == "command_result")
            .with_context(|| format!("session {session} got no command_result"))?;
        let body = result["message"].as_str().unwrap_or_default();
        assert!(body.contains("AWS_KEY_REDACTED"), "{body}");
        assert!(!body.contains(AWS_KEY) && !body.contains(&github), "{body}");
    }
    let finished = audit_rows_for(&w.db, "job.finish")?;
    let detail: Value = serde_json::from_str(&finished.last().context("job.finish")?.detail)?;
    let classes = detail["redacted_classes"].to_string();
    assert!(
        classes.contains("aws-access-key") && classes.contains("github-token"),
        "{detail}"
    );
    w.assert_healthy().await?;
    let db = w.db.clone();
    w.finish().await?;
    let stored = db_bytes(&db);
    assert!(
        !contains(&stored, AWS_KEY),
        "the AWS key reached the database"
    );
    assert!(
        !contains(&stored, &github),
        "the GitHub token reached the database"
    );
    Ok(())
}

/// Original: agents were told to poll every 30 s; a reply waited up to that.
#[tokio::test(flavor = "multi_thread")]
async fn weakness_30s_polling_is_now_push() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let db = dir.path().join("b.db");
    let waiter = Server::start(&db, &[]).await?;
    let other_process = Server::start(&db, &[]).await?;
    let c = Conv::create(&waiter).await?;
    for (how, sender) in [
        ("same process", &waiter),
        ("another process", &other_process),
    ] {
        let poll = async {
            let inbox = waiter
                .ok("check_messages", c.args("b", json!({"wait_seconds": 30})))
                .await;
            (inbox, Instant::now())
        };
        let send = async {
            // Once the long poll waits, so it exists before the message
            // does (the second round waits for the second such line).
            waiter.log.long_poll_waiting(&c.id, "b").await?;
            let sent = Instant::now();
            sender
                .ok("send_to_partner", c.args("a", json!({"message": how})))
                .await?;
            anyhow::Ok(sent)
        };
        let ((inbox, returned), sent) = tokio::join!(poll, send);
        let (inbox, sent) = (inbox?, sent?);
        let got = messages(&inbox);
        assert_eq!(got.len(), 1, "{how}: {inbox}");
        assert_eq!(got[0]["message"], how);
        let latency = returned.saturating_duration_since(sent);
        eprintln!("{how}: the long poll returned {latency:?} after the send began");
        assert!(
            latency < Duration::from_secs(1),
            "{how}: delivered {latency:?} after the send"
        );
    }
    waiter.stop().await?;
    other_process.stop().await
}

/// Original: approved commands ran with `shell=True` on the operator's host.
#[tokio::test(flavor = "multi_thread")]
async fn weakness_shell_true_on_host_commands_run_only_in_a_container() -> anyhow::Result<()> {
    if !yolo::docker_or_skip("weakness_shell_true_on_host_commands_run_only_in_a_container") {
        return Ok(());
    }
    let mut w = World::start(&["--timeout", "10"]).await?;
    // A file only the host can see.
    let marker = w.dir.path().join(format!("host-only-{}", random_hex(8)));
    std::fs::write(&marker, "host")?;
    let r = w
        .run(&format!(
            "hostname; id -u; cat {} 2>/dev/null || echo no-host-file; \
             touch /probe 2>/dev/null && echo root-writable || echo root-read-only",
            marker.display()
        ))
        .await?;
    assert_eq!(r.job.state, "done", "{r:?}");
    let lines: Vec<&str> = r.stdout().lines().collect();
    let host_name = std::fs::read_to_string("/proc/sys/kernel/hostname")?;
    let host_uid = std::fs::metadata("/proc/self")?.uid();
    assert_eq!(lines.len(), 4, "{r:?}");
    assert_eq!(lines[0], "sandbox", "{r:?}");
    assert_ne!(lines[0], host_name.trim(), "ran under the host's name");
    assert_eq!(lines[1], "65534", "{r:?}");
    assert_ne!(lines[1], host_uid.to_string(), "ran as the host user");
    assert_eq!(lines[2], "no-host-file", "the host's files are visible");
    assert_eq!(lines[3], "root-read-only", "{r:?}");
    assert!(!std::path::Path::new("/probe").exists());
    // It ran in the container the runner recorded, which is gone now.
    let container = r
        .job
        .container_id
        .clone()
        .context("no container recorded")?;
    assert!(!yolo::container_exists(&container)?);
    w.assert_healthy().await?;
    w.finish().await
}

/// Review of the Rust bridge (issue 9, section 3): "safe" mode accepted
/// commands that ran programs or wrote files, through abbreviated long options
/// (`--open-files-in-pag=`, `--compress-prog=`, `--outp=`) and variables
/// (`GIT_TRACE=`). Through the real binary, an agent in a safe-mode
/// conversation can propose none of them, nor other members of those classes,
/// and each refusal names what was wrong; everyday read-only commands still
/// go through.
#[tokio::test(flavor = "multi_thread")]
async fn weakness_safe_mode_ran_programs_and_wrote_files_through_options() -> anyhow::Result<()> {
    let e = Enabled::start(&["--mode", "safe", "--image", yolo::test_image()]).await?;
    // Refusals count against the proposal quota (10 a minute per session), so
    // the two sessions take turns. More members of each class are in the
    // policy's own corpus tests (`cargo test -p bridge --lib policy`).
    let session = |i: usize| if i.is_multiple_of(2) { "a" } else { "b" };
    let hostile = [
        (
            "git grep --open-files-in-pag='rm -f' -e important",
            "--open-files-in-pager",
        ),
        ("sort -S 1 --compress-prog=sh", "--compress-program"),
        ("sort --outp=FILE x", "--output"),
        ("GIT_TRACE=/workspace/x git status", "GIT_TRACE"),
        ("git grep -nOvim x", "-O"),
        ("git -c core.pager=sh log", "-c"),
        ("git log --outp=x", "--output"),
        ("sort --temp=/tmp x", "--temporary-directory"),
        ("rg --pr=./x foo", "--pre"),
        ("find . -fprint out", "-fprint"),
        ("tree -R", "-R"),
        ("sort *", "expanded by the shell"),
    ];
    for (i, (command, named)) in hostile.into_iter().enumerate() {
        let no = e
            .server
            .refused(
                "propose_command",
                e.conv.args(session(i), json!({"command": command})),
            )
            .await?;
        assert!(no.contains(named), "{command}: {no}");
    }
    for (i, command) in [
        "git log --oneline -20",
        "grep -rn TODO src",
        "find . -name '*.rs'",
        "sort file | uniq -c",
        "git diff HEAD~1 --stat",
        "LC_ALL=C sort -k2 -t, data.csv",
    ]
    .into_iter()
    .enumerate()
    {
        e.server
            .ok(
                "propose_command",
                e.conv.args(session(i + 1), json!({"command": command})),
            )
            .await
            .with_context(|| command.to_owned())?;
    }
    assert_eq!(count(&e.db, "proposals")?, 6);
    Ok(())
}
