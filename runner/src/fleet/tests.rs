//! Placement and down-marking on in-memory engines.

use std::sync::Arc;

use bridge_state::clock::ManualClock;
use bridge_state::yolo::ExecParams;

use super::*;
use crate::engine::fake::{FakeEngine, Op, owner, params, settle};
use crate::pool::Sizing;
use crate::sandbox::HostPaths;

struct Two {
    fleet: Fleet,
    fakes: Vec<Arc<FakeEngine>>,
}

/// Engines `a` (local) and `b` (remote), two slots each, `warm` warm
/// containers each for the fake's parameters.
async fn two(warm: [usize; 2]) -> Two {
    let red = Redactor::builtin();
    let clock = ManualClock::at(1_800_000_000_000);
    let mut members = Vec::new();
    let mut fakes = Vec::new();
    for (name, local, warm) in [("a", true, warm[0]), ("b", false, warm[1])] {
        let fake = FakeEngine::with_image("img");
        let engine: SharedEngine = Arc::new(fake.clone());
        let pool = Pool::new(
            engine.clone(),
            owner(),
            HostPaths::default(),
            red.clone(),
            Sizing::fixed(warm),
        );
        if warm > 0 {
            pool.want(vec![params()]).await;
            tokio::spawn(pool.clone().refill_loop(Default::default()));
            let p = pool.clone();
            settle(move || p.warm_count() == warm).await;
        }
        let config = EngineConfig {
            name: name.into(),
            url: if local { "unix:///s" } else { "tcp://h:2376" }.into(),
            local: Some(local),
            ..EngineConfig::default_local()
        };
        members.push(Arc::new(Member::new(
            &config,
            2,
            engine,
            pool,
            Ok(()),
            &red,
            clock.now_ms(),
        )));
        fakes.push(fake);
    }
    Two {
        fleet: Fleet::new(members, red, Arc::new(clock)),
        fakes,
    }
}

fn with_workspace() -> ExecParams {
    ExecParams {
        workspace: Some("/srv/project".into()),
        ..params()
    }
}

fn names(placed: &[Placed]) -> Vec<&str> {
    placed.iter().map(|p| p.member.name.as_str()).collect()
}

#[tokio::test]
async fn jobs_go_where_a_warm_container_waits_then_to_the_least_loaded() {
    let t = two([0, 1]).await;
    let first = t.fleet.place(&params()).unwrap();
    assert_eq!(first.member.name, "b", "b holds the warm container");
    // No warm container anywhere that matters now: a (0 of 2) beats b (1 of 2).
    let _taken = first.member.pool.take(&params()).await.unwrap();
    let second = t.fleet.place(&params()).unwrap();
    assert_eq!(second.member.name, "a");
    let rest: Vec<Placed> = std::iter::from_fn(|| t.fleet.place(&params())).collect();
    assert_eq!(names(&rest), ["a", "b"], "two slots each, then none");
    assert!(!t.fleet.has_room());
    drop(rest);
    assert!(t.fleet.has_room(), "a dropped placement frees its slot");
}

#[tokio::test]
async fn a_workspace_job_goes_only_to_a_local_engine() {
    let t = two([0, 0]).await;
    assert_eq!(t.fleet.workspaces(), Workspaces::Accepted);
    let held: Vec<Placed> = std::iter::from_fn(|| t.fleet.place(&with_workspace())).collect();
    assert_eq!(names(&held), ["a", "a"]);
    assert_eq!(t.fleet.workspaces(), Workspaces::Busy);
    assert!(t.fleet.has_room(), "b still takes jobs without a workspace");
    assert_eq!(t.fleet.place(&params()).unwrap().member.name, "b");
}

#[tokio::test]
async fn without_a_local_engine_workspace_jobs_are_refused() {
    let t = two([0, 0]).await;
    let only_b = Fleet::new(
        vec![t.fleet.members()[1].clone()],
        Redactor::builtin(),
        Arc::new(ManualClock::at(0)),
    );
    assert_eq!(only_b.workspaces(), Workspaces::NoLocalEngine);
    assert!(only_b.place(&with_workspace()).is_none());
}

#[tokio::test]
async fn a_silent_engine_is_marked_down_skipped_retried_with_backoff_and_comes_back() {
    tokio::time::pause();
    let t = two([0, 0]).await;
    let (a, b) = (&t.fleet.members()[0], &t.fleet.members()[1]);
    t.fakes[1].fail(Op::Ping);
    assert!(t.fleet.probe(true).await, "b's state changed");
    assert!(a.is_up() && !b.is_up());
    let report = &t.fleet.reports()[1];
    assert!(
        !report.up
            && report
                .error
                .as_ref()
                .unwrap()
                .as_str()
                .contains("ping failed")
    );
    assert!(report.next_retry_at.is_some());
    // Nothing is placed on b while it is down.
    let held: Vec<Placed> = std::iter::from_fn(|| t.fleet.place(&params())).collect();
    assert_eq!(names(&held), ["a", "a"]);
    drop(held);

    // Retries back off: 1 s, then 2 s, then 4 s.
    let pings = || t.fakes[1].count(|e| matches!(e, crate::engine::fake::Event::Ping));
    let before = pings();
    assert!(!t.fleet.probe(false).await);
    assert_eq!(pings(), before, "not due yet");
    for wait in [1, 2, 4] {
        tokio::time::advance(Duration::from_millis(wait * 1000 - 10)).await;
        t.fleet.probe(false).await;
        assert_eq!(
            pings(),
            before + (wait.trailing_zeros() as usize),
            "{wait} s"
        );
        tokio::time::advance(Duration::from_millis(10)).await;
        t.fleet.probe(false).await;
        assert_eq!(
            pings(),
            before + 1 + wait.trailing_zeros() as usize,
            "{wait} s"
        );
    }

    t.fakes[1].heal(Op::Ping);
    tokio::time::advance(MAX_RETRY).await;
    assert!(t.fleet.probe(false).await, "b came back");
    assert!(b.is_up());
    assert!(b.take_came_back(), "its leftovers are swept once");
    assert!(!b.take_came_back());
}
