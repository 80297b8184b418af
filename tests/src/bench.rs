//! What the benchmark programs share: latency samples with percentiles,
//! number formatting and a process's resident memory.

use std::time::Duration;

use anyhow::Context;

/// Latency samples, sorted.
pub struct Samples(Vec<Duration>);

impl Samples {
    pub fn new(mut v: Vec<Duration>) -> Self {
        v.sort();
        Self(v)
    }
    /// Nearest-rank percentile.
    pub fn p(&self, pct: f64) -> Duration {
        let n = self.0.len();
        let rank = ((pct / 100.0) * n as f64).ceil() as usize;
        self.0[rank.clamp(1, n) - 1]
    }
    pub fn min(&self) -> Duration {
        self.0[0]
    }
    pub fn max(&self) -> Duration {
        self.0[self.0.len() - 1]
    }
    pub fn len(&self) -> usize {
        self.0.len()
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Milliseconds with a precision that suits the size.
pub fn fmt_ms(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1000.0;
    match ms {
        m if m >= 1000.0 => format!("{:.2} s", m / 1000.0),
        m if m >= 10.0 => format!("{m:.1} ms"),
        m => format!("{m:.2} ms"),
    }
}

/// kB (KiB, as /proc reports) as decimal megabytes.
pub fn fmt_mb(kb: u64) -> String {
    format!("{:.1} MB", kb as f64 * 1024.0 / 1e6)
}

/// Resident set size of a process, in kB (KiB), from /proc.
pub fn vm_rss_kb(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .context("no VmRSS line in /proc/PID/status")?;
    Ok(line
        .split_whitespace()
        .nth(1)
        .context("malformed VmRSS")?
        .parse()?)
}

/// How much more RSS the last session-flood round may leave than the first
/// (fewer than [`PLATEAU_ROUNDS`] rounds), or the later half of the rounds
/// than the earlier half (at least that many).
pub const RSS_GROWTH_LIMIT_KB: u64 = 10_000_000 / 1024;
pub const RSS_PLATEAU_LIMIT_KB: u64 = 5_000_000 / 1024;
pub const PLATEAU_ROUNDS: usize = 4;
/// Whether RSS after each session flood's pause (`after`, in KiB) keeps
/// ratcheting up. Every round frees what it allocated (under valgrind's
/// massif the live heap fell back to the same 8.92 MB after each of six
/// rounds), but glibc keeps part of the freed pages, so RSS rises over the
/// first rounds and then levels off. With [`PLATEAU_ROUNDS`] rounds or more
/// the check is that it levelled off: the later half's highest value is at
/// most [`RSS_PLATEAU_LIMIT_KB`] above the earlier half's. A leak of about
/// 7 KB per created session would already fail it at six rounds of 255
/// sessions. With fewer rounds, where no plateau can show, the last round
/// may leave at most [`RSS_GROWTH_LIMIT_KB`] more than the first.
pub fn rss_ratchet(after: &[u64]) -> Option<String> {
    let (first, last) = (after.first()?, after.last()?);
    if after.len() < PLATEAU_ROUNDS {
        return (*last > first + RSS_GROWTH_LIMIT_KB).then(|| {
            format!(
                "server RSS grew from {} after the first session flood to {} after the last",
                fmt_mb(*first),
                fmt_mb(*last)
            )
        });
    }
    let (early, late) = after.split_at(after.len() / 2);
    let (early_max, late_max) = (early.iter().max()?, late.iter().max()?);
    (*late_max > early_max + RSS_PLATEAU_LIMIT_KB).then(|| {
        format!(
            "server RSS did not level off: at most {} after the first {} session floods, then up to {} after the last {}",
            fmt_mb(*early_max),
            early.len(),
            fmt_mb(*late_max),
            late.len()
        )
    })
}

/// The arguments of a benchmark that runs in rounds: `--rounds N` (at
/// least 1), or `--quick` for 10; `default` without either.
pub fn rounds_arg(default: usize) -> anyhow::Result<usize> {
    let mut rounds = default;
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "--rounds" => {
                rounds = it
                    .next()
                    .context("--rounds needs a value")?
                    .parse()
                    .context("--rounds N")?;
            }
            "--quick" => rounds = 10,
            other => anyhow::bail!("unknown argument {other:?}; use --rounds N or --quick"),
        }
    }
    anyhow::ensure!(rounds >= 1, "--rounds must be at least 1");
    Ok(rounds)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kb(mb: &[f64]) -> Vec<u64> {
        mb.iter().map(|m| (m * 1e6 / 1024.0) as u64).collect()
    }

    #[test]
    fn a_plateau_passes_and_a_ratchet_fails() {
        // RSS after each pause, 16 rounds measured on 2026-12-02.
        let measured = kb(&[
            40.8, 47.4, 51.7, 53.3, 53.0, 53.7, 53.7, 54.5, 54.0, 54.9, 54.1, 56.7, 54.1, 54.2,
            54.7, 54.3,
        ]);
        assert_eq!(rss_ratchet(&measured), None);
        assert_eq!(rss_ratchet(&measured[..6]), None);
        // 2 MB more after every round: a leak, however small the first step.
        let leak: Vec<f64> = (0..6).map(|i| 40.0 + 2.0 * f64::from(i)).collect();
        let err = rss_ratchet(&kb(&leak)).expect("a steady climb is a ratchet");
        assert!(err.contains("did not level off"), "{err}");
        // Too few rounds for a plateau: first to last.
        assert_eq!(rss_ratchet(&kb(&[40.0, 49.0])), None);
        assert!(rss_ratchet(&kb(&[40.0, 51.0])).is_some());
    }
}
