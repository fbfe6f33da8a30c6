//! Client transports for [`connect_tower::client::Client`]: [`HttpClient`] (pooled, over
//! hyper-util's legacy client) and [`H2Connection`] (one HTTP/2 connection over `h2`).
//!
//! Both answer with [`ResponseBody`] and fail with boxed errors; HTTP/2 stream resets are
//! reported as [`TransportError::reset`] so the tower layer can map their codes.

mod connector;
mod h2conn;

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use connect_tower::client::{RequestBody, TransportError};
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use hyper_util::client::legacy;
use hyper_util::rt::{TokioExecutor, TokioTimer as HyperTimer};

use crate::BoxError;
use connector::{Connector, HostLimits};
pub use h2conn::{
    DEFAULT_H2_CLIENT_CONNECTION_WINDOW, DEFAULT_H2_CLIENT_STREAM_WINDOW, H2Connection,
    H2ConnectionBuilder,
};

/// A pooled HTTP client transport: connections are opened on demand, reused, and shared by
/// every clone.
///
/// The HTTP version is explicit: [`plaintext_http1`](Self::plaintext_http1) speaks HTTP/1.1,
/// [`plaintext_h2c`](Self::plaintext_h2c) HTTP/2 with prior knowledge, and
/// `tls` (feature `tls`) whatever ALPN settles (HTTP/2 when the server offers `h2`). Plaintext
/// clients refuse `https` URIs and TLS clients refuse `http` ones, so a configuration never
/// silently downgrades.
#[derive(Clone, Debug)]
pub struct HttpClient {
    inner: legacy::Client<Connector, PooledBody>,
    /// Whether every connection is HTTP/2, where request bodies need no `content-length`.
    http2_only: bool,
}

impl HttpClient {
    /// An HTTP/1.1 client for `http` URIs, with the default options.
    pub fn plaintext_http1() -> Self {
        HttpClient::builder().plaintext_http1()
    }

    /// An HTTP/2 client with prior knowledge (h2c) for `http` URIs, with the default options.
    pub fn plaintext_h2c() -> Self {
        HttpClient::builder().plaintext_h2c()
    }

    /// A TLS client for `https` URIs, with the default options. The HTTP version is chosen
    /// by ALPN; a configuration offering no ALPN id is given `h2` and `http/1.1`. Client
    /// certificates for mutual TLS come with `config`
    /// (see [`tls::client_config`](crate::tls::client_config)).
    #[cfg(feature = "tls")]
    pub fn tls(config: std::sync::Arc<rustls::ClientConfig>) -> Self {
        HttpClient::builder().tls(config)
    }

    /// A TLS client for `https` URIs that trusts the operating system's root certificates
    /// (feature `native-roots`), the one-liner for calling public services. The HTTP version is
    /// chosen by ALPN.
    ///
    /// ```no_run
    /// # fn main() -> connect_tokio_hyper::Result<()> {
    /// let transport = connect_tokio_hyper::HttpClient::tls_with_native_roots()?;
    /// # drop(transport);
    /// # Ok(())
    /// # }
    /// ```
    #[cfg(feature = "native-roots")]
    pub fn tls_with_native_roots() -> crate::Result<Self> {
        let config = crate::tls::client_config(crate::tls::native_roots()?, None)?;
        Ok(HttpClient::tls(config))
    }

    /// A builder for clients with non-default options.
    pub fn builder() -> HttpClientBuilder {
        HttpClientBuilder::default()
    }
}

impl tower_service::Service<http::Request<RequestBody>> for HttpClient {
    type Response = http::Response<ResponseBody>;
    type Error = BoxError;
    type Future = ResponseFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        // The pool opens connections on demand: it can always take a request.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<RequestBody>) -> ResponseFuture {
        let streaming = request.body().size_hint().exact().is_none();
        let exact_length = !self.http2_only;
        let future = self
            .inner
            .request(request.map(|body| PooledBody { body, exact_length }));
        if !streaming {
            return ResponseFuture {
                kind: FutureKind::Pooled(future),
            };
        }
        // hyper-util's future connects and sends only while polled, and the tower layer
        // polls it only when the application waits for a response event: start a streaming
        // request at once, so its messages flow while the application is still sending.
        ResponseFuture {
            kind: FutureKind::Spawned(AbortOnDrop(tokio::spawn(future))),
        }
    }
}

/// Default most connections a pooled client opens to one host.
pub const DEFAULT_MAX_CONNECTIONS_PER_HOST: usize = 128;

/// Default interval of HTTP/2 keep-alive pings while calls are open: 5.5 minutes, just over
/// the 5 minutes below which grpc-go servers (by default) count pings as abuse and close the
/// connection. It finds a dead connection under a long-lived stream; calls with deadlines end
/// by them regardless.
pub const DEFAULT_HTTP2_KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(330);

/// Builds an [`HttpClient`]; finish with one of the explicit constructors.
#[derive(Clone, Debug)]
pub struct HttpClientBuilder {
    connect_timeout: Option<Duration>,
    pool_idle_timeout: Option<Duration>,
    pool_max_idle_per_host: usize,
    max_connections_per_host: Option<usize>,
    http2_keep_alive_interval: Option<Duration>,
    http2_keep_alive_timeout: Option<Duration>,
    max_header_list_size: Option<u32>,
    nodelay: bool,
}

impl Default for HttpClientBuilder {
    fn default() -> Self {
        HttpClientBuilder {
            connect_timeout: Some(Duration::from_secs(10)),
            pool_idle_timeout: Some(Duration::from_secs(90)),
            pool_max_idle_per_host: usize::MAX,
            max_connections_per_host: Some(DEFAULT_MAX_CONNECTIONS_PER_HOST),
            http2_keep_alive_interval: Some(DEFAULT_HTTP2_KEEP_ALIVE_INTERVAL),
            http2_keep_alive_timeout: None,
            max_header_list_size: None,
            nodelay: true,
        }
    }
}

impl HttpClientBuilder {
    /// How long opening a TCP connection may take, and then the TLS handshake (each).
    /// Default 10 s.
    #[must_use]
    pub fn connect_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// How long an idle pooled connection is kept. Default 90 s.
    #[must_use]
    pub fn pool_idle_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.pool_idle_timeout = timeout;
        self
    }

    /// The most idle connections kept per host. Default: no limit.
    #[must_use]
    pub fn pool_max_idle_per_host(mut self, max: usize) -> Self {
        self.pool_max_idle_per_host = max;
        self
    }

    /// The most connections open to one host at once (`None`: no limit). A call that needs a
    /// new connection past it waits for one to close or become idle (within its deadline).
    /// HTTP/1.1 needs a connection per call in flight; HTTP/2 uses one per host. Default
    /// [`DEFAULT_MAX_CONNECTIONS_PER_HOST`] (128).
    #[must_use]
    pub fn max_connections_per_host(mut self, max: impl Into<Option<usize>>) -> Self {
        self.max_connections_per_host = max.into();
        self
    }

    /// Sends HTTP/2 pings at this interval (while calls are open) and closes connections
    /// whose peer does not answer within the keep-alive timeout. Default
    /// [`DEFAULT_HTTP2_KEEP_ALIVE_INTERVAL`] (5.5 min); `None` turns them off.
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

    /// The largest response head accepted over HTTP/2, in bytes. Default: hyper's.
    #[must_use]
    pub fn max_header_list_size(mut self, max: u32) -> Self {
        self.max_header_list_size = Some(max);
        self
    }

    /// Whether sockets set `TCP_NODELAY`. Default `true`.
    #[must_use]
    pub fn nodelay(mut self, enabled: bool) -> Self {
        self.nodelay = enabled;
        self
    }

    /// An HTTP/1.1 client for `http` URIs.
    pub fn plaintext_http1(self) -> HttpClient {
        let connector = Connector::plaintext(self.connect_timeout, self.nodelay, self.limits());
        self.build(connector, false)
    }

    /// An HTTP/2 client with prior knowledge (h2c) for `http` URIs.
    pub fn plaintext_h2c(self) -> HttpClient {
        let connector = Connector::plaintext(self.connect_timeout, self.nodelay, self.limits());
        self.build(connector, true)
    }

    fn limits(&self) -> HostLimits {
        HostLimits::new(self.max_connections_per_host)
    }

    /// A TLS client for `https` URIs; the HTTP version is chosen by ALPN (see
    /// [`HttpClient::tls`]).
    #[cfg(feature = "tls")]
    pub fn tls(self, config: std::sync::Arc<rustls::ClientConfig>) -> HttpClient {
        let config = crate::tls::client_with_default_alpn(config);
        let connector = Connector::tls(self.connect_timeout, self.nodelay, self.limits(), config);
        self.build(connector, false)
    }

    fn build(&self, connector: Connector, http2_only: bool) -> HttpClient {
        let mut builder = legacy::Client::builder(TokioExecutor::new());
        builder
            .timer(HyperTimer::new())
            .pool_timer(HyperTimer::new())
            .pool_idle_timeout(self.pool_idle_timeout)
            .pool_max_idle_per_host(self.pool_max_idle_per_host)
            .http2_only(http2_only)
            .http2_keep_alive_interval(self.http2_keep_alive_interval);
        if let Some(timeout) = self.http2_keep_alive_timeout {
            builder.http2_keep_alive_timeout(timeout);
        }
        if let Some(max) = self.max_header_list_size {
            builder.http2_max_header_list_size(max);
        }
        HttpClient {
            inner: builder.build(connector),
            http2_only,
        }
    }
}

/// A request body as the pooled client sends it: when the body fails (the call was
/// abandoned), hyper resets the HTTP/2 stream with the reason found in the error, `CANCEL`.
/// Over HTTP/2 a complete body hides its exact length, which would only make hyper format a
/// `content-length` header per request.
struct PooledBody {
    body: RequestBody,
    exact_length: bool,
}

impl Body for PooledBody {
    type Data = Bytes;
    type Error = h2::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, h2::Error>>> {
        Pin::new(&mut self.get_mut().body)
            .poll_frame(cx)
            .map(|frame| frame.map(|frame| frame.map_err(|_| h2::Error::from(h2::Reason::CANCEL))))
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        let hint = self.body.size_hint();
        match hint.exact() {
            Some(_) if !self.exact_length => {
                let mut inexact = SizeHint::new();
                inexact.set_lower(hint.lower());
                inexact
            }
            _ => hint,
        }
    }
}

/// The response future of the client transports.
#[must_use = "futures do nothing unless polled"]
pub struct ResponseFuture {
    kind: FutureKind,
}

enum FutureKind {
    Pooled(legacy::ResponseFuture),
    Spawned(AbortOnDrop),
    H2(h2conn::H2ResponseFuture),
    Failed(Option<BoxError>),
}

impl ResponseFuture {
    pub(crate) fn failed(error: BoxError) -> Self {
        ResponseFuture {
            kind: FutureKind::Failed(Some(error)),
        }
    }
}

impl std::fmt::Debug for ResponseFuture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl Future for ResponseFuture {
    type Output = Result<http::Response<ResponseBody>, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match &mut self.get_mut().kind {
            FutureKind::Pooled(future) => match Pin::new(future).poll(cx) {
                Poll::Pending => Poll::Pending,
                Poll::Ready(Ok(response)) => Poll::Ready(Ok(response.map(|body| ResponseBody {
                    kind: BodyKind::Hyper(body),
                }))),
                Poll::Ready(Err(error)) => Poll::Ready(Err(map_error(Box::new(error)))),
            },
            FutureKind::Spawned(AbortOnDrop(task)) => match Pin::new(task).poll(cx) {
                Poll::Pending => Poll::Pending,
                Poll::Ready(Ok(result)) => Poll::Ready(match result {
                    Ok(response) => Ok(response.map(|body| ResponseBody {
                        kind: BodyKind::Hyper(body),
                    })),
                    Err(error) => Err(map_error(Box::new(error))),
                }),
                Poll::Ready(Err(join_error)) => Poll::Ready(Err(Box::new(join_error))),
            },
            FutureKind::H2(future) => future.poll(cx),
            FutureKind::Failed(error) => Poll::Ready(Err(error
                .take()
                .unwrap_or_else(|| "the response future was polled after completion".into()))),
        }
    }
}

/// A spawned request: dropping the response future abandons it.
struct AbortOnDrop(tokio::task::JoinHandle<Result<http::Response<Incoming>, legacy::Error>>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The response body of the client transports: `Bytes` frames (data and trailers); HTTP/2
/// stream resets fail with a [`TransportError`].
pub struct ResponseBody {
    kind: BodyKind,
}

enum BodyKind {
    Hyper(Incoming),
    H2(h2conn::H2Body),
}

impl std::fmt::Debug for ResponseBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseBody").finish_non_exhaustive()
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match &mut self.get_mut().kind {
            BodyKind::Hyper(body) => match Pin::new(body).poll_frame(cx) {
                Poll::Ready(Some(Err(error))) => Poll::Ready(Some(Err(map_error(Box::new(error))))),
                other => other.map(|frame| frame.map(|frame| frame.map_err(Into::into))),
            },
            BodyKind::H2(body) => body.poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            BodyKind::Hyper(body) => body.is_end_stream(),
            BodyKind::H2(body) => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            BodyKind::Hyper(body) => body.size_hint(),
            BodyKind::H2(_) => SizeHint::default(),
        }
    }
}

/// Reports what the tower layer can act on as a [`TransportError`]: an HTTP/2 stream reset
/// found anywhere in `error`'s source chain (with its code), or a request the server never
/// processed — no connection could be made, the request was never written, or the server's
/// GOAWAY refused the stream (h2 reports a remote GOAWAY only to streams above its last
/// stream id and to streams opened after it). Every other error passes through.
pub(crate) fn map_error(error: BoxError) -> BoxError {
    match classify(error.as_ref()) {
        Some(Failure::Reset(code)) => {
            Box::new(TransportError::reset(code, error_chain(error.as_ref())))
        }
        Some(Failure::Unprocessed) => {
            Box::new(TransportError::unprocessed(error_chain(error.as_ref())))
        }
        None => error,
    }
}

enum Failure {
    Reset(u32),
    Unprocessed,
}

fn classify(error: &(dyn std::error::Error + 'static)) -> Option<Failure> {
    let mut current = Some(error);
    while let Some(error) = current {
        if let Some(h2) = error.downcast_ref::<h2::Error>() {
            if h2.is_go_away() && h2.is_remote() {
                return Some(Failure::Unprocessed);
            }
            return h2
                .is_reset()
                .then(|| h2.reason())
                .flatten()
                .map(|reason| Failure::Reset(u32::from(reason)));
        }
        if let Some(legacy) = error.downcast_ref::<legacy::Error>() {
            if legacy.is_connect() {
                return Some(Failure::Unprocessed);
            }
        }
        if let Some(hyper) = error.downcast_ref::<hyper::Error>() {
            if hyper.is_canceled() {
                return Some(Failure::Unprocessed);
            }
        }
        if error.downcast_ref::<ConnectionClosed>().is_some() {
            return Some(Failure::Unprocessed);
        }
        current = error.source();
    }
    None
}

/// An [`H2Connection`] that is closed took no request.
#[derive(Debug)]
pub(crate) struct ConnectionClosed;

impl std::fmt::Display for ConnectionClosed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the HTTP/2 connection is closed")
    }
}

impl std::error::Error for ConnectionClosed {}

/// `error` and its sources, joined with `: `.
fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut message = error.to_string();
    let mut current = error.source();
    while let Some(source) = current {
        let text = source.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        current = source.source();
    }
    message
}
