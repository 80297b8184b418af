//! The engine side of one claimed job: a container from the pool, its start
//! recorded, the command run once in it, and the container removed on every
//! path. The database side (claim, record, finish, fail) is the caller's,
//! through `bridge_state::jobs`.

use std::sync::Arc;

use bridge_state::job_result::JobResult;
use bridge_state::redact::Redactor;
use bridge_state::yolo::ExecParams;
use tokio_util::sync::CancellationToken;

use crate::engine::Engine;
use crate::pool::{Pool, Taken};
use crate::sandbox::{self, SandboxError};

/// Why a job did not get its result: the sandbox failed, or recording its
/// start did (then the command never ran). `E` is the recorder's own error.
#[derive(Debug, thiserror::Error)]
pub enum JobError<E: std::fmt::Display + std::fmt::Debug> {
    #[error(transparent)]
    Sandbox(#[from] SandboxError),
    #[error("{0}")]
    Record(E),
}

/// Runs `command` once under `params`. `record_start` records the container
/// before the command is handed over; if it fails, the command never runs.
/// The container comes back with the result and is removed when dropped, so
/// the caller can send the result first; on an error it is already on its
/// way out.
pub async fn execute<E: std::fmt::Display + std::fmt::Debug>(
    pool: &Arc<Pool>,
    engine: &dyn Engine,
    params: &ExecParams,
    command: &str,
    red: &Redactor,
    cancel: CancellationToken,
    record_start: impl AsyncFnOnce(&Taken) -> Result<(), E>,
) -> Result<(JobResult, Taken), JobError<E>> {
    let taken = pool.take(params).await?;
    record_start(&taken).await.map_err(JobError::Record)?;
    let attached = taken.take_attached();
    let result = sandbox::run_command(
        engine,
        &taken.container,
        attached,
        params,
        command,
        red,
        cancel,
    )
    .await?;
    Ok((result, taken))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::engine::fake::{End, Event, FakeEngine, Op, Script, owner, params};
    use crate::sandbox::HostPaths;

    struct Run {
        fake: Arc<FakeEngine>,
        pool: Arc<Pool>,
        recorded: AtomicUsize,
    }

    impl Run {
        fn new() -> Self {
            let fake = FakeEngine::with_image("img");
            let pool = Pool::new(
                Arc::new(fake.clone()),
                owner(),
                HostPaths::default(),
                Redactor::builtin(),
                crate::pool::Sizing::fixed(0),
            );
            Self {
                fake,
                pool,
                recorded: AtomicUsize::new(0),
            }
        }

        /// Runs one job; `record_fails` makes recording its start fail.
        async fn job(
            &self,
            record_fails: bool,
        ) -> Result<(JobResult, Taken), JobError<&'static str>> {
            let record = async |_: &Taken| -> Result<(), &'static str> {
                self.recorded.fetch_add(1, Ordering::SeqCst);
                if record_fails {
                    return Err("database is locked");
                }
                Ok(())
            };
            let red = Redactor::builtin();
            let cancel = CancellationToken::new();
            execute(
                &self.pool,
                &self.fake,
                &params(),
                "echo hi",
                &red,
                cancel,
                record,
            )
            .await
        }

        /// Waits for every removal, then lists what is left.
        async fn left(&self) -> Vec<String> {
            self.pool.drain().await;
            self.fake.containers()
        }
    }

    #[tokio::test]
    async fn a_job_gets_its_result_first_and_its_container_is_removed_after() {
        let run = Run::new();
        let (result, taken) = run.job(false).await.unwrap();
        assert_eq!(result.exit_code, Some(0));
        assert_eq!(result.container_id, taken.container.id);
        assert_eq!(run.recorded.load(Ordering::SeqCst), 1);
        // Still there while the caller writes the result.
        assert_eq!(
            run.fake.containers(),
            std::slice::from_ref(&taken.container.id)
        );
        drop(taken);
        assert!(run.left().await.is_empty());
    }

    #[tokio::test]
    async fn a_failed_create_or_start_fails_the_job_before_it_is_recorded() {
        for op in [Op::Create, Op::Start] {
            let run = Run::new();
            run.fake.fail(op);
            let e = run.job(false).await.unwrap_err();
            assert!(e.to_string().contains("fake engine"), "{op:?}: {e}");
            assert_eq!(run.recorded.load(Ordering::SeqCst), 0, "{op:?}");
            assert_eq!(run.fake.count(|e| matches!(e, Event::Attach(_))), 0);
            assert!(run.left().await.is_empty(), "{op:?}");
        }
    }

    #[tokio::test]
    async fn a_failed_attach_fails_the_job_and_removes_its_container() {
        let run = Run::new();
        run.fake.fail(Op::Attach);
        let e = run.job(false).await.unwrap_err();
        assert!(e.to_string().starts_with("Docker engine error"), "{e}");
        assert_eq!(run.recorded.load(Ordering::SeqCst), 1);
        assert!(run.left().await.is_empty());
        assert!(matches!(run.fake.events().last(), Some(Event::Remove(_))));
    }

    #[tokio::test]
    async fn a_start_that_cannot_be_recorded_never_runs_and_is_removed() {
        let run = Run::new();
        let e = run.job(true).await.unwrap_err();
        assert_eq!(e.to_string(), "database is locked");
        assert_eq!(run.fake.count(|e| matches!(e, Event::Attach(_))), 0);
        assert!(run.left().await.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn a_job_past_its_timeout_is_killed_then_removed() {
        let run = Run::new();
        run.fake.script(Script {
            end: End::Hang,
            ..Script::default()
        });
        let (result, taken) = run.job(false).await.unwrap();
        assert!(result.timed_out);
        let id = taken.container.id.clone();
        drop(taken);
        assert!(run.left().await.is_empty());
        let ev = run.fake.events();
        let kill = ev.iter().position(|e| *e == Event::Kill(id.clone()));
        let remove = ev.iter().position(|e| *e == Event::Remove(id.clone()));
        assert!(kill.is_some() && kill < remove, "{ev:?}");
    }
}
