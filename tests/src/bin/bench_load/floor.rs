//! `bench_load --floor`: messaging at the transport floor over HTTP. The
//! same clients alternate phases of MCP `ping` requests (the floor: the
//! HTTP and JSON-RPC round trip with no tool and no database) and phases of
//! `send_to_partner` calls, every client sequential within a phase, so both
//! kinds see the same connections and the same machine load. The messages
//! are then drained and checked: each acknowledged send arrives exactly
//! once, in order.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bridge_tests::bench::{Samples, fmt_ms};
use bridge_tests::{Conv, call, ok, ping};
use serde_json::json;

use crate::{Client, Tally, body};

/// Phases of each kind; alternating spreads drift in machine load over both.
const ROUNDS: u32 = 2;

/// What one kind of request achieved over all its phases.
pub struct Rate {
    pub calls: u64,
    pub busy: Duration,
    pub latency: Samples,
}

impl Rate {
    pub fn per_sec(&self) -> f64 {
        self.calls as f64 / self.busy.as_secs_f64()
    }
}

/// Both kinds' rates; the send tallies go on to the delivery check.
pub struct Floor {
    pub ping: Rate,
    pub send: Rate,
    pub ping_errors: Vec<String>,
}

/// Runs `ROUNDS` ping phases and as many send phases of `seconds / ROUNDS`
/// each; `tallies[i]` is client `i`'s sends (acknowledged count, errors).
pub async fn run(
    clients: &[Arc<Client>],
    convs: &[Conv],
    seconds: u64,
    t0: Instant,
    tallies: &mut [Tally],
) -> Floor {
    let phase = Duration::from_secs(seconds) / ROUNDS;
    let (mut ping_lat, mut send_lat) = (Vec::new(), Vec::new());
    let (mut ping_busy, mut send_busy) = (Duration::ZERO, Duration::ZERO);
    let mut ping_errors = Vec::new();
    for _ in 0..ROUNDS {
        let start = Instant::now();
        let deadline = start + phase;
        let mut tasks = Vec::new();
        for client in clients {
            let client = client.clone();
            tasks.push(tokio::spawn(async move {
                let (mut lat, mut errors) = (Vec::new(), Vec::new());
                while Instant::now() < deadline && errors.len() <= 10 {
                    let one = Instant::now();
                    match ping(&client).await {
                        Ok(()) => lat.push(one.elapsed()),
                        Err(e) => errors.push(format!("ping: {e:#}")),
                    }
                }
                (lat, errors)
            }));
        }
        for t in tasks {
            match t.await {
                Ok((lat, errors)) => {
                    ping_lat.extend(lat);
                    ping_errors.extend(errors);
                }
                Err(e) => ping_errors.push(format!("ping task: {e}")),
            }
        }
        ping_busy += start.elapsed();

        let start = Instant::now();
        let deadline = start + phase;
        let mut tasks = Vec::new();
        for (i, client) in clients.iter().enumerate() {
            let (client, conv) = (client.clone(), convs[i / 2].clone());
            let mut tally = std::mem::take(&mut tallies[i]);
            let session = if i % 2 == 0 { "a" } else { "b" };
            tasks.push(tokio::spawn(async move {
                let mut lat = Vec::new();
                while Instant::now() < deadline && tally.errors.len() <= 10 {
                    let one = Instant::now();
                    let args = conv.args(session, json!({ "message": body(tally.acked, t0) }));
                    match call(&client, "send_to_partner", args).await.and_then(ok) {
                        Ok(_) => {
                            tally.acked += 1;
                            lat.push(one.elapsed());
                        }
                        Err(e) => tally.errors.push(format!("send: {e:#}")),
                    }
                }
                (tally, lat)
            }));
        }
        for (i, t) in tasks.into_iter().enumerate() {
            match t.await {
                Ok((tally, lat)) => {
                    tallies[i] = tally;
                    send_lat.extend(lat);
                }
                Err(e) => tallies[i].errors.push(format!("send task: {e}")),
            }
        }
        send_busy += start.elapsed();
    }
    Floor {
        ping: Rate {
            calls: ping_lat.len() as u64,
            busy: ping_busy,
            latency: Samples::new(ping_lat),
        },
        send: Rate {
            calls: send_lat.len() as u64,
            busy: send_busy,
            latency: Samples::new(send_lat),
        },
        ping_errors,
    }
}

/// The Markdown rows for the floor run.
pub fn report(f: &Floor, clients: usize) {
    let ratio = f.send.per_sec() / f.ping.per_sec();
    println!(
        "{clients} clients, alternating {ROUNDS} phases of MCP `ping` requests and {ROUNDS} of `send_to_partner` calls ({:.1} s of each), every client sequential within a phase.\n",
        f.ping.busy.as_secs_f64()
    );
    println!("| metric | result | target |\n|---|---|---|");
    println!(
        "| MCP `ping` (the floor) | {} calls, {:.0}/s, p50 / p99 {} / {} | — |",
        f.ping.calls,
        f.ping.per_sec(),
        fmt_ms(f.ping.latency.p(50.0)),
        fmt_ms(f.ping.latency.p(99.0)),
    );
    println!(
        "| `send_to_partner` | {} acknowledged, {:.0}/s, p50 / p99 {} / {} | — |",
        f.send.calls,
        f.send.per_sec(),
        fmt_ms(f.send.latency.p(50.0)),
        fmt_ms(f.send.latency.p(99.0)),
    );
    println!(
        "| messages/s ÷ pings/s, same clients, same run | {ratio:.2}× | ≥ 0.6× ({}) |",
        if ratio >= 0.6 { "met" } else { "missed" }
    );
}
