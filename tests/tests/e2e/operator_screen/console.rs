//! `bridge console` on a real pseudo-terminal, read back through a terminal
//! emulator: hostile agent text shows as escapes in every pane and moves
//! nothing; resizing and a terminal too small neither crash it nor hide
//! anything; `--watch` changes nothing and works with YOLO off; and the
//! whole flow with a real runner: an agent proposes over MCP, the console
//! shows it and rings, two keystrokes approve and run it, and every
//! participant receives the result.

use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use bridge::untrusted::Escaped;
use bridge_tests::console::Console;
use bridge_tests::pty::Pty;
use bridge_tests::{Conv, sql};
use serde_json::json;

use super::World;
use super::hostile;

/// The layout is intact: every body row starts and ends on a pane border,
/// which a cursor movement or an erase would have broken.
fn assert_framed(what: &str, rows: &[String]) {
    let body = &rows[1..rows.len() - 2];
    for (i, r) in body.iter().enumerate() {
        let first = r.chars().next();
        let last = r.chars().last();
        assert!(
            matches!(first, Some('│' | '┌' | '└')) && matches!(last, Some('│' | '┐' | '┘')),
            "{what}: row {} is not framed: {r:?}\n{}",
            i + 1,
            rows.join("\n")
        );
    }
}

fn head(text: &str, n: usize) -> String {
    Escaped(text).to_string().chars().take(n).collect()
}

#[tokio::test]
async fn every_pane_shows_hostile_text_as_escapes_and_nothing_moves() -> anyhow::Result<()> {
    let w = World::start().await?;
    let cases = hostile::cases();
    let mut convs = Vec::new();
    for case in &cases {
        // A proposal whose command and reason are the text, a finished job
        // whose output is the text, a conversation whose second role is the
        // text, with the text as a message.
        let id = w.plant_proposal(&case.text).await?;
        let job = w.plant_proposal("true").await?;
        let conn = sql(&w.db)?;
        conn.execute(
            "UPDATE proposals SET reason = ?1 WHERE id = ?2",
            rusqlite::params![case.text, id],
        )?;
        conn.execute(
            "UPDATE proposals SET state = 'done', result = ?1 WHERE id = ?2",
            rusqlite::params![
                json!({"exit_code": 0, "duration_ms": 5, "stdout": case.text}).to_string(),
                job
            ],
        )?;
        let conv = Conv::create(&w.server).await?;
        conn.execute(
            "UPDATE sessions SET role = ?1 WHERE conversation_id = ?2 AND session_id = 'b'",
            rusqlite::params![case.text, conv.id],
        )?;
        w.server
            .ok(
                "send_to_partner",
                conv.args("a", json!({"message": case.text})),
            )
            .await?;
        convs.push(conv);
    }
    let (rows, cols) = (50, 180);
    let mut c = Console::start(&w.db, &[], rows, cols)?;
    // Proposals, oldest first, selected one by one (the pane scrolls).
    for (i, case) in cases.iter().enumerate() {
        let want = head(&case.text, 40);
        let screen = c.shows(&format!("proposal {}", case.name), &want)?;
        assert_framed(case.name, &screen);
        if i + 1 < cases.len() {
            c.press("j")?;
        }
    }
    // Job output: every job is listed, newest first.
    let screen = c.visible();
    for case in &cases {
        let want = head(&case.text, 12);
        assert!(
            screen
                .iter()
                .any(|r| r.contains(&format!("exit 0 · 5 ms · {want}"))),
            "{}: job output {want:?} not shown:\n{}",
            case.name,
            screen.join("\n")
        );
    }
    // Conversations: roles in the list, messages in the stream.
    // To the top (the test's own conversation, the oldest), then down one
    // conversation at a time.
    c.press("\t")?;
    c.press(&"k".repeat(cases.len() + 2))?;
    c.shows(
        "the first conversation",
        &format!("Messages of {}", w.conv.id),
    )?;
    for (case, conv) in cases.iter().zip(&convs) {
        c.press("j")?;
        c.shows(
            &format!("conversation {}", case.name),
            &format!("Messages of {}", conv.id),
        )?;
        let screen = c.shows(&format!("role {}", case.name), &head(&case.text, 25))?;
        let message = head(&case.text, 30);
        assert!(
            screen
                .iter()
                .any(|r| r.contains(&format!("a→b info: {message}"))),
            "{}: message {message:?} not shown:\n{}",
            case.name,
            screen.join("\n")
        );
        assert_framed(case.name, &screen);
    }
    // The review of a hostile proposal: the CLI's approve screen, escaped.
    c.press("\t")?;
    c.press("a")?;
    let screen = c.shows("the review", "===== command: begin =====")?;
    assert!(
        screen[0].starts_with("REVIEW rows 1-"),
        "{}",
        screen.join("\n")
    );
    c.press("\x1b")?;
    c.shows("the main screen", "Pending proposals")?;
    c.assert_no_effects("hostile text");
    c.quit()?;
    Ok(())
}

#[tokio::test]
async fn resizing_and_a_tiny_terminal_neither_crash_nor_hide() -> anyhow::Result<()> {
    let w = World::start().await?;
    let long: String = (1..=80).map(|i| format!("echo line {i}\n")).collect();
    let id = w.plant_proposal(&long).await?;
    let mut c = Console::start(&w.db, &[], 40, 140)?;
    c.shows("the proposal", &id)?;
    for (rows, cols) in [(10, 50), (3, 20), (60, 200), (24, 80)] {
        c.resize(rows, cols)?;
        let screen = if rows < 12 || cols < 60 {
            c.shows("the too-small notice", "too small")?
        } else {
            c.wait_for("a redraw at the new size", |s| {
                s.first().is_some_and(|r| r.starts_with("bridge console"))
                    && s.iter().any(|r| r.contains(&id))
            })?
        };
        ensure!(
            c.running()?,
            "crashed at {rows}x{cols}:\n{}",
            screen.join("\n")
        );
    }
    // The review of an 80-line command on 24 rows: y does nothing until
    // the end was on screen; a resize shows it again from where it is.
    c.press("a")?;
    c.shows("the review", "REVIEW rows 1-22 of")?;
    std::thread::sleep(Duration::from_millis(400));
    c.press("y")?;
    c.shows("the scroll hint", "scroll to the end of the review first")?;
    c.resize(5, 30)?;
    c.shows("the too-small review", "too small: 30x5")?;
    c.resize(24, 80)?;
    c.shows("the review again", "REVIEW rows")?;
    let state: String =
        sql(&w.db)?.query_row("SELECT state FROM proposals WHERE id = ?1", [&id], |r| {
            r.get(0)
        })?;
    assert_eq!(state, "proposed");
    c.assert_no_effects("resizes");
    c.quit()?;
    Ok(())
}

#[tokio::test]
async fn watch_is_read_only_works_with_yolo_off_and_needs_a_terminal() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let db = dir.path().join("b.db");
    let server = bridge_tests::Server::start(&db, &[]).await?;
    let conv = Conv::create(&server).await?;
    server
        .ok(
            "send_to_partner",
            conv.args("a", json!({"message": "hello team"})),
        )
        .await?;
    // Without YOLO_MODE: the full console refuses, --watch works.
    let mut cmd = std::process::Command::new(bridge_tests::bin("bridge"));
    cmd.arg("--db")
        .arg(&db)
        .args(["console", "--watch"])
        .env_remove("YOLO_MODE");
    let mut c = Console::spawn(cmd, 30, 120)?;
    let screen = c.shows("the conversation", &conv.id)?;
    assert!(screen[0].contains("watching, read-only"), "{}", screen[0]);
    c.shows("its message", "a→b info: hello team")?;
    for k in ["a", "r", "e", "d"] {
        c.press(k)?;
        c.shows("the read-only notice", "read-only console (--watch)")?;
    }
    c.quit()?;

    let out = std::process::Command::new(bridge_tests::bin("bridge"))
        .arg("--db")
        .arg(&db)
        .arg("console")
        .env_remove("YOLO_MODE")
        .stdin(std::process::Stdio::null())
        .output()?;
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("YOLO_MODE=1"), "{err}");
    let out = std::process::Command::new(bridge_tests::bin("bridge"))
        .arg("--db")
        .arg(&db)
        .args(["console", "--watch"])
        .stdin(std::process::Stdio::null())
        .output()?;
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("`bridge console` must be run by a person on an interactive terminal"),
        "{err}"
    );
    Ok(())
}

/// The row of `rows` that holds `needle`.
fn row_with(rows: &[String], needle: &str) -> anyhow::Result<String> {
    rows.iter()
        .find(|r| r.contains(needle))
        .cloned()
        .with_context(|| format!("{needle:?} not on screen:\n{}", rows.join("\n")))
}

/// The `command_result` message for `proposal` in `session`'s unread
/// mail, waited for as an agent waits (long poll).
async fn result_for(
    w: &bridge_tests::yolo::World,
    session: &str,
    proposal: &str,
) -> anyhow::Result<serde_json::Value> {
    let deadline = Instant::now() + Duration::from_secs(90);
    while Instant::now() < deadline {
        let got = w
            .server
            .ok(
                "check_messages",
                w.conv.args(session, json!({"wait_seconds": 10})),
            )
            .await?;
        for m in got["messages"].as_array().into_iter().flatten() {
            if m["kind"] == "command_result"
                && m["message"].as_str().is_some_and(|t| t.contains(proposal))
            {
                return Ok(m.clone());
            }
        }
    }
    bail!("session {session} never received the result of {proposal}")
}

#[tokio::test]
async fn two_keystrokes_approve_and_run_and_every_participant_gets_the_result() -> anyhow::Result<()>
{
    if !bridge_tests::yolo::docker_or_skip("console flow") {
        return Ok(());
    }
    let w = bridge_tests::yolo::World::start(&[]).await?;
    let mut c = Console::start(&w.db, &["--notify", "osc9"], 30, 120)?;
    // The agent proposes over MCP; the console shows it and rings.
    let bells = c.bells();
    let proposal = w.propose("echo console-ran; id -u").await?;
    c.shows("the new proposal", &proposal)?;
    ensure!(c.bells() > bells, "no bell for the new proposal");
    let bytes = String::from_utf8_lossy(&c.bytes()).into_owned();
    assert!(
        bytes.contains(&format!("\x1b]9;proposal waiting in {}\x07", w.conv.id)),
        "no OSC 9 notification with the fixed text"
    );
    // Two keys: review, then approve and run.
    c.keys = 0;
    c.press("a")?;
    c.shows("the review", "===== command: end =====")?;
    std::thread::sleep(app_guard());
    c.press("y")?;
    c.shows("the approval", &format!("approved and queued {proposal}"))?;
    assert_eq!(c.keys, 2, "keystrokes from proposal on screen to run");
    for session in ["a", "b"] {
        let m = result_for(&w, session, &proposal).await?;
        let text = m["message"].as_str().unwrap_or_default();
        assert!(text.contains("console-ran"), "{session}: {text}");
    }
    // The jobs pane shows the result; the audit says who approved.
    let screen = c.wait_for("the result in the jobs pane", |s| {
        s.iter()
            .any(|r| r.contains(&format!("{proposal} done · exit 0")))
    })?;
    let row = row_with(&screen, &proposal)?;
    assert!(row.contains("console-ran"), "{row}");
    let detail: String = sql(&w.db)?.query_row(
        "SELECT detail FROM audit WHERE action = 'yolo.approve' ORDER BY id DESC LIMIT 1",
        [],
        |r| r.get(0),
    )?;
    let detail: serde_json::Value = serde_json::from_str(&detail)?;
    assert_eq!(detail["run"], true);
    assert_eq!(
        detail["approver"]["uid"],
        u64::from(nix::unistd::getuid().as_raw())
    );
    assert!(
        detail["approver"]["tty"]
            .as_str()
            .is_some_and(|t| t.starts_with("/dev/pts/")),
        "{detail}"
    );

    // What must not approve: y too soon, Enter, a pasted y.
    let second = w.propose("echo second").await?;
    let screen = c.shows("the second proposal", &second)?;
    // What YOLO_MODE.md shows (printed with --nocapture).
    println!("{}", screen.join("\n"));
    c.press("a")?;
    c.shows("the second review", &second)?;
    c.press("y")?;
    c.shows("the too-soon notice", "pressed within 300 ms")?;
    std::thread::sleep(app_guard());
    c.press("\r")?;
    c.shows("the Enter notice", "only y approves")?;
    c.send_raw("\x1b[200~y\x1b[201~")?;
    c.shows("the paste notice", "pasted text ignored")?;
    let state: String = sql(&w.db)?.query_row(
        "SELECT state FROM proposals WHERE id = ?1",
        [&second],
        |r| r.get(0),
    )?;
    assert_eq!(state, "proposed");
    // Reject it with a reason the participants read.
    c.press("\x1b")?;
    c.shows("the main screen", "Pending proposals")?;
    c.press("r")?;
    c.shows("the reason prompt", "Reason for the participants")?;
    c.press("needs a lockfile first\r")?;
    c.shows("the rejection", &format!("rejected {second}"))?;
    let got = w
        .server
        .ok("check_messages", w.conv.args("b", json!({})))
        .await?;
    assert!(
        got["messages"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|m| m["message"].as_str().is_some_and(
                |t| t.contains(&second) && t.contains("Reason: needs a lockfile first")
            )),
        "{got}"
    );
    // `t`: approve and show the token; the agent runs it with the token.
    let third = w.propose("echo by-token").await?;
    c.shows("the third proposal", &third)?;
    c.press("a")?;
    c.shows("the third review", &third)?;
    std::thread::sleep(app_guard());
    c.press("t")?;
    let screen = c.shows("the token", "Approval token for")?;
    let token = screen
        .iter()
        .find_map(|r| r.trim().strip_prefix("apv_").map(|t| format!("apv_{t}")))
        .context("no token on screen")?;
    c.press("x")?;
    let ran = w.execute(&third, &token).await?;
    assert_eq!(ran["state"], "done", "{ran}");
    // `A`: approve and run, and approve exactly this command here from now
    // on: the agent's next identical proposal is queued without a person;
    // any other command still waits.
    let fourth = w.propose("echo standing").await?;
    c.shows("the fourth proposal", &fourth)?;
    c.press("a")?;
    c.shows("the fourth review", &fourth)?;
    std::thread::sleep(app_guard());
    c.press("A")?;
    c.shows("the rule", "rule_")?;
    result_for(&w, "a", &fourth).await?;
    let again = w
        .server
        .ok(
            "propose_command",
            w.conv.args("a", json!({"command": "echo standing"})),
        )
        .await?;
    assert_eq!(again["status"], "queued", "{again}");
    let again = again["proposal_id"].as_str().context("proposal_id")?;
    let m = result_for(&w, "b", again).await?;
    assert!(
        m["message"]
            .as_str()
            .is_some_and(|t| t.contains("standing"))
    );
    let other = w.propose("echo standing ").await?;
    let state: String =
        sql(&w.db)?.query_row("SELECT state FROM proposals WHERE id = ?1", [&other], |r| {
            r.get(0)
        })?;
    assert_eq!(state, "proposed", "a different command waits for a person");
    let rules = bridge_tests::yolo::operator_yolo(&w.db, &["--json", "yolo", "rules"])?;
    let rules: serde_json::Value = serde_json::from_slice(&rules.stdout)?;
    assert_eq!(rules[0]["uses"], 1, "{rules}");
    assert_eq!(rules[0]["command"], "echo standing");
    c.assert_no_effects("the flow");
    c.quit()?;
    Ok(())
}

/// A little over the console's key guard.
fn app_guard() -> Duration {
    Duration::from_millis(350)
}

#[tokio::test]
async fn approve_run_from_the_cli_prints_the_result() -> anyhow::Result<()> {
    if !bridge_tests::yolo::docker_or_skip("yolo approve --run") {
        return Ok(());
    }
    let w = bridge_tests::yolo::World::start(&[]).await?;
    let proposal = w.propose("echo from-cli; exit 3").await?;
    let mut pty = Pty::bridge(&w.db, &["yolo", "approve", &proposal, "--run"], 40, 120)?;
    pty.expect("[y/N] ")?;
    pty.send("y\n")?;
    pty.expect("Approved and queued")?;
    let (status, bytes) = pty.finish()?;
    let text = String::from_utf8_lossy(&bytes);
    assert!(status.success(), "{text}");
    assert!(
        text.contains(&format!("Job {proposal} done: exit code 3")),
        "{text}"
    );
    assert!(text.contains("--- stdout ---\r\nfrom-cli"), "{text}");
    // The participants got it too, and the token was spent as it was made.
    let m = result_for(&w, "b", &proposal).await?;
    assert!(
        m["message"]
            .as_str()
            .is_some_and(|t| t.contains("from-cli"))
    );
    let unspent: i64 = sql(&w.db)?.query_row(
        "SELECT count(*) FROM approvals WHERE proposal_id = ?1 AND used_at IS NULL",
        [&proposal],
        |r| r.get(0),
    )?;
    assert_eq!(unspent, 0);
    Ok(())
}

#[tokio::test]
async fn enable_disable_and_verify_from_the_console() -> anyhow::Result<()> {
    let w = World::start().await?;
    // A second conversation, YOLO off: the newest, so selected first.
    let other = Conv::create(&w.server).await?;
    let mut c = Console::start(&w.db, &[], 30, 120)?;
    c.shows("the new conversation", &format!("Messages of {}", other.id))?;
    // Stage 2 and 3 inside the console: a wrong phrase enables nothing.
    c.press("e")?;
    c.shows("the mode prompt", "Mode: safe, restricted or yolo")?;
    c.press("\r")?;
    c.shows("the workspace prompt", "Workspace:")?;
    c.press("\r")?;
    c.shows("the phrase prompt", "Type exactly `I UNDERSTAND THE RISKS`")?;
    c.press("i understand the risks\r")?;
    c.shows("the refusal", "the phrase did not match")?;
    c.press("e")?;
    c.shows("the mode prompt", "Mode: safe, restricted or yolo")?;
    c.press("safe\r")?;
    c.shows("the workspace prompt", "Workspace:")?;
    c.press("\r")?;
    c.shows("the phrase prompt", "Type exactly")?;
    c.press("I UNDERSTAND THE RISKS\r")?;
    let screen = c.shows("the one-time code", "One-time code: ")?;
    let row = row_with(&screen, "One-time code: ")?;
    let code: String = row
        .split("One-time code: ")
        .nth(1)
        .context("code")?
        .chars()
        .take(9)
        .collect();
    ensure!(
        code.len() == 9 && code.as_bytes()[4] == b'-',
        "code {code:?} in {row:?}"
    );
    c.press(&format!("{code}\r"))?;
    c.shows(
        "the enablement",
        &format!("YOLO enabled for {} in safe mode", other.id),
    )?;
    c.shows("the conversation's YOLO column", "YOLO safe")?;
    // Disable asks first; anything but y keeps it.
    c.press("d")?;
    c.shows("the question", "y disables")?;
    c.press("n")?;
    c.shows("kept", "YOLO left as it was")?;
    c.press("d")?;
    c.shows("the question", "y disables")?;
    c.press("y")?;
    c.shows(
        "the disablement",
        &format!("YOLO disabled for {}", other.id),
    )?;
    // The audit chain, verified in the background.
    c.press("v")?;
    c.shows("the verification", "chain intact, head ")?;
    let actions: Vec<String> = sql(&w.db)?
        .prepare(
            "SELECT action || ':' || outcome FROM audit WHERE conversation_id = ?1 ORDER BY id",
        )?
        .query_map([&other.id], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    assert!(
        actions.contains(&"yolo.enable:refused".to_owned()),
        "{actions:?}"
    );
    assert!(
        actions.contains(&"yolo.enable:ok".to_owned()),
        "{actions:?}"
    );
    assert!(
        actions.contains(&"yolo.disable:ok".to_owned()),
        "{actions:?}"
    );
    c.quit()?;
    Ok(())
}
