//! The client under test: runs one `ClientCompatRequest` through this workspace's public
//! client API (`connect_tower::client::Client`) over its real transports
//! (`connect_tokio_hyper::HttpClient`, or for HTTP/2 cases `H2Connection` when
//! [`use_single_connections`] was called), and reports what happened as a
//! `ClientResponseResult`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use buffa::Message as _;
use buffa_types::google::protobuf::Any;
use bytes::Bytes;
use connect_proto_core::compression::CompressionRegistry;
use connect_proto_core::{Codec, Protocol};
use connect_tokio_hyper::tls::{Identity, client_config, root_store_from_pem};
use connect_tokio_hyper::{H2Connection, HttpClient, ResponseBody, ResponseFuture, TokioTimer};
use connect_tower::BoxError;
use connect_tower::client::{CallOptions, Client, ClientConfig, RequestBody, ResponseStream};
use connect_tower::{MethodSpec, Status};
use http::HeaderMap;

use crate::proto::__buffa::oneof::client_compat_request::cancel::CancelTiming;
use crate::proto::conformance_service;
use crate::proto::{
    BidiStreamRequest, BidiStreamResponse, ClientCompatRequest, ClientResponseResult,
    ClientStreamRequest, ClientStreamResponse, ConformancePayload, IdempotentUnaryRequest,
    IdempotentUnaryResponse, ServerStreamRequest, ServerStreamResponse, UnaryRequest,
    UnaryResponse, UnimplementedRequest, UnimplementedResponse,
};
use crate::{append_headers, from_header_map, proto};

/// Why a test case could not be run at all (as opposed to an RPC that failed).
pub type CaseError = String;

/// Whether HTTP/2 cases go over one `H2Connection` per server instead of the pooled client.
static SINGLE_CONNECTIONS: AtomicBool = AtomicBool::new(false);

/// Runs HTTP/2 cases over `H2Connection` (one connection per server and TLS setting, shared
/// by concurrent cases, replaced when it closes); HTTP/1.1 cases keep the pooled client.
pub fn use_single_connections() {
    SINGLE_CONNECTIONS.store(true, Ordering::Relaxed);
}

/// The transport a case runs over: the pooled client or one HTTP/2 connection.
#[derive(Clone, Debug)]
#[allow(clippy::large_enum_variant)] // one per case, cloned from a cache: size does not matter
enum CaseTransport {
    Pooled(HttpClient),
    Single(H2Connection),
}

impl tower_service::Service<http::Request<RequestBody>> for CaseTransport {
    type Response = http::Response<ResponseBody>;
    type Error = BoxError;
    type Future = ResponseFuture;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        match self {
            CaseTransport::Pooled(transport) => transport.poll_ready(cx),
            CaseTransport::Single(transport) => transport.poll_ready(cx),
        }
    }

    fn call(&mut self, request: http::Request<RequestBody>) -> ResponseFuture {
        match self {
            CaseTransport::Pooled(transport) => transport.call(request),
            CaseTransport::Single(transport) => transport.call(request),
        }
    }
}

/// Responses that carry a payload.
trait HasPayload: connect_proto_core::codec::CodecMessage {
    fn payload(&self) -> ConformancePayload;
}

macro_rules! has_payload {
    ($($ty:ty),*) => {$(
        impl HasPayload for $ty {
            fn payload(&self) -> ConformancePayload {
                self.payload.as_option().cloned().unwrap_or_default()
            }
        }
    )*};
}
has_payload!(
    UnaryResponse,
    IdempotentUnaryResponse,
    ClientStreamResponse,
    ServerStreamResponse,
    BidiStreamResponse
);

impl HasPayload for UnimplementedResponse {
    fn payload(&self) -> ConformancePayload {
        ConformancePayload::default()
    }
}

/// When to cancel.
#[derive(Clone, Copy, Debug)]
enum Cancel {
    BeforeCloseSend,
    AfterCloseSend(Duration),
    AfterResponses(u32),
}

/// Runs one test case.
pub async fn run_case(request: &ClientCompatRequest) -> Result<ClientResponseResult, CaseError> {
    if request.raw_request.is_set() {
        return Err("raw requests are only for the reference client".into());
    }
    let client = build_client(request).await?;
    let mut options = CallOptions::new();
    if let Some(ms) = request.timeout_ms {
        options = options.timeout(Duration::from_millis(u64::from(ms)));
    }
    let mut headers = HeaderMap::new();
    append_headers(&request.request_headers, &mut headers);
    options = options
        .headers(headers)
        .use_get(request.use_get_http_method);
    let cancel = request.cancel.as_option().map(|c| match &c.cancel_timing {
        Some(CancelTiming::BeforeCloseSend(_)) => Cancel::BeforeCloseSend,
        Some(CancelTiming::AfterCloseSendMs(ms)) => {
            Cancel::AfterCloseSend(Duration::from_millis(u64::from(*ms)))
        }
        Some(CancelTiming::AfterNumResponses(n)) => Cancel::AfterResponses(*n),
        None => Cancel::AfterCloseSend(Duration::ZERO),
    });
    let delay = Duration::from_millis(u64::from(request.request_delay_ms));
    let method = request.method.as_deref().unwrap_or("");
    let messages = &request.request_messages;
    match method {
        "Unary" => {
            let message = single::<UnaryRequest>(messages)?;
            Ok(one_request::<_, UnaryResponse>(
                &client,
                &conformance_service::UNARY,
                message,
                options,
                cancel,
            )
            .await)
        }
        "IdempotentUnary" => {
            let message = single::<IdempotentUnaryRequest>(messages)?;
            Ok(one_request::<_, IdempotentUnaryResponse>(
                &client,
                &conformance_service::IDEMPOTENT_UNARY,
                message,
                options,
                cancel,
            )
            .await)
        }
        "Unimplemented" => {
            let message = single::<UnimplementedRequest>(messages)?;
            Ok(one_request::<_, UnimplementedResponse>(
                &client,
                &conformance_service::UNIMPLEMENTED,
                message,
                options,
                cancel,
            )
            .await)
        }
        "ServerStream" => {
            let message = single::<ServerStreamRequest>(messages)?;
            Ok(one_request::<_, ServerStreamResponse>(
                &client,
                &conformance_service::SERVER_STREAM,
                message,
                options,
                cancel,
            )
            .await)
        }
        "ClientStream" => {
            let messages = all::<ClientStreamRequest>(messages)?;
            Ok(client_stream(&client, messages, options, cancel, delay).await)
        }
        "BidiStream" => {
            let messages = all::<BidiStreamRequest>(messages)?;
            let full_duplex = request.stream_type.to_i32()
                == proto::StreamType::STREAM_TYPE_FULL_DUPLEX_BIDI_STREAM as i32;
            Ok(bidi_stream(&client, messages, options, cancel, delay, full_duplex).await)
        }
        other => Err(format!("unknown method {other:?}")),
    }
}

fn unpack<M: connect_proto_core::codec::CodecMessage + buffa::MessageName>(
    any: &Any,
) -> Result<M, CaseError> {
    let name = any.type_url.rsplit('/').next().unwrap_or("");
    if name != M::FULL_NAME {
        return Err(format!("expected a {}, got {name}", M::FULL_NAME));
    }
    M::decode_from_slice(&any.value).map_err(|e| format!("invalid {name}: {e}"))
}

fn single<M: connect_proto_core::codec::CodecMessage + buffa::MessageName>(
    messages: &[Any],
) -> Result<M, CaseError> {
    match messages {
        [one] => unpack(one),
        _ => Err(format!(
            "expected exactly one request message, got {}",
            messages.len()
        )),
    }
}

fn all<M: connect_proto_core::codec::CodecMessage + buffa::MessageName>(
    messages: &[Any],
) -> Result<Vec<M>, CaseError> {
    messages.iter().map(unpack).collect()
}

/// The client for the case's protocol, codec, compression, HTTP version and TLS settings.
async fn build_client(request: &ClientCompatRequest) -> Result<Client<CaseTransport>, CaseError> {
    let protocol = match request.protocol.as_known() {
        Some(proto::Protocol::PROTOCOL_GRPC) => Protocol::Grpc,
        Some(proto::Protocol::PROTOCOL_GRPC_WEB) => Protocol::GrpcWeb,
        _ => Protocol::Connect,
    };
    let codec = match request.codec.as_known() {
        Some(proto::Codec::CODEC_JSON) => Codec::Json,
        _ => Codec::Proto,
    };
    let compression = match request.compression.as_known() {
        Some(proto::Compression::COMPRESSION_GZIP) => Some("gzip"),
        Some(proto::Compression::COMPRESSION_ZSTD) => Some("zstd"),
        Some(proto::Compression::COMPRESSION_BR) => Some("br"),
        Some(proto::Compression::COMPRESSION_DEFLATE) => Some("deflate"),
        Some(proto::Compression::COMPRESSION_SNAPPY) => Some("snappy"),
        _ => None,
    };
    let http2 = request.http_version.as_known() == Some(proto::HTTPVersion::HTTP_VERSION_2);
    let tls = !request.server_tls_cert.is_empty();
    let scheme = if tls { "https" } else { "http" };
    let host = if request.host.is_empty() {
        "127.0.0.1"
    } else {
        &request.host
    };
    let base: http::Uri = format!("{scheme}://{host}:{}", request.port)
        .parse()
        .map_err(|e| format!("bad address: {e}"))?;

    let registry = CompressionRegistry::default();
    let send_compression = match compression {
        Some(name) => Some(
            registry
                .get(name)
                .cloned()
                .ok_or_else(|| format!("{name} is not compiled in"))?,
        ),
        None => None,
    };
    let mut config = ClientConfig::new(base.clone())
        .protocol(protocol)
        .codec(codec)
        .send_compression(send_compression)
        .accept_compression(registry)
        .compress_min_bytes(0);
    if request.message_receive_limit > 0 {
        config = config.max_receive_message_size(request.message_receive_limit as usize);
    }

    let transport = if http2 && SINGLE_CONNECTIONS.load(Ordering::Relaxed) {
        CaseTransport::Single(single_connection(request, &base, tls).await?)
    } else {
        CaseTransport::Pooled(transport(request, http2, tls)?)
    };
    Ok(Client::new(transport, config).timer(TokioTimer::new()))
}

/// Transports are shared between cases with the same HTTP version and TLS material, so cases
/// reuse pooled connections as an application would.
fn transport(
    request: &ClientCompatRequest,
    http2: bool,
    tls: bool,
) -> Result<HttpClient, CaseError> {
    type Key = (bool, Vec<u8>, Vec<u8>);
    type Cache = std::collections::HashMap<Key, HttpClient>;
    static TRANSPORTS: std::sync::Mutex<Option<Cache>> = std::sync::Mutex::new(None);
    let client_cert = request
        .client_tls_creds
        .as_option()
        .map(|c| c.cert.clone())
        .unwrap_or_default();
    let key: Key = (http2, request.server_tls_cert.clone(), client_cert);
    let mut guard = TRANSPORTS.lock().unwrap_or_else(|p| p.into_inner());
    let cache = guard.get_or_insert_with(Default::default);
    if let Some(existing) = cache.get(&key) {
        return Ok(existing.clone());
    }
    let transport = if tls {
        HttpClient::tls(tls_config(request, http2)?)
    } else if http2 {
        HttpClient::plaintext_h2c()
    } else {
        HttpClient::plaintext_http1()
    };
    cache.insert(key, transport.clone());
    Ok(transport)
}

/// The TLS configuration of a case: its server's CA, its client certificate if any, and ALPN
/// for exactly the case's HTTP version.
fn tls_config(
    request: &ClientCompatRequest,
    http2: bool,
) -> Result<Arc<connect_tokio_hyper::tls::rustls::ClientConfig>, CaseError> {
    let roots = Arc::new(root_store_from_pem(&request.server_tls_cert).map_err(|e| e.to_string())?);
    let identity = match request.client_tls_creds.as_option() {
        Some(creds) => {
            Some(Identity::from_pem(&creds.cert, &creds.key).map_err(|e| e.to_string())?)
        }
        None => None,
    };
    let shared = client_config(roots, identity).map_err(|e| e.to_string())?;
    let mut tls_config = (*shared).clone();
    tls_config.alpn_protocols = vec![if http2 {
        b"h2".to_vec()
    } else {
        b"http/1.1".to_vec()
    }];
    Ok(Arc::new(tls_config))
}

/// The HTTP/2 connection to a case's server: one per server address and TLS material,
/// shared by concurrent cases, replaced once closed.
async fn single_connection(
    request: &ClientCompatRequest,
    base: &http::Uri,
    tls: bool,
) -> Result<H2Connection, CaseError> {
    type Key = (String, Vec<u8>, Vec<u8>);
    type Cache = std::collections::HashMap<Key, H2Connection>;
    static CONNECTIONS: tokio::sync::Mutex<Option<Cache>> = tokio::sync::Mutex::const_new(None);
    let client_cert = request
        .client_tls_creds
        .as_option()
        .map(|c| c.cert.clone())
        .unwrap_or_default();
    let key: Key = (
        base.to_string(),
        request.server_tls_cert.clone(),
        client_cert,
    );
    // Held across the connect, so concurrent cases for one server share one connection.
    let mut guard = CONNECTIONS.lock().await;
    let cache = guard.get_or_insert_with(Default::default);
    if let Some(existing) = cache.get(&key).filter(|c| !c.is_closed()) {
        return Ok(existing.clone());
    }
    let connection = if tls {
        H2Connection::connect_tls(base, tls_config(request, true)?).await
    } else {
        H2Connection::connect(base).await
    }
    .map_err(|e| format!("connecting to {base}: {e}"))?;
    cache.insert(key, connection.clone());
    Ok(connection)
}

/// What the call observed, turned into a result.
struct Observed {
    headers: Option<HeaderMap>,
    trailers: Option<HeaderMap>,
    payloads: Vec<ConformancePayload>,
    error: Option<Status>,
    unsent: usize,
}

impl Observed {
    fn new() -> Self {
        Observed {
            headers: None,
            trailers: None,
            payloads: Vec::new(),
            error: None,
            unsent: 0,
        }
    }

    fn record_stream<M: HasPayload>(&mut self, stream: &ResponseStream<M>) {
        if let Some(headers) = stream.received_headers() {
            self.headers = Some(headers.clone());
        }
        if let Some(trailers) = stream.trailers() {
            self.trailers = Some(trailers.clone());
        }
    }

    fn into_result(self) -> ClientResponseResult {
        ClientResponseResult {
            response_headers: self
                .headers
                .as_ref()
                .map(from_header_map)
                .unwrap_or_default(),
            payloads: self.payloads,
            error: self.error.as_ref().map(to_proto_error).into(),
            response_trailers: self
                .trailers
                .as_ref()
                .map(from_header_map)
                .unwrap_or_default(),
            num_unsent_requests: self.unsent as i32,
            ..Default::default()
        }
    }
}

/// A status as the conformance `Error`.
fn to_proto_error(status: &Status) -> proto::Error {
    proto::Error {
        code: buffa::EnumValue::from(status.code().value() as i32),
        message: (!status.message().is_empty()).then(|| status.message().to_owned()),
        details: status
            .details()
            .iter()
            .map(|d| Any {
                type_url: d.type_url(),
                value: d.value().clone(),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    }
}

/// Unary and server-streaming methods: one request, a stream of responses. A unary
/// response's message counts only if the call succeeds (as `Client::unary` reports it).
async fn one_request<Req, Resp>(
    client: &Client<CaseTransport>,
    method: &'static MethodSpec,
    message: Req,
    options: CallOptions,
    cancel: Option<Cancel>,
) -> ClientResponseResult
where
    Req: connect_tower::codec::EncodeMessage,
    Resp: HasPayload,
{
    let mut observed = Observed::new();
    let mut stream = match client
        .server_streaming::<Req, Resp>(method, message, options)
        .await
    {
        Ok(stream) => stream,
        Err(status) => {
            observed.error = Some(status);
            return observed.into_result();
        }
    };
    if let Some(Cancel::BeforeCloseSend) = cancel {
        stream.cancel();
    }
    let cancel_at = match cancel {
        Some(Cancel::AfterCloseSend(after)) => Some(tokio::time::Instant::now() + after),
        _ => None,
    };
    receive(&mut stream, &mut observed, cancel_at, cancel).await;
    if !method.kind.streams_responses() && observed.error.is_some() {
        observed.payloads.clear();
    }
    observed.into_result()
}

/// Reads responses until the end, cancelling as instructed.
async fn receive<M: HasPayload>(
    stream: &mut ResponseStream<M>,
    observed: &mut Observed,
    mut cancel_at: Option<tokio::time::Instant>,
    cancel: Option<Cancel>,
) {
    loop {
        let next = match cancel_at {
            Some(at) => {
                tokio::select! {
                    next = stream.message() => next,
                    _ = tokio::time::sleep_until(at) => {
                        stream.cancel();
                        cancel_at = None;
                        continue;
                    }
                }
            }
            None => stream.message().await,
        };
        match next {
            Ok(Some(message)) => {
                observed.payloads.push(message.payload());
                if let Some(Cancel::AfterResponses(n)) = cancel
                    && observed.payloads.len() == n as usize
                {
                    stream.cancel();
                }
            }
            Ok(None) => break,
            Err(status) => {
                observed.error = Some(status);
                break;
            }
        }
    }
    observed.record_stream(stream);
}

async fn client_stream(
    client: &Client<CaseTransport>,
    messages: Vec<ClientStreamRequest>,
    options: CallOptions,
    cancel: Option<Cancel>,
    delay: Duration,
) -> ClientResponseResult {
    let mut observed = Observed::new();
    let mut call = match client
        .client_streaming::<ClientStreamRequest, ClientStreamResponse>(
            &conformance_service::CLIENT_STREAM,
            options,
        )
        .await
    {
        Ok(call) => call,
        Err(status) => {
            observed.error = Some(status);
            return observed.into_result();
        }
    };
    let total = messages.len();
    for (sent, message) in messages.into_iter().enumerate() {
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        if call.send(message).await.is_err() {
            observed.unsent = total - sent;
            break;
        }
    }
    if let Some(Cancel::BeforeCloseSend) = cancel {
        call.cancel();
    }
    let _ = call.close_send();
    let mut stream = call.into_response_stream();
    let cancel_at = match cancel {
        Some(Cancel::AfterCloseSend(after)) => Some(tokio::time::Instant::now() + after),
        _ => None,
    };
    receive(&mut stream, &mut observed, cancel_at, cancel).await;
    if observed.error.is_some() {
        // A client-streaming response's message counts only if the call succeeds.
        observed.payloads.clear();
    }
    observed.into_result()
}

async fn bidi_stream(
    client: &Client<CaseTransport>,
    messages: Vec<BidiStreamRequest>,
    options: CallOptions,
    cancel: Option<Cancel>,
    delay: Duration,
    full_duplex: bool,
) -> ClientResponseResult {
    let mut observed = Observed::new();
    let mut call = match client
        .bidi_streaming::<BidiStreamRequest, BidiStreamResponse>(
            &conformance_service::BIDI_STREAM,
            options,
        )
        .await
    {
        Ok(call) => call,
        Err(status) => {
            observed.error = Some(status);
            return observed.into_result();
        }
    };
    let total = messages.len();
    let mut failed = false;
    for (sent, message) in messages.into_iter().enumerate() {
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        if call.send(message).await.is_err() {
            observed.unsent = total - sent;
            failed = true;
            break;
        }
        if full_duplex {
            match call.message().await {
                Ok(Some(response)) => {
                    observed.payloads.push(response.payload());
                    if let Some(Cancel::AfterResponses(n)) = cancel
                        && observed.payloads.len() == n as usize
                    {
                        call.cancel();
                    }
                }
                Ok(None) => {}
                Err(status) => {
                    observed.unsent = total - sent - 1;
                    observed.error = Some(status);
                    failed = true;
                    break;
                }
            }
        }
    }
    if let Some(Cancel::BeforeCloseSend) = cancel {
        call.cancel();
    }
    let _ = call.close_send();
    let mut stream = call.into_response_stream();
    if failed && observed.error.is_some() {
        observed.record_stream(&stream);
        return observed.into_result();
    }
    let cancel_at = match cancel {
        Some(Cancel::AfterCloseSend(after)) => Some(tokio::time::Instant::now() + after),
        _ => None,
    };
    receive(&mut stream, &mut observed, cancel_at, cancel).await;
    observed.into_result()
}

/// Decodes a `ClientCompatRequest`.
pub fn decode_request(bytes: &Bytes) -> Result<ClientCompatRequest, CaseError> {
    ClientCompatRequest::decode_from_slice(bytes).map_err(|e| e.to_string())
}
