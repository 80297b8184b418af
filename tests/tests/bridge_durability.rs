//! An acknowledged send survives `kill -9` of the server: after a restart on
//! the same database every acknowledged message is there exactly once, the
//! database is intact and the audit chain verifies.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, ensure};
use bridge_tests::{Conv, Server, messages, operator, sql};
use serde_json::json;

fn kill_9(pid: u32) -> anyhow::Result<()> {
    let status = std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()?;
    ensure!(status.success(), "kill -9 {pid} failed: {status}");
    Ok(())
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

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_in_the_middle_of_a_stream_loses_no_acknowledged_send() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let db = dir.path().join("b.db");
    let off = ["--rate-limit", "off"];
    let s = Server::start(&db, &off).await?;
    let c = Conv::create(&s).await?;
    let pid = s.pid;

    // Send until the server dies; report when 100 sends are acknowledged so
    // the kill lands while sends are still in flight.
    let (hundred_tx, hundred_rx) = tokio::sync::oneshot::channel();
    let sender = {
        let c = c.clone();
        tokio::spawn(async move {
            let mut hundred_tx = Some(hundred_tx);
            let mut acked = vec![];
            for i in 0..100_000usize {
                let args = c.args("a", json!({"message": format!("m{i}")}));
                match s.ok("send_to_partner", args).await {
                    Ok(_) => acked.push(i),
                    Err(_) => break,
                }
                if acked.len() == 100 {
                    let _ = hundred_tx.take().map(|tx| tx.send(()));
                }
            }
            acked
        })
    };
    hundred_rx.await?;
    kill_9(pid)?;
    let acked = tokio::time::timeout(Duration::from_secs(30), sender)
        .await
        .context("the sender did not notice the server die")??;
    assert!(acked.len() >= 100);

    let s = Server::start(&db, &off).await?;
    let got = drain_b(&s, &c).await?;
    s.stop().await?;
    for n in &acked {
        assert_eq!(
            got.get(n).map(|&(_, count)| count),
            Some(1),
            "acknowledged m{n} after the restart"
        );
    }
    // At most the one send in flight at the kill can exist unacknowledged.
    let extra: Vec<&usize> = got.keys().filter(|n| !acked.contains(n)).collect();
    assert!(
        extra.iter().all(|&&n| n == acked.len()),
        "unacknowledged messages stored: {extra:?}"
    );
    assert!(got.values().all(|&(_, count)| count == 1));
    assert_intact(&db)
}
