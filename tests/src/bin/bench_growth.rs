//! Database growth: `send_to_partner` and `check_messages` latency on a
//! database holding a million stored messages, against an empty one in the
//! same run, then whether `bridge cleanup` keeps the file bounded.
//!
//! The history is seeded with SQL straight into the schema the bridge itself
//! created (sending a million messages through MCP would take a quarter of an
//! hour): conversations with two sessions each, messages mostly read, and two
//! audit rows per message, as a send plus a check write. The conversation
//! being measured holds a tenth of the history, so its own indexes are deep
//! too. Seeded audit rows are appended as the server appends them, so the
//! chain verifies (archiving refuses one that does not).
//!
//! Run: `cargo run --release -p bridge-tests --bin bench_growth -- [--quick]
//! [--messages N]`. `--quick` seeds 100 000 messages (the CI smoke run).
//! Prints a Markdown section for BENCHMARKS.md; exits non-zero when a
//! latency ratio is above 2, or when, after `bridge cleanup` and `bridge
//! audit archive`, refilling the same volume grows the file by 5% or more.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use bridge_state::audit;
use bridge_state::redact::Redactor;
use bridge_tests::bench::{Samples, fmt_ms};
use bridge_tests::{Conv, Server, machine_summary, messages, operator, random_hex, sql};
use rusqlite::params;
use serde_json::json;

/// Seeded conversations besides the measured one. The servers run with the
/// live-conversation ceiling raised, since the seeded history is above it.
const OTHER_CONVERSATIONS: usize = 10_000;
const ITERATIONS: usize = 500;
const WARMUP: usize = 50;
/// The largest latency ratio (1M database / empty database, p50) we accept.
const MAX_RATIO: f64 = 2.0;

fn parse_args() -> anyhow::Result<usize> {
    let mut n = 1_000_000;
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "--quick" => n = 100_000,
            "--messages" => {
                n = it
                    .next()
                    .context("--messages needs a number")?
                    .parse()
                    .context("--messages N")?
            }
            other => bail!("unknown argument {other:?}; use --quick or --messages N"),
        }
    }
    Ok(n)
}

/// A typical agent message of about 200 characters.
fn text(i: usize) -> String {
    format!(
        "Step {i}: updated src/api/handlers.rs to return 404 for unknown ids; the frontend should show the empty state instead of retrying. Tests pass locally, please review."
    )
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Adds `n` messages of history: a tenth to `measured` (or to one more fresh
/// conversation), the rest spread over fresh conversations with two sessions
/// each; two audit rows per message.
fn seed(db: &Path, measured: Option<&str>, n: usize) -> anyhow::Result<Duration> {
    let t = Instant::now();
    let mut conn = sql(db)?;
    let tx = conn.transaction()?;
    let now = now_ms();
    let day = 86_400_000;
    let mut convs = Vec::new();
    convs.extend(measured.map(str::to_owned));
    {
        let mut conv = tx.prepare(
            "INSERT INTO conversations (id, created_at, expires_at) VALUES (?1, ?2, ?3)",
        )?;
        let mut session = tx.prepare(
            "INSERT INTO sessions (conversation_id, session_id, role, token_hash) VALUES (?1, ?2, ?3, randomblob(32))",
        )?;
        while convs.len() < OTHER_CONVERSATIONS + 1 {
            let id = format!("conv_{}", random_hex(8));
            conv.execute(params![id, now - day, now + day])?;
            session.execute(params![id, "a", "backend"])?;
            session.execute(params![id, "b", "frontend"])?;
            convs.push(id);
        }
    }
    let mut msg = tx.prepare(
        "INSERT INTO messages (conversation_id, sender, recipients, kind, action_type, body, files, redacted, created_at)
         VALUES (?1, ?2, json_array(?3), 'message', 'info', ?4, '[]', 0, ?5)",
    )?;
    let mut entry = tx.prepare(
        "INSERT INTO inbox (conversation_id, recipient, message_id, read_at) VALUES (?1, ?2, ?3, ?4)",
    )?;
    // Appended as the server appends them (redacted, each hashing the one
    // before): `bridge audit archive` refuses a chain that does not verify.
    let red = Redactor::builtin();
    let audit = |at: i64, conv: &str, who: &str, action: &str, detail: serde_json::Value| {
        audit::append(
            &tx,
            &red,
            at,
            audit::Entry {
                conversation_id: Some(conv),
                session_id: Some(who),
                action,
                outcome: audit::Outcome::Ok,
                detail,
            },
        )
    };
    for i in 0..n {
        // Every tenth message belongs to the measured conversation.
        let conv = if i % 10 == 0 {
            &convs[0]
        } else {
            &convs[1 + i % OTHER_CONVERSATIONS]
        };
        let (from, to) = if i % 2 == 0 { ("a", "b") } else { ("b", "a") };
        let at = now - day + i as i64;
        // History is read, except one in twenty elsewhere; the measured
        // conversation starts with an empty inbox.
        let read_at = (conv == &convs[0] || i % 20 != 1).then_some(at + 1);
        msg.execute(params![conv, from, to, text(i), at])?;
        let id = tx.last_insert_rowid();
        entry.execute(params![conv, to, id, read_at])?;
        audit(
            at,
            conv,
            from,
            "message.send",
            json!({"message_ids": [id], "action_type": "info", "chars": 160, "files": 0, "redacted_classes": []}),
        )?;
        audit(
            at + 1,
            conv,
            to,
            "message.check",
            json!({"returned": [id], "peek": false, "since_id": null, "waited_ms": 0}),
        )?;
    }
    drop((msg, entry, audit));
    tx.commit()?;
    conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")?;
    Ok(t.elapsed())
}

struct Latencies {
    send: Samples,
    check: Samples,
    check_empty: Samples,
}

/// Sends from `a` and checks `b` (one message back) and `a` (empty), timing
/// each call on a freshly started server.
async fn measure(db: &Path, c: &Conv) -> anyhow::Result<Latencies> {
    let s = Server::start(
        db,
        &["--rate-limit", "off", "--max-conversations", "100000000"],
    )
    .await?;
    let (mut send, mut check, mut empty) = (vec![], vec![], vec![]);
    for i in 0..WARMUP + ITERATIONS {
        let t = Instant::now();
        s.ok(
            "send_to_partner",
            c.args("a", json!({ "message": text(i) })),
        )
        .await?;
        let t_send = t.elapsed();
        let t = Instant::now();
        let inbox = s.ok("check_messages", c.args("b", json!({}))).await?;
        let t_check = t.elapsed();
        ensure!(
            messages(&inbox).len() == 1,
            "expected exactly the message just sent, got {inbox}"
        );
        let t = Instant::now();
        let inbox = s.ok("check_messages", c.args("a", json!({}))).await?;
        let t_empty = t.elapsed();
        ensure!(
            messages(&inbox).is_empty(),
            "a's inbox should be empty: {inbox}"
        );
        if i >= WARMUP {
            send.push(t_send);
            check.push(t_check);
            empty.push(t_empty);
        }
    }
    s.stop().await?;
    Ok(Latencies {
        send: Samples::new(send),
        check: Samples::new(check),
        check_empty: Samples::new(empty),
    })
}

/// A new database with one conversation made through MCP.
async fn fresh(dir: &Path, name: &str) -> anyhow::Result<(std::path::PathBuf, Conv)> {
    let db = dir.join(name);
    let s = Server::start(
        &db,
        &["--rate-limit", "off", "--max-conversations", "100000000"],
    )
    .await?;
    let c = Conv::create(&s).await?;
    s.stop().await?;
    Ok((db, c))
}

/// The database file plus its WAL, in bytes.
fn file_bytes(db: &Path) -> u64 {
    let wal = db.with_extension("db-wal");
    [db, wal.as_path()]
        .iter()
        .filter_map(|p| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum()
}

fn mb(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1e6)
}

fn count(db: &Path, table: &str) -> anyhow::Result<i64> {
    Ok(sql(db)?.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))?)
}

/// Runs the operator CLI; returns how long it took.
fn timed_operator(db: &Path, args: &[&str]) -> anyhow::Result<Duration> {
    let t = Instant::now();
    let out = operator(db, args)?;
    let took = t.elapsed();
    ensure!(
        out.status.success(),
        "bridge {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(took)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let n = parse_args()?;
    let dir = tempfile::tempdir()?;

    let (empty_db, empty_conv) = fresh(dir.path(), "empty.db").await?;
    let (big_db, big_conv) = fresh(dir.path(), "big.db").await?;
    let seeded = seed(&big_db, Some(&big_conv.id), n)?;
    let big_messages = count(&big_db, "messages")?;
    let size_seeded = file_bytes(&big_db);

    // Alternate the two databases so machine noise hits both alike.
    let empty = measure(&empty_db, &empty_conv).await?;
    let big = measure(&big_db, &big_conv).await?;

    let mut verdicts = Vec::new();
    let mut row = |name: &str, e: &Samples, b: &Samples| {
        let ratio = b.p(50.0).as_secs_f64() / e.p(50.0).as_secs_f64();
        verdicts.push((name.to_owned(), ratio));
        format!(
            "| {name} | {} / {} | {} / {} | {ratio:.2} | {} |",
            fmt_ms(e.p(50.0)),
            fmt_ms(e.p(99.0)),
            fmt_ms(b.p(50.0)),
            fmt_ms(b.p(99.0)),
            if ratio <= MAX_RATIO { "met" } else { "MISSED" }
        )
    };
    let rows = [
        row("`send_to_partner`", &empty.send, &big.send),
        row("`check_messages` (one message)", &empty.check, &big.check),
        row(
            "`check_messages` (empty inbox)",
            &empty.check_empty,
            &big.check_empty,
        ),
    ];

    // Expire all but a live conversation, clean up and archive the audit log, then refill
    // the same volume: the file should not grow, the freed pages are reused.
    // Meanwhile a live conversation keeps talking at an agent's pace: the
    // batches must never keep it waiting long, let alone fail it.
    let audit_before = count(&big_db, "audit")?;
    let live_server = Server::start(
        &big_db,
        &["--rate-limit", "off", "--max-conversations", "100000000"],
    )
    .await?;
    let live = Conv::create(&live_server).await?;
    sql(&big_db)?.execute(
        "UPDATE conversations SET expires_at = 0 WHERE id != ?1",
        [&live.id],
    )?;
    let stop = Arc::new(AtomicBool::new(false));
    let talker = {
        let stop = stop.clone();
        tokio::spawn(async move {
            let (mut lat, mut errors) = (Vec::new(), Vec::new());
            while !stop.load(Ordering::Relaxed) {
                let t = Instant::now();
                let args = live.args("a", json!({ "message": text(lat.len()) }));
                match live_server.ok("send_to_partner", args).await {
                    Ok(_) => lat.push(t.elapsed()),
                    Err(e) => errors.push(format!("{e:#}")),
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            let _ = live_server.stop().await;
            (Samples::new(lat), errors)
        })
    };
    let cleaned = timed_operator(&big_db, &["cleanup"])?;
    let left = count(&big_db, "messages")?;
    let archive = dir.path().join("audit-archive.jsonl");
    let archive_arg = archive.to_str().context("temp path is not UTF-8")?;
    let archived = timed_operator(
        &big_db,
        &[
            "audit",
            "archive",
            "--older-than-days",
            "0",
            "--to",
            archive_arg,
        ],
    )?;
    stop.store(true, Ordering::Relaxed);
    let (live_lat, live_errors) = talker.await?;
    let audit_left = count(&big_db, "audit")?;
    let size_cleaned = file_bytes(&big_db);
    let free_pages: i64 = sql(&big_db)?.query_row("PRAGMA freelist_count", [], |r| r.get(0))?;
    let page_size: i64 = sql(&big_db)?.query_row("PRAGMA page_size", [], |r| r.get(0))?;
    seed(&big_db, None, n)?;
    let size_refilled = file_bytes(&big_db);
    let growth = size_refilled as f64 / size_seeded as f64 - 1.0;

    println!("## Database growth: {big_messages} stored messages\n");
    println!("Machine: {}.", machine_summary());
    println!(
        "History seeded with SQL in {:.1} s: {big_messages} messages in {} conversations ({} in the measured one), {audit_before} audit rows; file {}. Each database is measured on a freshly started release server over stdio: {ITERATIONS} rounds (after {WARMUP} warm-up) of send a→b, check b (one message), check a (empty).\n",
        seeded.as_secs_f64(),
        OTHER_CONVERSATIONS + 1,
        n.div_ceil(10),
        mb(size_seeded),
    );
    println!(
        "| call | empty DB p50 / p99 | {big_messages}-message DB p50 / p99 | ratio (p50) | target ≤ {MAX_RATIO} |\n|---|---|---|---|---|"
    );
    for r in &rows {
        println!("{r}");
    }
    println!(
        "\nBounded file: with every conversation but one live one expired, `bridge cleanup` took {:.2} s ({left} messages left) and `bridge audit archive --older-than-days 0` took {:.2} s ({audit_left} audit rows left, {} archived to a {} file). The file stayed {} with {} MB free inside it; refilling the same {n} messages and {audit_before} audit rows brought it to {} ({:+.1}% against the first fill).",
        cleaned.as_secs_f64(),
        archived.as_secs_f64(),
        std::fs::read(&archive)?
            .iter()
            .filter(|&&b| b == b'\n')
            .count(),
        mb(std::fs::metadata(&archive)?.len()),
        mb(size_cleaned),
        free_pages * page_size / 1_000_000,
        mb(size_refilled),
        growth * 100.0,
    );
    println!(
        "\nWhile cleanup and archive ran, a live conversation sent {} messages (one every 50 ms): p50 {} / p99 {} / max {}, {} errors.",
        live_lat.len(),
        fmt_ms(live_lat.p(50.0)),
        fmt_ms(live_lat.p(99.0)),
        fmt_ms(live_lat.max()),
        live_errors.len()
    );
    ensure!(
        live_errors.is_empty(),
        "sends failed while cleanup and archive ran: {:?}",
        &live_errors[..live_errors.len().min(3)]
    );
    let missed: Vec<String> = verdicts
        .iter()
        .filter(|(_, r)| *r > MAX_RATIO)
        .map(|(n, r)| format!("{n} {r:.2}x"))
        .collect();
    ensure!(
        growth < 0.05,
        "the file grew {:.1}% after cleanup, archive and a refill of the same volume",
        growth * 100.0
    );
    ensure!(
        missed.is_empty(),
        "latency on the large database exceeds {MAX_RATIO}x the empty one: {}",
        missed.join(", ")
    );
    Ok(())
}
