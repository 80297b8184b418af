//! The runner: the only process that talks to Docker and the only thing that
//! causes an approved command to execute. It claims queued jobs from the
//! shared SQLite database, runs each once in a fresh hardened container,
//! writes the redacted result back as a message to both sessions, and audits
//! every step.

pub mod capture;
pub mod confined;
pub mod engine;
pub mod fleet;
pub mod job;
pub mod policy_watch;
pub mod pool;
pub mod reap;
pub mod sandbox;
pub mod snapshot;
pub mod trailer;
mod upkeep;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bridge_state::auth::SecretError;
use bridge_state::clock::{Clock, SystemClock};
use bridge_state::engines::{self, EngineConfig};
use bridge_state::jobs;
use bridge_state::policy::{Policy, PolicyError};
use bridge_state::redact::Redactor;
use bridge_state::store::{Db, StoreError, Sync};
use bridge_state::wake::{BACKSTOP, Wake};
use bridge_state::yolo::{self, Proposal};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::engine::docker::ConnectError;
use crate::fleet::{Connected, Fleet, Member, Placed};
use crate::sandbox::host_paths::DiscoverError;
use crate::snapshot::SnapshotError;
use crate::upkeep::{answers, engines_changed, refresh, sweep};

/// What `runner` needs to run.
#[derive(Debug, Clone)]
pub struct Config {
    pub db: PathBuf,
    pub redactor: Redactor,
    /// Warm containers kept per enabled configuration.
    pub pool_size: usize,
    /// Jobs run at the same time; the pool grows to at most this many
    /// warm containers per configuration while demand lasts.
    pub max_parallel: usize,
    /// After this long without demand the pool shrinks back to `pool_size`.
    pub pool_idle: Duration,
    /// On SIGTERM, in-flight jobs get this long to finish before they are
    /// stopped and failed.
    pub grace: Duration,
    /// The runner itself runs in a container (compose): translate workspace
    /// paths to host paths through its own mounts.
    pub translate_mounts: bool,
    /// The operator's policy file (the bridge's `--policy`); re-read when it
    /// changes. Built-in rules only when absent.
    pub policy_file: Option<PathBuf>,
    /// A job that waited longer than this for a runner is failed, not run.
    pub queue_ttl: Duration,
    /// The Docker engines to run jobs on (checked: `engines::validate`).
    pub engines: Vec<EngineConfig>,
}

/// Why the runner could not start, stop cleanly or report healthy. Each
/// variant names the step that failed; none carries a secret.
#[derive(Debug, thiserror::Error)]
pub enum RunnerError {
    #[error(transparent)]
    Policy(#[from] PolicyError),
    #[error(transparent)]
    Engine(#[from] ConnectError),
    #[error(transparent)]
    HostPaths(#[from] DiscoverError),
    /// Opening the database (the store's error names the path and the fix).
    #[error(transparent)]
    OpenDb(StoreError),
    #[error("cannot draw a random runner id from the OS: {0}")]
    RunnerId(#[source] SecretError),
    #[error("cannot read the database's id (its `meta` table): {0}")]
    DbId(#[source] StoreError),
    #[error("cannot register runner {runner} in the database: {source}")]
    Register { runner: String, source: StoreError },
    #[error("cannot deregister runner {runner} at shutdown: {source}")]
    Deregister { runner: String, source: StoreError },
    #[error("cannot read the runners' heartbeats: {0}")]
    Heartbeats(#[source] StoreError),
    #[error("no runner heartbeat in the last {secs} s: is a runner running against this database?")]
    NoHeartbeat { secs: i64 },
}

/// Why one claimed job did not get its result stored; the job is then
/// failed with this text (redacted).
#[derive(Debug, thiserror::Error)]
enum JobRunError {
    #[error(
        "could not create the git snapshot branch before a read-write run ({0}); the command was not run"
    )]
    Snapshot(#[source] SnapshotError),
    #[error(transparent)]
    Run(#[from] job::JobError<StartError>),
    #[error("cannot store the job's result: {0}")]
    Finish(#[source] StoreError),
    #[error(
        "Docker engine `{engine}` stopped answering while the job ran ({source}); the job is not retried elsewhere, and the command may or may not have run"
    )]
    EngineLost {
        engine: String,
        source: job::JobError<StartError>,
    },
    #[error(
        "no Docker engine could take the job when it was claimed (an engine went down); it was not run. Execute it again once `bridge health` shows an engine up"
    )]
    NoEngine,
}

/// Why a job's start was not recorded, so its command was never handed over.
#[derive(Debug, thiserror::Error)]
enum StartError {
    /// The job may no longer run (see `jobs::record_start`); the reason is
    /// the job's failure as it is.
    #[error("{0}")]
    Refused(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Healthy when an engine answers and some runner's heartbeat on this
/// database is fresh (for container healthchecks).
pub async fn health(db: &std::path::Path, engines: &[EngineConfig]) -> Result<(), RunnerError> {
    fleet::connect(engines).await?;
    let db = Db::open(db, Sync::Normal).map_err(RunnerError::OpenDb)?;
    let now = SystemClock.now_ms();
    let live = db
        .call(move |c| Ok(jobs::live_runners(c, now)?))
        .await
        .map_err(RunnerError::Heartbeats)?;
    if live.is_empty() {
        return Err(RunnerError::NoHeartbeat {
            secs: jobs::LEASE_MS / 1000,
        });
    }
    Ok(())
}

/// One runner's handles: what its loop, its sweeps and its jobs share.
#[derive(Clone)]
struct Ctx {
    db: Db,
    db_id: String,
    red: Redactor,
    runner_id: String,
    fleet: Arc<Fleet>,
    queue_ttl_ms: i64,
    /// Leases, heartbeats and queue expiry read time here (a manual clock
    /// in the unit tests).
    clock: Arc<dyn Clock>,
}

impl Ctx {
    /// Opens the database, makes a pool per engine and registers this
    /// runner (its first heartbeat) with its engines' state.
    async fn start(
        cfg: &Config,
        engines: Vec<Connected>,
        host_paths: sandbox::HostPaths,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, RunnerError> {
        let db = Db::open(&cfg.db, Sync::Normal).map_err(RunnerError::OpenDb)?;
        let runner_id = format!(
            "run_{}",
            bridge_state::auth::random_hex(6).map_err(RunnerError::RunnerId)?
        );
        let db_id = db
            .call(|c| Ok(bridge_state::store::db_id(c)?))
            .await
            .map_err(RunnerError::DbId)?;
        let members = engines
            .into_iter()
            .map(|c| {
                let owner = sandbox::Owner {
                    runner: runner_id.clone(),
                    db: db_id.clone(),
                    engine: c.config.name.clone(),
                };
                let max_parallel = c.config.max_parallel.unwrap_or(cfg.max_parallel).max(1);
                let sizing = pool::Sizing {
                    min: c.config.pool_size.unwrap_or(cfg.pool_size),
                    max: max_parallel,
                    idle: cfg.pool_idle,
                };
                let pool = pool::Pool::new(
                    c.engine.clone(),
                    owner,
                    host_paths.clone(),
                    cfg.redactor.clone(),
                    sizing,
                );
                let (red, now) = (&cfg.redactor, clock.now_ms());
                Arc::new(Member::new(
                    &c.config,
                    max_parallel,
                    c.engine,
                    pool,
                    c.up,
                    red,
                    now,
                ))
            })
            .collect();
        let fleet = Fleet::new(members, cfg.redactor.clone(), clock.clone());
        let ctx = Ctx {
            db,
            db_id,
            red: cfg.redactor.clone(),
            runner_id,
            fleet: Arc::new(fleet),
            queue_ttl_ms: i64::try_from(cfg.queue_ttl.as_millis()).unwrap_or(i64::MAX),
            clock,
        };
        let (id, now) = (ctx.runner_id.clone(), ctx.now());
        ctx.db
            .call(move |c| Ok(jobs::register(c, &id, now)?))
            .await
            .map_err(|source| RunnerError::Register {
                runner: ctx.runner_id.clone(),
                source,
            })?;
        if let Err(e) = ctx.renew().await {
            tracing::error!(error = %e, "cannot record the engines' state");
        }
        Ok(ctx)
    }

    fn now(&self) -> i64 {
        self.clock.now_ms()
    }

    /// Claims the oldest queued job that still may run under `policy`
    /// (the claim re-checks it against what holds now), under a lease.
    async fn claim(&self, policy: &Policy) -> Result<Option<Proposal>, StoreError> {
        let (red, id, now) = (self.red.clone(), self.runner_id.clone(), self.now());
        let (policy, queue_ttl_ms) = (policy.clone(), self.queue_ttl_ms);
        let workspaces = self.fleet.workspaces();
        self.db
            .call(move |c| {
                let rules = jobs::ClaimRules {
                    policy: &policy,
                    queue_ttl_ms,
                    workspaces,
                };
                jobs::claim(c, &red, rules, &id, now).map_err(to_store)
            })
            .await
    }

    /// Extends the leases of this runner's running jobs and its
    /// heartbeat, and records its engines' state.
    async fn renew(&self) -> Result<(), StoreError> {
        let (id, now, reports) = (self.runner_id.clone(), self.now(), self.fleet.reports());
        self.db
            .call(move |c| {
                jobs::renew(c, &id, now)?;
                Ok(engines::report(c, &id, &reports, now)?)
            })
            .await
    }
}

/// Runs until `shutdown` fires; then finishes (or stops and fails) in-flight
/// jobs, removes its containers and deregisters.
pub async fn run(cfg: Config, shutdown: CancellationToken) -> Result<(), RunnerError> {
    let mut policy = policy_watch::PolicyWatch::load(cfg.policy_file.clone())?;
    let engines = fleet::connect(&cfg.engines).await?;
    let host_paths = match engines.iter().find(|c| c.config.is_local() && c.up.is_ok()) {
        Some(local) if cfg.translate_mounts => sandbox::HostPaths::discover(&*local.engine).await?,
        _ => sandbox::HostPaths::default(),
    };
    let ctx = Ctx::start(&cfg, engines, host_paths, Arc::new(SystemClock)).await?;
    let runner_id = ctx.runner_id.clone();
    tracing::info!(runner = %runner_id, db = %cfg.db.display(), engines = ctx.fleet.members().len(), "runner started");
    sweep(&ctx).await;

    let wake = Wake::watching(&cfg.db);
    let pool_stop = CancellationToken::new();
    for m in ctx.fleet.members() {
        tokio::spawn(m.pool.clone().refill_loop(pool_stop.clone()));
    }
    let mut tasks: JoinSet<()> = JoinSet::new();
    let mut running: HashMap<String, (String, CancellationToken)> = HashMap::new();
    let mut ticker = tokio::time::interval(Duration::from_millis((jobs::LEASE_MS / 3) as u64));
    // Down engines are retried on their own backoff, checked this often.
    let mut retry = tokio::time::interval(fleet::FIRST_RETRY);
    let mut changes = wake.subscribe();
    let mut sweeping: Option<tokio::task::JoinHandle<()>> = None;
    loop {
        changes.borrow_and_update();
        refresh(&ctx, &mut running).await;
        // Fail closed: with the policy file unreadable or invalid, nothing
        // is claimed (queued jobs wait, then expire) until it is fixed.
        let current = policy.current().inspect_err(|e| {
            tracing::error!(error = %e, "cannot read the command policy; claiming no jobs until it is fixed");
        });
        while let (Ok(current), true) = (&current, ctx.fleet.has_room()) {
            match ctx.claim(current).await {
                Ok(Some(p)) => {
                    let cancel = CancellationToken::new();
                    running.insert(p.id.clone(), (p.conversation_id.clone(), cancel.clone()));
                    let placed = ctx.fleet.place(&p.params);
                    tasks.spawn(run_job(ctx.clone(), p, placed, cancel));
                }
                Ok(None) => break,
                Err(e) => {
                    tracing::error!(error = %e, "cannot claim jobs");
                    break;
                }
            }
        }
        tokio::select! {
            _ = changes.changed() => {}
            _ = tokio::time::sleep(BACKSTOP) => {}
            _ = ticker.tick() => {
                ctx.fleet.probe(true).await;
                if let Err(e) = ctx.renew().await {
                    tracing::error!(error = %e, "cannot renew leases");
                }
                // Off this loop, one at a time: an engine slow to list or
                // remove must not hold up leases, claims and cancellations.
                if sweeping.as_ref().is_none_or(|h| h.is_finished()) {
                    let ctx = ctx.clone();
                    sweeping = Some(tokio::spawn(async move { sweep(&ctx).await }));
                }
            }
            _ = retry.tick() => {
                if ctx.fleet.probe(false).await {
                    engines_changed(&ctx).await;
                }
            }
            Some(_) = tasks.join_next() => {}
            _ = shutdown.cancelled() => break,
        }
    }

    tracing::info!(in_flight = tasks.len(), "shutting down");
    if let Some(h) = sweeping {
        // What it had left is swept at the next start.
        h.abort();
    }
    pool_stop.cancel();
    let drained = tokio::time::timeout(cfg.grace, async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        for (_, (_, cancel)) in running.drain() {
            cancel.cancel();
        }
        while tasks.join_next().await.is_some() {}
    }
    for m in ctx.fleet.members() {
        m.pool.drain().await;
    }
    let id = runner_id.clone();
    ctx.db
        .call(move |c| Ok(jobs::deregister(c, &id)?))
        .await
        .map_err(|source| RunnerError::Deregister {
            runner: runner_id,
            source,
        })?;
    tracing::info!("runner stopped");
    Ok(())
}

fn to_store(e: yolo::YoloError) -> StoreError {
    match e {
        yolo::YoloError::Store(s) => s,
        other => StoreError::Join(other.to_string()),
    }
}

async fn run_job(ctx: Ctx, p: Proposal, placed: Option<Placed>, cancel: CancellationToken) {
    let id = p.id.clone();
    let outcome = match placed {
        Some(placed) => run_job_inner(&ctx, &p, &placed, cancel.clone()).await,
        None => Err(JobRunError::NoEngine),
    };
    if let Err(e) = outcome {
        // The error may quote workspace or engine text: it is redacted once
        // and that form alone is logged, stored and sent.
        let why = ctx
            .red
            .redacted(&engine::bounded(&ctx.red.redact(&e.to_string())));
        tracing::error!(job = %id, error = %why, "job failed before or while running");
        let (red, now, p2) = (ctx.red.clone(), ctx.now(), p.clone());
        let _ = ctx
            .db
            .call(move |c| jobs::fail(c, &red, &p2, &why, now).map_err(to_store))
            .await;
    }
    cancel.cancel();
}

async fn run_job_inner(
    ctx: &Ctx,
    p: &Proposal,
    placed: &Placed,
    cancel: CancellationToken,
) -> Result<(), JobRunError> {
    let member = &placed.member;
    if let (Some(ws), true) = (&p.params.workspace, p.params.workspace_rw)
        && let Some((branch, sha)) = snapshot::create(ws, &p.id).map_err(JobRunError::Snapshot)?
    {
        tracing::info!(job = %p.id, %branch, %sha, "snapshot branch created");
    }
    let record_start = async |taken: &pool::Taken| -> Result<(), StartError> {
        let container = &taken.container;
        tracing::info!(job = %p.id, engine = %member.name, container = %container.id, warm = taken.warm, "running");
        let (red, now, p2, cid, img, engine) = (
            ctx.red.clone(),
            ctx.now(),
            p.clone(),
            container.id.clone(),
            container.image_id.clone(),
            member.name.clone(),
        );
        ctx.db
            .call(move |c| {
                let started = jobs::Started {
                    container: &cid,
                    image: &img,
                    engine: &engine,
                };
                jobs::record_start(c, &red, &p2, started, now).map_err(to_store)
            })
            .await?
            .map_or(Ok(()), |why| Err(StartError::Refused(why)))
    };
    let executed = job::execute(
        &member.pool,
        &*member.engine,
        &p.params,
        &p.command,
        &ctx.red,
        cancel,
        record_start,
    )
    .await;
    let (result, container) = match executed {
        Ok(done) => done,
        // An engine error: was it the engine going away?
        Err(e @ job::JobError::Sandbox(_)) if !answers(ctx, member).await => {
            engines_changed(ctx).await;
            return Err(JobRunError::EngineLost {
                engine: member.name.clone(),
                source: e,
            });
        }
        Err(e) => return Err(e.into()),
    };
    // The result goes out before the container is destroyed: removal is
    // off the critical path.
    let (red, now, p2, id) = (ctx.red.clone(), ctx.now(), p.clone(), ctx.runner_id.clone());
    ctx.db
        .call(move |c| jobs::finish(c, &red, &id, &p2, &result, now).map_err(to_store))
        .await
        .map_err(JobRunError::Finish)?;
    drop(container);
    Ok(())
}

#[cfg(test)]
#[path = "lease_tests.rs"]
mod lease_tests;
