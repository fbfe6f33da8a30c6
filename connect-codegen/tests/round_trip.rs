//! Generated servers and clients, run in process.
//!
//! The fixture's `acme.v1.Greeter` is implemented here (four RPC kinds; the other methods keep
//! their default `unimplemented` bodies) and served with `connect_tower`'s `ConnectService`.
//! Two clients call it:
//!
//! - the protocol client of `connect_proto_core` (`ClientCall`) driven by hand (see
//!   `support`), which checks the server against the wire rules independently of
//!   `connect_tower`'s client;
//! - the generated `GreeterClient`, with the service itself as its transport.

#![deny(warnings)]

mod support;

use connect_proto_core::{CallOptions, ClientConfig, Codec, Protocol};
use connect_tower::server::{ConnectService, ResponseSender, Streaming};
use connect_tower::{Code, ErrorDetail, MethodSpec, Request, Response, Status};
use http::{HeaderMap, HeaderValue, Uri};
use support::{Outcome, PROTOCOLS};

/// The generated module tree, as a user includes it.
mod proto {
    include!("golden/_include.rs");
}

use proto::acme::v1::clashes::{self, Clashes, ClashesClient, ClashesServer};
use proto::acme::v1::greeter::{self, Greeter, GreeterClient, GreeterServer};
use proto::acme::v1::{
    HelloReply, HelloRequest, HelloRequestOwnedView, KeywordReply, KeywordRequest,
    KeywordRequestOwnedView,
};

/// The name that makes `SayHello` fail with details.
const FAILING_NAME: &str = "error";
/// The response header and trailer `SayHello` adds.
const GREETED_HEADER: &str = "x-greeted";
const GREETED_TRAILER: &str = "x-greeting-count";

/// The test implementation: four RPC kinds, the rest left to the defaults.
struct Greetings;

impl Greeter for Greetings {
    async fn say_hello(
        &self,
        request: Request<HelloRequestOwnedView>,
    ) -> Result<Response<HelloReply>, Status> {
        let name = request.message().name();
        if name == FAILING_NAME {
            return Err(
                Status::new(Code::FailedPrecondition, "no greeting for errors")
                    .with_detail(ErrorDetail::from_message(&reply("a detail"))),
            );
        }
        let mut headers = HeaderMap::new();
        headers.insert(GREETED_HEADER, HeaderValue::from_static("yes"));
        let mut trailers = HeaderMap::new();
        trailers.insert(GREETED_TRAILER, HeaderValue::from_static("1"));
        Ok(Response::new(reply(&format!("Hello, {name}!")))
            .with_headers(headers)
            .with_trailers(trailers))
    }

    async fn say_hello_stream(
        &self,
        request: Request<HelloRequestOwnedView>,
        mut responses: ResponseSender<HelloReply>,
    ) -> Result<(), Status> {
        let name = request.message().name().to_string();
        for greeting in ["Hello", "Hi", "Hey"] {
            responses
                .send(reply(&format!("{greeting}, {name}!")))
                .await?;
        }
        if name == FAILING_NAME {
            return Err(Status::new(Code::Aborted, "stopped after three"));
        }
        Ok(())
    }

    async fn collect_hellos(
        &self,
        request: Request<Streaming<HelloRequestOwnedView>>,
    ) -> Result<Response<HelloReply>, Status> {
        let mut stream = request.into_message();
        let mut names = Vec::new();
        while let Some(message) = stream.message().await? {
            names.push(message.name().to_string());
        }
        Ok(Response::new(reply(&format!(
            "Hello, {}!",
            names.join(" and ")
        ))))
    }

    async fn chat(
        &self,
        request: Request<Streaming<HelloRequestOwnedView>>,
        mut responses: ResponseSender<HelloReply>,
    ) -> Result<(), Status> {
        let mut stream = request.into_message();
        while let Some(message) = stream.message().await? {
            let answer = reply(&format!("Hello, {}!", message.name()));
            responses.send(answer).await?;
        }
        Ok(())
    }
}

/// Implements the methods of `acme.v1.Clashes` whose names moved aside; each answers with a
/// header naming the Rust method that ran.
struct Clashing;

/// The header `Clashing` names the handler in.
const HANDLER_HEADER: &str = "x-handler";

fn handled_by(handler: &'static str) -> Response<KeywordReply> {
    let mut headers = HeaderMap::new();
    headers.insert(HANDLER_HEADER, HeaderValue::from_static(handler));
    Response::new(KeywordReply::default()).with_headers(headers)
}

impl Clashes for Clashing {
    async fn new_(
        &self,
        _request: Request<KeywordRequestOwnedView>,
    ) -> Result<Response<KeywordReply>, Status> {
        Ok(handled_by("new_"))
    }

    async fn ping(
        &self,
        _request: Request<KeywordRequestOwnedView>,
    ) -> Result<Response<KeywordReply>, Status> {
        Ok(handled_by("ping"))
    }

    async fn ping_with_options(
        &self,
        _request: Request<KeywordRequestOwnedView>,
    ) -> Result<Response<KeywordReply>, Status> {
        Ok(handled_by("ping_with_options"))
    }

    async fn clone_(
        &self,
        _request: Request<KeywordRequestOwnedView>,
    ) -> Result<Response<KeywordReply>, Status> {
        Ok(handled_by("clone_"))
    }
}

fn reply(message: &str) -> HelloReply {
    HelloReply {
        message: message.to_string(),
        ..Default::default()
    }
}

fn hello(name: &str) -> HelloRequest {
    HelloRequest {
        name: name.to_string(),
        ..Default::default()
    }
}

fn service() -> ConnectService<GreeterServer<Greetings>> {
    ConnectService::new(GreeterServer::new(Greetings))
}

/// Calls the greeter through the protocol client.
async fn call(
    protocol: Protocol,
    codec: Codec,
    method: &MethodSpec,
    requests: &[HelloRequest],
    options: CallOptions,
) -> Outcome<HelloReply> {
    support::call(&service(), protocol, codec, method, requests, options).await
}

fn texts(messages: &[HelloReply]) -> Vec<&str> {
    messages.iter().map(|m| m.message.as_str()).collect()
}

#[tokio::test]
async fn unary_over_every_protocol() {
    for protocol in PROTOCOLS {
        let outcome = call(
            protocol,
            Codec::Proto,
            &greeter::SAY_HELLO,
            &[hello("Ada")],
            CallOptions::new(),
        )
        .await;
        let trailers = outcome.result.expect("success");
        assert_eq!(texts(&outcome.messages), ["Hello, Ada!"], "{protocol:?}");
        assert_eq!(outcome.headers[GREETED_HEADER], "yes", "{protocol:?}");
        assert_eq!(trailers[GREETED_TRAILER], "1", "{protocol:?}");
    }
}

#[tokio::test]
async fn unary_with_json_and_connect_get() {
    // `SayHello` has no side effects, so the Connect client uses GET (its default).
    let get = call(
        Protocol::Connect,
        Codec::Json,
        &greeter::SAY_HELLO,
        &[hello("Grace")],
        CallOptions::new(),
    )
    .await;
    assert_eq!(get.http_method, http::Method::GET);
    assert!(get.result.is_ok(), "{:?}", get.result);
    assert_eq!(texts(&get.messages), ["Hello, Grace!"]);

    for protocol in PROTOCOLS {
        let outcome = call(
            protocol,
            Codec::Json,
            &greeter::SAY_HELLO,
            &[hello("Grace")],
            CallOptions::new().use_get(false),
        )
        .await;
        assert_eq!(outcome.http_method, http::Method::POST);
        assert!(outcome.result.is_ok(), "{protocol:?}: {:?}", outcome.result);
        assert_eq!(texts(&outcome.messages), ["Hello, Grace!"], "{protocol:?}");
    }
}

#[tokio::test]
async fn server_streaming_over_every_protocol() {
    for protocol in PROTOCOLS {
        let outcome = call(
            protocol,
            Codec::Proto,
            &greeter::SAY_HELLO_STREAM,
            &[hello("Ada")],
            CallOptions::new(),
        )
        .await;
        assert!(outcome.result.is_ok(), "{protocol:?}: {:?}", outcome.result);
        assert_eq!(
            texts(&outcome.messages),
            ["Hello, Ada!", "Hi, Ada!", "Hey, Ada!"],
            "{protocol:?}"
        );
    }
}

#[tokio::test]
async fn client_streaming_over_every_protocol() {
    for protocol in PROTOCOLS {
        let outcome = call(
            protocol,
            Codec::Proto,
            &greeter::COLLECT_HELLOS,
            &[hello("Ada"), hello("Grace"), hello("Edsger")],
            CallOptions::new(),
        )
        .await;
        assert!(outcome.result.is_ok(), "{protocol:?}: {:?}", outcome.result);
        assert_eq!(
            texts(&outcome.messages),
            ["Hello, Ada and Grace and Edsger!"],
            "{protocol:?}"
        );
    }
}

#[tokio::test]
async fn bidi_streaming_over_every_protocol() {
    for protocol in PROTOCOLS {
        let outcome = call(
            protocol,
            Codec::Proto,
            &greeter::CHAT,
            &[hello("Ada"), hello("Grace")],
            CallOptions::new(),
        )
        .await;
        assert!(outcome.result.is_ok(), "{protocol:?}: {:?}", outcome.result);
        assert_eq!(
            texts(&outcome.messages),
            ["Hello, Ada!", "Hello, Grace!"],
            "{protocol:?}"
        );
    }
}

#[tokio::test]
async fn errors_carry_code_message_and_details() {
    for protocol in PROTOCOLS {
        let outcome = call(
            protocol,
            Codec::Proto,
            &greeter::SAY_HELLO,
            &[hello(FAILING_NAME)],
            CallOptions::new(),
        )
        .await;
        assert!(outcome.messages.is_empty(), "{protocol:?}");
        let status = outcome.result.expect_err("failure");
        assert_eq!(status.code(), Code::FailedPrecondition, "{protocol:?}");
        assert_eq!(status.message(), "no greeting for errors", "{protocol:?}");
        let details = status.details();
        assert_eq!(details.len(), 1, "{protocol:?}");
        let detail: HelloReply = details[0]
            .to_message()
            .expect("a HelloReply detail")
            .expect("decode detail");
        assert_eq!(detail.message, "a detail", "{protocol:?}");
    }
}

#[tokio::test]
async fn a_stream_can_fail_after_messages() {
    for protocol in PROTOCOLS {
        let outcome = call(
            protocol,
            Codec::Proto,
            &greeter::SAY_HELLO_STREAM,
            &[hello(FAILING_NAME)],
            CallOptions::new(),
        )
        .await;
        assert_eq!(outcome.messages.len(), 3, "{protocol:?}");
        let status = outcome.result.expect_err("failure");
        assert_eq!(status.code(), Code::Aborted, "{protocol:?}");
        assert_eq!(status.message(), "stopped after three", "{protocol:?}");
    }
}

#[tokio::test]
async fn methods_without_an_implementation_are_unimplemented() {
    for protocol in PROTOCOLS {
        let outcome = call(
            protocol,
            Codec::Proto,
            &greeter::UPDATE_GREETING,
            &[hello("Ada")],
            CallOptions::new(),
        )
        .await;
        let status = outcome.result.expect_err("unimplemented");
        assert_eq!(status.code(), Code::Unimplemented, "{protocol:?}");
        assert_eq!(
            status.message(),
            "acme.v1.Greeter.UpdateGreeting is not implemented",
            "{protocol:?}"
        );
    }
}

#[tokio::test]
async fn unknown_methods_are_unimplemented() {
    const MISSING: MethodSpec = MethodSpec::new(
        "/acme.v1.Greeter/Missing",
        connect_tower::MethodKind::Unary,
        connect_tower::Idempotency::Unknown,
    );
    for protocol in PROTOCOLS {
        let outcome = call(
            protocol,
            Codec::Proto,
            &MISSING,
            &[hello("Ada")],
            CallOptions::new(),
        )
        .await;
        let status = outcome.result.expect_err("unimplemented");
        assert_eq!(status.code(), Code::Unimplemented, "{protocol:?}");
    }
}

#[test]
fn the_dispatcher_lists_and_finds_every_method() {
    use connect_tower::server::Dispatch;
    #[allow(deprecated)]
    let all = [
        greeter::SAY_HELLO.clone(),
        greeter::SAY_HELLO_STREAM.clone(),
        greeter::COLLECT_HELLOS.clone(),
        greeter::CHAT.clone(),
        greeter::UPDATE_GREETING.clone(),
        greeter::LEGACY_HELLO.clone(),
        greeter::UNDOCUMENTED.clone(),
    ];
    let server = GreeterServer::new(Greetings);
    assert_eq!(server.methods(), all);
    for spec in all {
        assert_eq!(server.method(spec.path()), Some(spec.clone()));
    }
    assert_eq!(server.method("/acme.v1.Greeter/Missing"), None);
    assert_eq!(server.method("acme.v1.Greeter/SayHello"), None);
}

/// The generated client, with the in-process service as its transport.
fn client(
    protocol: Protocol,
    codec: Codec,
) -> GreeterClient<ConnectService<GreeterServer<Greetings>>> {
    let config = ClientConfig::new(Uri::from_static("http://localhost"))
        .protocol(protocol)
        .codec(codec);
    GreeterClient::new(connect_tower::client::Client::new(service(), config))
}

async fn generated_client_unary(codec: Codec) {
    for protocol in PROTOCOLS {
        let client = client(protocol, codec);
        let mut response = client.say_hello(hello("Ada")).await.expect("say_hello");
        assert_eq!(response.message().message, "Hello, Ada!", "{protocol:?}");
        assert_eq!(
            response.headers_mut()[GREETED_HEADER],
            "yes",
            "{protocol:?}"
        );
        assert_eq!(
            response.trailers_mut()[GREETED_TRAILER],
            "1",
            "{protocol:?}"
        );

        let status = client
            .say_hello_with_options(hello(FAILING_NAME), CallOptions::new().use_get(false))
            .await
            .expect_err("failure");
        assert_eq!(status.code(), Code::FailedPrecondition, "{protocol:?}");
        assert_eq!(status.details().len(), 1, "{protocol:?}");

        let status = client
            .update_greeting(hello("Ada"))
            .await
            .expect_err("unimplemented");
        assert_eq!(status.code(), Code::Unimplemented, "{protocol:?}");
    }
}

async fn generated_client_server_streaming(codec: Codec) {
    for protocol in PROTOCOLS {
        let mut stream = client(protocol, codec)
            .say_hello_stream(hello("Ada"))
            .await
            .expect("say_hello_stream");
        let mut received = Vec::new();
        while let Some(message) = stream.message().await.expect("message") {
            received.push(message);
        }
        assert_eq!(
            texts(&received),
            ["Hello, Ada!", "Hi, Ada!", "Hey, Ada!"],
            "{protocol:?}"
        );
    }
}

async fn generated_client_client_streaming(codec: Codec) {
    for protocol in PROTOCOLS {
        let mut call = client(protocol, codec)
            .collect_hellos()
            .await
            .expect("collect_hellos");
        call.send(hello("Ada")).await.expect("send");
        call.send(hello("Grace")).await.expect("send");
        let response = call.finish().await.expect("finish");
        assert_eq!(
            response.message().message,
            "Hello, Ada and Grace!",
            "{protocol:?}"
        );
    }
}

async fn generated_client_bidi_streaming(codec: Codec) {
    for protocol in PROTOCOLS {
        let mut call = client(protocol, codec).chat().await.expect("chat");
        // Full duplex: each answer arrives before the next request is sent.
        for name in ["Ada", "Grace"] {
            call.send(hello(name)).await.expect("send");
            let answer = call.message().await.expect("message").expect("an answer");
            assert_eq!(answer.message, format!("Hello, {name}!"), "{protocol:?}");
        }
        call.close_send().expect("close send");
        assert_eq!(call.message().await.expect("end"), None, "{protocol:?}");
    }
}

/// Responses read as zero-copy views through the client underneath the generated one.
async fn client_views(codec: Codec) {
    use connect_tower::codec::View;
    for protocol in PROTOCOLS {
        let client = client(protocol, codec);
        let response = client
            .inner()
            .unary::<_, View<HelloReply>>(&greeter::SAY_HELLO, hello("Ada"), CallOptions::new())
            .await
            .expect("say_hello");
        assert_eq!(response.message().message(), "Hello, Ada!", "{protocol:?}");
        assert_eq!(response.headers()[GREETED_HEADER], "yes", "{protocol:?}");
        if codec == Codec::Proto {
            // The view borrows the received message: its text lies inside the view's bytes.
            let bytes = response.message().as_ref().bytes().as_ptr_range();
            let text = response.message().message().as_bytes().as_ptr_range();
            assert!(
                bytes.start <= text.start && text.end <= bytes.end,
                "{protocol:?}"
            );
        }

        let mut stream = client
            .inner()
            .server_streaming::<_, View<HelloReply>>(
                &greeter::SAY_HELLO_STREAM,
                hello("Ada"),
                CallOptions::new(),
            )
            .await
            .expect("say_hello_stream");
        let mut received = Vec::new();
        while let Some(view) = stream.message().await.expect("message") {
            received.push(view.message().to_string());
        }
        assert_eq!(
            received,
            ["Hello, Ada!", "Hi, Ada!", "Hey, Ada!"],
            "{protocol:?}"
        );
    }
}

#[tokio::test]
async fn client_views_proto() {
    client_views(Codec::Proto).await;
}

#[tokio::test]
async fn client_views_json() {
    client_views(Codec::Json).await;
}

#[tokio::test]
async fn generated_client_unary_json() {
    generated_client_unary(Codec::Json).await;
}

#[tokio::test]
async fn generated_client_unary_proto() {
    generated_client_unary(Codec::Proto).await;
}

#[tokio::test]
async fn generated_client_server_streaming_json() {
    generated_client_server_streaming(Codec::Json).await;
}

#[tokio::test]
async fn generated_client_server_streaming_proto() {
    generated_client_server_streaming(Codec::Proto).await;
}

#[tokio::test]
async fn generated_client_client_streaming_json() {
    generated_client_client_streaming(Codec::Json).await;
}

#[tokio::test]
async fn generated_client_client_streaming_proto() {
    generated_client_client_streaming(Codec::Proto).await;
}

#[tokio::test]
async fn generated_client_bidi_streaming_json() {
    generated_client_bidi_streaming(Codec::Json).await;
}

#[tokio::test]
async fn generated_client_bidi_streaming_proto() {
    generated_client_bidi_streaming(Codec::Proto).await;
}

/// Greeter and Clashes behind one router.
fn routed() -> ConnectService<connect_tower::server::Routes> {
    ConnectService::new(
        connect_tower::server::Routes::new()
            .service(GreeterServer::new(Greetings))
            .service(ClashesServer::new(Clashing)),
    )
}

#[tokio::test]
async fn generated_servers_share_a_router() {
    let service = routed();
    for protocol in PROTOCOLS {
        let greeting: Outcome<HelloReply> = support::call(
            &service,
            protocol,
            Codec::Proto,
            &greeter::SAY_HELLO,
            &[hello("Ada")],
            CallOptions::new(),
        )
        .await;
        assert_eq!(texts(&greeting.messages), ["Hello, Ada!"], "{protocol:?}");

        let expected = [
            (&clashes::NEW, Some("new_")),
            (&clashes::PING, Some("ping")),
            (&clashes::PING_WITH_OPTIONS, Some("ping_with_options")),
            (&clashes::CLONE, Some("clone_")),
            (&clashes::INNER, None),
        ];
        for (method, handler) in expected {
            let outcome: Outcome<KeywordReply> = support::call(
                &service,
                protocol,
                Codec::Proto,
                method,
                &[KeywordRequest::default()],
                CallOptions::new(),
            )
            .await;
            match handler {
                Some(handler) => {
                    assert!(outcome.result.is_ok(), "{method:?}: {:?}", outcome.result);
                    assert_eq!(outcome.headers[HANDLER_HEADER], handler, "{protocol:?}");
                }
                None => assert_eq!(
                    outcome.result.expect_err("unimplemented").code(),
                    Code::Unimplemented,
                    "{protocol:?}"
                ),
            }
        }
    }
}

#[tokio::test]
async fn generated_client_methods_with_clashing_names() {
    let config = ClientConfig::new(Uri::from_static("http://localhost")).codec(Codec::Json);
    let client = ClashesClient::new(connect_tower::client::Client::new(routed(), config));
    let calls = [
        ("new_", client.new_(KeywordRequest::default()).await),
        ("ping", client.ping(KeywordRequest::default()).await),
        (
            "ping",
            client
                .ping_with_options_(KeywordRequest::default(), CallOptions::new())
                .await,
        ),
        (
            "ping_with_options",
            client.ping_with_options(KeywordRequest::default()).await,
        ),
        (
            "ping_with_options",
            client
                .ping_with_options_with_options(KeywordRequest::default(), CallOptions::new())
                .await,
        ),
        ("clone_", client.clone_(KeywordRequest::default()).await),
    ];
    for (handler, result) in calls {
        let mut response = result.expect("call");
        assert_eq!(response.headers_mut()[HANDLER_HEADER], handler);
    }
    // `Clone` is the trait's again.
    let _copy: ClashesClient<_> = client.clone();
}
