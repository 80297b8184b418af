//! Where each job's time went, from its audit rows (`yolo.execute` →
//! `job.claim` → `job.start` → `job.finish`, millisecond timestamps).

use std::collections::HashMap;
use std::path::Path;

use anyhow::Context;
use bridge_tests::sql;
use serde_json::Value;

use crate::flow::Exec;

/// Per-job phases from the audit table, in milliseconds.
#[derive(Debug, Default, Clone)]
pub struct Phases {
    /// MCP request, auth, token check and the `yolo.execute` commit.
    pub to_execute: i64,
    /// Until the runner claimed the job (cross-process wake-up + claim).
    pub to_claim: i64,
    /// Taking a container from the pool (or starting one) + `job.start`.
    pub to_start: i64,
    /// The command in the container as the runner times it (`duration_ms`
    /// of `job.finish`): hand-off to the container, output, exit code.
    pub exec: i64,
    /// From the `job.finish` timestamp (taken before its commit) until the
    /// call returned: finish commit, wake-up of the bridge, response.
    pub to_return: i64,
}

pub fn phases(db: &Path, runs: &[Exec]) -> anyhow::Result<Vec<Phases>> {
    let conn = sql(db)?;
    let mut stmt = conn.prepare(
        "SELECT action, ts, detail FROM audit WHERE action IN ('yolo.execute', 'job.claim', 'job.start', 'job.finish') ORDER BY id",
    )?;
    let mut by_job: HashMap<String, HashMap<String, (i64, Value)>> = HashMap::new();
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, i64>(1)?,
            r.get::<_, String>(2)?,
        ))
    })?;
    for row in rows {
        let (action, ts, detail) = row?;
        let detail: Value = serde_json::from_str(&detail)?;
        if let Some(id) = detail["proposal_id"].as_str() {
            by_job
                .entry(id.to_owned())
                .or_default()
                .insert(action, (ts, detail));
        }
    }
    runs.iter()
        .map(|r| {
            let rows = by_job
                .get(&r.proposal)
                .with_context(|| format!("no audit rows for {}", r.proposal))?;
            let ts = |a: &str| {
                rows.get(a)
                    .map(|(t, _)| *t)
                    .with_context(|| format!("no {a} audit row for {}", r.proposal))
            };
            let (ex, claim, start, finish) = (
                ts("yolo.execute")?,
                ts("job.claim")?,
                ts("job.start")?,
                ts("job.finish")?,
            );
            let exec = rows["job.finish"].1["duration_ms"]
                .as_i64()
                .context("job.finish has no duration_ms")?;
            Ok(Phases {
                to_execute: ex - r.sent_ms,
                to_claim: claim - ex,
                to_start: start - claim,
                exec,
                to_return: r.returned_ms - finish,
            })
        })
        .collect()
}

/// Median and maximum of one phase across jobs.
pub fn phase_stats(ph: &[Phases], f: impl Fn(&Phases) -> i64) -> (i64, i64) {
    let mut v: Vec<i64> = ph.iter().map(f).collect();
    v.sort_unstable();
    let n = v.len();
    (v[(n.div_ceil(2)).clamp(1, n) - 1], v[n - 1])
}
