//! The runner dying or stopping mid-job: after `kill -9` the next runner
//! fails the job with a reason and reaps its container, and nothing runs
//! twice; SIGTERM lets short jobs finish and stops long ones cleanly; and a
//! runner never touches the containers of a runner on another database.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use bridge_tests::yolo::{self, Runner, World};
use bridge_tests::{audit_rows_for, contains, db_bytes, random_hex};
use serde_json::json;

fn count_for(db: &Path, action: &str, proposal: &str) -> anyhow::Result<usize> {
    Ok(audit_rows_for(db, action)?
        .iter()
        .filter(|r| r.detail.contains(proposal))
        .count())
}

fn no_containers_of(runner_id: &str) -> anyhow::Result<bool> {
    Ok(yolo::containers_with_label(&format!("mcp-bridge.runner={runner_id}"))?.is_empty())
}

/// Proposes, approves on the terminal and starts `execute_command` in the
/// background (it waits for the result); returns the proposal and the call.
async fn start_job(
    w: &World,
    command: &str,
) -> anyhow::Result<(
    String,
    tokio::task::JoinHandle<anyhow::Result<rmcp::model::CallToolResult>>,
)> {
    let p = w.propose(command).await?;
    let token = yolo::approve(&w.db, &p, &[])?;
    let call = yolo::spawn_call(
        &w.server,
        "execute_command",
        w.conv
            .args("a", json!({"proposal_id": p, "approval_token": token})),
    );
    Ok((p, call))
}

/// Issue 5's runner crash run: `kill -9` the runner at a random moment after
/// it claimed a job (`CRASH_ROUNDS` times, default 4), sometimes before the
/// container started, sometimes while the command runs. Each time the next
/// runner fails the job with a reason and removes its container, both
/// sessions get one failure message, and the command, which appends a line
/// to a read-write workspace, ran at most once.
#[tokio::test(flavor = "multi_thread")]
async fn a_job_whose_runner_was_killed_is_failed_reaped_and_never_rerun() -> anyhow::Result<()> {
    if !yolo::docker_or_skip("a_job_whose_runner_was_killed_is_failed_reaped_and_never_rerun") {
        return Ok(());
    }
    let rounds: usize = std::env::var("CRASH_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(4);
    let ws = tempfile::tempdir()?;
    // The sandbox runs as 65534; let it append here.
    std::fs::set_permissions(ws.path(), std::fs::Permissions::from_mode(0o777))?;
    let ws_arg = ws.path().to_str().unwrap().to_owned();
    let mut w =
        World::start(&["--timeout", "60", "--workspace", &ws_arg, "--workspace-rw"]).await?;
    let mut dead_runners = Vec::new();
    let mut report = Vec::new();

    for round in 0..rounds {
        // The output differs from the command text, so finding it anywhere
        // would mean the command completed and was recorded.
        let (p, call) = start_job(
            &w,
            &format!("echo ran >> /workspace/ran-{round}; sleep 30; echo $((6*7))-finished"),
        )
        .await?;
        // Claimed means `running`: `approved` and `queued` come before the
        // claim, and a kill then would hand the job to the next runner whole.
        yolo::wait_until(
            "the runner to claim the job",
            Duration::from_secs(30),
            || Ok(yolo::job(&w.db, &p)?.state == "running"),
        )?;
        assert_eq!(
            yolo::claimant(&w.db, &p)?.as_deref(),
            Some(w.runner_id.as_str()),
            "round {round}: the job was claimed by a runner other than the one about to be killed"
        );
        // The random moment is what is tested: the kill must be survivable
        // wherever in the job's life it lands.
        let delay = random_ms(1500);
        std::thread::sleep(Duration::from_millis(delay));
        let at_kill = yolo::job(&w.db, &p)?;
        w.runner.kill9()?;
        let dead = w.runner_id.clone();
        if let Some(container) = &at_kill.container_id {
            // Nothing cleans up after a SIGKILL by itself: the next runner must.
            assert!(
                yolo::container_exists(container)?,
                "the container vanished without a runner"
            );
        }

        w.runner = Runner::start(&w.db, &[])?;
        yolo::wait_until(
            "the new runner to register",
            Duration::from_secs(20),
            || Ok(yolo::runner_id(&w.db)? != dead),
        )?;
        w.runner_id = yolo::runner_id(&w.db)?;

        let job = yolo::wait_final(&w.db, &p, Duration::from_secs(40))?;
        assert_eq!(job.state, "failed", "round {round}: {job:?}");
        let why = job.failure.clone().unwrap_or_default();
        assert!(why.contains("runner stopped"), "{why}");
        assert!(job.result.is_null(), "a result was recorded: {job:?}");
        if let Some(container) = &job.container_id {
            yolo::wait_until(
                "the orphaned container to be removed",
                Duration::from_secs(15),
                || Ok(!yolo::container_exists(container)?),
            )?;
        }

        let r = bridge_tests::ok(call.await??)?;
        assert_eq!(r["state"], "failed", "{r}");
        for session in ["a", "b"] {
            let msgs = yolo::inbox(&w.server, &w.conv, session).await?;
            let results: Vec<_> = msgs
                .iter()
                .filter(|m| m["kind"] == "command_result")
                .collect();
            assert_eq!(results.len(), 1, "session {session}: {msgs:?}");
            let body = results[0]["message"].as_str().unwrap_or_default();
            assert!(body.contains("failed") && body.contains(&p), "{body}");
        }

        // At most once: one claim, at most one start, one failure, no
        // output, and at most one line appended by the command itself.
        assert_eq!(count_for(&w.db, "job.claim", &p)?, 1);
        assert!(count_for(&w.db, "job.start", &p)? <= 1);
        assert_eq!(count_for(&w.db, "job.fail", &p)?, 1);
        assert_eq!(count_for(&w.db, "job.finish", &p)?, 0);
        let runs = std::fs::read_to_string(ws.path().join(format!("ran-{round}")))
            .unwrap_or_default()
            .lines()
            .count();
        assert!(runs <= 1, "round {round}: the command ran {runs} times");
        report.push(format!(
            "{delay} ms after the claim ({}, container {}): ran {runs}x",
            at_kill.state,
            if at_kill.container_id.is_some() {
                "started"
            } else {
                "not yet started"
            }
        ));
        dead_runners.push(dead);
    }
    assert!(!contains(&db_bytes(&w.db), "42-finished"));

    // The dead runners' warm containers go too, once their heartbeats are stale.
    for dead in &dead_runners {
        yolo::wait_until(
            "a dead runner's containers to be removed",
            Duration::from_secs(40),
            || no_containers_of(dead),
        )?;
    }
    eprintln!(
        "runner crash consistency: {rounds} kill -9, every job failed with a reason, containers removed, never re-run:\n  {}",
        report.join("\n  ")
    );
    w.assert_healthy().await?;
    w.finish().await
}

/// A random delay below `max_ms`, from the OS random source.
fn random_ms(max_ms: u64) -> u64 {
    u64::from_str_radix(&random_hex(4), 16).unwrap() % max_ms
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_lets_a_short_job_finish_and_leaves_nothing() -> anyhow::Result<()> {
    if !yolo::docker_or_skip("sigterm_lets_a_short_job_finish_and_leaves_nothing") {
        return Ok(());
    }
    let mut w = World::start(&["--timeout", "30"]).await?;
    let (p, call) = start_job(&w, "sleep 2; echo $((6*7))-ok").await?;
    let container = yolo::wait_running(&w.db, &p, Duration::from_secs(30))?;
    // The runner's default grace (10 s) covers the rest of the job.
    w.runner.stop(Duration::from_secs(20))?;
    let status = w.runner.child.try_wait()?.expect("stopped");
    assert!(status.success(), "runner exited with {status}");
    let job = yolo::job(&w.db, &p)?;
    assert_eq!(job.state, "done", "{job:?}");
    assert_eq!(job.result["stdout"], "42-ok\n");
    let r = bridge_tests::ok(call.await??)?;
    assert_eq!(r["state"], "done", "{r}");
    assert!(!yolo::container_exists(&container)?);
    assert!(no_containers_of(&w.runner_id)?);
    // Nobody runs it again after the runner is back.
    let mut again = Runner::start(&w.db, &[])?;
    yolo::wait_until(
        "the new runner to register",
        Duration::from_secs(20),
        || Ok(yolo::runner_id(&w.db)? != w.runner_id),
    )?;
    let again_id = yolo::runner_id(&w.db)?;
    again.stop(Duration::from_secs(20))?;
    assert!(no_containers_of(&again_id)?);
    assert_eq!(count_for(&w.db, "job.start", &p)?, 1);
    assert_eq!(yolo::job(&w.db, &p)?.state, "done");
    w.finish().await
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_past_the_grace_stops_and_fails_the_job() -> anyhow::Result<()> {
    if !yolo::docker_or_skip("sigterm_past_the_grace_stops_and_fails_the_job") {
        return Ok(());
    }
    let mut w = World::start_with(&["--grace-secs", "1"], &["--timeout", "60"]).await?;
    let (p, call) = start_job(&w, "sleep 30; echo $((6*7))-late").await?;
    let container = yolo::wait_running(&w.db, &p, Duration::from_secs(30))?;
    let t0 = std::time::Instant::now();
    w.runner.stop(Duration::from_secs(20))?;
    assert!(t0.elapsed() < Duration::from_secs(15), "{:?}", t0.elapsed());
    let job = yolo::job(&w.db, &p)?;
    assert_eq!(job.state, "failed", "{job:?}");
    assert!(
        job.failure.as_deref().unwrap_or("").contains("shut down"),
        "{job:?}"
    );
    let r = bridge_tests::ok(call.await??)?;
    assert_eq!(r["state"], "failed", "{r}");
    assert!(!yolo::container_exists(&container)?);
    assert!(no_containers_of(&w.runner_id)?);
    assert!(!contains(&db_bytes(&w.db), "42-late"));
    w.finish().await
}

/// Two bridges (two databases) can share one Docker engine, each with its
/// own runner. A runner's sweep must leave the other's containers alone.
#[tokio::test(flavor = "multi_thread")]
async fn a_runner_never_reaps_the_containers_of_another_database() -> anyhow::Result<()> {
    if !yolo::docker_or_skip("a_runner_never_reaps_the_containers_of_another_database") {
        return Ok(());
    }
    let mut w = World::start(&["--timeout", "30"]).await?;
    let (p, call) = start_job(&w, "sleep 6; echo $((6*7))-survived").await?;
    let container = yolo::wait_running(&w.db, &p, Duration::from_secs(30))?;

    let other_dir = tempfile::tempdir()?;
    let other_db = other_dir.path().join("other.db");
    let mut other = Runner::start(&other_db, &[])?;
    let other_id = yolo::runner_id(&other_db)?;

    let job = yolo::wait_final(&w.db, &p, Duration::from_secs(40))?;
    assert_eq!(
        job.state, "done",
        "the runner of another database removed this job's container {container}: {job:?}"
    );
    assert_eq!(job.result["stdout"], "42-survived\n", "{job:?}");
    bridge_tests::ok(call.await??)?;
    // The warm containers this runner keeps were not reaped either: the
    // next job gets a working one.
    let r = w.run("echo still-fine").await?;
    assert_eq!(r.job.state, "done", "{r:?}");
    assert_eq!(r.stdout(), "still-fine\n");

    other.stop(Duration::from_secs(20))?;
    assert!(no_containers_of(&other_id)?);
    w.assert_healthy().await?;
    w.finish().await
}
