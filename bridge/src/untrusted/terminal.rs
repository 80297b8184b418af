//! The operator CLI's only way to its terminal. Whatever is written passes
//! [`safe_layout`]: every unprintable character but the layout's own `\n`
//! becomes an escape, so a field that a caller forgot to wrap in
//! [`Escaped`] still cannot move the cursor, erase, retitle the window or
//! write the clipboard. (The lib denies `print_stdout`, and `clippy.toml`
//! forbids `std::io::stdout` outside this file, so nothing else can print.)
//! Callers still escape each field themselves, so that a newline inside
//! untrusted text cannot forge a line of the layout.

use std::fmt::Display;
use std::io::{self, Write};

use super::{Escaped, is_unprintable, write_escape};

/// Writes text for a human, escaping everything a terminal would act on.
pub struct Terminal<W: Write = io::Stdout> {
    out: W,
}

impl Terminal<io::Stdout> {
    #[allow(clippy::disallowed_methods)] // this is the one way to stdout
    pub fn stdout() -> Self {
        Self { out: io::stdout() }
    }
}

impl<W: Write> Terminal<W> {
    pub fn new(out: W) -> Self {
        Self { out }
    }

    pub fn into_inner(self) -> W {
        self.out
    }

    /// Writes `text` (its newlines kept, everything else unprintable escaped).
    pub fn print(&mut self, text: impl Display) -> io::Result<()> {
        self.out
            .write_all(safe_layout(&text.to_string()).as_bytes())
    }

    /// [`Terminal::print`] and a newline.
    pub fn println(&mut self, text: impl Display) -> io::Result<()> {
        self.print(text)?;
        self.out.write_all(b"\n")
    }

    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// Prints one block of output (a table, a JSON document, a sentence) and a
/// newline on stdout.
pub fn println(text: impl Display) -> io::Result<()> {
    let mut t = Terminal::stdout();
    t.println(text)?;
    t.flush()
}

/// `text` with every unprintable character except `\n` escaped.
pub fn safe_layout(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c != '\n' && is_unprintable(c) {
            let _ = write_escape(&mut out, c);
        } else {
            out.push(c);
        }
    }
    out
}

/// An error for stderr, after `error: `: [`safe_layout`], with every line
/// after the first behind a `  | ` gutter. An error can quote stored text
/// that an agent wrote (a policy refusal quotes the command's words), and a
/// newline in it must not start a line that passes for one the program
/// printed itself ("Approved and queued …").
pub fn safe_error(text: &str) -> String {
    safe_layout(text).replace('\n', "\n  | ")
}

/// Rows and columns of the terminal on stdout (or else stdin), if either is
/// a terminal that knows its size. A pseudo-terminal nobody sized reports
/// 0×0, which counts as unknown.
pub fn window_size() -> Option<(u16, u16)> {
    #[allow(clippy::disallowed_methods)] // asks the terminal, writes nothing
    let stdout = io::stdout();
    [
        rustix::termios::tcgetwinsize(&stdout),
        rustix::termios::tcgetwinsize(io::stdin()),
    ]
    .into_iter()
    .flatten()
    .find(|w| w.ws_row > 0 && w.ws_col > 0)
    .map(|w| (w.ws_row, w.ws_col))
}

/// A comfy-table whose every cell is rendered with [`Escaped`]: stored text
/// can neither carry a control sequence nor break a row into lines.
pub struct Table(comfy_table::Table);

impl Table {
    pub fn new(header: &[&str]) -> Self {
        let mut t = comfy_table::Table::new();
        t.load_preset(comfy_table::presets::UTF8_FULL_CONDENSED)
            .set_header(header.to_vec());
        Self(t)
    }

    pub fn row<I>(&mut self, cells: I) -> &mut Self
    where
        I: IntoIterator,
        I::Item: Display,
    {
        let row: Vec<String> = cells
            .into_iter()
            .map(|c| Escaped(&c.to_string()).to_string())
            .collect();
        self.0.add_row(row);
        self
    }
}

impl Display for Table {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_quoting_agent_text_cannot_start_a_line_of_its_own() {
        let shown =
            safe_error("blocked by rule `x`: `git branch 'a\nApproved and queued prop_1'`\x1b[2K");
        assert_eq!(
            shown,
            "blocked by rule `x`: `git branch 'a\n  | Approved and queued prop_1'`\\e[2K"
        );
        assert!(shown.lines().skip(1).all(|l| l.starts_with("  | ")));
    }
}
