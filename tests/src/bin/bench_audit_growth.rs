//! Audit growth under a hostile client: one MCP stdio client runs a tight
//! loop of the calls that used to write one audit row each (empty
//! `check_messages`, partner-status reads, wrong tokens for a real and for
//! invented conversations, malformed requests, `create_conversation`, one
//! with a 100 000-character unknown argument that errors used to repeat,
//! an invitation from a session that may not invite, and, with YOLO on but
//! not enabled for the conversation, refused proposals and a wrong approval
//! token) against the real `bridge serve`, then stops it (which flushes the
//! counted events) and reports audit bytes per hour.
//!
//! `bench_audit_growth [--seconds S] [--bridge PATH] [--quick]`.
//! `--bridge` runs another build (e.g. `main` before the quotas, to measure
//! "before"). `--quick` runs 20 s and fails when the audit grows faster than
//! [`QUICK_BOUND_MB_PER_HOUR`] (the old build grew by gigabytes per hour).
//!
//! Extrapolation is linear: the per-minute allowances (60 creations, 30
//! itemized refusals, 20 failed authentications) are spent in the first
//! seconds of each minute, so a run shorter than a minute overstates the
//! hourly rate of the fixed build; the bound leaves room for that.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use bridge_tests::{Conv, Server, bin, machine_summary, random_hex, sql};
use serde_json::json;

/// `--quick` fails above this many megabytes of audit per hour.
const QUICK_BOUND_MB_PER_HOUR: f64 = 50.0;

struct Args {
    seconds: u64,
    bridge: PathBuf,
    quick: bool,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut a = Args {
        seconds: 120,
        bridge: bin("bridge"),
        quick: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--quick" => {
                a.quick = true;
                a.seconds = 20;
            }
            "--seconds" => a.seconds = it.next().context("--seconds needs a number")?.parse()?,
            "--bridge" => a.bridge = it.next().context("--bridge needs a path")?.into(),
            other => anyhow::bail!(
                "unknown argument `{other}`; usage: bench_audit_growth [--seconds S] [--bridge PATH] [--quick]"
            ),
        }
    }
    Ok(a)
}

/// Audit rows and their stored bytes (every column, as SQLite sizes them).
fn audit_size(db: &std::path::Path) -> anyhow::Result<(i64, i64)> {
    Ok(sql(db)?.query_row(
        "SELECT count(*), coalesce(sum(8 + 8 + length(coalesce(conversation_id, '')) + length(coalesce(session_id, ''))
             + length(action) + length(outcome) + length(detail) + length(prev_hash) + length(hash)), 0) FROM audit",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = parse_args()?;
    let dir = tempfile::tempdir()?;
    let db = dir.path().join("b.db");
    let cmd = tokio::process::Command::new(&args.bridge);
    let mut cmd = cmd;
    cmd.arg("--db")
        .arg(&db)
        .arg("serve")
        .env("BRIDGE_LOG", "error")
        .env_remove("BRIDGE_RATE_LIMIT")
        // The YOLO tools exist; no conversation is enabled.
        .env("YOLO_MODE", "1");
    let s = Server::spawn(cmd, std::process::Stdio::inherit()).await?;
    let c = Conv::create(&s).await?;
    let wrong = Conv {
        token_a: random_hex(32),
        ..c.clone()
    };
    let (rows0, bytes0) = audit_size(&db)?;
    let mut echoed = json!({"my_role": "hostile", "partner_role": "victim"});
    echoed["k".repeat(100_000)] = json!(1);
    let wrong_approval = json!({
        "proposal_id": "prop_0000000000000000",
        "approval_token": format!("apv_{}", "0".repeat(48)),
    });

    let t0 = Instant::now();
    let deadline = t0 + Duration::from_secs(args.seconds);
    let (mut calls, mut created, mut refused) = (0u64, 0u64, 0u64);
    while Instant::now() < deadline {
        let invented = Conv {
            id: format!("conv_{}", random_hex(8)),
            token_a: random_hex(32),
            ..c.clone()
        };
        let batch = [
            ("check_messages", c.args("a", json!({}))),
            ("check_partner_status", c.args("a", json!({}))),
            ("check_messages", wrong.args("a", json!({}))),
            (
                "send_to_partner",
                wrong.args("a", json!({"message": "let me in"})),
            ),
            ("check_messages", invented.args("a", json!({}))),
            ("send_to_partner", c.args("a", json!({}))),
            (
                "create_conversation",
                json!({"my_role": "hostile", "partner_role": "victim"}),
            ),
            ("create_conversation", echoed.clone()),
            (
                "invite_participant",
                c.args("b", json!({"role": "intruder"})),
            ),
            (
                "propose_command",
                c.args("a", json!({"command": "echo hi"})),
            ),
            ("execute_command", c.args("a", wrong_approval.clone())),
        ];
        for (tool, a) in batch {
            let r = s.call(tool, a).await?;
            calls += 1;
            if r.is_error == Some(true) {
                refused += 1;
            } else if tool == "create_conversation" {
                created += 1;
            }
        }
    }
    let elapsed = t0.elapsed();
    let (rows_live, bytes_live) = audit_size(&db)?;
    s.stop().await?;
    // The server flushes its counts on the way out; wait for its last write.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (rows1, bytes1) = audit_size(&db)?;

    let hours = elapsed.as_secs_f64() / 3600.0;
    let mb_per_hour = (bytes1 - bytes0) as f64 / 1e6 / hours;
    println!("## Audit growth under a hostile stdio client\n");
    println!("{}\n", machine_summary());
    println!(
        "Binary: {}. One client, {:.1} s, {calls} calls ({:.0}/s): {refused} refused, {created} conversations created.\n",
        args.bridge.display(),
        elapsed.as_secs_f64(),
        calls as f64 / elapsed.as_secs_f64(),
    );
    println!("| measure | value |\n|---|---|");
    println!(
        "| audit rows written while running | {} |",
        rows_live - rows0
    );
    println!(
        "| audit bytes written while running | {} |",
        bytes_live - bytes0
    );
    println!("| audit rows after shutdown flush | {} |", rows1 - rows0);
    println!("| audit bytes after shutdown flush | {} |", bytes1 - bytes0);
    println!(
        "| audit bytes per call | {:.1} |",
        (bytes1 - bytes0) as f64 / calls.max(1) as f64
    );
    println!("| **audit growth, extrapolated** | **{mb_per_hour:.1} MB/hour** |");
    let actions: Vec<(String, i64, i64)> = {
        let conn = sql(&db)?;
        let mut stmt = conn.prepare(
            "SELECT action, count(*), coalesce(sum(CAST(json_extract(detail, '$.count') AS INTEGER)), 0)
             FROM audit GROUP BY action ORDER BY count(*) DESC",
        )?;
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
            .collect::<rusqlite::Result<_>>()?
    };
    println!("\n| action | rows | events counted in aggregate rows |\n|---|---|---|");
    for (action, n, counted) in actions {
        println!("| {action} | {n} | {counted} |");
    }
    if args.quick {
        ensure!(
            mb_per_hour <= QUICK_BOUND_MB_PER_HOUR,
            "audit grew {mb_per_hour:.1} MB/hour under the hostile loop, above the bound of {QUICK_BOUND_MB_PER_HOUR} MB/hour: some refused or empty call is audited one row each again"
        );
        println!("\nquick: within the bound of {QUICK_BOUND_MB_PER_HOUR} MB/hour");
    }
    Ok(())
}
