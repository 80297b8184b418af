//! Benchmarks the YOLO execution path on a real Docker engine: approved-to-result latency of `echo hi` through the release `bridge serve` and `runner` (warm pool), next to `docker run --rm` with the same hardening flags in the same run, plus 8 jobs in parallel; prints a Markdown section for BENCHMARKS.md.
//!
//! Run: `cargo run --release -p bridge-tests --bin bench_yolo -- [--quick]
//! [--pause-ms N]`. `--quick` uses small counts (a CI smoke run of well
//! under a minute once built); `--pause-ms` sets the pause between the
//! headline's sequential executions (default 300 ms).
//!
//! Only the `execute_command` call is timed (approval token in → result
//! out, state `done`): proposing and approving happen beforehand, because
//! approval goes through the real operator CLI on a pseudo-terminal. Every
//! job's audit rows (`yolo.execute` → `job.claim` → `job.start` →
//! `job.finish`, millisecond timestamps) split its latency into phases.
//! A missed target is reported, not an error: the exit status is non-zero
//! only when something failed, or when no Docker engine answers.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use bridge_tests::bench::{Samples, fmt_ms};
use bridge_tests::yolo::{self, Runner};
use bridge_tests::{Conv, Server, bin, sql};
use serde_json::{Value, json};

/// How much work each scenario does.
struct Counts {
    warmup: usize,
    /// Sequential executions with a pause between them (the headline).
    runs: usize,
    /// Sequential executions back to back.
    back_to_back: usize,
    docker_runs: usize,
    docker_warmup: usize,
    /// `docker version` / `docker ps -q` runs (the CLI's own cost).
    cli_runs: usize,
}

const FULL: Counts = Counts {
    warmup: 3,
    runs: 30,
    back_to_back: 30,
    docker_runs: 30,
    docker_warmup: 2,
    cli_runs: 30,
};

const QUICK: Counts = Counts {
    warmup: 1,
    runs: 5,
    back_to_back: 5,
    docker_runs: 5,
    docker_warmup: 1,
    cli_runs: 5,
};

/// Concurrent jobs in the parallel scenario (the runner's default
/// `--max-parallel`).
const PARALLEL: usize = 8;
/// Warm containers the runner keeps per configuration (its default
/// `--pool-size`).
const POOL_SIZE: usize = 2;
/// Default pause between timed executions, so the runner's pool refills in
/// the background and each execution finds a warm container.
const DEFAULT_PAUSE_MS: u64 = 300;
/// The command every job runs.
const COMMAND: &str = "echo hi";
/// Any single execution or docker run slower than this is a failure.
const CALL_TIMEOUT: Duration = Duration::from_secs(60);

/// The hardening flags of `runner/src/sandbox/spec.rs::container_spec`, as
/// `docker run` options, in the same order.
const DOCKER_HARDENING: &[&str] = &[
    "--network",
    "none",
    "--read-only",
    "--tmpfs",
    "/tmp:rw,noexec,nosuid,nodev,size=64m",
    "--cap-drop",
    "ALL",
    "--security-opt",
    "no-new-privileges",
    "--user",
    "65534:65534",
    "--pids-limit",
    "128",
    "--memory",
    "512m",
    "--memory-swap",
    "512m",
    "--cpus",
    "1",
    "--init",
    "--log-opt",
    "max-size=1m",
    "--log-opt",
    "max-file=1",
];

/// Wall-clock milliseconds since the epoch, the unit of the audit table's
/// `ts`, so client-side instants line up with the bridge's and runner's rows.
fn wall_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// A proposal with its single-use approval token.
#[derive(Debug, Clone)]
struct Approved {
    proposal: String,
    token: String,
}

/// One timed `execute_command` call.
#[derive(Debug, Clone)]
struct Exec {
    proposal: String,
    latency: Duration,
    /// Wall clock just before the call and just after it returned.
    sent_ms: i64,
    returned_ms: i64,
    /// The job ran in a container that was already running when the call
    /// was made (from the pool), rather than one started for it.
    warm: Option<bool>,
}

/// The bench's bridge, conversation and runner.
struct Setup {
    _dir: tempfile::TempDir,
    db: std::path::PathBuf,
    server: Arc<Server>,
    conv: Conv,
    runner: Runner,
    runner_id: String,
}

async fn setup(image: &str) -> anyhow::Result<Setup> {
    let dir = tempfile::tempdir()?;
    let db = dir.path().join("bench.db");
    let server = Server::start_with_env(&db, &["--rate-limit", "off"], &[("YOLO_MODE", "1")])
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
    let runner = Runner::start(&db, &[]).context("starting the runner")?;
    let runner_id = {
        let db = db.clone();
        tokio::task::spawn_blocking(move || yolo::runner_id(&db)).await??
    };
    Ok(Setup {
        _dir: dir,
        db,
        server: Arc::new(server),
        conv,
        runner,
        runner_id,
    })
}

/// Proposes `n` copies of the command and approves each through the real
/// operator CLI on a pty (slow, so done before any timing).
async fn approve_batch(st: &Setup, n: usize) -> anyhow::Result<Vec<Approved>> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let p = st
            .server
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

/// The timed part: token in, result out. Checks the result is `echo hi`'s.
async fn execute(server: &Server, conv: &Conv, a: &Approved) -> anyhow::Result<Exec> {
    let args = conv.args(
        "b",
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
async fn running_containers(runner_id: &str) -> anyhow::Result<HashSet<String>> {
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

/// Waits until the runner's pool holds `POOL_SIZE` started containers and
/// the containers of earlier jobs have been removed.
async fn wait_for_warm_pool(runner_id: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut settled = 0;
    loop {
        // Two equal consecutive readings a moment apart: nothing is being
        // started or removed any more.
        let n = running_containers(runner_id).await?.len();
        if n == POOL_SIZE {
            settled += 1;
            if settled == 3 {
                return Ok(());
            }
        } else {
            settled = 0;
        }
        ensure!(
            Instant::now() < deadline,
            "the runner's pool did not settle at {POOL_SIZE} warm containers within 60 s (it has {n}); is the image `{}` present?",
            yolo::test_image()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The container each job ran in, from the proposals table.
fn job_containers(db: &Path) -> anyhow::Result<HashMap<String, String>> {
    let conn = sql(db)?;
    let mut stmt =
        conn.prepare("SELECT id, container_id FROM proposals WHERE container_id IS NOT NULL")?;
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Executes the batch one after another, pausing `pause` between calls;
/// marks which jobs found a warm container.
async fn sequential(st: &Setup, batch: &[Approved], pause: Duration) -> anyhow::Result<Vec<Exec>> {
    let mut runs = Vec::with_capacity(batch.len());
    let mut before = Vec::with_capacity(batch.len());
    for (i, a) in batch.iter().enumerate() {
        if i > 0 && !pause.is_zero() {
            tokio::time::sleep(pause).await;
        }
        // Untimed: which containers exist before the call.
        before.push(running_containers(&st.runner_id).await?);
        runs.push(execute(&st.server, &st.conv, a).await?);
    }
    let used = job_containers(&st.db)?;
    for (r, existing) in runs.iter_mut().zip(before) {
        r.warm = used.get(&r.proposal).map(|c| existing.contains(c));
    }
    Ok(runs)
}

struct Parallel {
    wall: Duration,
    runs: Vec<Exec>,
}

/// All jobs at once, each its own task on the one MCP connection.
async fn parallel(st: &Setup, batch: &[Approved]) -> anyhow::Result<Parallel> {
    let existing = running_containers(&st.runner_id).await?;
    let start = Instant::now();
    let tasks: Vec<_> = batch
        .iter()
        .cloned()
        .map(|a| {
            let (server, conv) = (st.server.clone(), st.conv.clone());
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

/// Per-job phases from the audit table, in milliseconds.
#[derive(Debug, Default, Clone)]
struct Phases {
    /// MCP request, auth, token check and the `yolo.execute` commit.
    to_execute: i64,
    /// Until the runner claimed the job (cross-process wake-up + claim).
    to_claim: i64,
    /// Taking a container from the pool (or starting one) + `job.start`.
    to_start: i64,
    /// The command in the container as the runner times it (`duration_ms`
    /// of `job.finish`): hand-off to the container, output, exit code.
    exec: i64,
    /// From the `job.finish` timestamp (taken before its commit) until the
    /// call returned: finish commit, wake-up of the bridge, response.
    to_return: i64,
}

fn phases(db: &Path, runs: &[Exec]) -> anyhow::Result<Vec<Phases>> {
    let conn = sql(db)?;
    let mut stmt = conn.prepare(
        "SELECT action, ts, detail FROM audit WHERE action IN ('yolo.execute', 'job.claim', 'job.start', 'job.finish') ORDER BY id",
    )?;
    let mut by_job: HashMap<String, HashMap<String, (i64, Value)>> = HashMap::new();
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, i64>(1)?,
            r.get::<_, String>(2)?,
        ))
    })?;
    for row in rows {
        let (action, ts, detail) = row?;
        let detail: Value = serde_json::from_str(&detail)?;
        if let Some(id) = detail["proposal_id"].as_str() {
            by_job
                .entry(id.to_owned())
                .or_default()
                .insert(action, (ts, detail));
        }
    }
    runs.iter()
        .map(|r| {
            let rows = by_job
                .get(&r.proposal)
                .with_context(|| format!("no audit rows for {}", r.proposal))?;
            let ts = |a: &str| {
                rows.get(a)
                    .map(|(t, _)| *t)
                    .with_context(|| format!("no {a} audit row for {}", r.proposal))
            };
            let (ex, claim, start, finish) = (
                ts("yolo.execute")?,
                ts("job.claim")?,
                ts("job.start")?,
                ts("job.finish")?,
            );
            let exec = rows["job.finish"].1["duration_ms"]
                .as_i64()
                .context("job.finish has no duration_ms")?;
            Ok(Phases {
                to_execute: ex - r.sent_ms,
                to_claim: claim - ex,
                to_start: start - claim,
                exec,
                to_return: r.returned_ms - finish,
            })
        })
        .collect()
}

/// Median and maximum of one phase across jobs.
fn phase_stats(ph: &[Phases], f: impl Fn(&Phases) -> i64) -> (i64, i64) {
    let mut v: Vec<i64> = ph.iter().map(f).collect();
    v.sort_unstable();
    let n = v.len();
    (v[(n.div_ceil(2)).clamp(1, n) - 1], v[n - 1])
}

/// Times one docker CLI invocation (process start to exit); fails unless it
/// succeeds and, when given, prints `want`.
async fn time_docker(args: &[&str], want: Option<&str>) -> anyhow::Result<Duration> {
    let mut cmd = tokio::process::Command::new("docker");
    cmd.args(args).stdin(Stdio::null()).kill_on_drop(true);
    let start = Instant::now();
    let out = tokio::time::timeout(CALL_TIMEOUT, cmd.output())
        .await
        .with_context(|| format!("`docker {}` took over {CALL_TIMEOUT:?}", args.join(" ")))?
        .with_context(|| format!("running `docker {}`", args.join(" ")))?;
    let took = start.elapsed();
    ensure!(
        out.status.success(),
        "`docker {}` failed ({}): {}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    if let Some(want) = want {
        let got = String::from_utf8_lossy(&out.stdout);
        ensure!(
            got == want,
            "`docker {}` printed {got:?}, expected {want:?}",
            args.join(" ")
        );
    }
    Ok(took)
}

fn docker_run_args(image: &str) -> Vec<&str> {
    let mut v = vec!["run", "--rm"];
    v.extend_from_slice(DOCKER_HARDENING);
    v.extend_from_slice(&[image, "/bin/sh", "-c", COMMAND]);
    v
}

async fn time_many(
    args: &[&str],
    want: Option<&str>,
    warmup: usize,
    n: usize,
) -> anyhow::Result<Samples> {
    for _ in 0..warmup {
        time_docker(args, want).await?;
    }
    let mut v = Vec::with_capacity(n);
    for _ in 0..n {
        v.push(time_docker(args, want).await?);
    }
    Ok(Samples::new(v))
}

/// `Server.Version` etc. of the engine, or a clear error when none answers.
fn docker_engine() -> anyhow::Result<String> {
    let out = std::process::Command::new("docker")
        .args([
            "version",
            "--format",
            "{{.Server.Version}} (API {{.Server.APIVersion}})",
        ])
        .stdin(Stdio::null())
        .output();
    let out = match out {
        Ok(o) => o,
        Err(e) => bail!(
            "cannot run the `docker` CLI ({e}); this benchmark needs a Docker engine and its CLI"
        ),
    };
    if !out.status.success() {
        bail!(
            "no Docker engine answers (`docker version`: {}); start it (e.g. `service docker start`) and check this user may use its socket",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let version = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let info = std::process::Command::new("docker")
        .args([
            "info",
            "--format",
            "storage driver {{.Driver}}, cgroup v{{.CgroupVersion}}, default runtime {{.DefaultRuntime}}",
        ])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    Ok(if info.is_empty() {
        version
    } else {
        format!("{version}, {info}")
    })
}

fn machine() -> String {
    bridge_tests::machine_summary()
}

/// The 1-minute load average: other work on the machine skews latencies.
fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".into())
}

/// The commit the binaries were built from, marked when the tree differs.
fn revision() -> String {
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .stderr(Stdio::null())
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    };
    match git(&["rev-parse", "--short", "HEAD"]) {
        None => "unknown commit".into(),
        Some(rev) => match git(&["status", "--porcelain", "--", "../bridge", "../runner"]) {
            Some(s) if s.is_empty() => format!("commit `{rev}`"),
            _ => format!("commit `{rev}` plus uncommitted changes to bridge/ or runner/"),
        },
    }
}

fn status(met: bool) -> &'static str {
    if met { "met" } else { "**missed**" }
}

fn warm_count(runs: &[Exec]) -> String {
    let warm = runs.iter().filter(|r| r.warm == Some(true)).count();
    format!("{warm}/{}", runs.len())
}

fn latency_row(label: &str, s: &Samples) -> String {
    format!(
        "| {label} | {} | {} | {} | {} |",
        fmt_ms(s.p(50.0)),
        fmt_ms(s.p(95.0)),
        fmt_ms(s.min()),
        fmt_ms(s.max())
    )
}

struct Options {
    quick: bool,
    /// Between the headline's sequential executions.
    pause: Duration,
    command: String,
}

const USAGE: &str = "usage: bench_yolo [--quick] [--pause-ms N]";

fn options() -> anyhow::Result<Options> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut quick = false;
    let mut pause_ms = DEFAULT_PAUSE_MS;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--quick" => quick = true,
            "--pause-ms" => {
                pause_ms = it.next().and_then(|v| v.parse().ok()).with_context(|| {
                    format!("--pause-ms needs a number of milliseconds; {USAGE}")
                })?;
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => bail!("unknown argument `{other}`; {USAGE}"),
        }
    }
    let mut command = "cargo run --release -p bridge-tests --bin bench_yolo".to_owned();
    if !args.is_empty() {
        command = format!("{command} -- {}", args.join(" "));
    }
    Ok(Options {
        quick,
        pause: Duration::from_millis(pause_ms),
        command,
    })
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    // A plain message, not a backtrace, whatever RUST_BACKTRACE says.
    match run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run() -> anyhow::Result<()> {
    let opts = options()?;
    let k = if opts.quick { &QUICK } else { &FULL };
    let engine = docker_engine()?;
    // Build (if needed) before any timing.
    for name in ["bridge", "runner"] {
        let b = bin(name);
        ensure!(b.is_file(), "no {name} binary at {}", b.display());
    }
    let image = tokio::task::spawn_blocking(yolo::sandbox_image).await?;

    eprintln!("[yolo] starting bridge serve, enabling YOLO on a pty, starting the runner");
    let mut st = setup(image).await?;
    let result = scenarios(&st, k, opts.pause, image).await;
    let rid = st.runner_id.clone();
    let stopped = st.runner.stop(Duration::from_secs(20));
    if let Some(s) = Arc::into_inner(st.server) {
        s.stop().await?;
    }
    let leftovers = yolo::containers_with_label(&format!("mcp-bridge.runner={rid}"))?;
    let r = result?;
    stopped?;
    ensure!(
        leftovers.is_empty(),
        "the runner left {} container(s) behind",
        leftovers.len()
    );
    print!("{}", report(&r, k, &engine, &opts, image));
    Ok(())
}

struct Results {
    paused: Vec<Exec>,
    paused_phases: Vec<Phases>,
    back_to_back: Vec<Exec>,
    back_to_back_phases: Vec<Phases>,
    par: Parallel,
    par_phases: Vec<Phases>,
    docker_run: Samples,
    docker_version: Samples,
    docker_ps: Samples,
    pause: Duration,
    load_before: String,
    load_after: String,
}

async fn scenarios(
    st: &Setup,
    k: &Counts,
    pause: Duration,
    image: &str,
) -> anyhow::Result<Results> {
    let load_before = load();
    eprintln!("[yolo] waiting for the warm pool ({POOL_SIZE} containers)");
    wait_for_warm_pool(&st.runner_id).await?;
    eprintln!("[yolo] warm-up: {} executions", k.warmup);
    let batch = approve_batch(st, k.warmup).await?;
    sequential(st, &batch, pause).await?;

    eprintln!(
        "[yolo] approving {} proposals on a pty, then executing them {} ms apart",
        k.runs,
        pause.as_millis()
    );
    let batch = approve_batch(st, k.runs).await?;
    wait_for_warm_pool(&st.runner_id).await?;
    let paused = sequential(st, &batch, pause).await?;
    let paused_phases = phases(&st.db, &paused)?;

    eprintln!(
        "[yolo] approving {} proposals, then executing them back to back",
        k.back_to_back
    );
    let batch = approve_batch(st, k.back_to_back).await?;
    wait_for_warm_pool(&st.runner_id).await?;
    let back_to_back = sequential(st, &batch, Duration::ZERO).await?;
    let back_to_back_phases = phases(&st.db, &back_to_back)?;

    eprintln!("[yolo] approving {PARALLEL} proposals, then executing them all at once");
    let batch = approve_batch(st, PARALLEL).await?;
    wait_for_warm_pool(&st.runner_id).await?;
    let par = parallel(st, &batch).await?;
    let par_phases = phases(&st.db, &par.runs)?;
    // The docker baseline runs with the runner idle and its pool full, like
    // the runner's own measurements.
    wait_for_warm_pool(&st.runner_id).await?;

    eprintln!(
        "[docker] {} × docker run --rm with the same hardening",
        k.docker_runs
    );
    let run_args = docker_run_args(image);
    let docker_run = time_many(&run_args, Some("hi\n"), k.docker_warmup, k.docker_runs).await?;
    eprintln!("[docker] {} × docker version, docker ps -q", k.cli_runs);
    let docker_version = time_many(
        &["version", "--format", "{{.Server.Version}}"],
        None,
        1,
        k.cli_runs,
    )
    .await?;
    let docker_ps = time_many(&["ps", "-q"], None, 1, k.cli_runs).await?;
    Ok(Results {
        paused,
        paused_phases,
        back_to_back,
        back_to_back_phases,
        par,
        par_phases,
        docker_run,
        docker_version,
        docker_ps,
        pause,
        load_before,
        load_after: load(),
    })
}

fn report(r: &Results, k: &Counts, engine: &str, opts: &Options, image: &str) -> String {
    let pool = POOL_SIZE;
    let lat = |runs: &[Exec]| Samples::new(runs.iter().map(|e| e.latency).collect());
    let ours = lat(&r.paused);
    let b2b = lat(&r.back_to_back);
    let par = lat(&r.par.runs);
    let dr = &r.docker_run;
    let cli = r.docker_version.p(50.0);
    let ratio = ours.p(50.0).as_secs_f64() / dr.p(50.0).as_secs_f64();
    let run_minus_cli = dr.p(50.0).saturating_sub(cli);
    let ratio_lb = ours.p(50.0).as_secs_f64() / run_minus_cli.as_secs_f64();

    let mut out = String::new();
    let mut line = |l: String| {
        out.push_str(&l);
        out.push('\n');
    };
    line(format!(
        "## YOLO execution benchmark, {}{}\n",
        chrono::Utc::now().format("%Y-%m-%d %H:%M UTC"),
        if opts.quick {
            " (quick run: small counts)"
        } else {
            ""
        }
    ));
    line(format!("- Machine: {}", machine()));
    line(format!(
        "- Load average (1 min) before / after: {} / {} (other work on the machine shares the CPUs and the engine)",
        r.load_before, r.load_after
    ));
    line(format!("- Docker engine: {engine}"));
    line(format!(
        "- Built: release `bridge` and `runner` from {}",
        revision()
    ));
    line(format!("- Command: `{}`", opts.command));
    line(format!(
        "- Method: `bridge serve --rate-limit off` (YOLO_MODE=1) and `runner` (defaults: `--pool-size {pool}`, `--max-parallel {PARALLEL}`) on one temporary database; YOLO enabled in safe mode with image `{image}` (offline busybox image) through the operator CLI on a pty. Each sample is one `{COMMAND}` proposal, proposed and approved on a pty beforehand (untimed); only the `execute_command` call is timed, from sending the token to the result (state `done`, stdout `hi`) returned over MCP stdio. The runner was warm: its pool held {pool} started containers before each scenario. The headline runs leave {} ms between executions so the pool refills; \"warm\" counts jobs whose container was already running when the call was made.",
        r.pause.as_millis()
    ));
    line(format!(
        "- Baseline, same run, after the YOLO scenarios: `docker {}`, timed around the CLI process after {} untimed warm-up run(s). `docker version` is timed as the CLI's own cost (process start, config, one API round trip or two).\n",
        docker_run_args("IMAGE")
            .join(" ")
            .replace("/bin/sh -c echo hi", "/bin/sh -c 'echo hi'"),
        k.docker_warmup
    ));
    line("| approved → result (`echo hi`) | p50 | p95 | min | max |".into());
    line("|---|---|---|---|---|".into());
    line(latency_row(
        &format!(
            "`execute_command`, {} runs {} ms apart (warm: {})",
            r.paused.len(),
            r.pause.as_millis(),
            warm_count(&r.paused)
        ),
        &ours,
    ));
    line(latency_row(
        &format!(
            "`execute_command`, {} runs back to back (warm: {})",
            r.back_to_back.len(),
            warm_count(&r.back_to_back)
        ),
        &b2b,
    ));
    line(latency_row(
        &format!("`docker run --rm` (hardened), {} runs", dr.len()),
        dr,
    ));
    line(latency_row(
        &format!(
            "`docker version` (CLI cost), {} runs",
            r.docker_version.len()
        ),
        &r.docker_version,
    ));
    line(latency_row(
        &format!("`docker ps -q` (CLI cost), {} runs", r.docker_ps.len()),
        &r.docker_ps,
    ));
    line(String::new());
    line("| ratio | value | target | status |".into());
    line("|---|---|---|---|".into());
    line(format!(
        "| p50(`execute_command`) / p50(`docker run --rm`) = {} / {} | {ratio:.3} | ≤ 0.15 | {} |",
        fmt_ms(ours.p(50.0)),
        fmt_ms(dr.p(50.0)),
        status(ratio <= 0.15)
    ));
    line(format!(
        "| p50(`execute_command`) / (p50(`docker run --rm`) − p50(`docker version`)) = {} / {} (baseline without the CLI's own cost) | {ratio_lb:.3} | — (≤ 0.15 for reference) | {} |",
        fmt_ms(ours.p(50.0)),
        fmt_ms(run_minus_cli),
        status(ratio_lb <= 0.15)
    ));
    line(format!(
        "| p50 back to back / p50(`docker run --rm`) | {:.3} | — | — |",
        b2b.p(50.0).as_secs_f64() / dr.p(50.0).as_secs_f64()
    ));
    line(String::new());
    let mut sorted = r.par.runs.clone();
    sorted.sort_by_key(|e| e.latency);
    let per_job: Vec<String> = sorted
        .iter()
        .map(|e| {
            format!(
                "{}{}",
                fmt_ms(e.latency),
                if e.warm == Some(true) { " (warm)" } else { "" }
            )
        })
        .collect();
    line(format!(
        "| {PARALLEL} jobs in parallel (one MCP connection, {PARALLEL} concurrent `execute_command` calls) | result |"
    ));
    line("|---|---|".into());
    line(format!(
        "| all succeeded | yes, {}/{PARALLEL} (warm: {}) |",
        r.par.runs.len(),
        warm_count(&r.par.runs)
    ));
    line(format!("| wall time | {} |", fmt_ms(r.par.wall)));
    line(format!(
        "| per-job latency p50 / max | {} / {} |",
        fmt_ms(par.p(50.0)),
        fmt_ms(par.max())
    ));
    line(format!(
        "| per-job latencies, sorted | {} |",
        per_job.join(", ")
    ));
    line(String::new());
    line("Where the time goes (from each job's audit rows, millisecond timestamps; p50 / max across jobs, ms):\n".into());
    line("| phase | sequential, paused | back to back | parallel |".into());
    line("|---|---|---|---|".into());
    type PhaseFn = fn(&Phases) -> i64;
    let rows: [(&str, PhaseFn); 5] = [
        (
            "call sent → `yolo.execute` committed (MCP, auth, token check)",
            |p| p.to_execute,
        ),
        (
            "`yolo.execute` → `job.claim` (runner wake-up via the WAL file watch, claim)",
            |p| p.to_claim,
        ),
        (
            "`job.claim` → `job.start` (container from the pool, or started)",
            |p| p.to_start,
        ),
        (
            "command in the container (`job.finish` `duration_ms`: hand-off, output, exit code)",
            |p| p.exec,
        ),
        (
            "`job.finish` → call returned (finish commit, bridge wake-up, response)",
            |p| p.to_return,
        ),
    ];
    for (label, f) in rows {
        let cell = |ph: &[Phases]| {
            let (p50, max) = phase_stats(ph, f);
            format!("{p50} / {max}")
        };
        line(format!(
            "| {label} | {} | {} | {} |",
            cell(&r.paused_phases),
            cell(&r.back_to_back_phases),
            cell(&r.par_phases)
        ));
    }
    line(String::new());
    line("The `job.start` → `job.finish` gap, minus the command's `duration_ms`, is the `job.start` commit; timestamps are the writers' clocks in whole milliseconds, so phases of a few ms are approximate.".into());
    out
}
