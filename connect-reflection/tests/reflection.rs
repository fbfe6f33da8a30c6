//! The reflection service over a real socket with the generated clients (v1 and v1alpha), in
//! every protocol: every kind of question, files once per stream, errors in the stream,
//! half-duplex HTTP/1.1, the end of idle streams at shutdown; and the builder's errors.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use buffa::Message;
use buffa_descriptor::generated::descriptor::{FileDescriptorProto, FileDescriptorSet};
use connect_proto_core::{Codec, Protocol};
use connect_reflection::{Error, ReflectionService, v1, v1alpha};
use connect_tokio_hyper::{HttpClient, Server, Shutdown, TokioTimer};
use connect_tower::client::{Client, ClientConfig};
use connect_tower::server::{ConnectService, Routes};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use v1::server_reflection::ServerReflectionClient;
use v1::server_reflection_request::MessageRequest;
use v1::server_reflection_response::MessageResponse;
use v1::{ExtensionRequest, ServerReflectionRequest, ServerReflectionResponse};

/// Every protocol over h2c (full duplex), then Connect and gRPC-Web over HTTP/1.1.
const SETUPS: [(Protocol, Codec, bool); 5] = [
    (Protocol::Connect, Codec::Proto, true),
    (Protocol::Connect, Codec::Json, true),
    (Protocol::Grpc, Codec::Proto, true),
    (Protocol::GrpcWeb, Codec::Proto, true),
    (Protocol::GrpcWeb, Codec::Proto, false),
];

const CATALOG: &str = "test/v1/catalog.proto";
const EMPTY: &str = "google/protobuf/empty.proto";

/// The fixture's descriptor set, compiled with the vendored protoc.
fn catalog_set() -> Vec<u8> {
    let protos = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/protos");
    connect_codegen::Builder::new()
        .files(&[protos.join(CATALOG)])
        .includes(&[protos])
        .cargo_instructions(false)
        .descriptor_set_bytes()
        .expect("compile the fixture")
}

fn reflection() -> ReflectionService {
    ReflectionService::builder()
        .register_file_descriptor_set(&catalog_set())
        .expect("catalog")
        .register_file_descriptor_set(connect_health::FILE_DESCRIPTOR_SET)
        .expect("health")
        .build()
        .expect("links")
}

struct Running {
    addr: SocketAddr,
    stop: oneshot::Sender<()>,
    serving: JoinHandle<Shutdown>,
}

async fn start(reflection: &ReflectionService) -> Running {
    let service = ConnectService::builder(Routes::new().service(reflection.routes()))
        .timer(TokioTimer::new())
        .build();
    let server = Server::builder()
        .drain_timeout(Duration::from_secs(5))
        .bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = server.local_addr().expect("local addr");
    let (stop, stopped) = oneshot::channel::<()>();
    let serving = tokio::spawn(server.serve_with_shutdown(service, async {
        let _ = stopped.await;
    }));
    Running {
        addr,
        stop,
        serving,
    }
}

fn client(addr: SocketAddr, protocol: Protocol, codec: Codec, h2c: bool) -> Client<HttpClient> {
    let transport = if h2c {
        HttpClient::plaintext_h2c()
    } else {
        HttpClient::plaintext_http1()
    };
    let base = format!("http://{addr}").parse().expect("uri");
    let config = ClientConfig::new(base)
        .protocol(protocol)
        .codec(codec)
        .default_timeout(Some(Duration::from_secs(10)));
    Client::new(transport, config).timer(TokioTimer::new())
}

fn ask(question: MessageRequest) -> ServerReflectionRequest {
    ServerReflectionRequest {
        host: "example.test".into(),
        message_request: Some(question),
        ..Default::default()
    }
}

fn symbol(name: &str) -> ServerReflectionRequest {
    ask(MessageRequest::FileContainingSymbol(name.into()))
}

/// The names of the files in a file answer.
fn files(response: &ServerReflectionResponse) -> Vec<String> {
    match &response.message_response {
        Some(MessageResponse::FileDescriptorResponse(files)) => files
            .file_descriptor_proto
            .iter()
            .map(|bytes| {
                FileDescriptorProto::decode_from_slice(bytes)
                    .expect("a FileDescriptorProto")
                    .name
                    .unwrap_or_default()
            })
            .collect(),
        other => panic!("not a file answer: {other:?}"),
    }
}

fn error_code(response: &ServerReflectionResponse) -> i32 {
    match &response.message_response {
        Some(MessageResponse::ErrorResponse(error)) => error.error_code,
        other => panic!("not an error answer: {other:?}"),
    }
}

/// Asks the questions in order and checks each answer; the stream is shared, so files already
/// sent are left out of later answers.
async fn full_session(client: ServerReflectionClient<HttpClient>, what: &str) {
    let mut call = client.server_reflection_info().await.expect(what);
    let mut exchange = async |request: ServerReflectionRequest| {
        call.send(request.clone()).await.expect(what);
        let response = call.message().await.expect(what).expect("an answer");
        assert_eq!(response.valid_host, request.host, "{what}");
        assert_eq!(
            response.original_request.as_option(),
            Some(&request),
            "{what}"
        );
        response
    };

    let list = exchange(ask(MessageRequest::ListServices(String::new()))).await;
    let Some(MessageResponse::ListServicesResponse(list)) = &list.message_response else {
        panic!("{what}: not a service list: {list:?}");
    };
    let names: Vec<&str> = list.service.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "grpc.health.v1.Health",
            "grpc.reflection.v1.ServerReflection",
            "grpc.reflection.v1alpha.ServerReflection",
            "test.v1.Catalog",
        ],
        "{what}"
    );

    // The service's file first, then its import; then neither import again.
    assert_eq!(
        files(&exchange(symbol("test.v1.Catalog")).await),
        [CATALOG, EMPTY],
        "{what}"
    );
    for name in [
        "test.v1.Catalog.Get",
        "test.v1.Item",
        ".test.v1.Item.Part",
        "test.v1.Item.Kind",
        "test.v1.Item.name",
        "test.v1.note",
    ] {
        assert_eq!(
            files(&exchange(symbol(name)).await),
            [CATALOG],
            "{what}: {name}"
        );
    }
    assert_eq!(
        files(&exchange(ask(MessageRequest::FileByFilename(EMPTY.into()))).await),
        [EMPTY],
        "{what}"
    );
    let extension = ExtensionRequest {
        containing_type: "test.v1.Item".into(),
        extension_number: 101,
        ..Default::default()
    };
    assert_eq!(
        files(&exchange(ask(extension.into())).await),
        [CATALOG],
        "{what}"
    );
    let numbers = exchange(ask(MessageRequest::AllExtensionNumbersOfType(
        "test.v1.Item".into(),
    )))
    .await;
    let Some(MessageResponse::AllExtensionNumbersResponse(numbers)) = &numbers.message_response
    else {
        panic!("{what}: not extension numbers: {numbers:?}");
    };
    assert_eq!(numbers.base_type_name, "test.v1.Item", "{what}");
    let mut found = numbers.extension_number.clone();
    found.sort_unstable();
    assert_eq!(found, [100, 101], "{what}");

    // Unknown things are answered in the stream, which goes on.
    for question in [
        MessageRequest::FileContainingSymbol("test.v1.Nope".into()),
        MessageRequest::FileByFilename("nope.proto".into()),
        MessageRequest::AllExtensionNumbersOfType("test.v1.Nope".into()),
        ExtensionRequest {
            containing_type: "test.v1.Item".into(),
            extension_number: 150,
            ..Default::default()
        }
        .into(),
    ] {
        let answer = exchange(ask(question)).await;
        assert_eq!(error_code(&answer), 5, "{what}: NOT_FOUND");
    }
    let empty = exchange(ServerReflectionRequest::default()).await;
    assert_eq!(error_code(&empty), 3, "{what}: INVALID_ARGUMENT");
    assert_eq!(
        files(&exchange(symbol("grpc.health.v1.Health")).await),
        ["grpc/health/v1/health.proto"],
        "{what}"
    );

    call.close_send().expect(what);
    assert!(matches!(call.message().await, Ok(None)), "{what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v1_answers_every_question_in_every_protocol() {
    let running = start(&reflection()).await;
    for (protocol, codec, h2c) in SETUPS.into_iter().filter(|s| s.2) {
        let what = format!("v1 {protocol:?} {codec:?}");
        let client = ServerReflectionClient::new(client(running.addr, protocol, codec, h2c));
        full_session(client, &what).await;
    }
    let _ = running.stop.send(());
    assert!(running.serving.await.expect("server task").drained());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v1alpha_answers_too() {
    use v1alpha::server_reflection::ServerReflectionClient;
    use v1alpha::server_reflection_request::MessageRequest;
    use v1alpha::server_reflection_response::MessageResponse;

    let running = start(&reflection()).await;
    for (protocol, codec, h2c) in SETUPS.into_iter().filter(|s| s.2) {
        let what = format!("v1alpha {protocol:?} {codec:?}");
        let client = ServerReflectionClient::new(client(running.addr, protocol, codec, h2c));
        let mut call = client.server_reflection_info().await.expect(&what);
        call.send(v1alpha::ServerReflectionRequest {
            message_request: Some(MessageRequest::FileContainingSymbol(
                "grpc.reflection.v1alpha.ServerReflection".into(),
            )),
            ..Default::default()
        })
        .await
        .expect(&what);
        let response = call.message().await.expect(&what).expect("an answer");
        let Some(MessageResponse::FileDescriptorResponse(files)) = &response.message_response
        else {
            panic!("{what}: {response:?}");
        };
        let file = FileDescriptorProto::decode_from_slice(&files.file_descriptor_proto[0])
            .expect("a file");
        assert_eq!(
            file.name.as_deref(),
            Some("grpc/reflection/v1alpha/reflection.proto")
        );
        call.close_send().expect(&what);
        assert!(matches!(call.message().await, Ok(None)), "{what}");
    }
    let _ = running.stop.send(());
    let _ = running.serving.await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_duplex_over_http1() {
    let running = start(&reflection()).await;
    for (protocol, codec, h2c) in SETUPS.into_iter().filter(|s| !s.2) {
        let what = format!("HTTP/1.1 {protocol:?} {codec:?}");
        let client = ServerReflectionClient::new(client(running.addr, protocol, codec, h2c));
        let mut call = client.server_reflection_info().await.expect(&what);
        call.send(symbol("test.v1.Item")).await.expect(&what);
        call.send(symbol("test.v1.Catalog")).await.expect(&what);
        call.close_send().expect(&what);
        let first = call.message().await.expect(&what).expect("first answer");
        assert_eq!(files(&first), [CATALOG, EMPTY], "{what}");
        let second = call.message().await.expect(&what).expect("second answer");
        assert_eq!(files(&second), [CATALOG], "{what}");
        assert!(matches!(call.message().await, Ok(None)), "{what}");
    }
    let _ = running.stop.send(());
    let _ = running.serving.await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_streams_end_when_the_server_drains() {
    let running = start(&reflection()).await;
    let client =
        ServerReflectionClient::new(client(running.addr, Protocol::Grpc, Codec::Proto, true));
    let mut call = client.server_reflection_info().await.expect("call");
    call.send(symbol("test.v1.Item")).await.expect("send");
    let _ = call.message().await.expect("answer").expect("an answer");
    let _ = running.stop.send(());
    let end = tokio::time::timeout(Duration::from_secs(4), call.message())
        .await
        .expect("the stream ends before the drain deadline");
    assert!(matches!(end, Ok(None)), "{end:?}");
    assert!(running.serving.await.expect("server task").drained());
}

#[test]
fn the_service_lists_itself_by_default_and_can_be_told_otherwise() {
    let bare = ReflectionService::builder().build().expect("builds");
    assert_eq!(
        bare.service_names(),
        [
            "grpc.reflection.v1.ServerReflection",
            "grpc.reflection.v1alpha.ServerReflection"
        ]
    );
    let told = ReflectionService::builder()
        .service_names(["b.B", "a.A"])
        .build()
        .expect("builds");
    assert_eq!(told.service_names(), ["a.A", "b.B"]);
}

#[test]
fn builder_errors_say_what_is_wrong() {
    let garbage = ReflectionService::builder()
        .register_file_descriptor_set(&[0xff, 0xff, 0xff])
        .expect_err("not a set");
    assert!(matches!(garbage, Error::Decode(_)), "{garbage}");

    // The fixture without its import.
    let mut set = FileDescriptorSet::decode_from_slice(&catalog_set()).expect("set");
    set.file.retain(|f| f.name.as_deref() == Some(CATALOG));
    let missing = ReflectionService::builder()
        .register_file_descriptor_set(&set.encode_to_vec())
        .expect("decodes")
        .build()
        .expect_err("empty.proto is missing");
    assert!(
        matches!(&missing, Error::MissingImport { import, .. } if import == EMPTY),
        "{missing}"
    );

    // The same file twice is fine (even without source info); a different one is not.
    let mut stripped = FileDescriptorSet::decode_from_slice(&catalog_set()).expect("set");
    for file in &mut stripped.file {
        file.source_code_info = Default::default();
    }
    ReflectionService::builder()
        .register_file_descriptor_set(&catalog_set())
        .and_then(|b| b.register_file_descriptor_set(&stripped.encode_to_vec()))
        .and_then(|b| b.build())
        .expect("the same files twice");
    let mut changed = stripped.clone();
    changed.file.retain(|f| f.name.as_deref() == Some(CATALOG));
    changed.file[0].package = Some("other.v1".into());
    let conflict = ReflectionService::builder()
        .register_file_descriptor_set(&catalog_set())
        .and_then(|b| b.register_file_descriptor_set(&changed.encode_to_vec()))
        .expect_err("a different file under the same name");
    assert!(
        matches!(&conflict, Error::ConflictingFile(name) if name == CATALOG),
        "{conflict}"
    );

    // Files that do not link.
    let mut dangling = FileDescriptorSet::decode_from_slice(&catalog_set()).expect("set");
    for file in &mut dangling.file {
        if file.name.as_deref() == Some(CATALOG) {
            file.message_type[0].field[1].type_name = Some(".test.v1.Missing".into());
        }
    }
    let invalid = ReflectionService::builder()
        .register_file_descriptor_set(&dangling.encode_to_vec())
        .and_then(|b| b.build())
        .expect_err("a dangling type name");
    assert!(matches!(invalid, Error::Invalid(_)), "{invalid}");
    assert!(invalid.to_string().contains("test.v1.Missing"), "{invalid}");
}
