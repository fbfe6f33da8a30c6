//! Interceptors over a real socket: the order hooks run in on the client and the server,
//! short-circuits (a failure, a canned answer), headers added on either side, message hooks
//! on every RPC type, and hooks that fail, panic or rewrite the outcome.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use common::*;
use connect_tokio_hyper::{HttpClient, Server, TokioTimer};
use connect_tower::client::{CallOptions, Client, ClientConfig, Transport};
use connect_tower::codec::EncodeMessage;
use connect_tower::intercept::{
    CallInfo, CannedResponse, InterceptFuture, Interceptor, ShortCircuit,
};
use connect_tower::observe::Side;
use connect_tower::server::ConnectService;
use connect_tower::{Code, Codec, MethodSpec, Protocol, RequestContext, Response, Status};
use http::{HeaderMap, HeaderValue};

const ALL: [Protocol; 3] = [Protocol::Connect, Protocol::Grpc, Protocol::GrpcWeb];

type Builder = connect_tower::server::ConnectServiceBuilder<Echo>;

/// Serves `Echo` with the interceptors `add` adds (first = outermost), HTTP/1.1 and h2c.
async fn serve(echo: Echo, add: impl FnOnce(Builder) -> Builder) -> Running {
    let builder = ConnectService::builder(echo).timer(TokioTimer::new());
    start_service(Server::builder(), add(builder).build()).await
}

fn client<T: Transport>(transport: T, server: &Running, protocol: Protocol) -> Client<T> {
    Client::new(
        transport,
        ClientConfig::new(server.http_uri()).protocol(protocol),
    )
    .timer(TokioTimer::new())
}

fn h2c(server: &Running, protocol: Protocol) -> Client<HttpClient> {
    client(HttpClient::plaintext_h2c(), server, protocol)
}

/// A unary call with default options.
async fn call<T: Transport>(
    client: &Client<T>,
    method: &MethodSpec,
    value: &str,
) -> Result<Response<StringValue>, Status> {
    client
        .unary(method, string(value), CallOptions::default())
        .await
}

fn decode(call: &CallInfo, message: &[u8]) -> String {
    call.codec
        .decode::<StringValue>(message, usize::MAX)
        .expect("a StringValue")
        .value
}

fn canned(codec: Codec, text: &str) -> CannedResponse {
    CannedResponse::new([string(text).encode(codec).expect("encodes")])
}

fn header(value: &'static str) -> HeaderValue {
    HeaderValue::from_static(value)
}

/// A shared, ordered record of hook runs.
#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<String>>>);

impl Log {
    fn push(&self, entry: String) {
        self.0.lock().unwrap().push(entry);
    }

    fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

/// Records every hook as `"<name>:<hook>"` (and `"<name>:wrong-side"` if the side is not
/// `side`); answers the call with a canned `answer` if it has one.
struct Recording {
    name: &'static str,
    side: Side,
    log: Log,
    answer: Option<&'static str>,
}

impl Recording {
    fn new(name: &'static str, side: Side, log: &Log) -> Self {
        Recording {
            name,
            side,
            log: log.clone(),
            answer: None,
        }
    }

    fn record(&self, side: Side, hook: &str) {
        if side != self.side {
            self.log.push(format!("{}:wrong-side", self.name));
        }
        self.log.push(format!("{}:{hook}", self.name));
    }
}

impl Interceptor for Recording {
    fn on_request<'a>(&'a self, ctx: &'a mut RequestContext) -> InterceptFuture<'a> {
        Box::pin(async move {
            self.record(ctx.side(), "on_request");
            match self.answer {
                Some(text) => Err(canned(ctx.codec(), text).into()),
                None => Ok(()),
            }
        })
    }

    fn on_request_message(&self, call: &CallInfo, _: &[u8]) -> Result<(), Status> {
        self.record(call.side, "on_request_message");
        Ok(())
    }

    fn on_response_headers(&self, call: &CallInfo, _: &mut HeaderMap) -> Result<(), Status> {
        self.record(call.side, "on_response_headers");
        Ok(())
    }

    fn on_response_message(&self, call: &CallInfo, _: &[u8]) -> Result<(), Status> {
        self.record(call.side, "on_response_message");
        Ok(())
    }

    fn on_end(&self, call: &CallInfo, _: &mut Result<HeaderMap, Status>) {
        self.record(call.side, "on_end");
    }
}

/// `names` x `hooks`, hook-major: `["a:h1", "b:h1", "a:h2", "b:h2"]`.
fn expected(hooks: &[(&str, &[&str])]) -> Vec<String> {
    hooks
        .iter()
        .flat_map(|(hook, names)| names.iter().map(move |name| format!("{name}:{hook}")))
        .collect()
}

const FORWARD: &[&str] = &["a", "b", "c"];
const REVERSE: &[&str] = &["c", "b", "a"];

#[tokio::test]
async fn hooks_run_in_order_on_client_and_server() {
    let server_log = Log::default();
    let server = serve(Echo::default(), |builder| {
        FORWARD.iter().fold(builder, |builder, name| {
            builder.interceptor(Recording::new(name, Side::Server, &server_log))
        })
    })
    .await;
    let client_log = Log::default();
    for protocol in ALL {
        let mut client = h2c(&server, protocol);
        for name in FORWARD {
            client = client.interceptor(Recording::new(name, Side::Client, &client_log));
        }
        let reply = call(&client, &ECHO, "hi")
            .await
            .unwrap_or_else(|status| panic!("{protocol:?}: {status:?}"));
        assert_eq!(reply.message().value, "hi");

        // A unary request's message passes the message hooks before the request hooks run.
        let client_unary = expected(&[
            ("on_request_message", FORWARD),
            ("on_request", FORWARD),
            ("on_response_headers", REVERSE),
            ("on_response_message", REVERSE),
            ("on_end", REVERSE),
        ]);
        assert_eq!(client_log.take(), client_unary, "client, {protocol:?}");
        // The server runs the request hooks, then the message hooks as the handler reads.
        let server_unary = expected(&[
            ("on_request", FORWARD),
            ("on_request_message", FORWARD),
            ("on_response_headers", REVERSE),
            ("on_response_message", REVERSE),
            ("on_end", REVERSE),
        ]);
        assert_eq!(server_log.take(), server_unary, "server, {protocol:?}");

        // A streaming request runs the request hooks when the call starts.
        let mut collect = client
            .client_streaming::<StringValue, StringValue>(&COLLECT, CallOptions::default())
            .await
            .unwrap();
        assert_eq!(client_log.take(), expected(&[("on_request", FORWARD)]));
        collect.send(string("x")).await.unwrap();
        assert_eq!(
            client_log.take(),
            expected(&[("on_request_message", FORWARD)])
        );
        assert_eq!(collect.finish().await.unwrap().message().value, "x");
        let client_rest = expected(&[
            ("on_response_headers", REVERSE),
            ("on_response_message", REVERSE),
            ("on_end", REVERSE),
        ]);
        assert_eq!(
            client_log.take(),
            client_rest,
            "client streaming, {protocol:?}"
        );
        assert_eq!(
            server_log.take(),
            server_unary,
            "server streaming, {protocol:?}"
        );
    }
    assert!(server.shutdown().await.drained());
}

/// Counts the server's calls (its `on_request` runs) and, through `Echo::started`, `Sleep`
/// handlers that ran.
#[derive(Clone, Default)]
struct CallCounter(Arc<AtomicUsize>);

impl Interceptor for CallCounter {
    fn on_request<'a>(&'a self, _: &'a mut RequestContext) -> InterceptFuture<'a> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Box::pin(async { Ok(()) })
    }
}

/// Ends every call in `on_request`: with `fail`, or a canned answer with headers and
/// trailers.
struct ShortCircuiting {
    fail: Option<Code>,
}

impl Interceptor for ShortCircuiting {
    fn on_request<'a>(&'a self, ctx: &'a mut RequestContext) -> InterceptFuture<'a> {
        Box::pin(async move {
            if let Some(code) = self.fail {
                return Err(ShortCircuit::Fail(Status::new(code, "short-circuited")));
            }
            let mut headers = HeaderMap::new();
            headers.insert("x-canned", header("headers"));
            let mut trailers = HeaderMap::new();
            trailers.insert("x-canned-trailer", header("trailers"));
            let answer = canned(ctx.codec(), &format!("canned by {}", ctx.side()))
                .with_headers(headers)
                .with_trailers(trailers);
            Err(answer.into())
        })
    }
}

#[tokio::test]
async fn client_short_circuits_send_nothing() {
    let calls = CallCounter::default();
    let server = serve(Echo::default(), |b| b.interceptor(calls.clone())).await;
    for protocol in ALL {
        let failing = h2c(&server, protocol).interceptor(ShortCircuiting {
            fail: Some(Code::PermissionDenied),
        });
        let status = call(&failing, &ECHO, "x")
            .await
            .expect_err("short-circuited");
        assert_eq!(status.code(), Code::PermissionDenied, "{protocol:?}");
        assert_eq!(status.message(), "short-circuited", "{protocol:?}");

        let answering = h2c(&server, protocol).interceptor(ShortCircuiting { fail: None });
        let reply = call(&answering, &ECHO, "x")
            .await
            .unwrap_or_else(|status| panic!("{protocol:?}: {status:?}"));
        assert_eq!(reply.message().value, "canned by client", "{protocol:?}");
        assert_eq!(reply.headers().get("x-canned").unwrap(), "headers");
        assert_eq!(
            reply.trailers().get("x-canned-trailer").unwrap(),
            "trailers"
        );
    }
    assert_eq!(
        calls.0.load(Ordering::SeqCst),
        0,
        "no request reached the server"
    );
    // The counter does count calls that arrive.
    call(&h2c(&server, Protocol::Connect), &ECHO, "x")
        .await
        .unwrap();
    assert_eq!(calls.0.load(Ordering::SeqCst), 1);
    assert!(server.shutdown().await.drained());
}

#[tokio::test]
async fn only_interceptors_outside_a_short_circuit_see_the_response() {
    let server = serve(Echo::default(), |b| b).await;
    let log = Log::default();
    let mut answering = Recording::new("b", Side::Client, &log);
    answering.answer = Some("from b");
    let client = h2c(&server, Protocol::Connect)
        .interceptor(Recording::new("a", Side::Client, &log))
        .interceptor(answering)
        .interceptor(Recording::new("c", Side::Client, &log));

    let reply = call(&client, &ECHO, "x").await.unwrap();
    assert_eq!(reply.message().value, "from b");
    // A unary request's message passes every message hook before `on_request` runs (see
    // `Interceptor::on_request`), so `c` sees that, and nothing else.
    let unary = expected(&[
        ("on_request_message", FORWARD),
        ("on_request", &["a", "b"]),
        ("on_response_headers", &["a"]),
        ("on_response_message", &["a"]),
        ("on_end", &["a"]),
    ]);
    assert_eq!(log.take(), unary);

    // A streaming request: `c` sees nothing at all.
    let collect = client
        .client_streaming::<StringValue, StringValue>(&COLLECT, CallOptions::default())
        .await
        .unwrap();
    assert_eq!(collect.finish().await.unwrap().message().value, "from b");
    let streaming = expected(&[
        ("on_request", &["a", "b"]),
        ("on_response_headers", &["a"]),
        ("on_response_message", &["a"]),
        ("on_end", &["a"]),
    ]);
    assert_eq!(log.take(), streaming);
    assert!(server.shutdown().await.drained());
}

/// Fails calls without an `authorization` header.
struct RequireAuth;

impl Interceptor for RequireAuth {
    fn on_request<'a>(&'a self, ctx: &'a mut RequestContext) -> InterceptFuture<'a> {
        Box::pin(async move {
            match ctx.headers().contains_key(http::header::AUTHORIZATION) {
                true => Ok(()),
                false => Err(Status::new(Code::Unauthenticated, "who are you?").into()),
            }
        })
    }
}

#[tokio::test]
async fn server_short_circuits_skip_the_handler() {
    let echo = Echo::default();
    let server = serve(echo.clone(), |b| b.interceptor(RequireAuth)).await;
    for protocol in ALL {
        let status = call(&h2c(&server, protocol), &SLEEP, "0")
            .await
            .expect_err("no authorization");
        assert_eq!(status.code(), Code::Unauthenticated, "{protocol:?}");
        assert_eq!(status.message(), "who are you?", "{protocol:?}");
    }
    assert_eq!(
        echo.started.load(Ordering::SeqCst),
        0,
        "the handler never ran"
    );
    let authorized = CallOptions::new().header(http::header::AUTHORIZATION, header("Bearer t"));
    let reply = h2c(&server, Protocol::Grpc)
        .unary::<StringValue, StringValue>(&SLEEP, string("0"), authorized)
        .await
        .unwrap();
    assert_eq!(reply.message().value, "slept");
    assert_eq!(echo.started.load(Ordering::SeqCst), 1);
    assert!(server.shutdown().await.drained());

    let echo = Echo::default();
    let server = serve(echo.clone(), |b| {
        b.interceptor(ShortCircuiting { fail: None })
    })
    .await;
    for protocol in ALL {
        let reply = call(&h2c(&server, protocol), &SLEEP, "0")
            .await
            .unwrap_or_else(|status| panic!("{protocol:?}: {status:?}"));
        assert_eq!(reply.message().value, "canned by server", "{protocol:?}");
        assert_eq!(reply.headers().get("x-canned").unwrap(), "headers");
        assert_eq!(
            reply.trailers().get("x-canned-trailer").unwrap(),
            "trailers"
        );
    }
    assert_eq!(
        echo.started.load(Ordering::SeqCst),
        0,
        "the handler never ran"
    );
    assert!(server.shutdown().await.drained());
}

/// A header's value, or `<none>`.
fn value(headers: &HeaderMap, name: &str) -> String {
    headers
        .get(name)
        .map_or("<none>".into(), |v| v.to_str().unwrap().into())
}

/// Client side: awaits, then adds `x-token`; records the `x-served-by` response header.
struct ClientHeaders(Log);

impl Interceptor for ClientHeaders {
    fn on_request<'a>(&'a self, ctx: &'a mut RequestContext) -> InterceptFuture<'a> {
        Box::pin(async move {
            // An asynchronous token source.
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
            tokio::task::yield_now().await;
            ctx.headers_mut().insert("x-token", header("abc"));
            Ok(())
        })
    }

    fn on_response_headers(&self, _: &CallInfo, headers: &mut HeaderMap) -> Result<(), Status> {
        self.0.push(value(headers, "x-served-by"));
        Ok(())
    }
}

/// Server side: records `x-token`; adds `x-served-by` to the response headers.
#[derive(Clone, Default)]
struct ServerHeaders(Log);

impl Interceptor for ServerHeaders {
    fn on_request<'a>(&'a self, ctx: &'a mut RequestContext) -> InterceptFuture<'a> {
        self.0.push(value(ctx.headers(), "x-token"));
        Box::pin(async { Ok(()) })
    }

    fn on_response_headers(&self, _: &CallInfo, headers: &mut HeaderMap) -> Result<(), Status> {
        headers.insert("x-served-by", header("interceptor"));
        Ok(())
    }
}

#[tokio::test]
async fn headers_added_by_one_side_reach_the_other() {
    let tokens = Log::default();
    let server = serve(Echo::default(), |b| {
        b.interceptor(ServerHeaders(tokens.clone()))
    })
    .await;
    for protocol in ALL {
        let served_by = Log::default();
        let client = h2c(&server, protocol).interceptor(ClientHeaders(served_by.clone()));
        let reply = call(&client, &ECHO, "x")
            .await
            .unwrap_or_else(|status| panic!("{protocol:?}: {status:?}"));
        assert_eq!(reply.headers().get("x-served-by").unwrap(), "interceptor");
        let mut stream = client
            .server_streaming::<StringValue, StringValue>(
                &REPEAT,
                string("r"),
                CallOptions::default(),
            )
            .await
            .unwrap();
        while stream.message().await.unwrap().is_some() {}
        assert_eq!(
            served_by.take(),
            ["interceptor", "interceptor"],
            "{protocol:?}"
        );
        assert_eq!(tokens.take(), ["abc", "abc"], "{protocol:?}");
    }
    assert!(server.shutdown().await.drained());
}

/// Counts request and response messages.
#[derive(Clone, Default)]
struct Counting {
    requests: Arc<AtomicUsize>,
    responses: Arc<AtomicUsize>,
}

impl Counting {
    /// `(requests, responses)` since the last look.
    fn take(&self) -> (usize, usize) {
        (
            self.requests.swap(0, Ordering::SeqCst),
            self.responses.swap(0, Ordering::SeqCst),
        )
    }
}

impl Interceptor for Counting {
    fn on_request_message(&self, _: &CallInfo, _: &[u8]) -> Result<(), Status> {
        self.requests.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    fn on_response_message(&self, _: &CallInfo, _: &[u8]) -> Result<(), Status> {
        self.responses.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

/// Client streaming (5), server streaming (3 replies) and bidi (4 and 4) through counters on
/// both sides.
async fn count_messages<T: Transport>(
    transport: T,
    server: &Running,
    server_count: &Counting,
    protocol: Protocol,
    full_duplex: bool,
) {
    let client_count = Counting::default();
    let client = client(transport, server, protocol).interceptor(client_count.clone());
    let values = ["1", "2", "3", "4", "5"];

    let mut collect = client
        .client_streaming::<StringValue, StringValue>(&COLLECT, CallOptions::default())
        .await
        .unwrap();
    for value in values {
        collect.send(string(value)).await.unwrap();
    }
    assert_eq!(collect.finish().await.unwrap().message().value, "1,2,3,4,5");
    assert_eq!(
        client_count.take(),
        (5, 1),
        "client streaming, client, {protocol:?}"
    );
    assert_eq!(
        server_count.take(),
        (5, 1),
        "client streaming, server, {protocol:?}"
    );

    let mut repeat = client
        .server_streaming::<StringValue, StringValue>(&REPEAT, string("r"), CallOptions::default())
        .await
        .unwrap();
    let mut received = 0;
    while repeat.message().await.unwrap().is_some() {
        received += 1;
    }
    assert_eq!(received, REPEAT_COUNT);
    assert_eq!(
        client_count.take(),
        (1, REPEAT_COUNT),
        "server streaming, client, {protocol:?}"
    );
    assert_eq!(
        server_count.take(),
        (1, REPEAT_COUNT),
        "server streaming, server, {protocol:?}"
    );

    let mut chat = client
        .bidi_streaming::<StringValue, StringValue>(&CHAT, CallOptions::default())
        .await
        .unwrap();
    let mut replies = Vec::new();
    for value in &values[..4] {
        chat.send(string(value)).await.unwrap();
        if full_duplex {
            replies.push(chat.message().await.unwrap().expect("a reply").value);
        }
    }
    chat.close_send().unwrap();
    while let Some(reply) = chat.message().await.unwrap() {
        replies.push(reply.value);
    }
    assert_eq!(
        replies,
        ["re: 1", "re: 2", "re: 3", "re: 4"],
        "{protocol:?}"
    );
    assert_eq!(client_count.take(), (4, 4), "bidi, client, {protocol:?}");
    assert_eq!(server_count.take(), (4, 4), "bidi, server, {protocol:?}");
}

#[tokio::test]
async fn message_hooks_count_every_message_both_ways() {
    let server_count = Counting::default();
    let server = serve(Echo::default(), |b| b.interceptor(server_count.clone())).await;
    for protocol in ALL {
        count_messages(
            HttpClient::plaintext_h2c(),
            &server,
            &server_count,
            protocol,
            true,
        )
        .await;
    }
    for protocol in [Protocol::Connect, Protocol::GrpcWeb] {
        count_messages(
            HttpClient::plaintext_http1(),
            &server,
            &server_count,
            protocol,
            false,
        )
        .await;
    }
    assert!(server.shutdown().await.drained());
}

/// Server side: rejects request messages containing `bad`; panics in `on_request` for `Peer`
/// (while polled) and `Sleep` (before returning its future).
struct Strict;

impl Interceptor for Strict {
    fn on_request<'a>(&'a self, ctx: &'a mut RequestContext) -> InterceptFuture<'a> {
        if ctx.method().path == SLEEP.path {
            panic!("on_request panicked");
        }
        Box::pin(async move {
            if ctx.method().path == PEER.path {
                panic!("on_request's future panicked");
            }
            Ok(())
        })
    }

    fn on_request_message(&self, call: &CallInfo, message: &[u8]) -> Result<(), Status> {
        match decode(call, message).contains("bad") {
            true => Err(Status::new(Code::InvalidArgument, "bad request")),
            false => Ok(()),
        }
    }
}

/// Client side: rejects response messages containing `secret`; maps `resource_exhausted`
/// to `unavailable` in `on_end`.
struct Picky;

impl Interceptor for Picky {
    fn on_response_message(&self, call: &CallInfo, message: &[u8]) -> Result<(), Status> {
        match decode(call, message).contains("secret") {
            true => Err(Status::new(Code::DataLoss, "secret response")),
            false => Ok(()),
        }
    }

    fn on_end(&self, _: &CallInfo, outcome: &mut Result<HeaderMap, Status>) {
        if let Err(status) = outcome {
            if status.code() == Code::ResourceExhausted {
                let message = format!("mapped: {}", status.message());
                *status = Status::new(Code::Unavailable, message);
            }
        }
    }
}

#[tokio::test]
async fn failing_and_panicking_hooks_fail_only_their_call() {
    let echo = Echo::default();
    let server = serve(echo.clone(), |b| b.interceptor(Strict)).await;
    for protocol in ALL {
        let client = h2c(&server, protocol).interceptor(Picky);

        let status = call(&client, &ECHO, "a bad one")
            .await
            .expect_err("rejected request");
        assert_eq!(status.code(), Code::InvalidArgument, "{protocol:?}");
        assert_eq!(status.message(), "bad request", "{protocol:?}");

        let mut collect = client
            .client_streaming::<StringValue, StringValue>(&COLLECT, CallOptions::default())
            .await
            .unwrap();
        collect.send(string("fine")).await.unwrap();
        // The server may fail the call before this is sent.
        let _ = collect.send(string("bad")).await;
        let status = collect.finish().await.expect_err("rejected stream");
        assert_eq!(status.code(), Code::InvalidArgument, "{protocol:?}");
        assert_eq!(status.message(), "bad request", "{protocol:?}");

        let status = call(&client, &ECHO, "top secret")
            .await
            .expect_err("rejected response");
        assert_eq!(status.code(), Code::DataLoss, "{protocol:?}");
        assert_eq!(status.message(), "secret response", "{protocol:?}");
        let mut repeat = client
            .server_streaming::<StringValue, StringValue>(
                &REPEAT,
                string("secret"),
                CallOptions::default(),
            )
            .await
            .unwrap();
        let status = repeat.message().await.expect_err("rejected stream message");
        assert_eq!(status.code(), Code::DataLoss, "{protocol:?}");

        for method in [&PEER, &SLEEP] {
            let status = call(&client, method, "0").await.expect_err("panicked");
            assert_eq!(
                status.code(),
                Code::Internal,
                "{protocol:?} {}",
                method.path
            );
        }

        let status = call(&client, &FAIL, "no quota")
            .await
            .expect_err("Fail fails");
        assert_eq!(status.code(), Code::Unavailable, "{protocol:?}");
        assert_eq!(status.message(), "mapped: no quota", "{protocol:?}");

        // The server keeps serving.
        let reply = call(&client, &ECHO, "good").await.unwrap();
        assert_eq!(reply.message().value, "good", "{protocol:?}");
    }
    assert_eq!(echo.started.load(Ordering::SeqCst), 0, "Sleep never ran");
    assert!(server.shutdown().await.drained());
}
