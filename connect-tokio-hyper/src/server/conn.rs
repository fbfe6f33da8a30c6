//! One server connection up to its HTTP version: the TLS handshake (with its timeout), the
//! HTTP version (ALPN, or detected from the first bytes within the header read timeout, so a
//! silent client or a partial HTTP/2 preface is closed), and the connection's
//! [`ConnectionInfo`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use connect_tower::rt::{ShutdownSignal, ShutdownTrigger, ShutdownWatch};
use connect_tower::{ConnectionInfo, PeerInfo};
use http_body::Body;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::Instant;

use super::builder::ServerBuilder;
use super::events::{ErrorHook, ServerError};
use super::io::{Linger, ServerIo};
use super::{CallBudget, IncomingBody, Phase, http1, http2};
use crate::BoxError;

/// The HTTP/2 connection preface every HTTP/2 client sends first (RFC 9113, section 3.4),
/// followed by a `SETTINGS` frame.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// Length of an HTTP/2 frame header.
const H2_FRAME_HEADER_LEN: usize = 9;
/// Most bytes of the client's first frame read during detection (its default maximum frame
/// size); a longer first frame is left to `h2`, which rejects it.
const H2_MAX_FIRST_FRAME: usize = 16 * 1024;

/// Everything a connection task needs, shared by all of them.
#[derive(Clone)]
pub(super) struct ConnConfig(pub(super) Arc<Inner>);

pub(super) struct Inner {
    pub(super) http1: hyper::server::conn::http1::Builder,
    pub(super) http2: h2::server::Builder,
    #[cfg(feature = "tls")]
    tls: Option<(tokio_rustls::TlsAcceptor, Duration)>,
    pub(super) header_read_timeout: Option<Duration>,
    pub(super) idle_timeout: Option<Duration>,
    pub(super) keep_alive: Option<(Duration, Duration)>,
    pub(super) linger: Option<Linger>,
    pub(super) deadline_grace: Duration,
    nodelay: bool,
    pub(super) on_error: ErrorHook,
    pub(super) calls: Arc<CallBudget>,
}

impl ConnConfig {
    pub(super) fn new(options: ServerBuilder) -> Self {
        let mut http1 = hyper::server::conn::http1::Builder::new();
        // The header read and idle timeouts are the server's own (see `http1::Activity`).
        http1
            .timer(hyper_util::rt::TokioTimer::new())
            .keep_alive(options.http1_keep_alive)
            // A client that half-closes after its request still gets the response.
            .half_close(true)
            .header_read_timeout(None)
            // hyper's smallest allowed read buffer is 8 KiB.
            .max_buf_size(
                usize::try_from(options.max_header_list_size)
                    .unwrap_or(usize::MAX)
                    .max(8192),
            );
        let mut http2 = h2::server::Builder::new();
        http2
            .max_concurrent_streams(options.http2_max_concurrent_streams)
            .max_pending_accept_reset_streams(options.http2_max_pending_accept_reset_streams)
            .max_local_error_reset_streams(options.http2_max_local_error_reset_streams)
            .initial_window_size(options.http2_initial_stream_window_size)
            .initial_connection_window_size(options.http2_initial_connection_window_size)
            .max_header_list_size(options.max_header_list_size)
            // hyper's: bounds what one stream may queue for sending.
            .max_send_buffer_size(400 * 1024);
        ConnConfig(Arc::new(Inner {
            http1,
            http2,
            #[cfg(feature = "tls")]
            tls: options.tls.map(|config| {
                (
                    tokio_rustls::TlsAcceptor::from(config),
                    options.tls_handshake_timeout,
                )
            }),
            header_read_timeout: options.header_read_timeout,
            idle_timeout: options.idle_timeout,
            keep_alive: options
                .http2_keep_alive_interval
                .map(|interval| (interval, options.http2_keep_alive_timeout)),
            linger: options.linger,
            deadline_grace: options.deadline_grace,
            nodelay: options.nodelay,
            on_error: options.on_error,
            calls: Arc::new(CallBudget::new(options.max_concurrent_calls)),
        }))
    }
}

/// The server's phase as one connection follows it, polled in the connection's loop next to
/// its I/O. The registration is kept across the loop's iterations: polled again by the same
/// task it reads an atomic and returns, without the lock all the server's watchers share.
pub(super) struct PhaseWatch {
    server: ShutdownSignal,
    watch: ShutdownWatch,
}

impl PhaseWatch {
    pub(super) fn new(server: ShutdownSignal) -> Self {
        PhaseWatch {
            watch: server.watch(),
            server,
        }
    }

    /// The server's phase once it has moved past `current` (a server may move from running
    /// straight to forced between two polls); never ready after `Forced`.
    pub(super) fn poll_change(&mut self, current: Phase, cx: &mut Context<'_>) -> Poll<Phase> {
        let moved = match current {
            Phase::Running => self.watch.poll_draining(cx),
            Phase::Draining => self.watch.poll_forced(cx),
            Phase::Forced => return Poll::Pending,
        };
        moved.map(|()| {
            if self.server.is_forced() {
                Phase::Forced
            } else {
                Phase::Draining
            }
        })
    }
}

/// The HTTP version of a connection.
enum Version {
    Http1,
    Http2,
}

/// Serves one accepted connection to its end (or until shutdown ends it). Errors end the
/// connection only; the permit (if any) is released when this returns.
pub(super) async fn serve_connection<S, B>(
    stream: TcpStream,
    remote: SocketAddr,
    config: ConnConfig,
    service: S,
    server: ShutdownSignal,
    permit: Option<OwnedSemaphorePermit>,
) where
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
    let _permit = permit;
    let inner = &*config.0;
    let _ = stream.set_nodelay(inner.nodelay);
    let peer = PeerInfo::new(Some(remote), stream.local_addr().ok());

    #[cfg(feature = "tls")]
    if let Some((acceptor, handshake_timeout)) = &inner.tls {
        let handshake = tokio::time::timeout(*handshake_timeout, acceptor.accept(stream));
        let stream = tokio::select! {
            result = handshake => match result {
                Ok(Ok(stream)) => stream,
                // Handshake failure (including a missing or invalid client certificate) or
                // timeout: this connection ends.
                Ok(Err(error)) => {
                    inner.on_error.report(ServerError::TlsHandshake { remote, error });
                    return;
                }
                Err(_) => {
                    inner.on_error.report(ServerError::TlsHandshakeTimeout { remote });
                    return;
                }
            },
            () = server.draining() => return,
        };
        let session = stream.get_ref().1;
        let client_certs = session.peer_certificates().map(|chain| {
            chain
                .iter()
                .map(|cert| Bytes::copy_from_slice(cert.as_ref()))
                .collect()
        });
        let version = match session.alpn_protocol() {
            Some(crate::tls::ALPN_H2) => Some(Version::Http2),
            Some(crate::tls::ALPN_HTTP1) => Some(Version::Http1),
            _ => None,
        };
        let peer = peer.with_tls(client_certs);
        return serve_http(&config, stream, version, service, peer, remote, server).await;
    }

    serve_http(&config, stream, None, service, peer, remote, server).await;
}

/// Serves HTTP over `io`: the version given (ALPN), or the one its first bytes show.
async fn serve_http<I, S, B>(
    config: &ConnConfig,
    mut io: I,
    version: Option<Version>,
    service: S,
    peer: PeerInfo,
    remote: SocketAddr,
    server: ShutdownSignal,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
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
    let inner = &*config.0;
    let started = Instant::now();
    let header_deadline = inner.header_read_timeout.map(|timeout| started + timeout);
    let (version, prefix) = match version {
        Some(version) => (version, Bytes::new()),
        None => {
            tokio::select! {
                detected = detect(&mut io, header_deadline) => match detected {
                    Detected::Version(version, prefix) => (version, prefix),
                    Detected::Closed => return,
                    Detected::TimedOut => {
                        inner.on_error.report(ServerError::Silent { remote });
                        return;
                    }
                },
                () = server.draining() => return,
            }
        }
    };
    let (trigger, signal) = ShutdownTrigger::new();
    let info = Arc::new(ConnectionInfo::new(peer, signal));
    match version {
        Version::Http1 => {
            let activity =
                http1::Activity::new(started, inner.header_read_timeout, inner.idle_timeout);
            let io = ServerIo::new(io, prefix, inner.linger, Some(activity.clone()));
            http1::serve(config, io, activity, service, info, trigger, remote, server).await;
        }
        Version::Http2 => {
            let io = ServerIo::new(io, prefix, None, None);
            http2::serve(
                config,
                io,
                service,
                info,
                trigger,
                remote,
                server,
                header_deadline,
            )
            .await;
        }
    }
}

/// Whether `read` holds the HTTP/2 preface and the whole first frame after it.
fn first_frame_read(read: &[u8]) -> bool {
    let Some(header) = read.get(H2_PREFACE.len()..H2_PREFACE.len() + H2_FRAME_HEADER_LEN) else {
        return false;
    };
    let length =
        usize::from(header[0]) << 16 | usize::from(header[1]) << 8 | usize::from(header[2]);
    length > H2_MAX_FIRST_FRAME || read.len() >= H2_PREFACE.len() + H2_FRAME_HEADER_LEN + length
}

enum Detected {
    /// The version, and the bytes read to tell it (to be read again by the HTTP layer).
    Version(Version, Bytes),
    /// The client closed the connection (or it broke) before saying anything decisive.
    Closed,
    /// The header read timeout passed first.
    TimedOut,
}

/// Reads until the bytes either stop matching the HTTP/2 preface (HTTP/1.1) or are the
/// whole preface and the frame after it (the client's `SETTINGS`), within `deadline`: a
/// client that stops half-way through its preface is cut off like a silent one.
async fn detect<I: AsyncRead + Unpin>(io: &mut I, deadline: Option<Instant>) -> Detected {
    let mut read = BytesMut::with_capacity(H2_PREFACE.len() + H2_FRAME_HEADER_LEN);
    let reading = async {
        loop {
            let matched = read.len().min(H2_PREFACE.len());
            if read[..matched] != H2_PREFACE[..matched] {
                return Detected::Version(Version::Http1, read.split().freeze());
            }
            if first_frame_read(&read) {
                return Detected::Version(Version::Http2, read.split().freeze());
            }
            match io.read_buf(&mut read).await {
                Ok(0) | Err(_) => return Detected::Closed,
                Ok(_) => {}
            }
        }
    };
    match deadline {
        Some(deadline) => tokio::time::timeout_at(deadline, reading)
            .await
            .unwrap_or(Detected::TimedOut),
        None => reading.await,
    }
}
