//! The human in the loop: the interactive confirmations of YOLO stages 1-3
//! and the approval prompt of stage 4.
//!
//! Stage 1 is the operator's environment (`YOLO_MODE=1`); stage 2 a typed
//! phrase; stage 3 a one-time code printed on the terminal and typed back;
//! stage 4 a `y/N` on exactly what will run. All of them insist on a real
//! terminal on stdin and stdout: a pipe cannot answer them, so an agent that
//! merely runs `echo ... | bridge yolo enable` gets a refusal, not an
//! enablement, and a review cannot be sent to a file nobody reads.
//!
//! The review of stage 4 is paged: when it is taller than the terminal,
//! the person presses Enter after each screenful, and `y/N` is asked only
//! once the last row is on screen, so nothing can hide above the fold.

use std::io::{BufRead, IsTerminal, Write};

use unicode_width::UnicodeWidthStr;

use crate::untrusted::terminal::Terminal;

pub const PHRASE: &str = "I UNDERSTAND THE RISKS";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum GuardError {
    #[error(
        "YOLO mode is off: set YOLO_MODE=1 in the operator's environment to use `bridge yolo` (agents cannot turn it on)"
    )]
    OperatorEnvMissing,
    #[error(
        "refusing: `bridge {0}` must be run by a person on an interactive terminal (stdin and stdout must both be a TTY); it cannot be scripted, piped or redirected"
    )]
    NotATerminal(&'static str),
    #[error("the phrase did not match; nothing was enabled")]
    PhraseMismatch,
    #[error("the one-time code did not match; nothing was enabled")]
    CodeMismatch,
    #[error("not approved; no token was issued")]
    Declined,
    #[error("input ended before an answer; nothing was changed")]
    NoInput,
    #[error("terminal error: {0}")]
    Io(String),
}

impl From<std::io::Error> for GuardError {
    fn from(e: std::io::Error) -> Self {
        Self::Io(e.to_string())
    }
}

/// Stage 1: the operator's own environment must say YOLO_MODE=1.
pub fn require_operator_env() -> Result<(), GuardError> {
    match std::env::var("YOLO_MODE") {
        Ok(v) if v == "1" => Ok(()),
        _ => Err(GuardError::OperatorEnvMissing),
    }
}

pub fn require_terminal(verb: &'static str) -> Result<(), GuardError> {
    #[allow(clippy::disallowed_methods)] // asks whether stdout is a TTY, writes nothing
    let stdout_is_tty = std::io::stdout().is_terminal();
    if std::io::stdin().is_terminal() && stdout_is_tty {
        Ok(())
    } else {
        Err(GuardError::NotATerminal(verb))
    }
}

/// Who is at this terminal, as the operating system knows them: the audit
/// records it with every approval. The name comes from the password
/// database, not from `$USER`, which anyone can set.
pub fn approver() -> bridge_state::yolo::Approver {
    let uid = nix::unistd::getuid();
    let user = nix::unistd::User::from_uid(uid)
        .ok()
        .flatten()
        .map_or_else(|| format!("uid {uid}"), |u| u.name);
    let tty = std::fs::read_link("/proc/self/fd/0")
        .ok()
        .map(|p| p.display().to_string());
    bridge_state::yolo::Approver {
        user,
        uid: uid.as_raw(),
        tty,
    }
}

/// A random code like `K7QP-3XMA` from an alphabet without look-alikes.
pub fn one_time_code() -> Result<String, GuardError> {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).map_err(|e| GuardError::Io(e.to_string()))?;
    // 256 is a multiple of 32, so `% 32` is unbiased.
    let chars: String = bytes
        .iter()
        .map(|b| ALPHABET[(*b % 32) as usize] as char)
        .collect();
    Ok(format!("{}-{}", &chars[..4], &chars[4..]))
}

fn ask<W: Write>(
    input: &mut dyn BufRead,
    out: &mut Terminal<W>,
    prompt: &str,
) -> Result<String, GuardError> {
    out.print(prompt)?;
    out.flush()?;
    let mut line = String::new();
    if input.read_line(&mut line)? == 0 {
        return Err(GuardError::NoInput);
    }
    Ok(line.trim_end_matches(['\n', '\r']).to_owned())
}

/// Stages 2 and 3. `summary` says what will be enabled; the risks are
/// spelled out here so no caller can forget them.
pub fn confirm_enable<W: Write>(
    input: &mut dyn BufRead,
    out: &mut Terminal<W>,
    summary: &str,
) -> Result<(), GuardError> {
    out.println(summary)?;
    out.println(
        "\nRisks:\n  - Agents will be able to run commands you approve, with the settings above.\n  - A prompt-injected agent can propose harmful commands in plausible words: read every command before approving it.\n  - The workspace, if mounted, is visible to those commands (and writable if you chose read-write).\n  - The container is the security boundary; container escapes in the kernel or engine are not stopped by this tool.\n"
    )?;
    let typed = ask(
        input,
        out,
        &format!("Type exactly `{PHRASE}` to continue: "),
    )?;
    if typed != PHRASE {
        return Err(GuardError::PhraseMismatch);
    }
    let code = one_time_code()?;
    out.println(format_args!("One-time code: {code}"))?;
    let typed = ask(input, out, "Type the one-time code: ")?;
    if !typed.trim().eq_ignore_ascii_case(&code) {
        return Err(GuardError::CodeMismatch);
    }
    Ok(())
}

/// The question of stage 4.
pub const APPROVE_QUESTION: &str = "Approve running exactly this? [y/N] ";

/// Stage 4: shows the review `rows` (each no wider than the terminal) on a
/// terminal `height` rows tall, a screenful at a time, then asks `y/N`
/// (default no). Anything but `q` at a page prompt shows the next page, so a
/// `y` typed early is never taken as the answer.
pub fn confirm_approve<W: Write>(
    input: &mut dyn BufRead,
    out: &mut Terminal<W>,
    rows: &[String],
    height: usize,
    width: usize,
) -> Result<(), GuardError> {
    let question_rows = rows_taken(APPROVE_QUESTION, width);
    if rows.len() + question_rows > height {
        let prompt_rows = rows_taken(&page_prompt(99, 99), width).max(question_rows);
        let page = height.saturating_sub(prompt_rows).max(1);
        let pages = rows.len().div_ceil(page);
        for (i, chunk) in rows.chunks(page).enumerate() {
            for row in chunk {
                out.println(row)?;
            }
            if i + 1 < pages {
                let answer = ask(input, out, &page_prompt(i + 1, pages))?;
                if answer.trim().eq_ignore_ascii_case("q") {
                    return Err(GuardError::Declined);
                }
            }
        }
    } else {
        for row in rows {
            out.println(row)?;
        }
    }
    let answer = ask(input, out, APPROVE_QUESTION)?;
    match answer.trim() {
        "y" | "Y" | "yes" | "YES" | "Yes" => Ok(()),
        _ => Err(GuardError::Declined),
    }
}

fn page_prompt(page: usize, pages: usize) -> String {
    format!("-- page {page}/{pages}: Enter for more, q to decline --")
}

/// Terminal rows a prompt of this text occupies at `width` columns.
fn rows_taken(text: &str, width: usize) -> usize {
    text.width_cjk().div_ceil(width.max(1)).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enable_with(lines: &str) -> (Result<(), GuardError>, String) {
        let mut input = std::io::Cursor::new(lines.as_bytes().to_vec());
        let mut out = Terminal::new(Vec::new());
        let r = confirm_enable(&mut input, &mut out, "summary");
        (r, String::from_utf8(out.into_inner()).unwrap())
    }

    #[test]
    fn wrong_phrase_stops_before_any_code_is_shown() {
        for wrong in [
            "i understand the risks\n",
            "I UNDERSTAND THE RISKS!\n",
            "\n",
            "",
        ] {
            let (r, out) = enable_with(wrong);
            assert!(
                matches!(r, Err(GuardError::PhraseMismatch | GuardError::NoInput)),
                "{wrong:?}: {r:?}"
            );
            assert!(!out.contains("One-time code"), "{wrong:?}");
        }
    }

    #[test]
    fn a_guessed_code_is_refused() {
        let (r, out) = enable_with(&format!("{PHRASE}\nAAAA-AAAA\n"));
        // One chance in 32^8 that the guess is right.
        assert_eq!(r, Err(GuardError::CodeMismatch), "{out}");
        assert!(out.contains("One-time code: "));
    }

    #[test]
    fn approval_defaults_to_no() {
        for (answer, ok) in [
            ("y\n", true),
            ("yes\n", true),
            ("\n", false),
            ("n\n", false),
            ("yy\n", false),
        ] {
            let (r, _) = approve_with(&["cmd".into()], 24, answer);
            assert_eq!(r.is_ok(), ok, "{answer:?}");
        }
    }

    fn approve_with(
        rows: &[String],
        height: usize,
        answers: &str,
    ) -> (Result<(), GuardError>, String) {
        let mut input = std::io::Cursor::new(answers.as_bytes().to_vec());
        let mut out = Terminal::new(Vec::new());
        let r = confirm_approve(&mut input, &mut out, rows, height, 80);
        (r, String::from_utf8(out.into_inner()).unwrap())
    }

    #[test]
    fn a_tall_review_is_paged_and_the_question_comes_after_the_last_row() {
        let rows: Vec<String> = (1..=50).map(|i| format!("row {i}")).collect();
        // 10 rows: pages of 9 rows and a prompt, so 6 pages and 5 prompts.
        let (r, out) = approve_with(&rows, 10, "\n\n\n\n\ny\n");
        assert_eq!(r, Ok(()), "{out}");
        let screens: Vec<&str> = out.split(" --").collect();
        assert_eq!(screens.len(), 6, "{out}");
        for (i, screen) in screens[..5].iter().enumerate() {
            // Each screenful: at most 9 rows, then the page prompt.
            let shown: Vec<&str> = screen.lines().filter(|l| l.starts_with("row ")).collect();
            assert_eq!(shown.len(), 9, "page {i}: {screen}");
            assert!(screen.ends_with(&format!(
                "-- page {}/6: Enter for more, q to decline",
                i + 1
            )));
        }
        let question = out.find(APPROVE_QUESTION).unwrap();
        assert!(out.find("row 50\n").unwrap() < question);
        assert_eq!(out.matches(APPROVE_QUESTION).count(), 1);
    }

    #[test]
    fn a_y_typed_before_the_last_page_is_not_an_answer() {
        let rows: Vec<String> = (1..=30).map(|i| format!("row {i}")).collect();
        for answers in ["y\n", "y\ny\n", "yes\n\n"] {
            let (r, out) = approve_with(&rows, 10, answers);
            assert!(r.is_err(), "{answers:?}: {out}");
            assert!(!out.contains(APPROVE_QUESTION), "{answers:?}: {out}");
        }
        let (r, out) = approve_with(&rows, 10, "\nq\ny\n");
        assert_eq!(r, Err(GuardError::Declined));
        assert!(!out.contains("row 30") && !out.contains(APPROVE_QUESTION));
    }

    #[test]
    fn a_review_that_fits_is_asked_at_once() {
        let rows: Vec<String> = (1..=23).map(|i| format!("row {i}")).collect();
        let (r, out) = approve_with(&rows, 24, "y\n");
        assert_eq!(r, Ok(()));
        assert!(!out.contains("-- page"));
        let (r, out) = approve_with(&rows, 23, "\ny\n");
        assert_eq!(r, Ok(()));
        assert!(out.contains("-- page 1/2"));
    }

    #[test]
    fn codes_look_right_and_differ() {
        let a = one_time_code().unwrap();
        assert_eq!(a.len(), 9);
        assert_eq!(&a[4..5], "-");
        assert_ne!(a, one_time_code().unwrap());
    }
}
