//! Drawing the console. Every piece of agent text (roles, messages,
//! commands, reasons, output) passes through `untrusted` escaping before it
//! reaches a widget, exactly as in the CLI's tables; the review screen is the
//! CLI's approve screen (`review::approve_rows`), row for row.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Text};
use ratatui::widgets::{Block, Clear, List, ListItem, ListState, Paragraph};

use super::app::{App, Focus, MAIN_MIN, REVIEW_MIN, Review, Screen};
use crate::untrusted::{Escaped, command_shortened, escaped_shortened};
use bridge_state::clock::Millis;
use bridge_state::console::Snapshot;
use bridge_state::policy::{Policy, Verdict};

pub fn draw(frame: &mut Frame<'_>, app: &App, policy: &Policy) {
    let area = frame.area();
    match &app.screen {
        Screen::Review(r) => review(frame, area, app, r),
        Screen::Token {
            proposal,
            token,
            expires_at,
        } => {
            let text = vec![
                Line::from(format!("Approval token for {}:", Escaped(proposal))),
                Line::from(""),
                Line::from(token.clone()),
                Line::from(""),
                Line::from(format!(
                    "Single use, for this exact command only, valid until {}. Give it to the agent; it calls execute_command.",
                    Escaped(expires_at)
                )),
                Line::from("It is not stored and will not be shown again. Any key closes this."),
            ];
            frame.render_widget(
                Paragraph::new(text).wrap(ratatui::widgets::Wrap { trim: false }),
                area,
            );
        }
        _ => main(frame, area, app, policy),
    }
}

fn too_small(frame: &mut Frame<'_>, area: Rect, what: &str, min: (u16, u16)) {
    let text = format!(
        "too small: {}x{} for {what}, which needs at least {}x{}. Enlarge the window; nothing is hidden meanwhile. q quits.",
        area.width, area.height, min.0, min.1
    );
    frame.render_widget(
        Paragraph::new(text).wrap(ratatui::widgets::Wrap { trim: false }),
        area,
    );
}

fn main(frame: &mut Frame<'_>, area: Rect, app: &App, policy: &Policy) {
    if area.width < MAIN_MIN.0 || area.height < MAIN_MIN.1 {
        return too_small(frame, area, "the console", MAIN_MIN);
    }
    let [header, body, footer] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(0),
        Constraint::Length(2),
    ])
    .areas(area);
    let Some(snap) = &app.snap else {
        frame.render_widget(Paragraph::new("reading the database…"), body);
        return;
    };
    let live = snap
        .conversations
        .iter()
        .filter(|c| !c.summary.expired)
        .count();
    let enabled = snap
        .conversations
        .iter()
        .filter(|c| c.yolo.is_some())
        .count();
    let mode = if app.watch {
        "watching, read-only"
    } else {
        "operator"
    };
    frame.render_widget(
        Paragraph::new(format!(
            "bridge console ({mode}) · {live} live conversation(s) · YOLO on in {enabled} · {} proposal(s) waiting",
            snap.pending.len()
        ))
        .style(Style::new().add_modifier(Modifier::BOLD)),
        header,
    );
    let [left, right] =
        Layout::horizontal([Constraint::Percentage(45), Constraint::Percentage(55)]).areas(body);
    let [convs, msgs] =
        Layout::vertical([Constraint::Percentage(45), Constraint::Percentage(55)]).areas(left);
    let [pending, jobs] =
        Layout::vertical([Constraint::Percentage(50), Constraint::Percentage(50)]).areas(right);
    conversations(frame, convs, app, snap);
    messages(frame, msgs, app, snap);
    proposals(frame, pending, app, snap, policy);
    recent_jobs(frame, jobs, snap);
    let status = match &app.screen {
        Screen::Input(i) => format!("{}{}▏", i.prompt, Escaped(&i.text)),
        Screen::ConfirmDisable(c) => format!(
            "Disable YOLO for {} now? Pending proposals expire and queued jobs are cancelled. y disables, any other key keeps it.",
            Escaped(c)
        ),
        _ => app.status.clone(),
    };
    let audit = app.audit.clone().unwrap_or_default();
    frame.render_widget(Clear, footer);
    frame.render_widget(
        Paragraph::new(vec![Line::from(status), Line::from(audit)])
            .wrap(ratatui::widgets::Wrap { trim: false }),
        footer,
    );
}

fn pane(title: String, focused: bool) -> Block<'static> {
    let b = Block::bordered().title(title);
    if focused {
        b.border_style(Style::new().add_modifier(Modifier::BOLD))
    } else {
        b
    }
}

/// `42s`, `7m`, `3h`, `2d`.
pub fn span(ms: Millis) -> String {
    let s = (ms / 1000).max(0);
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m", s / 60),
        3600..86400 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86400),
    }
}

fn conversations(frame: &mut Frame<'_>, area: Rect, app: &App, snap: &Snapshot) {
    let width = usize::from(area.width.saturating_sub(2));
    let mut selected = None;
    let items: Vec<ListItem<'_>> = snap
        .conversations
        .iter()
        .enumerate()
        .map(|(i, c)| {
            if app.conversation.as_deref() == Some(&c.summary.conversation_id) {
                selected = Some(i);
            }
            let yolo = match &c.yolo {
                Some(en) => format!(
                    "YOLO {} {} left",
                    en.settings.mode.as_str(),
                    span(en.expires_at_ms - snap.taken_at)
                ),
                None => "YOLO off".into(),
            };
            let state = if c.summary.expired { "expired" } else { "live" };
            let mut lines = vec![Line::from(escaped_shortened(
                &format!(
                    "{} · {state} · {yolo} · {} msg, {} unread",
                    c.summary.conversation_id, c.summary.messages, c.summary.unread
                ),
                width,
            ))];
            for p in &c.participants {
                let who = &p.participant;
                let status = who.status.as_deref().unwrap_or("-");
                let beat = who
                    .last_heartbeat
                    .map(|b| format!("seen {} ago", span(snap.taken_at - b)))
                    .unwrap_or_else(|| "never seen".into());
                lines.push(Line::from(format!(
                    "  {} {} · {} · {} · {beat} · {} unread",
                    who.session_id,
                    escaped_shortened(&who.role, 30),
                    escaped_shortened(status, 12),
                    if p.alive { "alive" } else { "not alive" },
                    p.unread
                )));
            }
            ListItem::new(Text::from(lines))
        })
        .collect();
    let list = List::new(items)
        .block(pane(
            format!("Conversations ({})", snap.conversations.len()),
            app.focus == Focus::Conversations,
        ))
        .highlight_style(Style::new().add_modifier(Modifier::REVERSED));
    frame.render_stateful_widget(
        list,
        area,
        &mut ListState::default().with_selected(selected),
    );
}

fn messages(frame: &mut Frame<'_>, area: Rect, app: &App, snap: &Snapshot) {
    let width = usize::from(area.width.saturating_sub(2));
    let rows = usize::from(area.height.saturating_sub(2));
    let lines: Vec<Line<'_>> = snap
        .messages
        .iter()
        .rev()
        .take(rows)
        .rev()
        .map(|m| {
            let kind = m.action_type.as_deref().unwrap_or(&m.kind);
            Line::from(escaped_shortened(
                &format!(
                    "#{} {}→{} {}: {}",
                    m.id,
                    m.from,
                    m.to.join(","),
                    kind,
                    m.message
                ),
                width,
            ))
        })
        .collect();
    let title = match &app.conversation {
        Some(c) => format!("Messages of {}", Escaped(c)),
        None => "Messages".into(),
    };
    frame.render_widget(Paragraph::new(lines).block(pane(title, false)), area);
}

fn proposals(frame: &mut Frame<'_>, area: Rect, app: &App, snap: &Snapshot, policy: &Policy) {
    let width = usize::from(area.width.saturating_sub(2));
    let mut selected = None;
    let items: Vec<ListItem<'_>> = snap
        .pending
        .iter()
        .enumerate()
        .map(|(i, p)| {
            if app.proposal.as_deref() == Some(&p.id) {
                selected = Some(i);
            }
            let age = snap
                .pending_since
                .get(&p.id)
                .map(|t| span(snap.taken_at - t))
                .unwrap_or_default();
            let verdict = match policy.check(p.params.mode, &p.command) {
                Verdict::Blocked { rule, .. } => format!("blocked ({rule})"),
                _ => "allowed".into(),
            };
            let head = format!(
                "{} · {age} · session {} · {} · {verdict} · {}",
                p.id,
                p.session_id,
                p.params.mode.as_str(),
                p.state.as_str()
            );
            let lines = vec![
                Line::from(escaped_shortened(&head, width)),
                Line::from(format!(
                    "  $ {}",
                    command_shortened(&p.command, width.saturating_sub(4))
                )),
                Line::from(format!(
                    "  why: {}",
                    escaped_shortened(
                        p.reason.as_deref().unwrap_or("(no reason given)"),
                        width.saturating_sub(7)
                    )
                )),
            ];
            ListItem::new(Text::from(lines))
        })
        .collect();
    let list = List::new(items)
        .block(pane(
            format!("Pending proposals ({}) · a review", snap.pending.len()),
            app.focus == Focus::Pending,
        ))
        .highlight_style(Style::new().add_modifier(Modifier::REVERSED));
    frame.render_stateful_widget(
        list,
        area,
        &mut ListState::default().with_selected(selected),
    );
}

fn recent_jobs(frame: &mut Frame<'_>, area: Rect, snap: &Snapshot) {
    let width = usize::from(area.width.saturating_sub(2));
    // A down engine first, in bold: its jobs fail or wait until it is back.
    let down = snap.engines.iter().filter(|e| !e.up).map(|e| {
        let text = bridge_state::engines::summary(e, snap.taken_at);
        Line::from(escaped_shortened(&format!("engine {text}"), width))
            .style(Style::new().add_modifier(Modifier::BOLD))
    });
    let lines: Vec<Line<'_>> = down
        .chain(snap.jobs.iter().map(|p| {
            let outcome = match &p.result {
                Some(r) => {
                    let code = r
                        .exit_code
                        .map_or_else(|| "exit ?".to_owned(), |c| format!("exit {c}"));
                    // The output on one line, newlines escaped like the
                    // rest; the pane cuts it.
                    let out = if r.stdout.is_empty() {
                        &r.stderr
                    } else {
                        &r.stdout
                    };
                    format!("{code} · {} ms · {}", r.duration_ms, Escaped(out))
                }
                None => Escaped(p.failure.as_deref().unwrap_or("")).to_string(),
            };
            // The output first (what the operator is after), then the
            // command it came from.
            let head = format!("{} {} · {outcome}", p.id, p.state.as_str());
            let room = width.saturating_sub(head.chars().count() + 5);
            let line = if room > 8 {
                format!("{head} · $ {}", command_shortened(&p.command, room))
            } else {
                head
            };
            Line::from(escaped_shortened(&line, width))
        }))
        .collect();
    let mut title = "Jobs and results".to_owned();
    if !snap.engines.is_empty() {
        let states: Vec<String> = snap
            .engines
            .iter()
            .map(|e| format!("{} {}", Escaped(&e.name), if e.up { "up" } else { "DOWN" }))
            .collect();
        title = format!("{title} · engines: {}", states.join(", "));
    }
    frame.render_widget(Paragraph::new(lines).block(pane(title, false)), area);
}

fn review(frame: &mut Frame<'_>, area: Rect, app: &App, r: &Review) {
    if area.width < REVIEW_MIN.0 || area.height < REVIEW_MIN.1 {
        return too_small(frame, area, "the review", REVIEW_MIN);
    }
    let [header, body, footer] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(0),
        Constraint::Length(1),
    ])
    .areas(area);
    let height = app.review_height();
    let end = (r.top + height).min(r.rows.len());
    frame.render_widget(
        Paragraph::new(format!(
            "REVIEW rows {}-{end} of {} · ↑↓ PgUp PgDn scroll · Esc back",
            r.top + 1,
            r.rows.len()
        ))
        .style(Style::new().add_modifier(Modifier::BOLD)),
        header,
    );
    // Rows were laid out for this width by `approve_rows`: none is cut.
    let lines: Vec<Line<'_>> = r.rows[r.top..end]
        .iter()
        .map(|row| Line::from(row.as_str()))
        .collect();
    frame.render_widget(Paragraph::new(lines), body);
    let ask = if r.seen_end {
        "y approves and runs exactly this · t approves, shows a token · A: y, and always approve exactly this here while YOLO stays on · n declines"
    } else {
        "more below: scroll to the end before approving"
    };
    frame.render_widget(
        Paragraph::new(if app.status.is_empty() {
            ask.to_owned()
        } else {
            format!("{} · {ask}", app.status)
        })
        .style(Style::new().add_modifier(Modifier::BOLD)),
        footer,
    );
}
