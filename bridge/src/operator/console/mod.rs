//! `bridge console`: the operator's full-screen view of every conversation,
//! its participants and messages, the proposals waiting for a human and the
//! jobs that ran, with approval in two keystrokes (`a`, then `y`) and none
//! of the four stages weakened: stage 1 is the operator's `YOLO_MODE=1`,
//! stages 2-3 (phrase, one-time code) are typed into the console (`e`), and
//! stage 4 is the CLI's approve screen, where only `y` approves. The token
//! is minted and spent in one transaction, so nobody ever holds it.
//!
//! Live: the panes are read again on every commit to the database, from any
//! process (the long polls' wake-ups), and once a second for the clocks. A
//! new proposal rings the bell (and, with `--notify osc9`, sends a desktop
//! notification whose text is fixed and never agent text).
//!
//! The console starts no process; the runner picks queued jobs up as it
//! does for `execute_command`. Bracketed paste is turned on so that pasted
//! text arrives as one paste, which is ignored, never as keystrokes.

mod app;
mod forms;
mod view;

use std::io::{BufWriter, Stdout, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Args, ValueEnum};
use ratatui::Terminal;
use ratatui::backend::CrosstermBackend;
use ratatui::crossterm::event::{self, Event, KeyEventKind};
use ratatui::crossterm::execute;

use app::{Action, App, Screen};
use bridge_state::audit;
use bridge_state::auth::ServerSecret;
use bridge_state::clock::{Clock, SystemClock, rfc3339};
use bridge_state::config::Settings as BridgeSettings;
use bridge_state::console;
use bridge_state::store::Db;
use bridge_state::wake::Wake;
use bridge_state::yolo;

use crate::operator::{guard, load_policy, yolo::refuse};
use crate::untrusted::Escaped;

/// Reads that follow a commit this soon after the last one wait for it: a
/// busy bridge commits hundreds of times a second, and a screen does not
/// need to be redrawn that often.
const SETTLE: Duration = Duration::from_millis(20);

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Notify {
    /// Also send an OSC 9 desktop notification: "proposal waiting in CONV"
    Osc9,
}

#[derive(Debug, Args)]
pub struct ConsoleArgs {
    /// Read-only: watch conversations and proposals; works with YOLO off
    #[arg(long)]
    pub watch: bool,
    /// Besides the bell, notify the desktop when a proposal arrives
    #[arg(long, value_enum)]
    pub notify: Option<Notify>,
    /// Extra command-policy rules, as given to `bridge serve --policy`
    #[arg(long, env = "BRIDGE_POLICY")]
    pub policy: Option<PathBuf>,
}

pub async fn run(args: ConsoleArgs, s: &BridgeSettings) -> anyhow::Result<()> {
    let db = Db::open(&s.db, s.sync)?;
    if !args.watch
        && let Err(e) = guard::require_operator_env()
    {
        return Err(refuse(&db, s, None, "console", &e));
    }
    if let Err(e) = guard::require_terminal("console") {
        return Err(refuse(&db, s, None, "console", &e));
    }
    let policy = load_policy(args.policy.as_deref())?;
    let secret = ServerSecret::load_or_create(&ServerSecret::path_for_db(&s.db))
        .context("loading the server secret")?;
    let wake = Wake::watching(&s.db);
    // ratatui's set-up (raw mode, alternate screen, a panic hook that
    // restores the terminal), then a terminal whose frames leave in one
    // write: through plain stdout (a 1 KiB line buffer) a frame went out in
    // pieces, and a terminal showed the half-drawn frames in between.
    drop(ratatui::try_init().context("setting up the terminal")?);
    #[allow(clippy::disallowed_methods)] // ratatui's frames; view.rs escapes every agent text
    let out = std::io::stdout();
    let mut term = Terminal::new(CrosstermBackend::new(BufWriter::with_capacity(
        FRAME_BUFFER,
        out,
    )))?;
    execute!(
        term.backend_mut(),
        ratatui::crossterm::event::EnableBracketedPaste
    )?;
    let size = term.size()?;
    let mut console = Console {
        app: App::new(args.watch, (size.width, size.height)),
        db,
        s,
        policy,
        secret,
        wake,
        notify: args.notify,
    };
    let result = console.event_loop(&mut term).await;
    let _ = execute!(
        term.backend_mut(),
        ratatui::crossterm::event::DisableBracketedPaste
    );
    ratatui::restore();
    result
}

/// The console's terminal: stdout behind a buffer that holds a whole frame.
type Term = Terminal<CrosstermBackend<BufWriter<Stdout>>>;

/// Big enough for a full frame of a large window with styles.
const FRAME_BUFFER: usize = 1 << 18;

struct Console<'a> {
    app: App,
    db: Db,
    s: &'a BridgeSettings,
    policy: bridge_state::policy::Policy,
    secret: ServerSecret,
    wake: Wake,
    notify: Option<Notify>,
}

impl Console<'_> {
    async fn event_loop(&mut self, term: &mut Term) -> anyhow::Result<()> {
        let (keys_tx, mut keys) = tokio::sync::mpsc::channel::<Event>(64);
        // crossterm's read blocks; it gets a thread of its own. It ends with
        // the process.
        std::thread::spawn(move || {
            while let Ok(ev) = event::read() {
                if keys_tx.blocking_send(ev).is_err() {
                    break;
                }
            }
        });
        let (verified_tx, mut verified) = tokio::sync::mpsc::channel::<String>(1);
        let mut changes = self.wake.subscribe();
        let mut clock = tokio::time::interval(Duration::from_secs(1));
        clock.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_read = Instant::now() - SETTLE;
        let mut due: Option<tokio::time::Instant> = None;
        self.reload(term)?;
        loop {
            term.draw(|f| view::draw(f, &self.app, &self.policy))?;
            let settle = async {
                match due {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                ev = keys.recv() => {
                    let Some(ev) = ev else { return Ok(()) };
                    match ev {
                        Event::Key(k) if k.kind == KeyEventKind::Press => {
                            let shown = self.app.conversation.clone();
                            let action = self.app.key(k, Instant::now());
                            if self.act(action, term, &verified_tx).await? {
                                return Ok(());
                            }
                            if self.app.conversation != shown {
                                // Another conversation's messages.
                                self.reload(term)?;
                                last_read = Instant::now();
                            }
                        }
                        Event::Resize(w, h) => self.app.resize((w, h), Instant::now()),
                        Event::Paste(_) => {
                            self.app.status = "pasted text ignored: type keys one by one".into();
                        }
                        _ => {}
                    }
                }
                r = changes.changed() => {
                    if r.is_err() {
                        continue;
                    }
                    changes.borrow_and_update();
                    if last_read.elapsed() >= SETTLE {
                        self.reload(term)?;
                        last_read = Instant::now();
                    } else if due.is_none() {
                        due = Some(tokio::time::Instant::from_std(last_read + SETTLE));
                    }
                }
                () = settle => {
                    due = None;
                    self.reload(term)?;
                    last_read = Instant::now();
                }
                _ = clock.tick() => {
                    self.reload(term)?;
                    last_read = Instant::now();
                }
                line = verified.recv() => {
                    self.app.verifying = false;
                    self.app.audit = line;
                }
            }
        }
    }

    /// Reads a new snapshot; rings for proposals that were not there before.
    fn reload(&mut self, term: &mut Term) -> anyhow::Result<()> {
        let selected = self.app.conversation.clone();
        let now = SystemClock.now_ms();
        let snap = self
            .db
            .call_blocking(|c| console::snapshot(c, selected.as_deref(), now))?;
        let selected_before = self.app.conversation.clone();
        let arrived = self.app.apply(snap);
        if self.app.conversation != selected_before {
            // The selection fell back to another conversation: read its
            // messages now rather than at the next commit.
            let selected = self.app.conversation.clone();
            let snap = self
                .db
                .call_blocking(|c| console::snapshot(c, selected.as_deref(), now))?;
            self.app.apply(snap);
        }
        if let Some(conv) = arrived.first() {
            let out = term.backend_mut();
            out.write_all(b"\x07")?;
            if self.notify == Some(Notify::Osc9) {
                // Fixed text; a conversation id is ours (`conv_` and hex),
                // anything else is not repeated.
                let id_ok = conv.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
                let conv = if id_ok {
                    conv.as_str()
                } else {
                    "a conversation"
                };
                write!(out, "\x1b]9;proposal waiting in {conv}\x07")?;
            }
            out.flush()?;
        }
        Ok(())
    }

    /// Carries out what a key asked for. Returns true to quit.
    async fn act(
        &mut self,
        action: Action,
        term: &mut Term,
        verified: &tokio::sync::mpsc::Sender<String>,
    ) -> anyhow::Result<bool> {
        let now = SystemClock.now_ms();
        let red = self.s.redactor.clone();
        let approver = guard::approver();
        let outcome: Result<String, anyhow::Error> = match action {
            Action::None => return Ok(false),
            Action::Quit => return Ok(true),
            Action::ApproveRun(p, remember) => {
                let (secret, policy) = (&self.secret, &self.policy);
                self.db
                    .call_blocking(|c| {
                        yolo::approve_and_run(
                            c, secret, &red, policy, &p.id, &p.hash, &approver, remember, now,
                        )
                    })
                    .map(|rule| {
                        let rule = rule
                            .map(|r| format!("; rule {r} approves this exact command here until YOLO ends (`bridge yolo rules`)"))
                            .unwrap_or_default();
                        format!(
                            "approved and queued {}; its result reaches every participant as a command_result message{rule}",
                            Escaped(&p.id)
                        )
                    })
                    .map_err(|e| refuse(&self.db, self.s, Some(&p.conversation_id), "approve", &e))
            }
            Action::ApproveToken(p) => {
                let secret = &self.secret;
                let ttl = yolo::DEFAULT_APPROVAL_TTL_SECS;
                match self.db.call_blocking(|c| {
                    yolo::approve(c, secret, &red, &p.id, &p.hash, ttl, &approver, now)
                }) {
                    Ok((token, expires)) => {
                        self.app.screen = Screen::Token {
                            proposal: p.id.clone(),
                            token,
                            expires_at: rfc3339(expires),
                        };
                        Ok(format!("approved {}; token shown once", Escaped(&p.id)))
                    }
                    Err(e) => Err(refuse(
                        &self.db,
                        self.s,
                        Some(&p.conversation_id),
                        "approve",
                        &e,
                    )),
                }
            }
            Action::Reject { proposal, reason } => self
                .db
                .call_blocking(|c| yolo::reject(c, &red, &proposal, reason.as_deref(), now))
                .map(|()| {
                    format!(
                        "rejected {}; every participant was told",
                        Escaped(&proposal)
                    )
                })
                .map_err(Into::into),
            Action::Disable(conv) => self
                .db
                .call_blocking(|c| yolo::disable(c, &red, &conv, now))
                .map(|n| {
                    if n == 0 {
                        format!("YOLO was not enabled for {}", Escaped(&conv))
                    } else {
                        format!("YOLO disabled for {}", Escaped(&conv))
                    }
                })
                .map_err(Into::into),
            Action::Enable(en) => {
                let for_ms = forms::ENABLE_FOR.as_millis() as i64;
                self.db
                    .call_blocking(|c| {
                        yolo::enable(c, &red, &en.conversation, &en.settings, for_ms, now)
                    })
                    .map(|e| {
                        format!(
                            "YOLO enabled for {} in {} mode until {}",
                            Escaped(&e.conversation_id),
                            e.settings.mode.as_str(),
                            e.expires_at
                        )
                    })
                    .map_err(|e| refuse(&self.db, self.s, Some(&en.conversation), "enable", &e))
            }
            Action::RefuseEnable { conversation, why } => Err(refuse(
                &self.db,
                self.s,
                Some(&conversation),
                "enable",
                &why,
            )),
            Action::Verify => {
                // A million-row chain takes seconds: off the UI's thread,
                // on a connection of its own.
                let (path, sync, tx) = (self.s.db.clone(), self.s.sync, verified.clone());
                tokio::task::spawn_blocking(move || {
                    let line = match Db::open(&path, sync)
                        .map_err(anyhow::Error::from)
                        .and_then(|db| Ok(db.call_blocking(|c| audit::verify(c))?))
                    {
                        Ok(v) => match v.first_break {
                            None => format!(
                                "audit: {} rows verified, chain intact, head {}",
                                v.rows, v.head_hash
                            ),
                            Some(b) => {
                                format!("audit: BROKEN at row {}: {}", b.id, Escaped(&b.reason))
                            }
                        },
                        Err(e) => format!("audit verify failed: {}", Escaped(&e.to_string())),
                    };
                    let _ = tx.blocking_send(line);
                });
                return Ok(false);
            }
        };
        self.app.status = match outcome {
            Ok(line) => line,
            Err(e) => format!("refused: {}", Escaped(&format!("{e:#}"))),
        };
        self.wake.notify();
        self.reload(term)?;
        Ok(false)
    }
}
