//! Teams: a 16-participant conversation, each participant on its own
//! `bridge serve` process (as 16 agents would run it), against a two-party
//! conversation on the same database in the same run. Measures the send
//! call's cost (a broadcast to 15 vs a send to 1) and delivery: the time
//! from the send to each waiting long poll's answer, p50/p95 over every
//! recipient of every round. Also checks the broadcast is stored once.
//!
//! Run: `cargo run --release -p bridge-tests --bin bench_team -- [--rounds N]
//! [--quick]`. `--quick` is 10 rounds. Exits non-zero on a lost or
//! duplicated delivery.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use bridge_tests::bench::{Samples, fmt_ms, rounds_arg};
use bridge_tests::{Server, machine_summary, messages, sql};
use serde_json::{Value, json};

/// The largest team: the creator and fifteen others.
const PARTICIPANTS: usize = 16;

/// One participant: its session id, token, and its own server process.
struct Member {
    session: String,
    token: String,
    server: Arc<Server>,
}

impl Member {
    fn args(&self, conv: &str, extra: Value) -> Value {
        let mut v =
            json!({"conversation_id": conv, "session_id": self.session, "token": self.token});
        if let (Value::Object(m), Value::Object(e)) = (&mut v, extra) {
            m.extend(e);
        }
        v
    }
}

/// Starts one server per session of a freshly created conversation.
async fn members(
    db: &std::path::Path,
    creator: &Server,
    roles: Value,
) -> anyhow::Result<(String, Vec<Member>)> {
    let created = creator.ok("create_conversation", roles).await?;
    let conv = created["conversation_id"]
        .as_str()
        .context("id")?
        .to_owned();
    let mut out = Vec::new();
    for g in created["sessions"].as_array().context("sessions")? {
        out.push(Member {
            session: g["session_id"].as_str().context("session_id")?.to_owned(),
            token: g["token"].as_str().context("token")?.to_owned(),
            server: Arc::new(Server::start(db, &["--rate-limit", "off"]).await?),
        });
    }
    Ok((conv, out))
}

/// Per round: every member but the first long-polls on its own server, the
/// first sends; returns the send calls' times and every delivery's time.
async fn measure(
    conv: &str,
    team: &[Member],
    rounds: usize,
) -> anyhow::Result<(Vec<Duration>, Vec<Duration>)> {
    let (mut sends, mut deliveries) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        let polls: Vec<_> = team[1..]
            .iter()
            .map(|m| {
                let (s, args) = (m.server.clone(), m.args(conv, json!({"wait_seconds": 20})));
                tokio::spawn(async move {
                    let r = s.ok("check_messages", args).await;
                    (r, Instant::now())
                })
            })
            .collect();
        // Let the long polls reach their servers (a benchmark, not a test:
        // a poll that is late only makes its delivery look faster).
        tokio::time::sleep(Duration::from_millis(100)).await;
        let body = format!("round {round}");
        let started = Instant::now();
        team[0]
            .server
            .ok(
                "send_to_partner",
                team[0].args(conv, json!({"message": body})),
            )
            .await?;
        sends.push(started.elapsed());
        for p in polls {
            let (r, at) = p.await?;
            let got = messages(&r?);
            ensure!(
                got.len() == 1 && got[0]["message"] == body.as_str(),
                "round {round}: a recipient got {got:?}"
            );
            deliveries.push(at.saturating_duration_since(started));
        }
    }
    Ok((sends, deliveries))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let rounds = rounds_arg(50)?;
    let dir = tempfile::tempdir()?;
    let db = dir.path().join("b.db");
    let creator = Server::start(&db, &["--rate-limit", "off"]).await?;
    let others: Vec<String> = (1..PARTICIPANTS).map(|i| format!("agent-{i}")).collect();
    let (team_conv, team) = members(
        &db,
        &creator,
        json!({"my_role": "architect", "participants": others}),
    )
    .await?;
    let (pair_conv, pair) = members(
        &db,
        &creator,
        json!({"my_role": "architect", "partner_role": "reviewer"}),
    )
    .await?;
    // Warm both paths once.
    measure(&team_conv, &team, 1).await?;
    measure(&pair_conv, &pair, 1).await?;
    // Alternate so machine noise hits both alike.
    let (mut ts, mut td, mut ps, mut pd) = (vec![], vec![], vec![], vec![]);
    for _ in 0..rounds {
        let (s, d) = measure(&team_conv, &team, 1).await?;
        ts.extend(s);
        td.extend(d);
        let (s, d) = measure(&pair_conv, &pair, 1).await?;
        ps.extend(s);
        pd.extend(d);
    }
    let (ts, td, ps, pd) = (
        Samples::new(ts),
        Samples::new(td),
        Samples::new(ps),
        Samples::new(pd),
    );
    let stored: i64 = sql(&db)?.query_row(
        "SELECT count(*) FROM messages WHERE conversation_id = ?1",
        [&team_conv],
        |r| r.get(0),
    )?;
    ensure!(
        stored == rounds as i64 + 1,
        "the team's broadcasts are stored {stored} times for {} sends",
        rounds + 1
    );
    let ratio = |a: Duration, b: Duration| a.as_secs_f64() / b.as_secs_f64();
    println!("### Teams: a 16-participant broadcast vs a two-party send (`bench_team`)\n");
    println!("{}\n", machine_summary());
    println!(
        "{rounds} rounds, alternated; every participant on its own `bridge serve` process, one database; each broadcast stored once ({stored} rows for {} sends).\n",
        rounds + 1
    );
    println!(
        "| | sends | send p50 | send p95 | deliveries | delivery p50 | delivery p95 | delivery max |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    println!(
        "| broadcast to 15 | {} | {} | {} | {} | {} | {} | {} |",
        ts.len(),
        fmt_ms(ts.p(50.0)),
        fmt_ms(ts.p(95.0)),
        td.len(),
        fmt_ms(td.p(50.0)),
        fmt_ms(td.p(95.0)),
        fmt_ms(td.max())
    );
    println!(
        "| two-party send | {} | {} | {} | {} | {} | {} | {} |",
        ps.len(),
        fmt_ms(ps.p(50.0)),
        fmt_ms(ps.p(95.0)),
        pd.len(),
        fmt_ms(pd.p(50.0)),
        fmt_ms(pd.p(95.0)),
        fmt_ms(pd.max())
    );
    println!(
        "\nBroadcast / two-party: send p50 {:.2}×, delivery p50 {:.2}×, delivery p95 {:.2}×.",
        ratio(ts.p(50.0), ps.p(50.0)),
        ratio(td.p(50.0), pd.p(50.0)),
        ratio(td.p(95.0), pd.p(95.0)),
    );
    Ok(())
}
