//! Audit rows that a hostile loop could multiply are counted in memory and
//! written as one aggregate row per (conversation, session, action, tool,
//! client) every [`FLUSH_EVERY`] and at shutdown.
//!
//! What is counted: reads that consume nothing (`message.check` with no
//! message, a peek or re-read, `check_partner_status`), self-reported
//! status heartbeats (`update_my_status`, with the latest status), and
//! refusals beyond a client's
//! itemized allowance (each client's first refusals in a minute still get
//! a row of their own, so an occasional mistake stays easy to read).
//! Messages, state changes and every consuming read are still audited one
//! row each, in the same transaction as the change.
//!
//! A crash (kill -9, power loss) loses at most the counts of the last
//! interval; it can never lose a message or a state change, because those
//! are never tallied.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use bridge_state::clock::{Millis, rfc3339};
use bridge_state::ratelimit::Limits;

/// How often counts are written to the audit log.
pub const FLUSH_EVERY: Duration = Duration::from_secs(60);
/// At most this many distinct counters; beyond it, new ones lose their
/// conversation and session (so random ids cannot grow memory).
const MAX_COUNTERS: usize = 10_000;
/// A refused caller names conversations it has not proven to be part of,
/// so a client's refusals get their own counters for this many distinct
/// conversations per interval; the rest share one counter without a
/// conversation (else invented ids would make one row each).
const CONVERSATIONS_PER_CLIENT: usize = 16;

/// One counter's identity.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Counter {
    pub conversation_id: Option<String>,
    pub session_id: Option<String>,
    /// The audit action the count stands for, e.g. `auth.failed`.
    pub action: &'static str,
    pub tool: String,
    /// `client 3` (one stdio process or HTTP session).
    pub client: String,
    pub refused: bool,
}

/// How many, and when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Count {
    pub n: u64,
    pub first: Millis,
    pub last: Millis,
    /// The latest value reported with the event (e.g. a status), if any.
    pub latest: Option<String>,
}

impl Count {
    /// The aggregate row's detail.
    pub fn detail(&self, c: &Counter) -> serde_json::Value {
        serde_json::json!({
            "aggregated": true,
            "count": self.n,
            "tool": c.tool,
            "client": c.client,
            "first": rfc3339(self.first),
            "last": rfc3339(self.last),
            "latest": self.latest,
            "flush_interval_secs": FLUSH_EVERY.as_secs(),
        })
    }
}

/// Counters waiting for the next flush, plus each client's allowance of
/// itemized refusal rows.
#[derive(Debug)]
pub struct Tally {
    counts: Mutex<Counts>,
    itemized: Mutex<HashMap<String, Vec<Millis>>>,
    allowance: Limits,
}

/// The counters of one interval, and how many distinct conversations each
/// client's refusals have named in it.
#[derive(Debug, Default)]
struct Counts {
    map: HashMap<Counter, Count>,
    named: HashMap<String, usize>,
}

impl Default for Tally {
    fn default() -> Self {
        Self {
            counts: Mutex::default(),
            itemized: Mutex::default(),
            allowance: Limits::parse("30/1m").expect("valid default"),
        }
    }
}

impl Tally {
    /// Adds one to `counter`.
    pub fn count(&self, counter: Counter, now: Millis) {
        self.count_with(counter, now, None);
    }

    /// Adds one to `counter`, remembering `latest` as its newest value.
    pub fn count_with(&self, mut counter: Counter, now: Millis, latest: Option<String>) {
        let mut guard = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        let Counts { map, named } = &mut *guard;
        if !map.contains_key(&counter) {
            let named = named.entry(counter.client.clone()).or_default();
            let over_client = counter.refused && *named >= CONVERSATIONS_PER_CLIENT;
            if over_client || map.len() >= MAX_COUNTERS {
                counter.conversation_id = None;
                counter.session_id = None;
            } else if counter.refused && counter.conversation_id.is_some() {
                *named += 1;
            }
        }
        map.entry(counter)
            .and_modify(|c| {
                c.n += 1;
                c.last = now;
                if latest.is_some() {
                    c.latest.clone_from(&latest);
                }
            })
            .or_insert(Count {
                n: 1,
                first: now,
                last: now,
                latest,
            });
    }

    /// True while `client` may still have refusals audited one row each
    /// this minute; spends one.
    pub fn itemize(&self, client: &str, now: Millis) -> bool {
        let mut map = self.itemized.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= MAX_COUNTERS {
            map.retain(|_, times| times.last().is_some_and(|&t| now - t < 60_000));
        }
        let times = map.entry(client.to_owned()).or_default();
        times.retain(|&t| now - t < 60_000);
        if self.allowance.check(now, times).is_ok() {
            times.push(now);
            true
        } else {
            false
        }
    }

    /// Takes every pending count (the caller writes them).
    pub fn drain(&self) -> Vec<(Counter, Count)> {
        let mut guard = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        guard.named.clear();
        let mut all: Vec<_> = guard.map.drain().collect();
        all.sort_by_key(|(_, c)| c.first);
        all
    }

    /// Puts counts back after a failed write, so the next flush retries.
    pub fn restore(&self, counts: Vec<(Counter, Count)>) {
        let mut guard = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        for (k, v) in counts {
            guard
                .map
                .entry(k)
                .and_modify(|c| {
                    c.n += v.n;
                    c.first = c.first.min(v.first);
                    if v.last > c.last {
                        c.latest = v.latest.clone();
                    }
                    c.last = c.last.max(v.last);
                })
                .or_insert(v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counter(conv: &str) -> Counter {
        Counter {
            conversation_id: Some(conv.into()),
            session_id: Some("a".into()),
            action: "message.check.empty",
            tool: "check_messages".into(),
            client: "client 1".into(),
            refused: false,
        }
    }

    #[test]
    fn repeated_events_become_one_count() {
        let t = Tally::default();
        for i in 0..1000 {
            t.count(counter("conv_1"), i);
        }
        t.count(counter("conv_2"), 5);
        let drained = t.drain();
        assert_eq!(drained.len(), 2);
        assert_eq!(
            drained[0].1,
            Count {
                n: 1000,
                first: 0,
                last: 999,
                latest: None
            }
        );
        assert!(t.drain().is_empty());
        t.restore(drained);
        assert_eq!(t.drain().len(), 2);
    }

    #[test]
    fn counters_are_bounded_whatever_ids_a_client_invents() {
        let t = Tally::default();
        for i in 0..(MAX_COUNTERS + 5000) {
            t.count(counter(&format!("conv_{i:016x}")), 0);
        }
        let drained = t.drain();
        assert!(drained.len() <= MAX_COUNTERS + 1);
        let total: u64 = drained.iter().map(|(_, c)| c.n).sum();
        assert_eq!(total, (MAX_COUNTERS + 5000) as u64);
    }

    #[test]
    fn invented_conversations_of_a_refused_client_share_one_counter() {
        let t = Tally::default();
        for i in 0..1000 {
            let mut c = counter(&format!("conv_{i:016x}"));
            c.refused = true;
            t.count(c, i);
        }
        let drained = t.drain();
        assert_eq!(drained.len(), CONVERSATIONS_PER_CLIENT + 1);
        let rest = drained
            .iter()
            .find(|(c, _)| c.conversation_id.is_none())
            .unwrap();
        assert_eq!(rest.1.n, 1000 - CONVERSATIONS_PER_CLIENT as u64);
    }

    #[test]
    fn each_client_gets_a_minute_allowance_of_itemized_rows() {
        let t = Tally::default();
        let spent = (0..100).filter(|&i| t.itemize("client 1", i)).count();
        assert_eq!(spent, 30);
        assert!(t.itemize("client 2", 100));
        assert!(t.itemize("client 1", 60_001));
    }
}
