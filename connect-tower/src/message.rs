//! What handlers receive and return: [`Request`], [`Response`], the per-call
//! [`RequestContext`], and [`PeerInfo`] (remote address, TLS client certificates).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use connect_proto_core::{Codec, MethodSpec, Protocol};
use http::{Extensions, HeaderMap};

use crate::observe::Side;
use crate::rt::ShutdownSignal;

/// Who is on the other end of the connection. Runtime adapters put it in the HTTP request's
/// extensions; handlers read it through [`RequestContext::peer`].
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct PeerInfo {
    /// The remote socket address, when the transport has one.
    pub remote_addr: Option<SocketAddr>,
    /// The local socket address the connection arrived on.
    pub local_addr: Option<SocketAddr>,
    /// The client's TLS certificate chain (DER, leaf first), when mutual TLS verified one.
    pub tls_client_certs: Option<Arc<Vec<Bytes>>>,
    /// Whether the connection is TLS.
    pub tls: bool,
}

impl PeerInfo {
    /// Peer information for a plaintext connection.
    pub fn new(remote_addr: Option<SocketAddr>, local_addr: Option<SocketAddr>) -> Self {
        PeerInfo {
            remote_addr,
            local_addr,
            tls_client_certs: None,
            tls: false,
        }
    }

    /// Marks the connection as TLS, with the verified client certificate chain if any.
    #[must_use]
    pub fn with_tls(mut self, client_certs: Option<Vec<Bytes>>) -> Self {
        self.tls = true;
        self.tls_client_certs = client_certs.map(Arc::new);
        self
    }
}

/// What a server knows about the connection a request arrived on. Runtime adapters hand it to
/// the service once per connection ([`with_connection`](crate::rt::with_connection), as
/// `connect-tokio-hyper`'s server does) or put it in each request's extensions; handlers read
/// it through [`RequestContext::peer`] and [`RequestContext::shutdown`].
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct ConnectionInfo {
    /// Who is on the other end.
    pub peer: PeerInfo,
    /// The serving server's shutdown.
    pub shutdown: ShutdownSignal,
}

impl ConnectionInfo {
    /// Information about a connection from `peer`, served until `shutdown`.
    pub fn new(peer: PeerInfo, shutdown: ShutdownSignal) -> Self {
        ConnectionInfo { peer, shutdown }
    }
}

/// Everything about a call except its messages: what a server handler receives, and what
/// interceptors see of the request head on either side.
#[derive(Debug)]
pub struct RequestContext {
    pub(crate) side: Side,
    /// The connection, as the adapter handed it over (see [`crate::rt::with_connection`]).
    pub(crate) connection: Option<Arc<ConnectionInfo>>,
    pub(crate) method: MethodSpec,
    pub(crate) protocol: Protocol,
    pub(crate) codec: Codec,
    pub(crate) headers: HeaderMap,
    pub(crate) deadline: Option<Instant>,
    pub(crate) extensions: Extensions,
    pub(crate) http_method: http::Method,
    pub(crate) uri: http::Uri,
    pub(crate) version: http::Version,
}

impl RequestContext {
    /// Which side of the call this is: a server's incoming request, or (in a client
    /// interceptor) an outgoing one.
    pub fn side(&self) -> Side {
        self.side
    }

    /// The method being called.
    pub fn method(&self) -> &MethodSpec {
        &self.method
    }

    /// The protocol the client speaks.
    pub fn protocol(&self) -> Protocol {
        self.protocol
    }

    /// The message codec of the call.
    pub fn codec(&self) -> Codec {
        self.codec
    }

    /// The request headers (all of them, protocol headers included).
    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    /// Mutable request headers (for interceptors).
    pub fn headers_mut(&mut self) -> &mut HeaderMap {
        &mut self.headers
    }

    /// The call's deadline, if any (on a server, the one the client set).
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// The HTTP request's extensions (the adapter's [`ConnectionInfo`] lives here, as may
    /// anything a tower layer inserted).
    pub fn extensions(&self) -> &Extensions {
        &self.extensions
    }

    /// Mutable extensions.
    pub fn extensions_mut(&mut self) -> &mut Extensions {
        &mut self.extensions
    }

    /// The peer, if the adapter recorded it (as a [`ConnectionInfo`] or a bare [`PeerInfo`]).
    pub fn peer(&self) -> Option<&PeerInfo> {
        match self.connection() {
            Some(connection) => Some(&connection.peer),
            None => self.extensions.get::<PeerInfo>(),
        }
    }

    /// The connection the request arrived on, if the adapter recorded it (handed over per
    /// connection with [`with_connection`](crate::rt::with_connection), or in the request's
    /// extensions).
    pub fn connection(&self) -> Option<&ConnectionInfo> {
        self.connection
            .as_deref()
            .or_else(|| self.extensions.get::<ConnectionInfo>())
    }

    /// The serving server's shutdown: handlers of long calls can wait for
    /// [`draining`](ShutdownSignal::draining) to end them with a status of their choosing.
    /// A signal that never fires when the adapter recorded none.
    pub fn shutdown(&self) -> ShutdownSignal {
        self.connection()
            .map(|connection| connection.shutdown.clone())
            .unwrap_or_default()
    }

    /// The HTTP method (`POST`, or `GET` for Connect GET requests).
    pub fn http_method(&self) -> &http::Method {
        &self.http_method
    }

    /// The request URI.
    pub fn uri(&self) -> &http::Uri {
        &self.uri
    }

    /// The HTTP version of the request.
    pub fn http_version(&self) -> http::Version {
        self.version
    }
}

/// A request: a message (or a stream of them) and its context.
#[derive(Debug)]
pub struct Request<T> {
    message: T,
    context: RequestContext,
}

impl<T> Request<T> {
    #[cfg_attr(not(feature = "server"), allow(dead_code))]
    pub(crate) fn from_parts(context: RequestContext, message: T) -> Self {
        Request { message, context }
    }

    /// The message (or stream).
    pub fn message(&self) -> &T {
        &self.message
    }

    /// Mutable access to the message (or stream).
    pub fn message_mut(&mut self) -> &mut T {
        &mut self.message
    }

    /// Takes the message.
    pub fn into_message(self) -> T {
        self.message
    }

    /// The call's context.
    pub fn context(&self) -> &RequestContext {
        &self.context
    }

    /// Splits into context and message.
    pub fn into_parts(self) -> (RequestContext, T) {
        (self.context, self.message)
    }

    /// The request headers.
    pub fn headers(&self) -> &HeaderMap {
        &self.context.headers
    }

    /// The deadline the client set, if any.
    pub fn deadline(&self) -> Option<Instant> {
        self.context.deadline
    }

    /// The peer, if the adapter recorded it.
    pub fn peer(&self) -> Option<&PeerInfo> {
        self.context.peer()
    }
}

/// A response: a message plus response headers and trailers.
#[derive(Clone, Debug, Default)]
pub struct Response<T> {
    message: T,
    headers: HeaderMap,
    trailers: HeaderMap,
}

impl<T> Response<T> {
    /// A response carrying `message`.
    pub fn new(message: T) -> Self {
        Response {
            message,
            headers: HeaderMap::new(),
            trailers: HeaderMap::new(),
        }
    }

    /// Adds response headers (leading metadata).
    #[must_use]
    pub fn with_headers(mut self, headers: HeaderMap) -> Self {
        if self.headers.is_empty() {
            self.headers = headers;
        } else {
            self.headers.extend(headers);
        }
        self
    }

    /// Adds trailers (trailing metadata).
    #[must_use]
    pub fn with_trailers(mut self, trailers: HeaderMap) -> Self {
        if self.trailers.is_empty() {
            self.trailers = trailers;
        } else {
            self.trailers.extend(trailers);
        }
        self
    }

    /// The message.
    pub fn message(&self) -> &T {
        &self.message
    }

    /// Takes the message.
    pub fn into_message(self) -> T {
        self.message
    }

    /// Response headers.
    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    /// Trailers.
    pub fn trailers(&self) -> &HeaderMap {
        &self.trailers
    }

    /// Mutable response headers.
    pub fn headers_mut(&mut self) -> &mut HeaderMap {
        &mut self.headers
    }

    /// Mutable trailers.
    pub fn trailers_mut(&mut self) -> &mut HeaderMap {
        &mut self.trailers
    }

    /// Splits into message, headers and trailers.
    pub fn into_parts(self) -> (T, HeaderMap, HeaderMap) {
        (self.message, self.headers, self.trailers)
    }
}

impl<T> From<T> for Response<T> {
    fn from(message: T) -> Self {
        Response::new(message)
    }
}
