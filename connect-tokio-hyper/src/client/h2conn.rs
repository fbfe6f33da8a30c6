//! [`H2Connection`]: one HTTP/2 connection (h2c or TLS with ALPN `h2`) as a transport whose
//! readiness tells the truth: a handle is ready only while the connection has a free stream
//! under the peer's `SETTINGS_MAX_CONCURRENT_STREAMS`, and fails once the connection is gone.

use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::Bytes;
use connect_tower::client::RequestBody;
use h2::client::SendRequest;
use h2::{PingPong, RecvStream, SendStream};
use http::Uri;
use http::uri::{Authority, Scheme};
use http_body::{Body, Frame};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use super::{BodyKind, FutureKind, ResponseBody, ResponseFuture, map_error};
use crate::BoxError;
use crate::error::{Error, Result};

/// The default number of streams opened before the peer's first `SETTINGS` arrives.
const DEFAULT_INITIAL_MAX_SEND_STREAMS: usize = 100;

/// One HTTP/2 connection as a tower transport. Cheap to clone: clones share the connection,
/// which closes when the last clone is dropped.
///
/// `poll_ready` reserves a stream: it is `Pending` while the connection is at the peer's
/// concurrent stream limit (woken when a stream ends or the limit grows) and fails once the
/// peer sent `GOAWAY` or the connection is closed, so `tower::balance` can spread calls over several connections and
/// drop dead ones. The reservation is released when the response body ends or is dropped.
pub struct H2Connection {
    send: SendRequest<Bytes>,
    slots: Arc<Slots>,
    reserved: Option<Slot>,
    scheme: Scheme,
    authority: Authority,
}

impl Clone for H2Connection {
    fn clone(&self) -> Self {
        H2Connection {
            send: self.send.clone(),
            slots: self.slots.clone(),
            // A reservation belongs to the handle that made it.
            reserved: None,
            scheme: self.scheme.clone(),
            authority: self.authority.clone(),
        }
    }
}

impl std::fmt::Debug for H2Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.slots.lock();
        f.debug_struct("H2Connection")
            .field("authority", &self.authority)
            .field("in_flight", &state.in_flight)
            .field("max_concurrent_streams", &state.max)
            .field("closed", &state.closed)
            .finish()
    }
}

impl H2Connection {
    /// Connects to `uri` (`http` scheme: HTTP/2 with prior knowledge) with the default
    /// options. For `https`, use `connect_tls` (feature `tls`).
    pub async fn connect(uri: &Uri) -> Result<Self> {
        H2Connection::builder().connect(uri).await
    }

    /// Connects to an `https` `uri` over TLS, negotiating `h2` with ALPN (the configuration's
    /// ALPN list is replaced by `h2` alone).
    #[cfg(feature = "tls")]
    pub async fn connect_tls(uri: &Uri, config: Arc<rustls::ClientConfig>) -> Result<Self> {
        H2Connection::builder().tls(config).connect(uri).await
    }

    /// A builder for connections with non-default options.
    pub fn builder() -> H2ConnectionBuilder {
        H2ConnectionBuilder::default()
    }

    /// Whether the connection is closed (every later call fails).
    pub fn is_closed(&self) -> bool {
        self.slots.lock().closed
    }

    /// The peer's current limit on concurrent streams.
    pub fn max_concurrent_streams(&self) -> usize {
        self.slots.lock().max
    }

    /// Streams reserved or open on the connection, across all clones.
    pub fn in_flight(&self) -> usize {
        self.slots.lock().in_flight
    }

    fn start(&mut self, request: http::Request<RequestBody>) -> Result<H2ResponseFuture, BoxError> {
        let slot = match self.reserved.take() {
            Some(slot) => slot,
            None => self.slots.acquire_now()?,
        };
        let (mut parts, mut body) = request.into_parts();
        if parts.uri.scheme().is_none() || parts.uri.authority().is_none() {
            let mut uri = std::mem::take(&mut parts.uri).into_parts();
            uri.scheme = Some(self.scheme.clone());
            uri.authority = Some(self.authority.clone());
            if uri.path_and_query.is_none() {
                uri.path_and_query = Some(http::uri::PathAndQuery::from_static("/"));
            }
            parts.uri = Uri::from_parts(uri)?;
        }
        parts.version = http::Version::HTTP_2;
        let head = http::Request::from_parts(parts, ());

        // Take what the body already holds (all of a unary request) without waiting.
        let ready = take_ready(&mut body)?;
        let end_of_stream = matches!(ready.rest, Rest::Ended) && ready.data.is_empty();
        let (response, mut send) = self.send.send_request(head, end_of_stream)?;
        if !end_of_stream {
            let count = ready.data.len();
            for (index, data) in ready.data.into_iter().enumerate() {
                let last = index + 1 == count && matches!(ready.rest, Rest::Ended);
                // A failure here (a reset) shows in the response future.
                let _ = send.send_data(data, last);
            }
            match ready.rest {
                Rest::Ended => {}
                Rest::Trailers(trailers) => {
                    let _ = send.send_trailers(trailers);
                }
                Rest::Pending => {
                    tokio::spawn(pump(body, send));
                }
            }
        }
        Ok(H2ResponseFuture {
            response,
            slot: Some(slot),
        })
    }
}

impl tower_service::Service<http::Request<RequestBody>> for H2Connection {
    type Response = http::Response<ResponseBody>;
    type Error = BoxError;
    type Future = ResponseFuture;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        if self.reserved.is_none() {
            match self.slots.poll_acquire(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(error)) => return Poll::Ready(Err(map_error(error))),
                Poll::Ready(Ok(slot)) => self.reserved = Some(slot),
            }
        }
        match self.send.poll_ready(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Ok(())) => Poll::Ready(Ok(())),
            Poll::Ready(Err(error)) => {
                self.reserved = None;
                Poll::Ready(Err(map_error(Box::new(error))))
            }
        }
    }

    fn call(&mut self, request: http::Request<RequestBody>) -> ResponseFuture {
        match self.start(request) {
            Ok(future) => ResponseFuture {
                kind: FutureKind::H2(future),
            },
            Err(error) => ResponseFuture::failed(map_error(error)),
        }
    }
}

/// Default receive window of each stream of an [`H2Connection`]: 1 MiB. HTTP/2's own default
/// (64 KiB) lets a server send only that much per round trip: a stream of responses then
/// runs at the pace of window updates (a 2.5x slower stream of 1,000 small messages in this
/// repository's benchmark).
pub const DEFAULT_H2_CLIENT_STREAM_WINDOW: u32 = 1024 * 1024;

/// Default receive window of an [`H2Connection`], shared by its streams: 4 MiB (HTTP/2's own
/// default of 64 KiB would throttle every call together).
pub const DEFAULT_H2_CLIENT_CONNECTION_WINDOW: u32 = 4 * 1024 * 1024;

/// Builds an [`H2Connection`].
#[derive(Clone, Debug)]
pub struct H2ConnectionBuilder {
    connect_timeout: Option<Duration>,
    keep_alive_interval: Option<Duration>,
    keep_alive_timeout: Duration,
    initial_stream_window_size: u32,
    initial_connection_window_size: u32,
    max_header_list_size: Option<u32>,
    initial_max_send_streams: usize,
    nodelay: bool,
    #[cfg(feature = "tls")]
    tls: Option<Arc<rustls::ClientConfig>>,
}

impl Default for H2ConnectionBuilder {
    fn default() -> Self {
        H2ConnectionBuilder {
            connect_timeout: Some(Duration::from_secs(10)),
            keep_alive_interval: Some(super::DEFAULT_HTTP2_KEEP_ALIVE_INTERVAL),
            keep_alive_timeout: Duration::from_secs(20),
            initial_stream_window_size: DEFAULT_H2_CLIENT_STREAM_WINDOW,
            initial_connection_window_size: DEFAULT_H2_CLIENT_CONNECTION_WINDOW,
            max_header_list_size: None,
            initial_max_send_streams: DEFAULT_INITIAL_MAX_SEND_STREAMS,
            nodelay: true,
            #[cfg(feature = "tls")]
            tls: None,
        }
    }
}

impl H2ConnectionBuilder {
    /// How long connecting (TCP, TLS and the HTTP/2 handshake) may take. Default 10 s.
    #[must_use]
    pub fn connect_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Sends a ping at this interval while calls are open; the connection closes if a ping is
    /// not answered within the [keep-alive timeout](Self::keep_alive_timeout). Default
    /// [`DEFAULT_HTTP2_KEEP_ALIVE_INTERVAL`](crate::DEFAULT_HTTP2_KEEP_ALIVE_INTERVAL)
    /// (5.5 min); `None` turns them off.
    #[must_use]
    pub fn keep_alive_interval(mut self, interval: Option<Duration>) -> Self {
        self.keep_alive_interval = interval;
        self
    }

    /// How long to wait for a ping acknowledgement. Default 20 s.
    #[must_use]
    pub fn keep_alive_timeout(mut self, timeout: Duration) -> Self {
        self.keep_alive_timeout = timeout;
        self
    }

    /// The receive window of each stream (`SETTINGS_INITIAL_WINDOW_SIZE`): how much a server
    /// may send on one call before this client reads it. Default [`DEFAULT_H2_CLIENT_STREAM_WINDOW`]
    /// (1 MiB).
    #[must_use]
    pub fn initial_stream_window_size(mut self, size: u32) -> Self {
        self.initial_stream_window_size = size;
        self
    }

    /// The receive window of the connection, shared by its streams. Default
    /// [`DEFAULT_H2_CLIENT_CONNECTION_WINDOW`] (4 MiB).
    #[must_use]
    pub fn initial_connection_window_size(mut self, size: u32) -> Self {
        self.initial_connection_window_size = size;
        self
    }

    /// The largest response head accepted, in bytes (`SETTINGS_MAX_HEADER_LIST_SIZE`).
    #[must_use]
    pub fn max_header_list_size(mut self, max: u32) -> Self {
        self.max_header_list_size = Some(max);
        self
    }

    /// How many streams may be opened before the peer's first `SETTINGS` frame says how many
    /// it allows. Default 100.
    #[must_use]
    pub fn initial_max_send_streams(mut self, max: usize) -> Self {
        self.initial_max_send_streams = max;
        self
    }

    /// Whether the socket sets `TCP_NODELAY`. Default `true`.
    #[must_use]
    pub fn nodelay(mut self, enabled: bool) -> Self {
        self.nodelay = enabled;
        self
    }

    /// Connects over TLS (required for `https` URIs); ALPN offers `h2` alone.
    #[cfg(feature = "tls")]
    #[must_use]
    pub fn tls(mut self, config: Arc<rustls::ClientConfig>) -> Self {
        self.tls = Some(crate::tls::client_h2_only(config));
        self
    }

    /// Connects to `uri`: `http` for HTTP/2 with prior knowledge, `https` for TLS (needs
    /// `tls`, feature `tls`). The path of `uri` is ignored; requests carry their own.
    pub async fn connect(self, uri: &Uri) -> Result<H2Connection> {
        let timeout = self.connect_timeout;
        let connecting = self.connect_inner(uri);
        match timeout {
            Some(timeout) => tokio::time::timeout(timeout, connecting)
                .await
                .map_err(|_| Error::Timeout("connecting"))?,
            None => connecting.await,
        }
    }

    /// Runs the HTTP/2 handshake over an already connected stream; `uri` supplies the scheme
    /// and authority of requests that lack them.
    pub async fn handshake<I>(self, io: I, uri: &Uri) -> Result<H2Connection>
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let (scheme, authority) = scheme_and_authority(uri)?;
        let mut builder = h2::client::Builder::new();
        builder.initial_max_send_streams(self.initial_max_send_streams);
        builder
            .initial_window_size(self.initial_stream_window_size)
            .initial_connection_window_size(self.initial_connection_window_size);
        if let Some(max) = self.max_header_list_size {
            builder.max_header_list_size(max);
        }
        let (send, connection) = builder.handshake::<I, Bytes>(io).await?;
        let slots = Arc::new(Slots::new(self.initial_max_send_streams));
        let keep_alive = self
            .keep_alive_interval
            .map(|interval| (interval, self.keep_alive_timeout));
        tokio::spawn(drive(connection, slots.clone(), keep_alive));
        Ok(H2Connection {
            send,
            slots,
            reserved: None,
            scheme,
            authority,
        })
    }

    async fn connect_inner(self, uri: &Uri) -> Result<H2Connection> {
        let (scheme, authority) = scheme_and_authority(uri)?;
        let host = authority.host();
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        let port = authority
            .port_u16()
            .unwrap_or(if scheme == Scheme::HTTPS { 443 } else { 80 });
        let tcp = TcpStream::connect((host, port)).await?;
        tcp.set_nodelay(self.nodelay)?;
        if scheme == Scheme::HTTP {
            #[cfg(feature = "tls")]
            if self.tls.is_some() {
                return Err(Error::InvalidUri(format!(
                    "{uri}: TLS is configured but the scheme is http"
                )));
            }
            return self.handshake(tcp, uri).await;
        }
        #[cfg(feature = "tls")]
        if let Some(config) = self.tls.clone() {
            let name = crate::tls::server_name(uri)?;
            let stream = tokio_rustls::TlsConnector::from(config)
                .connect(name, tcp)
                .await?;
            if stream.get_ref().1.alpn_protocol() != Some(crate::tls::ALPN_H2) {
                return Err(Error::Alpn("h2"));
            }
            return self.handshake(stream, uri).await;
        }
        Err(Error::InvalidUri(format!(
            "{uri}: https needs a TLS configuration"
        )))
    }
}

fn scheme_and_authority(uri: &Uri) -> Result<(Scheme, Authority)> {
    let scheme = match uri.scheme() {
        Some(scheme) if *scheme == Scheme::HTTP || *scheme == Scheme::HTTPS => scheme.clone(),
        _ => {
            return Err(Error::InvalidUri(format!(
                "{uri}: the scheme must be http or https"
            )));
        }
    };
    let authority = uri
        .authority()
        .cloned()
        .ok_or_else(|| Error::InvalidUri(format!("{uri} has no authority")))?;
    Ok((scheme, authority))
}

/// Drives the connection until it closes, publishing the peer's stream limit, and sends
/// keep-alive pings if configured.
async fn drive<I>(
    mut connection: h2::client::Connection<I, Bytes>,
    slots: Arc<Slots>,
    keep_alive: Option<(Duration, Duration)>,
) where
    I: AsyncRead + AsyncWrite + Unpin,
{
    let pings = keep_alive.and_then(|settings| connection.ping_pong().map(|p| (p, settings)));
    let run = poll_fn(|cx| {
        let result = Pin::new(&mut connection).poll(cx);
        slots.set_max(connection.max_concurrent_send_streams());
        result
    });
    match pings {
        None => {
            let _ = run.await;
        }
        Some((pings, (interval, timeout))) => {
            tokio::select! {
                _ = run => {}
                () = ping_until_silent(pings, &slots, interval, timeout) => {}
            }
        }
    }
    slots.close();
}

/// Pings every `interval` while calls are open (servers such as grpc-go's count pings on an
/// idle connection as abuse); returns when a ping goes unanswered for `timeout` (or fails).
async fn ping_until_silent(
    mut pings: PingPong,
    slots: &Slots,
    interval: Duration,
    timeout: Duration,
) {
    loop {
        tokio::time::sleep(interval).await;
        if slots.lock().in_flight == 0 {
            continue;
        }
        if pings.send_ping(h2::Ping::opaque()).is_err() {
            return;
        }
        match tokio::time::timeout(timeout, poll_fn(|cx| pings.poll_pong(cx))).await {
            Ok(Ok(_)) => {}
            Ok(Err(_)) | Err(_) => return,
        }
    }
}

/// What a request body held at the start of the call.
struct Ready {
    data: Chunks,
    rest: Rest,
}

/// Data chunks, the first one held without allocating (a unary request has one).
#[derive(Default)]
struct Chunks {
    first: Option<Bytes>,
    more: Vec<Bytes>,
}

impl Chunks {
    fn push(&mut self, chunk: Bytes) {
        if self.first.is_none() {
            self.first = Some(chunk);
        } else {
            self.more.push(chunk);
        }
    }

    fn len(&self) -> usize {
        usize::from(self.first.is_some()) + self.more.len()
    }

    fn is_empty(&self) -> bool {
        self.first.is_none()
    }

    fn into_iter(self) -> impl Iterator<Item = Bytes> {
        self.first.into_iter().chain(self.more)
    }
}

enum Rest {
    Ended,
    Trailers(http::HeaderMap),
    Pending,
}

/// Takes every frame `body` yields without waiting.
fn take_ready(body: &mut RequestBody) -> Result<Ready, BoxError> {
    let mut data = Chunks::default();
    if body.is_end_stream() {
        return Ok(Ready {
            data,
            rest: Rest::Ended,
        });
    }
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        match Pin::new(&mut *body).poll_frame(&mut cx) {
            Poll::Pending => {
                return Ok(Ready {
                    data,
                    rest: Rest::Pending,
                });
            }
            Poll::Ready(None) => {
                return Ok(Ready {
                    data,
                    rest: Rest::Ended,
                });
            }
            Poll::Ready(Some(Err(error))) => return Err(error),
            Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                Ok(chunk) => data.push(chunk),
                Err(frame) => {
                    if let Ok(trailers) = frame.into_trailers() {
                        return Ok(Ready {
                            data,
                            rest: Rest::Trailers(trailers),
                        });
                    }
                }
            },
        }
    }
}

/// Streams the rest of a request body to the peer, within flow control, until the body ends,
/// fails (the call was abandoned: the stream is reset with `CANCEL`) or the peer resets the
/// stream.
async fn pump(mut body: RequestBody, mut send: SendStream<Bytes>) {
    loop {
        let next = poll_fn(|cx| {
            if send.poll_reset(cx).is_ready() {
                return Poll::Ready(None);
            }
            Pin::new(&mut body).poll_frame(cx).map(Some)
        })
        .await;
        let Some(frame) = next else {
            return;
        };
        match frame {
            None => {
                let _ = send.send_data(Bytes::new(), true);
                return;
            }
            Some(Err(_)) => {
                send.send_reset(h2::Reason::CANCEL);
                return;
            }
            Some(Ok(frame)) => match frame.into_data() {
                Ok(data) => {
                    if !send_within_capacity(&mut send, data).await {
                        return;
                    }
                }
                Err(frame) => {
                    if let Ok(trailers) = frame.into_trailers() {
                        let _ = send.send_trailers(trailers);
                        return;
                    }
                }
            },
        }
    }
}

/// Sends `data` as the peer's flow-control window allows. `false` if the stream is gone.
async fn send_within_capacity(send: &mut SendStream<Bytes>, mut data: Bytes) -> bool {
    while !data.is_empty() {
        send.reserve_capacity(data.len());
        let mut available = send.capacity();
        if available == 0 {
            available = match poll_fn(|cx| send.poll_capacity(cx)).await {
                Some(Ok(n)) => n,
                Some(Err(_)) | None => return false,
            };
        }
        if available == 0 {
            continue;
        }
        let chunk = data.split_to(available.min(data.len()));
        if send.send_data(chunk, false).is_err() {
            return false;
        }
    }
    true
}

/// The response future of one HTTP/2 request.
pub(super) struct H2ResponseFuture {
    response: h2::client::ResponseFuture,
    slot: Option<Slot>,
}

impl H2ResponseFuture {
    pub(super) fn poll(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<http::Response<ResponseBody>, BoxError>> {
        match Pin::new(&mut self.response).poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Err(error)) => {
                self.slot = None;
                Poll::Ready(Err(map_error(Box::new(error))))
            }
            Poll::Ready(Ok(response)) => {
                let slot = self.slot.take();
                Poll::Ready(Ok(response.map(|recv| ResponseBody {
                    kind: BodyKind::H2(H2Body {
                        recv,
                        state: BodyState::Data,
                        slot,
                    }),
                })))
            }
        }
    }
}

/// The response body of one HTTP/2 request. Received data is released to flow control as
/// soon as it is handed on.
pub(super) struct H2Body {
    recv: RecvStream,
    state: BodyState,
    slot: Option<Slot>,
}

#[derive(PartialEq, Eq)]
enum BodyState {
    Data,
    Trailers,
    Done,
}

impl H2Body {
    pub(super) fn poll_frame(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        loop {
            match self.state {
                BodyState::Data => match self.recv.poll_data(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(Some(Ok(data))) => {
                        let _ = self.recv.flow_control().release_capacity(data.len());
                        return Poll::Ready(Some(Ok(Frame::data(data))));
                    }
                    Poll::Ready(Some(Err(error))) => {
                        return Poll::Ready(Some(Err(self.fail(error))));
                    }
                    Poll::Ready(None) => self.state = BodyState::Trailers,
                },
                BodyState::Trailers => {
                    return match self.recv.poll_trailers(cx) {
                        Poll::Pending => Poll::Pending,
                        Poll::Ready(Ok(trailers)) => {
                            self.finish();
                            Poll::Ready(trailers.map(|t| Ok(Frame::trailers(t))))
                        }
                        Poll::Ready(Err(error)) => Poll::Ready(Some(Err(self.fail(error)))),
                    };
                }
                BodyState::Done => return Poll::Ready(None),
            }
        }
    }

    pub(super) fn is_end_stream(&self) -> bool {
        self.state == BodyState::Done
    }

    fn finish(&mut self) {
        self.state = BodyState::Done;
        self.slot = None;
    }

    fn fail(&mut self, error: h2::Error) -> BoxError {
        self.finish();
        map_error(Box::new(error))
    }
}

/// Stream accounting shared by every handle of a connection.
struct Slots {
    state: Mutex<SlotState>,
}

struct SlotState {
    in_flight: usize,
    max: usize,
    closed: bool,
    waiters: Vec<Waker>,
}

impl SlotState {
    fn wake_all(&mut self) {
        for waker in self.waiters.drain(..) {
            waker.wake();
        }
    }
}

impl Slots {
    fn new(max: usize) -> Self {
        Slots {
            state: Mutex::new(SlotState {
                in_flight: 0,
                max,
                closed: false,
                waiters: Vec::new(),
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, SlotState> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Reserves a stream, waiting while the connection is at its limit.
    fn poll_acquire(self: &Arc<Self>, cx: &mut Context<'_>) -> Poll<Result<Slot, BoxError>> {
        let mut state = self.lock();
        if state.closed {
            return Poll::Ready(Err(closed()));
        }
        if state.in_flight < state.max {
            state.in_flight += 1;
            return Poll::Ready(Ok(Slot(self.clone())));
        }
        if !state.waiters.iter().any(|w| w.will_wake(cx.waker())) {
            state.waiters.push(cx.waker().clone());
        }
        Poll::Pending
    }

    /// Reserves a stream for a call made without `poll_ready` (h2 queues it if the limit is
    /// reached).
    fn acquire_now(self: &Arc<Self>) -> Result<Slot, BoxError> {
        let mut state = self.lock();
        if state.closed {
            return Err(closed());
        }
        state.in_flight += 1;
        Ok(Slot(self.clone()))
    }

    fn set_max(&self, max: usize) {
        let mut state = self.lock();
        if state.max != max {
            let grew = max > state.max;
            state.max = max;
            if grew {
                state.wake_all();
            }
        }
    }

    fn close(&self) {
        let mut state = self.lock();
        state.closed = true;
        state.wake_all();
    }
}

fn closed() -> BoxError {
    Box::new(super::ConnectionClosed)
}

/// One reserved stream; released on drop.
struct Slot(Arc<Slots>);

impl Drop for Slot {
    fn drop(&mut self) {
        let mut state = self.0.lock();
        state.in_flight = state.in_flight.saturating_sub(1);
        state.wake_all();
    }
}
