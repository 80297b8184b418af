//! Claim and lease through the runner's own steps (`Ctx::claim`,
//! `Ctx::renew`, `sweep`, `run_job`) on the in-memory engine, with a real
//! database and time from a manual clock: a job whose runner keeps renewing
//! its lease outlives every sweep; a job whose lease ran out is failed once,
//! its container removed, and never run again, even when its old runner
//! was only asleep and reports late.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bridge_state::audit;
use bridge_state::auth::ServerSecret;
use bridge_state::clock::ManualClock;
use bridge_state::conversations::{self, NewSession};
use bridge_state::messages::{self, Selection};
use bridge_state::policy::Mode;
use bridge_state::yolo::{Event, ExecParams, JobState, Limits, NewProposal, Settings};

use super::*;
use crate::engine::fake::{End, Event as Call, FakeEngine, Script};

const CONV: &str = "conv_00000000000000aa";
const JOB: &str = "prop_00000000000000aa";
/// A lease, in the manual clock's seconds.
const LEASE_SECS: i64 = jobs::LEASE_MS / 1000;

/// One database, one engine and one clock, shared by the runners a test
/// starts (as two runner processes on one host would share them).
struct World {
    _dir: tempfile::TempDir,
    cfg: Config,
    fake: Arc<FakeEngine>,
    clock: ManualClock,
    /// The bridge's side: queues the job, reads the outcome back.
    db: Db,
}

impl World {
    /// YOLO enabled for a conversation, and one approved job queued in it.
    /// Attached containers run their command until killed.
    async fn with_a_queued_job() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("b.db");
        let db = Db::open(&path, Sync::Normal).unwrap();
        let secret = ServerSecret::load_or_create(&ServerSecret::path_for_db(&path)).unwrap();
        let clock = ManualClock::at(1_800_000_000_000);
        let red = Redactor::builtin();
        let now = clock.now_ms();
        let settings = Settings {
            mode: Mode::Safe,
            workspace: None,
            workspace_rw: false,
            image: "img".into(),
            runtime: None,
            timeout_secs: 30,
            limits: Limits::default(),
        };
        let r2 = red.clone();
        db.call(move |c| {
            let role = r2.redacted("developer");
            let sessions = ["a", "b"].map(|s| NewSession {
                session_id: s,
                role: &role,
                token_hash: &[0],
            });
            conversations::create(c, CONV, now, now + 86_400_000, &sessions)?;
            yolo::enable(c, &r2, CONV, &settings, 3_600_000, now).map_err(to_store)?;
            let params = ExecParams::from_settings(&settings, settings.timeout_secs);
            let params_json = serde_json::to_string(&params).unwrap();
            let command = r2.redacted("echo hi");
            let hash = yolo::proposal_hash(command.as_str(), &params_json);
            let proposal = NewProposal {
                id: JOB,
                conversation_id: CONV,
                session_id: "a",
                command: &command,
                reason: None,
                params_json: &params_json,
                hash: &hash,
            };
            yolo::insert_proposal(c, &proposal, now)?;
            yolo::approve(c, &secret, &r2, JOB, &hash, 300, &approver(), now).map_err(to_store)?;
            yolo::transition(c, JOB, Event::Execute, now).map_err(to_store)?;
            Ok(())
        })
        .await
        .unwrap();
        let fake = FakeEngine::with_image("img");
        fake.script(Script {
            end: End::Hang,
            ..Script::default()
        });
        let cfg = Config {
            db: path,
            redactor: red,
            pool_size: 0,
            max_parallel: 1,
            pool_idle: Duration::from_secs(60),
            grace: Duration::from_secs(1),
            translate_mounts: false,
            policy_file: None,
            queue_ttl: Duration::from_secs(600),
            engines: vec![EngineConfig::default_local()],
        };
        Self {
            _dir: dir,
            cfg,
            fake,
            clock,
            db,
        }
    }

    /// A runner on this world's database, engine and clock, registered now.
    async fn runner(&self) -> Ctx {
        let engine: crate::engine::SharedEngine = Arc::new(self.fake.clone());
        let clock: Arc<dyn Clock> = Arc::new(self.clock.clone());
        let connected = Connected {
            config: EngineConfig::default_local(),
            engine,
            up: Ok(()),
        };
        Ctx::start(
            &self.cfg,
            vec![connected],
            sandbox::HostPaths::default(),
            clock,
        )
        .await
        .unwrap()
    }

    /// Runner `r` claims the job and starts running it; returns its task
    /// and, once the command was handed to it, the container.
    async fn claimed_and_running(&self, r: &Ctx) -> (tokio::task::JoinHandle<()>, String) {
        let p = r.claim(&Policy::builtin()).await.unwrap();
        let p = p.expect("the queued job is claimed");
        assert_eq!(p.id, JOB);
        let placed = r.fleet.place(&p.params);
        assert!(placed.is_some(), "the engine has a free slot");
        let task = tokio::spawn(run_job(r.clone(), p, placed, CancellationToken::new()));
        // The runner's steps do real (small) database work on blocking
        // threads, so this waits for the hand-over itself, not for a time.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let handed = self
                .fake
                .containers()
                .into_iter()
                .find(|c| self.fake.received(c).is_some());
            if let Some(container) = handed {
                return (task, container);
            }
            assert!(
                Instant::now() < deadline,
                "the job's command never reached a container: {:?}",
                self.fake.events()
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    async fn job(&self) -> Proposal {
        self.db
            .call(|c| yolo::load_proposal(c, JOB).map_err(to_store))
            .await
            .unwrap()
    }

    /// How many audit rows of the conversation have `action`.
    async fn audited(&self, action: &'static str) -> usize {
        let rows = self
            .db
            .call(|c| Ok(audit::tail(c, Some(CONV), 1000)?))
            .await
            .unwrap();
        rows.iter().filter(|r| r.action == action).count()
    }

    /// The `command_result` messages session `s` got.
    async fn results_to(&self, s: &'static str) -> Vec<String> {
        let all = self
            .db
            .call(move |c| {
                Ok(messages::for_recipient(
                    c,
                    CONV,
                    s,
                    Selection::After(0),
                    100,
                )?)
            })
            .await
            .unwrap();
        all.into_iter()
            .filter(|m| m.kind == "command_result")
            .map(|m| m.body)
            .collect()
    }
}

#[tokio::test]
async fn a_job_whose_runner_renews_its_lease_outlives_every_sweep() {
    let w = World::with_a_queued_job().await;
    let (a, b) = (w.runner().await, w.runner().await);
    let (task, container) = w.claimed_and_running(&a).await;
    // Three leases' worth of time passes. Runner a renews every third of a
    // lease, as its loop's ticker does; both runners sweep each time.
    for _ in 0..9 {
        w.clock.advance_secs(LEASE_SECS / 3);
        a.renew().await.unwrap();
        sweep(&b).await;
        sweep(&a).await;
    }
    assert_eq!(w.job().await.state, JobState::Running);
    assert_eq!(w.audited("job.fail").await, 0);
    assert!(
        w.fake.containers().contains(&container),
        "a running job's container was removed: {:?}",
        w.fake.events()
    );
    assert_eq!(w.fake.count(|e| matches!(e, Call::Remove(_))), 0);
    assert!(!task.is_finished(), "the command was stopped");
    assert!(w.results_to("a").await.is_empty());
}

#[tokio::test]
async fn a_job_whose_lease_expired_is_failed_once_its_container_removed_and_never_rerun() {
    let w = World::with_a_queued_job().await;
    let (a, b) = (w.runner().await, w.runner().await);
    let (task, container) = w.claimed_and_running(&a).await;
    // Runner a stops renewing (it was killed, or hangs). b keeps its own
    // heartbeat fresh, as its loop does, and sweeps.
    w.clock.advance_secs(LEASE_SECS - 1);
    b.renew().await.unwrap();
    sweep(&b).await;
    assert_eq!(
        w.job().await.state,
        JobState::Running,
        "failed before its lease ended"
    );
    assert!(w.fake.containers().contains(&container));

    w.clock.advance_secs(2);
    b.renew().await.unwrap();
    sweep(&b).await;
    let job = w.job().await;
    assert_eq!(job.state, JobState::Failed);
    assert!(
        job.failure
            .as_deref()
            .is_some_and(|f| f.contains("the runner stopped while the command was running")),
        "{:?}",
        job.failure
    );
    assert!(
        !w.fake.containers().contains(&container),
        "the abandoned job's container is still there: {:?}",
        w.fake.events()
    );

    // Later sweeps by either runner fail nothing again, and neither
    // claims the job again.
    w.clock.advance_secs(LEASE_SECS);
    b.renew().await.unwrap();
    sweep(&b).await;
    sweep(&a).await;
    assert!(b.claim(&Policy::builtin()).await.unwrap().is_none());
    assert!(a.claim(&Policy::builtin()).await.unwrap().is_none());

    // Runner a was only asleep: its command ends with the container, and
    // its late report (finish, then fail) changes nothing.
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("a's job task ends once its container is gone")
        .unwrap();
    let job = w.job().await;
    assert_eq!(job.state, JobState::Failed);
    assert!(job.result.is_none(), "a late result was stored: {job:?}");
    assert_eq!(w.audited("job.fail").await, 1);
    assert_eq!(w.audited("job.finish").await, 0);
    for s in ["a", "b"] {
        let results = w.results_to(s).await;
        assert_eq!(results.len(), 1, "session {s} got {results:?}");
        assert!(results[0].contains("was not re-run"), "{results:?}");
    }
    // One container was made and handed the command, once.
    assert_eq!(w.fake.count(|e| matches!(e, Call::Create(_))), 1);
    assert_eq!(w.fake.count(|e| matches!(e, Call::Attach(_))), 1);
}

fn approver() -> bridge_state::yolo::Approver {
    bridge_state::yolo::Approver {
        user: "operator".into(),
        uid: 1000,
        tty: None,
    }
}
