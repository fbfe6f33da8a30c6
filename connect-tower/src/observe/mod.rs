//! Observing calls: a metrics hook ([`CallObserver`]) and, with the `tracing` feature, one
//! span per call.
//!
//! # The metrics hook
//!
//! A [`CallObserver`] registered on a server
//! ([`ConnectServiceBuilder::observer`](crate::server::ConnectServiceBuilder::observer)) or a
//! client ([`Client::observer`](crate::client::Client::observer)) hears of every call it
//! makes or serves exactly twice: [`on_call_start`](CallObserver::on_call_start) when the call
//! starts (a server: when its request head was admitted; a client: when the call is made) and
//! [`on_call_end`](CallObserver::on_call_end) when it ended: for a server, once its response
//! is complete (the last of it handed to the HTTP body) or the client went away; for a client,
//! once the outcome reached the application (the end of the response stream, the unary
//! result, an error, the deadline), or when the application dropped the call before that
//! (`canceled`, unless the outcome had already arrived unread). Nothing is
//! observed by default, and a server or client without an observer (and without an enabled
//! span) counts nothing: each call then pays one untaken branch where a frame is handled.
//!
//! What is measured:
//!
//! - the outcome: `None` for success, else the [`Code`] the call ended with (as the
//!   application on that side sees it: a client that cancels sees `canceled`);
//! - the duration, on the service's or client's [`Timer`](crate::rt::Timer) (so tests on a
//!   manual clock measure exact durations): from the request head's arrival (server) or the
//!   call's start (client) to the end described above;
//! - wire bytes: HTTP body bytes, after compression and framing, excluding HTTP headers and
//!   trailers (a Connect GET request has none: its message is in the URL);
//! - message counts: request and response messages the application sent, and those the
//!   protocol delivered to the application on the other side (a server counts the request
//!   messages its handler received; a client, the response messages it read).
//!
//! Calls that never start are not observed: a server's rejections of requests that are not
//! calls to a method it serves (unknown path, unsupported content type: answered by the core
//! before any method is known), and a client call whose request message cannot be encoded or
//! whose configuration cannot build a request.
//!
//! Observer methods run on the task that moves the call along, with the call's state locked:
//! keep them short and non-blocking (update counters and histograms; hand anything slow to a
//! channel). A panicking observer is contained: the call and the connection go on.
//!
//! # Spans (feature `tracing`)
//!
//! With the `tracing` feature, each call has an `INFO` span covering its whole life (the same
//! start and end as above), named `rpc.server` (target `connect_tower::server`) or
//! `rpc.client` (target `connect_tower::client`), with the attributes of the OpenTelemetry
//! RPC semantic conventions (`tracing-opentelemetry` reads the `otel.*` fields):
//!
//! | field | value |
//! |---|---|
//! | `otel.name` | `package.Service/Method` (a `tracing` span name must be static) |
//! | `otel.kind` | `server` or `client` |
//! | `rpc.system` | `connect_rpc` (Connect), `grpc` (gRPC and gRPC-Web) |
//! | `rpc.service`, `rpc.method` | `package.Service`, `Method` |
//! | `connect.protocol`, `connect.codec` | `connect`, `grpc` or `grpc_web`; `proto` or `json` |
//! | `network.peer.address`, `network.peer.port` | server: the remote address from the request's [`PeerInfo`](crate::PeerInfo) (when the adapter recorded one); client: the base URI's host and port |
//! | `server.address`, `server.port` | client only: the base URI's host and port |
//! | `rpc.grpc.status_code` | gRPC and gRPC-Web: the numeric code, `0` on success |
//! | `rpc.connect_rpc.error_code` | Connect, on failure: the code's name (`not_found`) |
//! | `otel.status_code` | `ERROR` when the call failed, as the conventions classify it (below) |
//! | `connect.messages_sent`, `connect.messages_received` | message counts, from this side's point of view |
//! | `connect.bytes_sent`, `connect.bytes_received` | wire bytes, from this side's point of view |
//!
//! `otel.status_code` is `ERROR` for every failed client call and every failed Connect call;
//! a gRPC or gRPC-Web *server* span is an error only for the codes the conventions count as
//! the server's fault (`unknown`, `deadline_exceeded`, `unimplemented`, `internal`,
//! `unavailable`, `data_loss`), not for an `invalid_argument` or `not_found` it answered on
//! purpose.
//!
//! The server enters its span while it polls the handler, so the handler's events, and the
//! spans of client calls it makes, are the span's children. With the feature off, none of
//! this is compiled; with it on and no subscriber interested, a call costs the disabled-span
//! check of the `tracing` macros.

#[cfg(any(feature = "server", feature = "client"))]
pub(crate) mod recorder;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use connect_proto_core::{Code, Codec, MethodSpec, Protocol};

/// Hears of every call of a server or client: its start and its end (see the
/// [module docs](self) for what is measured, and when).
///
/// Implement [`on_call_end`](Self::on_call_end) (and, when useful,
/// [`on_call_start`](Self::on_call_start), a no-op by default) to feed a metrics library.
/// `Arc<O>` is an observer too, so one observer can watch a server and its clients.
///
/// ```
/// use std::sync::atomic::{AtomicU64, Ordering};
/// use connect_tower::observe::{CallEnd, CallObserver};
///
/// #[derive(Default)]
/// struct Failures(AtomicU64);
///
/// impl CallObserver for Failures {
///     fn on_call_end(&self, call: &CallEnd) {
///         if call.code().is_some() {
///             self.0.fetch_add(1, Ordering::Relaxed);
///         }
///     }
/// }
/// ```
pub trait CallObserver: Send + Sync + 'static {
    /// A call started. Called once per call, before [`on_call_end`](Self::on_call_end).
    fn on_call_start(&self, call: &CallStart) {
        let _ = call;
    }

    /// A call ended. Called exactly once per started call.
    fn on_call_end(&self, call: &CallEnd);
}

impl<O: CallObserver + ?Sized> CallObserver for Arc<O> {
    fn on_call_start(&self, call: &CallStart) {
        (**self).on_call_start(call);
    }

    fn on_call_end(&self, call: &CallEnd) {
        (**self).on_call_end(call);
    }
}

/// An observer shared by a service or client and the calls it observes.
#[cfg(any(feature = "server", feature = "client"))]
#[derive(Clone)]
pub(crate) struct SharedObserver(pub(crate) Arc<dyn CallObserver>);

#[cfg(any(feature = "server", feature = "client"))]
impl fmt::Debug for SharedObserver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CallObserver(..)")
    }
}

/// Which end of a call is observed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Side {
    /// The server, serving a call.
    Server,
    /// The client, making a call.
    Client,
}

impl Side {
    /// `"server"` or `"client"` (OpenTelemetry's span kinds).
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Server => "server",
            Side::Client => "client",
        }
    }
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What is known of a call when it starts.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct CallStart {
    side: Side,
    method: MethodSpec,
    protocol: Protocol,
    codec: Codec,
    request_compression: Option<&'static str>,
}

impl CallStart {
    #[cfg(any(feature = "server", feature = "client"))]
    pub(crate) fn new(
        side: Side,
        method: MethodSpec,
        protocol: Protocol,
        codec: Codec,
        request_compression: Option<&'static str>,
    ) -> Self {
        CallStart {
            side,
            method,
            protocol,
            codec,
            request_compression,
        }
    }

    /// The observed end of the call.
    pub fn side(&self) -> Side {
        self.side
    }

    /// The method called.
    pub fn method(&self) -> &MethodSpec {
        &self.method
    }

    /// The method's path, `/package.Service/Method`.
    pub fn path(&self) -> &str {
        self.method.path()
    }

    /// The service, `package.Service` (empty for a path of another shape).
    pub fn service(&self) -> &str {
        self.method.service_name()
    }

    /// The method's name, `Method` (empty for a path of another shape).
    pub fn method_name(&self) -> &str {
        self.method.method_name()
    }

    /// The call's protocol.
    pub fn protocol(&self) -> Protocol {
        self.protocol
    }

    /// The call's message codec.
    pub fn codec(&self) -> Codec {
        self.codec
    }

    /// The compression of request messages (`None` for identity).
    pub fn request_compression(&self) -> Option<&'static str> {
        self.request_compression
    }
}

/// What is known of a call when it ends: its start, outcome, duration and traffic.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct CallEnd {
    start: CallStart,
    code: Option<Code>,
    duration: Duration,
    traffic: Traffic,
    response_compression: Option<&'static str>,
}

/// Bytes and messages of one call (request = client to server).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Traffic {
    pub(crate) request_bytes: u64,
    pub(crate) response_bytes: u64,
    pub(crate) request_messages: u64,
    pub(crate) response_messages: u64,
}

impl CallEnd {
    /// What was known at the start.
    pub fn start(&self) -> &CallStart {
        &self.start
    }

    /// The outcome: `None` for success, else the error's code.
    pub fn code(&self) -> Option<Code> {
        self.code
    }

    /// The outcome as a label: `"ok"`, or the code's Connect name (`"not_found"`).
    pub fn code_name(&self) -> &'static str {
        self.code.map_or("ok", Code::as_str)
    }

    /// From the start to the end, on the service's or client's timer.
    pub fn duration(&self) -> Duration {
        self.duration
    }

    /// Request body bytes on the wire (after compression and framing): received by a
    /// server, handed to the transport by a client.
    pub fn request_bytes(&self) -> u64 {
        self.traffic.request_bytes
    }

    /// Response body bytes on the wire (after compression and framing): handed to the HTTP
    /// response by a server, received by a client.
    pub fn response_bytes(&self) -> u64 {
        self.traffic.response_bytes
    }

    /// Request messages: delivered to the handler (server), sent by the application
    /// (client).
    pub fn request_messages(&self) -> u64 {
        self.traffic.request_messages
    }

    /// Response messages: sent by the handler (server), delivered to the application
    /// (client).
    pub fn response_messages(&self) -> u64 {
        self.traffic.response_messages
    }

    /// The compression of response messages (`None` for identity; for a server, the one it
    /// negotiated; for a client, the one the response head named, if it arrived).
    pub fn response_compression(&self) -> Option<&'static str> {
        self.response_compression
    }
}
