//! A warm pool's bookkeeping for one configuration: its containers, and
//! the demand that sizes it (see the parent module's docs).

use std::collections::VecDeque;
use std::time::Duration;

use bollard::container::AttachContainerResults;
use bridge_state::yolo::ExecParams;
use tokio::time::Instant;

use crate::sandbox::Started;

/// How many warm containers a configuration keeps.
#[derive(Debug, Clone, Copy)]
pub struct Sizing {
    /// Always kept (`--pool-size`).
    pub min: usize,
    /// Never more, however high the demand (`--max-parallel`: more could
    /// not run at once anyway).
    pub max: usize,
    /// How long a demand is remembered before the pool shrinks back.
    pub idle: Duration,
}

impl Sizing {
    /// A pool that never grows.
    pub fn fixed(n: usize) -> Self {
        Self {
            min: n,
            max: n,
            idle: Duration::from_secs(60),
        }
    }
}

/// A container start time to assume before one was measured.
const FIRST_START_GUESS: Duration = Duration::from_millis(500);
/// How long refilling waits after a take while warm containers are left
/// and the taken ones are still running (see [`Slot::hold_refill`]).
pub(super) const REFILL_HOLD: Duration = Duration::from_millis(150);
/// Takes remembered per configuration for the demand count.
const TAKES_KEPT: usize = 256;

/// A pre-started container and, when attaching succeeded, its stream.
pub(super) struct Warm {
    pub(super) container: Started,
    pub(super) attached: Option<AttachContainerResults>,
}

pub(super) struct Slot {
    pub(super) params: ExecParams,
    pub(super) warm: VecDeque<Warm>,
    /// Containers being started right now for this slot.
    pub(super) starting: usize,
    /// Takes waiting for one of those starts.
    pub(super) waiting: usize,
    /// Containers handed out and not yet removed.
    pub(super) in_use: usize,
    /// The last start failed (e.g. image missing): do not retry in a loop.
    pub(super) broken: bool,
    /// When containers were taken, newest last.
    pub(super) takes: VecDeque<Instant>,
    /// Recent container start time (moving average).
    pub(super) start_time: Duration,
    /// The highest demand seen, and when it was last reached.
    pub(super) peak: usize,
    pub(super) peak_at: Instant,
    /// Jobs already approved or queued for this configuration: demand
    /// known ahead, kept warm however long ago the last burst was.
    pub(super) known: usize,
}

impl Slot {
    pub(super) fn new(params: ExecParams, now: Instant) -> Self {
        Self {
            params,
            warm: VecDeque::new(),
            starting: 0,
            waiting: 0,
            in_use: 0,
            broken: false,
            takes: VecDeque::new(),
            start_time: FIRST_START_GUESS,
            peak: 0,
            peak_at: now,
            known: 0,
        }
    }

    /// Records a take and the demand it shows: the takes within one start
    /// time, and the containers in use or waited for.
    pub(super) fn note_take(&mut self, now: Instant, idle: Duration) {
        if self.takes.len() == TAKES_KEPT {
            self.takes.pop_front();
        }
        self.takes.push_back(now);
        let window = now.checked_sub(self.start_time).unwrap_or(now);
        let recent = self
            .takes
            .iter()
            .rev()
            .take_while(|t| **t >= window)
            .count();
        let demand = recent.max(self.in_use + self.waiting + 1);
        if demand >= self.peak || now.duration_since(self.peak_at) > idle {
            self.peak = demand;
            self.peak_at = now;
        }
    }

    /// While containers just handed out are running their commands and
    /// warm ones are left, starting more would take CPU from those
    /// commands (a start costs the engine far more than a hand-off):
    /// refilling waits up to [`REFILL_HOLD`] after the last take.
    pub(super) fn hold_refill(&self, now: Instant) -> Option<Instant> {
        let last = *self.takes.back()?;
        let until = last + REFILL_HOLD;
        (self.in_use > 0 && !self.warm.is_empty() && now < until).then_some(until)
    }

    /// A take found no warm container: the demand is at least twice what
    /// the pool holds.
    pub(super) fn ran_dry(&mut self, now: Instant, max: usize) {
        self.peak = (self.peak.max(1) * 2).min(max.max(1));
        self.peak_at = now;
    }

    pub(super) fn note_start_time(&mut self, took: Duration) {
        // Exponential moving average, weight 1/4 to the newest.
        self.start_time = (self.start_time * 3 + took) / 4;
    }

    /// Warm containers to keep now.
    pub(super) fn target(&self, sizing: Sizing, now: Instant) -> usize {
        let peak = if now.duration_since(self.peak_at) > sizing.idle {
            0
        } else {
            self.peak
        };
        peak.max(self.known)
            .clamp(sizing.min, sizing.max.max(sizing.min))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_demand_holds_the_pool_up_after_the_idle_time() {
        let t0 = Instant::now();
        let sizing = Sizing {
            min: 2,
            max: 8,
            idle: Duration::from_secs(60),
        };
        let mut slot = Slot::new(crate::engine::fake::params(), t0);
        slot.ran_dry(t0, sizing.max);
        slot.ran_dry(t0, sizing.max);
        assert_eq!(slot.target(sizing, t0), 4);
        let later = t0 + Duration::from_secs(61);
        assert_eq!(slot.target(sizing, later), 2, "shrinks once idle");
        slot.known = 5;
        assert_eq!(slot.target(sizing, later), 5, "approved jobs keep it up");
        slot.known = 50;
        assert_eq!(slot.target(sizing, later), 8, "never past max");
    }
}
