//! Message delivery through the real binary: read/peek/since_id semantics,
//! ordering, long-poll wake-up across processes, and no loss or duplication
//! under concurrent readers.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bridge_tests::{Conv, Server, audit_rows_for, messages};
use serde_json::{Value, json};

fn ids(msgs: &[Value]) -> Vec<i64> {
    msgs.iter().map(|m| m["id"].as_i64().unwrap()).collect()
}

fn bodies(msgs: &[Value]) -> Vec<String> {
    msgs.iter()
        .map(|m| m["message"].as_str().unwrap().to_owned())
        .collect()
}

async fn send(s: &Server, c: &Conv, from: &str, text: &str) -> anyhow::Result<i64> {
    let sent = s
        .ok("send_to_partner", c.args(from, json!({"message": text})))
        .await?;
    sent["message_id"].as_i64().context("message_id")
}

#[tokio::test(flavor = "multi_thread")]
async fn peek_returns_messages_without_marking_them_read() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let s = Server::start(&dir.path().join("b.db"), &[]).await?;
    let c = Conv::create(&s).await?;
    send(&s, &c, "a", "one").await?;
    send(&s, &c, "a", "two").await?;
    for _ in 0..2 {
        let peeked = s
            .ok("check_messages", c.args("b", json!({"peek": true})))
            .await?;
        assert_eq!(bodies(&messages(&peeked)), ["one", "two"]);
    }
    let read = s.ok("check_messages", c.args("b", json!({}))).await?;
    assert_eq!(bodies(&messages(&read)), ["one", "two"]);
    let again = s.ok("check_messages", c.args("b", json!({}))).await?;
    assert_eq!(messages(&again), Vec::<Value>::new());
    // Peeking after reading shows nothing unread either.
    let peeked = s
        .ok("check_messages", c.args("b", json!({"peek": true})))
        .await?;
    assert_eq!(messages(&peeked), Vec::<Value>::new());
    // The sender's own inbox never saw them.
    let own = s.ok("check_messages", c.args("a", json!({}))).await?;
    assert_eq!(messages(&own), Vec::<Value>::new());
    s.stop().await
}

#[tokio::test(flavor = "multi_thread")]
async fn since_id_rereads_messages_already_read() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let s = Server::start(&dir.path().join("b.db"), &[]).await?;
    let c = Conv::create(&s).await?;
    let first = send(&s, &c, "a", "one").await?;
    send(&s, &c, "a", "two").await?;
    send(&s, &c, "b", "not for b").await?;
    send(&s, &c, "a", "three").await?;
    // b reads everything, then "crashes" before handling it.
    let read = s.ok("check_messages", c.args("b", json!({}))).await?;
    assert_eq!(bodies(&messages(&read)), ["one", "two", "three"]);
    assert_eq!(
        messages(&s.ok("check_messages", c.args("b", json!({}))).await?),
        Vec::<Value>::new()
    );
    // Recovery: everything addressed to b, read or not.
    let all = s
        .ok("check_messages", c.args("b", json!({"since_id": 0})))
        .await?;
    assert_eq!(bodies(&messages(&all)), ["one", "two", "three"]);
    let after_first = s
        .ok("check_messages", c.args("b", json!({"since_id": first})))
        .await?;
    assert_eq!(bodies(&messages(&after_first)), ["two", "three"]);
    // Re-reading does not make them unread, nor does it deliver a's mail.
    assert_eq!(
        messages(&s.ok("check_messages", c.args("b", json!({}))).await?),
        Vec::<Value>::new()
    );
    let a_inbox = s.ok("check_messages", c.args("a", json!({}))).await?;
    assert_eq!(bodies(&messages(&a_inbox)), ["not for b"]);
    s.stop().await
}

#[tokio::test(flavor = "multi_thread")]
async fn check_messages_returns_oldest_first_in_batches() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let s = Server::start(&dir.path().join("b.db"), &["--rate-limit", "off"]).await?;
    let c = Conv::create(&s).await?;
    let mut sent_ids = vec![];
    for i in 0..150 {
        sent_ids.push(send(&s, &c, "a", &format!("m{i}")).await?);
    }
    let mut got = vec![];
    let mut batches = vec![];
    loop {
        let inbox = s.ok("check_messages", c.args("b", json!({}))).await?;
        let batch = messages(&inbox);
        batches.push((batch.len(), inbox["has_more"].as_bool().unwrap()));
        got.extend(batch);
        if inbox["has_more"] == false {
            break;
        }
    }
    assert_eq!(batches, [(100, true), (50, false)]);
    assert_eq!(ids(&got), sent_ids);
    assert!(ids(&got).windows(2).all(|w| w[0] < w[1]));
    let want: Vec<String> = (0..150).map(|i| format!("m{i}")).collect();
    assert_eq!(bodies(&got), want);
    s.stop().await
}

#[tokio::test(flavor = "multi_thread")]
async fn long_poll_wakes_on_a_send_from_another_process() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let db = dir.path().join("b.db");
    let sender = Server::start(&db, &[]).await?;
    let waiter = Server::start(&db, &[]).await?;
    let c = Conv::create(&sender).await?;

    let started = Instant::now();
    let wait = waiter.ok("check_messages", c.args("b", json!({"wait_seconds": 20})));
    let send_later = async {
        // Once the long poll waits (registered for wake-ups, its first
        // query empty), so the send lands during it.
        waiter.log.long_poll_waiting(&c.id, "b").await?;
        let id = send(&sender, &c, "a", "wake up").await?;
        anyhow::Ok((id, Instant::now()))
    };
    let (inbox, sent) = tokio::join!(wait, send_later);
    let returned = Instant::now();
    let (inbox, (id, acked)) = (inbox?, sent?);
    let got = messages(&inbox);
    assert_eq!(ids(&got), [id]);
    assert_eq!(got[0]["message"], "wake up");
    let elapsed = returned - started;
    assert!(
        elapsed < Duration::from_secs(10),
        "long poll returned after {elapsed:?}"
    );
    eprintln!(
        "cross-process delivery: returned {:?} after the send was acknowledged",
        returned.saturating_duration_since(acked)
    );
    // It really waited (the send began only after the server said the poll
    // was waiting), and the audited check is that poll's, with its wait.
    let checks = audit_rows_for(&db, "message.check")?;
    let detail: Value = serde_json::from_str(&checks.last().unwrap().detail)?;
    assert_eq!(detail["returned"], json!([id]), "{detail}");
    assert!(detail["waited_ms"].is_u64(), "no waited_ms: {detail}");
    sender.stop().await?;
    waiter.stop().await
}

#[tokio::test(flavor = "multi_thread")]
async fn long_poll_without_a_message_returns_empty_after_the_wait() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let s = Server::start(&dir.path().join("b.db"), &[]).await?;
    let c = Conv::create(&s).await?;
    // A message for the other session must not end b's wait.
    send(&s, &c, "b", "for a").await?;
    let started = Instant::now();
    let inbox = s
        .ok("check_messages", c.args("b", json!({"wait_seconds": 1})))
        .await?;
    let elapsed = started.elapsed();
    assert_eq!(messages(&inbox), Vec::<Value>::new());
    assert!(
        elapsed >= Duration::from_millis(900) && elapsed < Duration::from_secs(5),
        "waited {elapsed:?} for a 1 s long poll"
    );
    s.stop().await
}

const N: usize = 1000;

/// Sends `m0`..`m{N-1}` from `from`, one acknowledged send at a time.
async fn send_all(s: Server, c: Conv, from: &'static str) -> anyhow::Result<()> {
    for i in 0..N {
        send(&s, &c, from, &format!("m{i}")).await?;
    }
    s.stop().await
}

/// Drains `session`'s inbox until, together with the other readers counting
/// into `collected`, all N messages are in; returns (id, number) in the
/// order this reader received them.
async fn drain(
    s: Server,
    c: Conv,
    session: &'static str,
    collected: Arc<AtomicUsize>,
) -> anyhow::Result<Vec<(i64, usize)>> {
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut seen = vec![];
    while collected.load(Ordering::SeqCst) < N {
        if Instant::now() > deadline {
            bail!(
                "reader for {session} gave up with {} of {N} collected",
                collected.load(Ordering::SeqCst)
            );
        }
        let inbox = s
            .ok(
                "check_messages",
                c.args(session, json!({"wait_seconds": 2})),
            )
            .await?;
        let batch = messages(&inbox);
        for m in &batch {
            let n: usize = m["message"]
                .as_str()
                .and_then(|t| t.strip_prefix('m'))
                .and_then(|n| n.parse().ok())
                .with_context(|| format!("unexpected message {m}"))?;
            seen.push((m["id"].as_i64().unwrap(), n));
        }
        collected.fetch_add(batch.len(), Ordering::SeqCst);
    }
    s.stop().await?;
    Ok(seen)
}

fn assert_exactly_once_in_order(direction: &str, readers: &[Vec<(i64, usize)>]) {
    for (r, seen) in readers.iter().enumerate() {
        assert!(
            seen.windows(2).all(|w| w[0].0 < w[1].0 && w[0].1 < w[1].1),
            "{direction}: reader {r} saw ids or numbers out of order"
        );
    }
    let all: Vec<usize> = readers.iter().flatten().map(|&(_, n)| n).collect();
    let unique: BTreeSet<usize> = all.iter().copied().collect();
    assert_eq!(
        all.len(),
        N,
        "{direction}: {} deliveries for {N} messages",
        all.len()
    );
    assert_eq!(
        unique,
        (0..N).collect(),
        "{direction}: messages lost or duplicated"
    );
    eprintln!(
        "{direction}: readers got {:?} messages",
        readers.iter().map(Vec::len).collect::<Vec<_>>()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_readers_in_both_directions_lose_and_duplicate_nothing() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let db = dir.path().join("b.db");
    let off = ["--rate-limit", "off"];
    let creator = Server::start(&db, &off).await?;
    let c = Conv::create(&creator).await?;
    creator.stop().await?;
    let started = Instant::now();
    // Six processes on one database: a sender per direction and two
    // competing readers per recipient.
    let to_b = Arc::new(AtomicUsize::new(0));
    let to_a = Arc::new(AtomicUsize::new(0));
    let b1 = tokio::spawn(drain(
        Server::start(&db, &off).await?,
        c.clone(),
        "b",
        to_b.clone(),
    ));
    let b2 = tokio::spawn(drain(
        Server::start(&db, &off).await?,
        c.clone(),
        "b",
        to_b.clone(),
    ));
    let a1 = tokio::spawn(drain(
        Server::start(&db, &off).await?,
        c.clone(),
        "a",
        to_a.clone(),
    ));
    let a2 = tokio::spawn(drain(
        Server::start(&db, &off).await?,
        c.clone(),
        "a",
        to_a.clone(),
    ));
    let from_a = tokio::spawn(send_all(Server::start(&db, &off).await?, c.clone(), "a"));
    let from_b = tokio::spawn(send_all(Server::start(&db, &off).await?, c.clone(), "b"));
    from_a.await??;
    from_b.await??;
    let (b1, b2, a1, a2) = (b1.await??, b2.await??, a1.await??, a2.await??);
    eprintln!(
        "2 × {N} messages through 6 processes in {:?}",
        started.elapsed()
    );
    assert_exactly_once_in_order("a→b", &[b1, b2]);
    assert_exactly_once_in_order("b→a", &[a1, a2]);
    Ok(())
}
