//! The human in the loop: the interactive confirmations of YOLO stages 1-3
//! and the approval prompt of stage 4.
//!
//! Stage 1 is the operator's environment (`YOLO_MODE=1`); stage 2 a typed
//! phrase; stage 3 a one-time code printed on the terminal and typed back;
//! stage 4 a `y/N` on exactly what will run. All of them insist on a real
//! terminal on stdin: a pipe cannot answer them, so an agent that merely runs
//! `echo ... | bridge yolo enable` gets a refusal, not an enablement.

use std::io::{BufRead, IsTerminal, Write};

pub const PHRASE: &str = "I UNDERSTAND THE RISKS";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum GuardError {
    #[error(
        "YOLO mode is off: set YOLO_MODE=1 in the operator's environment to use `bridge yolo` (agents cannot turn it on)"
    )]
    OperatorEnvMissing,
    #[error(
        "refusing: `bridge yolo {0}` must be run by a person on an interactive terminal (stdin is not a TTY); it cannot be scripted or piped"
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
    if std::io::stdin().is_terminal() {
        Ok(())
    } else {
        Err(GuardError::NotATerminal(verb))
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

fn ask(input: &mut dyn BufRead, out: &mut dyn Write, prompt: &str) -> Result<String, GuardError> {
    write!(out, "{prompt}")?;
    out.flush()?;
    let mut line = String::new();
    if input.read_line(&mut line)? == 0 {
        return Err(GuardError::NoInput);
    }
    Ok(line.trim_end_matches(['\n', '\r']).to_owned())
}

/// Stages 2 and 3. `summary` says what will be enabled; the risks are
/// spelled out here so no caller can forget them.
pub fn confirm_enable(
    input: &mut dyn BufRead,
    out: &mut dyn Write,
    summary: &str,
) -> Result<(), GuardError> {
    writeln!(out, "{summary}")?;
    writeln!(
        out,
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
    writeln!(out, "One-time code: {code}")?;
    let typed = ask(input, out, "Type the one-time code: ")?;
    if !typed.trim().eq_ignore_ascii_case(&code) {
        return Err(GuardError::CodeMismatch);
    }
    Ok(())
}

/// Stage 4: shows exactly what will run and asks `y/N` (default no).
pub fn confirm_approve(
    input: &mut dyn BufRead,
    out: &mut dyn Write,
    summary: &str,
) -> Result<(), GuardError> {
    writeln!(out, "{summary}")?;
    let answer = ask(input, out, "Approve running exactly this? [y/N] ")?;
    match answer.trim() {
        "y" | "Y" | "yes" | "YES" | "Yes" => Ok(()),
        _ => Err(GuardError::Declined),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enable_with(lines: &str) -> (Result<(), GuardError>, String) {
        let mut input = std::io::Cursor::new(lines.as_bytes().to_vec());
        let mut out = Vec::new();
        let r = confirm_enable(&mut input, &mut out, "summary");
        (r, String::from_utf8(out).unwrap())
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
            let mut input = std::io::Cursor::new(answer.as_bytes().to_vec());
            let r = confirm_approve(&mut input, &mut Vec::new(), "cmd");
            assert_eq!(r.is_ok(), ok, "{answer:?}");
        }
    }

    #[test]
    fn codes_look_right_and_differ() {
        let a = one_time_code().unwrap();
        assert_eq!(a.len(), 9);
        assert_eq!(&a[4..5], "-");
        assert_ne!(a, one_time_code().unwrap());
    }
}
