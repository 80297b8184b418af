//! The operator face: what a person at a terminal runs against the
//! database (`bridge list/show/audit/cleanup/tokens`, `bridge yolo …`,
//! `bridge demo`), with the confirmations and the approve screen of YOLO
//! mode. It starts no process and serves no MCP.
//!
//! - [`commands`]: runs and renders the conversation and audit commands
//!   (their queries and changes are `bridge_state::conversations::operator`);
//! - [`yolo`]: runs and renders `bridge yolo …`;
//! - [`guard`]: the interactive confirmations; [`review`]: the approve screen;
//! - [`console`]: `bridge console`, the full-screen operator console;
//! - [`demo`]: the scripted two-session exchange.

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use serde::Serialize;

use crate::untrusted::terminal;
use crate::untrusted::{Escaped, escaped_shortened, json as safe_json};
use bridge_state::policy::Policy;
use bridge_state::store::Db;
use bridge_state::wake::{BACKSTOP, Wake};
use bridge_state::yolo::{self as state_yolo, JobState, Proposal};

pub mod commands;
pub mod console;
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

/// The command policy the operator side checks with: the built-in rules,
/// plus the file `bridge serve --policy` was given (pass the same one).
pub(crate) fn load_policy(file: Option<&Path>) -> anyhow::Result<Policy> {
    Ok(match file {
        Some(f) => Policy::with_file(f)
            .with_context(|| format!("loading the command policy {}", f.display()))?,
        None => Policy::builtin(),
    })
}

/// Waits until job `id` is final, or `wait` has passed; returns it as it
/// then is. Wakes on every commit to the database, whichever process made
/// it (the runner's result included).
pub(crate) async fn wait_final(
    db: &Db,
    wake: &Wake,
    id: &str,
    wait: Duration,
) -> anyhow::Result<Proposal> {
    let deadline = tokio::time::Instant::now() + wait;
    let mut changes = wake.subscribe();
    loop {
        changes.borrow_and_update();
        let id2 = id.to_owned();
        let p = db
            .call(move |c| {
                state_yolo::load_proposal(c, &id2)
                    .map_err(|e| bridge_state::store::StoreError::Join(e.to_string()))
            })
            .await?;
        let now = tokio::time::Instant::now();
        if p.state.is_final() || now >= deadline {
            return Ok(p);
        }
        tokio::select! {
            _ = changes.changed() => {}
            _ = tokio::time::sleep(deadline.saturating_duration_since(now).min(BACKSTOP)) => {}
        }
    }
}

/// A job's outcome as lines for the operator: state, exit code, duration,
/// then its output, every line escaped (it is whatever the command wrote).
pub(crate) fn result_lines(p: &Proposal) -> Vec<String> {
    let mut out = Vec::new();
    let Some(r) = p.result.as_ref().filter(|_| p.state.is_final()) else {
        out.push(match p.state {
            JobState::Failed => format!(
                "Job {} failed: {}",
                Escaped(&p.id),
                Escaped(p.failure.as_deref().unwrap_or("no reason recorded"))
            ),
            state => format!(
                "Job {} is {}; its result will reach every participant as a command_result message (`bridge show {}`).",
                Escaped(&p.id),
                state.as_str(),
                Escaped(&p.conversation_id)
            ),
        });
        return out;
    };
    let code = match (r.exit_code, &r.exit_code_unknown_reason) {
        (Some(c), _) => format!("exit code {c}"),
        (None, why) => format!(
            "exit status unknown ({})",
            Escaped(why.as_deref().unwrap_or("no reason recorded"))
        ),
    };
    out.push(format!(
        "Job {} {}: {code}, {} ms{}{}",
        Escaped(&p.id),
        p.state.as_str(),
        r.duration_ms,
        if r.timed_out { ", timed out" } else { "" },
        if r.truncated {
            ", output truncated"
        } else {
            ""
        },
    ));
    for (name, text) in [("stdout", &r.stdout), ("stderr", &r.stderr)] {
        if text.is_empty() {
            continue;
        }
        out.push(format!("--- {name} ---"));
        out.extend(text.lines().map(|l| Escaped(l).to_string()));
    }
    out
}
