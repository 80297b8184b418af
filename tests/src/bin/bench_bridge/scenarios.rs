//! The scenarios: what is measured, each on a fresh temporary database.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use bridge_tests::bench::{Samples, vm_rss_kb};
use bridge_tests::{Conv, Server, ping};

use crate::Counts;
use crate::target::{Target, check, send, wait_for_message};

/// Long polls wait at most this long; every wait in the benchmark should end
/// far sooner.
pub const LONG_POLL_SECONDS: u64 = 30;
/// Before A sends, B's long poll is given this long to reach the server and
/// park, so the delivery scenario measures "B already waiting".
const PARK: Duration = Duration::from_millis(25);

/// A typical short agent message: prose with a path, no secrets.
pub fn message(i: usize) -> String {
    format!(
        "msg {i}: finished the refactor of src/store.rs; the migration test passes and the \
         WAL checkpoint is now explicit. Can you re-run the frontend build against it and \
         tell me whether the schema change broke anything?"
    )
}

/// Scenario 1: spawn → `initialize` answered. The first spawn creates the
/// database and warms the page cache; it is returned separately.
pub async fn initialize(t: &Target, n: usize) -> anyhow::Result<(Duration, Samples)> {
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

pub struct SendRun {
    pub sent: usize,
    pub per_sec: f64,
    pub latency: Samples,
    pub rss_kb: u64,
}

/// Scenario 2: one client, sequential `send_to_partner`, after a warm-up.
pub async fn sends(t: &Target, k: &Counts) -> anyhow::Result<SendRun> {
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
pub async fn ping_pong(k: &Counts) -> anyhow::Result<Samples> {
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
pub async fn delivery(k: &Counts) -> anyhow::Result<Samples> {
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
pub async fn empty_checks(k: &Counts) -> anyhow::Result<Samples> {
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
pub async fn idle_rss(t: &Target, k: &Counts) -> anyhow::Result<u64> {
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

/// How fast one kind of request went in the floor scenario.
pub struct Rate {
    pub per_sec: f64,
    pub latency: Samples,
}

impl Rate {
    fn new(v: Vec<Duration>, busy: Duration) -> Self {
        Self {
            per_sec: v.len() as f64 / busy.as_secs_f64(),
            latency: Samples::new(v),
        }
    }
}

/// Scenario 6, messaging at the transport floor: one client, sequential,
/// alternating blocks of MCP `ping` requests (the floor: a JSON-RPC round
/// trip through rmcp and the stdio pipes, no tool, no database) and
/// `send_to_partner` calls, so both see the same machine load. Each rate is
/// its calls divided by the time spent making them.
pub async fn floor(k: &Counts) -> anyhow::Result<(Rate, Rate)> {
    const BLOCKS: usize = 5;
    let dir = tempfile::tempdir()?;
    let s = Target::Bridge.spawn(dir.path()).await?;
    let c = Conv::create(&s).await?;
    for i in 0..k.send_warmup {
        ping(&s.client).await?;
        send(&s, &c, "a", message(i)).await?;
    }
    let per_block = k.floor.div_ceil(BLOCKS);
    let (mut pings, mut sends) = (Vec::new(), Vec::new());
    let (mut ping_busy, mut send_busy) = (Duration::ZERO, Duration::ZERO);
    for _ in 0..BLOCKS {
        let block = Instant::now();
        for _ in 0..per_block {
            let one = Instant::now();
            ping(&s.client).await?;
            pings.push(one.elapsed());
        }
        ping_busy += block.elapsed();
        let block = Instant::now();
        for _ in 0..per_block {
            let one = Instant::now();
            send(&s, &c, "a", message(sends.len())).await?;
            sends.push(one.elapsed());
        }
        send_busy += block.elapsed();
    }
    s.stop().await?;
    Ok((Rate::new(pings, ping_busy), Rate::new(sends, send_busy)))
}

/// Results of scenarios 1, 2 and 5, which run against either target.
pub struct Common {
    pub init_first: Duration,
    pub init: Samples,
    pub sends: SendRun,
    pub idle_kb: u64,
}

pub async fn common(t: &Target, k: &Counts) -> anyhow::Result<Common> {
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
