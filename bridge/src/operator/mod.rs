//! The operator face: what a person at a terminal runs against the
//! database (`bridge list/show/audit/cleanup/tokens`, `bridge yolo …`,
//! `bridge demo`), with the confirmations and the approve screen of YOLO
//! mode. It starts no process and serves no MCP.
//!
//! - [`commands`]: runs and renders the conversation and audit commands
//!   (their queries and changes are `bridge_state::conversations::operator`);
//! - [`yolo`]: runs and renders `bridge yolo …`;
//! - [`guard`]: the interactive confirmations; [`review`]: the approve screen;
//! - [`demo`]: the scripted two-session exchange.

use serde::Serialize;

use crate::untrusted::terminal;
use crate::untrusted::{escaped_shortened, json as safe_json};

pub mod commands;
pub mod demo;
pub mod guard;
pub mod review;
pub mod yolo;

/// Prints `value` as JSON (with unprintable characters as `\u` escapes) or
/// as the text `text` renders, through the one terminal writer.
pub(crate) fn emit<T: Serialize>(
    json: bool,
    value: &T,
    text: impl FnOnce() -> String,
) -> anyhow::Result<()> {
    if json {
        terminal::println(safe_json::to_string_pretty(value)?)?;
    } else {
        terminal::println(text())?;
    }
    Ok(())
}

/// A role the operator gives `bridge invite`: the rules agents' roles follow
/// (3-100 printable characters on one line).
pub(crate) fn check_role(role: &str) -> anyhow::Result<()> {
    let n = role.chars().count();
    if !(3..=100).contains(&n) {
        anyhow::bail!("the role must be 3 to 100 characters long (got {n})");
    }
    if let Some(bad) = crate::untrusted::first_unprintable(role, &[]) {
        anyhow::bail!("the role {bad}; use printable text on one line");
    }
    Ok(())
}

/// Every role on one line, each escaped (so none can forge another) and
/// shortened (intake caps them at 100 characters; older rows may not be).
pub(crate) fn roles(roles: &[String]) -> String {
    roles
        .iter()
        .map(|r| escaped_shortened(r, 100))
        .collect::<Vec<_>>()
        .join(" / ")
}

/// Widest roles cell `participants` shows before it falls back to a count.
const SHORT_ROLES: usize = 48;

/// A conversation's participants in one table cell: a pair's two roles (as
/// before teams), a team's roles when they are few and short, else how
/// many there are (`show` lists them all).
pub(crate) fn participants(all: &[String]) -> String {
    let joined = roles(all);
    let short =
        all.len() <= 3 && unicode_width::UnicodeWidthStr::width(joined.as_str()) <= SHORT_ROLES;
    if all.len() <= 2 || short {
        joined
    } else {
        format!("{} participants", all.len())
    }
}

/// A message's `files_involved` list on one line.
pub(crate) fn files(v: &serde_json::Value) -> String {
    match v.as_array() {
        Some(items) => items
            .iter()
            .map(|i| {
                i.as_str()
                    .map(str::to_owned)
                    .unwrap_or_else(|| i.to_string())
            })
            .collect::<Vec<_>>()
            .join(", "),
        None => String::new(),
    }
}
