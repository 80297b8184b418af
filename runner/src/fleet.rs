//! The runner's Docker engines: where each job goes, and which engines
//! answer.
//!
//! Each configured engine is a [`Member`] with its own slots
//! (`max_parallel`) and its own warm pool. A claimed job is placed on an
//! engine that is up, has a free slot and, for a job that mounts a
//! workspace, shares this host's filesystem (`local`); among those, one
//! holding a warm container for the job's configuration wins, then the
//! least loaded. A slot is a [`Placed`], freed when dropped.
//!
//! An engine that stops answering (a failed ping, or a job's engine error
//! confirmed by a ping) is marked down: nothing is placed on it, its pool
//! is emptied, and it is pinged again after 1 s, 2 s, 4 s ... up to 30 s.
//! The runner writes each engine's state to the database
//! (`bridge_state::engines`), where the operator sees it. A job is never
//! moved to another engine once placed: a job whose engine was lost fails
//! with the reason, as one whose runner crashed does.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bridge_state::clock::{Clock, Millis};
use bridge_state::engines::{EngineConfig, Report};
use bridge_state::jobs::Workspaces;
use bridge_state::redact::{Redacted, Redactor};
use bridge_state::yolo::ExecParams;
use tokio::time::Instant;

use crate::engine::SharedEngine;
use crate::engine::docker::{ConnectError, DockerEngine};
use crate::pool::Pool;

/// The first retry of a down engine; each failure doubles it.
pub const FIRST_RETRY: Duration = Duration::from_secs(1);
/// The longest wait between retries of a down engine.
pub const MAX_RETRY: Duration = Duration::from_secs(30);
/// A ping slower than this counts as no answer.
pub const PING_TIMEOUT: Duration = Duration::from_secs(3);

/// One configured engine, its pool and its slots.
pub struct Member {
    pub name: String,
    /// Shares this host's filesystem: may bind-mount workspaces.
    pub local: bool,
    pub max_parallel: usize,
    /// The URL as shown to the operator (redacted).
    endpoint: Redacted,
    pub engine: SharedEngine,
    pub pool: Arc<Pool>,
    running: AtomicUsize,
    health: Mutex<Health>,
}

#[derive(Debug, Clone)]
struct Health {
    up: bool,
    /// When it last went up or down (wall clock, for the operator).
    since: Millis,
    /// Why it is down.
    error: Option<Redacted>,
    retry_at: Instant,
    backoff: Duration,
    /// It came back up and its own leftovers were not swept yet.
    came_back: bool,
}

impl Member {
    /// `up` is what connecting found: `Err(why)` starts it down.
    pub fn new(
        config: &EngineConfig,
        max_parallel: usize,
        engine: SharedEngine,
        pool: Arc<Pool>,
        up: Result<(), String>,
        red: &Redactor,
        now: Millis,
    ) -> Self {
        let error = up.err().map(|e| red.redacted(&e));
        Self {
            name: config.name.clone(),
            local: config.is_local(),
            max_parallel,
            endpoint: red.redacted(&config.url),
            engine,
            pool,
            running: AtomicUsize::new(0),
            health: Mutex::new(Health {
                up: error.is_none(),
                since: now,
                error,
                retry_at: Instant::now() + FIRST_RETRY,
                backoff: FIRST_RETRY,
                came_back: false,
            }),
        }
    }

    fn health(&self) -> std::sync::MutexGuard<'_, Health> {
        self.health.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn is_up(&self) -> bool {
        self.health().up
    }

    pub fn running(&self) -> usize {
        self.running.load(Ordering::SeqCst)
    }

    fn has_room(&self) -> bool {
        self.is_up() && self.running() < self.max_parallel
    }

    /// Whether the sweep should also remove this runner's own unheld
    /// containers here (once, after the engine came back).
    pub fn take_came_back(&self) -> bool {
        std::mem::take(&mut self.health().came_back)
    }

    /// Records a ping's answer; true when the state changed.
    fn record(&self, answer: Result<(), String>, red: &Redactor, now: Millis) -> bool {
        let mut h = self.health();
        match answer {
            Ok(()) => {
                let changed = !h.up;
                if changed {
                    tracing::info!(engine = %self.name, "Docker engine answers again");
                    *h = Health {
                        up: true,
                        since: now,
                        error: None,
                        retry_at: Instant::now(),
                        backoff: FIRST_RETRY,
                        came_back: true,
                    };
                }
                changed
            }
            Err(why) => {
                let why = red.redacted(&crate::engine::bounded(&red.redact(&why)));
                let changed = h.up;
                if changed {
                    tracing::warn!(engine = %self.name, error = %why.as_str(), "Docker engine is down; placing no jobs on it");
                    h.up = false;
                    h.since = now;
                    h.backoff = FIRST_RETRY;
                } else {
                    h.backoff = (h.backoff * 2).min(MAX_RETRY);
                }
                h.retry_at = Instant::now() + h.backoff;
                h.error = Some(why);
                changed
            }
        }
    }

    fn report(&self, clock: &dyn Clock) -> Report {
        let h = self.health().clone();
        let until_retry = h.retry_at.saturating_duration_since(Instant::now());
        Report {
            name: self.name.clone(),
            endpoint: self.endpoint.clone(),
            local: self.local,
            up: h.up,
            since: h.since,
            error: h.error,
            next_retry_at: (!h.up)
                .then(|| clock.now_ms() + i64::try_from(until_retry.as_millis()).unwrap_or(0)),
            running: self.running(),
            max_parallel: self.max_parallel,
            warm: self.pool.warm_count(),
        }
    }
}

/// A slot on one engine, held by one job; freed when dropped.
pub struct Placed {
    pub member: Arc<Member>,
}

impl Drop for Placed {
    fn drop(&mut self) {
        self.member.running.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Every engine of one runner.
pub struct Fleet {
    members: Vec<Arc<Member>>,
    red: Redactor,
    clock: Arc<dyn Clock>,
}

impl Fleet {
    pub fn new(members: Vec<Arc<Member>>, red: Redactor, clock: Arc<dyn Clock>) -> Self {
        Self {
            members,
            red,
            clock,
        }
    }

    pub fn members(&self) -> &[Arc<Member>] {
        &self.members
    }

    /// Some engine is up with a free slot: a job may be claimed.
    pub fn has_room(&self) -> bool {
        self.members.iter().any(|m| m.has_room())
    }

    /// Whether a job that mounts a workspace could be placed now.
    pub fn workspaces(&self) -> Workspaces {
        let mut local = self.members.iter().filter(|m| m.local).peekable();
        if local.peek().is_none() {
            Workspaces::NoLocalEngine
        } else if local.any(|m| m.has_room()) {
            Workspaces::Accepted
        } else {
            Workspaces::Busy
        }
    }

    /// Reserves a slot for a job with `p`: on an engine that is up, has
    /// room and may mount its workspace; one with a warm container for it
    /// first, then the least loaded, then the first configured.
    pub fn place(&self, p: &ExecParams) -> Option<Placed> {
        let member = self
            .members
            .iter()
            .filter(|m| m.has_room() && (p.workspace.is_none() || m.local))
            .min_by_key(|m| {
                let cold = !m.pool.has_warm(p);
                // Load as a fraction of the engine's slots, in thousandths.
                let load = m.running() * 1000 / m.max_parallel.max(1);
                (cold, load)
            })?
            .clone();
        member.running.fetch_add(1, Ordering::SeqCst);
        Some(Placed { member })
    }

    /// Pings `m` now and records the answer; true when its state changed.
    pub async fn check(&self, m: &Member) -> bool {
        let answer = match tokio::time::timeout(PING_TIMEOUT, m.engine.ping()).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(format!("ping failed: {}", crate::engine::describe(&e))),
            Err(_) => Err(format!(
                "no answer to ping within {} s",
                PING_TIMEOUT.as_secs()
            )),
        };
        m.record(answer, &self.red, self.clock.now_ms())
    }

    /// Pings every engine that is up, or down and due for a retry; true
    /// when some engine's state changed.
    pub async fn probe(&self, include_up: bool) -> bool {
        let due: Vec<&Arc<Member>> = self
            .members
            .iter()
            .filter(|m| {
                let h = m.health();
                if h.up {
                    include_up
                } else {
                    Instant::now() >= h.retry_at
                }
            })
            .collect();
        let answers = futures_util::future::join_all(due.iter().map(|m| self.check(m))).await;
        answers.into_iter().any(|changed| changed)
    }

    /// What to write to the database about every engine.
    pub fn reports(&self) -> Vec<Report> {
        self.members
            .iter()
            .map(|m| m.report(&*self.clock))
            .collect()
    }
}

/// One configured engine as connecting found it.
pub struct Connected {
    pub config: EngineConfig,
    pub engine: SharedEngine,
    /// `Err(why)`: it did not answer; it starts down and is retried.
    pub up: Result<(), String>,
}

/// Connects to every configured engine. A client that cannot be built (an
/// unreadable certificate) stops the runner; an engine that does not answer
/// starts down, unless none answers: then the first one's error stops it.
pub async fn connect(configs: &[EngineConfig]) -> Result<Vec<Connected>, ConnectError> {
    let mut out = Vec::new();
    let mut first_error = None;
    for config in configs {
        let transport = config.transport().map_err(ConnectError::Config)?;
        let opened = DockerEngine::open(&transport)?;
        let answer = tokio::time::timeout(PING_TIMEOUT * 2, opened.clone().negotiate()).await;
        let (engine, up) = match answer {
            Ok(Ok(engine)) => (engine, Ok(())),
            Ok(Err(e)) => {
                let why = e.to_string();
                first_error.get_or_insert(e);
                (opened, Err(why))
            }
            Err(_) => {
                let why = format!("no answer within {} s", (PING_TIMEOUT * 2).as_secs());
                (opened, Err(why))
            }
        };
        if let Err(why) = &up {
            tracing::warn!(engine = %config.name, error = %why, "Docker engine does not answer; starting without it and retrying");
        }
        out.push(Connected {
            config: config.clone(),
            engine: Arc::new(engine),
            up,
        });
    }
    if out.iter().all(|c| c.up.is_err()) {
        return Err(first_error.unwrap_or(ConnectError::NoneAnswers));
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
