//! The Markdown section the benchmark prints for BENCHMARKS.md, and what it
//! says about the machine.

use bridge_tests::bench::{Samples, fmt_mb, fmt_ms};
use bridge_tests::bench_report::{revision, status};

use crate::docker::docker_run_args;
use crate::flow::Exec;
use crate::phases::{Phases, phase_stats};
use crate::{COMMAND, Counts, Options, PARALLEL, Results};

pub fn machine() -> String {
    bridge_tests::machine_summary()
}

/// The 1-minute load average: other work on the machine skews latencies.
pub fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".into())
}

pub fn warm_count(runs: &[Exec]) -> String {
    let warm = runs.iter().filter(|r| r.warm == Some(true)).count();
    format!("{warm}/{}", runs.len())
}

pub fn latency_row(label: &str, s: &Samples) -> String {
    format!(
        "| {label} | {} | {} | {} | {} |",
        fmt_ms(s.p(50.0)),
        fmt_ms(s.p(95.0)),
        fmt_ms(s.min()),
        fmt_ms(s.max())
    )
}

pub fn report(r: &Results, k: &Counts, engine: &str, opts: &Options, image: &str) -> String {
    let pool = opts.pool_size;
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
        revision(&["bridge", "runner"])
    ));
    line(format!("- Command: `{}`", opts.command));
    line(format!(
        "- Method: `bridge serve --rate-limit off` (YOLO_MODE=1; {} such processes, one per agent, for the parallel, burst and sustained scenarios) and `runner` (`--pool-size {pool}`, default `--max-parallel {PARALLEL}`) on one temporary database; YOLO enabled in safe mode with image `{image}` (offline busybox image) through the operator CLI on a pty. Each sample is one `{COMMAND}` proposal, proposed and approved on a pty beforehand (untimed); only the `execute_command` call is timed, from sending the token to the result (state `done`, stdout `hi`) returned over MCP stdio. The runner was warm: its pool held at least {pool} started containers before each scenario (it grows with demand, see below). The headline runs leave {} ms between executions so the pool refills; \"warm\" counts jobs whose container was already running when the call was made.",
        opts.agents,
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
    let agents = if opts.agents == 1 {
        "one MCP connection, concurrent `execute_command` calls".to_owned()
    } else {
        format!(
            "{} agents: `bridge serve` processes on one database, jobs dealt out in turn",
            opts.agents
        )
    };
    line(format!(
        "| {PARALLEL} jobs in parallel ({agents}) | result |"
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
    tails(&mut line, r, &b2b);
    line(String::new());
    line("Where the time goes (from each job's audit rows, millisecond timestamps; p50 / max across jobs, ms):\n".into());
    line(
        "| phase | sequential, paused | back to back | parallel | first burst after idle |".into(),
    );
    line("|---|---|---|---|---|".into());
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
            "| {label} | {} | {} | {} | {} |",
            cell(&r.paused_phases),
            cell(&r.back_to_back_phases),
            cell(&r.par_phases),
            cell(&r.first_burst_phases)
        ));
    }
    line(String::new());
    line("The `job.start` → `job.finish` gap, minus the command's `duration_ms`, is the `job.start` commit; timestamps are the writers' clocks in whole milliseconds, so phases of a few ms are approximate.".into());
    out
}

/// Issue 15's targets: back-to-back tails, bursts, the sustained run, and
/// what the grown pool costs.
fn tails(line: &mut impl FnMut(String), r: &Results, b2b: &Samples) {
    let dr = r.docker_run.p(50.0).as_secs_f64();
    let x = |d: std::time::Duration| d.as_secs_f64() / dr;
    let first = r
        .first_burst
        .runs
        .iter()
        .map(|e| e.latency)
        .max()
        .unwrap_or_default();
    let steady = crate::load::slowest(&r.steady);
    let s = &r.sustained;
    let per_s = s.latencies.len() as f64 / s.wall.as_secs_f64();
    let cost = &r.idle_cost;
    line(format!(
        "| tails, bursts and the sustained run (`docker run --rm` p50 = {} in this run) | value | target | status |",
        fmt_ms(r.docker_run.p(50.0))
    ));
    line("|---|---|---|---|".into());
    line(format!(
        "| back to back: p50 / `docker run --rm` p50 | {:.3} | ≤ 0.10 | {} |",
        x(b2b.p(50.0)),
        status(x(b2b.p(50.0)) <= 0.10)
    ));
    let spread = b2b.p(95.0).as_secs_f64() / b2b.p(50.0).as_secs_f64();
    line(format!(
        "| back to back: p95 / p50 = {} / {} | {spread:.2} | ≤ 2 | {} |",
        fmt_ms(b2b.p(95.0)),
        fmt_ms(b2b.p(50.0)),
        status(spread <= 2.0)
    ));
    line(format!(
        "| first burst after idle ({PARALLEL} at once, pool of {}; warm: {}): slowest {} | {:.3} | reported | — |",
        r.pool_before,
        warm_count(&r.first_burst.runs),
        fmt_ms(first),
        x(first)
    ));
    let all_ok = r.steady.iter().all(|b| b.runs.len() == PARALLEL);
    line(format!(
        "| {} steady bursts of {PARALLEL}, 2 s apart: all succeeded | {} | all | {} |",
        r.steady.len(),
        if all_ok { "yes" } else { "no" },
        status(all_ok)
    ));
    line(format!(
        "| steady bursts: slowest job of the slowest burst = {} (median burst's slowest {}) | {:.3} | ≤ 0.35 | {} |",
        fmt_ms(steady.max()),
        fmt_ms(steady.p(50.0)),
        x(steady.max()),
        status(x(steady.max()) <= 0.35)
    ));
    line(format!(
        "| sustained: {} jobs, {PARALLEL} in flight: jobs/s; p50 / p95 | {per_s:.1}/s; {} / {} | reported | — |",
        s.latencies.len(),
        fmt_ms(s.latencies.p(50.0)),
        fmt_ms(s.latencies.p(95.0))
    ));
    // What bounds jobs/s on this machine: every job costs the engine a
    // container start and removal, whatever the pool does.
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    let per_job = s.machine_cpu_secs / s.latencies.len() as f64;
    line(format!(
        "| sustained: machine CPU per job (all processes) / per hardened `docker run --rm` | {} / {}; {cpus:.0} CPUs ÷ per job = {:.1} jobs/s at most | reported | — |",
        fmt_ms(std::time::Duration::from_secs_f64(per_job)),
        fmt_ms(std::time::Duration::from_secs_f64(r.docker_run_cpu_secs)),
        cpus / per_job
    ));
    line(format!(
        "| pool: warm containers before the first burst / after the steady bursts | {} / {} | grows with demand | — |",
        r.pool_before, r.pool_grown
    ));
    line(format!(
        "| one idle warm container (mean of {}): cgroup memory + containerd shim RSS | {} + {} | reported | — |",
        cost.containers,
        fmt_mb(cost.cgroup_kb),
        fmt_mb(cost.shim_kb)
    ));
}
