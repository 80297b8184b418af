//! The whole YOLO flow through the real binaries: an MCP client proposes,
//! the operator enables and approves on a real pseudo-terminal, the agent
//! executes, the runner runs it in a real container, both sessions get the
//! result, and the audit chain verifies.

use std::time::Duration;

use bridge_tests::yolo::{self, Runner};
use bridge_tests::{Conv, Server, operator, operator_json};
use serde_json::json;

#[tokio::test(flavor = "multi_thread")]
async fn propose_enable_approve_execute_returns_result_to_both_sessions() -> anyhow::Result<()> {
    if !yolo::docker_or_skip("yolo_flow") {
        return Ok(());
    }
    let image = yolo::sandbox_image();
    let dir = tempfile::tempdir()?;
    let db = dir.path().join("b.db");
    let s = Server::start_with_env(&db, &[], &[("YOLO_MODE", "1")]).await?;
    let mut runner = Runner::start(&db, &[])?;
    let c = Conv::create(&s).await?;

    // Stage 1 holds, but the operator has not enabled this conversation.
    let no = s
        .refused(
            "propose_command",
            c.args("a", json!({"command": "echo hi"})),
        )
        .await?;
    assert!(no.contains("not enabled"), "{no}");

    yolo::enable(&db, &c.id, &["--mode", "safe", "--image", image])?;
    let p = s
        .ok(
            "propose_command",
            c.args(
                "a",
                json!({"command": "echo hi; echo oops >&2", "reason": "smoke test"}),
            ),
        )
        .await?;
    let pid = p["proposal_id"].as_str().unwrap().to_owned();
    assert_eq!(p["status"], "pending_approval");
    assert_eq!(p["workspace_read_only"], true);

    // The partner hears about the proposal.
    let inbox = s.ok("check_messages", c.args("b", json!({}))).await?;
    assert_eq!(inbox["messages"][0]["kind"], "proposal");
    assert!(
        inbox["messages"][0]["message"]
            .as_str()
            .unwrap()
            .contains(&pid)
    );

    let pending = operator_json(&db, &["yolo", "pending"]);
    // `yolo pending` needs YOLO_MODE=1 too: without it, it refuses.
    assert!(pending.is_err());

    let token = yolo::approve(&db, &pid, &[])?;
    let dry = s
        .ok(
            "execute_command",
            c.args(
                "a",
                json!({"proposal_id": pid, "approval_token": token, "dry_run": true}),
            ),
        )
        .await?;
    assert_eq!(dry["dry_run"], true);
    let r = s
        .ok(
            "execute_command",
            c.args("a", json!({"proposal_id": pid, "approval_token": token})),
        )
        .await?;
    assert_eq!(r["state"], "done", "{r}");
    assert_eq!(r["exit_code"], 0);
    assert_eq!(r["stdout"], "hi\n");
    assert_eq!(r["stderr"], "oops\n");

    // The same token never runs anything again.
    let again = s
        .refused(
            "execute_command",
            c.args("a", json!({"proposal_id": pid, "approval_token": token})),
        )
        .await?;
    assert!(
        again.contains("already used") || again.contains("invalid, expired"),
        "{again}"
    );

    for session in ["a", "b"] {
        let inbox = s.ok("check_messages", c.args(session, json!({}))).await?;
        let results: Vec<_> = inbox["messages"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["kind"] == "command_result")
            .collect();
        assert_eq!(results.len(), 1, "session {session}: {inbox}");
        let text = results[0]["message"].as_str().unwrap();
        assert!(
            text.contains("exited with code 0") && text.contains("hi"),
            "{text}"
        );
    }

    let out = operator(&db, &["audit", "verify"])?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let conn = rusqlite::Connection::open(&db)?;
    let actions: Vec<String> = conn
        .prepare("SELECT action FROM audit WHERE action LIKE 'yolo.%' OR action LIKE 'job.%' ORDER BY id")?
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    for want in [
        "yolo.enable",
        "yolo.propose",
        "yolo.approve",
        "yolo.execute.dry_run",
        "yolo.execute",
        "job.claim",
        "job.start",
        "job.finish",
    ] {
        assert!(
            actions.iter().any(|a| a == want),
            "missing {want} in {actions:?}"
        );
    }

    let rid = yolo::runner_id(&db)?;
    runner.stop(Duration::from_secs(20))?;
    assert!(
        yolo::containers_with_label(&format!("mcp-bridge.runner={rid}"))?.is_empty(),
        "containers left behind"
    );
    s.stop().await
}

#[tokio::test(flavor = "multi_thread")]
async fn yolo_tools_are_absent_and_operator_commands_refuse_without_yolo_mode() -> anyhow::Result<()>
{
    let dir = tempfile::tempdir()?;
    let db = dir.path().join("b.db");
    let s = Server::start(&db, &[]).await?;
    let names: Vec<String> = s
        .client
        .list_all_tools()
        .await?
        .into_iter()
        .map(|t| t.name.into_owned())
        .collect();
    assert!(
        !names
            .iter()
            .any(|n| n == "propose_command" || n == "execute_command"),
        "{names:?}"
    );
    let c = Conv::create(&s).await?;
    let r = s
        .refused("propose_command", c.args("a", json!({"command": "ls"})))
        .await?;
    assert!(r.contains("YOLO"), "{r}");
    let out = operator(&db, &["yolo", "enable", &c.id, "--mode", "safe"])?;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("YOLO_MODE=1"));
    s.stop().await?;

    // With YOLO on for the server, the tools appear.
    let s = Server::start_with_env(&db, &[], &[("YOLO_MODE", "1")]).await?;
    let names: Vec<String> = s
        .client
        .list_all_tools()
        .await?
        .into_iter()
        .map(|t| t.name.into_owned())
        .collect();
    assert!(
        names.iter().any(|n| n == "propose_command")
            && names.iter().any(|n| n == "execute_command")
    );
    s.stop().await
}

#[tokio::test(flavor = "multi_thread")]
async fn enable_refuses_piped_stdin_and_wrong_answers() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let db = dir.path().join("b.db");
    let s = Server::start(&db, &[]).await?;
    let c = Conv::create(&s).await?;
    // Piped stdin: refused before any prompt.
    let out = std::process::Command::new(bridge_tests::bin("bridge"))
        .args([
            "--db",
            db.to_str().unwrap(),
            "yolo",
            "enable",
            &c.id,
            "--mode",
            "yolo",
        ])
        .env("YOLO_MODE", "1")
        .stdin(std::process::Stdio::piped())
        .output()?;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("interactive terminal"));

    // Wrong phrase on a real terminal.
    let mut p = yolo::operator_pty(&db, &["yolo", "enable", &c.id, "--mode", "yolo"])?;
    p.exp_string("to continue: ")?;
    p.send_line("i understand the risks")?;
    p.exp_string("the phrase did not match")?;
    p.exp_eof()?;

    // Right phrase, wrong code.
    let mut p = yolo::operator_pty(&db, &["yolo", "enable", &c.id, "--mode", "yolo"])?;
    p.exp_string("to continue: ")?;
    p.send_line("I UNDERSTAND THE RISKS")?;
    p.exp_string("Type the one-time code: ")?;
    p.send_line("AAAA-AAAA")?;
    p.exp_string("one-time code did not match")?;
    p.exp_eof()?;

    let conn = rusqlite::Connection::open(&db)?;
    let enabled: i64 = conn.query_row("SELECT count(*) FROM yolo_enablements", [], |r| r.get(0))?;
    assert_eq!(enabled, 0);
    let refused: i64 = conn.query_row(
        "SELECT count(*) FROM audit WHERE action = 'yolo.enable' AND outcome = 'refused'",
        [],
        |r| r.get(0),
    )?;
    assert_eq!(
        refused, 3,
        "piped, wrong phrase and wrong code are all audited"
    );
    s.stop().await
}

#[tokio::test(flavor = "multi_thread")]
async fn read_write_workspace_gets_a_snapshot_branch_before_the_command_runs() -> anyhow::Result<()>
{
    use std::os::unix::fs::PermissionsExt;
    if !yolo::docker_or_skip("read_write_workspace") {
        return Ok(());
    }
    let ws = tempfile::tempdir()?;
    let git = |args: &[&str]| -> anyhow::Result<String> {
        let out = std::process::Command::new("git")
            .arg("-C")
            .arg(ws.path())
            .args([
                "-c",
                "user.name=t",
                "-c",
                "user.email=t@t",
                "-c",
                "commit.gpgsign=false",
            ])
            .args(args)
            .output()?;
        anyhow::ensure!(
            out.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(String::from_utf8(out.stdout)?.trim().to_owned())
    };
    git(&["init", "-q", "-b", "main"])?;
    std::fs::write(ws.path().join("a.txt"), "one\n")?;
    git(&["add", "a.txt"])?;
    git(&["commit", "-q", "-m", "first"])?;
    let head = git(&["rev-parse", "HEAD"])?;
    // The sandbox runs as 65534; let it write here.
    std::fs::set_permissions(ws.path(), std::fs::Permissions::from_mode(0o777))?;
    let ws_arg = ws.path().to_str().unwrap().to_owned();
    let w = yolo::World::start(&["--workspace", &ws_arg, "--workspace-rw"]).await?;
    let ran = w
        .run("echo made-in-sandbox > /workspace/b.txt && cat /workspace/a.txt")
        .await?;
    assert_eq!(ran.exit_code(), Some(0), "{:?}", ran.job);
    assert_eq!(ran.stdout(), "one\n");
    assert_eq!(
        std::fs::read_to_string(ws.path().join("b.txt"))?,
        "made-in-sandbox\n"
    );
    let branch = format!("bridge-snapshot/{}", ran.proposal);
    assert_eq!(
        git(&["rev-parse", &branch])?,
        head,
        "snapshot branch points at HEAD"
    );
    w.finish().await
}

#[tokio::test(flavor = "multi_thread")]
async fn serve_spawn_runner_runs_commands_and_stops_its_runner() -> anyhow::Result<()> {
    if !yolo::docker_or_skip("spawn_runner") {
        return Ok(());
    }
    let image = yolo::sandbox_image();
    let dir = tempfile::tempdir()?;
    let db = dir.path().join("b.db");
    // Without YOLO, --spawn-runner is refused.
    let out = operator(&db, &["serve", "--spawn-runner"])?;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--yolo"));

    // The operator's extra redaction patterns reach the spawned runner.
    let patterns = dir.path().join("patterns.toml");
    std::fs::write(
        &patterns,
        "[[pattern]]\nname = \"ticket\"\nregex = 'TKT-[0-9]{6}'\nplaceholder = \"TICKET_REDACTED\"\n",
    )?;
    let patterns = patterns.to_str().unwrap();
    let s = Server::start(
        &db,
        &["--yolo", "--spawn-runner", "--redaction-patterns", patterns],
    )
    .await?;
    let rid = yolo::runner_id(&db)?;
    let c = Conv::create(&s).await?;
    yolo::enable(&db, &c.id, &["--mode", "safe", "--image", image])?;
    let p = s
        .ok(
            "propose_command",
            c.args(
                "a",
                json!({"command": "printf 'spawned TKT-%s%s\\n' 123 456"}),
            ),
        )
        .await?;
    let pid = p["proposal_id"].as_str().unwrap().to_owned();
    let token = yolo::approve(&db, &pid, &[])?;
    let r = s
        .ok(
            "execute_command",
            c.args("a", json!({"proposal_id": pid, "approval_token": token})),
        )
        .await?;
    assert_eq!(r["stdout"], "spawned TICKET_REDACTED\n", "{r}");
    assert!(!bridge_tests::contains(
        &bridge_tests::db_bytes(&db),
        "TKT-123456"
    ));
    // Closing the client ends `serve`, which stops its runner, which
    // removes its warm containers.
    s.stop().await?;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !yolo::containers_with_label(&format!("mcp-bridge.runner={rid}"))?.is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "the spawned runner left containers behind"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let conn = rusqlite::Connection::open(&db)?;
    let live: i64 = conn.query_row("SELECT count(*) FROM runners WHERE id = ?1", [&rid], |r| {
        r.get(0)
    })?;
    assert_eq!(
        live, 0,
        "the runner deregistered: it was stopped, not killed"
    );
    Ok(())
}
