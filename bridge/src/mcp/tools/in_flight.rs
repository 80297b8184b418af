//! A cap on one connection's tool calls in flight.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// At most this many tool calls in flight on one connection; past it a call
/// is refused at once. A client pipelining thousands of long polls would
/// otherwise hold memory (and doorbell registrations) for each until it
/// times out.
pub const MAX_CALLS_IN_FLIGHT: usize = 128;

/// One call counted in a connection's count of calls in flight until dropped.
pub(super) struct CallSlot(Arc<AtomicUsize>);

impl CallSlot {
    pub(super) fn take(calls: &Arc<AtomicUsize>) -> Option<Self> {
        let before = calls.fetch_add(1, Ordering::AcqRel);
        let slot = Self(calls.clone());
        (before < MAX_CALLS_IN_FLIGHT).then_some(slot)
    }
}

impl Drop for CallSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_in_flight_past_the_cap_are_refused_until_one_ends() {
        let calls = Arc::default();
        let held: Vec<_> = (0..MAX_CALLS_IN_FLIGHT)
            .map(|i| CallSlot::take(&calls).unwrap_or_else(|| panic!("call {i}")))
            .collect();
        assert!(CallSlot::take(&calls).is_none());
        assert!(CallSlot::take(&calls).is_none());
        drop(held);
        assert_eq!(
            calls.load(Ordering::Acquire),
            0,
            "refused calls leave no count"
        );
        assert!(CallSlot::take(&calls).is_some());
    }
}
