//! [`ServerBuilder`]: every limit and timeout of the server, each with a default chosen so
//! that one client cannot hold the server's resources forever (see the "Limits and timeouts"
//! table in `docs/ARCHITECTURE.md` for each default, its reason, and what connect-go and tonic
//! do).

#[cfg(feature = "tls")]
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, ToSocketAddrs};

use super::Server;
use super::events::{ErrorHook, ServerError};
use super::io::Linger;
use crate::error::Result;

/// Default most connections open at once.
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;
/// Default most calls (requests) in flight at once, over all connections.
pub const DEFAULT_MAX_CONCURRENT_CALLS: usize = 10_000;
/// Default time a new connection has to send its first request head (HTTP/1.1) or its
/// preface (HTTP/2), and an HTTP/1.1 client each later request head once it started it.
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Default time a connection may stay open without a call (an HTTP/2 connection without a
/// stream, an HTTP/1.1 connection between requests): longer than clients keep idle
/// connections (Go: 90 s), so a request never races the server closing it.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(300);
/// Default time a graceful shutdown waits for calls in flight.
pub const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(30);
/// Default time past its deadline a call whose response is stuck (its client grants no flow
/// control window, or stopped reading) may hold its stream before it is reset.
pub const DEFAULT_DEADLINE_GRACE: Duration = Duration::from_secs(1);
/// Default most concurrent streams per HTTP/2 connection (hyper's).
pub const DEFAULT_HTTP2_MAX_CONCURRENT_STREAMS: u32 = 200;

/// Builds a [`Server`].
#[derive(Clone, Debug)]
pub struct ServerBuilder {
    #[cfg(feature = "tls")]
    pub(super) tls: Option<Arc<rustls::ServerConfig>>,
    pub(super) max_connections: Option<usize>,
    pub(super) max_concurrent_calls: Option<usize>,
    pub(super) header_read_timeout: Option<Duration>,
    pub(super) idle_timeout: Option<Duration>,
    #[cfg(feature = "tls")]
    pub(super) tls_handshake_timeout: Duration,
    pub(super) drain_timeout: Duration,
    pub(super) deadline_grace: Duration,
    pub(super) linger: Option<Linger>,
    pub(super) http1_keep_alive: bool,
    pub(super) http2_max_concurrent_streams: u32,
    pub(super) http2_keep_alive_interval: Option<Duration>,
    pub(super) http2_keep_alive_timeout: Duration,
    pub(super) http2_max_pending_accept_reset_streams: usize,
    pub(super) http2_max_local_error_reset_streams: Option<usize>,
    pub(super) http2_initial_stream_window_size: u32,
    pub(super) http2_initial_connection_window_size: u32,
    pub(super) max_header_list_size: u32,
    pub(super) nodelay: bool,
    pub(super) on_error: ErrorHook,
}

impl Default for ServerBuilder {
    fn default() -> Self {
        ServerBuilder {
            #[cfg(feature = "tls")]
            tls: None,
            max_connections: Some(DEFAULT_MAX_CONNECTIONS),
            max_concurrent_calls: Some(DEFAULT_MAX_CONCURRENT_CALLS),
            header_read_timeout: Some(DEFAULT_HEADER_READ_TIMEOUT),
            idle_timeout: Some(DEFAULT_IDLE_TIMEOUT),
            #[cfg(feature = "tls")]
            tls_handshake_timeout: Duration::from_secs(10),
            drain_timeout: DEFAULT_DRAIN_TIMEOUT,
            deadline_grace: DEFAULT_DEADLINE_GRACE,
            linger: Some(Linger {
                total: Duration::from_secs(10),
                idle: Duration::from_secs(2),
            }),
            http1_keep_alive: true,
            http2_max_concurrent_streams: DEFAULT_HTTP2_MAX_CONCURRENT_STREAMS,
            http2_keep_alive_interval: None,
            http2_keep_alive_timeout: Duration::from_secs(20),
            // h2's and hyper's defaults (the CVE-2023-44487 and CVE-2024-27316 mitigations).
            http2_max_pending_accept_reset_streams: 20,
            http2_max_local_error_reset_streams: Some(1024),
            // hyper's: 1 MiB each (the HTTP/2 default of 64 KiB starves fast links).
            http2_initial_stream_window_size: 1024 * 1024,
            http2_initial_connection_window_size: 1024 * 1024,
            max_header_list_size: 16 * 1024,
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

    /// The most connections open at once; `None` for no limit. When reached, the server stops
    /// accepting (new clients wait in the listen backlog) until a connection closes. Default
    /// [`DEFAULT_MAX_CONNECTIONS`] (10,000).
    #[must_use]
    pub fn max_connections(mut self, max: impl Into<Option<usize>>) -> Self {
        self.max_connections = max.into();
        self
    }

    /// The most calls (requests, whatever the service) in flight at once over all connections;
    /// `None` for no limit. Past it a request is refused at once, never queued: an HTTP/2
    /// stream with `REFUSED_STREAM` (clients treat it as `unavailable`, safe to retry), an
    /// HTTP/1.1 request with an `unavailable` error in its protocol. Default
    /// [`DEFAULT_MAX_CONCURRENT_CALLS`] (10,000).
    #[must_use]
    pub fn max_concurrent_calls(mut self, max: impl Into<Option<usize>>) -> Self {
        self.max_concurrent_calls = max.into();
        self
    }

    /// How long a new connection may take to send its first request head (HTTP/1.1) or its
    /// complete preface and first `SETTINGS` (HTTP/2, after TLS), and an HTTP/1.1 client each
    /// later request head from its first byte. `None` disables it. Default
    /// [`DEFAULT_HEADER_READ_TIMEOUT`] (30 s).
    #[must_use]
    pub fn header_read_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.header_read_timeout = timeout;
        self
    }

    /// How long a connection may stay open without a call before it is closed: an HTTP/2
    /// connection with no stream (with `GOAWAY`), an HTTP/1.1 connection between requests.
    /// `None` disables it. Default [`DEFAULT_IDLE_TIMEOUT`] (5 min).
    #[must_use]
    pub fn idle_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.idle_timeout = timeout;
        self
    }

    /// How long a TLS handshake may take. Default 10 s.
    #[cfg(feature = "tls")]
    #[must_use]
    pub fn tls_handshake_timeout(mut self, timeout: Duration) -> Self {
        self.tls_handshake_timeout = timeout;
        self
    }

    /// How long a graceful shutdown waits for in-flight calls. When it passes, calls still
    /// open end with `unavailable` (trailers where the protocol allows), and connections still
    /// open are closed. Default [`DEFAULT_DRAIN_TIMEOUT`] (30 s).
    #[must_use]
    pub fn drain_timeout(mut self, timeout: Duration) -> Self {
        self.drain_timeout = timeout;
        self
    }

    /// How long past its deadline (from its timeout header) a call whose response cannot be
    /// written — its client stopped reading, or grants no flow-control window — may hold on:
    /// then its HTTP/2 stream is reset with `CANCEL` (its HTTP/1.1 connection closed) and its
    /// handler dropped. Calls whose response can be written end at their deadline by
    /// themselves. Default [`DEFAULT_DEADLINE_GRACE`] (1 s).
    #[must_use]
    pub fn deadline_grace(mut self, grace: Duration) -> Self {
        self.deadline_grace = grace;
        self
    }

    /// How an HTTP/1.1 connection closes: after sending FIN the server keeps reading (and
    /// discarding) what the client still sends, for at most `total`, and at most `idle` between
    /// two reads, so a client still sending a request body the server answered early reads the
    /// whole response instead of a TCP reset. `None` closes at once. Default 10 s and 2 s.
    #[must_use]
    pub fn lingering_close(mut self, limits: Option<(Duration, Duration)>) -> Self {
        self.linger = limits.map(|(total, idle)| Linger { total, idle });
        self
    }

    /// Whether HTTP/1.1 connections are kept open between requests. Default `true`.
    #[must_use]
    pub fn http1_keep_alive(mut self, enabled: bool) -> Self {
        self.http1_keep_alive = enabled;
        self
    }

    /// The most concurrent streams per HTTP/2 connection (`SETTINGS_MAX_CONCURRENT_STREAMS`).
    /// Default [`DEFAULT_HTTP2_MAX_CONCURRENT_STREAMS`] (200).
    #[must_use]
    pub fn http2_max_concurrent_streams(mut self, max: u32) -> Self {
        self.http2_max_concurrent_streams = max;
        self
    }

    /// How many streams a client may reset before the server accepted them, at once, before
    /// the connection is closed (the "rapid reset" attack, CVE-2023-44487). Default 20.
    #[must_use]
    pub fn http2_max_pending_accept_reset_streams(mut self, max: usize) -> Self {
        self.http2_max_pending_accept_reset_streams = max;
        self
    }

    /// How many streams the server may reset because of the client's protocol errors before the
    /// connection is closed (CVE-2024-27316's family); `None` for no limit. Default 1,024.
    #[must_use]
    pub fn http2_max_local_error_reset_streams(mut self, max: Option<usize>) -> Self {
        self.http2_max_local_error_reset_streams = max;
        self
    }

    /// The receive window of each HTTP/2 stream (`SETTINGS_INITIAL_WINDOW_SIZE`): how much a
    /// client may send ahead of the service reading it. Default 1 MiB.
    #[must_use]
    pub fn http2_initial_stream_window_size(mut self, size: u32) -> Self {
        self.http2_initial_stream_window_size = size;
        self
    }

    /// The receive window of each HTTP/2 connection, shared by its streams. Default 1 MiB.
    #[must_use]
    pub fn http2_initial_connection_window_size(mut self, size: u32) -> Self {
        self.http2_initial_connection_window_size = size;
        self
    }

    /// Reports failures outside any call — failed accepts (out of file descriptors), failed or
    /// timed-out TLS handshakes, silent clients, protocol violations — to `hook`, for logging
    /// or metrics. Ordinary endings are not failures and are not reported: a client closing
    /// its connection (idle or not), resetting a stream, or going away mid-call. None of them
    /// stops the server; a hook that panics is caught. The hook runs on the accept loop or the
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

    /// How long to wait for a ping acknowledgement. Default 20 s.
    #[must_use]
    pub fn http2_keep_alive_timeout(mut self, timeout: Duration) -> Self {
        self.http2_keep_alive_timeout = timeout;
        self
    }

    /// The largest request head accepted, in bytes: HTTP/2's `SETTINGS_MAX_HEADER_LIST_SIZE`,
    /// and for HTTP/1.1 the read buffer (at least 8 KiB) that must hold the head. Larger
    /// heads are refused (HTTP/1.1: status 431). Default 16 KiB.
    #[must_use]
    pub fn max_header_list_size(mut self, max: u32) -> Self {
        self.max_header_list_size = max;
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
