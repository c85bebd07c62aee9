//! The accept loop: HTTP/1.1 connections served by hyper with a bound on how long a client may
//! take to send its headers (axum's `serve` sets none), and a graceful stop.

use std::future::Future;
use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::server::ServerConfig;

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
    http.timer(TokioTimer::new())
        .header_read_timeout(config.request_timeout)
        .keep_alive(true);
    // Every connection task holds a receiver; `closed()` resolves once all are gone.
    let (stopping, stop_rx) = watch::channel(false);
    tokio::pin!(stop);
    let deadline = loop {
        let (tcp, _peer) = tokio::select! {
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
        let service = TowerToHyperService::new(router.clone());
        let connection = http.serve_connection(TokioIo::new(tcp), service);
        let mut stop_rx = stop_rx.clone();
        tokio::spawn(async move {
            let connection = connection.with_upgrades();
            tokio::pin!(connection);
            let result = tokio::select! {
                result = connection.as_mut() => result,
                _ = async { stop_rx.wait_for(|stopping| *stopping).await.map(|_| ()) } => {
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
            };
            if let Err(err) = result {
                tracing::debug!(%err, "HTTP connection ended with an error");
            }
            drop(stop_rx);
        });
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
