//! Every other operator command that shows agent text (`yolo pending`,
//! `yolo tokens`, `show`, `list`, `audit`, `demo`, and their `--json`), run
//! on a pseudo-terminal over a database holding every hostile text at once:
//! as proposals, approved proposals, messages, file names, roles and audit
//! details.

use std::collections::BTreeMap;

use anyhow::Context;
use bridge::untrusted::Escaped;
use bridge_tests::sql;
use serde_json::{Value, json};

use super::emulator::Screen;
use super::hostile::{self, Case};
use super::pty::Pty;
use super::{World, assert_clean, assert_not_forged};

/// The first `n` characters of a text's escaped rendering: what a listing
/// that shortens long cells still shows.
fn head(text: &str, n: usize) -> String {
    Escaped(text).to_string().chars().take(n).collect()
}

/// Runs `bridge ARGS` on a 24×100 terminal to its end; returns the lines a
/// person saw (scrollback included), after the common checks.
fn screen_of(w: &World, args: &[&str]) -> anyhow::Result<Vec<String>> {
    let (rows, cols) = (24, 100);
    let pty = Pty::bridge(&w.db, args, rows, cols)?;
    let (status, bytes) = pty.finish()?;
    let mut screen = Screen::new(rows, cols);
    screen.catch_up(&bytes);
    let what = format!("bridge {args:?}");
    anyhow::ensure!(
        status.success(),
        "{what} failed:\n{}",
        String::from_utf8_lossy(&bytes)
    );
    assert_clean(&what, &bytes, &screen);
    Ok(screen.transcript())
}

fn assert_shows(what: &str, transcript: &[String], case: &Case, needle: &str) {
    assert!(
        transcript.iter().any(|l| l.contains(needle)),
        "{what}: {}: {needle:?} is not on screen:\n{}",
        case.name,
        transcript.join("\n")
    );
    assert_not_forged(what, case, transcript);
}

/// The JSON output must hold no raw escape, DEL, C1 or format character, and
/// must parse back to exactly what is stored.
fn json_of(w: &World, args: &[&str]) -> anyhow::Result<Value> {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let out = bridge_tests::yolo::operator_yolo(&w.db, &all)?;
    anyhow::ensure!(
        out.status.success(),
        "{all:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bad = super::emulator::byte_violations(&out.stdout);
    assert!(
        bad.is_empty(),
        "--json {args:?}: raw characters in the JSON: {bad:?}"
    );
    Ok(serde_json::from_slice(&out.stdout)?)
}

#[tokio::test]
async fn listings_show_hostile_text_as_escapes_and_json_keeps_it_exact() -> anyhow::Result<()> {
    let w = World::start().await?;
    let cases = hostile::cases();
    let mut proposals = BTreeMap::new();
    let now = chrono::Utc::now().timestamp_millis();
    for case in &cases {
        // A proposal (pending), a message with the text as a file name too
        // (both accepted at intake by design: shown escaped), a conversation
        // whose roles hold it, and an audit row whose detail quotes it.
        proposals.insert(case.name, w.plant_proposal(&case.text).await?);
        let files = if case.text.chars().count() <= 1024 {
            json!([case.text])
        } else {
            json!([])
        };
        w.server
            .ok(
                "send_to_partner",
                w.conv
                    .args("a", json!({"message": case.text, "files_involved": files})),
            )
            .await?;
        let other = bridge_tests::Conv::create(&w.server).await?;
        sql(&w.db)?.execute(
            "UPDATE sessions SET role = ?1 WHERE conversation_id = ?2",
            rusqlite::params![case.text, other.id],
        )?;
        let mut conn = sql(&w.db)?;
        let tx = conn.transaction()?;
        bridge_state::audit::append(
            &tx,
            &bridge_state::redact::Redactor::builtin(),
            now,
            bridge_state::audit::Entry {
                conversation_id: Some(&w.conv.id),
                session_id: Some("a"),
                action: &format!("test.{}", case.name),
                outcome: bridge_state::audit::Outcome::Ok,
                detail: json!({ "command": case.text }),
            },
        )?;
        tx.commit()?;
    }
    // Two approved proposals for `yolo tokens`.
    for name in ["cr_overwrite", "bidi_override"] {
        let r = super::review(&w.db, &proposals[name], 24, 100, "y\n")?;
        assert!(r.approved, "{name}");
    }

    let pending = screen_of(&w, &["yolo", "pending"])?;
    let tokens = screen_of(&w, &["yolo", "tokens"])?;
    let show = screen_of(&w, &["show", &w.conv.id, "--limit", "500"])?;
    let list = screen_of(&w, &["list"])?;
    let audit = screen_of(&w, &["audit", &w.conv.id, "--limit", "500"])?;
    for case in &cases {
        // Listings shorten long cells; what they show is escaped.
        assert_shows("yolo pending", &pending, case, &head(&case.text, 60));
        assert_shows("show", &show, case, &head(&case.text, 60));
        assert_shows("list", &list, case, &head(&case.text, 60));
        assert_shows("audit", &audit, case, &format!("test.{}", case.name));
        if ["cr_overwrite", "bidi_override"].contains(&case.name) {
            assert_shows("yolo tokens", &tokens, case, &head(&case.text, 60));
        }
    }
    // The shown marker itself, where the cell is not shortened past it.
    for case in cases
        .iter()
        .filter(|c| c.shown.chars().count() < 50 && c.refused_at_intake)
    {
        assert_shows("yolo pending", &pending, case, &case.shown);
    }

    // --json: every stored string parses back exactly.
    let pending = json_of(&w, &["yolo", "pending"])?;
    let commands: Vec<&str> = pending
        .as_array()
        .context("array")?
        .iter()
        .filter_map(|p| p["command"].as_str())
        .collect();
    let show = json_of(&w, &["show", &w.conv.id, "--limit", "500"])?;
    let messages: Vec<&str> = show["messages"]
        .as_array()
        .context("messages")?
        .iter()
        .filter_map(|m| m["message"].as_str())
        .collect();
    let list = json_of(&w, &["list"])?;
    let roles: Vec<&str> = list
        .as_array()
        .context("array")?
        .iter()
        .flat_map(|c| c["roles"].as_array().into_iter().flatten())
        .filter_map(Value::as_str)
        .collect();
    let audit = json_of(&w, &["audit", &w.conv.id, "--limit", "500"])?;
    let details: Vec<Value> = audit
        .as_array()
        .context("array")?
        .iter()
        .filter_map(|r| serde_json::from_str(r["detail"].as_str()?).ok())
        .collect();
    json_of(&w, &["yolo", "tokens"])?;
    for case in &cases {
        assert!(
            commands.contains(&case.text.as_str()),
            "--json yolo pending: {}",
            case.name
        );
        assert!(
            messages.contains(&case.text.as_str()),
            "--json show: {}",
            case.name
        );
        assert!(
            details.iter().any(|d| d["command"] == case.text.as_str()),
            "--json audit: {}",
            case.name
        );
        // Every role whole, even one that holds " / ".
        assert!(
            roles.contains(&case.text.as_str()),
            "--json list: {}",
            case.name
        );
    }
    w.server.stop().await
}

#[test]
fn the_demo_writes_nothing_a_terminal_would_act_on() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let pty = Pty::bridge(&dir.path().join("unused.db"), &["demo"], 24, 80)?;
    let (status, bytes) = pty.finish()?;
    let mut screen = Screen::new(24, 80);
    screen.catch_up(&bytes);
    assert!(status.success(), "{}", String::from_utf8_lossy(&bytes));
    assert_clean("demo", &bytes, &screen);
    let transcript = screen.transcript().join("\n");
    assert!(
        transcript.contains("session b │ received after"),
        "{transcript}"
    );
    Ok(())
}
