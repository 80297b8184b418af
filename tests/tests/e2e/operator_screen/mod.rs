//! What the operator sees, checked on a real pseudo-terminal of a known size
//! through a terminal emulator: hostile agent text (the table in
//! `hostile.rs`) planted where intake no longer lets it in (a row stored
//! before the fix, or by any other way in) must show as escapes on every
//! operator command, must not rewrite, hide, retitle or touch the
//! clipboard, and the approve screen must show every row of the command
//! before `y/N` is asked. And through MCP: intake refuses that text.

mod console;
mod hostile;
mod intake;
mod listings;

use bridge_tests::{emulator, pty};

use std::path::{Path, PathBuf};

use anyhow::{Context, ensure};
use bridge::untrusted::Escaped;
use bridge_tests::{Conv, Server, sql};
use emulator::{Screen, byte_violations};
use hostile::Case;
use pty::Pty;
use serde_json::json;

const PAGE_PROMPT: &str = "Enter for more, q to decline --";
const QUESTION: &str = "[y/N] ";

/// A YOLO-enabled conversation (no runner: nothing here runs).
struct World {
    _dir: tempfile::TempDir,
    db: PathBuf,
    server: Server,
    conv: Conv,
}

impl World {
    async fn start() -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let db = dir.path().join("b.db");
        let server =
            Server::start_with_env(&db, &["--rate-limit", "off"], &[("YOLO_MODE", "1")]).await?;
        let conv = Conv::create(&server).await?;
        bridge_tests::yolo::enable(&db, &conv.id, &["--mode", "yolo"])?;
        Ok(Self {
            _dir: dir,
            db,
            server,
            conv,
        })
    }

    /// A proposal whose stored command is `text`, with a matching hash: what
    /// a row written before intake refused such text looks like.
    async fn plant_proposal(&self, text: &str) -> anyhow::Result<String> {
        let p = self
            .server
            .ok(
                "propose_command",
                self.conv.args("a", json!({"command": "true"})),
            )
            .await?;
        let id = p["proposal_id"].as_str().context("proposal_id")?.to_owned();
        let conn = sql(&self.db)?;
        let params: String =
            conn.query_row("SELECT params FROM proposals WHERE id = ?1", [&id], |r| {
                r.get(0)
            })?;
        let hash = bridge_state::yolo::proposal_hash(text, &params);
        conn.execute(
            "UPDATE proposals SET command = ?1, hash = ?2 WHERE id = ?3",
            rusqlite::params![text, hash, id],
        )?;
        Ok(id)
    }
}

/// One `bridge yolo approve` on a `rows`×`cols` terminal.
struct Review {
    /// The visible screen each time the program waited for the person.
    pauses: Vec<Vec<String>>,
    bytes: Vec<u8>,
    screen: Screen,
    approved: bool,
}

fn review(db: &Path, proposal: &str, rows: u16, cols: u16, answer: &str) -> anyhow::Result<Review> {
    let mut pty = Pty::bridge(db, &["yolo", "approve", proposal], rows, cols)?;
    let mut screen = Screen::new(rows, cols);
    let mut pauses = Vec::new();
    loop {
        let which = pty.expect_any(&[PAGE_PROMPT, QUESTION])?;
        screen.catch_up(&pty.bytes());
        pauses.push(screen.visible());
        if which == 1 {
            break;
        }
        pty.send("\n")?;
    }
    pty.send(answer)?;
    let (status, bytes) = pty.finish()?;
    screen.catch_up(&bytes);
    Ok(Review {
        pauses,
        bytes,
        screen,
        approved: status.success(),
    })
}

/// Rows the person saw, in order, and each command line put back together
/// from its numbered row and `+` continuation rows.
fn command_lines(transcript: &[String]) -> anyhow::Result<Vec<String>> {
    let begin = transcript
        .iter()
        .position(|r| r == "===== command: begin =====")
        .context("no command block")?;
    let end = transcript
        .iter()
        .position(|r| r == "===== command: end =====")
        .context("no end of the command block")?;
    let mut lines: Vec<String> = Vec::new();
    // The history also holds the page prompts, where the person pressed Enter.
    let rows = transcript[begin + 1..end]
        .iter()
        .filter(|r| !r.ends_with(PAGE_PROMPT));
    for row in rows {
        let (gutter, rest) = row
            .split_once(" | ")
            .or_else(|| row.split_once(" + "))
            .with_context(|| format!("a row of the command block without a gutter: {row:?}"))?;
        if gutter.trim().is_empty() {
            lines
                .last_mut()
                .context("a continuation row before any line")?
                .push_str(rest);
        } else {
            ensure!(
                gutter.trim().parse::<usize>()? == lines.len() + 1,
                "line numbers out of order at {row:?}"
            );
            lines.push(rest.to_owned());
        }
    }
    Ok(lines)
}

/// The checks every screen passes, whatever the command.
fn assert_clean(what: &str, bytes: &[u8], screen: &Screen) {
    let bad = byte_violations(bytes);
    assert!(
        bad.is_empty(),
        "{what}: forbidden bytes reached the terminal: {bad:?}"
    );
    assert!(
        screen.effects().is_empty(),
        "{what}: the terminal was made to act: {:?}",
        screen.effects()
    );
}

fn assert_not_forged(what: &str, case: &Case, transcript: &[String]) {
    if let Some(forged) = case.forged {
        let fake = transcript
            .iter()
            .find(|r| r.trim_start().starts_with(forged));
        assert!(
            fake.is_none(),
            "{what}: {}: the screen shows a forged line {fake:?}",
            case.name
        );
    }
}

/// Checks one review: clean bytes, no terminal effects, every row of the
/// review on screen at some pause before `y/N`, and the command exactly as
/// stored, escaped, with nothing cut.
fn check_review(what: &str, r: &Review, p: &bridge_state::yolo::Proposal, case: &Case, cols: u16) {
    assert_clean(what, &r.bytes, &r.screen);
    // The rows the CLI laid out for this width, in order, must each have been
    // on screen while it waited for the person; the question comes once, last.
    let expected: Vec<String> =
        bridge::operator::review::approve_rows(p, 300, usize::from(cols) - 1)
            .iter()
            .map(|r| r.trim_end().to_owned())
            .filter(|r| !r.is_empty())
            .collect();
    for row in &expected {
        assert!(
            row.chars().count() < usize::from(cols),
            "{what}: a row wider than the terminal: {row:?}"
        );
    }
    let mut next = 0;
    for row in r.pauses.iter().flatten() {
        if next < expected.len() && *row == expected[next] {
            next += 1;
        }
    }
    assert_eq!(
        next,
        expected.len(),
        "{what}: row {next} of the review was never on screen before the question: {:?}\npauses: {:#?}",
        expected.get(next),
        r.pauses
    );
    let last = r.pauses.last().expect("at least the question");
    assert!(
        last.iter().any(|row| row.ends_with("[y/N]")),
        "{what}: {last:?}"
    );
    assert_eq!(
        String::from_utf8_lossy(&r.bytes).matches(QUESTION).count(),
        1
    );
    // Read back from the emulator's history, the command is the stored one.
    let transcript = r.screen.transcript();
    let lines = command_lines(&transcript).unwrap_or_else(|e| panic!("{what}: {e}"));
    // A terminal cannot show trailing spaces (the review names them instead).
    let want: Vec<String> = case
        .text
        .split('\n')
        .map(|l| Escaped(l).to_string().trim_end().to_owned())
        .collect();
    assert_eq!(lines, want, "{what}");
    assert!(
        lines.join("\n").contains(&case.shown),
        "{what}: {:?} is not on screen",
        case.shown
    );
    assert_not_forged(what, case, &transcript);
}

#[tokio::test]
async fn approve_shows_every_hostile_command_as_stored_and_pages_before_asking()
-> anyhow::Result<()> {
    let w = World::start().await?;
    for case in hostile::cases() {
        let id = w.plant_proposal(&case.text).await?;
        let p = bridge_state::yolo::load_proposal(&sql(&w.db)?, &id)?;
        let mut text = String::new();
        for (rows, cols) in [(24, 80), (12, 40)] {
            let what = format!("{} at {rows}x{cols}", case.name);
            let r = review(&w.db, &id, rows, cols, "n\n")?;
            check_review(&what, &r, &p, &case, cols);
            assert!(!r.approved, "{what}: declined, yet approved");
            let out = String::from_utf8_lossy(&r.bytes).into_owned();
            assert!(!out.contains("Approval token"));
            if cols == 80 {
                text = out;
            }
        }
        if !case.text.is_ascii() || case.text.bytes().any(|b| b < 0x20 && b != b'\n') {
            assert!(
                text.contains("WARNING: the command has"),
                "{}: {text}",
                case.name
            );
        }
        if case.name == "backspace" {
            assert!(
                text.contains("Trailing spaces, not visible above: line 1 ends with 4."),
                "{text}"
            );
        }
        if case.name == "many_lines" {
            assert!(
                text.contains("-- page 2/"),
                "301 lines on 24 rows must be paged"
            );
        }
    }
    // Saying yes after paging through issues the token, bound to the hash shown.
    let case = hostile::cases()
        .into_iter()
        .find(|c| c.name == "many_lines")
        .unwrap();
    let id = w.plant_proposal(&case.text).await?;
    let r = review(&w.db, &id, 24, 80, "y\n")?;
    assert!(r.approved);
    let text = String::from_utf8_lossy(&r.bytes);
    assert!(text.contains("Approval token: apv_"), "{text}");
    let p = bridge_state::yolo::load_proposal(&sql(&w.db)?, &id)?;
    assert!(text.contains(&p.hash));
    w.server.stop().await
}

#[tokio::test]
async fn a_y_typed_at_a_page_prompt_does_not_approve() -> anyhow::Result<()> {
    let w = World::start().await?;
    let case = hostile::cases()
        .into_iter()
        .find(|c| c.name == "many_lines")
        .unwrap();
    let id = w.plant_proposal(&case.text).await?;
    let mut pty = Pty::bridge(&w.db, &["yolo", "approve", &id], 24, 80)?;
    pty.expect(PAGE_PROMPT)?;
    pty.send("y\n")?;
    pty.expect(PAGE_PROMPT)?;
    pty.send("q\n")?;
    let (status, bytes) = pty.finish()?;
    let text = String::from_utf8_lossy(&bytes);
    assert!(
        !status.success() && !text.contains(QUESTION) && !text.contains("Approval token"),
        "{text}"
    );
    let state: String =
        sql(&w.db)?.query_row("SELECT state FROM proposals WHERE id = ?1", [&id], |r| {
            r.get(0)
        })?;
    assert_eq!(state, "proposed");
    w.server.stop().await
}
