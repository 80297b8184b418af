//! The runner loop's upkeep between claims: matching each engine's pool to
//! the active enablements, sweeping leftovers engine by engine, and
//! following engines that go down or come back.

use std::collections::HashMap;

use bridge_state::jobs;
use bridge_state::yolo::{self, ExecParams};
use tokio_util::sync::CancellationToken;

use crate::fleet::Member;
use crate::{Ctx, reap, to_store};

/// Keeps each engine's pool matched to the active enablements (and to the
/// jobs already approved for them) and stops jobs whose conversation had
/// YOLO disabled.
pub(crate) async fn refresh(ctx: &Ctx, running: &mut HashMap<String, (String, CancellationToken)>) {
    running.retain(|_, (_, cancel)| !cancel.is_cancelled());
    let now = ctx.now();
    let convs: Vec<String> = running.values().map(|(c, _)| c.clone()).collect();
    let res = ctx
        .db
        .call(move |c| {
            let active = yolo::active_enablements(c, now).map_err(to_store)?;
            let known = jobs::awaiting_run(c)?;
            let settings = active
                .iter()
                .filter(|en| match yolo::workspace_problem(c, &en.conversation_id, &en.settings, &active) {
                    // No warm container for it: see `workspace_problem`.
                    Some(why) => {
                        tracing::error!(conversation = %en.conversation_id, "keeping no sandbox warm: its workspace {why}");
                        false
                    }
                    None => true,
                })
                .map(|en| {
                    let p = ExecParams::from_settings(&en.settings, en.settings.timeout_secs);
                    (p, known.get(&en.conversation_id).copied().unwrap_or(0))
                })
                .collect::<Vec<_>>();
            let ended = convs
                .into_iter()
                .filter(|conv| !active.iter().any(|en| &en.conversation_id == conv))
                .collect::<Vec<_>>();
            Ok((settings, ended))
        })
        .await;
    match res {
        Ok((settings, ended)) => {
            for (job, (conv, cancel)) in running.iter() {
                if ended.contains(conv) {
                    tracing::warn!(job = %job, "YOLO ended for its conversation; stopping the command");
                    cancel.cancel();
                }
            }
            // Known demand is shared among the engines that answer.
            let up = ctx.fleet.members().iter().filter(|m| m.is_up()).count();
            for m in ctx.fleet.members() {
                // A down engine keeps no warm containers: they may be gone
                // when it returns.
                let want = if m.is_up() {
                    let share = |n: usize| n.div_ceil(up.max(1));
                    settings
                        .iter()
                        .map(|(p, n)| (p.clone(), share(*n)))
                        .collect()
                } else {
                    vec![]
                };
                m.pool.want_with_known(want).await;
            }
        }
        Err(e) => tracing::error!(error = %e, "cannot read enablements"),
    }
}

/// Fails jobs whose runner died and removes every container of ours that
/// no live runner or running job owns.
pub(crate) async fn sweep(ctx: &Ctx) {
    let (red, now, ttl) = (ctx.red.clone(), ctx.now(), ctx.queue_ttl_ms);
    let res = ctx
        .db
        .call(move |c| {
            // Also when every slot is busy and nothing is being claimed.
            jobs::expire_queued(c, &red, ttl, now).map_err(to_store)?;
            jobs::fail_abandoned(c, &red, now).map_err(to_store)?;
            let live = jobs::live_runners(c, now)?;
            let owned = jobs::owned_containers(c)?;
            Ok((live, owned))
        })
        .await;
    let (live, owned) = match res {
        Ok(x) => x,
        Err(e) => {
            tracing::error!(error = %e, "sweep failed");
            return;
        }
    };
    let unremoved = crate::sandbox::unremoved();
    // Every engine at once, each within a bound: an engine that answers its
    // ping but not a listing (hung, or hostile) must not hold up the others.
    let reaps = ctx.fleet.members().iter().filter(|m| m.is_up()).map(|m| {
        let (live, owned, unremoved) = (&live, &owned, &unremoved);
        async move {
            let warm = m.pool.warm_ids();
            let reap = reap::Reap {
                db_id: &ctx.db_id,
                engine: &m.name,
                runner_id: &ctx.runner_id,
                live_runners: live,
                job_containers: owned,
                warm: &warm,
                own_leftovers: m.take_came_back(),
                unremoved,
            };
            if tokio::time::timeout(SWEEP_BOUND, reap.run(&*m.engine))
                .await
                .is_err()
            {
                tracing::warn!(engine = %m.name, "sweeping the engine took over {} s; the rest waits for the next sweep", SWEEP_BOUND.as_secs());
            }
        }
    });
    futures_util::future::join_all(reaps).await;
}

/// How long one engine's sweep may take.
const SWEEP_BOUND: std::time::Duration = std::time::Duration::from_secs(30);

/// Pings `m` now (after one of its jobs met an engine error): whether it
/// still answers.
pub(crate) async fn answers(ctx: &Ctx, m: &Member) -> bool {
    ctx.fleet.check(m).await;
    m.is_up()
}

/// An engine went down or came back: the database shows it at once, and
/// the pools follow.
pub(crate) async fn engines_changed(ctx: &Ctx) {
    if let Err(e) = ctx.renew().await {
        tracing::error!(error = %e, "cannot record the engines' state");
    }
    ctx.fleet
        .members()
        .iter()
        .for_each(|m| m.pool.wake_refill());
}
