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
