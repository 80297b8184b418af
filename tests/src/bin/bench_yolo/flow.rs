//! The bridge side of the benchmark: the bench's bridge, conversation and
//! runner, proposals approved on the operator's terminal, and the timed
//! `execute_command` calls, one after another or all at once.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use bridge_tests::yolo::{self, Runner};
use bridge_tests::{Conv, Server, sql};
use serde_json::json;

use crate::{CALL_TIMEOUT, COMMAND};

/// Wall-clock milliseconds since the epoch, the unit of the audit table's
/// `ts`, so client-side instants line up with the bridge's and runner's rows.
pub fn wall_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// A proposal with its single-use approval token.
#[derive(Debug, Clone)]
pub struct Approved {
    pub proposal: String,
    pub token: String,
}

/// One timed `execute_command` call.
#[derive(Debug, Clone)]
pub struct Exec {
    pub proposal: String,
    pub latency: Duration,
    /// Wall clock just before the call and just after it returned.
    pub sent_ms: i64,
    pub returned_ms: i64,
    /// The job ran in a container that was already running when the call
    /// was made (from the pool), rather than one started for it.
    pub warm: Option<bool>,
}

/// The bench's bridge, conversation and runner.
pub struct Setup {
    pub _dir: tempfile::TempDir,
    pub db: std::path::PathBuf,
    /// The agents that run jobs at once, each its own `bridge serve`
    /// process on the same database (as 8 Claude Code or Codex sessions
    /// are): a result reaches each through the cross-process wake-up, not
    /// within one process. The first also proposes, and runs the
    /// sequential scenarios ([`Setup::server`]).
    pub agents: Vec<Arc<Server>>,
    pub conv: Conv,
    pub runner: Runner,
    pub runner_id: String,
    /// The runner's `--pool-size`.
    pub pool_size: usize,
}

pub async fn setup(image: &str, pool_size: usize, agents: usize) -> anyhow::Result<Setup> {
    let dir = tempfile::tempdir()?;
    let db = dir.path().join("bench.db");
    // BRIDGE_LOG as in production, without the test harness's debug lines.
    let env = [("YOLO_MODE", "1"), ("BRIDGE_LOG", "warn")];
    let server = Server::start_with_env(&db, &["--rate-limit", "off"], &env)
        .await
        .context("starting `bridge serve --rate-limit off` with YOLO_MODE=1")?;
    let conv = Conv::create(&server).await?;
    {
        let (db, id, image) = (db.clone(), conv.id.clone(), image.to_owned());
        tokio::task::spawn_blocking(move || {
            yolo::enable(&db, &id, &["--mode", "safe", "--image", &image])
        })
        .await?
        .context("enabling YOLO through the operator CLI on a pty")?;
    }
    let pool_arg = pool_size.to_string();
    let runner = Runner::start(&db, &["--pool-size", &pool_arg]).context("starting the runner")?;
    let runner_id = {
        let db = db.clone();
        tokio::task::spawn_blocking(move || yolo::runner_id(&db)).await??
    };
    let mut all = vec![Arc::new(server)];
    for n in 1..agents.max(1) {
        let agent = Server::start_with_env(&db, &["--rate-limit", "off"], &env)
            .await
            .with_context(|| format!("starting agent {n}'s `bridge serve`"))?;
        all.push(Arc::new(agent));
    }
    Ok(Setup {
        _dir: dir,
        db,
        agents: all,
        conv,
        runner,
        runner_id,
        pool_size,
    })
}

/// Proposes `n` copies of the command and approves each through the real
/// operator CLI on a pty (slow, so done before any timing).
pub async fn approve_batch(st: &Setup, n: usize) -> anyhow::Result<Vec<Approved>> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let p = st
            .server()
            .ok(
                "propose_command",
                st.conv
                    .args("a", json!({"command": COMMAND, "reason": "benchmark"})),
            )
            .await?;
        let proposal = p["proposal_id"]
            .as_str()
            .with_context(|| format!("no proposal_id in {p}"))?
            .to_owned();
        let (db, id) = (st.db.clone(), proposal.clone());
        let token = tokio::task::spawn_blocking(move || yolo::approve(&db, &id, &[]))
            .await?
            .with_context(|| format!("approving {proposal} on a pty"))?;
        out.push(Approved { proposal, token });
    }
    Ok(out)
}

/// The timed part: token in, result out, called by the proposing session
/// `a` (only the proposer may execute). Checks the result is `echo hi`'s.
pub async fn execute(server: &Server, conv: &Conv, a: &Approved) -> anyhow::Result<Exec> {
    let args = conv.args(
        "a",
        json!({"proposal_id": a.proposal, "approval_token": a.token}),
    );
    let sent_ms = wall_ms();
    let start = Instant::now();
    let r = tokio::time::timeout(CALL_TIMEOUT, server.ok("execute_command", args))
        .await
        .with_context(|| {
            format!(
                "execute_command for {} took over {CALL_TIMEOUT:?}",
                a.proposal
            )
        })??;
    let latency = start.elapsed();
    let returned_ms = wall_ms();
    ensure!(
        r["state"] == "done" && r["exit_code"] == 0 && r["stdout"] == "hi\n",
        "execute_command for {} did not return `hi` with exit code 0 and state done: {r}",
        a.proposal
    );
    Ok(Exec {
        proposal: a.proposal.clone(),
        latency,
        sent_ms,
        returned_ms,
        warm: None,
    })
}

/// Ids of this runner's running containers (warm ones and ones in use).
pub async fn running_containers(runner_id: &str) -> anyhow::Result<HashSet<String>> {
    let out = tokio::process::Command::new("docker")
        .args([
            "ps",
            "-q",
            "--no-trunc",
            "--filter",
            &format!("label=mcp-bridge.runner={runner_id}"),
        ])
        .output()
        .await
        .context("docker ps")?;
    ensure!(
        out.status.success(),
        "docker ps failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(str::to_owned)
        .collect())
}

/// Waits until the runner's pool holds at least its `--pool-size` started
/// containers (more after a burst: the pool grows with demand) and nothing
/// is being started or removed any more. Returns how many it holds.
pub async fn wait_for_warm_pool(st: &Setup) -> anyhow::Result<usize> {
    let (runner_id, min) = (st.runner_id.as_str(), st.pool_size);
    let deadline = Instant::now() + Duration::from_secs(60);
    let (mut settled, mut last) = (0, usize::MAX);
    loop {
        // Three equal consecutive readings a moment apart.
        let n = running_containers(runner_id).await?.len();
        if n >= min && n == last {
            settled += 1;
            if settled == 3 {
                return Ok(n);
            }
        } else {
            settled = 0;
        }
        last = n;
        ensure!(
            Instant::now() < deadline,
            "the runner's pool did not settle at {min} or more warm containers within 60 s (it has {n}); is the image `{}` present?",
            yolo::test_image()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The container each job ran in, from the proposals table.
pub fn job_containers(db: &Path) -> anyhow::Result<HashMap<String, String>> {
    let conn = sql(db)?;
    let mut stmt =
        conn.prepare("SELECT id, container_id FROM proposals WHERE container_id IS NOT NULL")?;
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Executes the batch one after another, pausing `pause` between calls;
/// marks which jobs found a warm container.
pub async fn sequential(
    st: &Setup,
    batch: &[Approved],
    pause: Duration,
) -> anyhow::Result<Vec<Exec>> {
    let mut runs = Vec::with_capacity(batch.len());
    let mut before = Vec::with_capacity(batch.len());
    for (i, a) in batch.iter().enumerate() {
        if i > 0 && !pause.is_zero() {
            tokio::time::sleep(pause).await;
        }
        // Untimed: which containers exist before the call.
        before.push(running_containers(&st.runner_id).await?);
        runs.push(execute(st.server(), &st.conv, a).await?);
    }
    let used = job_containers(&st.db)?;
    for (r, existing) in runs.iter_mut().zip(before) {
        r.warm = used.get(&r.proposal).map(|c| existing.contains(c));
    }
    Ok(runs)
}

pub struct Parallel {
    pub wall: Duration,
    pub runs: Vec<Exec>,
}

impl Setup {
    /// The first agent: it proposes, and runs the sequential scenarios.
    pub fn server(&self) -> &Server {
        &self.agents[0]
    }

    /// The agent that runs job `i` of a batch: one job per agent process
    /// while a batch is no larger than the number of agents.
    pub fn agent(&self, i: usize) -> Arc<Server> {
        self.agents[i % self.agents.len()].clone()
    }
}

/// All jobs at once, each from its own agent process (see [`Setup::agents`]).
pub async fn parallel(st: &Setup, batch: &[Approved]) -> anyhow::Result<Parallel> {
    let existing = running_containers(&st.runner_id).await?;
    let start = Instant::now();
    let tasks: Vec<_> = batch
        .iter()
        .cloned()
        .enumerate()
        .map(|(i, a)| {
            let (server, conv) = (st.agent(i), st.conv.clone());
            tokio::spawn(async move { execute(&server, &conv, &a).await })
        })
        .collect();
    let mut runs = Vec::with_capacity(tasks.len());
    let mut failures = Vec::new();
    for t in tasks {
        match t.await? {
            Ok(r) => runs.push(r),
            Err(e) => failures.push(format!("{e:#}")),
        }
    }
    let wall = start.elapsed();
    ensure!(
        failures.is_empty(),
        "{} of {} parallel jobs failed: {}",
        failures.len(),
        batch.len(),
        failures.join("; ")
    );
    let used = job_containers(&st.db)?;
    for r in &mut runs {
        r.warm = used.get(&r.proposal).map(|c| existing.contains(c));
    }
    Ok(Parallel { wall, runs })
}
