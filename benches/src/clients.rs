//! The three client implementations as [`Caller`]s: each makes one call of a workload with its
//! generated client, reads every response message, and checks what it got (text, checksum,
//! counts), so the verification pass doubles as an interop test of every client against every
//! server.

use std::net::SocketAddr;
use std::rc::Rc;

use crate::loadgen::Caller;
use crate::workload::{
    ECHO_TEXT, Kind, Messages, PING_PONG_ROUNDS, STREAM_TEXT, UPLOAD_MESSAGES, Wire,
};

/// A client implementation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientImpl {
    Ours,
    Tonic,
    Connectrpc,
    /// The raw load generator.
    Bare,
}

impl ClientImpl {
    /// Every client, in report order.
    pub const ALL: [ClientImpl; 4] = [
        ClientImpl::Ours,
        ClientImpl::Tonic,
        ClientImpl::Connectrpc,
        ClientImpl::Bare,
    ];

    /// The report column.
    pub fn name(self) -> &'static str {
        match self {
            ClientImpl::Ours => "ours",
            ClientImpl::Tonic => "tonic",
            ClientImpl::Connectrpc => "connectrpc",
            ClientImpl::Bare => "bare",
        }
    }

    /// Whether the client speaks `wire`.
    pub fn speaks(self, wire: Wire) -> bool {
        self != ClientImpl::Tonic || wire == Wire::Grpc
    }
}

/// What every client checks responses against.
#[derive(Debug)]
pub struct Expected {
    checksum: u64,
    upload: String,
}

impl Expected {
    pub fn new(messages: &Messages) -> Self {
        Expected {
            checksum: messages.batch_checksum,
            upload: format!(
                "{UPLOAD_MESSAGES}:{}",
                messages.upload.message.len() * UPLOAD_MESSAGES
            ),
        }
    }
}

fn check(ok: bool, what: impl FnOnce() -> String) -> Result<(), String> {
    if ok { Ok(()) } else { Err(what()) }
}

/// Builds `concurrency` callers of `which` for `kind` over `wire`, sharing one client (one h2
/// connection, or a pool of HTTP/1.1 connections).
pub async fn callers(
    which: ClientImpl,
    messages: &Messages,
    kind: Kind,
    wire: Wire,
    addr: SocketAddr,
    concurrency: usize,
) -> Result<Vec<AnyCaller>, String> {
    let expected = Rc::new(Expected::new(messages));
    let one = match which {
        ClientImpl::Ours => {
            AnyCaller::Ours(ours::Caller::new(messages, kind, wire, addr, expected).await?)
        }
        ClientImpl::Tonic => {
            AnyCaller::Tonic(tonic_client::Caller::new(messages, kind, addr, expected).await?)
        }
        ClientImpl::Connectrpc => {
            AnyCaller::Connectrpc(peer::Caller::new(messages, kind, wire, addr, expected))
        }
        ClientImpl::Bare => {
            let plan = crate::loadgen::Plan::new(messages, kind, wire, addr);
            let raw = crate::loadgen::raw_callers(&plan, addr, concurrency, 1).await?;
            return Ok(raw.into_iter().map(AnyCaller::Bare).collect());
        }
    };
    Ok(vec![one; concurrency])
}

/// Any client's caller.
#[derive(Clone)]
pub enum AnyCaller {
    Ours(ours::Caller),
    Tonic(tonic_client::Caller),
    Connectrpc(peer::Caller),
    Bare(crate::loadgen::RawCaller),
}

impl Caller for AnyCaller {
    async fn call(&mut self) -> Result<(), String> {
        match self {
            AnyCaller::Ours(c) => c.call().await,
            AnyCaller::Tonic(c) => c.call().await,
            AnyCaller::Connectrpc(c) => c.call().await,
            AnyCaller::Bare(c) => c.call().await,
        }
    }
}

/// Re-decodes a prost-encoded message as another stack's type.
fn convert<M: buffa::Message>(message: &impl prost::Message) -> M {
    M::decode_from_slice(&message.encode_to_vec()).expect("same schema")
}

pub mod ours {
    use super::*;
    use connect_tokio_hyper::{H2Connection, HttpClient};
    use connect_tower::Protocol;
    use connect_tower::client::{Client, ClientConfig};

    use connect_tower::client::CallOptions;
    use connect_tower::codec::View;

    use crate::ours_proto::bench::v1::bench_service::{self, BenchServiceClient};
    use crate::ours_proto::bench::v1::{
        EchoRequest, EchoResponse, IngestResponse, LogBatch, StreamRequest,
    };

    struct Inputs {
        echo: EchoRequest,
        batch: LogBatch,
        stream: StreamRequest,
        upload: EchoRequest,
        ping: EchoRequest,
    }

    /// Our generated client over one of our transports.
    #[derive(Clone)]
    #[allow(
        clippy::large_enum_variant,
        reason = "one per worker, never moved in a loop"
    )]
    enum AnyClient {
        Pooled(BenchServiceClient<HttpClient>),
        H2(BenchServiceClient<H2Connection>),
    }

    /// Dispatches one call to whichever transport the client uses.
    macro_rules! with_client {
        ($caller:expr, $c:ident => $body:expr) => {
            match &$caller.client {
                AnyClient::Pooled($c) => $body,
                AnyClient::H2($c) => $body,
            }
        };
    }

    /// Our generated client: over HTTP/2 on one [`H2Connection`] (our single-connection h2
    /// transport, like tonic's `Channel`), over HTTP/1.1 on the pooled [`HttpClient`].
    #[derive(Clone)]
    pub struct Caller {
        client: AnyClient,
        kind: Kind,
        inputs: Rc<Inputs>,
        expected: Rc<Expected>,
    }

    impl Caller {
        pub async fn new(
            messages: &Messages,
            kind: Kind,
            wire: Wire,
            addr: SocketAddr,
            expected: Rc<Expected>,
        ) -> Result<Self, String> {
            let uri: http::Uri = format!("http://{addr}").parse().expect("uri");
            let protocol = if wire == Wire::Grpc {
                Protocol::Grpc
            } else {
                Protocol::Connect
            };
            let config = ClientConfig::new(uri.clone()).protocol(protocol);
            let pooled = std::env::var_os("CONNECT_BENCH_POOLED_H2").is_some();
            let client = if wire.is_h2() && !pooled {
                let connection = H2Connection::connect(&uri)
                    .await
                    .map_err(|e| e.to_string())?;
                AnyClient::H2(BenchServiceClient::new(Client::new(connection, config)))
            } else if wire.is_h2() {
                AnyClient::Pooled(BenchServiceClient::new(Client::new(
                    HttpClient::plaintext_h2c(),
                    config,
                )))
            } else {
                AnyClient::Pooled(BenchServiceClient::new(Client::new(
                    HttpClient::plaintext_http1(),
                    config,
                )))
            };
            let stream = match kind {
                Kind::Stream1000 => &messages.stream1000,
                Kind::Stream100 => &messages.stream100,
                _ => &messages.stream10,
            };
            Ok(Caller {
                client,
                kind,
                inputs: Rc::new(Inputs {
                    echo: convert(&messages.echo),
                    batch: convert(&messages.batch),
                    stream: convert(stream),
                    upload: convert(&messages.upload),
                    ping: convert(&messages.ping),
                }),
                expected,
            })
        }

        pub async fn call(&mut self) -> Result<(), String> {
            let this = &*self;
            with_client!(this, client => this.call_with(client).await)
        }

        async fn call_with<T: connect_tower::client::Transport>(
            &self,
            client: &BenchServiceClient<T>,
        ) -> Result<(), String> {
            // Responses are read as zero-copy views, as connectrpc's generated client reads
            // them: the calls go through the client underneath the generated one.
            let e = |s: connect_tower::Status| s.to_string();
            let inputs = &*self.inputs;
            let client = client.inner();
            let options = CallOptions::new;
            match self.kind {
                Kind::Echo => {
                    let response = client
                        .unary::<_, View<EchoResponse>>(
                            &bench_service::ECHO,
                            inputs.echo.clone(),
                            options(),
                        )
                        .await
                        .map_err(e)?;
                    let text = response.message().message();
                    check(text == ECHO_TEXT, || format!("echo {text:?}"))
                }
                Kind::Ingest => {
                    let response = client
                        .unary::<_, View<IngestResponse>>(
                            &bench_service::INGEST,
                            inputs.batch.clone(),
                            options(),
                        )
                        .await
                        .map_err(e)?;
                    let sum = response.message().checksum();
                    check(sum == self.expected.checksum, || format!("checksum {sum}"))
                }
                Kind::Stream10 | Kind::Stream100 | Kind::Stream1000 => {
                    let mut stream = client
                        .server_streaming::<_, View<EchoResponse>>(
                            &bench_service::DOWNLOAD,
                            inputs.stream.clone(),
                            options(),
                        )
                        .await
                        .map_err(e)?;
                    let mut count = 0;
                    while let Some(message) = stream.message().await.map_err(e)? {
                        check(message.message() == STREAM_TEXT, || "stream text".into())?;
                        count += 1;
                    }
                    check(count == self.kind.responses(), || {
                        format!("{count} messages")
                    })
                }
                Kind::Upload10 => {
                    let mut call = client
                        .client_streaming::<EchoRequest, View<EchoResponse>>(
                            &bench_service::UPLOAD,
                            options(),
                        )
                        .await
                        .map_err(e)?;
                    for _ in 0..UPLOAD_MESSAGES {
                        call.send(inputs.upload.clone()).await.map_err(e)?;
                    }
                    let response = call.finish().await.map_err(e)?;
                    let text = response.message().message();
                    check(text == self.expected.upload, || format!("upload {text:?}"))
                }
                Kind::PingPong => {
                    let mut call = client
                        .bidi_streaming::<EchoRequest, View<EchoResponse>>(
                            &bench_service::PING_PONG,
                            options(),
                        )
                        .await
                        .map_err(e)?;
                    for _ in 0..PING_PONG_ROUNDS {
                        call.send(inputs.ping.clone()).await.map_err(e)?;
                        let reply = call.message().await.map_err(e)?;
                        check(reply.is_some_and(|r| r.message() == "ping"), || {
                            "pong".into()
                        })?;
                    }
                    call.close_send().map_err(e)?;
                    let end = call.message().await.map_err(e)?;
                    check(end.is_none(), || "extra pong".into())
                }
            }
        }
    }
}

pub mod tonic_client {
    use super::*;
    use crate::tonic_proto as pb;
    use crate::tonic_proto::bench_service_client::BenchServiceClient;
    use tonic::transport::Channel;

    /// tonic's generated client over a `Channel` (one HTTP/2 connection).
    #[derive(Clone)]
    pub struct Caller {
        client: BenchServiceClient<Channel>,
        kind: Kind,
        messages: Rc<Messages>,
        expected: Rc<Expected>,
    }

    impl Caller {
        pub async fn new(
            messages: &Messages,
            kind: Kind,
            addr: SocketAddr,
            expected: Rc<Expected>,
        ) -> Result<Self, String> {
            let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
                .map_err(|e| e.to_string())?
                .tcp_nodelay(true)
                .connect()
                .await
                .map_err(|e| e.to_string())?;
            Ok(Caller {
                client: BenchServiceClient::new(channel),
                kind,
                messages: Rc::new(messages.clone()),
                expected,
            })
        }

        pub async fn call(&mut self) -> Result<(), String> {
            let e = |s: tonic::Status| s.to_string();
            let m = &*self.messages;
            match self.kind {
                Kind::Echo => {
                    let response = self.client.echo(m.echo.clone()).await.map_err(e)?;
                    let text = &response.get_ref().message;
                    check(text == ECHO_TEXT, || format!("echo {text:?}"))
                }
                Kind::Ingest => {
                    let response = self.client.ingest(m.batch.clone()).await.map_err(e)?;
                    let sum = response.get_ref().checksum;
                    check(sum == self.expected.checksum, || format!("checksum {sum}"))
                }
                Kind::Stream10 | Kind::Stream100 | Kind::Stream1000 => {
                    let request = match self.kind {
                        Kind::Stream10 => m.stream10.clone(),
                        Kind::Stream100 => m.stream100.clone(),
                        _ => m.stream1000.clone(),
                    };
                    let mut stream = self.client.download(request).await.map_err(e)?.into_inner();
                    let mut count = 0;
                    while let Some(message) = stream.message().await.map_err(e)? {
                        check(message.message == STREAM_TEXT, || "stream text".into())?;
                        count += 1;
                    }
                    check(count == self.kind.responses(), || {
                        format!("{count} messages")
                    })
                }
                Kind::Upload10 => {
                    let requests = futures_util::stream::iter(std::iter::repeat_n(
                        m.upload.clone(),
                        UPLOAD_MESSAGES,
                    ));
                    let response = self.client.upload(requests).await.map_err(e)?;
                    let text = &response.get_ref().message;
                    check(*text == self.expected.upload, || format!("upload {text:?}"))
                }
                Kind::PingPong => {
                    let (send, receive) = tokio::sync::mpsc::channel::<pb::EchoRequest>(1);
                    send.send(m.ping.clone()).await.map_err(|e| e.to_string())?;
                    let requests = tokio_stream::wrappers::ReceiverStream::new(receive);
                    let mut replies = self
                        .client
                        .ping_pong(requests)
                        .await
                        .map_err(e)?
                        .into_inner();
                    let mut send = Some(send);
                    for round in 0..PING_PONG_ROUNDS {
                        if round > 0
                            && let Some(send) = &send
                        {
                            send.send(m.ping.clone()).await.map_err(|e| e.to_string())?;
                        }
                        let reply = replies.message().await.map_err(e)?;
                        check(reply.is_some_and(|r| r.message == "ping"), || "pong".into())?;
                    }
                    send.take();
                    let end = replies.message().await.map_err(e)?;
                    check(end.is_none(), || "extra pong".into())
                }
            }
        }
    }
}

pub mod peer {
    use super::*;
    use connectrpc::Protocol;
    use connectrpc::client::{ClientConfig, HttpClient};

    use crate::peer_proto::bench::v1::{BenchServiceClient, EchoRequest, LogBatch, StreamRequest};

    struct Inputs {
        echo: EchoRequest,
        batch: LogBatch,
        stream: StreamRequest,
        upload: EchoRequest,
        ping: EchoRequest,
    }

    /// connectrpc's generated client over its pooled transport.
    #[derive(Clone)]
    pub struct Caller {
        client: Rc<BenchServiceClient<HttpClient>>,
        kind: Kind,
        inputs: Rc<Inputs>,
        expected: Rc<Expected>,
    }

    impl Caller {
        pub fn new(
            messages: &Messages,
            kind: Kind,
            wire: Wire,
            addr: SocketAddr,
            expected: Rc<Expected>,
        ) -> Self {
            let uri = format!("http://{addr}").parse().expect("uri");
            let protocol = if wire == Wire::Grpc {
                Protocol::Grpc
            } else {
                Protocol::Connect
            };
            let transport = if wire.is_h2() {
                HttpClient::plaintext_http2_only()
            } else {
                HttpClient::plaintext()
            };
            let config = ClientConfig::new(uri).with_protocol(protocol);
            let stream = match kind {
                Kind::Stream1000 => &messages.stream1000,
                Kind::Stream100 => &messages.stream100,
                _ => &messages.stream10,
            };
            Caller {
                client: Rc::new(BenchServiceClient::new(transport, config)),
                kind,
                inputs: Rc::new(Inputs {
                    echo: convert(&messages.echo),
                    batch: convert(&messages.batch),
                    stream: convert(stream),
                    upload: convert(&messages.upload),
                    ping: convert(&messages.ping),
                }),
                expected,
            }
        }

        pub async fn call(&mut self) -> Result<(), String> {
            let e = |s: connectrpc::ConnectError| s.to_string();
            let inputs = &*self.inputs;
            match self.kind {
                Kind::Echo => {
                    let response = self.client.echo(inputs.echo.clone()).await.map_err(e)?;
                    let text = response.view().message;
                    check(text == ECHO_TEXT, || format!("echo {text:?}"))
                }
                Kind::Ingest => {
                    let response = self.client.ingest(inputs.batch.clone()).await.map_err(e)?;
                    let sum = response.view().checksum;
                    check(sum == self.expected.checksum, || format!("checksum {sum}"))
                }
                Kind::Stream10 | Kind::Stream100 | Kind::Stream1000 => {
                    let mut stream = self
                        .client
                        .download(inputs.stream.clone())
                        .await
                        .map_err(e)?;
                    let mut count = 0;
                    while let Some(message) = stream.message().await.map_err(e)? {
                        check(message.message() == STREAM_TEXT, || "stream text".into())?;
                        count += 1;
                    }
                    check(count == self.kind.responses(), || {
                        format!("{count} messages")
                    })
                }
                Kind::Upload10 => {
                    let requests = futures_util::stream::iter(std::iter::repeat_n(
                        inputs.upload.clone(),
                        UPLOAD_MESSAGES,
                    ));
                    let response = self.client.upload(requests).await.map_err(e)?;
                    let text = response.view().message;
                    check(text == self.expected.upload, || format!("upload {text:?}"))
                }
                Kind::PingPong => {
                    let mut call = self.client.ping_pong().await.map_err(e)?;
                    for _ in 0..PING_PONG_ROUNDS {
                        call.send(inputs.ping.clone()).await.map_err(e)?;
                        let reply = call.message().await.map_err(e)?;
                        check(reply.is_some_and(|r| r.message() == "ping"), || {
                            "pong".into()
                        })?;
                    }
                    call.close_send();
                    let end = call.message().await.map_err(e)?;
                    check(end.is_none(), || "extra pong".into())
                }
            }
        }
    }
}
