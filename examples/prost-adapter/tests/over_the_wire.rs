//! prost messages served by closures on a `Routes` that also serves the generated greeter,
//! over a real socket, for Connect, gRPC and gRPC-Web; and what JSON gets.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use connect_tokio_hyper::{HttpClient, Server, TokioTimer};
use connect_tower::client::{CallOptions, Client, ClientConfig, RequestBody};
use connect_tower::server::{ConnectService, Routes};
use connect_tower::{Code, Codec, Protocol};
use greeter_example::greet::HelloRequest;
use greeter_example::greet::greeter::GreeterClient;
use http_body_util::BodyExt;
use prost_adapter_example::{GET, KeyValueClient, Prost, kv, routes};

const PROTOCOLS: [Protocol; 3] = [Protocol::Connect, Protocol::Grpc, Protocol::GrpcWeb];

async fn serve() -> (SocketAddr, tokio::sync::oneshot::Sender<()>) {
    let store = BTreeMap::from([
        ("fruit/apple".to_owned(), "red".to_owned()),
        ("fruit/kiwi".to_owned(), "green".to_owned()),
        ("veg/leek".to_owned(), "white".to_owned()),
    ]);
    // A generated service and two closures in one router.
    let routes = routes(Routes::new().service(greeter_example::service()), store);
    let service = ConnectService::builder(routes)
        .timer(TokioTimer::new())
        .build();
    let server = Server::builder().bind("127.0.0.1:0").await.unwrap();
    let addr = server.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(server.serve_with_shutdown(service, async {
        let _ = stopped.await;
    }));
    (addr, stop)
}

fn client(addr: SocketAddr, protocol: Protocol, codec: Codec) -> Client<HttpClient> {
    let config = ClientConfig::new(format!("http://{addr}").parse().unwrap())
        .protocol(protocol)
        .codec(codec)
        .default_timeout(Some(Duration::from_secs(10)));
    Client::new(HttpClient::plaintext_h2c(), config).timer(TokioTimer::new())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prost_messages_cross_every_protocol() {
    let (addr, _stop) = serve().await;
    for protocol in PROTOCOLS {
        let kv = KeyValueClient::new(client(addr, protocol, Codec::Proto));
        let found = kv
            .get(kv::GetRequest {
                key: "fruit/kiwi".into(),
            })
            .await
            .expect("get");
        assert_eq!(
            found,
            kv::GetResponse {
                value: "green".into(),
                found: true
            },
            "{protocol:?}"
        );
        let missing = kv
            .get(kv::GetRequest { key: "nut".into() })
            .await
            .expect("get");
        assert!(!missing.found, "{protocol:?}");

        let mut entries = kv
            .scan(kv::ScanRequest {
                prefix: "fruit/".into(),
            })
            .await
            .expect("scan");
        let mut keys = Vec::new();
        while let Some(entry) = entries.message().await.expect("entry") {
            keys.push(entry.into_inner().key);
        }
        assert_eq!(keys, ["fruit/apple", "fruit/kiwi"], "{protocol:?}");

        // The generated buffa service in the same router.
        let greeter = GreeterClient::new(client(addr, protocol, Codec::Proto));
        let reply = greeter
            .say_hello(HelloRequest {
                name: "prost".into(),
                ..Default::default()
            })
            .await
            .expect("greeter");
        assert_eq!(reply.message().message, "Hello, prost!", "{protocol:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_is_refused_with_a_clear_error() {
    let (addr, _stop) = serve().await;
    // A client asked for JSON fails before sending: prost messages have no JSON form here.
    let client = client(addr, Protocol::Connect, Codec::Json);
    let status = client
        .unary::<_, Prost<kv::GetResponse>>(
            &GET,
            Prost(kv::GetRequest { key: "a".into() }),
            CallOptions::default(),
        )
        .await
        .expect_err("JSON request");
    assert!(
        status
            .message()
            .contains("JSON is not supported for prost messages"),
        "{status:?}"
    );

    // A JSON request from elsewhere (curl, a browser) is answered invalid_argument, saying why.
    let mut transport = HttpClient::plaintext_http1();
    let request = http::Request::post(format!("http://{addr}/kv.v1.KeyValue/Get"))
        .header("content-type", "application/json")
        .body(RequestBody::full(bytes_of(r#"{"key":"fruit/kiwi"}"#)))
        .unwrap();
    std::future::poll_fn(|cx| tower_service::Service::poll_ready(&mut transport, cx))
        .await
        .unwrap();
    let response = tower_service::Service::call(&mut transport, request)
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let body = String::from_utf8_lossy(&body);
    assert!(body.contains("invalid_argument"), "{body}");
    assert!(
        body.contains("JSON is not supported for prost messages"),
        "{body}"
    );
    let _ = Code::InvalidArgument;
}

fn bytes_of(text: &'static str) -> bytes::Bytes {
    bytes::Bytes::from_static(text.as_bytes())
}
