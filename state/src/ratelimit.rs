//! Send quotas per authenticated (conversation, session).
//!
//! The quota is a sliding window over the sender's own stored sends, counted
//! inside the same write transaction that stores the next one. Keeping the
//! count in the database (not in process memory) means a quota holds across
//! restarts and across the several bridge processes that stdio clients each
//! start on one database; keying it by the authenticated session means one
//! conversation can never spend another's quota, and a caller who failed
//! authentication never reaches this code at all.

use rusqlite::{Connection, params};
use serde::{Deserialize, Serialize};

use crate::clock::Millis;

/// One window: at most `max` sends per `secs` seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Window {
    pub max: u32,
    pub secs: u32,
}

/// The quota; an empty list means unlimited (benchmarks only).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    pub windows: Vec<Window>,
}

impl Default for Limits {
    /// The original bridge's quota: 10 per minute, 100 per hour, 500 per day.
    fn default() -> Self {
        Self {
            windows: vec![
                Window { max: 10, secs: 60 },
                Window {
                    max: 100,
                    secs: 3600,
                },
                Window {
                    max: 500,
                    secs: 86_400,
                },
            ],
        }
    }
}

impl Limits {
    pub fn unlimited() -> Self {
        Self { windows: vec![] }
    }

    /// Parses `off`, or a comma-separated list like `10/60s,100/1h,500/1d`.
    pub fn parse(spec: &str) -> Result<Self, String> {
        let spec = spec.trim();
        if spec.eq_ignore_ascii_case("off") || spec.eq_ignore_ascii_case("none") {
            return Ok(Self::unlimited());
        }
        let mut windows = Vec::new();
        for part in spec.split(',') {
            let bad = || {
                format!(
                    "invalid rate-limit window `{part}`: expected COUNT/DURATION such as `10/1m`, `100/1h`, `500/1d` (or `off`)"
                )
            };
            let (max, dur) = part.trim().split_once('/').ok_or_else(bad)?;
            let max: u32 = max.trim().parse().map_err(|_| bad())?;
            let dur = dur.trim();
            let (num, unit) =
                dur.split_at(dur.find(|c: char| !c.is_ascii_digit()).unwrap_or(dur.len()));
            let n: u32 = if num.is_empty() {
                1
            } else {
                num.parse().map_err(|_| bad())?
            };
            let mult = match unit {
                "" | "s" => 1,
                "m" => 60,
                "h" => 3600,
                "d" => 86_400,
                _ => return Err(bad()),
            };
            if max == 0 || n == 0 {
                return Err(format!(
                    "rate-limit window `{part}` must have a count and duration above zero; use `off` to disable limits"
                ));
            }
            windows.push(Window {
                max,
                secs: n * mult,
            });
        }
        Ok(Self { windows })
    }

    /// The longest window, which bounds how far back sends must be counted.
    pub fn longest_secs(&self) -> Option<u32> {
        self.windows.iter().map(|w| w.secs).max()
    }

    /// Decides whether one more send is allowed at `now`, given the times of
    /// the sender's earlier sends within the longest window (any order).
    pub fn check(&self, now: Millis, recent_sends: &[Millis]) -> Result<(), Exceeded> {
        for w in &self.windows {
            let start = now - i64::from(w.secs) * 1000;
            let mut in_window: Vec<Millis> = recent_sends
                .iter()
                .copied()
                .filter(|&t| t > start)
                .collect();
            if in_window.len() >= w.max as usize {
                in_window.sort_unstable();
                // The send that frees a slot is the (len - max + 1)-th oldest.
                let freeing = in_window[in_window.len() - w.max as usize];
                let retry_after_ms = (freeing + i64::from(w.secs) * 1000 - now).max(0);
                return Err(Exceeded {
                    window: *w,
                    retry_after_secs: (retry_after_ms + 999) / 1000,
                });
            }
        }
        Ok(())
    }
}

impl std::fmt::Display for Limits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.windows.is_empty() {
            return f.write_str("off");
        }
        let parts: Vec<String> = self
            .windows
            .iter()
            .map(|w| format!("{}/{}s", w.max, w.secs))
            .collect();
        f.write_str(&parts.join(","))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exceeded {
    pub window: Window,
    pub retry_after_secs: i64,
}

impl std::fmt::Display for Exceeded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "rate limit exceeded: at most {} sends per {} s for this session; retry in {} s",
            self.window.max, self.window.secs, self.retry_after_secs
        )
    }
}

/// Counts one `kind` action of a session against `limits` in the
/// `quota_events` table, or says which window is full (and counts
/// nothing). Call it inside the write transaction that does the action, so
/// the count and the action commit together.
pub fn take(
    conn: &Connection,
    limits: &Limits,
    conversation_id: &str,
    session_id: &str,
    kind: &str,
    now: Millis,
) -> rusqlite::Result<Result<(), Exceeded>> {
    let Some(longest) = limits.longest_secs() else {
        return Ok(Ok(()));
    };
    let horizon = now - i64::from(longest) * 1000;
    conn.prepare_cached(
        "DELETE FROM quota_events WHERE conversation_id = ?1 AND session_id = ?2 AND kind = ?3 AND at <= ?4",
    )?
    .execute(params![conversation_id, session_id, kind, horizon])?;
    let recent: Vec<Millis> = conn
        .prepare_cached(
            "SELECT at FROM quota_events WHERE conversation_id = ?1 AND session_id = ?2 AND kind = ?3",
        )?
        .query_map(params![conversation_id, session_id, kind], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    if let Err(e) = limits.check(now, &recent) {
        return Ok(Err(e));
    }
    conn.prepare_cached(
        "INSERT INTO quota_events (conversation_id, session_id, kind, at) VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![conversation_id, session_id, kind, now])?;
    Ok(Ok(()))
}

/// How often failed authentications may happen before backoff, and how
/// often each client may create conversations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThrottleLimits {
    /// Failed authentications allowed per key, e.g. `20/1m`.
    pub auth_failures: Limits,
    /// Conversations one client may create, e.g. `60/1m`.
    pub creates_per_client: Limits,
}

impl Default for ThrottleLimits {
    fn default() -> Self {
        Self {
            auth_failures: Limits::parse("20/1m").expect("valid default"),
            creates_per_client: Limits::parse("60/1m,600/1h").expect("valid default"),
        }
    }
}

/// Every operator-set limit on what clients can make the server hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quotas {
    pub throttle: ThrottleLimits,
    /// Conversations all clients together may create, counted in the
    /// database so every server process on it shares the count.
    pub creates_global: Limits,
    /// Live (unexpired) conversations the database may hold.
    pub max_live_conversations: u64,
}

/// The default ceiling on live conversations.
pub const DEFAULT_MAX_LIVE: u64 = 10_000;

impl Default for Quotas {
    fn default() -> Self {
        Self {
            throttle: ThrottleLimits::default(),
            creates_global: Limits::parse("600/1m").expect("valid default"),
            max_live_conversations: DEFAULT_MAX_LIVE,
        }
    }
}

impl Quotas {
    /// Unlimited, for benchmarks that create conversations in bulk.
    pub fn unlimited() -> Self {
        Self {
            throttle: ThrottleLimits {
                auth_failures: Limits::unlimited(),
                creates_per_client: Limits::unlimited(),
            },
            creates_global: Limits::unlimited(),
            max_live_conversations: u64::MAX,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Millis = 60_000;

    #[test]
    fn default_quota_is_ten_per_minute_then_frees_as_the_window_slides() {
        let l = Limits::default();
        let t0 = 1_000_000_000;
        let mut sent = vec![];
        for i in 0..10 {
            let now = t0 + i * 1000;
            l.check(now, &sent).unwrap();
            sent.push(now);
        }
        let e = l.check(t0 + 10_000, &sent).unwrap_err();
        assert_eq!(e.window, Window { max: 10, secs: 60 });
        // The oldest send (t0) leaves the window at t0 + 60 s.
        assert_eq!(e.retry_after_secs, 50);
        assert!(l.check(t0 + MIN - 1, &sent).is_err());
        l.check(t0 + MIN, &sent).unwrap();
    }

    #[test]
    fn hourly_and_daily_windows_bind_after_the_minute_window() {
        let l = Limits::default();
        let t0 = 0;
        // 100 sends spread 10 per minute over 10 minutes: the hour is full.
        let sent: Vec<Millis> = (0..100)
            .map(|i| t0 + (i / 10) * MIN + (i % 10) * 1000)
            .collect();
        let now = t0 + 11 * MIN;
        let e = l.check(now, &sent).unwrap_err();
        assert_eq!(e.window.secs, 3600);
        assert!(l.check(t0 + 60 * MIN + 1, &sent).is_ok());
        let day: Vec<Millis> = (0..500).map(|i| i * 10 * MIN / 10).collect();
        let e = l.check(500 * MIN, &day).unwrap_err();
        assert_eq!(e.window.secs, 86_400);
    }

    #[test]
    fn unlimited_never_refuses() {
        let sent: Vec<Millis> = vec![0; 10_000];
        Limits::unlimited().check(0, &sent).unwrap();
    }

    #[test]
    fn parse_table() {
        type Case = (&'static str, Result<Vec<(u32, u32)>, &'static str>);
        let cases: &[Case] = &[
            ("off", Ok(vec![])),
            (
                "10/1m,100/1h,500/1d",
                Ok(vec![(10, 60), (100, 3600), (500, 86_400)]),
            ),
            ("5/30s", Ok(vec![(5, 30)])),
            ("5/30", Ok(vec![(5, 30)])),
            ("7/m", Ok(vec![(7, 60)])),
            ("0/1m", Err("above zero")),
            ("ten/1m", Err("expected COUNT/DURATION")),
            ("10/1w", Err("expected COUNT/DURATION")),
            ("10", Err("expected COUNT/DURATION")),
        ];
        for (spec, want) in cases {
            let got = Limits::parse(spec);
            match (want, got) {
                (Ok(w), Ok(l)) => {
                    let pairs: Vec<(u32, u32)> =
                        l.windows.iter().map(|w| (w.max, w.secs)).collect();
                    assert_eq!(&pairs, w, "{spec}");
                }
                (Err(msg), Err(e)) => assert!(e.contains(msg), "{spec}: {e}"),
                (w, g) => panic!("{spec}: wanted {w:?}, got {g:?}"),
            }
        }
    }
}
