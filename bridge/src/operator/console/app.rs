//! The console's state and its keys, without a terminal: what is selected,
//! which screen is up, and what each key asks the event loop to do. The
//! rules that keep a stray keystroke from approving anything live here:
//! only `y` (or `t`) on the review screen approves, only once every row of
//! the review has been on screen, and never within [`KEY_GUARD`] of the
//! screen changing.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use super::forms::{Enabling, Input, Purpose};
use crate::operator::review::approve_rows;
use crate::untrusted::Escaped;
use bridge_state::console::Snapshot;
use bridge_state::yolo::{self, JobState, Proposal};

/// A key pressed this soon after the review screen changed (opened,
/// scrolled, resized) is ignored: it was meant for what was there before.
pub const KEY_GUARD: Duration = Duration::from_millis(300);
/// Rows the review screen keeps for its header and footer.
pub const REVIEW_CHROME: u16 = 2;
/// The smallest review screen: narrower, and review rows would not fit.
pub const REVIEW_MIN: (u16, u16) = (40, 6);
/// The smallest main screen.
pub const MAIN_MIN: (u16, u16) = (60, 12);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Focus {
    Conversations,
    Pending,
}

pub struct App {
    /// `--watch`: nothing can be changed from this console.
    pub watch: bool,
    pub snap: Option<Snapshot>,
    pub focus: Focus,
    pub conversation: Option<String>,
    pub proposal: Option<String>,
    pub screen: Screen,
    /// The last thing the console has to say (one line, never agent text
    /// unless escaped).
    pub status: String,
    /// Columns, rows.
    pub size: (u16, u16),
    /// Pending proposals already announced (bell, notification).
    announced: HashSet<String>,
    /// The last `audit verify`, as a line; `None` before the first.
    pub audit: Option<String>,
    pub verifying: bool,
}

pub enum Screen {
    Main,
    Review(Box<Review>),
    /// A token issued with `t`, shown once.
    Token {
        proposal: String,
        token: String,
        expires_at: String,
    },
    Input(Input),
    ConfirmDisable(String),
}

pub struct Review {
    pub proposal: Proposal,
    pub rows: Vec<String>,
    /// The first row shown.
    pub top: usize,
    pub changed_at: Instant,
    /// Every row has been on screen at least once.
    pub seen_end: bool,
}

/// What the event loop must do after a key.
pub enum Action {
    None,
    Quit,
    /// Approve and run; with `true`, also approve this exact command in
    /// this conversation from now on, while YOLO stays enabled.
    ApproveRun(Box<Proposal>, bool),
    ApproveToken(Box<Proposal>),
    Reject {
        proposal: String,
        reason: Option<String>,
    },
    Disable(String),
    Enable(Box<Enabling>),
    /// A wrong phrase or code: nothing is enabled, and the refusal is
    /// audited as on the CLI.
    RefuseEnable {
        conversation: String,
        why: crate::operator::guard::GuardError,
    },
    Verify,
}

impl App {
    pub fn new(watch: bool, size: (u16, u16)) -> Self {
        Self {
            watch,
            snap: None,
            focus: Focus::Pending,
            conversation: None,
            proposal: None,
            screen: Screen::Main,
            status: if watch {
                "watching (read-only): q quits".into()
            } else {
                "a review · r reject · e/d enable/disable YOLO · v verify audit · Tab pane · q quit"
                    .into()
            },
            size,
            announced: HashSet::new(),
            audit: None,
            verifying: false,
        }
    }

    /// Takes a new snapshot. Selections are kept by id, so nothing moves
    /// when proposals arrive; a selection that is gone falls back to the
    /// first row. Returns the conversations of proposals not seen before
    /// (the first snapshot announces nothing).
    pub fn apply(&mut self, snap: Snapshot) -> Vec<String> {
        let first = self.snap.is_none();
        let mut new = Vec::new();
        for p in &snap.pending {
            if self.announced.insert(p.id.clone()) && !first {
                new.push(p.conversation_id.clone());
            }
        }
        if !self
            .proposal
            .as_ref()
            .is_some_and(|id| snap.pending.iter().any(|p| &p.id == id))
        {
            self.proposal = snap.pending.first().map(|p| p.id.clone());
        }
        if !self.conversation.as_ref().is_some_and(|id| {
            snap.conversations
                .iter()
                .any(|c| &c.summary.conversation_id == id)
        }) {
            self.conversation = snap
                .conversations
                .iter()
                .rev()
                .find(|c| !c.summary.expired)
                .or(snap.conversations.last())
                .map(|c| c.summary.conversation_id.clone());
        }
        self.snap = Some(snap);
        new
    }

    pub fn selected_proposal(&self) -> Option<&Proposal> {
        let id = self.proposal.as_ref()?;
        self.snap.as_ref()?.pending.iter().find(|p| &p.id == id)
    }

    /// Rows of the review screen's viewport.
    pub fn review_height(&self) -> usize {
        usize::from(self.size.1.saturating_sub(REVIEW_CHROME)).max(1)
    }

    pub fn resize(&mut self, size: (u16, u16), now: Instant) {
        self.size = size;
        let width = usize::from(size.0.saturating_sub(1));
        let height = self.review_height();
        if let Screen::Review(r) = &mut self.screen {
            // Laid out again for the new width; what was seen is seen again.
            r.rows = approve_rows(&r.proposal, yolo::DEFAULT_APPROVAL_TTL_SECS, width);
            r.top = r.top.min(r.rows.len().saturating_sub(1));
            r.changed_at = now;
            r.seen_end = false;
            r.note_seen(height, size);
        }
    }

    pub fn key(&mut self, key: KeyEvent, now: Instant) -> Action {
        if key.modifiers.contains(KeyModifiers::CONTROL) && key.code == KeyCode::Char('c') {
            return Action::Quit;
        }
        match std::mem::replace(&mut self.screen, Screen::Main) {
            Screen::Main => self.main_key(key, now),
            Screen::Review(r) => self.review_key(r, key, now),
            Screen::Token { .. } => {
                // Any key closes it; the token is not shown again.
                self.status = "token closed; it is not shown again".into();
                Action::None
            }
            Screen::Input(i) => self.input_key(i, key),
            Screen::ConfirmDisable(conv) => {
                if key.code == KeyCode::Char('y') {
                    Action::Disable(conv)
                } else {
                    self.status = "YOLO left as it was".into();
                    Action::None
                }
            }
        }
    }

    fn main_key(&mut self, key: KeyEvent, now: Instant) -> Action {
        let code = key.code;
        match code {
            KeyCode::Char('q') => return Action::Quit,
            KeyCode::Tab | KeyCode::BackTab => {
                self.focus = match self.focus {
                    Focus::Conversations => Focus::Pending,
                    Focus::Pending => Focus::Conversations,
                };
            }
            KeyCode::Up | KeyCode::Char('k') => self.step(-1),
            KeyCode::Down | KeyCode::Char('j') => self.step(1),
            KeyCode::Char('v') => {
                if self.verifying {
                    self.status = "audit verify is already running".into();
                } else {
                    self.verifying = true;
                    self.status = "verifying the audit chain in the background…".into();
                    return Action::Verify;
                }
            }
            KeyCode::Char('a' | 'r' | 'e' | 'd') if self.watch => {
                self.status =
                    "read-only console (--watch): start `bridge console` without --watch to act"
                        .into();
            }
            KeyCode::Char('a') => self.open_review(now),
            KeyCode::Char('r') => match self.selected_proposal() {
                Some(p) => {
                    let id = p.id.clone();
                    self.screen = Screen::Input(Input {
                        prompt: format!(
                            "Reject {id}. Reason for the participants (optional), Enter to reject, Esc to cancel: "
                        ),
                        purpose: Purpose::RejectReason(id),
                        text: String::new(),
                    });
                }
                None => self.status = "no proposal selected".into(),
            },
            KeyCode::Char('d') => match self.conversation.clone() {
                Some(c) => self.screen = Screen::ConfirmDisable(c),
                None => self.status = "no conversation selected".into(),
            },
            KeyCode::Char('e') => match self.conversation.clone() {
                Some(c) => {
                    self.screen = Screen::Input(Input {
                        prompt: format!(
                            "Enable YOLO for {c}. Mode: safe, restricted or yolo (Enter for restricted): "
                        ),
                        purpose: Purpose::EnableMode(c),
                        text: String::new(),
                    });
                }
                None => self.status = "no conversation selected".into(),
            },
            _ => {}
        }
        Action::None
    }

    /// Moves the selection of the focused pane by one row.
    fn step(&mut self, by: isize) {
        let Some(snap) = &self.snap else { return };
        let (ids, current): (Vec<&String>, &mut Option<String>) = match self.focus {
            Focus::Pending => (
                snap.pending.iter().map(|p| &p.id).collect(),
                &mut self.proposal,
            ),
            Focus::Conversations => (
                snap.conversations
                    .iter()
                    .map(|c| &c.summary.conversation_id)
                    .collect(),
                &mut self.conversation,
            ),
        };
        if ids.is_empty() {
            return;
        }
        let at = current
            .as_ref()
            .and_then(|c| ids.iter().position(|i| *i == c))
            .unwrap_or(0) as isize;
        let next = (at + by).clamp(0, ids.len() as isize - 1) as usize;
        *current = Some(ids[next].clone());
    }

    fn open_review(&mut self, now: Instant) {
        let Some(p) = self.selected_proposal().cloned() else {
            self.status = "no proposal selected".into();
            return;
        };
        if p.state != JobState::Proposed {
            self.status = format!(
                "{} is already {}; it was approved with a token that is still unspent",
                Escaped(&p.id),
                p.state.as_str()
            );
            return;
        }
        if self.size.0 < REVIEW_MIN.0 || self.size.1 < REVIEW_MIN.1 {
            self.status = format!(
                "the terminal is too small to review ({}x{}; at least {}x{})",
                self.size.0, self.size.1, REVIEW_MIN.0, REVIEW_MIN.1
            );
            return;
        }
        let width = usize::from(self.size.0.saturating_sub(1));
        let rows = approve_rows(&p, yolo::DEFAULT_APPROVAL_TTL_SECS, width);
        let mut r = Review {
            proposal: p,
            rows,
            top: 0,
            changed_at: now,
            seen_end: false,
        };
        r.note_seen(self.review_height(), self.size);
        self.status.clear();
        self.screen = Screen::Review(Box::new(r));
    }

    fn review_key(&mut self, mut r: Box<Review>, key: KeyEvent, now: Instant) -> Action {
        let height = self.review_height();
        let last_top = r.rows.len().saturating_sub(height);
        let scrolled = match key.code {
            KeyCode::Down | KeyCode::Char('j') => Some(r.top + 1),
            KeyCode::Up | KeyCode::Char('k') => Some(r.top.saturating_sub(1)),
            KeyCode::PageDown | KeyCode::Char(' ') => Some(r.top + height),
            KeyCode::PageUp => Some(r.top.saturating_sub(height)),
            KeyCode::Home => Some(0),
            KeyCode::End => Some(last_top),
            _ => None,
        };
        if let Some(top) = scrolled {
            let top = top.min(last_top);
            if top != r.top {
                r.top = top;
                r.changed_at = now;
                r.note_seen(height, self.size);
            }
            self.screen = Screen::Review(r);
            return Action::None;
        }
        match key.code {
            KeyCode::Esc | KeyCode::Char('n' | 'q') => {
                self.status = format!("{} not approved", Escaped(&r.proposal.id));
                Action::None
            }
            KeyCode::Char(c @ ('y' | 't' | 'A')) => {
                if !r.seen_end {
                    self.status = "scroll to the end of the review first (↓, PgDn or Space)".into();
                } else if now.duration_since(r.changed_at) < KEY_GUARD {
                    self.status = format!(
                        "`{c}` ignored: pressed within {} ms of the screen changing; press it again",
                        KEY_GUARD.as_millis()
                    );
                } else {
                    let p = Box::new(r.proposal.clone());
                    return match c {
                        'y' => Action::ApproveRun(p, false),
                        'A' => Action::ApproveRun(p, true),
                        _ => Action::ApproveToken(p),
                    };
                }
                self.screen = Screen::Review(r);
                Action::None
            }
            _ => {
                self.status =
                    "only y approves (and runs), t approves and shows a token; Esc goes back"
                        .into();
                self.screen = Screen::Review(r);
                Action::None
            }
        }
    }
}

impl Review {
    /// Marks the end as seen once the last row is inside the viewport (and
    /// the viewport is wide enough that no row is cut).
    fn note_seen(&mut self, height: usize, size: (u16, u16)) {
        if size.0 >= REVIEW_MIN.0 && size.1 >= REVIEW_MIN.1 && self.top + height >= self.rows.len()
        {
            self.seen_end = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bridge_state::policy::Mode as PolicyMode;
    use bridge_state::yolo::{Limits, Settings};
    use ratatui::crossterm::event::KeyEventKind;

    fn key(c: KeyCode) -> KeyEvent {
        KeyEvent {
            code: c,
            modifiers: KeyModifiers::NONE,
            kind: KeyEventKind::Press,
            state: ratatui::crossterm::event::KeyEventState::NONE,
        }
    }

    fn proposal(id: &str, command: &str) -> Proposal {
        let settings = Settings {
            mode: PolicyMode::Yolo,
            workspace: None,
            workspace_rw: false,
            image: "img:1".into(),
            runtime: None,
            timeout_secs: 30,
            limits: Limits::default(),
        };
        let params = yolo::ExecParams::from_settings(&settings, 30);
        let params_json = serde_json::to_string(&params).unwrap();
        Proposal {
            id: id.into(),
            conversation_id: "conv_1".into(),
            session_id: "a".into(),
            hash: yolo::proposal_hash(command, &params_json),
            command: command.into(),
            reason: None,
            params,
            params_json,
            state: JobState::Proposed,
            created_at: String::new(),
            result: None,
            failure: None,
        }
    }

    fn snap(pending: Vec<Proposal>) -> Snapshot {
        Snapshot {
            conversations: Vec::new(),
            pending,
            jobs: Vec::new(),
            messages: Vec::new(),
            pending_since: Default::default(),
            engines: Vec::new(),
            taken_at: 0,
        }
    }

    #[test]
    fn selection_stays_put_and_only_new_proposals_are_announced() {
        let mut app = App::new(false, (120, 40));
        assert!(app.apply(snap(vec![proposal("p1", "ls")])).is_empty());
        app.focus = Focus::Pending;
        assert_eq!(app.proposal.as_deref(), Some("p1"));
        let new = app.apply(snap(vec![proposal("p1", "ls"), proposal("p2", "pwd")]));
        assert_eq!(new, ["conv_1"]);
        assert_eq!(app.proposal.as_deref(), Some("p1"));
        app.step(1);
        assert_eq!(app.proposal.as_deref(), Some("p2"));
        // A third arrives: still p2, and p1, p2 are not announced again.
        let new = app.apply(snap(vec![
            proposal("p1", "ls"),
            proposal("p2", "pwd"),
            proposal("p3", "id"),
        ]));
        assert_eq!(new.len(), 1);
        assert_eq!(app.proposal.as_deref(), Some("p2"));
    }

    #[test]
    fn only_y_approves_and_never_too_soon_nor_before_the_end_was_seen() {
        let t0 = Instant::now();
        let long: String = (1..=60).map(|i| format!("echo {i}\n")).collect();
        let mut app = App::new(false, (100, 20));
        app.apply(snap(vec![proposal("p1", &long)]));
        app.open_review(t0);
        assert!(matches!(app.screen, Screen::Review(_)));
        let later = t0 + Duration::from_secs(1);
        // Enter, and y before the end was on screen: nothing.
        for k in [KeyCode::Enter, KeyCode::Char('y'), KeyCode::Char('Y')] {
            assert!(matches!(app.key(key(k), later), Action::None));
            assert!(matches!(app.screen, Screen::Review(_)));
        }
        // Scroll to the end; y right after the scroll is ignored.
        let at = later + Duration::from_millis(10);
        app.key(key(KeyCode::End), at);
        let Screen::Review(r) = &app.screen else {
            panic!("left the review")
        };
        assert!(r.seen_end);
        assert!(matches!(
            app.key(key(KeyCode::Char('y')), at + Duration::from_millis(299)),
            Action::None
        ));
        assert!(app.status.contains("ignored"), "{}", app.status);
        assert!(matches!(
            app.key(key(KeyCode::Char('y')), at + KEY_GUARD),
            Action::ApproveRun(_, false)
        ));
    }

    #[test]
    fn watch_mode_changes_nothing() {
        let mut app = App::new(true, (120, 40));
        app.apply(snap(vec![proposal("p1", "ls")]));
        for c in ['a', 'r', 'e', 'd'] {
            assert!(matches!(
                app.key(key(KeyCode::Char(c)), Instant::now()),
                Action::None
            ));
            assert!(matches!(app.screen, Screen::Main), "{c}");
        }
    }

    #[test]
    fn a_resize_shows_the_review_again_before_it_can_be_approved() {
        let t0 = Instant::now();
        let mut app = App::new(false, (120, 40));
        app.apply(snap(vec![proposal("p1", "ls")]));
        app.open_review(t0);
        app.resize((40, 6), t0 + Duration::from_secs(1));
        let Screen::Review(r) = &app.screen else {
            panic!("left the review")
        };
        assert!(!r.seen_end, "{} rows in a 4-row viewport", r.rows.len());
        assert!(matches!(
            app.key(key(KeyCode::Char('y')), t0 + Duration::from_secs(2)),
            Action::None
        ));
    }
}
