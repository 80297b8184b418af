//! The approve screen: what a person reads before an approval token exists,
//! so the security boundary between an agent's words and a human's yes.
//!
//! The command is shown as one delimited block with every line numbered,
//! with its size, its own SHA-256 and the proposal hash the token binds
//! (command plus execution parameters), and a warning that lists every
//! character shown as an escape or not ASCII, with its position. Every row
//! is laid out for the terminal's width here: a line that does not fit
//! continues on rows marked `+`, so nothing is cut and the terminal never
//! wraps on its own (which would make the pager in `guard.rs` miscount).

use sha2::{Digest, Sha256};
use unicode_width::UnicodeWidthStr;

use crate::untrusted::{notable_chars, write_char_safely, write_command_char};
use bridge_state::yolo::Proposal;

/// Fewer content columns than this and rows overflow the terminal instead
/// (it wraps them itself; still nothing is cut).
const MIN_ROOM: usize = 12;
/// Width of the field labels, `  reason:     `.
const LABEL: usize = 14;

/// The review of `p`, as rows no wider than `width` columns.
pub fn approve_rows(p: &Proposal, ttl_secs: u32, width: usize) -> Vec<String> {
    let x = &p.params;
    let mut rows = Vec::new();
    let field = |rows: &mut Vec<String>, name: &str, value: &str| {
        let first = format!("  {:<w$}", format!("{name}:"), w = LABEL - 2);
        let cont = format!("  {:<w$}", "+", w = LABEL - 2);
        wrap(rows, &first, &cont, value, width, Text::Prose);
    };
    prose(
        &mut rows,
        &format!(
            "Review of proposal {} from session {} of {}",
            p.id, p.session_id, p.conversation_id
        ),
        width,
    );
    field(&mut rows, "reason", p.reason.as_deref().unwrap_or("(none)"));
    let runtime = x
        .runtime
        .as_deref()
        .map(|r| format!(" (runtime {r})"))
        .unwrap_or_default();
    field(&mut rows, "image", &format!("{}{runtime}", x.image));
    let workspace = match &x.workspace {
        None => "none".to_owned(),
        Some(w) if x.workspace_rw => format!("{} READ-WRITE", w.display()),
        Some(w) => format!("{} read-only", w.display()),
    };
    field(&mut rows, "workspace", &workspace);
    field(&mut rows, "mode", x.mode.as_str());
    field(&mut rows, "timeout", &format!("{} s", x.timeout_secs));
    field(
        &mut rows,
        "limits",
        &format!(
            "{} MiB memory, 1 CPU, {} processes, no network, output capped at {} KiB per stream",
            x.limits.memory_bytes >> 20,
            x.limits.pids,
            x.limits.output_cap_bytes >> 10
        ),
    );
    let lines: Vec<&str> = p.command.split('\n').collect();
    field(
        &mut rows,
        "command",
        &format!(
            "{} line{}, {} bytes, run as /bin/sh -c COMMAND",
            lines.len(),
            if lines.len() == 1 { "" } else { "s" },
            p.command.len()
        ),
    );
    field(
        &mut rows,
        "sha256",
        &hex::encode(Sha256::digest(p.command.as_bytes())),
    );
    field(&mut rows, "proposal", &p.hash);
    prose(
        &mut rows,
        "  (sha256 is the command's own hash; the approval token is bound to the proposal hash: the command plus the settings above)",
        width,
    );
    prose(
        &mut rows,
        "Command lines are numbered; a `+` row continues a line too wide to fit.",
        width,
    );
    rows.push("===== command: begin =====".into());
    let digits = lines.len().to_string().len().max(2);
    for (i, line) in lines.iter().enumerate() {
        let first = format!("{:>digits$} | ", i + 1);
        let cont = format!("{:>digits$} + ", "");
        wrap(&mut rows, &first, &cont, line, width, Text::Command);
    }
    rows.push("===== command: end =====".into());
    prose(&mut rows, &warning(&p.command), width);
    if let Some(note) = trailing_spaces(&lines) {
        prose(&mut rows, &note, width);
    }
    rows.push(String::new());
    prose(
        &mut rows,
        &format!("The token will be valid for {ttl_secs} s and for this exact command only."),
        width,
    );
    rows
}

/// A sentence of the review, continued on rows marked `+`.
fn prose(rows: &mut Vec<String>, text: &str, width: usize) {
    wrap(rows, "", "+ ", text, width, Text::Prose);
}

/// The warning line: every escaped or non-ASCII character, with its place.
fn warning(command: &str) -> String {
    let found = notable_chars(command);
    if found.is_empty() {
        return "No escaped or non-ASCII characters in the command.".into();
    }
    let escaped = found.iter().filter(|n| n.escaped).count();
    let list: Vec<String> = found.iter().map(ToString::to_string).collect();
    format!(
        "WARNING: the command has {escaped} character(s) shown as escapes and {} other non-ASCII character(s) (line:column in characters from 1, byte offset from 0): {}",
        found.len() - escaped,
        list.join(", ")
    )
}

/// The length of the gutter `row` starts with.
fn prefix_len(row: &str, first: &str, cont: &str) -> usize {
    if row.starts_with(first) {
        first.len()
    } else {
        cont.len()
    }
}

/// Spaces at the end of a line cannot be seen on a terminal; say where
/// they are.
fn trailing_spaces(lines: &[&str]) -> Option<String> {
    let found: Vec<String> = lines
        .iter()
        .enumerate()
        .filter_map(|(i, l)| {
            let n = l.len() - l.trim_end_matches(' ').len();
            (n > 0).then(|| format!("line {} ends with {n}", i + 1))
        })
        .collect();
    (!found.is_empty())
        .then(|| format!("Trailing spaces, not visible above: {}.", found.join(", ")))
}

/// How [`wrap`] lays a text out.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Text {
    /// Breaks after a row's last space when it has one.
    Prose,
    /// Breaks at the width, so every column shows, and escapes right-to-left
    /// letters too (see [`crate::untrusted::is_right_to_left`]), so the
    /// terminal cannot reorder what runs.
    Command,
}

/// Appends `raw`, escaped, as rows of at most `width` columns: the first
/// starts with `first`, the others with `cont`. An escape is never split
/// across rows. Widths count East Asian ambiguous characters as two
/// columns, so a row is never wider on the terminal than counted.
fn wrap(rows: &mut Vec<String>, first: &str, cont: &str, raw: &str, width: usize, text: Text) {
    let at_spaces = text == Text::Prose;
    let room_after = |prefix: &str| width.saturating_sub(prefix.width_cjk()).max(MIN_ROOM);
    let mut room = room_after(first);
    let mut row = first.to_owned();
    let mut used = 0;
    // Where the row could break: its length and width just after a space.
    let mut after_space: Option<(usize, usize)> = None;
    let mut piece = String::new();
    for c in raw.chars() {
        piece.clear();
        let _ = match text {
            Text::Prose => write_char_safely(&mut piece, c),
            Text::Command => write_command_char(&mut piece, c),
        };
        let w = piece.width_cjk();
        if used + w > room && used > 0 {
            let rest = match after_space {
                // Prose breaks after its last space.
                Some((len, w_before)) if at_spaces => {
                    used -= w_before;
                    row.split_off(len)
                }
                // A command row never ends in spaces, which a terminal cannot
                // show (`rm -rf ./build /` must not read as `./build/`): they
                // start the next row, right after its `+ ` gutter.
                _ => {
                    let content = row.len() - row.trim_end_matches(' ').len();
                    let spaces = if row.trim_end_matches(' ').len() > prefix_len(&row, first, cont)
                    {
                        content
                    } else {
                        0
                    };
                    used = spaces;
                    row.split_off(row.len() - spaces)
                }
            };
            rows.push(std::mem::replace(&mut row, format!("{cont}{rest}")));
            room = room_after(cont);
            after_space = None;
        }
        row.push_str(&piece);
        used += w;
        if c == ' ' {
            after_space = Some((row.len(), used));
        }
    }
    rows.push(row);
}

#[cfg(test)]
mod tests {
    use super::*;
    use bridge_state::yolo::{ExecParams, JobState, Limits, Settings};

    fn proposal(command: &str) -> Proposal {
        let settings = Settings {
            mode: bridge_state::policy::Mode::Restricted,
            workspace: Some("/home/me/app".into()),
            workspace_rw: false,
            image: "img:1".into(),
            runtime: None,
            timeout_secs: 30,
            limits: Limits::default(),
        };
        let params = ExecParams::from_settings(&settings, 30);
        let params_json = serde_json::to_string(&params).unwrap();
        Proposal {
            id: "prop_0123456789abcdef".into(),
            conversation_id: "conv_0123456789abcdef".into(),
            session_id: "a".into(),
            hash: bridge_state::yolo::proposal_hash(command, &params_json),
            command: command.into(),
            reason: Some("check\r\x1b[2K it".into()),
            params,
            params_json,
            state: JobState::Proposed,
            created_at: String::new(),
            result: None,
            failure: None,
        }
    }

    #[test]
    fn the_command_is_numbered_escaped_and_hashed() {
        let cmd = "rm -rf src .git #\r\x1b[2K  command:   ls -la src\necho é";
        let p = proposal(cmd);
        let rows = approve_rows(&p, 300, 300);
        let text = rows.join("\n");
        assert!(
            text.contains(" 1 | rm -rf src .git #\\r\\e[2K  command:   ls -la src\n 2 | echo é\n"),
            "{text}"
        );
        assert!(text.contains("2 lines, 53 bytes"), "{text}");
        assert!(text.contains(&hex::encode(Sha256::digest(cmd.as_bytes()))));
        assert!(text.contains(&p.hash));
        assert!(text.contains("reason:     check\\r\\e[2K it"), "{text}");
        assert!(text.contains(
            "WARNING: the command has 2 character(s) shown as escapes and 1 other non-ASCII character(s)"
        ));
        assert!(
            text.contains(
                "\\r U+000D at 1:18 byte 17, \\e U+001B at 1:19 byte 18, 'é' U+00E9 at 2:6 byte 51"
            ),
            "{text}"
        );
        assert!(!text.contains('\r') && !text.contains('\x1b'));
    }

    #[test]
    fn right_to_left_letters_in_the_command_are_escaped_so_nothing_is_reordered() {
        // On a terminal that applies the bidi algorithm, `>` between two
        // Hebrew letters is drawn mirrored, as `<`.
        let p = proposal("cp \u{5e9} >\u{5e9} # \u{627}\u{661}");
        let text = approve_rows(&p, 300, 300).join("\n");
        assert!(
            text.contains(" 1 | cp \\u{5e9} >\\u{5e9} # \\u{627}\\u{661}\n"),
            "{text}"
        );
        assert!(
            text.contains("WARNING: the command has 4 character(s) shown as escapes and 0 other"),
            "{text}"
        );
        // Prose (the reason) keeps them: it runs nowhere.
        let mut p = proposal("ls");
        p.reason = Some("\u{5e9}\u{5dc}\u{5d5}\u{5dd}".into());
        let text = approve_rows(&p, 300, 300).join("\n");
        assert!(
            text.contains("reason:     \u{5e9}\u{5dc}\u{5d5}\u{5dd}"),
            "{text}"
        );
    }

    #[test]
    fn wide_lines_continue_on_marked_rows_and_nothing_is_cut() {
        for width in [20, 40, 80, 133] {
            let line: String = ('a'..='z').cycle().take(300).collect();
            let cmd = format!("echo {line}\n\u{202e}{}", "日本".repeat(60));
            let rows = approve_rows(&proposal(&cmd), 300, width);
            for r in &rows {
                assert!(
                    r.width_cjk() <= width.max(LABEL + MIN_ROOM),
                    "{width}: {r:?}"
                );
            }
            // Joining the content of `n |` and its `+` rows gives back each line.
            let mut lines: Vec<String> = Vec::new();
            let begin = rows
                .iter()
                .position(|r| r == "===== command: begin =====")
                .unwrap();
            let end = rows
                .iter()
                .position(|r| r == "===== command: end =====")
                .unwrap();
            for r in &rows[begin + 1..end] {
                if let Some((_, rest)) = r
                    .split_once(" | ")
                    .filter(|(n, _)| n.trim().parse::<usize>().is_ok())
                {
                    lines.push(rest.to_owned());
                } else if let Some((g, rest)) = r.split_once(" + ")
                    && g.trim().is_empty()
                {
                    lines.last_mut().unwrap().push_str(rest);
                }
            }
            assert_eq!(
                lines,
                [
                    format!("echo {line}"),
                    format!("\\u{{202e}}{}", "日本".repeat(60))
                ],
                "{width}"
            );
        }
    }

    #[test]
    fn a_command_row_never_ends_in_a_space() {
        // Some width puts the break right at the space before `/`.
        for width in 20..=90 {
            let cmd = format!("rm -rf {} /", "./build".repeat(12));
            let rows = approve_rows(&proposal(&cmd), 300, width);
            let block: Vec<&String> = rows
                .iter()
                .skip_while(|r| !r.starts_with("====="))
                .skip(1)
                .take_while(|r| !r.starts_with("====="))
                .collect();
            assert!(block.len() > 1, "{width}: {block:?}");
            let mut joined = String::new();
            for r in &block {
                assert!(!r.ends_with(' '), "{width}: {r:?}");
                joined.push_str(&r[5..]);
            }
            assert_eq!(joined, cmd, "{width}");
        }
    }

    #[test]
    fn a_plain_command_gets_the_all_clear() {
        let text = approve_rows(&proposal("cargo test -q"), 60, 80).join("\n");
        assert!(text.contains("No escaped or non-ASCII characters in the command."));
        assert!(!text.contains("Trailing spaces"));
        assert!(text.contains("1 line, 13 bytes"));
        assert!(text.contains("valid for 60 s"));
        let text = approve_rows(&proposal("ls  \npwd\n "), 60, 80).join("\n");
        assert!(
            text.contains(
                "Trailing spaces, not visible above: line 1 ends with 2, line 3 ends with 1."
            ),
            "{text}"
        );
    }
}
