//! Pre-started, single-use containers, so an approved command does not wait
//! for a container to start. Each container serves exactly one command and
//! is then destroyed; the pool refills in the background.
//!
//! The runner keeps warm containers for every configuration that some
//! conversation has YOLO enabled with, and none for anything else. A
//! container handed out is a [`Taken`], which removes it when dropped, so it
//! is destroyed on every path, errors and panics included.
//!
//! The pool adapts to demand. Each configuration keeps at least
//! [`Sizing::min`] warm containers (`--pool-size`). Demand is the number of
//! containers taken within one container start time (measured): that many
//! are consumed while one refill is under way, so that many must be warm.
//! The pool grows to the highest demand seen, up to [`Sizing::max`]
//! (`--max-parallel`), and shrinks back to the minimum once no such demand
//! was seen for [`Sizing::idle`]. A take that finds no warm container waits
//! for a start already in flight rather than starting another.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use bollard::container::AttachContainerResults;
use bridge_state::redact::Redactor;
use bridge_state::yolo::ExecParams;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::engine::SharedEngine;
use crate::sandbox::{self, HostPaths, Owner, SandboxError, Started, config_key};

mod slot;

#[cfg(test)]
use slot::REFILL_HOLD;
pub use slot::Sizing;
use slot::{Slot, Warm};

/// How often the refill loop looks again without being woken (retrying
/// broken slots, shrinking idle ones).
const TICK: Duration = Duration::from_secs(5);
/// Broken slots are retried this often (the image may have been built).
const RETRY_BROKEN: Duration = Duration::from_secs(30);

/// A container handed out for one command. Dropping it removes the
/// container in the background, off the critical path; shutdown
/// ([`Pool::drain`]) waits for the removal.
pub struct Taken {
    pub container: Started,
    /// It was pre-started (warm), not started for this command.
    pub warm: bool,
    /// Its attach stream, opened when it was pre-started, so handing the
    /// command over is one write on an open stream. In a mutex because a
    /// stream is `Send` but not `Sync`, and a `Taken` is borrowed across
    /// awaits.
    attached: Mutex<Option<AttachContainerResults>>,
    pool: Arc<Pool>,
    key: String,
}

impl std::fmt::Debug for Taken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Taken")
            .field("container", &self.container)
            .field("warm", &self.warm)
            .finish_non_exhaustive()
    }
}

impl Taken {
    /// The attach stream opened ahead of time, once.
    pub fn take_attached(&self) -> Option<AttachContainerResults> {
        self.attached
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
    }
}

impl Drop for Taken {
    fn drop(&mut self) {
        if let Some(s) = self.pool.lock().get_mut(&self.key) {
            s.in_use = s.in_use.saturating_sub(1);
        }
        // A held refill may go ahead now.
        self.pool.refill.notify_one();
        let (engine, id) = (self.pool.engine.clone(), self.container.id.clone());
        self.pool
            .tracker
            .spawn(async move { sandbox::remove(&*engine, &id).await });
    }
}

pub struct Pool {
    engine: SharedEngine,
    owner: Owner,
    host_paths: HostPaths,
    /// Start failures can quote the workspace path; logs get them redacted.
    red: Redactor,
    sizing: Sizing,
    slots: Mutex<HashMap<String, Slot>>,
    refill: Notify,
    /// A start finished (or failed): takes waiting for one look again.
    started: Notify,
    /// Container starts and removals in flight; shutdown waits for them.
    tracker: TaskTracker,
    closed: AtomicBool,
}

/// What a take found.
enum Found {
    Warm(Warm),
    /// A start is in flight that nobody else waits for.
    Wait,
    StartOwn,
}

impl Pool {
    pub fn new(
        engine: SharedEngine,
        owner: Owner,
        host_paths: HostPaths,
        red: Redactor,
        sizing: Sizing,
    ) -> Arc<Self> {
        Arc::new(Self {
            engine,
            owner,
            host_paths,
            red,
            sizing,
            slots: Mutex::new(HashMap::new()),
            refill: Notify::new(),
            started: Notify::new(),
            tracker: TaskTracker::new(),
            closed: AtomicBool::new(false),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Slot>> {
        self.slots.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A started container for these parameters: a warm one if there is
    /// one, else one already being started, else a freshly started one. It
    /// is removed when the [`Taken`] is dropped.
    pub async fn take(self: &Arc<Self>, p: &ExecParams) -> Result<Taken, SandboxError> {
        let key = config_key(p);
        let mut first = true;
        loop {
            let started = self.started.notified();
            tokio::pin!(started);
            // Registered before the slot is read: a start that finishes in
            // between still wakes this take.
            started.as_mut().enable();
            let found = {
                let mut slots = self.lock();
                match slots.get_mut(&key) {
                    None => Found::StartOwn,
                    Some(s) => {
                        if first {
                            s.note_take(Instant::now(), self.sizing.idle);
                        }
                        if s.warm.is_empty() && first {
                            // Ran dry: what the window counted was not
                            // enough. Double, as TCP does.
                            s.ran_dry(Instant::now(), self.sizing.max);
                        }
                        if let Some(c) = s.warm.pop_front() {
                            s.in_use += 1;
                            Found::Warm(c)
                        } else if !s.broken && s.starting > s.waiting {
                            s.waiting += 1;
                            Found::Wait
                        } else {
                            s.in_use += 1;
                            Found::StartOwn
                        }
                    }
                }
            };
            first = false;
            self.refill.notify_one();
            match found {
                Found::Warm(w) => {
                    let t = self.taken(w.container, true, key);
                    *t.attached.lock().unwrap_or_else(|e| e.into_inner()) = w.attached;
                    return Ok(t);
                }
                Found::Wait => {
                    started.await;
                    if let Some(s) = self.lock().get_mut(&key) {
                        s.waiting -= 1;
                    }
                }
                Found::StartOwn => {
                    let began = Instant::now();
                    let started =
                        sandbox::start_container(&*self.engine, p, &self.owner, &self.host_paths)
                            .await;
                    let mut slots = self.lock();
                    if let Some(s) = slots.get_mut(&key) {
                        match started {
                            Ok(_) => s.note_start_time(began.elapsed()),
                            Err(_) => s.in_use = s.in_use.saturating_sub(1),
                        }
                    }
                    drop(slots);
                    return Ok(self.taken(started?, false, key));
                }
            }
        }
    }

    fn taken(self: &Arc<Self>, container: Started, warm: bool, key: String) -> Taken {
        Taken {
            container,
            warm,
            attached: Mutex::new(None),
            pool: self.clone(),
            key,
        }
    }

    /// Sets the configurations to keep warm; containers of others are removed.
    pub async fn want(&self, configs: Vec<ExecParams>) {
        self.want_with_known(configs.into_iter().map(|p| (p, 0)).collect())
            .await;
    }

    /// Like [`Pool::want`], with the jobs already approved or queued for
    /// each configuration (kept warm, up to the maximum).
    pub async fn want_with_known(&self, configs: Vec<(ExecParams, usize)>) {
        let mut known: HashMap<String, usize> = HashMap::new();
        let mut wanted: HashMap<String, ExecParams> = HashMap::new();
        for (p, n) in configs {
            let key = config_key(&p);
            *known.entry(key.clone()).or_default() += n;
            wanted.insert(key, p);
        }
        let now = Instant::now();
        let dropped: Vec<Warm> = {
            let mut slots = self.lock();
            let mut dropped = Vec::new();
            slots.retain(|k, s| {
                let keep = wanted.contains_key(k);
                if !keep {
                    dropped.extend(s.warm.drain(..));
                }
                keep
            });
            for (k, p) in wanted {
                let n = known.get(&k).copied().unwrap_or(0);
                slots.entry(k).or_insert_with(|| Slot::new(p, now)).known = n;
            }
            dropped
        };
        // In the background: an engine that stopped answering must not
        // hold up the caller (the runner's loop) for a request timeout.
        for w in dropped {
            let engine = self.engine.clone();
            self.tracker
                .spawn(async move { sandbox::remove(&*engine, &w.container.id).await });
        }
        self.refill.notify_one();
    }

    /// Looks at the wanted configurations again now.
    pub fn wake_refill(&self) {
        self.refill.notify_one();
    }

    /// A warm container for `p` is ready now.
    pub fn has_warm(&self, p: &ExecParams) -> bool {
        self.lock()
            .get(&config_key(p))
            .is_some_and(|s| !s.warm.is_empty())
    }

    /// Warm containers of every configuration.
    pub fn warm_count(&self) -> usize {
        self.lock().values().map(|s| s.warm.len()).sum()
    }

    /// Keeps every wanted configuration at its target: grows it while
    /// demand is seen, shrinks it once demand has been gone for a while.
    pub async fn refill_loop(self: Arc<Self>, stop: CancellationToken) {
        let mut last_retry = Instant::now();
        loop {
            let now = Instant::now();
            let mut hold: Option<Instant> = None;
            let (todo, surplus) = {
                let mut slots = self.lock();
                let (mut todo, mut surplus) = (Vec::new(), Vec::new());
                for (k, s) in slots.iter_mut() {
                    let target = s.target(self.sizing, now);
                    if let Some(until) = s.hold_refill(now) {
                        hold = Some(hold.map_or(until, |h: Instant| h.min(until)));
                        continue;
                    }
                    while !s.broken && s.warm.len() + s.starting < target {
                        s.starting += 1;
                        todo.push((k.clone(), s.params.clone()));
                    }
                    // Shrink: the oldest warm containers go first.
                    while s.warm.len() > target {
                        surplus.extend(s.warm.pop_front());
                    }
                }
                (todo, surplus)
            };
            for w in surplus {
                let engine = self.engine.clone();
                self.tracker
                    .spawn(async move { sandbox::remove(&*engine, &w.container.id).await });
            }
            for (key, params) in todo {
                let this = self.clone();
                self.tracker
                    .spawn(async move { this.start_one(key, params).await });
            }
            let next = hold.unwrap_or_else(|| Instant::now() + TICK.min(self.sizing.idle));
            tokio::select! {
                _ = self.refill.notified() => {}
                _ = tokio::time::sleep_until(next) => {
                    if last_retry.elapsed() >= RETRY_BROKEN {
                        last_retry = Instant::now();
                        self.lock().values_mut().for_each(|s| s.broken = false);
                    }
                }
                _ = stop.cancelled() => return,
            }
        }
    }

    /// Starts one warm container for the slot `key`.
    async fn start_one(&self, key: String, params: ExecParams) {
        let began = Instant::now();
        let started =
            sandbox::start_container(&*self.engine, &params, &self.owner, &self.host_paths).await;
        let started = match started {
            Ok(c) => {
                // Attached now, off the critical path. Without a stream the
                // job attaches itself, as a freshly started one does.
                let attached = match self.engine.attach(&c.id).await {
                    Ok(a) => Some(a),
                    Err(e) => {
                        tracing::debug!(error = %e, "cannot attach to a warm container ahead of time");
                        None
                    }
                };
                Ok(Warm {
                    container: c,
                    attached,
                })
            }
            Err(e) => Err(e),
        };
        let orphan = {
            let mut slots = self.lock();
            let slot = if self.closed.load(Ordering::SeqCst) {
                None
            } else {
                slots.get_mut(&key)
            };
            match (slot, started) {
                (Some(slot), Ok(c)) => {
                    slot.starting -= 1;
                    slot.note_start_time(began.elapsed());
                    slot.warm.push_back(c);
                    None
                }
                (Some(slot), Err(e)) => {
                    slot.starting -= 1;
                    slot.broken = true;
                    let why = self.red.redacted(&e.to_string());
                    tracing::warn!(error = %why, "cannot pre-start a sandbox container; jobs will start their own");
                    None
                }
                // The configuration was dropped while starting.
                (None, Ok(w)) => Some(w.container),
                (None, Err(_)) => None,
            }
        };
        self.started.notify_waiters();
        if let Some(c) = orphan {
            sandbox::remove(&*self.engine, &c.id).await;
        }
    }

    /// Removes every warm container and waits for starts and removals in
    /// flight (shutdown).
    pub async fn drain(&self) {
        self.closed.store(true, Ordering::SeqCst);
        self.tracker.close();
        self.tracker.wait().await;
        let all: Vec<Warm> = {
            let mut slots = self.lock();
            slots.values_mut().flat_map(|s| s.warm.drain(..)).collect()
        };
        for w in all {
            sandbox::remove(&*self.engine, &w.container.id).await;
        }
    }

    /// Ids of the warm containers (so the sweeper leaves them alone).
    pub fn warm_ids(&self) -> Vec<String> {
        let slots = self.lock();
        slots
            .values()
            .flat_map(|s| s.warm.iter().map(|w| w.container.id.clone()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::fake::{Event, FakeEngine, Op, owner, params, settle};

    fn pool(fake: &Arc<FakeEngine>, size: usize) -> Arc<Pool> {
        Pool::new(
            Arc::new(fake.clone()),
            owner(),
            HostPaths::default(),
            Redactor::builtin(),
            Sizing::fixed(size),
        )
    }

    /// A pool of `size` with its refill loop running, wanting `params()`.
    async fn refilling(fake: &Arc<FakeEngine>, size: usize) -> (Arc<Pool>, CancellationToken) {
        let pool = pool(fake, size);
        let stop = CancellationToken::new();
        tokio::spawn(pool.clone().refill_loop(stop.clone()));
        pool.want(vec![params()]).await;
        (pool, stop)
    }

    fn created(fake: &FakeEngine) -> usize {
        fake.count(|e| matches!(e, Event::Create(_)))
    }

    #[tokio::test(start_paused = true)]
    async fn the_pool_refills_what_is_taken_and_removes_what_was_used() {
        let fake = FakeEngine::with_image("img");
        let (pool, stop) = refilling(&fake, 2).await;
        settle(|| pool.warm_ids().len() == 2).await;
        assert_eq!(created(&fake), 2);
        let warm = pool.warm_ids();

        let taken = pool.take(&params()).await.unwrap();
        assert!(taken.warm);
        assert_eq!(
            taken.container.id, warm[0],
            "the oldest warm container first"
        );
        // While the taken container runs its command and one warm one is
        // left, the refill waits a moment.
        settle(|| pool.warm_ids().len() == 1).await;
        assert_eq!(created(&fake), 2);
        tokio::time::sleep(REFILL_HOLD).await;
        settle(|| pool.warm_ids().len() == 2).await;
        assert_eq!(created(&fake), 3);
        assert!(!pool.warm_ids().contains(&taken.container.id));

        let id = taken.container.id.clone();
        drop(taken);
        settle(|| !fake.containers().contains(&id)).await;
        assert_eq!(fake.containers().len(), 2);
        stop.cancel();
    }

    #[tokio::test]
    async fn without_a_warm_container_one_is_started_for_the_job() {
        let fake = FakeEngine::with_image("img");
        let pool = pool(&fake, 0);
        let taken = pool.take(&params()).await.unwrap();
        assert!(!taken.warm);
        assert_eq!(created(&fake), 1);
        let id = taken.container.id.clone();
        drop(taken);
        pool.drain().await;
        assert_eq!(fake.events().last(), Some(&Event::Remove(id)));
        assert!(fake.containers().is_empty());
    }

    #[tokio::test]
    async fn a_configuration_no_longer_wanted_loses_its_warm_containers() {
        let fake = FakeEngine::with_image("img");
        let (pool, stop) = refilling(&fake, 2).await;
        settle(|| pool.warm_ids().len() == 2).await;
        pool.want(vec![]).await;
        assert!(pool.warm_ids().is_empty());
        // Removed in the background: a dead engine must not stall `want`.
        settle(|| fake.containers().is_empty()).await;
        stop.cancel();
    }

    #[tokio::test]
    async fn a_slot_whose_start_fails_is_not_retried_in_a_loop() {
        let fake = FakeEngine::with_image("img");
        fake.fail(Op::Start);
        let (pool, stop) = refilling(&fake, 2).await;
        // Both starts of the first round fail; each created container is removed.
        settle(|| fake.count(|e| matches!(e, Event::Remove(_))) == 2).await;
        // A take wakes the refill loop: the broken slot stays broken, and the
        // job's own start fails with the engine's error.
        assert!(pool.take(&params()).await.is_err());
        for _ in 0..100 {
            tokio::task::yield_now().await;
        }
        assert_eq!(created(&fake), 3);
        assert!(fake.containers().is_empty() && pool.warm_ids().is_empty());
        stop.cancel();
    }

    fn started(fake: &FakeEngine) -> usize {
        fake.count(|e| matches!(e, Event::Start(_)))
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_grows_the_pool_to_its_size_and_idleness_shrinks_it_back() {
        let fake = FakeEngine::with_image("img");
        fake.slow_start(Duration::from_millis(300));
        let sizing = Sizing {
            min: 1,
            max: 4,
            idle: Duration::from_secs(10),
        };
        let pool = Pool::new(
            Arc::new(fake.clone()),
            owner(),
            HostPaths::default(),
            Redactor::builtin(),
            sizing,
        );
        let stop = CancellationToken::new();
        tokio::spawn(pool.clone().refill_loop(stop.clone()));
        pool.want(vec![params()]).await;
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(pool.warm_ids().len(), 1, "the minimum, before any demand");

        // Six jobs at once: more than the maximum.
        let burst: Vec<_> = (0..6)
            .map(|_| {
                let pool = pool.clone();
                tokio::spawn(async move { pool.take(&params()).await.unwrap() })
            })
            .collect();
        let mut taken = Vec::new();
        for t in burst {
            taken.push(t.await.unwrap());
        }
        drop(taken);
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(
            pool.warm_ids().len(),
            4,
            "grown to the maximum while the demand is remembered"
        );
        // The next burst of four finds every container warm.
        let burst: Vec<_> = (0..4)
            .map(|_| {
                let pool = pool.clone();
                tokio::spawn(async move { pool.take(&params()).await.unwrap() })
            })
            .collect();
        for t in burst {
            assert!(t.await.unwrap().warm);
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(pool.warm_ids().len(), 4);

        // No demand for longer than `idle`: back to the minimum, and the
        // containers removed.
        tokio::time::sleep(Duration::from_secs(20)).await;
        assert_eq!(pool.warm_ids().len(), 1, "shrunk back after idling");
        settle(|| fake.containers().len() == 1).await;
        stop.cancel();
    }

    #[tokio::test(start_paused = true)]
    async fn back_to_back_takes_grow_the_pool_so_they_stay_warm() {
        let fake = FakeEngine::with_image("img");
        fake.slow_start(Duration::from_millis(300));
        let pool = Pool::new(
            Arc::new(fake.clone()),
            owner(),
            HostPaths::default(),
            Redactor::builtin(),
            Sizing {
                min: 1,
                max: 8,
                idle: Duration::from_secs(60),
            },
        );
        let stop = CancellationToken::new();
        tokio::spawn(pool.clone().refill_loop(stop.clone()));
        pool.want(vec![params()]).await;
        tokio::time::sleep(Duration::from_secs(1)).await;
        // One job every 50 ms: six per container start time. The first
        // few drain the pool of one; later ones find it grown.
        let mut waited = Vec::new();
        for _ in 0..40 {
            let began = Instant::now();
            let t = pool.take(&params()).await.unwrap();
            waited.push(began.elapsed());
            drop(t);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(
            waited[..5].iter().any(|w| !w.is_zero()),
            "the pool of one ran dry at first: {waited:?}"
        );
        assert!(
            waited[20..].iter().all(|w| w.is_zero()),
            "after it grew, no job waited for a container: {waited:?}"
        );
        stop.cancel();
    }

    #[tokio::test]
    async fn a_warm_container_comes_attached_and_the_job_does_not_attach_again() {
        let fake = FakeEngine::with_image("img");
        let (pool, stop) = refilling(&fake, 1).await;
        settle(|| pool.warm_ids().len() == 1).await;
        let warm = pool.warm_ids()[0].clone();
        // Attaches to this container (the refill may start and attach a
        // replacement meanwhile).
        let attaches = || fake.count(|e| *e == Event::Attach(warm.clone()));
        assert_eq!(attaches(), 1, "attached when it was started");
        stop.cancel();
        let taken = pool.take(&params()).await.unwrap();
        assert_eq!(taken.container.id, warm);
        let stream = taken.take_attached();
        assert!(stream.is_some() && taken.take_attached().is_none());
        let r = sandbox::run_command(
            &fake,
            &taken.container,
            stream,
            &params(),
            "echo hi",
            &Redactor::builtin(),
            CancellationToken::new(),
        )
        .await
        .unwrap();
        assert_eq!(r.exit_code, Some(0));
        assert_eq!(attaches(), 1, "the hand-over used the open stream");
    }

    #[tokio::test(start_paused = true)]
    async fn a_take_waits_for_a_start_in_flight_instead_of_starting_another() {
        let fake = FakeEngine::with_image("img");
        fake.slow_start(Duration::from_millis(300));
        let (pool, stop) = refilling(&fake, 1).await;
        // The refill's start is under way; the job arrives before it ends.
        settle(|| started(&fake) == 1).await;
        let taken = pool.take(&params()).await.unwrap();
        assert!(taken.warm, "it got the container being started");
        assert_eq!(
            fake.count(|e| matches!(e, Event::Create(_))),
            1,
            "no second container was started for the job"
        );
        stop.cancel();
    }

    #[tokio::test]
    async fn drain_removes_warm_containers_and_waits_for_removals_in_flight() {
        let fake = FakeEngine::with_image("img");
        let (pool, stop) = refilling(&fake, 1).await;
        settle(|| pool.warm_ids().len() == 1).await;
        let taken = pool.take(&params()).await.unwrap();
        stop.cancel();
        drop(taken);
        pool.drain().await;
        assert!(fake.containers().is_empty(), "{:?}", fake.containers());
        assert!(pool.warm_ids().is_empty());
    }
}
