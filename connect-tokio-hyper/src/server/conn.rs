//! One server connection: TLS handshake (with its timeout), HTTP version choice, the
//! per-request [`PeerInfo`], the silent-client timeout, and graceful shutdown.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use connect_tower::PeerInfo;
use http_body::Body;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer as HyperTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, watch};

use super::ServerBuilder;
use super::events::{ErrorHook, ServerError};
use crate::BoxError;

/// Everything a connection task needs, shared by all of them.
#[derive(Clone)]
pub(super) struct ConnConfig(Arc<Inner>);

struct Inner {
    /// Detects HTTP/1.1 or the HTTP/2 preface (plaintext, or TLS without ALPN).
    detect: auto::Builder<TokioExecutor>,
    /// ALPN chose HTTP/1.1.
    #[cfg(feature = "tls")]
    http1: auto::Builder<TokioExecutor>,
    /// ALPN chose HTTP/2.
    #[cfg(feature = "tls")]
    http2: auto::Builder<TokioExecutor>,
    #[cfg(feature = "tls")]
    tls: Option<(tokio_rustls::TlsAcceptor, Duration)>,
    first_byte_timeout: Option<Duration>,
    nodelay: bool,
    on_error: ErrorHook,
}

impl ConnConfig {
    pub(super) fn new(options: ServerBuilder) -> Self {
        let mut detect = auto::Builder::new(TokioExecutor::new());
        detect
            .http1()
            .timer(HyperTimer::new())
            .keep_alive(options.http1_keep_alive)
            .header_read_timeout(options.header_read_timeout);
        if let Some(max) = options.max_header_list_size {
            // hyper's smallest allowed read buffer is 8 KiB.
            let max = usize::try_from(max).unwrap_or(usize::MAX).max(8192);
            detect.http1().max_buf_size(max);
        }
        {
            let mut http2 = detect.http2();
            http2.timer(HyperTimer::new());
            if let Some(max) = options.http2_max_concurrent_streams {
                http2.max_concurrent_streams(max);
            }
            http2.keep_alive_interval(options.http2_keep_alive_interval);
            if let Some(timeout) = options.http2_keep_alive_timeout {
                http2.keep_alive_timeout(timeout);
            }
            if let Some(max) = options.max_header_list_size {
                http2.max_header_list_size(max);
            }
        }
        ConnConfig(Arc::new(Inner {
            #[cfg(feature = "tls")]
            http1: detect.clone().http1_only(),
            #[cfg(feature = "tls")]
            http2: detect.clone().http2_only(),
            detect,
            #[cfg(feature = "tls")]
            tls: options.tls.map(|config| {
                (
                    tokio_rustls::TlsAcceptor::from(config),
                    options.tls_handshake_timeout,
                )
            }),
            first_byte_timeout: options.header_read_timeout,
            nodelay: options.nodelay,
            on_error: options.on_error,
        }))
    }
}

/// Serves one accepted connection to its end (or until shutdown drains it). Errors end the
/// connection only; the permit (if any) is released when this returns.
pub(super) async fn serve_connection<S, B>(
    stream: TcpStream,
    remote: SocketAddr,
    config: ConnConfig,
    service: S,
    stopping: watch::Receiver<bool>,
    permit: Option<OwnedSemaphorePermit>,
) where
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
    let _permit = permit;
    let inner = &*config.0;
    let _ = stream.set_nodelay(inner.nodelay);
    let peer = PeerInfo::new(Some(remote), stream.local_addr().ok());

    #[cfg(feature = "tls")]
    if let Some((acceptor, handshake_timeout)) = &inner.tls {
        let mut stopping = stopping;
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
            _ = stopping.wait_for(|stop| *stop) => return,
        };
        let session = stream.get_ref().1;
        let client_certs = session.peer_certificates().map(|chain| {
            chain
                .iter()
                .map(|cert| bytes::Bytes::copy_from_slice(cert.as_ref()))
                .collect()
        });
        let builder = match session.alpn_protocol() {
            Some(crate::tls::ALPN_H2) => &inner.http2,
            Some(crate::tls::ALPN_HTTP1) => &inner.http1,
            _ => &inner.detect,
        };
        let peer = peer.with_tls(client_certs);
        return drive(builder, inner, stream, service, peer, remote, stopping).await;
    }

    drive(
        &inner.detect,
        inner,
        stream,
        service,
        peer,
        remote,
        stopping,
    )
    .await;
}

/// Runs the HTTP connection over `io`.
async fn drive<I, S, B>(
    builder: &auto::Builder<TokioExecutor>,
    inner: &Inner,
    io: I,
    service: S,
    peer: PeerInfo,
    remote: SocketAddr,
    mut stopping: watch::Receiver<bool>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
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
    let heard = Arc::new(AtomicBool::new(false));
    let io = TokioIo::new(FirstRead {
        inner: io,
        heard: heard.clone(),
    });
    let connection = builder.serve_connection(
        io,
        PeerService {
            inner: service,
            peer,
        },
    );
    let mut connection = std::pin::pin!(connection);
    let silence = async {
        match inner.first_byte_timeout {
            Some(timeout) => tokio::time::sleep(timeout).await,
            None => std::future::pending().await,
        }
    };
    let mut silence = std::pin::pin!(silence);
    let mut waiting_for_first_byte = true;
    let mut shutting_down = false;
    loop {
        tokio::select! {
            ended = connection.as_mut() => {
                if let Err(error) = ended {
                    inner.on_error.report(ServerError::Connection { remote, error });
                }
                return;
            }
            () = silence.as_mut(), if waiting_for_first_byte => {
                if !heard.load(Ordering::Acquire) {
                    // Not a single byte within the timeout: drop the connection.
                    inner.on_error.report(ServerError::Silent { remote });
                    return;
                }
                waiting_for_first_byte = false;
            }
            _ = stopping.wait_for(|stop| *stop), if !shutting_down => {
                shutting_down = true;
                connection.as_mut().graceful_shutdown();
            }
        }
    }
}

/// The I/O of a connection, noting when its first byte arrives.
struct FirstRead<I> {
    inner: I,
    heard: Arc<AtomicBool>,
}

impl<I: AsyncRead + Unpin> AsyncRead for FirstRead<I> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let result = Pin::new(&mut this.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            this.heard.store(true, Ordering::Release);
        }
        result
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for FirstRead<I> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// The per-connection hyper service: adds the connection's [`PeerInfo`] to each request and
/// calls a clone of the tower service once it is ready.
struct PeerService<S> {
    inner: S,
    peer: PeerInfo,
}

impl<S, B> hyper::service::Service<http::Request<Incoming>> for PeerService<S>
where
    S: tower_service::Service<http::Request<Incoming>, Response = http::Response<B>> + Clone,
{
    type Response = http::Response<B>;
    type Error = S::Error;
    type Future = Oneshot<S, http::Request<Incoming>>;

    fn call(&self, mut request: http::Request<Incoming>) -> Self::Future {
        request.extensions_mut().insert(self.peer.clone());
        Oneshot::NotReady {
            service: self.inner.clone(),
            request: Some(request),
        }
    }
}

pin_project_lite::pin_project! {
    /// Waits for a service to be ready, then calls it with one request.
    #[project = OneshotProj]
    enum Oneshot<S, R>
    where
        S: tower_service::Service<R>,
    {
        NotReady { service: S, request: Option<R> },
        Called { #[pin] future: S::Future },
    }
}

impl<S, R> Future for Oneshot<S, R>
where
    S: tower_service::Service<R>,
{
    type Output = Result<S::Response, S::Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        loop {
            match self.as_mut().project() {
                OneshotProj::NotReady { service, request } => {
                    match service.poll_ready(cx) {
                        Poll::Pending => return Poll::Pending,
                        Poll::Ready(Err(error)) => return Poll::Ready(Err(error)),
                        Poll::Ready(Ok(())) => {}
                    }
                    let Some(request) = request.take() else {
                        // Unreachable: the request is taken once, right before the state
                        // changes to `Called`.
                        return Poll::Pending;
                    };
                    let future = service.call(request);
                    self.set(Oneshot::Called { future });
                }
                OneshotProj::Called { future } => return future.poll(cx),
            }
        }
    }
}
