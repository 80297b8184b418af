//! Pre-started, single-use containers, so an approved command does not wait
//! for a container to start. Each container serves exactly one command and
//! is then destroyed; the pool refills in the background.
//!
//! The runner keeps a few warm containers for every configuration that some
//! conversation has YOLO enabled with, and none for anything else. A
//! container handed out is a [`Taken`], which removes it when dropped, so it
//! is destroyed on every path, errors and panics included.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bridge_state::redact::Redactor;
use bridge_state::yolo::ExecParams;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::engine::SharedEngine;
use crate::sandbox::{self, HostPaths, Owner, SandboxError, Started, config_key};

/// A container handed out for one command. Dropping it removes the
/// container in the background, off the critical path; shutdown
/// ([`Pool::drain`]) waits for the removal.
pub struct Taken {
    pub container: Started,
    /// It was pre-started (warm), not started for this command.
    pub warm: bool,
    engine: SharedEngine,
    tracker: TaskTracker,
}

impl std::fmt::Debug for Taken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Taken")
            .field("container", &self.container)
            .field("warm", &self.warm)
            .finish_non_exhaustive()
    }
}

impl Drop for Taken {
    fn drop(&mut self) {
        let (engine, id) = (self.engine.clone(), self.container.id.clone());
        self.tracker
            .spawn(async move { sandbox::remove(&*engine, &id).await });
    }
}

struct Slot {
    params: ExecParams,
    warm: VecDeque<Started>,
    /// Containers being started right now for this slot.
    starting: usize,
    /// The last start failed (e.g. image missing): do not retry in a loop.
    broken: bool,
}

pub struct Pool {
    engine: SharedEngine,
    owner: Owner,
    host_paths: HostPaths,
    /// Start failures can quote the workspace path; logs get them redacted.
    red: Redactor,
    size: usize,
    slots: Mutex<HashMap<String, Slot>>,
    refill: Notify,
    /// Container starts and removals in flight; shutdown waits for them.
    tracker: TaskTracker,
    closed: AtomicBool,
}

impl Pool {
    pub fn new(
        engine: SharedEngine,
        owner: Owner,
        host_paths: HostPaths,
        red: Redactor,
        size: usize,
    ) -> Arc<Self> {
        Arc::new(Self {
            engine,
            owner,
            host_paths,
            red,
            size,
            slots: Mutex::new(HashMap::new()),
            refill: Notify::new(),
            tracker: TaskTracker::new(),
            closed: AtomicBool::new(false),
        })
    }

    /// A started container for these parameters: a warm one if there is
    /// one, else a freshly started one. It is removed when the [`Taken`] is
    /// dropped.
    pub async fn take(&self, p: &ExecParams) -> Result<Taken, SandboxError> {
        let key = config_key(p);
        let warm = {
            let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
            slots.get_mut(&key).and_then(|s| s.warm.pop_front())
        };
        self.refill.notify_one();
        let (container, warm) = match warm {
            Some(c) => (c, true),
            None => (
                sandbox::start_container(&*self.engine, p, &self.owner, &self.host_paths).await?,
                false,
            ),
        };
        Ok(Taken {
            container,
            warm,
            engine: self.engine.clone(),
            tracker: self.tracker.clone(),
        })
    }

    /// Sets the configurations to keep warm; containers of others are removed.
    pub async fn want(&self, configs: Vec<ExecParams>) {
        let wanted: HashMap<String, ExecParams> =
            configs.into_iter().map(|p| (config_key(&p), p)).collect();
        let dropped: Vec<Started> = {
            let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
            let mut dropped = Vec::new();
            slots.retain(|k, s| {
                let keep = wanted.contains_key(k);
                if !keep {
                    dropped.extend(s.warm.drain(..));
                }
                keep
            });
            for (k, p) in wanted {
                slots.entry(k).or_insert_with(|| Slot {
                    params: p,
                    warm: VecDeque::new(),
                    starting: 0,
                    broken: false,
                });
            }
            dropped
        };
        for c in dropped {
            sandbox::remove(&*self.engine, &c.id).await;
        }
        self.refill.notify_one();
    }

    /// Keeps every wanted configuration at `size` warm containers.
    pub async fn refill_loop(self: Arc<Self>, stop: CancellationToken) {
        loop {
            let todo: Vec<(String, ExecParams)> = {
                let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
                let mut todo = Vec::new();
                for (k, s) in slots.iter_mut() {
                    while !s.broken && s.warm.len() + s.starting < self.size {
                        s.starting += 1;
                        todo.push((k.clone(), s.params.clone()));
                    }
                }
                todo
            };
            for (key, params) in todo {
                let this = self.clone();
                self.tracker.spawn(async move {
                    let started =
                        sandbox::start_container(&*this.engine, &params, &this.owner, &this.host_paths).await;
                    let orphan = {
                        let mut slots = this.slots.lock().unwrap_or_else(|e| e.into_inner());
                        let slot = if this.closed.load(Ordering::SeqCst) { None } else { slots.get_mut(&key) };
                        match (slot, started) {
                            (Some(slot), Ok(c)) => {
                                slot.starting -= 1;
                                slot.warm.push_back(c);
                                None
                            }
                            (Some(slot), Err(e)) => {
                                slot.starting -= 1;
                                slot.broken = true;
                                let why = this.red.redacted(&e.to_string());
                                tracing::warn!(error = %why, "cannot pre-start a sandbox container; jobs will start their own");
                                None
                            }
                            // The configuration was dropped while starting.
                            (None, Ok(c)) => Some(c),
                            (None, Err(_)) => None,
                        }
                    };
                    if let Some(c) = orphan {
                        sandbox::remove(&*this.engine, &c.id).await;
                    }
                });
            }
            tokio::select! {
                _ = self.refill.notified() => {}
                // Retry broken slots now and then (the image may have been built).
                _ = tokio::time::sleep(Duration::from_secs(30)) => {
                    let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
                    slots.values_mut().for_each(|s| s.broken = false);
                }
                _ = stop.cancelled() => return,
            }
        }
    }

    /// Removes every warm container and waits for starts and removals in
    /// flight (shutdown).
    pub async fn drain(&self) {
        self.closed.store(true, Ordering::SeqCst);
        self.tracker.close();
        self.tracker.wait().await;
        let all: Vec<Started> = {
            let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
            slots.values_mut().flat_map(|s| s.warm.drain(..)).collect()
        };
        for c in all {
            sandbox::remove(&*self.engine, &c.id).await;
        }
    }

    /// Ids of the warm containers (so the sweeper leaves them alone).
    pub fn warm_ids(&self) -> Vec<String> {
        let slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        slots
            .values()
            .flat_map(|s| s.warm.iter().map(|c| c.id.clone()))
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
            size,
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

    #[tokio::test]
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
        assert!(fake.containers().is_empty());
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
