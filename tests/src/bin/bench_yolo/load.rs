//! The scenarios of issue 15: bursts of jobs at once on a cadence (the
//! first after idle reported apart), a sustained run with a fixed number in
//! flight, and what an idle warm container costs in memory.

use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use bridge_tests::bench::{Samples, vm_rss_kb};
use bridge_tests::procstat::machine_cpu_secs;
use futures_util::StreamExt;

use crate::flow::{Approved, Exec, Parallel, Setup, approve_batch, execute, parallel};

/// `n` bursts of `size` jobs at once, one every `every` (the cadence is
/// kept from burst start to burst start; a burst slower than `every` starts
/// the next at once). Every proposal is approved before the first burst.
pub async fn bursts(
    st: &Setup,
    n: usize,
    size: usize,
    every: Duration,
) -> anyhow::Result<Vec<Parallel>> {
    let approved = approve_batch(st, n * size).await?;
    let mut out = Vec::with_capacity(n);
    let mut next = Instant::now();
    for batch in approved.chunks(size) {
        tokio::time::sleep_until(next.into()).await;
        next = Instant::now() + every;
        out.push(parallel(st, batch).await?);
    }
    Ok(out)
}

/// The slowest job of each burst.
pub fn slowest(bursts: &[Parallel]) -> Samples {
    Samples::new(
        bursts
            .iter()
            .filter_map(|b| b.runs.iter().map(|r| r.latency).max())
            .collect(),
    )
}

pub struct Sustained {
    pub wall: Duration,
    pub latencies: Samples,
    /// The machine's busy CPU seconds over the run, every process counted
    /// (bridge, runner, engine, shims, this program).
    pub machine_cpu_secs: f64,
}

/// `total` jobs, `in_flight` at a time, as fast as they complete, spread
/// over the agent processes in turn.
pub async fn sustained(st: &Setup, total: usize, in_flight: usize) -> anyhow::Result<Sustained> {
    let approved: Vec<Approved> = approve_batch(st, total).await?;
    let cpu_before = machine_cpu_secs()?.0;
    let start = Instant::now();
    let runs: Vec<anyhow::Result<Exec>> = futures_util::stream::iter(approved)
        .enumerate()
        .map(|(i, a)| {
            let (server, conv) = (st.agent(i), st.conv.clone());
            async move { execute(&server, &conv, &a).await }
        })
        .buffer_unordered(in_flight)
        .collect()
        .await;
    let wall = start.elapsed();
    let machine_cpu_secs = machine_cpu_secs()?.0 - cpu_before;
    let mut latencies = Vec::with_capacity(total);
    for r in runs {
        latencies.push(r?.latency);
    }
    Ok(Sustained {
        wall,
        latencies: Samples::new(latencies),
        machine_cpu_secs,
    })
}

/// What one idle warm container costs: its cgroup's memory as the engine
/// reports it, and the resident memory of its containerd shim on the host.
pub struct IdleCost {
    pub containers: usize,
    pub cgroup_kb: u64,
    pub shim_kb: u64,
}

pub async fn idle_container_cost(runner_id: &str) -> anyhow::Result<IdleCost> {
    let ids = crate::flow::running_containers(runner_id).await?;
    ensure!(!ids.is_empty(), "no warm container to measure");
    let mut cgroup_kb = 0;
    for id in &ids {
        let out = tokio::process::Command::new("docker")
            .args(["stats", "--no-stream", "--format", "{{.MemUsage}}", id])
            .output()
            .await
            .context("docker stats")?;
        let text = String::from_utf8_lossy(&out.stdout);
        cgroup_kb += parse_kb(text.split('/').next().unwrap_or(""))
            .with_context(|| format!("cannot read docker stats' memory from {text:?}"))?;
    }
    // A shim's command line names its container: `-id <id>`.
    let mut shim_kb = 0;
    for entry in std::fs::read_dir("/proc")?.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(cmd) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        if cmd.contains("containerd-shim") && ids.iter().any(|id| cmd.contains(id.as_str())) {
            shim_kb += vm_rss_kb(pid).unwrap_or(0);
        }
    }
    let n = ids.len() as u64;
    Ok(IdleCost {
        containers: ids.len(),
        cgroup_kb: cgroup_kb / n,
        shim_kb: shim_kb / n,
    })
}

/// `612KiB`, `1.2MiB`, `3.4GiB` → KiB.
fn parse_kb(s: &str) -> Option<u64> {
    let s = s.trim();
    let (num, unit) = s.split_at(s.find(|c: char| c.is_ascii_alphabetic())?);
    let v: f64 = num.trim().parse().ok()?;
    let k = match unit {
        "B" => 1.0 / 1024.0,
        "KiB" | "kB" => 1.0,
        "MiB" | "MB" => 1024.0,
        "GiB" | "GB" => 1024.0 * 1024.0,
        _ => return None,
    };
    Some((v * k).round() as u64)
}
