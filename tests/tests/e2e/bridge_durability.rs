//! An acknowledged send survives `kill -9` of the server: after a restart on
//! the same database every acknowledged message is there exactly once, the
//! database is intact and the audit chain verifies, however often and
//! whenever the kill lands.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use bridge_tests::{Conv, Server, messages, operator, random_hex, sql};
use serde_json::json;

fn kill_9(pid: u32) -> anyhow::Result<()> {
    let status = std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()?;
    ensure!(status.success(), "kill -9 {pid} failed: {status}");
    Ok(())
}

/// The pipe behind a process's stdout, as `/proc` names it (`pipe:[N]`).
fn stdout_pipe(pid: u32) -> anyhow::Result<String> {
    let link = std::fs::read_link(format!("/proc/{pid}/fd/1"))?;
    Ok(link.to_string_lossy().into_owned())
}

/// Why a killed server's stdout has not reached EOF: each of its threads'
/// state and kernel wait channel (a `D` in an fsync means the kernel has
/// not let it die yet; `Z` means it is dead and something else holds the
/// pipe), and every other process with a descriptor on that pipe.
fn why_no_eof(pid: u32, pipe: &str) -> String {
    let mut out = Vec::new();
    let read = |p: String| std::fs::read_to_string(p).unwrap_or_default();
    if let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        for task in tasks.flatten() {
            let t = task.path();
            let stat = read(format!("{}/stat", t.display()));
            // The state follows the parenthesised command name.
            let state = stat.rsplit_once(") ").map_or("?", |(_, r)| &r[..1]);
            let comm = read(format!("{}/comm", t.display()));
            let wchan = read(format!("{}/wchan", t.display()));
            out.push(format!(
                "server thread {} ({}): state {state}, waiting in {wchan:?}",
                task.file_name().to_string_lossy(),
                comm.trim()
            ));
        }
    } else {
        out.push(format!("server {pid}: gone from /proc (reaped)"));
    }
    for proc_dir in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(other) = proc_dir.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let fds = std::fs::read_dir(proc_dir.path().join("fd"))
            .into_iter()
            .flatten();
        for fd in fds.flatten() {
            if std::fs::read_link(fd.path()).is_ok_and(|l| l.to_string_lossy() == pipe) {
                let cmd = read(format!("/proc/{other}/cmdline")).replace('\0', " ");
                out.push(format!(
                    "process {other} holds {pipe} as fd {}: {cmd}",
                    fd.file_name().to_string_lossy()
                ));
            }
        }
    }
    out.join("\n")
}

/// Reads b's whole inbox in batches; returns message number -> (id, count).
async fn drain_b(s: &Server, c: &Conv) -> anyhow::Result<BTreeMap<usize, (i64, usize)>> {
    let mut got: BTreeMap<usize, (i64, usize)> = BTreeMap::new();
    loop {
        let inbox = s.ok("check_messages", c.args("b", json!({}))).await?;
        for m in messages(&inbox) {
            let n: usize = m["message"]
                .as_str()
                .and_then(|t| t.strip_prefix('m'))
                .and_then(|n| n.parse().ok())
                .with_context(|| format!("unexpected message {m}"))?;
            got.entry(n).or_insert((m["id"].as_i64().unwrap(), 0)).1 += 1;
        }
        if inbox["has_more"] != true {
            return Ok(got);
        }
    }
}

/// The database passes SQLite's integrity check and `bridge audit verify`.
fn assert_intact(db: &Path) -> anyhow::Result<()> {
    let check: String = sql(db)?.query_row("PRAGMA integrity_check", [], |r| r.get(0))?;
    assert_eq!(check, "ok");
    let verify = operator(db, &["audit", "verify"])?;
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stdout)
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn acknowledged_sends_survive_kill_9() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let db = dir.path().join("b.db");
    let off = ["--rate-limit", "off"];
    let s = Server::start(&db, &off).await?;
    let c = Conv::create(&s).await?;
    let mut acked = BTreeMap::new();
    for i in 0..200usize {
        let sent = s
            .ok(
                "send_to_partner",
                c.args("a", json!({"message": format!("m{i}")})),
            )
            .await?;
        acked.insert(i, sent["message_id"].as_i64().unwrap());
    }
    kill_9(s.pid)?;
    drop(s);

    let s = Server::start(&db, &off).await?;
    let got = drain_b(&s, &c).await?;
    s.stop().await?;
    let want: BTreeMap<usize, (i64, usize)> = acked.iter().map(|(&n, &id)| (n, (id, 1))).collect();
    assert_eq!(
        got, want,
        "messages after the restart (number -> (id, count))"
    );
    assert_intact(&db)
}

/// Kill moments: xorshift64*, seeded from `CRASH_SEED` or the OS, so a
/// failing run can be replayed.
struct Moments(u64);

impl Moments {
    fn new() -> Self {
        let seed = std::env::var("CRASH_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| u64::from_str_radix(&random_hex(8), 16).unwrap() | 1);
        eprintln!("kill moments: CRASH_SEED={seed} replays this run");
        Self(seed)
    }

    /// Uniform-ish in `lo..hi` milliseconds.
    fn next_ms(&mut self, lo: u64, hi: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        lo + self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % (hi - lo)
    }
}

/// Sends `PREFIX-0`, `PREFIX-1`, … as fast as the server answers until a
/// send fails, counting acknowledgements in `acks`; returns the
/// acknowledged bodies and the one in flight.
async fn send_until_error(
    s: Arc<Server>,
    c: Conv,
    from: &'static str,
    prefix: String,
    acks: Arc<AtomicUsize>,
) -> (Vec<String>, String) {
    let mut acked = Vec::new();
    loop {
        let body = format!("{prefix}-{}", acked.len());
        // The body is its own idempotency key: a retry after the crash
        // must not store it twice.
        let args = c.args(from, json!({ "message": body, "idempotency_key": body }));
        if s.ok("send_to_partner", args).await.is_err() {
            return (acked, body);
        }
        acked.push(body);
        acks.fetch_add(1, Ordering::Relaxed);
    }
}

/// Every stored message body and how often it is stored.
fn stored_bodies(db: &Path) -> anyhow::Result<HashMap<String, usize>> {
    let conn = sql(db)?;
    let mut stmt = conn.prepare("SELECT body, COUNT(*) FROM messages GROUP BY body")?;
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get::<_, i64>(1)? as usize)))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Issue 5's crash-consistency run: `kill -9` the bridge at a random moment
/// (20 times unless `CRASH_CYCLES` says otherwise) while both sessions send
/// as fast as they can and a reader drains an inbox. After each kill, with
/// the server dead, every acknowledged send is stored exactly once, nothing
/// else is stored except a send that was in flight, SQLite's integrity check
/// passes and the audit chain verifies.
#[tokio::test(flavor = "multi_thread")]
async fn kill_9_at_random_moments_loses_no_acknowledged_send() -> anyhow::Result<()> {
    let cycles: usize = std::env::var("CRASH_CYCLES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    let mut moments = Moments::new();
    let dir = tempfile::tempdir()?;
    let db = dir.path().join("b.db");
    let off = ["--rate-limit", "off"];
    let mut conv: Option<Conv> = None;
    let mut acked: HashSet<String> = HashSet::new();
    // Sends the server may have stored but never acknowledged.
    let mut in_flight: HashSet<String> = HashSet::new();
    let (mut in_flight_stored, mut delays) = (0usize, Vec::new());
    // The sends cut off by the last kill, retried with their keys next life.
    let mut to_retry: Vec<(&'static str, String)> = Vec::new();
    let mut retries = Retries::default();
    let started = Instant::now();

    for cycle in 0..=cycles {
        let s = Arc::new(Server::start(&db, &off).await?);
        let c = match &conv {
            Some(c) => c.clone(),
            None => conv.insert(Conv::create(&s).await?).clone(),
        };
        retries
            .resend(&s, &c, &db, to_retry.drain(..), &mut acked)
            .await?;
        if cycle == cycles {
            // The last life only retries what the last kill cut off.
            Arc::into_inner(s)
                .context("the server is still shared")?
                .stop()
                .await?;
            break;
        }
        let acks = Arc::new(AtomicUsize::new(0));
        let senders: Vec<_> = ["a", "b"]
            .into_iter()
            .map(|from| {
                tokio::spawn(send_until_error(
                    s.clone(),
                    c.clone(),
                    from,
                    format!("c{cycle}-{from}"),
                    acks.clone(),
                ))
            })
            .collect();
        let reader = {
            let (s, c) = (s.clone(), c.clone());
            tokio::spawn(async move {
                while s.ok("check_messages", c.args("b", json!({}))).await.is_ok() {}
            })
        };
        // The kill lands 0–300 ms after the first acknowledged send of this
        // life, so it always hits a stream in full flow.
        let waiting = Instant::now();
        while acks.load(Ordering::Relaxed) == 0 {
            ensure!(
                waiting.elapsed() < Duration::from_secs(30),
                "cycle {cycle}: no send acknowledged within 30 s"
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let delay = moments.next_ms(0, 300);
        delays.push(delay);
        tokio::time::sleep(Duration::from_millis(delay)).await;
        let pipe = stdout_pipe(s.pid)?;
        kill_9(s.pid)?;
        let killed = Instant::now();

        for (from, mut sender) in ["a", "b"].into_iter().zip(senders) {
            // A sender notices through EOF on the server's stdout. On a busy
            // machine the kernel can hold a killed process's exit until a
            // disk write it was in completes: slow is reported, and only a
            // death never noticed fails.
            let done = match tokio::time::timeout(Duration::from_secs(10), &mut sender).await {
                Ok(done) => done,
                Err(_) => {
                    eprintln!(
                        "cycle {cycle}: a sender has not noticed the kill after {:?}:\n{}",
                        killed.elapsed(),
                        why_no_eof(s.pid, &pipe)
                    );
                    tokio::time::timeout(Duration::from_secs(110), sender)
                        .await
                        .with_context(|| {
                            format!(
                                "cycle {cycle}: a sender did not notice the server die in 120 s:\n{}",
                                why_no_eof(s.pid, &pipe)
                            )
                        })?
                }
            };
            let (done, pending) = done?;
            acked.extend(done);
            in_flight.insert(pending.clone());
            to_retry.push((from, pending));
        }
        tokio::time::timeout(Duration::from_secs(30), reader).await??;
        drop(s);

        let stored = stored_bodies(&db)?;
        for body in &acked {
            assert_eq!(
                stored.get(body),
                Some(&1),
                "cycle {cycle}: acknowledged {body:?} stored"
            );
        }
        in_flight_stored = 0;
        for (body, &n) in &stored {
            assert_eq!(n, 1, "cycle {cycle}: {body:?} stored {n} times");
            if !acked.contains(body) {
                assert!(
                    in_flight.contains(body),
                    "cycle {cycle}: {body:?} stored but never sent or in flight"
                );
                in_flight_stored += 1;
            }
        }
        assert_intact(&db).with_context(|| format!("cycle {cycle}, killed after {delay} ms"))?;
    }
    // Every send was retried until acknowledged: each is stored exactly once.
    let stored = stored_bodies(&db)?;
    assert_eq!(stored.len(), acked.len(), "stored bodies vs sends");
    assert!(stored.values().all(|&n| n == 1));
    delays.sort_unstable();
    eprintln!(
        "crash consistency: {cycles} kill -9 at {}..{} ms after the first acknowledged send of each life (median {} ms); {} acknowledged sends all stored exactly once; {in_flight_stored} in-flight sends stored without an acknowledgement; {} cut-off sends retried with their idempotency key: {} had been stored (answered duplicate, not stored again), {} had not (stored once); integrity_check ok and audit verified after every kill; {:.1} s",
        delays[0],
        delays[delays.len() - 1],
        delays[delays.len() / 2],
        acked.len(),
        retries.duplicate + retries.fresh,
        retries.duplicate,
        retries.fresh,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Retries of sends a kill cut off, by what the bridge answered.
#[derive(Default)]
struct Retries {
    /// Stored before the kill: answered `duplicate: true` with its id.
    duplicate: usize,
    /// Not stored before the kill: stored now.
    fresh: usize,
}

impl Retries {
    /// Retries each cut-off send with its key and checks the answer against
    /// what the database held: a stored one is a duplicate, never a copy.
    async fn resend(
        &mut self,
        s: &Server,
        c: &Conv,
        db: &Path,
        sends: impl Iterator<Item = (&'static str, String)>,
        acked: &mut HashSet<String>,
    ) -> anyhow::Result<()> {
        for (from, body) in sends {
            let before = stored_bodies(db)?.get(&body).copied().unwrap_or(0);
            let r = s
                .ok(
                    "send_to_partner",
                    c.args(from, json!({ "message": body, "idempotency_key": body })),
                )
                .await?;
            assert_eq!(
                r["duplicate"],
                before == 1,
                "{body}: stored {before} before, {r}"
            );
            assert_eq!(
                stored_bodies(db)?.get(&body),
                Some(&1),
                "{body} after its retry"
            );
            if before == 1 {
                self.duplicate += 1;
            } else {
                self.fresh += 1;
            }
            acked.insert(body);
        }
        Ok(())
    }
}
