//! The greeter (served by connect-tower on a real socket) behind the proxy, called with the
//! generated client over every client protocol and transport, for every backend protocol:
//! all four RPC kinds, compressed and not, errors with their codes, deadlines, and the
//! schema a Connect backend needs.

use std::time::Duration;

use connect_proto_core::compression::CompressionRegistry;
use connect_proto_core::{Code, Codec, Protocol};
use connect_proxy_example::Proxy;
use connect_tokio_hyper::{HttpClient, Server, TokioTimer};
use connect_tower::client::{CallOptions, Client, ClientConfig};
use connect_tower::server::ConnectService;
use greeter_example::greet::greeter::{self, GreeterClient};
use greeter_example::greet::{HelloRequest, RepeatRequest};
use tokio::sync::oneshot;

/// A server in a task, stopped when the guard drops.
struct Running {
    addr: std::net::SocketAddr,
    _stop: oneshot::Sender<()>,
}

async fn start_greeter() -> Running {
    let service = ConnectService::builder(greeter_example::service())
        .timer(TokioTimer::new())
        .build();
    let server = Server::builder().bind("127.0.0.1:0").await.unwrap();
    let addr = server.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(server.serve_with_shutdown(service, async {
        let _ = stopped.await;
    }));
    Running { addr, _stop: stop }
}

async fn start_proxy(backend: &Running, protocol: Protocol, http2: bool, schema: bool) -> Running {
    let mut builder = Proxy::builder(format!("http://{}", backend.addr).parse().unwrap())
        .backend_protocol(protocol)
        .backend_http2(http2);
    if schema {
        builder = builder.methods([
            &greeter::SAY_HELLO,
            &greeter::SAY_HELLO_REPEATEDLY,
            &greeter::SAY_HELLO_TO_ALL,
            &greeter::CONVERSE,
        ]);
    }
    let proxy = builder.build();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(async move {
        proxy
            .serve(listener, None, async {
                let _ = stopped.await;
            })
            .await
    });
    Running { addr, _stop: stop }
}

/// How the client reaches the proxy.
#[derive(Clone, Copy, Debug)]
struct Setup {
    protocol: Protocol,
    codec: Codec,
    h2c: bool,
    text: bool,
    gzip: bool,
}

const SETUPS: [Setup; 6] = [
    Setup {
        protocol: Protocol::Connect,
        codec: Codec::Json,
        h2c: false,
        text: false,
        gzip: false,
    },
    Setup {
        protocol: Protocol::Connect,
        codec: Codec::Proto,
        h2c: true,
        text: false,
        gzip: true,
    },
    Setup {
        protocol: Protocol::Grpc,
        codec: Codec::Proto,
        h2c: true,
        text: false,
        gzip: false,
    },
    Setup {
        protocol: Protocol::Grpc,
        codec: Codec::Json,
        h2c: true,
        text: false,
        gzip: true,
    },
    Setup {
        protocol: Protocol::GrpcWeb,
        codec: Codec::Proto,
        h2c: false,
        text: false,
        gzip: true,
    },
    Setup {
        protocol: Protocol::GrpcWeb,
        codec: Codec::Proto,
        h2c: false,
        text: true,
        gzip: false,
    },
];

fn client(proxy: &Running, setup: Setup) -> GreeterClient<HttpClient> {
    let transport = if setup.h2c {
        HttpClient::plaintext_h2c()
    } else {
        HttpClient::plaintext_http1()
    };
    let mut config = ClientConfig::new(format!("http://{}", proxy.addr).parse().unwrap())
        .protocol(setup.protocol)
        .codec(setup.codec)
        .grpc_web_text(setup.text)
        .default_timeout(Some(Duration::from_secs(10)));
    if setup.gzip {
        let gzip = CompressionRegistry::default().get("gzip").cloned();
        config = config.send_compression(gzip).compress_min_bytes(0);
    }
    GreeterClient::new(Client::new(transport, config).timer(TokioTimer::new()))
}

fn hello(name: &str) -> HelloRequest {
    HelloRequest {
        name: name.into(),
        ..Default::default()
    }
}

/// Every RPC kind, and an error, through the proxy.
async fn tour(client: &GreeterClient<HttpClient>, what: &str) {
    let reply = client
        .say_hello(hello("Ada"))
        .await
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    assert_eq!(reply.message().message, "Hello, Ada!", "{what}");

    let mut stream = client
        .say_hello_repeatedly(RepeatRequest {
            name: "Grace".into(),
            times: 3,
            ..Default::default()
        })
        .await
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    let mut replies = Vec::new();
    while let Some(reply) = stream
        .message()
        .await
        .unwrap_or_else(|e| panic!("{what}: {e}"))
    {
        replies.push(reply.message);
    }
    assert_eq!(
        replies,
        [
            "Hello, Grace! (1/3)",
            "Hello, Grace! (2/3)",
            "Hello, Grace! (3/3)"
        ],
        "{what}"
    );

    let mut call = client.say_hello_to_all().await.unwrap();
    for name in ["Alan", "Barbara"] {
        call.send(hello(name)).await.unwrap();
    }
    let reply = call
        .finish()
        .await
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    assert_eq!(
        reply.message().message,
        "Hello, Alan and Barbara!",
        "{what}"
    );

    let mut call = client.converse().await.unwrap();
    call.send(hello("Ken")).await.unwrap();
    call.send(hello("Dennis")).await.unwrap();
    call.close_send().unwrap();
    let mut replies = Vec::new();
    while let Some(reply) = call
        .message()
        .await
        .unwrap_or_else(|e| panic!("{what}: {e}"))
    {
        replies.push(reply.message);
    }
    assert_eq!(replies, ["Hello, Ken!", "Hello, Dennis!"], "{what}");

    let error = client.say_hello(hello("")).await.unwrap_err();
    assert_eq!(error.code(), Code::InvalidArgument, "{what}: {error}");
    assert_eq!(error.message(), "name must not be empty", "{what}");
    let mut stream = client
        .say_hello_repeatedly(RepeatRequest {
            name: "Edsger".into(),
            times: 99,
            ..Default::default()
        })
        .await
        .unwrap();
    let error = stream.message().await.unwrap_err();
    assert_eq!(error.code(), Code::OutOfRange, "{what}: {error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_client_protocol_through_every_backend_protocol() {
    let greeter = start_greeter().await;
    let backends = [
        (Protocol::Grpc, true),
        (Protocol::GrpcWeb, false),
        (Protocol::Connect, true),
        (Protocol::Connect, false),
    ];
    for (backend, http2) in backends {
        let proxy = start_proxy(&greeter, backend, http2, true).await;
        for setup in SETUPS {
            let what = format!("{setup:?} → proxy → {backend:?} (HTTP/2: {http2})");
            tour(&client(&proxy, setup), &what).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_duplex_bidi_streams_flow_message_by_message() {
    let greeter = start_greeter().await;
    let proxy = start_proxy(&greeter, Protocol::Grpc, true, false).await;
    for protocol in [Protocol::Connect, Protocol::Grpc] {
        let setup = Setup {
            protocol,
            codec: Codec::Proto,
            h2c: true,
            text: false,
            gzip: true,
        };
        let client = client(&proxy, setup);
        let mut call = client.converse().await.unwrap();
        for name in ["one", "two", "three"] {
            call.send(hello(name)).await.unwrap();
            // Each reply arrives before the next request is sent: nothing waits for the end.
            let reply = call.message().await.unwrap().unwrap();
            assert_eq!(reply.message, format!("Hello, {name}!"), "{protocol:?}");
        }
        call.close_send().unwrap();
        assert!(call.message().await.unwrap().is_none());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deadlines_reach_the_backend_and_end_the_call() {
    let greeter = start_greeter().await;
    let proxy = start_proxy(&greeter, Protocol::Grpc, true, false).await;
    for setup in SETUPS {
        let client = client(&proxy, setup);
        // A conversation nobody continues: the handler waits until the deadline.
        let options = CallOptions::new().timeout(Duration::from_millis(300));
        let started = std::time::Instant::now();
        let mut call = client.converse_with_options(options).await.unwrap();
        if setup.h2c {
            let error = call.message().await.unwrap_err();
            assert_eq!(error.code(), Code::DeadlineExceeded, "{setup:?}: {error}");
        } else {
            // Half duplex over HTTP/1.1: the request must end before the response is read.
            call.close_send().unwrap();
            let _ = call.message().await;
        }
        assert!(started.elapsed() < Duration::from_secs(5), "{setup:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connect_backend_needs_the_schema_for_grpc_clients() {
    let greeter = start_greeter().await;
    let proxy = start_proxy(&greeter, Protocol::Connect, true, false).await;
    let grpc = Setup {
        protocol: Protocol::Grpc,
        codec: Codec::Proto,
        h2c: true,
        text: false,
        gzip: false,
    };
    let error = client(&proxy, grpc)
        .say_hello(hello("Ada"))
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::Unimplemented, "{error}");
    assert!(error.message().contains("unary or streaming"), "{error}");
    // Connect clients say what they call: no schema needed.
    let connect = Setup {
        protocol: Protocol::Connect,
        codec: Codec::Proto,
        h2c: true,
        text: false,
        gzip: true,
    };
    tour(
        &client(&proxy, connect),
        "Connect → proxy without schema → Connect",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_that_is_down_is_unavailable() {
    // A port nothing listens on.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let nowhere = Running {
        addr: closed,
        _stop: oneshot::channel().0,
    };
    let proxy = start_proxy(&nowhere, Protocol::Grpc, true, false).await;
    for setup in SETUPS {
        let error = client(&proxy, setup)
            .say_hello(hello("Ada"))
            .await
            .unwrap_err();
        assert_eq!(error.code(), Code::Unavailable, "{setup:?}: {error}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_schema_unknown_paths_are_unknown_methods() {
    use connect_proto_core::{Idempotency, MethodKind, MethodSpec};
    let greeter = start_greeter().await;
    let proxy = start_proxy(&greeter, Protocol::Grpc, true, true).await;
    let nope = MethodSpec::owned(
        "/connectrpc.greet.v1.Greeter/Nope",
        MethodKind::Unary,
        Idempotency::Unknown,
    );
    for setup in SETUPS {
        let greeter_client = client(&proxy, setup);
        let client = greeter_client.inner();
        let error = client
            .unary::<HelloRequest, greeter_example::greet::HelloReply>(
                &nope,
                hello("Ada"),
                CallOptions::new(),
            )
            .await
            .unwrap_err();
        assert_eq!(error.code(), Code::Unimplemented, "{setup:?}: {error}");
    }
    // Connect says 404 for an unknown method, as the backend itself would.
    let response = reqwest_like_post(proxy.addr, "/connectrpc.greet.v1.Greeter/Nope").await;
    assert_eq!(response, 404);
}

/// The HTTP status of a bare Connect unary POST.
async fn reqwest_like_post(addr: std::net::SocketAddr, path: &str) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "POST {path} HTTP/1.1\r\nhost: proxy\r\ncontent-type: application/proto\r\n\
         content-length: 0\r\nconnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    let text = String::from_utf8_lossy(&response);
    text.split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}
