//! Pre-started, single-use containers, so an approved command does not wait
//! for a container to start. Each container serves exactly one command and
//! is then destroyed; the pool refills in the background.
//!
//! The runner keeps a few warm containers for every configuration that some
//! conversation has YOLO enabled with, and none for anything else.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bollard::Docker;
use bridge_state::redact::Redactor;
use bridge_state::yolo::ExecParams;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::sandbox::{self, HostPaths, Owner, SandboxError, Started, config_key};

struct Slot {
    params: ExecParams,
    warm: VecDeque<Started>,
    /// Containers being started right now for this slot.
    starting: usize,
    /// The last start failed (e.g. image missing): do not retry in a loop.
    broken: bool,
}

pub struct Pool {
    docker: Docker,
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
        docker: Docker,
        owner: Owner,
        host_paths: HostPaths,
        red: Redactor,
        size: usize,
    ) -> Arc<Self> {
        Arc::new(Self {
            docker,
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

    /// Removes a container in the background; shutdown waits for it.
    pub fn remove_later(&self, id: String) {
        let docker = self.docker.clone();
        self.tracker
            .spawn(async move { sandbox::remove(&docker, &id).await });
    }

    /// A started container for these parameters: a warm one if there is
    /// one, else a freshly started one.
    pub async fn take(&self, p: &ExecParams) -> Result<(Started, bool), SandboxError> {
        let key = config_key(p);
        let warm = {
            let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
            slots.get_mut(&key).and_then(|s| s.warm.pop_front())
        };
        self.refill.notify_one();
        match warm {
            Some(c) => Ok((c, true)),
            None => Ok((
                sandbox::start_container(&self.docker, p, &self.owner, &self.host_paths).await?,
                false,
            )),
        }
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
            sandbox::remove(&self.docker, &c.id).await;
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
                        sandbox::start_container(&this.docker, &params, &this.owner, &this.host_paths).await;
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
                        sandbox::remove(&this.docker, &c.id).await;
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
            sandbox::remove(&self.docker, &c.id).await;
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
