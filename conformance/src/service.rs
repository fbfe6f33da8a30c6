//! `connectrpc.conformance.v1.ConformanceService`, as the conformance docs specify it for a
//! server under test: echo the request (headers, timeout, messages, GET query) in the response
//! payload or in the error's details, send the requested headers, trailers, data, delays and
//! errors. `Unimplemented` is left to the generated default (`unimplemented`).

use std::time::Duration;

use buffa::Message as _;
use buffa_types::google::protobuf::Any;
use connect_tower::server::{ResponseSender, Streaming};
use connect_tower::{Code, ErrorDetail, Request, RequestContext, Response, Status};
use http::HeaderMap;

use crate::proto::__buffa::view::{
    BidiStreamRequestOwnedView, ClientStreamRequestOwnedView, IdempotentUnaryRequestOwnedView,
    ServerStreamRequestOwnedView, UnaryRequestOwnedView,
};
use crate::proto::conformance_payload::{ConnectGetInfo, RequestInfo};
use crate::proto::conformance_service::ConformanceService;
use crate::proto::unary_response_definition::Response as UnaryOutcome;
use crate::proto::{
    BidiStreamResponse, ClientStreamResponse, ConformancePayload, IdempotentUnaryResponse,
    ServerStreamResponse, UnaryResponse, UnaryResponseDefinition,
};
use crate::{append_headers, from_header_map, proto, to_header_map};

/// The conformance service implementation.
#[derive(Clone, Debug, Default)]
pub struct Conformance;

const TYPE_URL_PREFIX: &str = "type.googleapis.com/";

/// Packs a request message (its received protobuf bytes) as an `Any`.
fn as_any<M: buffa::MessageName>(bytes: &bytes::Bytes) -> Any {
    Any {
        type_url: format!("{TYPE_URL_PREFIX}{}", M::FULL_NAME),
        value: bytes.clone(),
        ..Default::default()
    }
}

/// What the request looked like, for echoing.
fn request_info(context: &RequestContext, requests: Vec<Any>) -> RequestInfo {
    let timeout_ms = context.deadline().map(|deadline| {
        let now = std::time::Instant::now();
        deadline.saturating_duration_since(now).as_millis() as i64
    });
    let query_params = context
        .uri()
        .query()
        .filter(|_| context.http_method() == http::Method::GET)
        .map(query_headers)
        .unwrap_or_default();
    let mut info = RequestInfo {
        request_headers: from_header_map(context.headers()),
        timeout_ms,
        requests,
        ..Default::default()
    };
    if !query_params.is_empty() {
        info.connect_get_info = ConnectGetInfo {
            query_params,
            ..Default::default()
        }
        .into();
    }
    info
}

/// A query string as conformance headers (decoded names and values, in order).
fn query_headers(query: &str) -> Vec<proto::Header> {
    let mut out: Vec<proto::Header> = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let name = unescape(name);
        let value = unescape(value);
        match out.iter_mut().find(|h| h.name == name) {
            Some(existing) => existing.value.push(value),
            None => out.push(proto::Header {
                name,
                value: vec![value],
                ..Default::default()
            }),
        }
    }
    out
}

fn unescape(component: &str) -> String {
    let bytes: Vec<u8> = component
        .bytes()
        .map(|b| if b == b'+' { b' ' } else { b })
        .collect();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Ok(v) = u8::from_str_radix(&String::from_utf8_lossy(&bytes[i + 1..i + 3]), 16)
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A conformance `Error` as a status, with the request info appended to its details.
fn error_status(error: &proto::Error, info: Option<&RequestInfo>) -> Status {
    let code = Code::from_value(error.code.to_i32().max(0) as u32).unwrap_or(Code::Unknown);
    let mut status = Status::new(code, error.message.clone().unwrap_or_default());
    for detail in &error.details {
        status.add_detail(ErrorDetail::new(
            detail.type_url.clone(),
            detail.value.clone(),
        ));
    }
    if let Some(info) = info {
        status.add_detail(ErrorDetail::new(
            format!(
                "{TYPE_URL_PREFIX}{}",
                <RequestInfo as buffa::MessageName>::FULL_NAME
            ),
            info.encode_to_bytes(),
        ));
    }
    status
}

async fn delay(ms: u32) {
    if ms > 0 {
        tokio::time::sleep(Duration::from_millis(u64::from(ms))).await;
    }
}

/// The shared body of `Unary`, `IdempotentUnary` and `ClientStream`.
async fn unary_outcome(
    context: &RequestContext,
    definition: Option<&UnaryResponseDefinition>,
    requests: Vec<Any>,
) -> Result<(ConformancePayload, HeaderMap, HeaderMap), Status> {
    let info = request_info(context, requests);
    let Some(definition) = definition else {
        return Ok((
            ConformancePayload {
                request_info: info.into(),
                ..Default::default()
            },
            HeaderMap::new(),
            HeaderMap::new(),
        ));
    };
    let headers = to_header_map(&definition.response_headers);
    let trailers = to_header_map(&definition.response_trailers);
    match &definition.response {
        Some(UnaryOutcome::Error(error)) => {
            let mut status = error_status(error, Some(&info));
            // Headers travel as error metadata so the client sees them whatever the
            // protocol; trailers likewise.
            let mut metadata = headers;
            append_headers(&definition.response_trailers, &mut metadata);
            *status.metadata_mut() = metadata;
            delay(definition.response_delay_ms).await;
            Err(status)
        }
        other => {
            let data = match other {
                Some(UnaryOutcome::ResponseData(data)) => data.clone(),
                _ => Vec::new(),
            };
            delay(definition.response_delay_ms).await;
            let payload = ConformancePayload {
                data,
                request_info: info.into(),
                ..Default::default()
            };
            Ok((payload, headers, trailers))
        }
    }
}

impl ConformanceService for Conformance {
    async fn unary(
        &self,
        request: Request<UnaryRequestOwnedView>,
    ) -> Result<Response<UnaryResponse>, Status> {
        let (context, message) = request.into_parts();
        let any = as_any::<proto::UnaryRequest>(message.bytes());
        let owned = message.to_owned_message();
        let definition = owned.response_definition.as_option();
        let (payload, headers, trailers) = unary_outcome(&context, definition, vec![any]).await?;
        Ok(Response::new(UnaryResponse {
            payload: payload.into(),
            ..Default::default()
        })
        .with_headers(headers)
        .with_trailers(trailers))
    }

    async fn idempotent_unary(
        &self,
        request: Request<IdempotentUnaryRequestOwnedView>,
    ) -> Result<Response<IdempotentUnaryResponse>, Status> {
        let (context, message) = request.into_parts();
        let any = as_any::<proto::IdempotentUnaryRequest>(message.bytes());
        let owned = message.to_owned_message();
        let definition = owned.response_definition.as_option();
        let (payload, headers, trailers) = unary_outcome(&context, definition, vec![any]).await?;
        Ok(Response::new(IdempotentUnaryResponse {
            payload: payload.into(),
            ..Default::default()
        })
        .with_headers(headers)
        .with_trailers(trailers))
    }

    async fn client_stream(
        &self,
        request: Request<Streaming<ClientStreamRequestOwnedView>>,
    ) -> Result<Response<ClientStreamResponse>, Status> {
        let (context, mut stream) = request.into_parts();
        let mut requests = Vec::new();
        let mut definition: Option<UnaryResponseDefinition> = None;
        while let Some(message) = stream.message().await? {
            requests.push(as_any::<proto::ClientStreamRequest>(message.bytes()));
            if requests.len() == 1 {
                definition = message.to_owned_message().response_definition.into_option();
            }
        }
        let (payload, headers, trailers) =
            unary_outcome(&context, definition.as_ref(), requests).await?;
        Ok(Response::new(ClientStreamResponse {
            payload: payload.into(),
            ..Default::default()
        })
        .with_headers(headers)
        .with_trailers(trailers))
    }

    async fn server_stream(
        &self,
        request: Request<ServerStreamRequestOwnedView>,
        mut responses: ResponseSender<ServerStreamResponse>,
    ) -> Result<(), Status> {
        let (context, message) = request.into_parts();
        let any = as_any::<proto::ServerStreamRequest>(message.bytes());
        let owned = message.to_owned_message();
        let Some(definition) = owned.response_definition.as_option() else {
            return Ok(());
        };
        responses.add_headers(to_header_map(&definition.response_headers));
        for (name, value) in &to_header_map(&definition.response_trailers) {
            responses.add_trailer(name.clone(), value.clone());
        }
        if !definition.response_data.is_empty() {
            responses.send_headers().await?;
        }
        let mut info = Some(request_info(&context, vec![any]));
        for data in &definition.response_data {
            let payload = ConformancePayload {
                data: data.clone(),
                request_info: info.take().map(Into::into).unwrap_or_default(),
                ..Default::default()
            };
            delay(definition.response_delay_ms).await;
            responses
                .send(ServerStreamResponse {
                    payload: payload.into(),
                    ..Default::default()
                })
                .await?;
        }
        match definition.error.as_option() {
            Some(error) => Err(error_status(error, info.as_ref())),
            None => Ok(()),
        }
    }

    async fn bidi_stream(
        &self,
        request: Request<Streaming<BidiStreamRequestOwnedView>>,
        mut responses: ResponseSender<BidiStreamResponse>,
    ) -> Result<(), Status> {
        let (context, mut stream) = request.into_parts();
        let mut definition: Option<proto::StreamResponseDefinition> = None;
        let mut full_duplex = false;
        let mut requests: Vec<Any> = Vec::new();
        let mut sent = 0usize;
        let mut first = true;
        while let Some(message) = stream.message().await? {
            requests.push(as_any::<proto::BidiStreamRequest>(message.bytes()));
            if first {
                first = false;
                let owned = message.to_owned_message();
                full_duplex = owned.full_duplex;
                definition = owned.response_definition.into_option();
                if let Some(definition) = &definition {
                    responses.add_headers(to_header_map(&definition.response_headers));
                    for (name, value) in &to_header_map(&definition.response_trailers) {
                        responses.add_trailer(name.clone(), value.clone());
                    }
                    if full_duplex && !definition.response_data.is_empty() {
                        responses.send_headers().await?;
                    }
                }
            }
            if full_duplex {
                let Some(definition) = &definition else { break };
                let Some(data) = definition.response_data.get(sent) else {
                    break;
                };
                let info = if sent == 0 {
                    request_info(&context, std::mem::take(&mut requests))
                } else {
                    RequestInfo {
                        requests: std::mem::take(&mut requests),
                        ..Default::default()
                    }
                };
                let payload = ConformancePayload {
                    data: data.clone(),
                    request_info: info.into(),
                    ..Default::default()
                };
                delay(definition.response_delay_ms).await;
                responses
                    .send(BidiStreamResponse {
                        payload: payload.into(),
                        ..Default::default()
                    })
                    .await?;
                sent += 1;
            }
        }
        let Some(definition) = definition else {
            return Ok(());
        };
        if !full_duplex && !definition.response_data.is_empty() {
            responses.send_headers().await?;
        }
        let mut info = (sent == 0).then(|| request_info(&context, std::mem::take(&mut requests)));
        while let Some(data) = definition.response_data.get(sent) {
            let payload = ConformancePayload {
                data: data.clone(),
                request_info: info.take().map(Into::into).unwrap_or_default(),
                ..Default::default()
            };
            delay(definition.response_delay_ms).await;
            responses
                .send(BidiStreamResponse {
                    payload: payload.into(),
                    ..Default::default()
                })
                .await?;
            sent += 1;
        }
        match definition.error.as_option() {
            Some(error) => Err(error_status(error, info.as_ref())),
            None => Ok(()),
        }
    }
}
