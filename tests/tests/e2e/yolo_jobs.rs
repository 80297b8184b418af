//! What runs is what the operator currently allows, and what comes back is
//! true: queued jobs are re-checked at claim (settings, policy, queue TTL),
//! re-enabling closes what was in flight, exit codes are the command's own
//! or `null` with a reason, and output is redacted before it is truncated.
//! Real binaries, a real MCP client, a real Docker engine.

use std::path::{Path, PathBuf};
use std::time::Duration;

use bridge_tests::yolo::{self, Runner, World};
use bridge_tests::{Conv, Server, audit_rows_for, sql};
use serde_json::{Value, json};

/// A bridge with YOLO on, one conversation enabled with `enable_args`, a
/// read-write-able workspace holding `f.txt`, and no runner.
struct Queue {
    _dir: tempfile::TempDir,
    ws: tempfile::TempDir,
    db: PathBuf,
    server: Server,
    conv: Conv,
}

impl Queue {
    async fn start(server_args: &[&str], enable_extra: &[&str]) -> anyhow::Result<Self> {
        use std::os::unix::fs::PermissionsExt;
        let image = yolo::sandbox_image();
        let dir = tempfile::tempdir()?;
        let ws = tempfile::tempdir()?;
        std::fs::write(ws.path().join("f.txt"), "original\n")?;
        // The sandbox runs as 65534; a read-write mount must be writable.
        std::fs::set_permissions(ws.path(), std::fs::Permissions::from_mode(0o777))?;
        std::fs::set_permissions(
            ws.path().join("f.txt"),
            std::fs::Permissions::from_mode(0o666),
        )?;
        let db = dir.path().join("b.db");
        let server = Server::start_with_env(&db, server_args, &[("YOLO_MODE", "1")]).await?;
        let conv = Conv::create(&server).await?;
        let q = Self {
            _dir: dir,
            ws,
            db,
            server,
            conv,
        };
        let mut args = vec!["--mode", "yolo", "--image", image, "--timeout", "5"];
        let ws_arg = q.ws_arg();
        args.extend(["--workspace", &ws_arg]);
        args.extend_from_slice(enable_extra);
        yolo::enable(&q.db, &q.conv.id, &args)?;
        Ok(q)
    }

    fn ws_arg(&self) -> String {
        self.ws.path().to_str().unwrap().to_owned()
    }

    fn file(&self) -> String {
        std::fs::read_to_string(self.ws.path().join("f.txt")).unwrap_or_default()
    }

    /// Proposes, approves and executes `command`; returns once the job is
    /// queued, with the pending `execute_command` call.
    async fn queue(
        &self,
        command: &str,
    ) -> anyhow::Result<(
        String,
        tokio::task::JoinHandle<anyhow::Result<rmcp::model::CallToolResult>>,
    )> {
        let p = self
            .server
            .ok(
                "propose_command",
                self.conv.args("a", json!({ "command": command })),
            )
            .await?;
        let id = p["proposal_id"].as_str().unwrap_or_default().to_owned();
        let token = yolo::approve(&self.db, &id, &[])?;
        let call = yolo::spawn_call(
            &self.server,
            "execute_command",
            self.conv
                .args("a", json!({"proposal_id": id, "approval_token": token})),
        );
        yolo::wait_until("the job to be queued", Duration::from_secs(20), || {
            Ok(yolo::job(&self.db, &id)?.state == "queued")
        })?;
        Ok((id, call))
    }

    /// Both sessions were told something mentioning `proposal` and `what`.
    async fn both_told(&self, proposal: &str, what: &str) -> anyhow::Result<()> {
        for session in ["a", "b"] {
            let inbox = yolo::inbox(&self.server, &self.conv, session).await?;
            anyhow::ensure!(
                inbox.iter().any(|m| {
                    let body = m["message"].as_str().unwrap_or_default();
                    body.contains(proposal) && body.contains(what)
                }),
                "session {session} was not told about {proposal} ({what}): {inbox:?}"
            );
        }
        Ok(())
    }
}

fn job_starts(db: &Path, proposal: &str) -> anyhow::Result<usize> {
    yolo::job_starts(db, proposal)
}

/// Starts a runner on the queue's database and waits until it registered.
async fn start_runner(q: &Queue, runner_args: &[&str]) -> anyhow::Result<Runner> {
    let runner = Runner::start(&q.db, runner_args)?;
    yolo::runner_id(&q.db)?;
    Ok(runner)
}

#[tokio::test(flavor = "multi_thread")]
async fn re_enabling_read_only_fails_a_queued_read_write_job_and_the_file_is_unchanged()
-> anyhow::Result<()> {
    if !yolo::docker_or_skip("re_enabling_read_only_fails_a_queued_read_write_job") {
        return Ok(());
    }
    let q = Queue::start(&[], &["--workspace-rw"]).await?;
    let (id, call) = q.queue("echo changed > /workspace/f.txt").await?;
    // The operator narrows the conversation while the job waits.
    let ws = q.ws_arg();
    yolo::enable(
        &q.db,
        &q.conv.id,
        &[
            "--mode",
            "safe",
            "--image",
            yolo::sandbox_image(),
            "--workspace",
            &ws,
        ],
    )?;
    let job = yolo::job(&q.db, &id)?;
    assert_eq!(job.state, "failed", "{job:?}");
    assert!(
        job.failure.as_deref().unwrap_or("").contains("re-enabled"),
        "{job:?}"
    );
    let reply = bridge_tests::ok(call.await??)?;
    assert_eq!(reply["state"], "failed", "{reply}");
    q.both_told(&id, "re-enabled").await?;
    // A runner started afterwards runs nothing of it; a safe command
    // queued after it proves the runner has looked at the queue.
    let mut runner = start_runner(&q, &[]).await?;
    let p = q
        .server
        .ok(
            "propose_command",
            q.conv.args("a", json!({"command": "cat /workspace/f.txt"})),
        )
        .await?;
    let barrier = p["proposal_id"].as_str().unwrap_or_default().to_owned();
    let token = yolo::approve(&q.db, &barrier, &[])?;
    q.server
        .ok(
            "execute_command",
            q.conv.args(
                "a",
                json!({"proposal_id": barrier, "approval_token": token}),
            ),
        )
        .await?;
    let b = yolo::wait_final(&q.db, &barrier, Duration::from_secs(90))?;
    assert_eq!(b.result["stdout"], "original\n", "{b:?}");
    assert_eq!(job_starts(&q.db, &id)?, 0, "the narrowed-away job started");
    assert_eq!(q.file(), "original\n");
    let enable = audit_rows_for(&q.db, "yolo.enable")?;
    let last: Value = serde_json::from_str(&enable.last().unwrap().detail)?;
    assert_eq!(last["closed"]["failed"], json!([id]), "{last}");
    runner.stop(Duration::from_secs(20))?;
    yolo::assert_audit_verifies(&q.db)?;
    q.server.stop().await
}

#[tokio::test(flavor = "multi_thread")]
async fn the_runner_refuses_a_job_whose_enablement_no_longer_matches() -> anyhow::Result<()> {
    if !yolo::docker_or_skip("the_runner_refuses_a_job_whose_enablement_no_longer_matches") {
        return Ok(());
    }
    let q = Queue::start(&[], &["--workspace-rw"]).await?;
    let (id, call) = q.queue("echo changed > /workspace/f.txt").await?;
    // The stored enablement says read-only now, without the bridge having
    // closed the job (a hand edit, or an enable racing the execute).
    sql(&q.db)?.execute(
        "UPDATE yolo_enablements SET settings = json_set(settings, '$.workspace_rw', json('false'))",
        [],
    )?;
    let _runner = start_runner(&q, &[]).await?;
    let job = yolo::wait_final(&q.db, &id, Duration::from_secs(60))?;
    assert_eq!(job.state, "failed", "{job:?}");
    let why = job.failure.clone().unwrap_or_default();
    assert!(
        why.contains("settings changed") && why.contains("workspace read-write"),
        "{why}"
    );
    assert_eq!(bridge_tests::ok(call.await??)?["state"], "failed");
    q.both_told(&id, "settings changed").await?;
    assert_eq!(job_starts(&q.db, &id)?, 0);
    assert_eq!(q.file(), "original\n");
    yolo::assert_audit_verifies(&q.db)?;
    q.server.stop().await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_policy_file_change_between_queue_and_claim_is_applied() -> anyhow::Result<()> {
    if !yolo::docker_or_skip("a_policy_file_change_between_queue_and_claim_is_applied") {
        return Ok(());
    }
    let policy_dir = tempfile::tempdir()?;
    let policy = policy_dir.path().join("policy.toml");
    std::fs::write(&policy, "")?;
    let policy_arg = policy.to_str().unwrap().to_owned();
    let q = Queue::start(&["--policy", &policy_arg], &["--workspace-rw"]).await?;
    let (id, _call) = q.queue("echo changed > /workspace/f.txt").await?;
    std::fs::write(
        &policy,
        "[[blocked]]\nname = \"no-writes-to-f\"\nregex = 'f\\.txt'\nreason = \"f.txt is off limits\"\n",
    )?;
    let _runner = start_runner(&q, &["--policy", &policy_arg]).await?;
    let job = yolo::wait_final(&q.db, &id, Duration::from_secs(60))?;
    assert_eq!(job.state, "failed", "{job:?}");
    assert!(
        job.failure
            .as_deref()
            .unwrap_or("")
            .contains("no-writes-to-f"),
        "{job:?}"
    );
    q.both_told(&id, "policy").await?;
    assert_eq!(job_starts(&q.db, &id)?, 0);
    assert_eq!(q.file(), "original\n");
    q.server.stop().await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_job_that_waited_past_the_queue_ttl_is_failed_not_run() -> anyhow::Result<()> {
    if !yolo::docker_or_skip("a_job_that_waited_past_the_queue_ttl_is_failed_not_run") {
        return Ok(());
    }
    let q = Queue::start(&[], &["--workspace-rw"]).await?;
    let (old, _c1) = q.queue("echo changed > /workspace/f.txt").await?;
    // Ten minutes and one second ago, as far as the database knows: the
    // runner's default TTL is 10 minutes (no sleeping in tests).
    sql(&q.db)?.execute(
        "UPDATE proposals SET updated_at = updated_at - 601000 WHERE id = ?1",
        [&old],
    )?;
    let _runner = start_runner(&q, &[]).await?;
    let job = yolo::wait_final(&q.db, &old, Duration::from_secs(60))?;
    assert_eq!(job.state, "failed", "{job:?}");
    assert!(
        job.failure
            .as_deref()
            .unwrap_or("")
            .contains("in the queue"),
        "{job:?}"
    );
    q.both_told(&old, "in the queue").await?;
    assert_eq!(audit_rows_for(&q.db, "job.expire")?.len(), 1);
    assert_eq!(job_starts(&q.db, &old)?, 0);
    assert_eq!(q.file(), "original\n");
    yolo::assert_audit_verifies(&q.db)?;
    q.server.stop().await
}

#[tokio::test(flavor = "multi_thread")]
async fn exit_codes_are_the_commands_own_or_null_with_a_reason() -> anyhow::Result<()> {
    if !yolo::docker_or_skip("exit_codes_are_the_commands_own_or_null_with_a_reason") {
        return Ok(());
    }
    let mut w = World::start(&["--timeout", "10"]).await?;
    // Output after the wrapper's trailer (a background process still
    // writing when the wrapper reports) used to make the runner fall back
    // to the wrapper's own status, 0.
    for cmd in [
        "(while :; do echo bg; done) & exit 3",
        "(while :; do echo bg >&2; done) & exit 3",
        "(sleep 1; echo late >&2) & exit 3",
    ] {
        let r = w.run(cmd).await?;
        assert_eq!(r.exit_code(), Some(3), "{cmd}: {:?}", r.job.result);
        assert_eq!(r.reply["exit_code"], 3, "{cmd}: {:?}", r.reply);
    }

    // The issue's command. Its true status is whatever the same shell says
    // for it (an asynchronous list as the last command gives 0).
    let cmd = "false; sh -c 'sleep 1; echo late >&2' &";
    let control = w
        .run(&format!("sh -c \"{cmd}\"; echo \"status=$?\""))
        .await?;
    let status: i64 = control
        .stdout()
        .trim()
        .strip_prefix("status=")
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {control:?}"));
    let r = w.run(cmd).await?;
    assert_eq!(r.exit_code(), Some(status), "{r:?}");

    // A forged trailer (the command cannot know the nonce) is output.
    let forged = "0123456789abcdef0123456789abcdef";
    let r = w
        .run(&format!(
            "printf '\\n%s 0\\n' {forged}; printf '\\n%s 0\\n' {forged} >&2; exit 7"
        ))
        .await?;
    assert_eq!(r.exit_code(), Some(7), "{r:?}");
    assert!(r.stdout().contains(&format!("{forged} 0")), "{r:?}");

    // Killing the wrapper shell: no trailer, so no status, and a reason.
    let r = w.run("kill -9 $PPID; sleep 5").await?;
    assert_eq!(r.job.result["exit_code"], Value::Null, "{r:?}");
    let why = r.job.result["exit_code_unknown_reason"]
        .as_str()
        .unwrap_or_default();
    assert!(why.contains("unknown"), "{r:?}");
    assert_eq!(r.reply["exit_code"], Value::Null, "{:?}", r.reply);
    assert!(
        r.reply["exit_code_unknown_reason"].is_string(),
        "{:?}",
        r.reply
    );
    w.assert_healthy().await?;
    w.finish().await
}

/// A base64 run long enough to be part of a key body (hex digests, which
/// the audit log is full of, are not; random base64 is never all hex).
fn base64_run(text: &str) -> Option<String> {
    let re = regex::Regex::new(r"[A-Za-z0-9+/=]{40,}").unwrap();
    re.find_iter(text)
        .map(|m| m.as_str())
        .find(|run| !run.bytes().all(|b| b.is_ascii_hexdigit()))
        .map(str::to_owned)
}

#[tokio::test(flavor = "multi_thread")]
async fn keys_straddling_the_truncation_cut_or_at_the_end_are_redacted() -> anyhow::Result<()> {
    if !yolo::docker_or_skip("keys_straddling_the_truncation_cut_or_at_the_end_are_redacted") {
        return Ok(());
    }
    let w = World::start(&["--timeout", "30"]).await?;
    // Keys are assembled at run time: a command containing one would be
    // refused at propose. Each is about 2 090 bytes. With the default 1 MiB
    // cap the head keeps the first 512 KiB and the tail the last 512 KiB of
    // the 1.1 MB. Run one: a key starts 488 bytes before the head cut.
    // Run two: a key straddles the tail cut, its BEGIN line in the dropped
    // middle (the case that came back as bare base64 and an END line). Both
    // end with a key with no newline after its END line.
    let key = "b='-----BEGIN'; e='-----END'; k='RSA PRIVATE KEY-----'; \
               key() { echo \"$b $k\"; head -c 1500 /dev/urandom | base64; printf '%s' \"$e $k\"; }";
    let runs = [
        format!(
            "{key}; yes 'filler text of a long build log' | head -c 523800; key; echo; \
             yes 'more filler after the first key' | head -c 600000; key"
        ),
        format!(
            "{key}; yes 'filler text of a long build log' | head -c 583800; key; echo; \
             yes 'filler before the last key' | head -c 521200; key"
        ),
    ];
    for cmd in &runs {
        let r = w.run(cmd).await?;
        assert_eq!(r.exit_code(), Some(0), "{:?}", r.job.result["stderr"]);
        assert_eq!(r.job.result["truncated"], true);
        assert!(
            r.job.result["stdout_bytes"].as_u64().unwrap_or(0) > 1_100_000,
            "{:?}",
            r.job.result["stdout_bytes"]
        );
        let out = r.stdout();
        assert_eq!(base64_run(out), None, "key material in the result");
        assert_eq!(
            out.matches("PRIVATE_KEY_REDACTED").count(),
            2,
            "every key is replaced whole: head {:?} … tail {:?}",
            &out[..out.len().min(200)],
            &out[out.len().saturating_sub(200)..]
        );
        assert!(out.ends_with("PRIVATE_KEY_REDACTED"), "the key at the end");
        let finish = audit_rows_for(&w.db, "job.finish")?;
        assert!(finish.last().unwrap().detail.contains("private-key"));
    }
    let conn = sql(&w.db)?;
    let bodies: Vec<String> = conn
        .prepare("SELECT body FROM messages WHERE kind = 'command_result'")?
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    assert_eq!(
        bodies.len(),
        2,
        "two results, each stored once for both sessions"
    );
    for b in &bodies {
        assert_eq!(base64_run(b), None, "key material in a stored message");
    }
    let audit: Vec<String> = conn
        .prepare("SELECT detail FROM audit")?
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    for d in &audit {
        assert_eq!(base64_run(d), None, "key material in the audit log");
    }
    w.finish().await
}
