//! Reaping: removing the containers nobody will use again.
//!
//! A runner that dies leaves its containers behind: the container of a job
//! it was running (the job is failed as abandoned) and its warm ones. The
//! sweep removes every container labelled for this database whose runner is
//! gone, unless a job still records it or it is warm in this runner's pool,
//! and this runner's own containers whose removal failed earlier.
//! Containers of another database's runners on the same engine are never
//! looked at.

use crate::engine::Engine;
use crate::sandbox::{self, LABEL_DB, LABEL_ENGINE, LABEL_MANAGED, LABEL_RUNNER};

/// What the database says, read in one go before the engine is asked.
#[derive(Debug, Clone, Copy)]
pub struct Reap<'a> {
    /// The database this runner serves (the `mcp-bridge.db` label).
    pub db_id: &'a str,
    /// The engine being swept (the `mcp-bridge.engine` label): the same
    /// daemon reached as another engine is that engine's to sweep.
    pub engine: &'a str,
    pub runner_id: &'a str,
    /// Runners whose heartbeat is fresh.
    pub live_runners: &'a [String],
    /// Containers that running jobs record as theirs.
    pub job_containers: &'a [String],
    /// This runner's warm containers on this engine.
    pub warm: &'a [String],
    /// Also remove this runner's own containers that neither a running job
    /// nor the pool holds: after the engine came back, they are what was in
    /// use when it went away (their jobs already failed).
    pub own_leftovers: bool,
    /// This runner's containers whose removal failed after its retries
    /// ([`sandbox::unremoved`]): tried again on every sweep.
    pub unremoved: &'a [String],
}

impl Reap<'_> {
    /// Removes what is left over. A failed removal is logged; a failed
    /// listing removes nothing (the next sweep, a few seconds on, tries again).
    pub async fn run(&self, engine: &dyn Engine) {
        // Only containers of runners serving this database through this
        // engine: another database's runner may share the daemon, and so
        // may another engine of ours.
        let labels = [
            format!("{LABEL_MANAGED}=1"),
            format!("{LABEL_DB}={}", self.db_id),
            format!("{LABEL_ENGINE}={}", self.engine),
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
            let held = self.job_containers.contains(&id) || self.warm.contains(&id);
            let owner_alive = if owner == self.runner_id {
                !self.own_leftovers && !self.unremoved.contains(&id)
            } else {
                self.live_runners.contains(&owner)
            };
            if !owner_alive && !held {
                tracing::warn!(container = %id, runner = %owner, engine = %self.engine, "removing a container left by a stopped runner or a lost engine");
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
        for (id, runner, db, engine) in [
            ("mine", "run_me", "db1", "a"),
            ("live_other", "run_live", "db1", "a"),
            ("dead_1", "run_dead", "db1", "a"),
            ("dead_job", "run_dead", "db1", "a"),
            ("dead_warm", "run_dead", "db1", "a"),
            ("other_db", "run_dead", "db2", "a"),
            ("other_engine", "run_dead", "db1", "b"),
            ("mine_on_b", "run_me", "db1", "b"),
        ] {
            fake.leftover(
                id,
                &[
                    (LABEL_MANAGED, "1"),
                    (LABEL_RUNNER, runner),
                    (LABEL_DB, db),
                    (LABEL_ENGINE, engine),
                ],
            );
        }
        fake.leftover("unmanaged", &[(LABEL_DB, "db1")]);
        fake
    }

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    fn reap<'a>(strs: &'a [Vec<String>; 3], own_leftovers: bool) -> Reap<'a> {
        Reap {
            db_id: "db1",
            engine: "a",
            runner_id: "run_me",
            live_runners: &strs[0],
            job_containers: &strs[1],
            warm: &strs[2],
            own_leftovers,
            unremoved: &[],
        }
    }

    fn removed(fake: &FakeEngine) -> Vec<Event> {
        fake.events()
            .into_iter()
            .filter(|e| matches!(e, Event::Remove(_)))
            .collect()
    }

    #[tokio::test]
    async fn only_this_databases_and_engines_containers_of_gone_runners_are_removed() {
        let fake = leftovers();
        let held = [
            strings(&["run_live"]),
            strings(&["dead_job"]),
            strings(&["dead_warm"]),
        ];
        reap(&held, false).run(&fake).await;
        assert_eq!(removed(&fake), [Event::Remove("dead_1".into())]);
        assert_eq!(
            fake.containers(),
            [
                "dead_job",
                "dead_warm",
                "live_other",
                "mine",
                "mine_on_b",
                "other_db",
                "other_engine",
                "unmanaged"
            ]
        );
    }

    #[tokio::test]
    async fn after_an_engine_comes_back_our_unheld_containers_on_it_go_too() {
        let fake = leftovers();
        let held = [strings(&["run_live"]), strings(&["dead_job"]), vec![]];
        reap(&held, true).run(&fake).await;
        assert_eq!(
            removed(&fake),
            [
                Event::Remove("dead_1".into()),
                Event::Remove("dead_warm".into()),
                Event::Remove("mine".into())
            ]
        );
        // The same runner's container on engine b is b's to sweep.
        assert!(fake.containers().contains(&"mine_on_b".to_owned()));
    }

    #[tokio::test]
    async fn a_failed_listing_removes_nothing() {
        let fake = leftovers();
        fake.fail(Op::List);
        reap(&[vec![], vec![], vec![]], true).run(&fake).await;
        assert!(removed(&fake).is_empty());
        assert_eq!(fake.containers().len(), 9);
    }

    #[tokio::test]
    async fn a_failed_removal_does_not_stop_the_sweep() {
        let fake = leftovers();
        fake.fail(Op::Remove);
        reap(&[vec![], vec![], vec![]], false).run(&fake).await;
        // Every gone runner's container of db1 on engine a was tried, each
        // three times (a removal is repeated twice before it is given up).
        let tried = removed(&fake);
        assert_eq!(tried.len(), 12);
        let distinct: std::collections::BTreeSet<String> = tried
            .iter()
            .filter_map(|e| match e {
                Event::Remove(id) => Some(id.clone()),
                _ => None,
            })
            .collect();
        assert_eq!(distinct.len(), 4);
    }

    #[tokio::test]
    async fn our_container_whose_removal_failed_is_removed_by_a_later_sweep() {
        let fake = leftovers();
        fake.leftover(
            "mine_unremoved",
            &[
                (LABEL_MANAGED, "1"),
                (LABEL_RUNNER, "run_me"),
                (LABEL_DB, "db1"),
                (LABEL_ENGINE, "a"),
            ],
        );
        fake.fail(Op::Remove);
        sandbox::remove(&fake, "mine_unremoved").await;
        assert!(sandbox::unremoved().contains(&"mine_unremoved".to_owned()));
        fake.heal(Op::Remove);

        // The engine answers again: the next sweep removes it, and only it
        // of this runner's containers ("mine" is in use).
        let unremoved = sandbox::unremoved();
        let held = [
            strings(&["run_live"]),
            strings(&["dead_job"]),
            strings(&["dead_warm"]),
        ];
        Reap {
            unremoved: &unremoved,
            ..reap(&held, false)
        }
        .run(&fake)
        .await;
        assert!(!fake.containers().contains(&"mine_unremoved".to_owned()));
        assert!(fake.containers().contains(&"mine".to_owned()));
        assert!(!sandbox::unremoved().contains(&"mine_unremoved".to_owned()));
    }
}
