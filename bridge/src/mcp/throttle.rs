//! In-memory limits on what a hostile client can make the server do:
//! failed authentications (with backoff) and conversation creations, per
//! client and per conversation.
//!
//! These live in process memory, not in the database, because their point
//! is to protect the database: a refused request must cost no write. An
//! stdio client gets its own server process, so "this process" is "this
//! client"; over HTTP each MCP session is a client, and so is its peer
//! address when the transport reports one. The global limits that must hold
//! across processes (creations per minute, live conversations) are counted
//! in the database by `service/` instead.
//!
//! A correct token is never throttled: when a key is blocked, the tool layer
//! verifies the presented token read-only and lets a correct one through,
//! so only wrong tokens see the refusal. 256-bit tokens cannot be guessed;
//! the throttle exists to keep the audit log and the write lock small.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Mutex;

use crate::mcp::service::ToolError;
use bridge_state::clock::Millis;
use bridge_state::ratelimit::Limits;

// The limits are settings both processes read, so they live with the
// settings; the in-memory throttle that enforces them is the bridge's.
pub use bridge_state::ratelimit::{DEFAULT_MAX_LIVE, Quotas, ThrottleLimits};

/// At most this many keys are tracked; beyond it, idle keys are dropped and
/// new conversation keys are not tracked (client keys still are).
const MAX_KEYS: usize = 10_000;
/// The first block lasts 2 s; each further one doubles, up to this.
const MAX_BACKOFF_MS: Millis = 300_000;
/// A key with no failure for this long starts over at the shortest block.
const FORGET_MS: Millis = 15 * 60_000;

/// Something limits are counted against. Extend with new transports.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Key {
    /// One MCP connection: an stdio server process, or one HTTP session.
    Client(u64),
    /// The remote address of an HTTP client, shared by all its sessions.
    Peer(IpAddr),
    /// A conversation named by a caller, whoever the caller is.
    Conversation(String),
}

impl Key {
    fn is_conversation(&self) -> bool {
        matches!(self, Self::Conversation(_))
    }
}

/// Checks the database-wide limits inside the creating transaction.
/// Only live conversations are read (through the expiry index), so the
/// cost is bounded by the ceiling, not by the table.
pub fn check_global(
    quotas: &Quotas,
    conn: &rusqlite::Connection,
    now: Millis,
) -> Result<Result<(), ToolError>, rusqlite::Error> {
    let live = bridge_state::conversations::live_created_at(conn, now)?;
    if live.len() as u64 >= quotas.max_live_conversations {
        return Ok(Err(ToolError::Throttled(format!(
            "this bridge holds its ceiling of {} live conversations; wait for some to expire, or ask the operator to raise `--max-conversations`",
            quotas.max_live_conversations
        ))));
    }
    if let Err(e) = quotas.creates_global.check(now, &live) {
        return Ok(Err(ToolError::Throttled(format!(
            "too many conversations created on this bridge: at most {} per {} s for all clients together; retry in {} s",
            e.window.max, e.window.secs, e.retry_after_secs
        ))));
    }
    Ok(Ok(()))
}

#[derive(Debug, Default)]
struct Strikes {
    failures: VecDeque<Millis>,
    /// Authentications begun and not yet judged: counted as failures until
    /// they are, so a burst of concurrent bad tokens cannot slip past.
    pending: u32,
    blocked_until: Millis,
    level: u32,
    last_failure: Millis,
}

/// Failed-authentication throttle and per-client creation limiter.
#[derive(Debug, Default)]
pub struct Throttle {
    limits: ThrottleLimits,
    strikes: Mutex<HashMap<Key, Strikes>>,
    creates: Mutex<HashMap<u64, VecDeque<Millis>>>,
}

/// What the gate decided before an authenticated call.
#[derive(Debug, PartialEq, Eq)]
pub enum Gate {
    /// Go ahead; report the outcome with [`Throttle::judged`].
    Pass,
    /// A key is blocked: verify the token read-only first; a correct one
    /// passes, a wrong one is refused with this retry time.
    VerifyFirst { retry_after_secs: i64 },
}

/// A call let through [`Throttle::gate`]. [`Ticket::judge`] reports its
/// outcome; a ticket dropped unjudged (the call ended without one: its HTTP
/// client went away mid-call) takes its pending count back as no failure,
/// so a pending count never outlives its call and weighs as a failure for
/// good.
pub struct Ticket<'a> {
    throttle: &'a Throttle,
    keys: &'a [Key],
    now: Millis,
    open: bool,
}

impl<'a> Ticket<'a> {
    /// For a call [`Throttle::gate`] answered [`Gate::Pass`] at `now`.
    pub fn new(throttle: &'a Throttle, keys: &'a [Key], now: Millis) -> Self {
        Self {
            throttle,
            keys,
            now,
            open: true,
        }
    }

    pub fn judge(mut self, now: Millis, failed: bool) {
        self.open = false;
        self.throttle.judged(self.keys, now, failed);
    }
}

impl Drop for Ticket<'_> {
    fn drop(&mut self) {
        if self.open {
            self.throttle.judged(self.keys, self.now, false);
        }
    }
}

impl Throttle {
    pub fn new(limits: ThrottleLimits) -> Self {
        Self {
            limits,
            ..Default::default()
        }
    }

    /// Called before authenticating a call from `keys`.
    pub fn gate(&self, keys: &[Key], now: Millis) -> Gate {
        let limits = &self.limits.auth_failures;
        let mut map = self.strikes.lock().unwrap_or_else(|p| p.into_inner());
        let mut wait: Option<i64> = None;
        for key in keys {
            let Some(s) = map.get(key) else { continue };
            let mut recent: Vec<Millis> = s.failures.iter().copied().collect();
            recent.extend(std::iter::repeat_n(now, s.pending as usize));
            let block = if now < s.blocked_until {
                Some((s.blocked_until - now + 999) / 1000)
            } else {
                limits.check(now, &recent).err().map(|e| e.retry_after_secs)
            };
            if let Some(b) = block {
                wait = Some(wait.unwrap_or(0).max(b.max(1)));
            }
        }
        if let Some(retry_after_secs) = wait {
            return Gate::VerifyFirst { retry_after_secs };
        }
        for key in keys {
            if let Some(s) = tracked(&mut map, key, now, limits) {
                s.pending += 1;
            }
        }
        Gate::Pass
    }

    /// Reports how a call that passed the gate authenticated.
    pub fn judged(&self, keys: &[Key], now: Millis, failed: bool) {
        let mut map = self.strikes.lock().unwrap_or_else(|p| p.into_inner());
        for key in keys {
            if let Some(s) = map.get_mut(key) {
                s.pending = s.pending.saturating_sub(1);
            }
        }
        if failed {
            self.fail_locked(&mut map, keys, now);
        }
    }

    /// Records a wrong token refused at the gate (it extends the backoff).
    pub fn failed_at_gate(&self, keys: &[Key], now: Millis) {
        let mut map = self.strikes.lock().unwrap_or_else(|p| p.into_inner());
        self.fail_locked(&mut map, keys, now);
    }

    fn fail_locked(&self, map: &mut HashMap<Key, Strikes>, keys: &[Key], now: Millis) {
        let limits = &self.limits.auth_failures;
        for key in keys {
            let Some(s) = tracked(map, key, now, limits) else {
                continue;
            };
            if now - s.last_failure > FORGET_MS {
                s.level = 0;
            }
            s.last_failure = now;
            s.failures.push_back(now);
            let recent: Vec<Millis> = s.failures.iter().copied().collect();
            if let Err(e) = limits.check(now, &recent)
                && now >= s.blocked_until
            {
                // Backoff: 2 s, 4 s, 8 s … but never shorter than the window.
                let backoff = (2_000i64 << s.level.min(20)).min(MAX_BACKOFF_MS);
                s.blocked_until = now + backoff.max(e.retry_after_secs * 1000);
                s.level += 1;
            }
        }
    }

    /// Counts one conversation creation by `client`, or says when to retry.
    pub fn take_create(
        &self,
        client: u64,
        now: Millis,
    ) -> Result<(), bridge_state::ratelimit::Exceeded> {
        let limits = &self.limits.creates_per_client;
        let Some(longest) = limits.longest_secs() else {
            return Ok(());
        };
        let mut map = self.creates.lock().unwrap_or_else(|p| p.into_inner());
        let times = map.entry(client).or_default();
        let horizon = now - i64::from(longest) * 1000;
        while times.front().is_some_and(|&t| t <= horizon) {
            times.pop_front();
        }
        let recent: Vec<Millis> = times.iter().copied().collect();
        limits.check(now, &recent)?;
        times.push_back(now);
        Ok(())
    }

    /// Keys currently tracked (for tests of the memory bound).
    pub fn tracked_keys(&self) -> usize {
        self.strikes.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

/// The entry for `key`, created if there is room; prunes old failures.
fn tracked<'m>(
    map: &'m mut HashMap<Key, Strikes>,
    key: &Key,
    now: Millis,
    limits: &Limits,
) -> Option<&'m mut Strikes> {
    if limits.windows.is_empty() {
        return None;
    }
    let horizon = now - i64::from(limits.longest_secs().unwrap_or(0)) * 1000;
    if !map.contains_key(key) && map.len() >= MAX_KEYS {
        map.retain(|_, s| {
            s.pending > 0
                || s.blocked_until > now
                || s.failures.back().is_some_and(|&t| t > horizon)
        });
        if map.len() >= MAX_KEYS && key.is_conversation() {
            return None;
        }
    }
    let s = map.entry(key.clone()).or_default();
    while s.failures.front().is_some_and(|&t| t <= horizon) {
        s.failures.pop_front();
    }
    Some(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn throttle(auth: &str) -> Throttle {
        Throttle::new(ThrottleLimits {
            auth_failures: Limits::parse(auth).unwrap(),
            creates_per_client: Limits::parse("3/1m").unwrap(),
        })
    }

    fn fail(t: &Throttle, keys: &[Key], now: Millis) -> Gate {
        let g = t.gate(keys, now);
        match g {
            Gate::Pass => t.judged(keys, now, true),
            Gate::VerifyFirst { .. } => t.failed_at_gate(keys, now),
        }
        g
    }

    #[test]
    fn a_call_dropped_before_its_outcome_leaves_no_pending_count() {
        let t = throttle("5/1m");
        let keys = [Key::Client(1)];
        let t0 = 1_000_000;
        for i in 0..10 {
            assert_eq!(t.gate(&keys, t0 + i), Gate::Pass, "call {i}");
            drop(Ticket::new(&t, &keys, t0 + i));
        }
        assert_eq!(t.gate(&keys, t0 + 10), Gate::Pass);
        // A judged one counts as before.
        Ticket::new(&t, &keys, t0 + 10).judge(t0 + 10, true);
        assert_eq!(t.strikes.lock().unwrap()[&keys[0]].pending, 0);
    }

    #[test]
    fn failures_past_the_allowance_block_with_doubling_backoff() {
        let t = throttle("5/1m");
        let keys = [Key::Client(1), Key::Conversation("conv_x".into())];
        let t0 = 1_000_000;
        for i in 0..5 {
            assert_eq!(fail(&t, &keys, t0 + i), Gate::Pass, "failure {i}");
        }
        let Gate::VerifyFirst { retry_after_secs } = t.gate(&keys, t0 + 10) else {
            panic!("not blocked after the allowance")
        };
        // Never shorter than the window the failures sit in.
        assert_eq!(retry_after_secs, 60);
        // Once the window has passed, five more failures block again, for
        // longer than the first time only when the backoff outgrows the window.
        let t1 = t0 + 61_000;
        assert_eq!(t.gate(&keys, t1), Gate::Pass);
        t.judged(&keys, t1, false);
        for i in 0..5 {
            fail(&t, &keys, t1 + i);
        }
        assert!(matches!(t.gate(&keys, t1 + 10), Gate::VerifyFirst { .. }));
    }

    #[test]
    fn the_conversation_key_blocks_other_clients_guessing_at_it() {
        let t = throttle("3/1m");
        let conv = Key::Conversation("conv_y".into());
        for c in 0..3 {
            fail(&t, &[Key::Client(c), conv.clone()], 0);
        }
        assert!(matches!(
            t.gate(&[Key::Client(99), conv.clone()], 1),
            Gate::VerifyFirst { .. }
        ));
        // Another conversation from a fresh client is not affected.
        assert_eq!(
            t.gate(&[Key::Client(98), Key::Conversation("conv_z".into())], 1),
            Gate::Pass
        );
    }

    #[test]
    fn concurrent_unjudged_attempts_count_against_the_allowance() {
        let t = throttle("3/1m");
        let keys = [Key::Client(7)];
        for _ in 0..3 {
            assert_eq!(t.gate(&keys, 0), Gate::Pass);
        }
        assert!(matches!(t.gate(&keys, 0), Gate::VerifyFirst { .. }));
        for _ in 0..3 {
            t.judged(&keys, 0, false);
        }
        assert_eq!(t.gate(&keys, 0), Gate::Pass);
    }

    #[test]
    fn backoff_grows_and_is_forgotten_after_quiet() {
        let t = throttle("2/1s");
        let keys = [Key::Client(3)];
        let mut now = 0;
        let mut blocks = vec![];
        for _ in 0..4 {
            fail(&t, &keys, now);
            fail(&t, &keys, now);
            let Gate::VerifyFirst { retry_after_secs } = t.gate(&keys, now) else {
                panic!("not blocked")
            };
            blocks.push(retry_after_secs);
            now += retry_after_secs * 1000;
        }
        assert_eq!(blocks, [2, 4, 8, 16]);
        now += FORGET_MS + 1;
        fail(&t, &keys, now);
        fail(&t, &keys, now);
        assert_eq!(
            t.gate(&keys, now),
            Gate::VerifyFirst {
                retry_after_secs: 2
            }
        );
    }

    #[test]
    fn off_tracks_nothing_and_never_blocks() {
        let t = throttle("off");
        for i in 0..100 {
            assert_eq!(fail(&t, &[Key::Client(1)], i), Gate::Pass);
        }
        assert_eq!(t.tracked_keys(), 0);
    }

    #[test]
    fn random_conversation_ids_cannot_grow_memory_without_bound() {
        let t = throttle("20/1m");
        for i in 0..(MAX_KEYS as i64 + 500) {
            let keys = [Key::Client(1), Key::Conversation(format!("conv_{i:016x}"))];
            fail(&t, &keys, 0);
        }
        assert!(t.tracked_keys() <= MAX_KEYS);
    }

    #[test]
    fn creations_are_limited_per_client() {
        let t = throttle("off");
        for i in 0..3 {
            t.take_create(1, i).unwrap();
        }
        let e = t.take_create(1, 10).unwrap_err();
        assert_eq!(e.retry_after_secs, 60);
        t.take_create(2, 10).unwrap();
        t.take_create(1, 60_001).unwrap();
    }
}
