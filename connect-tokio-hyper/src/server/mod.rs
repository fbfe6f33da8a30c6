//! The standalone server: an accept loop over a [`TcpListener`] with a connection limit, one
//! task per connection (HTTP/1.1 through hyper, HTTP/2 through `h2` with a task per stream,
//! the version detected or chosen by ALPN after rustls TLS), a server-wide limit on calls in
//! flight, and a graceful shutdown in two phases: drain, then at the drain deadline end what
//! is left with `unavailable`.

mod body;
mod builder;
mod conn;
mod events;
mod http1;
mod http2;
mod io;
mod streams;

use std::future::Future;
use std::io as std_io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use connect_tower::rt::{ShutdownSignal, ShutdownTrigger};
use http_body::Body;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::BoxError;
pub use body::IncomingBody;
pub use builder::{
    DEFAULT_DEADLINE_GRACE, DEFAULT_DRAIN_TIMEOUT, DEFAULT_HEADER_READ_TIMEOUT,
    DEFAULT_HTTP2_MAX_CONCURRENT_STREAMS, DEFAULT_IDLE_TIMEOUT, DEFAULT_MAX_CONCURRENT_CALLS,
    DEFAULT_MAX_CONNECTIONS, ServerBuilder,
};
use conn::ConnConfig;
pub use events::ServerError;

/// How long a non-transient accept failure (out of file descriptors, memory) pauses the
/// accept loop before it tries again.
const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(50);

/// How long after the drain deadline calls have to deliver their `unavailable` endings before
/// their connections are closed.
const FORCE_GRACE: Duration = Duration::from_millis(500);
/// A timer's "never" (a year from now): a connection's timers are reset, not dropped.
const FAR: Duration = Duration::from_secs(86_400 * 365);

/// A bound server, ready to [`serve`](Self::serve).
///
/// Build one with [`Server::builder`]. A server serves any cloneable
/// `tower::Service<http::Request<IncomingBody>>` (a
/// [`ConnectService`](connect_tower::server::ConnectService), an axum `Router`, …); each
/// request carries a [`ConnectionInfo`](connect_tower::ConnectionInfo) (the peer's addresses,
/// TLS and the verified client certificate chain, and the server's shutdown signal) in its
/// extensions.
#[derive(Debug)]
pub struct Server {
    listener: TcpListener,
    options: ServerBuilder,
}

/// What [`Server::serve_with_shutdown`] did when it stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Shutdown {
    /// Connections still open when the drain deadline passed, closed by force.
    pub aborted_connections: usize,
}

impl Shutdown {
    /// Whether every connection finished before the drain deadline.
    pub fn drained(&self) -> bool {
        self.aborted_connections == 0
    }
}

/// Where the server is in its life, as every connection sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Phase {
    Running,
    /// Graceful shutdown: no new connections or streams; calls in flight finish.
    Draining,
    /// The drain deadline passed: calls end with `unavailable`, then connections close.
    Forced,
}

impl Server {
    /// A builder with the defaults (see [`ServerBuilder`]'s methods and constants).
    pub fn builder() -> ServerBuilder {
        ServerBuilder::default()
    }

    /// The address the server listens on (the actual port when bound to port 0).
    pub fn local_addr(&self) -> std_io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves `service` until the process ends.
    pub async fn serve<S, B>(self, service: S) -> Shutdown
    where
        S: tower_service::Service<http::Request<IncomingBody>, Response = http::Response<B>>
            + Clone
            + Send
            + 'static,
        S::Future: Send + 'static,
        S::Error: Into<BoxError>,
        B: Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<BoxError>,
    {
        self.serve_with_shutdown(service, std::future::pending())
            .await
    }

    /// Serves `service` until `signal` completes, then shuts down gracefully: the listener is
    /// closed, HTTP/1.1 connections close after their current response, HTTP/2 connections
    /// send `GOAWAY` and finish their open streams, and handlers see
    /// [`ShutdownSignal::draining`](connect_tower::rt::ShutdownSignal::draining). When the
    /// [drain timeout](ServerBuilder::drain_timeout) passes, calls still open end with
    /// `unavailable` (in trailers where the protocol allows), and what is left is closed.
    /// Returns once every connection and every call's task has ended.
    ///
    /// Failed accepts (out of file descriptors, aborted handshakes) never stop the loop, and
    /// a failing or panicking connection or call only ends itself.
    pub async fn serve_with_shutdown<S, B, F>(self, service: S, signal: F) -> Shutdown
    where
        S: tower_service::Service<http::Request<IncomingBody>, Response = http::Response<B>>
            + Clone
            + Send
            + 'static,
        S::Future: Send + 'static,
        S::Error: Into<BoxError>,
        B: Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<BoxError>,
        F: Future<Output = ()> + Send,
    {
        let Server { listener, options } = self;
        let drain_timeout = options.drain_timeout;
        let limit = options.max_connections.map(|n| Arc::new(Semaphore::new(n)));
        let on_error = options.on_error.clone();
        let config = ConnConfig::new(options);
        let phase = ServerPhase::new();
        let mut connections = JoinSet::new();
        let mut signal = std::pin::pin!(signal);

        loop {
            // Finished connections (including panicked ones) are reaped here.
            while connections.try_join_next().is_some() {}
            let permit = match &limit {
                None => None,
                Some(limit) => tokio::select! {
                    permit = limit.clone().acquire_owned() => match permit {
                        Ok(permit) => Some(permit),
                        // The semaphore is never closed.
                        Err(_) => break,
                    },
                    () = &mut signal => break,
                },
            };
            let accepted = tokio::select! {
                accepted = listener.accept() => accepted,
                () = &mut signal => break,
            };
            let (stream, remote) = match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    let transient = is_transient(&error);
                    on_error.report(ServerError::Accept(error));
                    if !transient {
                        tokio::select! {
                            () = tokio::time::sleep(ACCEPT_ERROR_BACKOFF) => {}
                            () = &mut signal => break,
                        }
                    }
                    continue;
                }
            };
            connections.spawn(conn::serve_connection(
                stream,
                remote,
                config.clone(),
                service.clone(),
                phase.signal.clone(),
                permit,
            ));
        }

        drop(listener);
        phase.trigger.drain();
        let drain = async { while connections.join_next().await.is_some() {} };
        if tokio::time::timeout(drain_timeout, drain).await.is_ok() {
            return Shutdown {
                aborted_connections: 0,
            };
        }
        let aborted_connections = connections.len();
        phase.trigger.force();
        // Each connection ends its calls and closes within the grace; past it (a connection
        // stuck in I/O), it is aborted. Either way every task has ended when this returns.
        let forced = async { while connections.join_next().await.is_some() {} };
        if tokio::time::timeout(FORCE_GRACE * 2, forced).await.is_err() {
            connections.shutdown().await;
        }
        Shutdown {
            aborted_connections,
        }
    }
}

/// The server's [`Phase`], which its connections follow (`conn::PhaseWatch`): forced when
/// the server's future is dropped, as when its drain deadline passes.
struct ServerPhase {
    trigger: ShutdownTrigger,
    signal: ShutdownSignal,
}

impl ServerPhase {
    fn new() -> Self {
        let (trigger, signal) = ShutdownTrigger::new();
        ServerPhase { trigger, signal }
    }
}

impl Drop for ServerPhase {
    fn drop(&mut self) {
        self.trigger.force();
    }
}

/// Accept errors that concern one connection only: retry at once.
fn is_transient(error: &std_io::Error) -> bool {
    matches!(
        error.kind(),
        std_io::ErrorKind::ConnectionAborted
            | std_io::ErrorKind::ConnectionReset
            | std_io::ErrorKind::ConnectionRefused
            | std_io::ErrorKind::Interrupted
            | std_io::ErrorKind::WouldBlock
    )
}

/// The server-wide count of calls in flight, bounded by
/// [`ServerBuilder::max_concurrent_calls`].
#[derive(Debug)]
pub(crate) struct CallBudget {
    in_flight: AtomicUsize,
    max: usize,
}

impl CallBudget {
    pub(crate) fn new(max: Option<usize>) -> Self {
        CallBudget {
            in_flight: AtomicUsize::new(0),
            max: max.unwrap_or(usize::MAX),
        }
    }

    /// A slot for one call, or `None` when the server is at its limit.
    pub(crate) fn try_acquire(self: &Arc<Self>) -> Option<CallPermit> {
        let mut current = self.in_flight.load(Ordering::Relaxed);
        loop {
            if current >= self.max {
                return None;
            }
            match self.in_flight.compare_exchange_weak(
                current,
                current + 1,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => return Some(CallPermit(self.clone())),
                Err(actual) => current = actual,
            }
        }
    }
}

/// One call's slot in the [`CallBudget`]; released on drop.
#[derive(Debug)]
pub(crate) struct CallPermit(Arc<CallBudget>);

impl Drop for CallPermit {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_per_connection_accept_errors_are_transient() {
        for kind in [
            std_io::ErrorKind::ConnectionAborted,
            std_io::ErrorKind::ConnectionReset,
            std_io::ErrorKind::Interrupted,
        ] {
            assert!(is_transient(&std_io::Error::from(kind)));
        }
        // EMFILE and ENOMEM pause the loop instead.
        assert!(!is_transient(&std_io::Error::from_raw_os_error(24)));
        assert!(!is_transient(&std_io::Error::from(
            std_io::ErrorKind::OutOfMemory
        )));
    }

    #[test]
    fn the_call_budget_holds_at_its_limit() {
        let budget = Arc::new(CallBudget::new(Some(2)));
        let a = budget.try_acquire().expect("one");
        let b = budget.try_acquire().expect("two");
        assert!(budget.try_acquire().is_none(), "three is past the limit");
        drop(a);
        let c = budget.try_acquire().expect("a slot was freed");
        drop((b, c));
        assert_eq!(budget.in_flight.load(Ordering::SeqCst), 0);
    }
}
