//! Approval-token misuse and the other ways `propose_command` and
//! `execute_command` say no: reuse, expiry, another proposal's token, the
//! wrong conversation, tampering, disable and reject, policy and secrets.
//! Every refusal must be audited and nothing refused may run.

use std::path::Path;
use std::time::Duration;

use bridge_tests::yolo::{self, Runner, World};
use bridge_tests::{Conv, Server, audit_rows_for, contains, db_bytes, sql};
use serde_json::{Value, json};

/// The reasons recorded for refused `execute_command` calls on `proposal`.
fn execute_refusals(db: &Path, proposal: &str) -> anyhow::Result<Vec<String>> {
    Ok(audit_rows_for(db, "yolo.execute")?
        .into_iter()
        .filter(|r| r.outcome == "refused")
        .filter_map(|r| {
            let d: Value = serde_json::from_str(&r.detail).ok()?;
            (d["proposal_id"] == proposal).then(|| d["reason"].as_str().unwrap_or("").to_owned())
        })
        .collect())
}

/// How many times a runner started `proposal` in a container.
fn job_starts(db: &Path, proposal: &str) -> anyhow::Result<usize> {
    Ok(audit_rows_for(db, "job.start")?
        .iter()
        .filter(|r| r.detail.contains(proposal))
        .count())
}

fn exec_args(proposal: &str, token: &str) -> Value {
    json!({"proposal_id": proposal, "approval_token": token})
}

fn dry_args(proposal: &str, token: &str) -> Value {
    json!({"proposal_id": proposal, "approval_token": token, "dry_run": true})
}

/// A bridge with YOLO on and one conversation the operator enabled, but no
/// runner: for refusals that happen before anything is queued.
async fn bridge_only(
    mode: &str,
) -> anyhow::Result<(tempfile::TempDir, std::path::PathBuf, Server, Conv)> {
    let dir = tempfile::tempdir()?;
    let db = dir.path().join("b.db");
    let s = Server::start_with_env(&db, &[], &[("YOLO_MODE", "1")]).await?;
    let c = Conv::create(&s).await?;
    yolo::enable(
        &db,
        &c.id,
        &[
            "--mode",
            mode,
            "--image",
            yolo::test_image(),
            "--timeout",
            "5",
        ],
    )?;
    Ok((dir, db, s, c))
}

async fn propose(s: &Server, c: &Conv, command: &str) -> anyhow::Result<String> {
    let p = s
        .ok("propose_command", c.args("a", json!({"command": command})))
        .await?;
    Ok(p["proposal_id"].as_str().unwrap_or_default().to_owned())
}

fn state(db: &Path, proposal: &str) -> anyhow::Result<String> {
    Ok(yolo::job(db, proposal)?.state)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_used_token_never_runs_anything_again() -> anyhow::Result<()> {
    if !yolo::docker_or_skip("a_used_token_never_runs_anything_again") {
        return Ok(());
    }
    let mut w = World::start(&["--timeout", "10"]).await?;
    let p = w.propose("echo once").await?;
    let token = yolo::approve(&w.db, &p, &[])?;
    let r = w.execute(&p, &token).await?;
    assert_eq!(r["state"], "done", "{r}");
    assert_eq!(r["stdout"], "once\n");
    for (session, refused) in [
        ("a", "already used"),
        ("b", "only the session that proposed"),
    ] {
        let no = w
            .server
            .refused(
                "execute_command",
                w.conv.args(session, exec_args(&p, &token)),
            )
            .await?;
        assert!(no.contains(refused), "{no}");
    }
    // Not even a dry run accepts it now.
    let no = w
        .server
        .refused("execute_command", w.conv.args("a", dry_args(&p, &token)))
        .await?;
    assert!(no.contains("already used"), "{no}");
    let reasons = execute_refusals(&w.db, &p)?;
    assert_eq!(reasons.len(), 3, "{reasons:?}");
    assert!(
        reasons
            .iter()
            .all(|r| r.contains("already used") || r.contains("only the session that proposed")),
        "{reasons:?}"
    );
    assert_eq!(job_starts(&w.db, &p)?, 1);
    w.assert_healthy().await?;
    w.finish().await
}

#[tokio::test(flavor = "multi_thread")]
async fn an_expired_token_is_refused() -> anyhow::Result<()> {
    let (_dir, db, s, c) = bridge_only("yolo").await?;
    let p = propose(&s, &c, "echo late").await?;
    let token = yolo::approve(&db, &p, &["--ttl", "1"])?;
    let listed = yolo::operator_yolo(&db, &["--json", "yolo", "tokens"])?;
    let listed: Value = serde_json::from_slice(&listed.stdout)?;
    assert_eq!(listed[0]["proposal_id"], p.as_str(), "{listed}");
    // Expire it now instead of waiting a second.
    let n = sql(&db)?.execute(
        "UPDATE approvals SET expires_at = 0 WHERE proposal_id = ?1",
        [&p],
    )?;
    assert_eq!(n, 1);
    let no = s
        .refused("execute_command", c.args("a", dry_args(&p, &token)))
        .await?;
    assert!(no.contains("expired"), "{no}");
    let no = s
        .refused("execute_command", c.args("a", exec_args(&p, &token)))
        .await?;
    assert!(no.contains("expired"), "{no}");
    assert_eq!(state(&db, &p)?, "approved", "nothing was queued");
    let reasons = execute_refusals(&db, &p)?;
    assert_eq!(reasons.len(), 2, "{reasons:?}");
    assert!(reasons.iter().all(|r| r.contains("expired")), "{reasons:?}");
    let listed = yolo::operator_yolo(&db, &["--json", "yolo", "tokens"])?;
    let listed: Value = serde_json::from_slice(&listed.stdout)?;
    assert_eq!(
        listed,
        json!([]),
        "an expired token is still listed as active"
    );
    yolo::assert_audit_verifies(&db)?;
    s.stop().await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_token_works_only_for_its_own_proposal() -> anyhow::Result<()> {
    if !yolo::docker_or_skip("a_token_works_only_for_its_own_proposal") {
        return Ok(());
    }
    let mut w = World::start(&["--timeout", "10"]).await?;
    let p1 = w.propose("echo one").await?;
    let p2 = w.propose("echo two").await?;
    let t1 = yolo::approve(&w.db, &p1, &[])?;
    let t2 = yolo::approve(&w.db, &p2, &[])?;
    for args in [exec_args(&p2, &t1), dry_args(&p2, &t1), exec_args(&p1, &t2)] {
        let no = w
            .server
            .refused("execute_command", w.conv.args("a", args))
            .await?;
        assert!(no.contains("invalid, expired or already used"), "{no}");
    }
    assert_eq!(state(&w.db, &p1)?, "approved");
    assert_eq!(state(&w.db, &p2)?, "approved");
    let reasons = [execute_refusals(&w.db, &p1)?, execute_refusals(&w.db, &p2)?].concat();
    assert_eq!(reasons.len(), 3, "{reasons:?}");
    assert!(
        reasons.iter().all(|r| r.contains("another proposal")),
        "{reasons:?}"
    );
    // The misuse spent neither token.
    let r = w.execute(&p1, &t1).await?;
    assert_eq!(
        (&r["state"], &r["stdout"]),
        (&json!("done"), &json!("one\n")),
        "{r}"
    );
    let r = w.execute(&p2, &t2).await?;
    assert_eq!(
        (&r["state"], &r["stdout"]),
        (&json!("done"), &json!("two\n")),
        "{r}"
    );
    assert_eq!(job_starts(&w.db, &p1)?, 1);
    assert_eq!(job_starts(&w.db, &p2)?, 1);
    w.assert_healthy().await?;
    w.finish().await
}

#[tokio::test(flavor = "multi_thread")]
async fn another_conversation_cannot_use_a_proposal_or_its_token() -> anyhow::Result<()> {
    let (_dir, db, s, x) = bridge_only("yolo").await?;
    let y = Conv::create(&s).await?;
    yolo::enable(
        &db,
        &y.id,
        &[
            "--mode",
            "yolo",
            "--image",
            yolo::test_image(),
            "--timeout",
            "5",
        ],
    )?;
    let px = propose(&s, &x, "echo x").await?;
    let tx = yolo::approve(&db, &px, &[])?;
    let py = propose(&s, &y, "echo y").await?;
    let ty = yolo::approve(&db, &py, &[])?;

    // Y's credentials, X's proposal and token: as if the proposal did not exist.
    for args in [exec_args(&px, &tx), dry_args(&px, &tx)] {
        let no = s.refused("execute_command", y.args("a", args)).await?;
        assert!(no.contains("no proposal"), "{no}");
    }
    // X's token on Y's proposal, with Y's credentials.
    let no = s
        .refused("execute_command", y.args("a", exec_args(&py, &tx)))
        .await?;
    assert!(no.contains("invalid, expired or already used"), "{no}");
    // Y's token on X's proposal, with X's credentials.
    let no = s
        .refused("execute_command", x.args("a", exec_args(&px, &ty)))
        .await?;
    assert!(no.contains("invalid, expired or already used"), "{no}");
    // X's session token presented for conversation Y: not even authenticated.
    let mut forged = x.args("b", exec_args(&px, &tx));
    forged["conversation_id"] = json!(y.id);
    let no = s.refused("execute_command", forged).await?;
    assert!(!no.is_empty());

    assert_eq!(state(&db, &px)?, "approved");
    assert_eq!(state(&db, &py)?, "approved");
    let refused: Vec<_> = audit_rows_for(&db, "yolo.execute")?
        .into_iter()
        .filter(|r| r.outcome == "refused")
        .collect();
    assert_eq!(refused.len(), 4, "{refused:?}");
    assert_eq!(
        refused
            .iter()
            .filter(|r| r.conversation_id.as_deref() == Some(&y.id))
            .count(),
        3
    );
    // Both tokens are still good for their own proposals.
    s.ok("execute_command", x.args("a", dry_args(&px, &tx)))
        .await?;
    s.ok("execute_command", y.args("a", dry_args(&py, &ty)))
        .await?;
    yolo::assert_audit_verifies(&db)?;
    s.stop().await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_proposal_changed_after_approval_is_refused_and_not_run() -> anyhow::Result<()> {
    if !yolo::docker_or_skip("a_proposal_changed_after_approval_is_refused_and_not_run") {
        return Ok(());
    }
    let mut w = World::start(&["--timeout", "10"]).await?;
    let p = w.propose("echo harmless").await?;
    let token = yolo::approve(&w.db, &p, &[])?;
    let n = sql(&w.db)?.execute(
        "UPDATE proposals SET command = 'echo pwned' WHERE id = ?1",
        [&p],
    )?;
    assert_eq!(n, 1);
    for args in [dry_args(&p, &token), exec_args(&p, &token)] {
        let no = w
            .server
            .refused("execute_command", w.conv.args("a", args))
            .await?;
        assert!(no.contains("changed"), "{no}");
    }
    let reasons = execute_refusals(&w.db, &p)?;
    assert_eq!(reasons.len(), 2, "{reasons:?}");
    assert!(reasons.iter().all(|r| r.contains("hash")), "{reasons:?}");
    assert_eq!(state(&w.db, &p)?, "approved");
    assert_eq!(job_starts(&w.db, &p)?, 0);
    assert!(audit_rows_for(&w.db, "job.start")?.is_empty());
    let msgs = [
        yolo::inbox(&w.server, &w.conv, "a").await?,
        yolo::inbox(&w.server, &w.conv, "b").await?,
    ]
    .concat();
    assert!(
        !msgs.iter().any(|m| m["kind"] == "command_result"),
        "{msgs:?}"
    );
    w.assert_healthy().await?;
    w.finish().await
}

/// The runner checks the hash too: a proposal edited after its token was
/// spent but before a runner claimed it is failed, not run.
#[tokio::test(flavor = "multi_thread")]
async fn a_job_changed_while_queued_is_failed_by_the_runner() -> anyhow::Result<()> {
    if !yolo::docker_or_skip("a_job_changed_while_queued_is_failed_by_the_runner") {
        return Ok(());
    }
    let image = yolo::sandbox_image();
    let dir = tempfile::tempdir()?;
    let db = dir.path().join("b.db");
    let s = Server::start_with_env(&db, &[], &[("YOLO_MODE", "1")]).await?;
    let c = Conv::create(&s).await?;
    yolo::enable(
        &db,
        &c.id,
        &["--mode", "yolo", "--image", image, "--timeout", "10"],
    )?;
    let p = propose(&s, &c, "echo harmless").await?;
    let token = yolo::approve(&db, &p, &[])?;
    // No runner yet: the job waits in the queue.
    let call = yolo::spawn_call(&s, "execute_command", c.args("a", exec_args(&p, &token)));
    yolo::wait_until("the job to be queued", Duration::from_secs(20), || {
        Ok(state(&db, &p)? == "queued")
    })?;
    sql(&db)?.execute(
        "UPDATE proposals SET command = 'echo pwned' WHERE id = ?1",
        [&p],
    )?;
    let mut runner = Runner::start(&db, &[])?;
    let rid = yolo::runner_id(&db)?;
    let r = bridge_tests::ok(call.await??)?;
    assert_eq!(r["state"], "failed", "{r}");
    let job = yolo::job(&db, &p)?;
    assert!(
        job.failure
            .as_deref()
            .unwrap_or("")
            .contains("no longer matches"),
        "{job:?}"
    );
    assert_eq!(job_starts(&db, &p)?, 0);
    assert!(job.container_id.is_none(), "{job:?}");
    assert!(
        !contains(&db_bytes(&db), "pwned\n"),
        "the edited command ran"
    );
    assert!(runner.child.try_wait()?.is_none());
    runner.stop(Duration::from_secs(20))?;
    assert!(yolo::containers_with_label(&format!("mcp-bridge.runner={rid}"))?.is_empty());
    yolo::assert_audit_verifies(&db)?;
    s.stop().await
}

/// Only the session that proposed a command may run it, even with a valid
/// token: the other session is refused, and the token stays unspent.
#[tokio::test(flavor = "multi_thread")]
async fn only_the_proposing_session_may_execute() -> anyhow::Result<()> {
    if !yolo::docker_or_skip("only_the_proposing_session_may_execute") {
        return Ok(());
    }
    let w = World::start(&["--timeout", "10"]).await?;
    let p = w.propose("echo mine").await?;
    let token = yolo::approve(&w.db, &p, &[])?;
    for args in [dry_args(&p, &token), exec_args(&p, &token)] {
        let no = w
            .server
            .refused("execute_command", w.conv.args("b", args))
            .await?;
        assert!(
            no.contains("only the session that proposed") && no.contains("\"a\""),
            "{no}"
        );
    }
    assert_eq!(state(&w.db, &p)?, "approved");
    let r = w.execute(&p, &token).await?;
    assert_eq!(
        (&r["state"], &r["stdout"]),
        (&json!("done"), &json!("mine\n")),
        "{r}"
    );
    w.finish().await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dry_run_does_not_spend_the_token() -> anyhow::Result<()> {
    if !yolo::docker_or_skip("a_dry_run_does_not_spend_the_token") {
        return Ok(());
    }
    let mut w = World::start(&["--timeout", "10"]).await?;
    let p = w.propose("echo real").await?;
    let token = yolo::approve(&w.db, &p, &[])?;
    for _ in 0..2 {
        let dry = w
            .server
            .ok("execute_command", w.conv.args("a", dry_args(&p, &token)))
            .await?;
        assert_eq!(dry["dry_run"], true, "{dry}");
        assert_eq!(state(&w.db, &p)?, "approved");
    }
    assert_eq!(job_starts(&w.db, &p)?, 0, "a dry run started a job");
    let r = w.execute(&p, &token).await?;
    assert_eq!(
        (&r["state"], &r["stdout"]),
        (&json!("done"), &json!("real\n")),
        "{r}"
    );
    assert_eq!(audit_rows_for(&w.db, "yolo.execute.dry_run")?.len(), 2);
    assert_eq!(job_starts(&w.db, &p)?, 1);
    w.assert_healthy().await?;
    w.finish().await
}

#[tokio::test(flavor = "multi_thread")]
async fn the_policy_refuses_at_propose_and_names_the_rule() -> anyhow::Result<()> {
    let (_dir, db, s, safe) = bridge_only("safe").await?;
    let no = s
        .refused(
            "propose_command",
            safe.args("a", json!({"command": "rm -rf x"})),
        )
        .await?;
    let rule = regex::Regex::new(r"blocked by policy rule `([^`]+)`")?;
    assert!(
        rule.is_match(&no),
        "safe mode accepted or did not name a rule: {no}"
    );

    let yolo_conv = Conv::create(&s).await?;
    yolo::enable(
        &db,
        &yolo_conv.id,
        &["--mode", "yolo", "--image", yolo::test_image()],
    )?;
    let no = s
        .refused(
            "propose_command",
            yolo_conv.args("a", json!({"command": "sudo ls"})),
        )
        .await?;
    assert!(rule.is_match(&no), "{no}");
    // What yolo mode does allow still goes through.
    propose(&s, &yolo_conv, "rm -rf /tmp/x").await?;

    let refused: Vec<Value> = audit_rows_for(&db, "yolo.propose")?
        .into_iter()
        .filter(|r| r.outcome == "refused")
        .map(|r| serde_json::from_str(&r.detail).unwrap_or_default())
        .collect();
    assert_eq!(refused.len(), 2, "{refused:?}");
    assert!(
        refused
            .iter()
            .all(|d| d["reason"] == "policy" && !d["rule"].as_str().unwrap_or("").is_empty()),
        "{refused:?}"
    );
    let stored: i64 = sql(&db)?.query_row("SELECT count(*) FROM proposals", [], |r| r.get(0))?;
    assert_eq!(stored, 1, "a blocked command was stored as a proposal");
    yolo::assert_audit_verifies(&db)?;
    s.stop().await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_secret_in_the_command_is_refused_and_never_stored() -> anyhow::Result<()> {
    let (_dir, db, s, c) = bridge_only("yolo").await?;
    let no = s
        .refused(
            "propose_command",
            c.args("a", json!({"command": "echo AKIAIOSFODNN7EXAMPLE"})),
        )
        .await?;
    assert!(no.contains("secret") && no.contains("aws"), "{no}");
    let refused: Vec<_> = audit_rows_for(&db, "yolo.propose")?
        .into_iter()
        .filter(|r| r.outcome == "refused")
        .collect();
    assert_eq!(refused.len(), 1);
    assert!(refused[0].detail.contains("secret in command"));
    assert!(!contains(&db_bytes(&db), "AKIAIOSFODNN7EXAMPLE"));
    let stored: i64 = sql(&db)?.query_row("SELECT count(*) FROM proposals", [], |r| r.get(0))?;
    assert_eq!(stored, 0);
    yolo::assert_audit_verifies(&db)?;
    s.stop().await
}

#[tokio::test(flavor = "multi_thread")]
async fn secrets_a_command_prints_are_redacted_before_storage() -> anyhow::Result<()> {
    if !yolo::docker_or_skip("secrets_a_command_prints_are_redacted_before_storage") {
        return Ok(());
    }
    let mut w = World::start(&["--timeout", "10"]).await?;
    // The secret exists only at run time: neither the command nor anything
    // the bridge stored before the run contains it.
    let r = w
        .run(r"printf 'pass%s=%s%s\n' word hunter2 hunter2; printf 'pass%s=%s%s\n' word hunter2 hunter2 >&2")
        .await?;
    assert_eq!(r.job.state, "done", "{r:?}");
    assert!(r.stdout().contains("password=PASSWORD_REDACTED"), "{r:?}");
    assert!(r.stderr().contains("password=PASSWORD_REDACTED"), "{r:?}");
    assert_eq!(r.reply["stdout"], "password=PASSWORD_REDACTED\n");
    for session in ["a", "b"] {
        let msgs = yolo::inbox(&w.server, &w.conv, session).await?;
        let result = msgs
            .iter()
            .find(|m| m["kind"] == "command_result")
            .expect("a command_result message");
        let body = result["message"].as_str().unwrap_or_default();
        assert!(body.contains("PASSWORD_REDACTED"), "{body}");
        assert!(!body.contains("hunter2hunter2"), "{body}");
    }
    w.assert_healthy().await?;
    let db = w.db.clone();
    w.finish().await?;
    assert!(
        !contains(&db_bytes(&db), "hunter2hunter2"),
        "the secret reached the database"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn disable_voids_approved_tokens_and_refuses_proposals() -> anyhow::Result<()> {
    let (_dir, db, s, c) = bridge_only("yolo").await?;
    let p = propose(&s, &c, "echo never").await?;
    let token = yolo::approve(&db, &p, &[])?;
    let out = yolo::operator_yolo(&db, &["yolo", "disable", &c.id])?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(state(&db, &p)?, "expired");
    for args in [dry_args(&p, &token), exec_args(&p, &token)] {
        s.refused("execute_command", c.args("a", args)).await?;
    }
    let no = s
        .refused(
            "propose_command",
            c.args("a", json!({"command": "echo again"})),
        )
        .await?;
    assert!(no.contains("not enabled"), "{no}");
    assert_eq!(execute_refusals(&db, &p)?.len(), 2);
    assert!(
        audit_rows_for(&db, "yolo.propose")?
            .iter()
            .any(|r| r.outcome == "refused"),
        "the refused proposal is not audited"
    );
    let listed = yolo::operator_yolo(&db, &["--json", "yolo", "tokens"])?;
    assert_eq!(serde_json::from_slice::<Value>(&listed.stdout)?, json!([]));
    yolo::assert_audit_verifies(&db)?;
    s.stop().await
}

#[tokio::test(flavor = "multi_thread")]
async fn reject_tells_both_sessions_and_voids_the_proposal() -> anyhow::Result<()> {
    let (_dir, db, s, c) = bridge_only("yolo").await?;
    let p1 = propose(&s, &c, "echo first").await?;
    let p2 = propose(&s, &c, "echo second").await?;
    let t2 = yolo::approve(&db, &p2, &[])?;
    // Reject needs YOLO_MODE=1 but no terminal.
    let out = bridge_tests::operator(&db, &["yolo", "reject", &p1])?;
    assert!(!out.status.success(), "reject worked without YOLO_MODE=1");
    for p in [&p1, &p2] {
        let out = yolo::operator_yolo(&db, &["yolo", "reject", p])?;
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(state(&db, p)?, "rejected");
    }
    for session in ["a", "b"] {
        let msgs = yolo::inbox(&s, &c, session).await?;
        for p in [&p1, &p2] {
            assert!(
                msgs.iter().any(|m| m["kind"] == "system"
                    && m["message"]
                        .as_str()
                        .unwrap_or("")
                        .contains(&format!("rejected proposal {p}"))),
                "session {session} was not told about {p}: {msgs:?}"
            );
        }
    }
    // A rejected proposal cannot be approved, and its earlier token is void.
    assert!(yolo::approve(&db, &p1, &[]).is_err());
    s.refused("execute_command", c.args("a", exec_args(&p2, &t2)))
        .await?;
    assert_eq!(execute_refusals(&db, &p2)?.len(), 1);
    assert!(
        audit_rows_for(&db, "yolo.approve")?
            .iter()
            .any(|r| r.outcome == "refused"),
        "the refused approval is not audited"
    );
    assert_eq!(state(&db, &p2)?, "rejected");
    yolo::assert_audit_verifies(&db)?;
    s.stop().await
}

#[tokio::test(flavor = "multi_thread")]
async fn the_approved_bytes_run_trailing_newlines_included() -> anyhow::Result<()> {
    if !yolo::docker_or_skip("the_approved_bytes_run_trailing_newlines_included") {
        return Ok(());
    }
    let w = World::start(&["--timeout", "10"]).await?;
    // A backslash and a newline continue the line; without the newline the
    // backslash would be an argument of its own and printf would print it.
    let p = w.propose("printf '%s' a \\\n").await?;
    let token = yolo::approve(&w.db, &p, &[])?;
    let r = w.execute(&p, &token).await?;
    assert_eq!(
        (&r["state"], &r["stdout"]),
        (&json!("done"), &json!("a")),
        "{r}"
    );
    w.finish().await
}
