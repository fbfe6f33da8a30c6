//! The observation of one call, kept by the call's shared state while anyone observes it (an
//! observer is registered, or — feature `tracing` — the call's span is enabled): the start
//! time, the traffic counters the server and client update where they already handle frames
//! and messages, the outcome once it is settled, and the span. Ending it reports to the
//! observer and records the span's closing fields, exactly once: explicitly where the call
//! ends, else when it is dropped.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Instant;

use connect_proto_core::{Code, Codec, MethodSpec, Protocol};

use super::{CallEnd, CallStart, SharedObserver, Side, Traffic};
use crate::rt::SharedTimer;

/// The observation of one call (see the module docs).
pub(crate) struct Recorder {
    /// What the call started as; taken when it ends.
    start: Option<CallStart>,
    observer: Option<SharedObserver>,
    timer: SharedTimer,
    started_at: Instant,
    /// Bytes and messages so far.
    pub(crate) traffic: Traffic,
    /// The outcome, once settled: the first one noted wins.
    outcome: Option<Result<(), Code>>,
    #[cfg_attr(not(feature = "tracing"), allow(dead_code))]
    span: CallSpan,
}

/// What a call is, for starting its observation.
pub(crate) struct Call<'a> {
    pub(crate) side: Side,
    pub(crate) method: &'a MethodSpec,
    pub(crate) protocol: Protocol,
    pub(crate) codec: Codec,
    pub(crate) request_compression: Option<&'static str>,
}

impl Recorder {
    /// Starts observing a call that started at `now`, if anyone observes it: tells the
    /// observer. `None` (and nothing allocated or even looked at: `call` is not called)
    /// without an observer or an enabled `span`.
    pub(crate) fn start<'a>(
        call: impl FnOnce() -> Call<'a>,
        observer: Option<&SharedObserver>,
        timer: &SharedTimer,
        now: Instant,
        span: CallSpan,
    ) -> Option<Box<Recorder>> {
        if observer.is_none() && span.is_disabled() {
            return None;
        }
        let call = call();
        let start = CallStart::new(
            call.side,
            call.method.clone(),
            call.protocol,
            call.codec,
            call.request_compression,
        );
        if let Some(observer) = observer {
            let _ = catch_unwind(AssertUnwindSafe(|| observer.0.on_call_start(&start)));
        }
        Some(Box::new(Recorder {
            start: Some(start),
            observer: observer.cloned(),
            timer: timer.clone(),
            started_at: now,
            traffic: Traffic::default(),
            outcome: None,
            span,
        }))
    }

    /// Notes the call's outcome, unless one was noted already.
    pub(crate) fn note(&mut self, outcome: Result<(), Code>) {
        if self.outcome.is_none() {
            self.outcome = Some(outcome);
        }
    }

    /// The call ended: reports it (an outcome never noted is `unknown`). Only the first end
    /// counts.
    pub(crate) fn end(&mut self, response_compression: Option<&'static str>) {
        self.finish(response_compression, Code::Unknown);
    }

    fn finish(&mut self, response_compression: Option<&'static str>, unsettled: Code) {
        let Some(start) = self.start.take() else {
            return;
        };
        let code = match self.outcome {
            Some(Ok(())) => None,
            Some(Err(code)) => Some(code),
            None => Some(unsettled),
        };
        let duration = self.timer.now().saturating_duration_since(self.started_at);
        #[cfg(feature = "tracing")]
        spans::record_end(&self.span.0, &start, code, &self.traffic);
        if let Some(observer) = self.observer.take() {
            let end = CallEnd {
                start,
                code,
                duration,
                traffic: self.traffic,
                response_compression,
            };
            let _ = catch_unwind(AssertUnwindSafe(|| observer.0.on_call_end(&end)));
        }
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        // Dropped without an explicit end: the call was abandoned (a client call future
        // dropped before its request was sent).
        self.finish(None, Code::Canceled);
    }
}

/// The span of a call: a `tracing::Span` with the `tracing` feature; without it, nothing (a
/// zero-sized value whose methods compile to nothing).
#[derive(Clone, Debug)]
pub(crate) struct CallSpan(#[cfg(feature = "tracing")] tracing::Span);

impl CallSpan {
    /// The span of a call a server serves (with the peer's address).
    #[cfg(feature = "server")]
    #[cfg_attr(not(feature = "tracing"), allow(unused_variables))]
    pub(crate) fn server(
        method: &MethodSpec,
        protocol: Protocol,
        codec: Codec,
        peer: Option<&crate::PeerInfo>,
    ) -> Self {
        #[cfg(feature = "tracing")]
        let span = CallSpan(spans::server(method, protocol, codec, peer));
        #[cfg(not(feature = "tracing"))]
        let span = CallSpan();
        span
    }

    /// The span of a call a client makes to the server at `base_uri`.
    #[cfg(feature = "client")]
    #[cfg_attr(not(feature = "tracing"), allow(unused_variables))]
    pub(crate) fn client(
        method: &MethodSpec,
        protocol: Protocol,
        codec: Codec,
        base_uri: &http::Uri,
    ) -> Self {
        #[cfg(feature = "tracing")]
        let span = CallSpan(spans::client(method, protocol, codec, base_uri));
        #[cfg(not(feature = "tracing"))]
        let span = CallSpan();
        span
    }

    /// Whether nobody listens (always, without the `tracing` feature).
    pub(crate) fn is_disabled(&self) -> bool {
        #[cfg(feature = "tracing")]
        let disabled = self.0.is_disabled();
        #[cfg(not(feature = "tracing"))]
        let disabled = true;
        disabled
    }

    /// Runs `f` inside the span.
    #[cfg(feature = "server")]
    pub(crate) fn in_scope<R>(&self, f: impl FnOnce() -> R) -> R {
        #[cfg(feature = "tracing")]
        let _entered = self.0.enter();
        f()
    }
}

/// The spans of calls (feature `tracing`): created with every field the conventions name,
/// those known only at the end as `Empty`.
#[cfg(feature = "tracing")]
mod spans {
    use connect_proto_core::{Code, Codec, MethodSpec, Protocol};
    use tracing::field::Empty;

    use crate::observe::{CallStart, Side, Traffic};

    /// The span of a call a server serves.
    #[cfg(feature = "server")]
    pub(super) fn server(
        method: &MethodSpec,
        protocol: Protocol,
        codec: Codec,
        peer: Option<&crate::PeerInfo>,
    ) -> tracing::Span {
        let peer = || peer.and_then(|peer| peer.remote_addr);
        tracing::info_span!(
            target: "connect_tower::server",
            "rpc.server",
            otel.name = otel_name(method),
            otel.kind = "server",
            rpc.system = system(protocol),
            rpc.service = method.service_name(),
            rpc.method = method.method_name(),
            connect.protocol = protocol_name(protocol),
            connect.codec = codec.name(),
            network.peer.address = peer().map(|peer| tracing::field::display(peer.ip())),
            network.peer.port = peer().map(|peer| peer.port()),
            rpc.grpc.status_code = Empty,
            rpc.connect_rpc.error_code = Empty,
            otel.status_code = Empty,
            connect.messages_sent = Empty,
            connect.messages_received = Empty,
            connect.bytes_sent = Empty,
            connect.bytes_received = Empty,
        )
    }

    /// The span of a call a client makes to the server at `base_uri`.
    #[cfg(feature = "client")]
    pub(super) fn client(
        method: &MethodSpec,
        protocol: Protocol,
        codec: Codec,
        base_uri: &http::Uri,
    ) -> tracing::Span {
        let host = base_uri.host();
        let port = base_uri.port_u16().or(match base_uri.scheme_str() {
            Some("https") => Some(443),
            Some("http") => Some(80),
            _ => None,
        });
        tracing::info_span!(
            target: "connect_tower::client",
            "rpc.client",
            otel.name = otel_name(method),
            otel.kind = "client",
            rpc.system = system(protocol),
            rpc.service = method.service_name(),
            rpc.method = method.method_name(),
            connect.protocol = protocol_name(protocol),
            connect.codec = codec.name(),
            server.address = host,
            server.port = port,
            network.peer.address = host,
            network.peer.port = port,
            rpc.grpc.status_code = Empty,
            rpc.connect_rpc.error_code = Empty,
            otel.status_code = Empty,
            connect.messages_sent = Empty,
            connect.messages_received = Empty,
            connect.bytes_sent = Empty,
            connect.bytes_received = Empty,
        )
    }

    /// Records the end of a call on its span: the code, the error status, the traffic.
    pub(super) fn record_end(
        span: &tracing::Span,
        start: &CallStart,
        code: Option<Code>,
        traffic: &Traffic,
    ) {
        if span.is_disabled() {
            return;
        }
        match start.protocol() {
            Protocol::Connect => {
                if let Some(code) = code {
                    span.record("rpc.connect_rpc.error_code", code.as_str());
                }
            }
            Protocol::Grpc | Protocol::GrpcWeb => {
                span.record("rpc.grpc.status_code", code.map_or(0, Code::value));
            }
            _ => {}
        }
        if code.is_some_and(|code| is_error(start.side(), start.protocol(), code)) {
            span.record("otel.status_code", "ERROR");
        }
        let (sent, received) = match start.side() {
            Side::Server => (
                (traffic.response_messages, traffic.response_bytes),
                (traffic.request_messages, traffic.request_bytes),
            ),
            Side::Client => (
                (traffic.request_messages, traffic.request_bytes),
                (traffic.response_messages, traffic.response_bytes),
            ),
        };
        span.record("connect.messages_sent", sent.0);
        span.record("connect.messages_received", received.0);
        span.record("connect.bytes_sent", sent.1);
        span.record("connect.bytes_received", received.1);
    }

    /// Whether a failed call's span is an error. Client spans: always. Server spans: always
    /// for Connect; for gRPC and gRPC-Web only the codes that are the server's fault (the
    /// others were answered on purpose).
    fn is_error(side: Side, protocol: Protocol, code: Code) -> bool {
        match (side, protocol) {
            (Side::Server, Protocol::Grpc | Protocol::GrpcWeb) => matches!(
                code,
                Code::Unknown
                    | Code::DeadlineExceeded
                    | Code::Unimplemented
                    | Code::Internal
                    | Code::Unavailable
                    | Code::DataLoss
            ),
            _ => true,
        }
    }

    /// `package.Service/Method`: the path without its leading slash.
    fn otel_name(method: &MethodSpec) -> &str {
        let path = method.path();
        path.strip_prefix('/').unwrap_or(path)
    }

    /// The `rpc.system` of a protocol.
    fn system(protocol: Protocol) -> &'static str {
        match protocol {
            Protocol::Connect => "connect_rpc",
            Protocol::Grpc | Protocol::GrpcWeb => "grpc",
            _ => "unknown",
        }
    }

    /// The `connect.protocol` of a protocol.
    fn protocol_name(protocol: Protocol) -> &'static str {
        match protocol {
            Protocol::Connect => "connect",
            Protocol::Grpc => "grpc",
            Protocol::GrpcWeb => "grpc_web",
            _ => "unknown",
        }
    }
}
