//! The connection table behind the accept loop's limits: who holds a
//! place (per address, oldest first), which idle connection an address with
//! fewer connections may take the place of, what the limits did since the
//! last report, and the guards that count a connection's requests in flight.

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio_util::sync::CancellationToken;

use super::ConnLimits;

#[derive(Debug)]
pub(super) struct Entry {
    pub(super) peer: IpAddr,
    /// Requests in flight on this connection (0: idle or reading a head).
    pub(super) busy: Arc<AtomicUsize>,
    pub(super) evict: CancellationToken,
}

#[derive(Debug, Default)]
pub(super) struct Table {
    pub(super) next_id: u64,
    /// Each address's connections, by id, so oldest first.
    pub(super) per_peer: HashMap<IpAddr, BTreeSet<u64>>,
    pub(super) conns: HashMap<u64, Entry>,
}

impl Table {
    pub(super) fn remove(&mut self, id: u64) {
        if let Some(e) = self.conns.remove(&id)
            && let Some(ids) = self.per_peer.get_mut(&e.peer)
        {
            ids.remove(&id);
            if ids.is_empty() {
                self.per_peer.remove(&e.peer);
            }
        }
    }

    pub(super) fn count(&self, peer: &IpAddr) -> usize {
        self.per_peer.get(peer).map_or(0, BTreeSet::len)
    }

    /// The oldest connection with no request in flight of the address with
    /// the most connections, if `newcomer` has none, or at least two fewer
    /// than that address: addresses within one of each other cannot take
    /// places from each other (a trade would leave them as unequal as
    /// before, so a flood would churn forever), while a new client always
    /// finds a place.
    pub(super) fn evictable(&self, newcomer: &IpAddr) -> Option<u64> {
        let (_, ids) = self.per_peer.iter().max_by_key(|(_, ids)| ids.len())?;
        let have = self.count(newcomer);
        if have > 0 && have + 2 > ids.len() {
            return None;
        }
        ids.iter()
            .copied()
            .find(|id| self.conns[id].busy.load(Ordering::Acquire) == 0)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Refusal {
    PerPeer = 0,
    Total = 1,
}

impl Refusal {
    pub(super) fn reason(self) -> &'static str {
        match self {
            Refusal::PerPeer => "too many connections from your address",
            Refusal::Total => "the server is at its connection limit",
        }
    }
}

/// The live connections; a cheap handle.
#[derive(Debug, Clone)]
pub(super) struct Conns {
    pub(super) limits: ConnLimits,
    pub(super) table: Arc<Mutex<Table>>,
    pub(super) counts: Arc<Counts>,
}

/// What the limits did since the last report.
#[derive(Debug, Default)]
pub(super) struct Counts {
    pub(super) admitted: AtomicU64,
    pub(super) evicted: AtomicU64,
    pub(super) refused_per_peer: AtomicU64,
    pub(super) refused_total: AtomicU64,
}

impl Counts {
    /// Logs and resets the counts if a limit engaged.
    pub(super) fn report(&self, since: Instant) {
        let take = |c: &AtomicU64| c.swap(0, Ordering::Relaxed);
        let (per_peer, total) = (take(&self.refused_per_peer), take(&self.refused_total));
        let (evicted, admitted) = (take(&self.evicted), take(&self.admitted));
        if per_peer + total + evicted > 0 {
            tracing::warn!(
                refused_per_address = per_peer,
                refused_total = total,
                evicted,
                admitted,
                seconds = since.elapsed().as_secs(),
                "HTTP connection limits engaged: connections were refused with 503 or idle ones closed to make room (a flood, or --http-max-connections / --http-max-connections-per-peer too low for the clients)"
            );
        }
    }
}

/// A connection's place in the table; frees it on drop.
pub(super) struct Admitted {
    pub(super) table: Arc<Mutex<Table>>,
    pub(super) id: u64,
    pub(super) busy: Arc<AtomicUsize>,
    pub(super) evict: CancellationToken,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        lock(&self.table).remove(self.id);
    }
}

pub(super) fn lock(t: &Mutex<Table>) -> std::sync::MutexGuard<'_, Table> {
    // Only counters live behind this lock; a panic cannot break them halfway.
    t.lock().unwrap_or_else(|e| e.into_inner())
}

impl Conns {
    pub(super) fn new(limits: ConnLimits) -> Self {
        Self {
            limits,
            table: Arc::default(),
            counts: Arc::default(),
        }
    }

    pub(super) fn admit(&self, peer: IpAddr) -> Result<Admitted, Refusal> {
        let count = |c: &AtomicU64| c.fetch_add(1, Ordering::Relaxed);
        let mut t = lock(&self.table);
        if t.count(&peer) >= self.limits.max_per_peer {
            count(&self.counts.refused_per_peer);
            return Err(Refusal::PerPeer);
        }
        if t.conns.len() >= self.limits.max_total {
            let Some(victim) = t.evictable(&peer) else {
                count(&self.counts.refused_total);
                return Err(Refusal::Total);
            };
            t.conns[&victim].evict.cancel();
            t.remove(victim);
            count(&self.counts.evicted);
        }
        count(&self.counts.admitted);
        let id = t.next_id;
        t.next_id += 1;
        t.per_peer.entry(peer).or_default().insert(id);
        let busy = Arc::new(AtomicUsize::new(0));
        let evict = CancellationToken::new();
        t.conns.insert(
            id,
            Entry {
                peer,
                busy: busy.clone(),
                evict: evict.clone(),
            },
        );
        Ok(Admitted {
            table: self.table.clone(),
            id,
            busy,
            evict,
        })
    }
}

/// Counts a request in flight until the response body is dropped.
pub struct InFlight(Arc<AtomicUsize>);

impl InFlight {
    pub(super) fn new(busy: &Arc<AtomicUsize>) -> Self {
        busy.fetch_add(1, Ordering::AcqRel);
        Self(busy.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A response body that keeps `guard` alive until the body is dropped.
pub struct WithGuard<G> {
    pub body: axum::body::Body,
    pub guard: G,
}

impl<G: Send + Unpin + 'static> http_body::Body for WithGuard<G> {
    type Data = axum::body::Bytes;
    type Error = axum::Error;
    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        std::pin::Pin::new(&mut self.body).poll_frame(cx)
    }
    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }
    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}
