//! The standalone server: an accept loop over a [`TcpListener`], one task per connection
//! (HTTP/1.1 and h2c detected by hyper-util's `auto` builder, or rustls TLS with ALPN), and a
//! graceful shutdown that drains in-flight calls up to a deadline.

mod conn;
mod events;

use std::future::Future;
use std::io;
use std::net::SocketAddr;
#[cfg(feature = "tls")]
use std::sync::Arc;
use std::time::Duration;

use http_body::Body;
use hyper::body::Incoming;
use tokio::net::{TcpListener, ToSocketAddrs};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

use crate::BoxError;
use crate::error::Result;
use conn::ConnConfig;
use events::ErrorHook;
pub use events::ServerError;

/// How long a non-transient accept failure (out of file descriptors, memory) pauses the
/// accept loop before it tries again.
const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(50);

/// A bound server, ready to [`serve`](Self::serve).
///
/// Build one with [`Server::builder`]. A server serves any cloneable
/// `tower::Service<http::Request<hyper::body::Incoming>>`; each request carries a
/// [`PeerInfo`](connect_tower::PeerInfo) (remote and local addresses, TLS and the verified
/// client certificate chain) in its extensions.
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

impl Server {
    /// A builder with the defaults: no TLS, no connection limit, a 30 s header read timeout,
    /// a 10 s TLS handshake timeout, a 30 s drain deadline, hyper's HTTP/2 defaults.
    pub fn builder() -> ServerBuilder {
        ServerBuilder::default()
    }

    /// The address the server listens on (the actual port when bound to port 0).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves `service` until the process ends.
    pub async fn serve<S, B>(self, service: S) -> Shutdown
    where
        S: tower_service::Service<http::Request<Incoming>, Response = http::Response<B>>
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
    /// send `GOAWAY` and finish their open streams. Returns once every connection is done, or
    /// once the [drain timeout](ServerBuilder::drain_timeout) passes, after closing the
    /// remaining connections by force.
    ///
    /// Failed accepts (out of file descriptors, aborted handshakes) never stop the loop, and
    /// a failing or panicking connection only ends itself.
    pub async fn serve_with_shutdown<S, B, F>(self, service: S, signal: F) -> Shutdown
    where
        S: tower_service::Service<http::Request<Incoming>, Response = http::Response<B>>
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
        let limit = options
            .max_connections
            .map(|n| std::sync::Arc::new(Semaphore::new(n)));
        let on_error = options.on_error.clone();
        let config = ConnConfig::new(options);
        let (stop, stopping) = watch::channel(false);
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
                stopping.clone(),
                permit,
            ));
        }

        drop(listener);
        let _ = stop.send(true);
        let drain = async { while connections.join_next().await.is_some() {} };
        if tokio::time::timeout(drain_timeout, drain).await.is_ok() {
            return Shutdown {
                aborted_connections: 0,
            };
        }
        let aborted_connections = connections.len();
        connections.shutdown().await;
        Shutdown {
            aborted_connections,
        }
    }
}

/// Accept errors that concern one connection only: retry at once.
fn is_transient(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionRefused
            | io::ErrorKind::Interrupted
            | io::ErrorKind::WouldBlock
    )
}

/// Builds a [`Server`].
#[derive(Clone, Debug)]
pub struct ServerBuilder {
    #[cfg(feature = "tls")]
    tls: Option<Arc<rustls::ServerConfig>>,
    max_connections: Option<usize>,
    header_read_timeout: Option<Duration>,
    #[cfg(feature = "tls")]
    tls_handshake_timeout: Duration,
    drain_timeout: Duration,
    http1_keep_alive: bool,
    http2_max_concurrent_streams: Option<u32>,
    http2_keep_alive_interval: Option<Duration>,
    http2_keep_alive_timeout: Option<Duration>,
    max_header_list_size: Option<u32>,
    nodelay: bool,
    on_error: ErrorHook,
}

impl Default for ServerBuilder {
    fn default() -> Self {
        ServerBuilder {
            #[cfg(feature = "tls")]
            tls: None,
            max_connections: None,
            header_read_timeout: Some(Duration::from_secs(30)),
            #[cfg(feature = "tls")]
            tls_handshake_timeout: Duration::from_secs(10),
            drain_timeout: Duration::from_secs(30),
            http1_keep_alive: true,
            http2_max_concurrent_streams: None,
            http2_keep_alive_interval: None,
            http2_keep_alive_timeout: None,
            max_header_list_size: None,
            nodelay: true,
            on_error: ErrorHook::default(),
        }
    }
}

impl ServerBuilder {
    /// Serves TLS with `config` (see [`tls::server_config`](crate::tls::server_config)). If
    /// the configuration offers no ALPN protocol, `h2` and `http/1.1` are added. The HTTP
    /// version of a connection follows the ALPN outcome; without one it is detected.
    #[cfg(feature = "tls")]
    #[must_use]
    pub fn tls(mut self, config: Arc<rustls::ServerConfig>) -> Self {
        self.tls = Some(crate::tls::server_with_default_alpn(config));
        self
    }

    /// The most connections open at once. When reached, the server stops accepting (new
    /// clients wait in the listen backlog) until a connection closes.
    #[must_use]
    pub fn max_connections(mut self, max: usize) -> Self {
        self.max_connections = Some(max);
        self
    }

    /// How long a client may take to send a complete HTTP/1.1 request head, and how long a
    /// new connection (after the TLS handshake) may stay silent before its first byte.
    /// `None` disables both. Default 30 s.
    #[must_use]
    pub fn header_read_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.header_read_timeout = timeout;
        self
    }

    /// How long a TLS handshake may take. Default 10 s.
    #[cfg(feature = "tls")]
    #[must_use]
    pub fn tls_handshake_timeout(mut self, timeout: Duration) -> Self {
        self.tls_handshake_timeout = timeout;
        self
    }

    /// How long a graceful shutdown waits for in-flight calls before closing the remaining
    /// connections. Default 30 s.
    #[must_use]
    pub fn drain_timeout(mut self, timeout: Duration) -> Self {
        self.drain_timeout = timeout;
        self
    }

    /// Whether HTTP/1.1 connections are kept open between requests. Default `true`.
    #[must_use]
    pub fn http1_keep_alive(mut self, enabled: bool) -> Self {
        self.http1_keep_alive = enabled;
        self
    }

    /// The most concurrent streams per HTTP/2 connection (`SETTINGS_MAX_CONCURRENT_STREAMS`).
    /// Default: hyper's (200).
    #[must_use]
    pub fn http2_max_concurrent_streams(mut self, max: u32) -> Self {
        self.http2_max_concurrent_streams = Some(max);
        self
    }

    /// Reports failures outside any call — failed accepts (out of file descriptors), failed or
    /// timed-out TLS handshakes, silent clients, broken connections — to `hook`, for logging
    /// or metrics. They never stop the server. The hook runs on the accept loop or the
    /// connection's task: keep it short. Default: none.
    #[must_use]
    pub fn on_error(mut self, hook: impl Fn(&ServerError) + Send + Sync + 'static) -> Self {
        self.on_error = ErrorHook::new(hook);
        self
    }

    /// Sends HTTP/2 pings at this interval and closes connections whose peer does not answer
    /// within the [keep-alive timeout](Self::http2_keep_alive_timeout). Default: off.
    #[must_use]
    pub fn http2_keep_alive_interval(mut self, interval: Option<Duration>) -> Self {
        self.http2_keep_alive_interval = interval;
        self
    }

    /// How long to wait for a ping acknowledgement. Default: hyper's (20 s).
    #[must_use]
    pub fn http2_keep_alive_timeout(mut self, timeout: Duration) -> Self {
        self.http2_keep_alive_timeout = Some(timeout);
        self
    }

    /// The largest request head accepted, in bytes: HTTP/2's `SETTINGS_MAX_HEADER_LIST_SIZE`,
    /// and for HTTP/1.1 the read buffer (at least 8 KiB) that must hold the head. Larger
    /// heads are refused (HTTP/1.1: status 431). Default: hyper's (16 KiB for HTTP/2,
    /// about 400 KiB for HTTP/1.1).
    #[must_use]
    pub fn max_header_list_size(mut self, max: u32) -> Self {
        self.max_header_list_size = Some(max);
        self
    }

    /// Whether accepted sockets set `TCP_NODELAY`. Default `true`.
    #[must_use]
    pub fn nodelay(mut self, enabled: bool) -> Self {
        self.nodelay = enabled;
        self
    }

    /// Binds a listener to `addr` (port 0 picks a free port: see [`Server::local_addr`]).
    pub async fn bind(self, addr: impl ToSocketAddrs) -> Result<Server> {
        let listener = TcpListener::bind(addr).await?;
        Ok(self.listener(listener))
    }

    /// Serves on a standard library listener bound elsewhere (switched to non-blocking mode;
    /// needs a Tokio runtime).
    pub fn std_listener(self, listener: std::net::TcpListener) -> Result<Server> {
        listener.set_nonblocking(true)?;
        Ok(self.listener(TcpListener::from_std(listener)?))
    }

    /// Serves on a listener bound elsewhere.
    pub fn listener(self, listener: TcpListener) -> Server {
        Server {
            listener,
            options: self,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_per_connection_accept_errors_are_transient() {
        for kind in [
            io::ErrorKind::ConnectionAborted,
            io::ErrorKind::ConnectionReset,
            io::ErrorKind::Interrupted,
        ] {
            assert!(is_transient(&io::Error::from(kind)));
        }
        // EMFILE and ENOMEM pause the loop instead.
        assert!(!is_transient(&io::Error::from_raw_os_error(24)));
        assert!(!is_transient(&io::Error::from(io::ErrorKind::OutOfMemory)));
    }
}
