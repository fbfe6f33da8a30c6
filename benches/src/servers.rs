//! The four servers, each the same service with the same handler logic, each in the way its
//! stack recommends: ours (connect-tokio-hyper + connect-tower, generated dispatch), tonic
//! (`tonic::transport::Server`, gRPC only), connectrpc (its standalone server with its
//! generated monomorphic dispatcher) and a bare hyper server that answers every request with
//! a precomputed response.
//!
//! Every server runs on a current-thread Tokio runtime in its own process, pinned to one CPU.

use std::net::TcpListener;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, Response};
use http_body::{Body, Frame};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use prost::Message as _;

use crate::workload::envelope;

/// A server implementation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Impl {
    Ours,
    Tonic,
    Connectrpc,
    Bare,
    /// examples/proxy (gRPC to the backend) in front of ours, both in this process.
    Proxy,
}

impl Impl {
    /// Every server, in report order.
    pub const ALL: [Impl; 4] = [Impl::Ours, Impl::Tonic, Impl::Connectrpc, Impl::Bare];

    /// The name used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Impl::Ours => "ours",
            Impl::Tonic => "tonic",
            Impl::Connectrpc => "connectrpc",
            Impl::Bare => "bare",
            Impl::Proxy => "proxy",
        }
    }

    /// Parses a name.
    pub fn from_name(name: &str) -> Option<Impl> {
        Impl::ALL
            .into_iter()
            .chain([Impl::Proxy])
            .find(|i| i.name() == name)
    }

    /// Whether the server speaks Connect (tonic speaks gRPC only).
    pub fn speaks_connect(self) -> bool {
        self != Impl::Tonic
    }
}

/// Serves `which` on `listener` forever.
pub async fn serve(which: Impl, listener: TcpListener) {
    listener
        .set_nonblocking(true)
        .expect("non-blocking listener");
    match which {
        Impl::Ours => ours::serve(listener).await,
        Impl::Tonic => tonic_server::serve(listener).await,
        Impl::Connectrpc => peer::serve(listener).await,
        Impl::Bare => bare::serve(listener).await,
        Impl::Proxy => proxy::serve(listener).await,
    }
}

mod proxy {
    use connect_proxy_example::Proxy;

    /// Ours on a private port, the proxy on `listener` in front of it (gRPC over h2c between
    /// them): one process, so its CPU time is the whole server side of a proxied call.
    pub async fn serve(listener: std::net::TcpListener) {
        let backend = std::net::TcpListener::bind("127.0.0.1:0").expect("bind backend");
        backend.set_nonblocking(true).expect("non-blocking backend");
        let backend_addr = backend.local_addr().expect("backend addr");
        tokio::spawn(super::ours::serve(backend));
        let proxy = Proxy::builder(format!("http://{backend_addr}").parse().expect("uri")).build();
        let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
        proxy
            .serve(listener, None, std::future::pending())
            .await
            .expect("proxy");
    }
}

mod ours {
    use connect_tokio_hyper::{Server, TokioTimer};
    use connect_tower::server::{ConnectService, ResponseSender, Streaming};
    use connect_tower::{Request, Response, Status};

    use crate::ours_proto::bench::v1::bench_service::{BenchService, BenchServiceServer};
    use crate::ours_proto::bench::v1::{
        EchoRequestOwnedView, EchoResponse, IngestResponse, LogBatchOwnedView,
        StreamRequestOwnedView,
    };

    struct Bench;

    impl BenchService for Bench {
        async fn echo(
            &self,
            request: Request<EchoRequestOwnedView>,
        ) -> Result<Response<EchoResponse>, Status> {
            Ok(Response::new(EchoResponse {
                message: request.message().message().to_owned(),
                ..Default::default()
            }))
        }

        async fn ingest(
            &self,
            request: Request<LogBatchOwnedView>,
        ) -> Result<Response<IngestResponse>, Status> {
            let batch = request.message().view();
            let checksum = crate::view_batch_checksum!(batch);
            Ok(Response::new(IngestResponse {
                accepted: batch.records.len() as u32,
                checksum,
                ..Default::default()
            }))
        }

        async fn download(
            &self,
            request: Request<StreamRequestOwnedView>,
            mut responses: ResponseSender<EchoResponse>,
        ) -> Result<(), Status> {
            let reply = EchoResponse {
                message: request.message().message().to_owned(),
                ..Default::default()
            };
            let count = request.message().count() as usize;
            responses.send_all(std::iter::repeat_n(reply, count)).await
        }

        async fn upload(
            &self,
            request: Request<Streaming<EchoRequestOwnedView>>,
        ) -> Result<Response<EchoResponse>, Status> {
            let mut stream = request.into_message();
            let (mut count, mut bytes) = (0usize, 0usize);
            while let Some(message) = stream.message().await? {
                count += 1;
                bytes += message.message().len();
            }
            Ok(Response::new(EchoResponse {
                message: format!("{count}:{bytes}"),
                ..Default::default()
            }))
        }

        async fn ping_pong(
            &self,
            request: Request<Streaming<EchoRequestOwnedView>>,
            mut responses: ResponseSender<EchoResponse>,
        ) -> Result<(), Status> {
            let mut stream = request.into_message();
            while let Some(message) = stream.message().await? {
                responses
                    .send(EchoResponse {
                        message: message.message().to_owned(),
                        ..Default::default()
                    })
                    .await?;
            }
            Ok(())
        }
    }

    pub async fn serve(listener: std::net::TcpListener) {
        let service = ConnectService::builder(BenchServiceServer::new(Bench))
            .timer(TokioTimer::new())
            .build();
        let server = Server::builder().std_listener(listener).expect("listener");
        server.serve(service).await;
    }
}

mod tonic_server {
    use std::pin::Pin;

    use futures_util::{Stream, StreamExt};
    use tonic::{Request, Response, Status, Streaming};

    use crate::tonic_proto::bench_service_server::{BenchService, BenchServiceServer};
    use crate::tonic_proto::{EchoRequest, EchoResponse, IngestResponse, LogBatch, StreamRequest};

    struct Bench;

    type ResponseStream = Pin<Box<dyn Stream<Item = Result<EchoResponse, Status>> + Send>>;

    #[tonic::async_trait]
    impl BenchService for Bench {
        async fn echo(
            &self,
            request: Request<EchoRequest>,
        ) -> Result<Response<EchoResponse>, Status> {
            Ok(Response::new(EchoResponse {
                message: request.into_inner().message,
            }))
        }

        async fn ingest(
            &self,
            request: Request<LogBatch>,
        ) -> Result<Response<IngestResponse>, Status> {
            let batch = request.into_inner();
            Ok(Response::new(IngestResponse {
                accepted: batch.records.len() as u32,
                checksum: crate::checksum::prost_batch(&batch),
            }))
        }

        type DownloadStream =
            futures_util::stream::Iter<std::iter::RepeatN<Result<EchoResponse, Status>>>;

        async fn download(
            &self,
            request: Request<StreamRequest>,
        ) -> Result<Response<Self::DownloadStream>, Status> {
            let request = request.into_inner();
            let reply = EchoResponse {
                message: request.message,
            };
            Ok(Response::new(futures_util::stream::iter(
                std::iter::repeat_n(Ok(reply), request.count as usize),
            )))
        }

        async fn upload(
            &self,
            request: Request<Streaming<EchoRequest>>,
        ) -> Result<Response<EchoResponse>, Status> {
            let mut stream = request.into_inner();
            let (mut count, mut bytes) = (0usize, 0usize);
            while let Some(message) = stream.message().await? {
                count += 1;
                bytes += message.message.len();
            }
            Ok(Response::new(EchoResponse {
                message: format!("{count}:{bytes}"),
            }))
        }

        type PingPongStream = ResponseStream;

        async fn ping_pong(
            &self,
            request: Request<Streaming<EchoRequest>>,
        ) -> Result<Response<Self::PingPongStream>, Status> {
            let stream = request
                .into_inner()
                .map(|message| message.map(|m| EchoResponse { message: m.message }));
            Ok(Response::new(Box::pin(stream)))
        }
    }

    pub async fn serve(listener: std::net::TcpListener) {
        let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
        let incoming =
            tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
        tonic::transport::Server::builder()
            .add_service(BenchServiceServer::new(Bench))
            .serve_with_incoming(incoming)
            .await
            .expect("tonic server");
    }
}

mod peer {
    use connectrpc::{
        ConnectRpcService, InboundStream, RequestContext, Response, ServiceRequest, ServiceResult,
        ServiceStream,
    };
    use futures_util::StreamExt;

    use crate::peer_proto::bench::v1::{
        BenchService, BenchServiceServer, EchoRequest, EchoResponse, IngestResponse, LogBatch,
        StreamRequest,
    };

    struct Bench;

    #[allow(refining_impl_trait)]
    impl BenchService for Bench {
        async fn echo(
            &self,
            _ctx: RequestContext,
            request: ServiceRequest<'_, EchoRequest>,
        ) -> ServiceResult<EchoResponse> {
            Response::ok(EchoResponse {
                message: request.message.to_owned(),
                ..Default::default()
            })
        }

        async fn ingest(
            &self,
            _ctx: RequestContext,
            request: ServiceRequest<'_, LogBatch>,
        ) -> ServiceResult<IngestResponse> {
            let batch = &*request;
            let checksum = crate::view_batch_checksum!(batch);
            Response::ok(IngestResponse {
                accepted: batch.records.len() as u32,
                checksum,
                ..Default::default()
            })
        }

        async fn download(
            &self,
            _ctx: RequestContext,
            request: ServiceRequest<'_, StreamRequest>,
        ) -> ServiceResult<ServiceStream<EchoResponse>> {
            let reply = EchoResponse {
                message: request.message.to_owned(),
                ..Default::default()
            };
            let stream: ServiceStream<EchoResponse> = Box::pin(futures_util::stream::iter(
                std::iter::repeat_n(Ok(reply), request.count as usize),
            ));
            Response::ok(stream)
        }

        async fn upload(
            &self,
            _ctx: RequestContext,
            mut requests: InboundStream<EchoRequest>,
        ) -> ServiceResult<EchoResponse> {
            let (mut count, mut bytes) = (0usize, 0usize);
            while let Some(message) = requests.next().await {
                let message = message?;
                count += 1;
                bytes += message.message().len();
            }
            Response::ok(EchoResponse {
                message: format!("{count}:{bytes}"),
                ..Default::default()
            })
        }

        async fn ping_pong(
            &self,
            _ctx: RequestContext,
            requests: InboundStream<EchoRequest>,
        ) -> ServiceResult<ServiceStream<EchoResponse>> {
            let stream: ServiceStream<EchoResponse> = Box::pin(requests.map(|message| {
                message.map(|m| EchoResponse {
                    message: m.message().to_owned(),
                    ..Default::default()
                })
            }));
            Response::ok(stream)
        }
    }

    pub async fn serve(listener: std::net::TcpListener) {
        let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
        connectrpc::Server::from_listener(listener)
            .serve_with_service(ConnectRpcService::new(BenchServiceServer::new(Bench)))
            .await
            .expect("connectrpc server");
    }
}

pub(crate) mod bare {
    use super::*;
    use crate::tonic_proto as pb;
    use crate::workload::{ECHO_TEXT, SERVICE, STREAM_TEXT};

    /// Every precomputed response body.
    pub(crate) struct Canned {
        grpc_headers: HeaderMap,
        grpc_trailers: HeaderMap,
        connect_unary_headers: HeaderMap,
        connect_stream_headers: HeaderMap,
        /// Message bytes.
        echo: Bytes,
        ingest: Bytes,
        upload: Bytes,
        /// Envelopes.
        echo_env: Bytes,
        ingest_env: Bytes,
        upload_env: Bytes,
        /// The bidi reply: the request text echoed (`ping`).
        pong_env: Bytes,
        stream10: Bytes,
        stream1000: Bytes,
        end_stream: Bytes,
    }

    impl Canned {
        pub(crate) fn new() -> Self {
            let messages = crate::workload::Messages::new();
            let echo = Bytes::from(
                pb::EchoResponse {
                    message: ECHO_TEXT.into(),
                }
                .encode_to_vec(),
            );
            let ingest = Bytes::from(
                pb::IngestResponse {
                    accepted: crate::workload::LOG_RECORDS as u32,
                    checksum: messages.batch_checksum,
                }
                .encode_to_vec(),
            );
            let upload_len = messages.upload.message.len() * crate::workload::UPLOAD_MESSAGES;
            let upload = Bytes::from(
                pb::EchoResponse {
                    message: format!("{}:{upload_len}", crate::workload::UPLOAD_MESSAGES),
                }
                .encode_to_vec(),
            );
            let item = Bytes::from(
                pb::EchoResponse {
                    message: STREAM_TEXT.into(),
                }
                .encode_to_vec(),
            );
            let item_env = envelope(0, &item);
            let pong = pb::EchoResponse {
                message: messages.ping.message.clone(),
            }
            .encode_to_vec();
            let repeat = |n: usize| Bytes::from(item_env.repeat(n));
            let mut grpc_headers = HeaderMap::new();
            grpc_headers.insert("content-type", HeaderValue::from_static("application/grpc"));
            let mut grpc_trailers = HeaderMap::new();
            grpc_trailers.insert("grpc-status", HeaderValue::from_static("0"));
            let mut connect_unary_headers = HeaderMap::new();
            connect_unary_headers.insert(
                "content-type",
                HeaderValue::from_static("application/proto"),
            );
            let mut connect_stream_headers = HeaderMap::new();
            connect_stream_headers.insert(
                "content-type",
                HeaderValue::from_static("application/connect+proto"),
            );
            Canned {
                grpc_headers,
                grpc_trailers,
                connect_unary_headers,
                connect_stream_headers,
                echo_env: envelope(0, &echo),
                ingest_env: envelope(0, &ingest),
                upload_env: envelope(0, &upload),
                echo,
                ingest,
                upload,
                stream10: repeat(10),
                stream1000: repeat(1000),
                pong_env: envelope(0, &pong),
                end_stream: envelope(0x02, b"{}"),
            }
        }
    }

    /// A body: data, then optionally a second data chunk, then optionally trailers.
    pub(crate) struct CannedBody {
        data: Option<Bytes>,
        tail: Option<Bytes>,
        trailers: Option<HeaderMap>,
    }

    impl Body for CannedBody {
        type Data = Bytes;
        type Error = std::convert::Infallible;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
            if let Some(data) = self.data.take() {
                return Poll::Ready(Some(Ok(Frame::data(data))));
            }
            if let Some(tail) = self.tail.take() {
                return Poll::Ready(Some(Ok(Frame::data(tail))));
            }
            Poll::Ready(self.trailers.take().map(|t| Ok(Frame::trailers(t))))
        }

        fn is_end_stream(&self) -> bool {
            self.data.is_none() && self.tail.is_none() && self.trailers.is_none()
        }
    }

    /// The bidi body: one canned reply per complete request envelope, then the end.
    pub(crate) struct EchoBody {
        request: Incoming,
        reader: crate::envelope::EnvelopeScanner,
        reply: Bytes,
        pending: usize,
        end: Option<Frame<Bytes>>,
        done: bool,
    }

    impl Body for EchoBody {
        type Data = Bytes;
        type Error = hyper::Error;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
            let this = &mut *self;
            loop {
                if this.pending > 0 {
                    this.pending -= 1;
                    return Poll::Ready(Some(Ok(Frame::data(this.reply.clone()))));
                }
                if this.done {
                    return Poll::Ready(this.end.take().map(Ok));
                }
                match Pin::new(&mut this.request).poll_frame(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e))),
                    Poll::Ready(Some(Ok(frame))) => {
                        if let Some(data) = frame.data_ref() {
                            let pending = &mut this.pending;
                            this.reader.feed(data, |piece| {
                                if let crate::envelope::Piece::End(_) = piece {
                                    *pending += 1;
                                }
                            });
                        }
                    }
                    Poll::Ready(None) => this.done = true,
                }
            }
        }
    }

    /// A bare response body.
    pub(crate) enum BareBody {
        Canned(CannedBody),
        Echo(Box<EchoBody>),
    }

    impl Body for BareBody {
        type Data = Bytes;
        type Error = hyper::Error;

        fn poll_frame(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
            match self.get_mut() {
                BareBody::Canned(body) => Pin::new(body)
                    .poll_frame(cx)
                    .map(|f| f.map(|f| f.map_err(|e| match e {}))),
                BareBody::Echo(body) => Pin::new(&mut **body).poll_frame(cx),
            }
        }
    }

    /// Answers one request with the canned response for its path and protocol.
    pub(crate) async fn answer(
        canned: &Canned,
        request: Request<Incoming>,
    ) -> Result<Response<BareBody>, hyper::Error> {
        let grpc = request
            .headers()
            .get("content-type")
            .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"));
        let method = request
            .uri()
            .path()
            .strip_prefix(SERVICE)
            .unwrap_or_default()
            .to_owned();
        let respond = |headers: &HeaderMap, body: BareBody| {
            let mut response = Response::new(body);
            *response.headers_mut() = headers.clone();
            response
        };
        if method == "PingPong" {
            let (headers, end) = if grpc {
                (
                    &canned.grpc_headers,
                    Frame::trailers(canned.grpc_trailers.clone()),
                )
            } else {
                (
                    &canned.connect_stream_headers,
                    Frame::data(canned.end_stream.clone()),
                )
            };
            let body = EchoBody {
                request: request.into_body(),
                reader: crate::envelope::EnvelopeScanner::default(),
                reply: canned.pong_env.clone(),
                pending: 0,
                end: Some(end),
                done: false,
            };
            return Ok(respond(headers, BareBody::Echo(Box::new(body))));
        }
        let body = request.into_body().collect().await?.to_bytes();
        let (unary, env) = match method.as_str() {
            "Echo" => (&canned.echo, &canned.echo_env),
            "Ingest" => (&canned.ingest, &canned.ingest_env),
            "Upload" => (&canned.upload, &canned.upload_env),
            _ => {
                // Download: the request says how many.
                let message = if grpc || body.len() >= 5 {
                    body.slice(5.min(body.len())..)
                } else {
                    body.clone()
                };
                let count = pb::StreamRequest::decode(message)
                    .map(|r| r.count)
                    .unwrap_or(0);
                let stream = if count == 10 {
                    &canned.stream10
                } else {
                    &canned.stream1000
                };
                let (headers, tail, trailers) = if grpc {
                    (
                        &canned.grpc_headers,
                        None,
                        Some(canned.grpc_trailers.clone()),
                    )
                } else {
                    (
                        &canned.connect_stream_headers,
                        Some(canned.end_stream.clone()),
                        None,
                    )
                };
                let body = CannedBody {
                    data: Some(stream.clone()),
                    tail,
                    trailers,
                };
                return Ok(respond(headers, BareBody::Canned(body)));
            }
        };
        let streaming_request = method == "Upload";
        let body = if grpc {
            CannedBody {
                data: Some(env.clone()),
                tail: None,
                trailers: Some(canned.grpc_trailers.clone()),
            }
        } else if streaming_request {
            CannedBody {
                data: Some(env.clone()),
                tail: Some(canned.end_stream.clone()),
                trailers: None,
            }
        } else {
            CannedBody {
                data: Some(unary.clone()),
                tail: None,
                trailers: None,
            }
        };
        let headers = match (grpc, streaming_request) {
            (true, _) => &canned.grpc_headers,
            (false, true) => &canned.connect_stream_headers,
            (false, false) => &canned.connect_unary_headers,
        };
        Ok(respond(headers, BareBody::Canned(body)))
    }

    pub async fn serve(listener: std::net::TcpListener) {
        let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
        let canned = Arc::new(Canned::new());
        let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            let canned = canned.clone();
            let builder = builder.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |request| {
                    let canned = canned.clone();
                    async move { answer(&canned, request).await }
                });
                let _ = builder
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    }
}
