//! A database written by an older `main` opens with the current code: the
//! schema migrates in place and everything in it stays usable through the
//! real MCP server and operator CLI. The fixtures are in `tests/fixtures/`
//! (see `bridge_tests::fixture` for how one is made); each test works on a
//! copy.

use bridge_tests::{Server, audit_verify, fixture, messages, sql};
use serde_json::{Value, json};

/// Every checked-in fixture; add new ones here, never remove one.
const FIXTURES: &[&str] = &["main-ed90d0f"];

/// The texts `from` wrote itself (proposal notices also come from the
/// proposing session; the fixture's own messages start with `fixture:`).
fn bodies_from(inbox: &Value, from: &str) -> Vec<String> {
    messages(inbox)
        .iter()
        .filter(|m| m["from"] == from)
        .filter_map(|m| m["message"].as_str())
        .filter(|t| t.starts_with("fixture:") || t == &"after the migration")
        .map(str::to_owned)
        .collect()
}

async fn check_fixture(name: &str) -> anyhow::Result<()> {
    let f = fixture::copy(name)?;
    let before: i64 = sql(&f.db)?.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    assert_eq!(
        Some(before),
        f.manifest["schema_version"].as_i64(),
        "{name}: the copy is not the fixture fixture.json describes"
    );
    assert!(
        before <= bridge_state::store::latest_version(),
        "{name}: the fixture is newer than this code"
    );
    let (ok, report) = audit_verify(&f.db)?;
    assert!(ok, "{name}: the old audit chain does not verify: {report}");

    // Opening it with the server runs the migrations in place.
    let s = Server::start_with_env(&f.db, &[], &[("YOLO_MODE", "1")]).await?;
    let after: i64 = sql(&f.db)?.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    assert_eq!(
        after,
        bridge_state::store::latest_version(),
        "{name}: not migrated"
    );
    let c = &f.conv;
    let sent = fixture::messages();
    let to = |who: &str| -> Vec<String> {
        sent.iter()
            .filter(|(from, _)| *from != who)
            .map(|(_, t)| t.clone())
            .collect()
    };

    // b read its messages before the fixture was saved: they are all still
    // there by id; the secret was stored redacted and stays so.
    let b_all = s
        .ok("check_messages", c.args("b", json!({"since_id": 0})))
        .await?;
    let got = bodies_from(&b_all, "a");
    let want = to("b");
    assert_eq!(got.len(), want.len(), "{name}: b's messages: {got:?}");
    assert_eq!(got[0], want[0]);
    assert!(
        !got[1].contains(&fixture::secret()) && got[1].starts_with("fixture: the key is "),
        "{name}: the stored secret message is {:?}",
        got[1]
    );
    // The job's result reached both sessions as a message.
    assert!(
        messages(&b_all).iter().any(|m| m["message"]
            .as_str()
            .unwrap_or_default()
            .contains("fixture-42")),
        "{name}: no message carries the fixture job's output: {b_all}"
    );
    // a never read: its unread messages are delivered now, once.
    let a_new = s.ok("check_messages", c.args("a", json!({}))).await?;
    assert_eq!(
        bodies_from(&a_new, "b"),
        to("a"),
        "{name}: a's unread messages"
    );
    let again = s.ok("check_messages", c.args("a", json!({}))).await?;
    assert_eq!(messages(&again), Vec::<Value>::new());

    // The old conversation takes new writes.
    let status = s.ok("check_partner_status", c.args("b", json!({}))).await?;
    assert_eq!(status["status"], "working", "{name}: {status}");
    s.ok(
        "send_to_partner",
        c.args("a", json!({"message": "after the migration"})),
    )
    .await?;
    let fresh = s.ok("check_messages", c.args("b", json!({}))).await?;
    assert_eq!(bodies_from(&fresh, "a"), ["after the migration"]);

    // The proposals kept their states, and the job its typed result.
    let p = &f.manifest["proposals"];
    let state = |key: &str| -> anyhow::Result<String> {
        let id = p[key].as_str().unwrap_or_default().to_owned();
        Ok(
            sql(&f.db)?.query_row("SELECT state FROM proposals WHERE id = ?1", [id], |r| {
                r.get(0)
            })?,
        )
    };
    assert_eq!(state("ran")?, "done");
    assert_eq!(state("rejected")?, "rejected");
    assert_eq!(state("pending")?, "proposed");
    let result: String = sql(&f.db)?.query_row(
        "SELECT result FROM proposals WHERE id = ?1",
        [p["ran"].as_str().unwrap_or_default()],
        |r| r.get(0),
    )?;
    let result: bridge_state::job_result::JobResult = serde_json::from_str(&result)?;
    assert_eq!(result.stdout, fixture::JOB_STDOUT);
    assert_eq!(result.exit_code, Some(0));

    s.stop().await?;
    let (ok, report) = audit_verify(&f.db)?;
    assert!(
        ok,
        "{name}: the audit chain does not verify after new writes: {report}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn every_fixture_database_migrates_in_place_and_stays_usable() -> anyhow::Result<()> {
    for name in FIXTURES {
        check_fixture(name).await?;
    }
    Ok(())
}
