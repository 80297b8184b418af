//! Load: N concurrent MCP clients over streamable HTTP (default 50, as 25
//! conversations of two) talk to one release `bridge serve --http` on
//! loopback for a bounded time. Every client sends to its partner, then long
//! polls for the partner's messages, over and over. At the end every client
//! drains its inbox and the program checks that each acknowledged send was
//! received exactly once and in order. Prints a Markdown section for
//! BENCHMARKS.md: throughput, send and delivery latency p50/p99, errors, and
//! the server's RSS.
//!
//! With `--floor`, the same clients instead alternate phases of MCP `ping`
//! requests and of sends (see `floor.rs`) and the section reports messages/s
//! as a ratio to pings/s.
//!
//! Run: `cargo run --release -p bridge-tests --bin bench_load -- [--clients N]
//! [--seconds S] [--quick] [--floor]`. `--quick` is 50 clients for 10 s (the
//! CI smoke run). Exits non-zero on any error, loss, duplicate or reordering.

mod floor;

use std::collections::BTreeMap;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use bridge_tests::bench::{Samples, fmt_mb, fmt_ms, vm_rss_kb};
use bridge_tests::{Conv, bin, call, connect_http, free_port, machine_summary, messages, ok};
use rmcp::service::{RoleClient, RunningService};
use serde_json::json;

pub type Client = RunningService<RoleClient, ()>;

/// A long poll waits at most this long; with a partner sending all the time
/// it should end far sooner.
const LONG_POLL_SECONDS: u64 = 10;

struct Args {
    clients: usize,
    seconds: u64,
    floor: bool,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut a = Args {
        clients: 50,
        seconds: 60,
        floor: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--clients" => a.clients = value()?.parse().context("--clients N")?,
            "--seconds" => a.seconds = value()?.parse().context("--seconds S")?,
            "--quick" => a.seconds = 10,
            "--floor" => a.floor = true,
            other => bail!(
                "unknown argument {other:?}; use --clients N, --seconds S, --quick or --floor"
            ),
        }
    }
    ensure!(
        a.clients >= 2 && a.clients.is_multiple_of(2),
        "--clients must be an even number of at least 2 (clients talk in pairs), got {}",
        a.clients
    );
    Ok(a)
}

/// One client's view of the run.
#[derive(Default)]
pub struct Tally {
    /// Sends the server acknowledged.
    pub acked: u64,
    /// Sequence numbers received from the partner, in arrival order.
    received: Vec<u64>,
    send_latency: Vec<Duration>,
    /// From just before the partner's send to this client's receipt.
    delivery_latency: Vec<Duration>,
    pub errors: Vec<String>,
}

/// A message body: the sender's sequence number and when it was sent, in
/// microseconds since the start of the run.
pub fn body(seq: u64, t0: Instant) -> String {
    format!("seq {seq} at {}", t0.elapsed().as_micros())
}

fn parse_body(text: &str) -> Option<(u64, u128)> {
    let rest = text.strip_prefix("seq ")?;
    let (seq, at) = rest.split_once(" at ")?;
    Some((seq.parse().ok()?, at.parse().ok()?))
}

/// Records the messages a `check_messages` reply carried; returns how many.
fn take_messages(inbox: &serde_json::Value, t0: Instant, tally: &mut Tally) -> usize {
    let msgs = messages(inbox);
    for m in &msgs {
        match m["message"].as_str().and_then(parse_body) {
            Some((seq, at)) => {
                tally.received.push(seq);
                let sent = Duration::from_micros(at as u64);
                tally
                    .delivery_latency
                    .push(t0.elapsed().saturating_sub(sent));
            }
            None => tally.errors.push(format!("unexpected message {m}")),
        }
    }
    msgs.len()
}

/// Send, then long poll for the partner, until `deadline`.
async fn converse(
    client: &Client,
    conv: &Conv,
    session: &str,
    t0: Instant,
    deadline: Instant,
) -> Tally {
    let mut tally = Tally::default();
    while Instant::now() < deadline {
        let sent = Instant::now();
        let args = conv.args(session, json!({ "message": body(tally.acked, t0) }));
        match call(client, "send_to_partner", args).await.and_then(ok) {
            Ok(_) => {
                tally.acked += 1;
                tally.send_latency.push(sent.elapsed());
            }
            Err(e) => tally.errors.push(format!("send: {e:#}")),
        }
        // Near the end, wait no longer than the run lasts: the partner may
        // already have sent its last message.
        let wait = deadline
            .saturating_duration_since(Instant::now())
            .as_secs()
            .min(LONG_POLL_SECONDS);
        let args = conv.args(session, json!({ "wait_seconds": wait }));
        match call(client, "check_messages", args).await.and_then(ok) {
            Ok(inbox) => {
                take_messages(&inbox, t0, &mut tally);
            }
            Err(e) => tally.errors.push(format!("check: {e:#}")),
        }
        if tally.errors.len() > 10 {
            break;
        }
    }
    tally
}

/// Reads what is left in the inbox without waiting.
async fn drain(client: &Client, conv: &Conv, session: &str, t0: Instant, tally: &mut Tally) {
    loop {
        let args = conv.args(session, json!({}));
        match call(client, "check_messages", args).await.and_then(ok) {
            Ok(inbox) => {
                if take_messages(&inbox, t0, tally) == 0 && inbox["has_more"] != true {
                    return;
                }
            }
            Err(e) => {
                tally.errors.push(format!("drain: {e:#}"));
                return;
            }
        }
    }
}

struct ServerProcess {
    child: std::process::Child,
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn start_server(db: &std::path::Path, port: u16) -> anyhow::Result<ServerProcess> {
    let child = std::process::Command::new(bin("bridge"))
        .arg("--db")
        .arg(db)
        .args(["serve", "--rate-limit", "off", "--http"])
        .arg(format!("127.0.0.1:{port}"))
        .env("BRIDGE_LOG", "warn")
        .env_remove("YOLO_MODE")
        .stdin(Stdio::null())
        .spawn()?;
    let server = ServerProcess { child };
    let until = Instant::now() + Duration::from_secs(20);
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        ensure!(
            Instant::now() < until,
            "the bridge did not listen on 127.0.0.1:{port} within 20 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(server)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = parse_args()?;
    let dir = tempfile::tempdir()?;
    let port = free_port();
    let server = start_server(&dir.path().join("b.db"), port).await?;
    let pid = server.child.id();
    let url = format!("http://127.0.0.1:{port}/mcp");

    let mut clients = Vec::with_capacity(args.clients);
    for _ in 0..args.clients {
        clients.push(Arc::new(connect_http(&url, None).await?));
    }
    let rss_start = vm_rss_kb(pid)?;
    let mut convs = Vec::new();
    for pair in clients.chunks(2) {
        convs.push(Conv::create_on(&pair[0]).await?);
    }

    let t0 = Instant::now();
    if args.floor {
        let mut tallies: Vec<Tally> = clients.iter().map(|_| Tally::default()).collect();
        let f = floor::run(&clients, &convs, args.seconds, t0, &mut tallies).await;
        for (i, tally) in tallies.iter_mut().enumerate() {
            let session = if i % 2 == 0 { "a" } else { "b" };
            drain(&clients[i], &convs[i / 2], session, t0, tally).await;
        }
        let problems = delivery_problems(&tallies);
        let mut errors: Vec<&String> = tallies.iter().flat_map(|t| &t.errors).collect();
        errors.extend(&f.ping_errors);
        println!(
            "## Messaging at the transport floor: {} MCP clients over HTTP\n",
            args.clients
        );
        println!("Machine: {}.", machine_summary());
        floor::report(&f, args.clients);
        println!(
            "| errors / clients with lost, duplicated or reordered messages | {} / {} | 0 / 0 |",
            errors.len(),
            problems.len()
        );
        return finish(clients, server, &errors, &problems).await;
    }
    let deadline = t0 + Duration::from_secs(args.seconds);
    let mut tasks = Vec::new();
    for (i, client) in clients.iter().enumerate() {
        let (client, conv) = (client.clone(), convs[i / 2].clone());
        let session = if i % 2 == 0 { "a" } else { "b" };
        tasks.push(tokio::spawn(async move {
            converse(&client, &conv, session, t0, deadline).await
        }));
    }
    let mut tallies = Vec::new();
    for t in tasks {
        tallies.push(t.await?);
    }
    let elapsed = t0.elapsed();
    // Every sender has stopped: what is still queued is drained now.
    for (i, tally) in tallies.iter_mut().enumerate() {
        let session = if i % 2 == 0 { "a" } else { "b" };
        drain(&clients[i], &convs[i / 2], session, t0, tally).await;
    }
    let rss_end = vm_rss_kb(pid)?;

    let problems = delivery_problems(&tallies);
    let errors: Vec<&String> = tallies.iter().flat_map(|t| &t.errors).collect();
    let sent: u64 = tallies.iter().map(|t| t.acked).sum();
    let received: usize = tallies.iter().map(|t| t.received.len()).sum();
    let send = Samples::new(
        tallies
            .iter()
            .flat_map(|t| t.send_latency.clone())
            .collect(),
    );
    let delivery = Samples::new(
        tallies
            .iter()
            .flat_map(|t| t.delivery_latency.clone())
            .collect(),
    );

    println!("## Load: {} MCP clients over HTTP\n", args.clients);
    println!("Machine: {}.", machine_summary());
    println!(
        "{} clients in {} conversations on one `bridge serve --http` (loopback, rate limits off), each sending to its partner and then long polling (`wait_seconds` {LONG_POLL_SECONDS}) for {:.1} s.\n",
        args.clients,
        convs.len(),
        elapsed.as_secs_f64()
    );
    println!("| metric | result |\n|---|---|");
    println!(
        "| messages acknowledged | {sent} ({:.0}/s) |",
        sent as f64 / elapsed.as_secs_f64()
    );
    println!("| messages received | {received} |");
    println!(
        "| errors | {} |\n| lost / duplicated / out of order | {} |",
        errors.len(),
        if problems.is_empty() {
            "0 / 0 / 0".to_owned()
        } else {
            format!("{} clients wrong", problems.len())
        }
    );
    if !send.is_empty() {
        println!(
            "| `send_to_partner` p50 / p99 / max | {} / {} / {} |",
            fmt_ms(send.p(50.0)),
            fmt_ms(send.p(99.0)),
            fmt_ms(send.max())
        );
    }
    if !delivery.is_empty() {
        println!(
            "| delivery (send start → partner's poll returns) p50 / p99 / max | {} / {} / {} |",
            fmt_ms(delivery.p(50.0)),
            fmt_ms(delivery.p(99.0)),
            fmt_ms(delivery.max())
        );
    }
    println!(
        "| server RSS after connect / at the end | {} / {} |",
        fmt_mb(rss_start),
        fmt_mb(rss_end)
    );
    finish(clients, server, &errors, &problems).await
}

/// Each client received exactly its partner's acknowledged sends, in order;
/// one line per client for which that is not so.
fn delivery_problems(tallies: &[Tally]) -> Vec<String> {
    let mut problems = Vec::new();
    for (i, tally) in tallies.iter().enumerate() {
        let partner = &tallies[i ^ 1];
        let want: Vec<u64> = (0..partner.acked).collect();
        if tally.received != want {
            let mut seen: BTreeMap<u64, usize> = BTreeMap::new();
            for s in &tally.received {
                *seen.entry(*s).or_default() += 1;
            }
            let lost = want.iter().filter(|s| !seen.contains_key(s)).count();
            let dup = seen.values().filter(|&&n| n > 1).count();
            problems.push(format!(
                "client {i}: received {} of the partner's {} acknowledged sends (lost {lost}, duplicated {dup}; if both are 0, out of order)",
                tally.received.len(),
                partner.acked,
            ));
        }
    }
    problems
}

/// Closes the clients, stops the server, and fails on any error or problem.
async fn finish(
    clients: Vec<Arc<Client>>,
    server: ServerProcess,
    errors: &[&String],
    problems: &[String],
) -> anyhow::Result<()> {
    for c in clients {
        if let Ok(c) = Arc::try_unwrap(c) {
            let _ = c.cancel().await;
        }
    }
    drop(server);
    for e in errors.iter().take(10) {
        eprintln!("error: {e}");
    }
    for p in problems {
        eprintln!("{p}");
    }
    ensure!(
        errors.is_empty() && problems.is_empty(),
        "{} errors, {} clients with lost, duplicated or reordered messages",
        errors.len(),
        problems.len()
    );
    Ok(())
}
