//! Benchmarks the real release `bridge serve` over MCP stdio with rmcp's client: spawn→`initialize`, sequential sends/s, two-process ping-pong, long-poll delivery latency and RSS; prints a Markdown section for BENCHMARKS.md.
//!
//! Run: `cargo run --release -p bridge-tests --bin bench_bridge -- [--quick]
//! [--python-baseline SCRIPT [--python PYTHON]]`. `--quick` uses small counts
//! (a CI smoke run of a few seconds). `--python-baseline` also runs scenarios
//! 1, 2 and 5 against the Python original (`PYTHON SCRIPT DB`, PYTHON
//! defaulting to `python3`, which must have the `mcp` package) so the ratios
//! come from the same run. A missed target is reported, not an error: the
//! exit status is non-zero only when something failed.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use bridge_tests::bench::{Samples, fmt_mb, fmt_ms, vm_rss_kb};
use bridge_tests::{Conv, Server, bin, text_of};
use serde_json::json;

/// How much work each scenario does.
struct Counts {
    inits: usize,
    sends: usize,
    send_warmup: usize,
    /// A sends run stops early after this long (the Python original is slow).
    send_budget: Duration,
    rounds: usize,
    round_warmup: usize,
    deliveries: usize,
    empty_checks: usize,
    idle: Duration,
}

const FULL: Counts = Counts {
    inits: 20,
    sends: 5000,
    send_warmup: 200,
    send_budget: Duration::from_secs(30),
    rounds: 500,
    round_warmup: 20,
    deliveries: 200,
    empty_checks: 1000,
    idle: Duration::from_secs(2),
};

const QUICK: Counts = Counts {
    inits: 3,
    sends: 200,
    send_warmup: 20,
    send_budget: Duration::from_secs(3),
    rounds: 20,
    round_warmup: 2,
    deliveries: 10,
    empty_checks: 50,
    idle: Duration::from_millis(300),
};

/// Long polls wait at most this long; every wait in the benchmark should end
/// far sooner.
const LONG_POLL_SECONDS: u64 = 30;
/// Before A sends, B's long poll is given this long to reach the server and
/// park, so the delivery scenario measures "B already waiting".
const PARK: Duration = Duration::from_millis(25);

/// A typical short agent message: prose with a path, no secrets.
fn message(i: usize) -> String {
    format!(
        "msg {i}: finished the refactor of src/store.rs; the migration test passes and the \
         WAL checkpoint is now explicit. Can you re-run the frontend build against it and \
         tell me whether the schema change broke anything?"
    )
}

/// A server implementation under test.
enum Target {
    Bridge,
    /// The Python original, for a same-run baseline.
    Python {
        script: PathBuf,
        python: String,
    },
}

impl Target {
    fn name(&self) -> &'static str {
        match self {
            Self::Bridge => "bridge",
            Self::Python { .. } => "Python original",
        }
    }

    /// Starts a server on `dir/bench.db`; returns once `initialize` is answered.
    async fn spawn(&self, dir: &Path) -> anyhow::Result<Server> {
        let db = dir.join("bench.db");
        match self {
            Self::Bridge => Server::start(&db, &["--rate-limit", "off"]).await,
            Self::Python { script, python } => {
                // Alone in a fresh directory the script's optional imports of
                // its rate limiter (10 sends/min, not configurable) and YOLO
                // module fail, so it runs unthrottled, like `--rate-limit off`.
                let copy = dir.join("bridge_original.py");
                if !copy.exists() {
                    std::fs::copy(script, &copy)
                        .with_context(|| format!("copying {}", script.display()))?;
                }
                let log = dir.join("python.stderr");
                let stderr = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&log)?;
                let mut cmd = tokio::process::Command::new(python);
                cmd.arg(&copy).arg(&db);
                Server::spawn(cmd, stderr.into()).await.with_context(|| {
                    let err = std::fs::read_to_string(&log).unwrap_or_default();
                    format!(
                        "starting `{python} {}` (does this python have the `mcp` package?); its stderr:\n{}",
                        script.display(),
                        err.lines().rev().take(15).collect::<Vec<_>>().join("\n")
                    )
                })
            }
        }
    }

    async fn create(&self, s: &Server) -> anyhow::Result<Conv> {
        match self {
            Self::Bridge => Conv::create(s).await,
            Self::Python { .. } => {
                // The original answers in prose only.
                let r = s
                    .call(
                        "create_conversation",
                        json!({"my_role": "backend_developer", "partner_role": "frontend_developer"}),
                    )
                    .await?;
                let text = text_of(&r);
                Ok(Conv {
                    id: word_after(&text, "Conversation ID:")?,
                    token_a: word_after(&text, "Your token (keep secret):")?,
                    token_b: word_after(&text, "Partner token (share securely):")?,
                })
            }
        }
    }

    async fn send(&self, s: &Server, c: &Conv, session: &str, msg: String) -> anyhow::Result<()> {
        match self {
            Self::Bridge => send(s, c, session, msg).await,
            Self::Python { .. } => {
                let r = s
                    .call("send_to_partner", c.args(session, json!({"message": msg})))
                    .await?;
                let text = text_of(&r);
                ensure!(text.contains("Message sent"), "Python send failed: {text}");
                Ok(())
            }
        }
    }

    /// Reads (and marks read) the caller's unread messages; returns how many.
    async fn check(&self, s: &Server, c: &Conv, session: &str) -> anyhow::Result<usize> {
        match self {
            Self::Bridge => check(s, c, session, 0).await,
            Self::Python { .. } => {
                let r = s.call("check_messages", c.args(session, json!({}))).await?;
                let text = text_of(&r);
                if text.contains("No new messages") {
                    return Ok(0);
                }
                let head = text
                    .split_once(" new message(s)")
                    .with_context(|| format!("Python check failed: {text}"))?
                    .0;
                Ok(head.split_whitespace().last().unwrap_or("").parse()?)
            }
        }
    }
}

fn word_after(text: &str, label: &str) -> anyhow::Result<String> {
    let rest = text
        .split_once(label)
        .with_context(|| format!("no `{label}` in the server's reply: {text}"))?
        .1;
    Ok(rest
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_owned())
}

async fn send(s: &Server, c: &Conv, session: &str, msg: String) -> anyhow::Result<()> {
    let sent = s
        .ok("send_to_partner", c.args(session, json!({"message": msg})))
        .await?;
    ensure!(sent["status"] == "sent", "unexpected send result {sent}");
    Ok(())
}

/// `check_messages` with `wait_seconds`; returns how many messages came back.
async fn check(s: &Server, c: &Conv, session: &str, wait: u64) -> anyhow::Result<usize> {
    let inbox = s
        .ok(
            "check_messages",
            c.args(session, json!({"wait_seconds": wait})),
        )
        .await?;
    Ok(inbox["messages"].as_array().map_or(0, Vec::len))
}

/// Long-polls until at least one message arrives.
async fn wait_for_message(s: &Server, c: &Conv, session: &str) -> anyhow::Result<usize> {
    loop {
        match check(s, c, session, LONG_POLL_SECONDS).await? {
            0 => continue,
            n => return Ok(n),
        }
    }
}

/// Scenario 1: spawn → `initialize` answered. The first spawn creates the
/// database and warms the page cache; it is returned separately.
async fn initialize(t: &Target, n: usize) -> anyhow::Result<(Duration, Samples)> {
    let dir = tempfile::tempdir()?;
    let mut first = Duration::ZERO;
    let mut v = Vec::with_capacity(n);
    for i in 0..=n {
        let start = Instant::now();
        let s = t.spawn(dir.path()).await?;
        let took = start.elapsed();
        s.stop().await?;
        if i == 0 {
            first = took;
        } else {
            v.push(took);
        }
    }
    Ok((first, Samples::new(v)))
}

struct SendRun {
    sent: usize,
    per_sec: f64,
    latency: Samples,
    rss_kb: u64,
}

/// Scenario 2: one client, sequential `send_to_partner`, after a warm-up.
async fn sends(t: &Target, k: &Counts) -> anyhow::Result<SendRun> {
    let dir = tempfile::tempdir()?;
    let s = t.spawn(dir.path()).await?;
    let c = t.create(&s).await?;
    for i in 0..k.send_warmup {
        t.send(&s, &c, "a", message(i)).await?;
    }
    let mut lat = Vec::with_capacity(k.sends);
    let start = Instant::now();
    while lat.len() < k.sends && start.elapsed() < k.send_budget {
        let one = Instant::now();
        t.send(&s, &c, "a", message(lat.len())).await?;
        lat.push(one.elapsed());
    }
    let elapsed = start.elapsed();
    let rss_kb = vm_rss_kb(s.pid)?;
    s.stop().await?;
    Ok(SendRun {
        sent: lat.len(),
        per_sec: lat.len() as f64 / elapsed.as_secs_f64(),
        latency: Samples::new(lat),
        rss_kb,
    })
}

/// Two `bridge serve` processes on one database, one per session, as real
/// agents each spawn their own stdio server.
async fn pair() -> anyhow::Result<(tempfile::TempDir, Server, Server, Conv)> {
    let dir = tempfile::tempdir()?;
    let a = Target::Bridge.spawn(dir.path()).await?;
    let b = Target::Bridge.spawn(dir.path()).await?;
    let c = Conv::create(&a).await?;
    Ok((dir, a, b, c))
}

/// Scenario 3: A sends and long-polls for the reply; B, on its own process,
/// long-polls and replies. One sample = A's send until A has B's reply.
async fn ping_pong(k: &Counts) -> anyhow::Result<Samples> {
    let (_dir, a, b, c) = pair().await?;
    let total = k.round_warmup + k.rounds;
    let cb = c.clone();
    let responder = tokio::spawn(async move {
        for i in 0..total {
            wait_for_message(&b, &cb, "b").await?;
            send(&b, &cb, "b", format!("pong {i}")).await?;
        }
        b.stop().await
    });
    let abort = responder.abort_handle();
    let rounds = async {
        let mut v = Vec::with_capacity(k.rounds);
        for i in 0..total {
            let start = Instant::now();
            send(&a, &c, "a", message(i)).await?;
            let got = wait_for_message(&a, &c, "a").await?;
            ensure!(got == 1, "round {i}: expected one reply, got {got}");
            if i >= k.round_warmup {
                v.push(start.elapsed());
            }
        }
        anyhow::Ok(v)
    };
    let v = rounds.await.inspect_err(|_| abort.abort())?;
    responder.await??;
    a.stop().await?;
    Ok(Samples::new(v))
}

/// Scenario 4: B is parked in `check_messages` (wait 30 s) on process 2; A
/// sends on process 1. One sample = just before A's send until B's call
/// returns.
async fn delivery(k: &Counts) -> anyhow::Result<Samples> {
    let (_dir, a, b, c) = pair().await?;
    let b = Arc::new(b);
    let mut v = Vec::with_capacity(k.deliveries);
    for i in 0..k.deliveries {
        let (b2, c2) = (b.clone(), c.clone());
        let waiter = tokio::spawn(async move {
            let got = check(&b2, &c2, "b", LONG_POLL_SECONDS).await?;
            anyhow::Ok((got, Instant::now()))
        });
        tokio::time::sleep(PARK).await;
        let start = Instant::now();
        if let Err(e) = send(&a, &c, "a", message(i)).await {
            waiter.abort();
            return Err(e);
        }
        let (got, returned) = waiter.await??;
        ensure!(got == 1, "sample {i}: B got {got} messages, expected 1");
        v.push(returned - start);
    }
    let b = Arc::into_inner(b).context("B's server is still shared")?;
    b.stop().await?;
    a.stop().await?;
    Ok(Samples::new(v))
}

/// Diagnostic: `check_messages` on an empty inbox without waiting, the
/// cheapest authenticated round trip.
async fn empty_checks(k: &Counts) -> anyhow::Result<Samples> {
    let dir = tempfile::tempdir()?;
    let s = Target::Bridge.spawn(dir.path()).await?;
    let c = Conv::create(&s).await?;
    let mut v = Vec::with_capacity(k.empty_checks);
    for i in 0..k.empty_checks + k.empty_checks / 10 {
        let start = Instant::now();
        check(&s, &c, "b", 0).await?;
        if i >= k.empty_checks / 10 {
            v.push(start.elapsed());
        }
    }
    s.stop().await?;
    Ok(Samples::new(v))
}

/// Scenario 5: RSS after startup, one short conversation and an idle pause.
async fn idle_rss(t: &Target, k: &Counts) -> anyhow::Result<u64> {
    let dir = tempfile::tempdir()?;
    let s = t.spawn(dir.path()).await?;
    let c = t.create(&s).await?;
    t.send(&s, &c, "a", message(0)).await?;
    ensure!(
        t.check(&s, &c, "b").await? == 1,
        "B did not get A's message"
    );
    t.send(&s, &c, "b", message(1)).await?;
    ensure!(t.check(&s, &c, "a").await? == 1, "A did not get B's reply");
    tokio::time::sleep(k.idle).await;
    let kb = vm_rss_kb(s.pid)?;
    s.stop().await?;
    Ok(kb)
}

/// Results of scenarios 1, 2 and 5, which run against either target.
struct Common {
    init_first: Duration,
    init: Samples,
    sends: SendRun,
    idle_kb: u64,
}

async fn common(t: &Target, k: &Counts) -> anyhow::Result<Common> {
    eprintln!("[{}] initialize: {} spawns", t.name(), k.inits + 1);
    let (init_first, init) = initialize(t, k.inits).await?;
    eprintln!("[{}] sends: {} sequential", t.name(), k.sends);
    let sends = sends(t, k).await?;
    eprintln!("[{}] idle RSS", t.name());
    let idle_kb = idle_rss(t, k).await?;
    Ok(Common {
        init_first,
        init,
        sends,
        idle_kb,
    })
}

struct Options {
    quick: bool,
    python: Option<(PathBuf, String)>,
    command: String,
}

fn options() -> anyhow::Result<Options> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut quick = false;
    let mut script = None;
    let mut python = "python3".to_owned();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--quick" => quick = true,
            "--python-baseline" => {
                script = Some(PathBuf::from(it.next().context(
                    "--python-baseline needs the path of the Python server script",
                )?));
            }
            "--python" => python = it.next().context("--python needs an interpreter")?.clone(),
            "-h" | "--help" => {
                println!(
                    "usage: bench_bridge [--quick] [--python-baseline SCRIPT [--python PYTHON]]"
                );
                std::process::exit(0);
            }
            other => bail!(
                "unknown argument `{other}`; usage: bench_bridge [--quick] [--python-baseline SCRIPT [--python PYTHON]]"
            ),
        }
    }
    let mut command = "cargo run --release -p bridge-tests --bin bench_bridge".to_owned();
    if !args.is_empty() {
        command = format!("{command} -- {}", args.join(" "));
    }
    if let Some(s) = &script {
        ensure!(s.is_file(), "no Python script at {}", s.display());
    }
    Ok(Options {
        quick,
        python: script.map(|s| (s, python)),
        command,
    })
}

fn machine() -> String {
    // Other work on the machine skews every number; say how busy it was.
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load: Vec<&str> = load.split_whitespace().take(3).collect();
    format!(
        "{}; load average (1/5/15 min) at start {}",
        bridge_tests::machine_summary(),
        load.join(" / ")
    )
}

/// The commit the bridge was built from, marked when the tree differs.
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
        Some(rev) => match git(&["status", "--porcelain", "--", "../bridge"]) {
            Some(s) if s.is_empty() => format!("commit `{rev}`"),
            _ => format!("commit `{rev}` plus uncommitted changes to bridge/"),
        },
    }
}

fn status(met: bool) -> &'static str {
    if met { "met" } else { "**missed**" }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let opts = options()?;
    let k = if opts.quick { &QUICK } else { &FULL };
    let machine = machine();
    // Build (if needed) before any timing.
    let binary = bin("bridge");
    ensure!(binary.is_file(), "no bridge binary at {}", binary.display());

    let bridge = common(&Target::Bridge, k).await?;
    eprintln!("[bridge] ping-pong: {} rounds", k.rounds);
    let pp = ping_pong(k).await?;
    eprintln!("[bridge] long-poll delivery: {} samples", k.deliveries);
    let dl = delivery(k).await?;
    eprintln!("[bridge] empty checks: {}", k.empty_checks);
    let empty = empty_checks(k).await?;
    let python = match &opts.python {
        Some((script, python)) => {
            let t = Target::Python {
                script: script.clone(),
                python: python.clone(),
            };
            Some(common(&t, k).await?)
        }
        None => None,
    };

    let s = &bridge.sends;
    let mut out = String::new();
    let mut line = |l: String| {
        out.push_str(&l);
        out.push('\n');
    };
    line(format!(
        "## Bridge benchmark, {}{}\n",
        chrono::Utc::now().format("%Y-%m-%d"),
        if opts.quick {
            " (quick run: small counts)"
        } else {
            ""
        }
    ));
    line(format!("- Machine: {machine}"));
    line(format!("- Built: release `bridge` from {}", revision()));
    line(format!("- Command: `{}`", opts.command));
    line(format!(
        "- Method: rmcp's client over stdio against `bridge serve --rate-limit off`, a fresh temporary database per scenario; messages of {} characters. Ping-pong and delivery use two server processes on one database, one per session.\n",
        message(0).chars().count()
    ));
    line("| metric | result | target | status | Python original (issue's figure, not measured in this run) |".into());
    line("|---|---|---|---|---|".into());
    line(format!(
        "| spawn → `initialize` answered, p50 / p95 of {} | {} / {} | < 50 ms | {} | 1.09 s |",
        bridge.init.len(),
        fmt_ms(bridge.init.p(50.0)),
        fmt_ms(bridge.init.p(95.0)),
        status(bridge.init.p(50.0) < Duration::from_millis(50)),
    ));
    line(format!(
        "| sends/s, one client, sequential ({} sends after {} warm-up) | {:.0} /s | ≥ 3000 /s | {} | 18 /s |",
        s.sent,
        k.send_warmup,
        s.per_sec,
        status(s.per_sec >= 3000.0),
    ));
    line(format!(
        "| ping-pong round trip, p50 / p95 / p99 of {} | {} / {} / {} | p50 < 2 ms | {} | 112 ms (p50) |",
        pp.len(),
        fmt_ms(pp.p(50.0)),
        fmt_ms(pp.p(95.0)),
        fmt_ms(pp.p(99.0)),
        status(pp.p(50.0) < Duration::from_millis(2)),
    ));
    line(format!(
        "| long-poll delivery (B waiting, A sends), p50 / p95 of {} | {} / {} | p50 < 5 ms | {} | — |",
        dl.len(),
        fmt_ms(dl.p(50.0)),
        fmt_ms(dl.p(95.0)),
        status(dl.p(50.0) < Duration::from_millis(5)),
    ));
    line(format!(
        "| idle RSS (startup, one exchange, {:.1} s idle) | {} | < 15 MB | {} | 56 MB |",
        k.idle.as_secs_f64(),
        fmt_mb(bridge.idle_kb),
        status(bridge.idle_kb * 1024 < 15_000_000),
    ));
    line(format!(
        "| RSS after the sends scenario | {} | — | — | — |",
        fmt_mb(s.rss_kb)
    ));
    line(String::new());
    line("Diagnostics (no target):\n".into());
    line(format!(
        "- first spawn → `initialize` (creates the database): {}",
        fmt_ms(bridge.init_first)
    ));
    line(format!(
        "- one `send_to_partner` call: p50 {} / p99 {} / max {}",
        fmt_ms(s.latency.p(50.0)),
        fmt_ms(s.latency.p(99.0)),
        fmt_ms(s.latency.p(100.0)),
    ));
    line(format!(
        "- `check_messages` on an empty inbox, no wait: p50 {} / p99 {} ({} calls)",
        fmt_ms(empty.p(50.0)),
        fmt_ms(empty.p(99.0)),
        empty.len(),
    ));
    line("- MB = 10^6 bytes (VmRSS from /proc/PID/status is in KiB).".into());
    if let (Some(py), Some((script, python))) = (&python, &opts.python) {
        let name = script.file_name().map_or_else(
            || script.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        line(String::new());
        line(format!(
            "Same-run baseline: the Python original (`{python} {name} DB`, run alone in a temporary directory so its optional rate limiter and YOLO modules are not loaded, i.e. unthrottled like `--rate-limit off`):\n"
        ));
        line("| metric | bridge | Python original | ratio |".into());
        line("|---|---|---|---|".into());
        let (b, p) = (bridge.init.p(50.0), py.init.p(50.0));
        line(format!(
            "| spawn → `initialize`, p50 | {} | {} | {:.0}× faster |",
            fmt_ms(b),
            fmt_ms(p),
            p.as_secs_f64() / b.as_secs_f64()
        ));
        line(format!(
            "| sends/s, sequential | {:.0} /s ({} sends) | {:.0} /s ({} sends) | {:.0}× |",
            s.per_sec,
            s.sent,
            py.sends.per_sec,
            py.sends.sent,
            s.per_sec / py.sends.per_sec
        ));
        line(format!(
            "| one `send_to_partner` call, p50 | {} | {} | {:.0}× faster |",
            fmt_ms(s.latency.p(50.0)),
            fmt_ms(py.sends.latency.p(50.0)),
            py.sends.latency.p(50.0).as_secs_f64() / s.latency.p(50.0).as_secs_f64()
        ));
        line(format!(
            "| idle RSS | {} | {} | {:.1}× smaller |",
            fmt_mb(bridge.idle_kb),
            fmt_mb(py.idle_kb),
            py.idle_kb as f64 / bridge.idle_kb as f64
        ));
    }
    print!("{out}");
    Ok(())
}
