//! Logs never hold a secret, at any level: a full two-agent conversation,
//! including YOLO (propose, approve on a real terminal, execute in a real
//! sandbox), runs with every process at `trace` (`BRIDGE_LOG`, `RUNNER_LOG`
//! and `RUST_LOG`); the captured stderr of every process must not contain
//! a session token, an approval token, the one-time code or a planted AWS
//! key, while showing that rmcp really logged the traffic.

use std::fs::File;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use anyhow::Context;
use bridge_tests::yolo::{approve, docker_or_skip, enable, runner_id, sandbox_image, wait_final};
use bridge_tests::{Conv, Server, bin, random_hex};
use serde_json::json;

const TRACE: [(&str, &str); 3] = [
    ("BRIDGE_LOG", "trace"),
    ("RUNNER_LOG", "trace"),
    ("RUST_LOG", "trace"),
];

/// One agent's own `bridge serve` (as a stdio client starts it), logging
/// at trace into `log`.
async fn agent(db: &Path, log: &Path) -> anyhow::Result<Server> {
    let cmd = tokio::process::Command::new(bin("bridge"));
    let mut cmd = cmd;
    cmd.arg("--db").arg(db).args(["serve", "--yolo"]);
    cmd.env_remove("BRIDGE_RATE_LIMIT");
    for (k, v) in TRACE {
        cmd.env(k, v);
    }
    Server::spawn(cmd, Stdio::from(File::create(log)?)).await
}

#[tokio::test(flavor = "multi_thread")]
async fn no_secret_reaches_any_log_at_trace_level() -> anyhow::Result<()> {
    let docker = docker_or_skip("no_secret_reaches_any_log_at_trace_level (YOLO part)");
    let dir = tempfile::tempdir()?;
    let db = dir.path().join("b.db");
    let (log_a, log_b, log_runner) = (
        dir.path().join("a.log"),
        dir.path().join("b.log"),
        dir.path().join("runner.log"),
    );
    let a = agent(&db, &log_a).await?;
    let b = agent(&db, &log_b).await?;
    let c = Conv::create(&a).await?;
    let aws = format!("AKIA{}", random_hex(8).to_uppercase());
    let mut secrets = vec![c.token_a.clone(), c.token_b.clone(), aws.clone()];

    a.ok(
        "send_to_partner",
        c.args("a", json!({"message": format!("deploy with {aws} please")})),
    )
    .await?;
    let inbox = b.ok("check_messages", c.args("b", json!({}))).await?;
    assert!(inbox.to_string().contains("AWS_KEY_REDACTED"), "{inbox}");
    b.ok(
        "send_to_partner",
        c.args("b", json!({"message": "done", "action_type": "info"})),
    )
    .await?;
    a.ok("check_messages", c.args("a", json!({"wait_seconds": 1})))
        .await?;
    a.ok(
        "update_my_status",
        c.args("a", json!({"status": "working"})),
    )
    .await?;
    b.ok("check_partner_status", c.args("b", json!({}))).await?;
    // A wrong token and a token in the wrong field are logged too.
    let wrong = random_hex(32);
    secrets.push(wrong.clone());
    b.refused(
        "check_messages",
        json!({"conversation_id": c.id, "session_id": "b", "token": wrong}),
    )
    .await?;
    b.refused(
        "check_messages",
        json!({"conversation_id": c.token_b, "session_id": "b", "token": c.token_b}),
    )
    .await?;
    // A secret in a proposed command is refused, and not logged either.
    let mut runner = None;
    if docker {
        let code = enable(&db, &c.id, &["--mode", "yolo", "--image", sandbox_image()])?;
        secrets.push(code);
        let refused = a
            .refused(
                "propose_command",
                c.args("a", json!({"command": format!("echo {aws}")})),
            )
            .await?;
        assert!(refused.contains("secret"), "{refused}");
        let child = std::process::Command::new(bin("runner"))
            .arg("--db")
            .arg(&db)
            .envs(TRACE)
            .stdin(Stdio::null())
            .stderr(Stdio::from(File::create(&log_runner)?))
            .spawn()?;
        runner = Some(bridge_tests::yolo::Runner { child });
        runner_id(&db)?;
        let p = a
            .ok(
                "propose_command",
                c.args("a", json!({"command": "echo hello"})),
            )
            .await?;
        let proposal = p["proposal_id"].as_str().context("proposal_id")?.to_owned();
        let token = approve(&db, &proposal, &[])?;
        secrets.push(token.clone());
        b.ok(
            "execute_command",
            c.args(
                "a",
                json!({"proposal_id": proposal, "approval_token": token}),
            ),
        )
        .await?;
        let job = wait_final(&db, &proposal, Duration::from_secs(90))?;
        assert_eq!(job.state, "done", "{job:?}");
        // Used once: a replay is refused, and the refusal is logged too.
        b.refused(
            "execute_command",
            c.args(
                "a",
                json!({"proposal_id": proposal, "approval_token": token}),
            ),
        )
        .await?;
    }
    a.stop().await?;
    b.stop().await?;
    if let Some(mut r) = runner {
        r.stop(Duration::from_secs(20))?;
    }

    let mut logs = vec![log_a, log_b];
    if docker {
        logs.push(log_runner);
    }
    for log in &logs {
        let text = std::fs::read_to_string(log)?;
        // The test means something only if the traffic really was logged:
        // rmcp's request lines in the servers, trace events in the runner.
        let traced = if log.ends_with("runner.log") {
            text.contains("TRACE") || text.contains("DEBUG")
        } else {
            text.contains("send_to_partner") && text.contains("TRACE")
        };
        assert!(
            traced,
            "{} is not a trace log ({} lines)",
            log.display(),
            text.lines().count()
        );
        for s in &secrets {
            if let Some(line) = text.lines().find(|l| l.contains(s.as_str())) {
                panic!("{} leaks a secret: {line}", log.display());
            }
        }
        eprintln!(
            "{}: {} lines, no secret",
            log.display(),
            text.lines().count()
        );
    }
    Ok(())
}
