//! Reaping: removing the containers nobody will use again.
//!
//! A runner that dies leaves its containers behind: the container of a job
//! it was running (the job is failed as abandoned) and its warm ones. The
//! sweep removes every container labelled for this database whose runner is
//! gone, unless a job still records it or it is warm in this runner's pool.
//! Containers of another database's runners on the same engine are never
//! looked at.

use crate::engine::Engine;
use crate::sandbox::{self, LABEL_DB, LABEL_MANAGED, LABEL_RUNNER};

/// What the database says, read in one go before the engine is asked.
#[derive(Debug, Clone, Copy)]
pub struct Reap<'a> {
    /// The database this runner serves (the `mcp-bridge.db` label).
    pub db_id: &'a str,
    pub runner_id: &'a str,
    /// Containers of jobs just failed because their runner died.
    pub abandoned: &'a [String],
    /// Runners whose heartbeat is fresh.
    pub live_runners: &'a [String],
    /// Containers that running jobs record as theirs.
    pub job_containers: &'a [String],
    /// This runner's warm containers.
    pub warm: &'a [String],
}

impl Reap<'_> {
    /// Removes what is left over. A failed removal is logged; a failed
    /// listing removes nothing (the next sweep, a few seconds on, tries again).
    pub async fn run(&self, engine: &dyn Engine) {
        for id in self.abandoned {
            tracing::warn!(container = %id, "removing the container of an abandoned job");
            sandbox::remove(engine, id).await;
        }
        // Only containers of runners serving this database: another
        // database's runner may share the engine.
        let labels = [
            format!("{LABEL_MANAGED}=1"),
            format!("{LABEL_DB}={}", self.db_id),
        ];
        let Ok(list) = engine.list_by_label(&labels).await else {
            return;
        };
        for c in list {
            let Some(id) = c.id else { continue };
            let owner = c
                .labels
                .as_ref()
                .and_then(|l| l.get(LABEL_RUNNER))
                .cloned()
                .unwrap_or_default();
            let ours_alive = owner == self.runner_id || self.live_runners.contains(&owner);
            if !ours_alive && !self.job_containers.contains(&id) && !self.warm.contains(&id) {
                tracing::warn!(container = %id, runner = %owner, "removing a container left by a stopped runner");
                sandbox::remove(engine, &id).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::fake::{Event, FakeEngine, Op};

    fn leftovers() -> std::sync::Arc<FakeEngine> {
        let fake = FakeEngine::with_image("img");
        for (id, runner, db) in [
            ("mine", "run_me", "db1"),
            ("live_other", "run_live", "db1"),
            ("dead_1", "run_dead", "db1"),
            ("dead_job", "run_dead", "db1"),
            ("dead_warm", "run_dead", "db1"),
            ("other_db", "run_dead", "db2"),
        ] {
            fake.leftover(
                id,
                &[(LABEL_MANAGED, "1"), (LABEL_RUNNER, runner), (LABEL_DB, db)],
            );
        }
        fake.leftover("unmanaged", &[(LABEL_DB, "db1")]);
        fake
    }

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    #[tokio::test]
    async fn only_this_databases_containers_of_gone_runners_are_removed() {
        let fake = leftovers();
        let (abandoned, live) = (strings(&["abandoned"]), strings(&["run_live"]));
        let (jobs, warm) = (strings(&["dead_job"]), strings(&["dead_warm"]));
        Reap {
            db_id: "db1",
            runner_id: "run_me",
            abandoned: &abandoned,
            live_runners: &live,
            job_containers: &jobs,
            warm: &warm,
        }
        .run(&fake)
        .await;
        let removed: Vec<Event> = fake
            .events()
            .into_iter()
            .filter(|e| matches!(e, Event::Remove(_)))
            .collect();
        assert_eq!(
            removed,
            [
                Event::Remove("abandoned".into()),
                Event::Remove("dead_1".into())
            ]
        );
        assert_eq!(
            fake.containers(),
            [
                "dead_job",
                "dead_warm",
                "live_other",
                "mine",
                "other_db",
                "unmanaged"
            ]
        );
    }

    #[tokio::test]
    async fn a_failed_listing_removes_only_the_abandoned() {
        let fake = leftovers();
        fake.fail(Op::List);
        let abandoned = strings(&["dead_1"]);
        Reap {
            db_id: "db1",
            runner_id: "run_me",
            abandoned: &abandoned,
            live_runners: &[],
            job_containers: &[],
            warm: &[],
        }
        .run(&fake)
        .await;
        assert_eq!(fake.count(|e| matches!(e, Event::Remove(_))), 1);
        assert_eq!(fake.containers().len(), 6);
    }

    #[tokio::test]
    async fn a_failed_removal_does_not_stop_the_sweep() {
        let fake = leftovers();
        fake.fail(Op::Remove);
        Reap {
            db_id: "db1",
            runner_id: "run_me",
            abandoned: &strings(&["abandoned"]),
            live_runners: &[],
            job_containers: &[],
            warm: &[],
        }
        .run(&fake)
        .await;
        // Every gone runner's container of db1 was tried.
        assert_eq!(fake.count(|e| matches!(e, Event::Remove(_))), 5);
    }
}
