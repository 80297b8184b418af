//! The HTTP accept loop: a header-read timeout, a cap on concurrent
//! connections (in total and per peer address), refusal instead of queueing,
//! and a graceful shutdown that drains.
//!
//! `axum::serve` has neither a header timeout nor a connection cap, so one
//! slow client per socket (slowloris) could hold the server: 19 990
//! half-sent requests stayed open forever and `/healthz` timed out.
//! Here every connection is served by hyper's HTTP/1 server with a timer,
//! so a request head (and an idle keep-alive gap) must arrive within the
//! header timeout. Over a cap, a connection is answered with a fixed 503
//! and closed at once, without reading, so refusing costs one write.
//!
//! Refusing must be cheaper than connecting. Under a flood of reconnecting
//! clients the kernel's accept queue holds every new connection, the
//! legitimate ones too, until this loop takes it, so the queue's wait is
//! what a legitimate client feels (and once the queue is full its SYN is
//! dropped and resent a second later). So the limits are checked on the
//! bare accepted socket: a refused connection is never registered with the
//! runtime (one `accept4`, one non-blocking `send` of a pre-rendered 503,
//! one `close`), and one accept task per core drains the queue in batches.
//!
//! When the total is full, a client from an address with fewer connections
//! than the busiest address takes the place of that address's oldest
//! connection with no request in flight (a slow head, or an idle
//! keep-alive): otherwise an attacker with more addresses than
//! `max_total / max_per_peer` could fill the table and lock everyone out
//! until the header timeout, again and again. An address with no
//! connection always gets a place this way; one with some only when it has
//! at least two fewer than the busiest, so attacker addresses within one of
//! each other do not trade places (each trade cost a whole connection
//! setup, and churned the table). A connection serving a request (a long
//! poll, an SSE stream) is never evicted.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

mod table;

use table::*;
pub use table::{InFlight, WithGuard};

/// Connection limits and the header-read timeout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnLimits {
    pub max_total: usize,
    /// Per client address; behind a port-publishing proxy every client has
    /// the proxy's address.
    pub max_per_peer: usize,
    /// A request head (or the next one on a kept-alive connection) must
    /// arrive within this.
    pub header_timeout: Duration,
    /// A request body must have arrived this long after its head.
    pub body_timeout: Duration,
}

impl Default for ConnLimits {
    fn default() -> Self {
        Self {
            max_total: 1024,
            max_per_peer: 256,
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
        }
    }
}

/// How long shutdown waits for connections to finish after telling them to.
const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// A pause after a failed `accept` (e.g. out of file descriptors), so the
/// loop does not spin while the condition lasts.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// Connections one accept task takes before it lets the runtime run other
/// tasks (the admitted connections among them).
const ACCEPT_BATCH: usize = 64;

/// At most this many accept tasks (one per core below it).
const MAX_ACCEPTORS: usize = 4;

/// How often the refusal counts are logged while the limits are engaged.
const REPORT_EVERY: Duration = Duration::from_secs(60);

/// Seconds a refused client is told to wait (`Retry-After`).
pub const RETRY_AFTER_SECS: u64 = 5;

/// A complete HTTP/1.1 503 response with `Retry-After` and a short body.
pub fn overload_response(reason: &str) -> String {
    let body = format!("{reason}; retry in {RETRY_AFTER_SECS} s\n");
    format!(
        "HTTP/1.1 503 Service Unavailable\r\nRetry-After: {RETRY_AFTER_SECS}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

/// Accepts connections until `stop` fires, then tells every connection to
/// finish its request in flight and close, and waits for them (at most
/// [`CLOSE_GRACE`]).
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ConnLimits,
    stop: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let listener = Arc::new(listener);
    let accept = Accept {
        conns: Conns::new(limits),
        app,
        http: http1(&limits),
        closing: CancellationToken::new(),
        tracker: TaskTracker::new(),
        refusals: [Refusal::PerPeer, Refusal::Total].map(|r| overload_response(r.reason())),
    };
    let accept = Arc::new(accept);
    let stopping = CancellationToken::new();
    let acceptors = std::thread::available_parallelism()
        .map_or(1, std::num::NonZero::get)
        .min(MAX_ACCEPTORS);
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..acceptors {
        tasks.spawn(accept_loop(
            listener.clone(),
            accept.clone(),
            stopping.clone(),
        ));
    }
    let mut since = Instant::now();
    let mut report = tokio::time::interval(REPORT_EVERY);
    report.tick().await;
    tokio::pin!(stop);
    loop {
        tokio::select! {
            () = &mut stop => break,
            _ = report.tick() => {
                accept.conns.counts.report(since);
                since = Instant::now();
            }
        }
    }
    stopping.cancel();
    while tasks.join_next().await.is_some() {}
    drop(listener);
    accept.conns.counts.report(since);
    accept.closing.cancel();
    accept.tracker.close();
    if tokio::time::timeout(CLOSE_GRACE, accept.tracker.wait())
        .await
        .is_err()
    {
        tracing::info!(
            open = accept.tracker.len(),
            "closing HTTP connections that did not finish in time"
        );
    }
    Ok(())
}

/// What every accept task shares.
struct Accept {
    conns: Conns,
    app: Router,
    http: hyper::server::conn::http1::Builder,
    /// Tells admitted connections to finish and close.
    closing: CancellationToken,
    tracker: TaskTracker,
    /// The 503s, rendered once: [per address, total].
    refusals: [String; 2],
}

/// Takes connections off the listen queue, in batches, until `stopping`.
///
/// The runtime's `accept` waits for the queue to fill and takes the first
/// connection (registering it with the reactor); the rest of the batch is
/// taken with plain `accept4` calls, so a connection that is refused is a
/// plain socket and never touches the reactor. Several tasks may share the
/// listener: whoever finds the queue empty waits for the next connection.
async fn accept_loop(listener: Arc<TcpListener>, accept: Arc<Accept>, stopping: CancellationToken) {
    use rustix::io::Errno;
    use rustix::net::{SocketFlags, acceptfrom_with};
    loop {
        let first = tokio::select! {
            () = stopping.cancelled() => return,
            first = listener.accept() => first,
        };
        match first {
            Ok((stream, peer)) => accept.take_registered(stream, peer),
            Err(e) => {
                accept_failed(&e);
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        }
        for _ in 1..ACCEPT_BATCH {
            match acceptfrom_with(&*listener, SocketFlags::NONBLOCK | SocketFlags::CLOEXEC) {
                Ok((fd, Some(addr))) => {
                    if let Ok(peer) = SocketAddr::try_from(addr) {
                        accept.take_plain(std::net::TcpStream::from(fd), peer);
                    }
                }
                // A peer that is already gone: dropping the socket closes it.
                Ok((_, None)) | Err(Errno::CONNABORTED | Errno::INTR) => {}
                Err(Errno::AGAIN) => break,
                Err(e) => {
                    accept_failed(&e.into());
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    break;
                }
            }
        }
        // Let the connections just admitted (and everything else on this
        // worker) run before the next batch.
        tokio::task::yield_now().await;
    }
}

fn accept_failed(e: &std::io::Error) {
    tracing::warn!(error = %e, "accepting an HTTP connection failed; if this says too many open files, raise `ulimit -n` or lower --http-max-connections");
}

impl Accept {
    /// Refuses a plain (non-blocking, unregistered) socket over a limit, or
    /// registers it and serves it on a task of its own.
    fn take_plain(&self, stream: std::net::TcpStream, peer: SocketAddr) {
        match self.conns.admit(peer.ip()) {
            Err(refusal) => refuse(&stream, &self.refusals[refusal as usize]),
            Ok(admitted) => match TcpStream::from_std(stream) {
                Ok(stream) => self.serve(stream, peer, admitted),
                Err(e) => {
                    tracing::warn!(error = %e, %peer, "cannot serve an accepted HTTP connection");
                }
            },
        }
    }

    /// [`Self::take_plain`] for a socket the runtime accepted.
    fn take_registered(&self, stream: TcpStream, peer: SocketAddr) {
        match self.conns.admit(peer.ip()) {
            Err(refusal) => refuse(&stream, &self.refusals[refusal as usize]),
            Ok(admitted) => self.serve(stream, peer, admitted),
        }
    }

    /// Serves an admitted connection on a task of its own.
    fn serve(&self, stream: TcpStream, peer: SocketAddr, admitted: Admitted) {
        let _ = stream.set_nodelay(true);
        let conn = self.http.serve_connection(
            TokioIo::new(stream),
            service(self.app.clone(), peer, admitted.busy.clone()),
        );
        let closing = self.closing.clone();
        self.tracker.spawn(async move {
            tokio::pin!(conn);
            let mut told = false;
            loop {
                tokio::select! {
                    r = conn.as_mut() => {
                        if let Err(e) = r {
                            tracing::debug!(error = %e, %peer, "HTTP connection ended with an error");
                        }
                        break;
                    }
                    () = admitted.evict.cancelled() => {
                        tracing::debug!(%peer, "closing an idle HTTP connection to make room");
                        break;
                    }
                    () = closing.cancelled(), if !told => {
                        conn.as_mut().graceful_shutdown();
                        told = true;
                    }
                }
            }
            drop(admitted);
        });
    }
}

/// hyper's HTTP/1 server with the header-read timeout, and a read buffer
/// of at most [`READ_BUFFER`] (hyper's default lets one connection that has
/// sent no complete request yet hold about 400 KiB, before any token check).
fn http1(limits: &ConnLimits) -> hyper::server::conn::http1::Builder {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_buf_size(READ_BUFFER);
    http
}

/// Headers larger than this are refused (431); bodies stream through it.
const READ_BUFFER: usize = 32 * 1024;

/// Serves one connection over any byte stream exactly as the accept loop
/// serves a TCP connection (minus the connection cap): the `http` fuzz
/// target's entry point.
pub async fn serve_io<I>(
    io: I,
    app: Router,
    peer: SocketAddr,
    limits: ConnLimits,
) -> Result<(), hyper::Error>
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    http1(&limits)
        .serve_connection(TokioIo::new(io), service(app, peer, Arc::default()))
        .await
}

/// The per-connection service: tells the app who the peer is and counts
/// requests in flight, so an idle connection can be told apart.
fn service(
    app: Router,
    peer: SocketAddr,
    busy: Arc<AtomicUsize>,
) -> impl hyper::service::Service<
    hyper::Request<Incoming>,
    Response = axum::response::Response,
    Error = std::convert::Infallible,
    Future = impl Future<Output = Result<axum::response::Response, std::convert::Infallible>> + Send,
> + Clone {
    hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
        let in_flight = InFlight::new(&busy);
        req.extensions_mut().insert(ConnectInfo(peer));
        let app = app.clone();
        async move {
            let response = app.oneshot(req).await?;
            Ok(response.map(|body| {
                axum::body::Body::new(WithGuard {
                    body,
                    guard: in_flight,
                })
            }))
        }
    })
}

/// Answers 503 and closes (on drop), without reading the request: one
/// non-blocking `send`, so a full send buffer can never stall the accept
/// loop. A client that already sent bytes may see a reset instead.
fn refuse(stream: impl std::os::fd::AsFd, response: &str) {
    use rustix::net::{SendFlags, send};
    let _ = send(
        stream,
        response.as_bytes(),
        SendFlags::DONTWAIT | SendFlags::NOSIGNAL,
    );
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;
    use std::sync::atomic::Ordering;

    use super::*;

    fn conns(total: usize, per_peer: usize) -> Conns {
        Conns::new(ConnLimits {
            max_total: total,
            max_per_peer: per_peer,
            ..ConnLimits::default()
        })
    }

    #[test]
    fn per_peer_cap_refuses_and_frees_on_drop() {
        let c = conns(10, 2);
        let a: IpAddr = [127, 0, 0, 2].into();
        let first = c.admit(a).unwrap();
        let _second = c.admit(a).unwrap();
        assert_eq!(c.admit(a).err(), Some(Refusal::PerPeer));
        drop(first);
        assert!(c.admit(a).is_ok());
    }

    #[test]
    fn a_full_table_gives_a_lighter_address_the_busiest_addresss_oldest_idle_place() {
        let c = conns(4, 5);
        let a: IpAddr = [127, 0, 0, 2].into();
        let legit: IpAddr = [127, 0, 0, 1].into();
        let busy = c.admit(a).unwrap();
        let _request = InFlight::new(&busy.busy);
        let idle = c.admit(a).unwrap();
        let younger = c.admit(a).unwrap();
        let youngest = c.admit(a).unwrap();
        // The busiest address itself cannot take its own or others' places.
        assert_eq!(c.admit(a).err(), Some(Refusal::Total));
        let newcomer = c.admit(legit).unwrap();
        assert!(idle.evict.is_cancelled(), "the oldest idle one is closed");
        assert!(!busy.evict.is_cancelled(), "a request in flight is kept");
        assert!(!younger.evict.is_cancelled());
        // 1 against 3: the newcomer's address is still two lighter.
        let _second = c.admit(legit).unwrap();
        assert!(younger.evict.is_cancelled());
        assert!(!youngest.evict.is_cancelled());
        // 2 against 2: nothing can be taken now.
        assert_eq!(c.admit(legit).err(), Some(Refusal::Total));
        // An evicted connection's drop frees nobody else's place.
        drop(idle);
        assert_eq!(c.admit(legit).err(), Some(Refusal::Total));
        drop(newcomer);
        let counts = &c.counts;
        assert_eq!(counts.evicted.load(Ordering::Relaxed), 2);
        assert_eq!(counts.refused_total.load(Ordering::Relaxed), 3);
        assert_eq!(counts.admitted.load(Ordering::Relaxed), 6);
    }

    #[test]
    fn addresses_within_one_do_not_take_places_from_each_other() {
        let c = conns(5, 5);
        let (a, b, d): (IpAddr, IpAddr, IpAddr) = (
            [127, 0, 0, 2].into(),
            [127, 0, 0, 3].into(),
            [127, 0, 0, 4].into(),
        );
        let held: Vec<_> = [a, a, b, b, b]
            .iter()
            .map(|p| c.admit(*p).unwrap())
            .collect();
        // 2 against 3 would only swap which address has 3: a churn.
        assert_eq!(c.admit(a).err(), Some(Refusal::Total));
        assert_eq!(c.admit(b).err(), Some(Refusal::Total));
        assert!(c.admit(d).is_ok(), "a new address gets a place");
        assert!(held[2].evict.is_cancelled(), "b's oldest gave it");
    }

    #[test]
    fn the_overload_response_is_a_complete_503() {
        let r = overload_response("busy");
        assert!(r.starts_with("HTTP/1.1 503 "));
        assert!(r.contains(&format!("\r\nRetry-After: {RETRY_AFTER_SECS}\r\n")));
        let body = r.split("\r\n\r\n").nth(1).unwrap();
        assert!(r.contains(&format!("Content-Length: {}\r\n", body.len())));
    }
}
