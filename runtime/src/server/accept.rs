//! The accept loop: HTTP/1.1 connections served by hyper, each bounded in how long it may go
//! without a request (a client sending its headers slowly, or not at all), and a graceful stop.
//!
//! axum's `serve` sets no such bound. hyper's own `header_read_timeout` would, but it arms a
//! timer for every request, which measured 0.1 ms per request on this machine's loopback
//! (about a third of a publish round trip) and quartered the benchmark's targeted rate. Here one
//! timer per connection fires at most once per timeout and re-arms itself while requests come.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::Request;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::server::config::ServerConfig;
use crate::server::limits::Peer;

/// Serves `router` on `listener` until `stop` resolves with a deadline, then stops accepting,
/// lets every HTTP connection finish the request it is handling (idle keep-alive connections
/// close at once), and returns once they are done or the deadline passed. Upgraded WebSocket
/// connections are not HTTP connections any more and are not waited for here. Returns the
/// deadline.
pub(crate) async fn serve(
    listener: TcpListener,
    router: Router,
    config: &ServerConfig,
    stop: impl Future<Output = Instant>,
) -> Instant {
    let mut http = http1::Builder::new();
    // Bounded below instead, at a fraction of the cost (see the module's comment).
    http.header_read_timeout(None).keep_alive(true);
    let request_timeout = config.request_timeout;
    // Every connection task holds a receiver; `closed()` resolves once all are gone.
    let (stopping, stop_rx) = watch::channel(false);
    tokio::pin!(stop);
    let deadline = loop {
        let (tcp, peer) = tokio::select! {
            deadline = &mut stop => break deadline,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    // Out of file descriptors, or a connection reset before it was accepted:
                    // wait a little rather than spin, and go on.
                    tracing::warn!(%err, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        // Events are small frames that must leave at once: no Nagle delay on any connection.
        if let Err(err) = tcp.set_nodelay(true) {
            tracing::debug!(%err, "TCP_NODELAY not set");
        }
        let peer = Peer(peer.ip());
        let stop_rx = stop_rx.clone();
        tokio::spawn(connection(
            &http,
            tcp,
            router.clone(),
            peer,
            request_timeout,
            stop_rx,
        ));
    };
    drop(listener);
    drop(stop_rx);
    let _ = stopping.send(true);
    if tokio::time::timeout_at(deadline, stopping.closed())
        .await
        .is_err()
    {
        tracing::warn!("HTTP requests still unfinished at the shutdown deadline");
    }
    deadline
}

/// The task serving one HTTP connection (and handing its upgrades on) until it ends, it goes
/// without a request for `request_timeout`, or `stop_rx` says the server stops.
/// Generic over the stream so that the fuzz targets serve an in-memory one the same way.
pub(crate) fn connection<I>(
    http: &http1::Builder,
    io: I,
    router: Router,
    peer: Peer,
    request_timeout: Duration,
    mut stop_rx: watch::Receiver<bool>,
) -> impl Future<Output = ()> + Send + 'static
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let activity = Arc::new(Activity::new());
    let service = Tracked {
        inner: TowerToHyperService::new(router),
        activity: activity.clone(),
        peer,
    };
    let connection = http.serve_connection(TokioIo::new(io), service);
    async move {
        let connection = connection.with_upgrades();
        tokio::pin!(connection);
        let idle = tokio::time::sleep(request_timeout);
        tokio::pin!(idle);
        let mut stopped = false;
        let result = loop {
            tokio::select! {
                result = connection.as_mut() => break result,
                _ = async { stop_rx.wait_for(|stopping| *stopping).await.map(|_| ()) }, if !stopped => {
                    stopped = true;
                    connection.as_mut().graceful_shutdown();
                }
                () = idle.as_mut() => match activity.idle_until(request_timeout) {
                    Some(until) => idle.as_mut().reset(until),
                    // Nothing, or only part of a request's headers, for the whole timeout.
                    None => break Ok(()),
                },
            }
        };
        if let Err(err) = result {
            tracing::debug!(%err, "HTTP connection ended with an error");
        }
        drop(stop_rx);
    }
}

/// When a connection last began or finished a request, and how many it is handling.
struct Activity {
    start: Instant,
    /// Milliseconds after `start`.
    last: AtomicU64,
    busy: AtomicUsize,
}

impl Activity {
    fn new() -> Self {
        Activity {
            start: Instant::now(),
            last: AtomicU64::new(0),
            busy: AtomicUsize::new(0),
        }
    }

    fn touch(&self) {
        let elapsed = self.start.elapsed().as_millis() as u64;
        self.last.store(elapsed, Ordering::Relaxed);
    }

    /// When the connection will have been idle for `timeout`; `None` if it already has. A
    /// connection handling a request is not idle (the handler bounds its own body read).
    fn idle_until(&self, timeout: Duration) -> Option<Instant> {
        let now = Instant::now();
        if self.busy.load(Ordering::Relaxed) > 0 {
            return Some(now + timeout);
        }
        let last = self.start + Duration::from_millis(self.last.load(Ordering::Relaxed));
        let until = last + timeout;
        (until > now).then_some(until)
    }
}

/// The router, counting the requests in progress on its connection.
struct Tracked {
    inner: TowerToHyperService<Router>,
    activity: Arc<Activity>,
    /// The connection's source address, given to every request (the per-address limits).
    peer: Peer,
}

impl hyper::service::Service<Request<Incoming>> for Tracked {
    type Response =
        <TowerToHyperService<Router> as hyper::service::Service<Request<Incoming>>>::Response;
    type Error = <TowerToHyperService<Router> as hyper::service::Service<Request<Incoming>>>::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn call(&self, mut request: Request<Incoming>) -> Self::Future {
        request.extensions_mut().insert(self.peer);
        let activity = self.activity.clone();
        activity.busy.fetch_add(1, Ordering::Relaxed);
        activity.touch();
        let response = self.inner.call(request);
        Box::pin(async move {
            let response = response.await;
            activity.touch();
            activity.busy.fetch_sub(1, Ordering::Relaxed);
            response
        })
    }
}
