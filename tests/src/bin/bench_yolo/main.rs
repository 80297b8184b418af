//! Benchmarks the YOLO execution path on a real Docker engine: approved-to-result latency of `echo hi` through the release `bridge serve` and `runner` (warm pool), next to `docker run --rm` with the same hardening flags in the same run, plus 8 jobs in parallel, the first burst of 8 after idle, steady bursts of 8 every 2 s, a sustained run with 8 in flight, and the memory an idle warm container costs; prints a Markdown section for BENCHMARKS.md.
//!
//! Run: `cargo run --release -p bridge-tests --bin bench_yolo -- [--quick]
//! [--pause-ms N] [--pool-size N] [--tls | --ssh]`. `--tls` and `--ssh` instead compare the local socket with the same engine over TCP + TLS or over ssh (see `remote`). `--quick` uses small counts (a CI smoke run of well
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

mod docker;
mod flow;
mod load;
mod phases;
mod remote;
mod report;

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use bridge_tests::bench::Samples;
use bridge_tests::bin;
use bridge_tests::procstat::machine_cpu_secs;
use bridge_tests::yolo;

use docker::{docker_engine, docker_run_args, time_many};
use flow::{Exec, Parallel, Setup, approve_batch, parallel, sequential, setup, wait_for_warm_pool};
use phases::{Phases, phases};
use report::{load, report};

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
    /// Bursts of `PARALLEL` jobs at once, `BURST_EVERY` apart, after the
    /// first (which finds the pool at its minimum).
    bursts: usize,
    /// Jobs in the sustained run, `PARALLEL` in flight.
    sustained: usize,
}

const FULL: Counts = Counts {
    warmup: 3,
    runs: 30,
    back_to_back: 30,
    docker_runs: 30,
    docker_warmup: 2,
    cli_runs: 30,
    bursts: 10,
    sustained: 200,
};

const QUICK: Counts = Counts {
    warmup: 1,
    runs: 5,
    back_to_back: 5,
    docker_runs: 5,
    docker_warmup: 1,
    cli_runs: 5,
    bursts: 3,
    sustained: 40,
};

/// Concurrent jobs in the parallel scenario (the runner's default
/// `--max-parallel`).
const PARALLEL: usize = 8;
/// Warm containers the runner keeps per configuration (its default
/// `--pool-size`; the bench's `--pool-size` changes it).
const POOL_SIZE: usize = 2;
/// From one burst's start to the next's.
const BURST_EVERY: Duration = Duration::from_secs(2);
/// Default pause between timed executions, so the runner's pool refills in
/// the background and each execution finds a warm container.
const DEFAULT_PAUSE_MS: u64 = 300;
/// The command every job runs.
const COMMAND: &str = "echo hi";
/// Any single execution or docker run slower than this is a failure.
const CALL_TIMEOUT: Duration = Duration::from_secs(60);

struct Options {
    quick: bool,
    /// Between the headline's sequential executions.
    pause: Duration,
    /// The runner's `--pool-size`.
    pool_size: usize,
    /// How many `bridge serve` processes (agents) share the parallel jobs:
    /// `PARALLEL` by default, one per job; 1 sends them all down one MCP
    /// connection.
    agents: usize,
    /// Only compare the local socket with the same engine reached over
    /// TLS or ssh.
    remote: Option<remote::Kind>,
    command: String,
}

const USAGE: &str =
    "usage: bench_yolo [--quick] [--pause-ms N] [--pool-size N] [--agents N] [--tls | --ssh]";

fn options() -> anyhow::Result<Options> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut quick = false;
    let mut pause_ms = DEFAULT_PAUSE_MS;
    let mut pool_size = POOL_SIZE;
    let mut remote = None;
    let mut agents = PARALLEL;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--quick" => quick = true,
            "--tls" => remote = Some(remote::Kind::Tls),
            "--ssh" => remote = Some(remote::Kind::Ssh),
            "--pause-ms" => {
                pause_ms = it.next().and_then(|v| v.parse().ok()).with_context(|| {
                    format!("--pause-ms needs a number of milliseconds; {USAGE}")
                })?;
            }
            "--pool-size" => {
                pool_size = it.next().and_then(|v| v.parse().ok()).with_context(|| {
                    format!("--pool-size needs a number of containers; {USAGE}")
                })?;
            }
            "--agents" => {
                agents = it
                    .next()
                    .and_then(|v| v.parse().ok())
                    .filter(|&n| n > 0)
                    .with_context(|| {
                        format!("--agents needs a number of agent processes, at least 1; {USAGE}")
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
        pool_size,
        agents,
        remote,
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
    let mut st = setup(image, opts.pool_size, opts.agents).await?;
    if let Some(kind) = opts.remote {
        let section = remote::compare(&mut st, kind, k.runs.max(20), opts.pause, image).await;
        let stopped = st.runner.stop(Duration::from_secs(20));
        print!("{}", section?);
        return stopped;
    }
    let result = scenarios(&st, k, opts.pause, image).await;
    let rid = st.runner_id.clone();
    let stopped = st.runner.stop(Duration::from_secs(20));
    for agent in st.agents {
        if let Some(s) = Arc::into_inner(agent) {
            s.stop().await?;
        }
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
    first_burst: Parallel,
    first_burst_phases: Vec<Phases>,
    /// Warm containers before the first burst and after the steady ones.
    pool_before: usize,
    pool_grown: usize,
    steady: Vec<Parallel>,
    sustained: load::Sustained,
    idle_cost: load::IdleCost,
    paused: Vec<Exec>,
    paused_phases: Vec<Phases>,
    back_to_back: Vec<Exec>,
    back_to_back_phases: Vec<Phases>,
    par: Parallel,
    par_phases: Vec<Phases>,
    docker_run: Samples,
    /// The machine's busy CPU seconds per `docker run --rm` (the CLI
    /// included).
    docker_run_cpu_secs: f64,
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
    eprintln!(
        "[yolo] waiting for the warm pool ({} containers)",
        st.pool_size
    );
    wait_for_warm_pool(st).await?;
    eprintln!("[yolo] warm-up: {} executions", k.warmup);
    let batch = approve_batch(st, k.warmup).await?;
    sequential(st, &batch, pause).await?;

    // First, while the pool is at its minimum: a burst after idle.
    let batch = approve_batch(st, PARALLEL).await?;
    let pool_before = wait_for_warm_pool(st).await?;
    eprintln!("[yolo] first burst after idle: {PARALLEL} jobs at once (pool: {pool_before})");
    let first_burst = parallel(st, &batch).await?;
    let first_burst_phases = phases(&st.db, &first_burst.runs)?;
    eprintln!(
        "[yolo] {} bursts of {PARALLEL} jobs, {} s apart",
        k.bursts,
        BURST_EVERY.as_secs()
    );
    let steady = load::bursts(st, k.bursts, PARALLEL, BURST_EVERY).await?;
    let pool_grown = wait_for_warm_pool(st).await?;
    let idle_cost = load::idle_container_cost(&st.runner_id).await?;
    eprintln!(
        "[yolo] sustained: {} jobs, {PARALLEL} in flight",
        k.sustained
    );
    let sustained = load::sustained(st, k.sustained, PARALLEL).await?;

    eprintln!(
        "[yolo] approving {} proposals on a pty, then executing them {} ms apart",
        k.runs,
        pause.as_millis()
    );
    let batch = approve_batch(st, k.runs).await?;
    wait_for_warm_pool(st).await?;
    let paused = sequential(st, &batch, pause).await?;
    let paused_phases = phases(&st.db, &paused)?;

    eprintln!(
        "[yolo] approving {} proposals, then executing them back to back",
        k.back_to_back
    );
    let batch = approve_batch(st, k.back_to_back).await?;
    wait_for_warm_pool(st).await?;
    let back_to_back = sequential(st, &batch, Duration::ZERO).await?;
    let back_to_back_phases = phases(&st.db, &back_to_back)?;

    eprintln!("[yolo] approving {PARALLEL} proposals, then executing them all at once");
    let batch = approve_batch(st, PARALLEL).await?;
    wait_for_warm_pool(st).await?;
    let par = parallel(st, &batch).await?;
    let par_phases = phases(&st.db, &par.runs)?;
    // The docker baseline runs with the runner idle and its pool full, like
    // the runner's own measurements.
    wait_for_warm_pool(st).await?;

    eprintln!(
        "[docker] {} × docker run --rm with the same hardening",
        k.docker_runs
    );
    let run_args = docker_run_args(image);
    let cpu_before = machine_cpu_secs()?.0;
    let docker_run = time_many(&run_args, Some("hi\n"), k.docker_warmup, k.docker_runs).await?;
    let docker_run_cpu_secs =
        (machine_cpu_secs()?.0 - cpu_before) / (k.docker_warmup + k.docker_runs) as f64;
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
        first_burst,
        first_burst_phases,
        pool_before,
        pool_grown,
        steady,
        sustained,
        idle_cost,
        paused,
        paused_phases,
        back_to_back,
        back_to_back_phases,
        par,
        par_phases,
        docker_run,
        docker_run_cpu_secs,
        docker_version,
        docker_ps,
        pause,
        load_before,
        load_after: load(),
    })
}
