//! The one path by which agent and sandbox text reaches a human: every
//! character a terminal would not simply print (C0/C1 controls, ESC, DEL,
//! bidi and other invisible format characters, look-alike spaces, fillers)
//! is shown as a visible escape such as `\e`, `\r` or `\u{202e}`.
//!
//! A terminal obeys what it is sent: a carriage return lets later text
//! overwrite a line, `ESC [2K` erases one, OSC 52 writes the clipboard, a
//! bidi override reorders what the eye reads. Commands, reasons, roles,
//! messages, audit details and command output are all written by agents or
//! by code they ran, so none of it may reach a terminal as it is.
//!
//! - [`Escaped`] renders untrusted text on one line (also `\n` escaped);
//! - [`terminal::Terminal`] is the operator CLI's only way to stdout and
//!   escapes whatever its callers forgot, except the layout's own newlines;
//! - [`terminal::Table`] escapes every cell;
//! - [`json`] writes `--json` output with the same characters as `\u` escapes;
//! - [`first_unprintable`] is the intake check for fields that must be
//!   printable text.

use std::fmt;

use unicode_general_category::{GeneralCategory, get_general_category};

pub mod json;
pub mod terminal;

/// True if `c` must not reach a terminal as itself.
pub fn is_unprintable(c: char) -> bool {
    if c.is_ascii() {
        return c < ' ' || c == '\x7f';
    }
    use GeneralCategory as G;
    matches!(
        get_general_category(c),
        // C1 controls; bidi controls, zero-width characters, soft hyphen, tags
        // (Cf); code points a terminal cannot know how to draw (Cs, Co, Cn);
        // line breaks a terminal may honour (Zl, Zp); spaces that are not the
        // ASCII space (a shell does not split words on them).
        G::Control
            | G::Format
            | G::Surrogate
            | G::PrivateUse
            | G::Unassigned
            | G::LineSeparator
            | G::ParagraphSeparator
            | G::SpaceSeparator
    ) || bridge_state::redact::is_invisible(c)
}

/// How an unprintable character is shown: short C escapes where a reader
/// knows them, `\xNN` for other C0 controls and DEL, `\u{…}` otherwise.
pub fn write_escape(out: &mut impl fmt::Write, c: char) -> fmt::Result {
    match c {
        '\0' => out.write_str("\\0"),
        '\x07' => out.write_str("\\a"),
        '\x08' => out.write_str("\\b"),
        '\t' => out.write_str("\\t"),
        '\n' => out.write_str("\\n"),
        '\x0b' => out.write_str("\\v"),
        '\x0c' => out.write_str("\\f"),
        '\r' => out.write_str("\\r"),
        '\x1b' => out.write_str("\\e"),
        c if c.is_ascii() => write!(out, "\\x{:02x}", c as u32),
        c => write!(out, "\\u{{{:x}}}", c as u32),
    }
}

/// Writes `c` as itself if printable, else as its escape.
pub fn write_char_safely(out: &mut impl fmt::Write, c: char) -> fmt::Result {
    if is_unprintable(c) {
        write_escape(out, c)
    } else {
        out.write_char(c)
    }
}

/// True for a letter or digit of a right-to-left script (Hebrew, Arabic,
/// Syriac, Thaana, N'Ko and the rest of their blocks). A terminal that
/// applies the Unicode bidirectional algorithm draws the text between two
/// of them reversed, and mirrors `<>()[]{}` in it: `cp א >ב` can be drawn
/// as an input redirect. Shell text never needs one unescaped.
pub fn is_right_to_left(c: char) -> bool {
    matches!(
        u32::from(c),
        0x0590..=0x08FF | 0xFB1D..=0xFDFF | 0xFE70..=0xFEFF | 0x10800..=0x10FFF | 0x1E800..=0x1EFFF
    )
}

/// True if `c` is shown as an escape in a command: unprintable, or
/// right-to-left (see [`is_right_to_left`]).
pub fn escaped_in_command(c: char) -> bool {
    is_unprintable(c) || is_right_to_left(c)
}

/// Writes `c` as a command shows it: escaped when
/// [`escaped_in_command`], else as itself.
pub fn write_command_char(out: &mut impl fmt::Write, c: char) -> fmt::Result {
    if escaped_in_command(c) {
        write_escape(out, c)
    } else {
        out.write_char(c)
    }
}

/// Untrusted text for a terminal, on one line: every unprintable character,
/// newline included, is escaped.
#[derive(Debug, Clone, Copy)]
pub struct Escaped<'a>(pub &'a str);

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in self.0.chars() {
            write_char_safely(f, c)?;
        }
        Ok(())
    }
}

/// [`Escaped`] cut to at most `max` characters (ending in `…` when cut). An
/// escape is never cut in half.
pub fn escaped_shortened(s: &str, max: usize) -> String {
    shortened(s, max, write_char_safely)
}

/// A command on one line for a listing, cut like [`escaped_shortened`], and
/// written as the approve screen writes it ([`write_command_char`]):
/// right-to-left letters escaped too, so no listing of commands can show a
/// redirect the command does not hold.
pub fn command_shortened(s: &str, max: usize) -> String {
    shortened(s, max, write_command_char)
}

fn shortened(s: &str, max: usize, write: fn(&mut String, char) -> fmt::Result) -> String {
    let mut full = String::with_capacity(s.len());
    for c in s.chars() {
        let _ = write(&mut full, c);
    }
    if full.chars().count() <= max {
        return full;
    }
    let mut out = String::new();
    let mut used = 0;
    let mut piece = String::new();
    for c in s.chars() {
        piece.clear();
        let _ = write(&mut piece, c);
        let n = piece.chars().count();
        if used + n > max.saturating_sub(1) {
            break;
        }
        out.push_str(&piece);
        used += n;
    }
    out.push('…');
    out
}

/// What a reader is told about a character that cannot stand for itself.
pub fn describe(c: char) -> &'static str {
    if c.is_ascii() || matches!(c, '\u{80}'..='\u{9f}') {
        return "a control character";
    }
    if matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{200e}' | '\u{200f}' | '\u{061c}')
    {
        return "a bidirectional-text control";
    }
    use GeneralCategory as G;
    match get_general_category(c) {
        G::Format => "an invisible format character",
        G::SpaceSeparator => "a space other than the ASCII space",
        G::LineSeparator | G::ParagraphSeparator => "a line or paragraph separator",
        G::PrivateUse => "a private-use character",
        G::Unassigned | G::Surrogate => "an unassigned code point",
        _ => "an invisible character",
    }
}

/// The first character of a field that is not allowed, where it is, and
/// what it is. Positions count from 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unprintable {
    pub ch: char,
    pub char_index: usize,
    pub byte_index: usize,
}

impl fmt::Display for Unprintable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("contains ")?;
        write_escape(f, self.ch)?;
        write!(
            f,
            " (U+{:04X}, {}) at character {} (byte {}; both counted from 0)",
            self.ch as u32,
            describe(self.ch),
            self.char_index,
            self.byte_index
        )
    }
}

/// The first character of `s` that must not reach a terminal as itself,
/// other than those in `allowed` (e.g. newline and tab in a command).
pub fn first_unprintable(s: &str, allowed: &[char]) -> Option<Unprintable> {
    s.char_indices()
        .enumerate()
        .find(|(_, (_, c))| is_unprintable(*c) && !allowed.contains(c))
        .map(|(char_index, (byte_index, ch))| Unprintable {
            ch,
            char_index,
            byte_index,
        })
}

/// A character of a multi-line text that a reviewer should know about:
/// shown as an escape, or not ASCII (a look-alike letter, a combining mark).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Notable {
    pub ch: char,
    /// From 1.
    pub line: usize,
    /// In characters, from 1.
    pub column: usize,
    /// From 0.
    pub byte: usize,
    pub escaped: bool,
}

impl fmt::Display for Notable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.escaped {
            write_escape(f, self.ch)?;
        } else {
            write!(f, "'{}'", self.ch)?;
        }
        write!(
            f,
            " U+{:04X} at {}:{} byte {}",
            self.ch as u32, self.line, self.column, self.byte
        )
    }
}

/// Every escaped or non-ASCII character of `s`, whose lines are split at
/// `\n` (the line breaks themselves are not listed).
pub fn notable_chars(s: &str) -> Vec<Notable> {
    let (mut line, mut column) = (1, 0);
    let mut out = Vec::new();
    for (byte, ch) in s.char_indices() {
        if ch == '\n' {
            line += 1;
            column = 0;
            continue;
        }
        column += 1;
        let escaped = escaped_in_command(ch);
        if escaped || !ch.is_ascii() {
            out.push(Notable {
                ch,
                line,
                column,
                byte,
                escaped,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests;
