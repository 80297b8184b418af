//! The console's one-line forms: a rejection's reason, and enabling YOLO
//! (mode, workspace, then stages 2 and 3: the typed phrase and the
//! one-time code, exactly as `bridge yolo enable` asks them).

use std::path::PathBuf;
use std::time::Duration;

use ratatui::crossterm::event::{KeyCode, KeyEvent};

use super::app::{Action, App, Screen};
use crate::operator::guard;
use crate::untrusted::Escaped;
use bridge_state::policy::Mode as PolicyMode;
use bridge_state::yolo::{self, Limits, Settings};

/// How long an enablement made in the console lasts.
pub const ENABLE_FOR: Duration = Duration::from_secs(yolo::DEFAULT_ENABLE_FOR_SECS);

pub struct Input {
    pub purpose: Purpose,
    pub prompt: String,
    pub text: String,
}

pub enum Purpose {
    RejectReason(String),
    EnableMode(String),
    EnableWorkspace {
        conversation: String,
        mode: PolicyMode,
    },
    EnablePhrase(Box<Enabling>),
    EnableCode {
        enabling: Box<Enabling>,
        code: String,
    },
}

pub struct Enabling {
    pub conversation: String,
    pub settings: Settings,
}

impl App {
    pub(super) fn input_key(&mut self, mut i: Input, key: KeyEvent) -> Action {
        match key.code {
            KeyCode::Esc => {
                self.status = "cancelled; nothing changed".into();
                Action::None
            }
            KeyCode::Backspace => {
                i.text.pop();
                self.screen = Screen::Input(i);
                Action::None
            }
            KeyCode::Char(c) if !c.is_control() && i.text.chars().count() < 500 => {
                i.text.push(c);
                self.screen = Screen::Input(i);
                Action::None
            }
            KeyCode::Enter => self.submit(i),
            _ => {
                self.screen = Screen::Input(i);
                Action::None
            }
        }
    }

    fn submit(&mut self, i: Input) -> Action {
        let text = i.text.trim().to_owned();
        match i.purpose {
            Purpose::RejectReason(proposal) => Action::Reject {
                proposal,
                reason: (!text.is_empty()).then_some(text),
            },
            Purpose::EnableMode(conversation) => {
                let mode = if text.is_empty() { "restricted" } else { &text };
                match PolicyMode::parse(mode) {
                    Ok(mode) => {
                        self.screen = Screen::Input(Input {
                            prompt: "Workspace: an absolute host directory mounted read-only at /workspace (Enter for none): ".into(),
                            purpose: Purpose::EnableWorkspace { conversation, mode },
                            text: String::new(),
                        });
                    }
                    Err(e) => self.status = format!("{e}; nothing enabled"),
                }
                Action::None
            }
            Purpose::EnableWorkspace { conversation, mode } => {
                let workspace = if text.is_empty() {
                    None
                } else {
                    match std::fs::canonicalize(PathBuf::from(&text)) {
                        Ok(p) if p.is_dir() => Some(p),
                        _ => {
                            self.status = format!(
                                "workspace {} is not an existing directory; nothing enabled",
                                Escaped(&text)
                            );
                            return Action::None;
                        }
                    }
                };
                let settings = Settings {
                    mode,
                    workspace,
                    workspace_rw: false,
                    image: yolo::DEFAULT_IMAGE.into(),
                    runtime: None,
                    timeout_secs: yolo::DEFAULT_TIMEOUT_SECS,
                    limits: Limits::default(),
                };
                self.screen = Screen::Input(Input {
                    prompt: format!("Type exactly `{}` to continue: ", guard::PHRASE),
                    purpose: Purpose::EnablePhrase(Box::new(Enabling {
                        conversation,
                        settings,
                    })),
                    text: String::new(),
                });
                Action::None
            }
            Purpose::EnablePhrase(enabling) => {
                if i.text != guard::PHRASE {
                    return Action::RefuseEnable {
                        conversation: enabling.conversation,
                        why: guard::GuardError::PhraseMismatch,
                    };
                }
                match guard::one_time_code() {
                    Ok(code) => {
                        self.screen = Screen::Input(Input {
                            prompt: format!("One-time code: {code}. Type it: "),
                            purpose: Purpose::EnableCode { enabling, code },
                            text: String::new(),
                        });
                    }
                    Err(e) => self.status = e.to_string(),
                }
                Action::None
            }
            Purpose::EnableCode { enabling, code } => {
                if text.eq_ignore_ascii_case(&code) {
                    Action::Enable(enabling)
                } else {
                    Action::RefuseEnable {
                        conversation: enabling.conversation,
                        why: guard::GuardError::CodeMismatch,
                    }
                }
            }
        }
    }
}
