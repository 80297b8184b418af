//! Floods against the real `bridge serve --http` on loopback, with its
//! default limits: a session flood (abandoned `initialize` POSTs) and a
//! slowloris (half-sent request heads, trickled, reopened when closed).
//! Attackers speak from 127.0.0.2 and up; the legitimate client, on
//! 127.0.0.1, probes `/healthz` and calls a tool over an MCP session opened
//! before the flood (rmcp's client: a new connection per request). Prints a Markdown section for BENCHMARKS.md: server RSS
//! before, during and after, the legitimate client's latency, and the 503s.
//!
//! Run: `cargo run --release -p bridge-tests --bin bench_flood -- [--quick]
//! [--sessions N] [--rounds R] [--slow N] [--attackers A]
//! [--attacker-threads T] [--trace-client]`. Defaults: 6 rounds of 20 000 sessions, 10 000
//! slow connections, 100 attacker addresses on a runtime of their own with
//! one thread per CPU (`0`: on the legitimate client's runtime, which
//! measures the client's scheduler); `--quick` (CI) is 2 rounds of 2 000,
//! 2 000 slow connections and 5 addresses (the total connection cap
//! engages), `--rounds 0` the slowloris alone. Also prints where the
//! legitimate client's time went: `connect`, `/healthz`, the tool call,
//! the listen queue, the kernel's listen overflows, CPU by process, and the
//! server's own refusal counts. Exits non-zero when a target is missed: server RSS over 100 MB
//! at any point, RSS not levelling off across the session floods (see
//! `bridge_tests::bench::rss_ratchet`),
//! to the last, no 503 from the session cap, a legitimate request failing,
//! or one taking 1 s or more during the session floods or once the
//! slowloris's first header timeout has passed.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bridge_tests::bench::{Samples, fmt_mb, fmt_ms, rss_ratchet, vm_rss_kb};
use bridge_tests::flood::{
    AttackRuntime, HttpBridge, LEGIT, QueueWatch, attacker, connect_from, exchange, exchange_timed,
    healthz, initialize, raise_nofile, watch_queue,
};
use bridge_tests::procstat;
use bridge_tests::{Client, Conv, call, connect_http, machine_summary, ok};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The server's default header timeout (`--http-header-timeout`).
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// The server's default handshake deadline (`--http-session-init-timeout`).
const INIT_TIMEOUT: Duration = Duration::from_secs(10);
/// Targets.
const RSS_LIMIT_KB: u64 = 100_000_000 / 1024;
const LATENCY_LIMIT: Duration = Duration::from_secs(1);
/// Concurrent attackers in the session flood.
const SESSION_WORKERS: usize = 64;
/// How long a slow connection waits before reopening after the server
/// closed or refused it, so the benchmark's own CPU use stays bounded.
const REOPEN_PAUSE: Duration = Duration::from_millis(100);
/// Probes slower than this are listed one by one.
const SLOW_PROBE: Duration = Duration::from_millis(500);
/// Between two legitimate probes.
const PROBE_PAUSE: Duration = Duration::from_millis(100);

struct Args {
    sessions: usize,
    slow: usize,
    attackers: usize,
    rounds: usize,
    /// Worker threads of the attackers' own runtime (their CPU bound).
    attacker_threads: usize,
    quick: bool,
    /// Log the legitimate client's HTTP stack to stderr (`--trace-client`).
    trace_client: bool,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut a = Args {
        sessions: 20_000,
        slow: 10_000,
        attackers: 100,
        rounds: 6,
        attacker_threads: std::thread::available_parallelism().map_or(2, |n| n.get()),
        quick: false,
        trace_client: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--sessions" => a.sessions = value()?.parse().context("--sessions N")?,
            "--slow" => a.slow = value()?.parse().context("--slow N")?,
            "--attackers" => a.attackers = value()?.parse().context("--attackers A")?,
            "--rounds" => a.rounds = value()?.parse().context("--rounds R")?,
            "--attacker-threads" => {
                a.attacker_threads = value()?.parse().context("--attacker-threads N")?;
            }
            "--trace-client" => a.trace_client = true,
            "--quick" => {
                (a.sessions, a.slow, a.attackers, a.rounds) = (2_000, 2_000, 5, 2);
                a.quick = true;
            }
            other => bail!(
                "unknown argument {other:?}; use --quick, --sessions N, --rounds R, --slow N, --attackers A, --attacker-threads N or --trace-client"
            ),
        }
    }
    anyhow::ensure!(
        (1..=60_000).contains(&a.attackers),
        "--attackers must be 1..=60000"
    );
    Ok(a)
}

/// One legitimate probe: `/healthz` on a fresh connection plus a tool call
/// on the open MCP session.
#[derive(Clone, Copy)]
struct Probe {
    at: Instant,
    /// Both requests, one after the other: what the target is about.
    took: Duration,
    /// `connect` of the `/healthz` connection (the kernel's handshake).
    connect: Duration,
    /// `/healthz`, connect to the whole answer.
    health: Duration,
    /// The tool call on the session (rmcp's client opens a new connection
    /// for every request: its default reqwest client keeps none idle).
    tool: Duration,
    /// How late the probe's 100 ms pause ended: the benchmark's own
    /// scheduling delay, not the server's.
    lag: Duration,
    ok: bool,
}

/// One part of a probe's time.
type Part = fn(&Probe) -> Duration;

/// Probes every 100 ms until `stop`; returns the probes.
async fn probe(
    client: Arc<Client>,
    conv: Arc<Conv>,
    to: SocketAddr,
    stop: Arc<AtomicBool>,
) -> Vec<Probe> {
    let mut out = Vec::new();
    let mut lag = Duration::ZERO;
    while !stop.load(Ordering::Relaxed) {
        let at = Instant::now();
        let health = exchange_timed(LEGIT, to, &healthz(to.port()), "ok").await;
        let health_took = at.elapsed();
        let tool = call(
            &client,
            "check_partner_status",
            conv.args("a", serde_json::json!({})),
        )
        .await;
        let took = at.elapsed();
        let connect = health.as_ref().map_or(health_took, |(_, c)| *c);
        let ok = matches!(health, Ok((ref r, _)) if r.status == 200) && tool.and_then(ok).is_ok();
        out.push(Probe {
            at,
            took,
            connect,
            health: health_took,
            tool: took - health_took,
            lag,
            ok,
        });
        let pause = Instant::now();
        tokio::time::sleep(PROBE_PAUSE).await;
        lag = pause.elapsed().saturating_sub(PROBE_PAUSE);
    }
    out
}

/// Samples the server's RSS every 100 ms until `stop`; returns the peak (kB).
async fn rss_peak(pid: u32, stop: Arc<AtomicBool>) -> u64 {
    let mut peak = 0;
    while !stop.load(Ordering::Relaxed) {
        peak = peak.max(vm_rss_kb(pid).unwrap_or(0));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    peak
}

/// One session-flood round.
struct Round {
    counts: Arc<Counts>,
    took: Duration,
    rss_end: u64,
    rss_after: u64,
}

#[derive(Default)]
struct Counts {
    created: AtomicU64,
    refused: AtomicU64,
    other: AtomicU64,
    failed: AtomicU64,
}

/// `n` abandoned `initialize` POSTs from the attacker addresses.
async fn session_flood(to: SocketAddr, n: usize, attackers: usize) -> Arc<Counts> {
    let counts = Arc::new(Counts::default());
    let next = Arc::new(AtomicU64::new(0));
    let mut workers = Vec::new();
    for _ in 0..SESSION_WORKERS {
        let (counts, next) = (counts.clone(), next.clone());
        workers.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                if i >= n {
                    break;
                }
                let from = attacker(i % attackers);
                let c = match exchange(from, to, &initialize(to.port()), "\"result\"").await {
                    Ok(r) if r.status == 200 => &counts.created,
                    Ok(r) if r.status == 503 && r.header("retry-after").is_some() => {
                        &counts.refused
                    }
                    Ok(_) => &counts.other,
                    Err(_) => &counts.failed,
                };
                c.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    for w in workers {
        let _ = w.await;
    }
    counts
}

#[derive(Default)]
struct SlowCounts {
    opened: AtomicU64,
    refused_503: AtomicU64,
    closed: AtomicU64,
    connect_failed: AtomicU64,
}

/// One slow client: opens a connection, sends a request head one line a
/// second, and reopens when the server closes it, until `stop`.
async fn slow_client(from: Ipv4Addr, to: SocketAddr, stop: Arc<AtomicBool>, c: Arc<SlowCounts>) {
    let mut buf = [0u8; 512];
    while !stop.load(Ordering::Relaxed) {
        let Ok(mut s) = connect_from(from, to).await else {
            c.connect_failed.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(REOPEN_PAUSE).await;
            continue;
        };
        c.opened.fetch_add(1, Ordering::Relaxed);
        let mut line = 0u32;
        let _ = s
            .write_all(b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            .await;
        loop {
            tokio::select! {
                r = s.read(&mut buf) => {
                    if matches!(r, Ok(n) if n > 0 && buf[..n].starts_with(b"HTTP/1.1 503")) {
                        c.refused_503.fetch_add(1, Ordering::Relaxed);
                    } else {
                        c.closed.fetch_add(1, Ordering::Relaxed);
                    }
                    break;
                }
                () = tokio::time::sleep(Duration::from_secs(1)) => {
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    line += 1;
                    let _ = s.write_all(format!("X-Slow-{line}: 1\r\n").as_bytes()).await;
                }
            }
        }
        tokio::time::sleep(REOPEN_PAUSE).await;
    }
}

/// CPU seconds and TCP counters at one moment.
struct Snap {
    at: Instant,
    server: f64,
    bench: f64,
    busy: f64,
    softirq: f64,
    total: f64,
    tcp: std::collections::HashMap<String, u64>,
}

fn snap(server: u32) -> anyhow::Result<Snap> {
    let (busy, softirq, total) = procstat::machine_cpu_secs()?;
    Ok(Snap {
        at: Instant::now(),
        server: procstat::cpu_secs(Some(server))?,
        bench: procstat::cpu_secs(None)?,
        busy,
        softirq,
        total,
        tcp: procstat::tcp_ext()?,
    })
}

/// Where the CPU and the listen queue went between two snapshots.
fn diagnose(a: &Snap, b: &Snap, q: &QueueWatch, limit: u64) -> String {
    let secs = (b.at - a.at).as_secs_f64();
    let cores = |x: f64| format!("{:.2}", x / secs);
    let others = (b.busy - a.busy) - (b.server - a.server) - (b.bench - a.bench);
    let tcp = |k: &str| {
        b.tcp
            .get(k)
            .unwrap_or(&0)
            .saturating_sub(*a.tcp.get(k).unwrap_or(&0))
    };
    format!(
        "CPU in cores over the {secs:.0} s: server {}, benchmark (attackers and legitimate client) {}, the rest of the machine and unattributed softirq {}, idle {} (softirq, counted in the others, {}). Listen queue (limit {limit}): max {}, mean {:.0}, full in {} of {} samples; kernel `ListenOverflows` +{}, `ListenDrops` +{}, `TCPReqQFullDrop` +{}; dropped by a full conntrack table +{}, IP packets never sent +{} (both non-zero: SYNs lost outside the server, resent after 1 s, 3 s, 7 s).",
        cores(b.server - a.server),
        cores(b.bench - a.bench),
        cores(others.max(0.0)),
        cores((b.total - a.total) - (b.busy - a.busy)),
        cores(b.softirq - a.softirq),
        q.max,
        q.sum as f64 / q.samples.max(1) as f64,
        q.full,
        q.samples,
        tcp("ListenOverflows"),
        tcp("ListenDrops"),
        tcp("TCPReqQFullDrop"),
        tcp("ConntrackDrop"),
        tcp("IpOutNotSent"),
    )
}

/// p50 / p99 / max of one part of the probes.
fn phase(label: &str, probes: &[Probe], part: impl Fn(&Probe) -> Duration) -> String {
    let s = Samples::new(probes.iter().map(part).collect());
    if s.is_empty() {
        return format!("| {label} | – | – | – |");
    }
    format!(
        "| {label} | {} | {} | {} |",
        fmt_ms(s.p(50.0)),
        fmt_ms(s.p(99.0)),
        fmt_ms(s.max())
    )
}

fn count_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

fn summarize(label: &str, probes: &[Probe]) -> (String, bool, Duration) {
    let failed = probes.iter().filter(|p| !p.ok).count();
    let s = Samples::new(probes.iter().map(|p| p.took).collect());
    if s.is_empty() {
        return (
            format!("| {label} | 0 | – | – | – | – |"),
            false,
            Duration::MAX,
        );
    }
    (
        format!(
            "| {label} | {} | {} | {} | {} | {failed} |",
            s.len(),
            fmt_ms(s.p(50.0)),
            fmt_ms(s.p(99.0)),
            fmt_ms(s.max())
        ),
        failed == 0,
        s.max(),
    )
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = parse_args()?;
    if args.trace_client {
        bridge_tests::flood::log_client_http();
    }
    let nofile = raise_nofile(args.slow as u64 + 1024)?;
    anyhow::ensure!(
        nofile >= args.slow as u64 + 256,
        "the open-files limit is {nofile}, too low for {} slow connections; raise `ulimit -Hn` or pass a smaller --slow",
        args.slow
    );
    // The attackers get a runtime of their own, as if on other machines:
    // the legitimate client's tasks never wait behind theirs. With
    // `--attacker-threads 0` they share the client's runtime, as this
    // benchmark did before 2026-12-02, which measures the client's own
    // scheduler as much as the server.
    let attack_rt = AttackRuntime::new(args.attacker_threads)?;
    let attack = attack_rt.handle();
    let dir = tempfile::tempdir()?;
    let server = HttpBridge::start(dir.path(), &[]).await?;
    let (to, pid) = (server.addr, server.pid());
    let client = Arc::new(connect_http(&server.url(), None).await?);
    let conv = Arc::new(Conv::create_on(&client).await?);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_before = vm_rss_kb(pid)?;
    let mut failures = Vec::new();

    // --- Session floods, repeated: RSS must not ratchet up --------------
    let stop = Arc::new(AtomicBool::new(false));
    let prober = tokio::spawn(probe(client.clone(), conv.clone(), to, stop.clone()));
    let peak = tokio::spawn(rss_peak(pid, stop.clone()));
    let mut rounds = Vec::new();
    for _ in 0..args.rounds {
        let started = Instant::now();
        let counts = attack
            .spawn(session_flood(to, args.sessions, args.attackers))
            .await?;
        let took = started.elapsed();
        let rss_end = vm_rss_kb(pid)?;
        // Every abandoned session is past its handshake deadline after this.
        tokio::time::sleep(INIT_TIMEOUT + Duration::from_secs(3)).await;
        rounds.push(Round {
            counts,
            took,
            rss_end,
            rss_after: vm_rss_kb(pid)?,
        });
    }
    stop.store(true, Ordering::Relaxed);
    let session_probes = prober.await?;
    let session_peak = peak.await?;
    let rss_after_sessions = rounds.last().map_or(0, |r| r.rss_after);

    // --- Slowloris -------------------------------------------------------
    let stop = Arc::new(AtomicBool::new(false));
    let prober = tokio::spawn(probe(client.clone(), conv.clone(), to, stop.clone()));
    let peak = tokio::spawn(rss_peak(pid, stop.clone()));
    let slow = Arc::new(SlowCounts::default());
    let queue_limit = u64::from(bridge::mcp::http::LISTEN_BACKLOG).min(
        std::fs::read_to_string("/proc/sys/net/core/somaxconn")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(u64::MAX),
    );
    let queue = tokio::spawn(watch_queue(to.port(), queue_limit, stop.clone()));
    let flood_started = Instant::now();
    let mut slow_tasks = Vec::new();
    for i in 0..args.slow {
        slow_tasks.push(attack.spawn(slow_client(
            attacker(i % args.attackers),
            to,
            stop.clone(),
            slow.clone(),
        )));
    }
    let hold = HEADER_TIMEOUT + Duration::from_secs(if args.quick { 6 } else { 20 });
    tokio::time::sleep(HEADER_TIMEOUT).await;
    let settled_snap = snap(pid)?;
    let fds_during = count_fds(pid);
    tokio::time::sleep(hold - HEADER_TIMEOUT).await;
    let end_snap = snap(pid)?;
    stop.store(true, Ordering::Relaxed);
    let slow_probes = prober.await?;
    let slow_peak = peak.await?;
    let queue = queue.await?;
    for t in slow_tasks {
        t.abort();
    }
    drop(attack_rt);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_after_slow = vm_rss_kb(pid)?;
    let settled = flood_started + HEADER_TIMEOUT;
    let (early, late): (Vec<Probe>, Vec<Probe>) = slow_probes.iter().partition(|p| p.at < settled);

    let (row_sessions, sessions_ok, sessions_max) =
        summarize("during the session flood", &session_probes);
    let (row_early, early_ok, _) = summarize("slowloris, first header timeout", &early);
    let (row_late, late_ok, late_max) = summarize("slowloris, after the header timeout", &late);
    // `--rounds 0` runs the slowloris alone.
    if args.rounds > 0 && (!sessions_ok || sessions_max >= LATENCY_LIMIT) {
        failures.push(format!(
            "legitimate requests during the session flood: max {} (limit {}), all ok: {sessions_ok}",
            fmt_ms(sessions_max),
            fmt_ms(LATENCY_LIMIT)
        ));
    }
    if !early_ok {
        failures.push(
            "a legitimate request failed in the first header timeout of the slowloris".into(),
        );
    }
    if !late_ok || late_max >= LATENCY_LIMIT {
        failures.push(format!(
            "legitimate requests once the header timeout had passed: max {} (limit {}), all ok: {late_ok}",
            fmt_ms(late_max),
            fmt_ms(LATENCY_LIMIT)
        ));
    }
    for (what, kb) in [
        ("peak during the session floods", session_peak),
        ("after the session floods", rss_after_sessions),
        ("peak during the slowloris", slow_peak),
        ("after the slowloris", rss_after_slow),
    ] {
        if kb > RSS_LIMIT_KB {
            failures.push(format!("server RSS {what}: {} (limit 100 MB)", fmt_mb(kb)));
        }
    }
    for (i, r) in rounds.iter().enumerate() {
        if r.counts.refused.load(Ordering::Relaxed) == 0 {
            failures.push(format!(
                "round {}: no session was refused with 503: the cap did not engage",
                i + 1
            ));
        }
        // Later rounds find the places freed by the expired sessions.
        if r.counts.created.load(Ordering::Relaxed) == 0 {
            failures.push(format!("round {}: no session could be created", i + 1));
        }
    }
    let after: Vec<u64> = rounds.iter().map(|r| r.rss_after).collect();
    if let Some(ratchet) = rss_ratchet(&after) {
        failures.push(ratchet);
    }

    let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
    println!(
        "## HTTP floods (`bench_flood{}`)\n",
        if args.quick { " --quick" } else { "" }
    );
    println!("{}\n", machine_summary());
    println!(
        "Default limits (256 sessions, 128 per address, handshake 10 s; 1 024 connections, 256 per address, header timeout 10 s). Attackers from {} addresses (127.0.0.2 and up); the legitimate client on 127.0.0.1 probes `/healthz` on a new connection plus a `check_partner_status` call on an MCP session opened before, every 100 ms.\n",
        args.attackers
    );
    println!(
        "**Session flood**, {} rounds of {} abandoned `initialize` POSTs ({} at a time), each followed by a {} s pause (sessions past their handshake deadline):\n",
        args.rounds,
        args.sessions,
        SESSION_WORKERS,
        (INIT_TIMEOUT + Duration::from_secs(3)).as_secs()
    );
    println!(
        "| round | took | created | 503 + Retry-After | other | failed | RSS at the end | RSS after the pause |\n|---|---|---|---|---|---|---|---|"
    );
    for (i, r) in rounds.iter().enumerate() {
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            i + 1,
            fmt_ms(r.took),
            load(&r.counts.created),
            load(&r.counts.refused),
            load(&r.counts.other),
            load(&r.counts.failed),
            fmt_mb(r.rss_end),
            fmt_mb(r.rss_after)
        );
    }
    println!();
    println!(
        "**Slowloris:** {} connections held open for {} s, a header line a second each, reopened {} ms after the server closed them: {} opened, {} answered 503, {} closed by the server (after the header timeout, to make room, or refused with a reset), {} connects failed; the server held {} file descriptors when the header timeout had passed.\n",
        args.slow,
        hold.as_secs(),
        REOPEN_PAUSE.as_millis(),
        load(&slow.opened),
        load(&slow.refused_503),
        load(&slow.closed),
        load(&slow.connect_failed),
        fds_during
    );
    println!("| server RSS | |\n|---|---|");
    for (what, kb) in [
        ("before", rss_before),
        ("peak during the session floods", session_peak),
        ("after the last session flood's pause", rss_after_sessions),
        ("peak during the slowloris", slow_peak),
        ("2 s after the slowloris", rss_after_slow),
    ] {
        println!("| {what} | {} |", fmt_mb(kb));
    }
    println!(
        "\n| legitimate client | probes | p50 | p99 | max | failed |\n|---|---|---|---|---|---|"
    );
    println!("{row_sessions}\n{row_early}\n{row_late}\n");
    println!(
        "Where the legitimate client's time went once the header timeout had passed:\n\n| part | p50 | p99 | max |\n|---|---|---|---|"
    );
    let parts: [(&str, Part); 4] = [
        ("`connect` for `/healthz`", |p| p.connect),
        ("`/healthz`, connect to answer", |p| p.health),
        ("tool call (a new connection each)", |p| p.tool),
        ("the benchmark's own scheduling delay", |p| p.lag),
    ];
    for (label, part) in parts {
        println!("{}", phase(label, &late, part));
    }
    let slow = slow_probes.iter().filter(|p| p.took >= SLOW_PROBE);
    let slow: Vec<String> = slow
        .map(|p| {
            let at = (p.at - flood_started).as_secs_f64();
            let parts = [p.took, p.connect, p.health, p.tool]
                .map(fmt_ms)
                .join(" | ");
            format!("| {at:.2} s | {parts} | {} |", p.ok)
        })
        .collect();
    if !slow.is_empty() {
        println!(
            "\nSlowloris probes over {} (at: since the flood began):\n\n| at | took | `connect` | `/healthz` | tool call | ok |\n|---|---|---|---|---|---|\n{}",
            fmt_ms(SLOW_PROBE),
            slow.join("\n")
        );
    }
    println!(
        "\nAfter the header timeout, with {}: {}\n",
        match args.attacker_threads {
            0 => "the attackers on the legitimate client's runtime".to_owned(),
            n => format!("the attackers on a runtime of {n} thread(s)"),
        },
        diagnose(&settled_snap, &end_snap, &queue, queue_limit)
    );

    drop(client);
    // The server logs what its connection limits did (each minute and at
    // shutdown): refusals, and idle connections closed to make room.
    let engaged: Vec<String> = server
        .stop_with_log()
        .await?
        .lines()
        .filter(|l| l.contains("connection limits engaged"))
        .map(str::to_owned)
        .collect();
    println!("The server's own counts (its log):\n\n```");
    for line in &engaged {
        println!("{line}");
    }
    println!("```\n");
    if failures.is_empty() {
        println!("All targets met.");
        Ok(())
    } else {
        for f in &failures {
            eprintln!("TARGET MISSED: {f}");
        }
        bail!("{} target(s) missed", failures.len())
    }
}
