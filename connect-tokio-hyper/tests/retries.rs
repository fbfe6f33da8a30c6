//! Client retries over real sockets: `unavailable` retried for idempotent methods only, the
//! attempt limit, the shared `RetryBudget`, deadlines, server-streaming calls before their
//! first message, and requests the server never processed (`REFUSED_STREAM`, connection refused, a
//! GOAWAY below the stream) retried whatever the method's idempotency.

mod common;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use connect_proto_core::Idempotency;
use connect_tokio_hyper::{H2Connection, HttpClient, Server, TokioTimer};
use connect_tower::client::{
    CallOptions, Client, ClientConfig, RetryBudget, RetryPolicy, Transport,
};
use connect_tower::codec::decode_owned;
use connect_tower::server::{
    ConnectService, Dispatch, IncomingCall, ResponseSender, server_streaming, unary,
};
use connect_tower::{Code, MethodKind, MethodSpec, Protocol, Request, Response, Status};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const FLAKY_PATH: &str = "/test.v1.RetryService/Flaky";
const FLAKY: MethodSpec = MethodSpec::new(FLAKY_PATH, MethodKind::Unary, Idempotency::Idempotent);
/// The same method as a client that does not know it is idempotent declares it.
const FLAKY_UNKNOWN: MethodSpec =
    MethodSpec::new(FLAKY_PATH, MethodKind::Unary, Idempotency::Unknown);
const FLAKY_STREAM: MethodSpec = MethodSpec::new(
    "/test.v1.RetryService/FlakyStream",
    MethodKind::ServerStreaming,
    Idempotency::Idempotent,
);
/// Always answers `ok` (not counted).
const OK: MethodSpec = MethodSpec::new(
    "/test.v1.RetryService/Ok",
    MethodKind::Unary,
    Idempotency::Idempotent,
);
static METHODS: [MethodSpec; 3] = [FLAKY, FLAKY_STREAM, OK];

/// A method as the raw HTTP/2 servers below see it: not idempotent.
const RAW: MethodSpec = MethodSpec::new(
    "/test.v1.RetryService/Raw",
    MethodKind::Unary,
    Idempotency::Unknown,
);
const RAW_STREAM: MethodSpec = MethodSpec::new(
    "/test.v1.RetryService/RawStream",
    MethodKind::ServerStreaming,
    Idempotency::Unknown,
);

/// `Flaky` and `FlakyStream` wait `delay`, then fail `unavailable` for the first `fail_first`
/// calls (counted together in `calls`), then answer `ok` (the stream: `ok#0`..`ok#2`).
#[derive(Clone)]
struct Flaky {
    fail_first: usize,
    delay: Duration,
    calls: Arc<AtomicUsize>,
}

impl Flaky {
    /// Whether this call fails (and counts it).
    async fn fails(&self) -> bool {
        let n = self.calls.fetch_add(1, Ordering::SeqCst);
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
        n < self.fail_first
    }
}

fn unavailable() -> Status {
    Status::new(Code::Unavailable, "try again")
}

impl Dispatch for Flaky {
    fn methods(&self) -> &[MethodSpec] {
        &METHODS
    }

    fn method(&self, path: &str) -> Option<MethodSpec> {
        METHODS.iter().find(|m| m.path == path).cloned()
    }

    fn dispatch(&self, call: IncomingCall) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        let this = self.clone();
        let path = call.method().path.clone();
        if path == FLAKY.path {
            Box::pin(unary(
                call,
                decode_owned::<StringValue>,
                move |_: Request<StringValue>| async move {
                    if this.fails().await {
                        return Err(unavailable());
                    }
                    Ok(Response::new(string("ok")))
                },
            ))
        } else if path == FLAKY_STREAM.path {
            Box::pin(server_streaming(
                call,
                decode_owned::<StringValue>,
                move |_: Request<StringValue>, mut sender: ResponseSender<StringValue>| async move {
                    if this.fails().await {
                        return Err(unavailable());
                    }
                    for i in 0..3 {
                        sender.send(string(&format!("ok#{i}"))).await?;
                    }
                    Ok(())
                },
            ))
        } else {
            Box::pin(unary(
                call,
                decode_owned::<StringValue>,
                |_: Request<StringValue>| async move { Ok(Response::new(string("ok"))) },
            ))
        }
    }
}

/// Serves a `Flaky`; returns the server and its call counter.
async fn serve_flaky(fail_first: usize, delay: Duration) -> (Running, Arc<AtomicUsize>) {
    let calls = Arc::new(AtomicUsize::new(0));
    let flaky = Flaky {
        fail_first,
        delay,
        calls: calls.clone(),
    };
    let service = ConnectService::builder(flaky)
        .timer(TokioTimer::new())
        .build();
    (start_service(Server::builder(), service).await, calls)
}

fn client<T: Transport>(transport: T, uri: http::Uri, protocol: Protocol) -> Client<T> {
    Client::new(transport, ClientConfig::new(uri).protocol(protocol)).timer(TokioTimer::new())
}

fn fast_policy() -> RetryPolicy {
    RetryPolicy::default().initial_backoff(Duration::from_millis(10))
}

async fn call<T: Transport>(client: &Client<T>, method: &MethodSpec) -> Result<String, Status> {
    call_with(client, method, CallOptions::default()).await
}

async fn call_with<T: Transport>(
    client: &Client<T>,
    method: &MethodSpec,
    options: CallOptions,
) -> Result<String, Status> {
    client
        .unary::<StringValue, StringValue>(method, string("hi"), options)
        .await
        .map(|response| response.into_message().value)
}

// 1. `unavailable` is retried for idempotent methods only.
#[tokio::test]
async fn unavailable_is_retried_for_idempotent_methods_only() {
    for protocol in [Protocol::Grpc, Protocol::Connect] {
        // Idempotent: two failures, then the third attempt succeeds.
        let (server, calls) = serve_flaky(2, Duration::ZERO).await;
        let retrying = client(HttpClient::plaintext_h2c(), server.http_uri(), protocol)
            .retry_policy(fast_policy());
        assert_eq!(call(&retrying, &FLAKY).await.unwrap(), "ok", "{protocol:?}");
        assert_eq!(calls.load(Ordering::SeqCst), 3, "{protocol:?}");

        // The same method declared without idempotency: one attempt.
        let (server, calls) = serve_flaky(2, Duration::ZERO).await;
        let retrying = client(HttpClient::plaintext_h2c(), server.http_uri(), protocol)
            .retry_policy(fast_policy());
        let status = call(&retrying, &FLAKY_UNKNOWN).await.unwrap_err();
        assert_eq!(status.code(), Code::Unavailable, "{protocol:?}");
        assert_eq!(calls.load(Ordering::SeqCst), 1, "{protocol:?}");

        // Idempotent, but the policy does not retry idempotent methods: one attempt.
        let (server, calls) = serve_flaky(2, Duration::ZERO).await;
        let not_idempotent = client(HttpClient::plaintext_h2c(), server.http_uri(), protocol)
            .retry_policy(fast_policy().retry_idempotent(false));
        let status = call(&not_idempotent, &FLAKY).await.unwrap_err();
        assert_eq!(status.code(), Code::Unavailable, "{protocol:?}");
        assert_eq!(calls.load(Ordering::SeqCst), 1, "{protocol:?}");
    }
}

// 2. Attempts are limited by `max_attempts`, and by the shared budget.
#[tokio::test]
async fn attempts_stop_at_max_attempts() {
    let (server, calls) = serve_flaky(usize::MAX, Duration::ZERO).await;
    let budget = RetryBudget::default();
    let retrying = client(
        HttpClient::plaintext_h2c(),
        server.http_uri(),
        Protocol::Grpc,
    )
    .retry_policy(fast_policy().max_attempts(4).budget(budget.clone()));
    let status = call(&retrying, &FLAKY).await.unwrap_err();
    assert_eq!(status.code(), Code::Unavailable);
    assert_eq!(calls.load(Ordering::SeqCst), 4);
    // Each of the 4 retryable failures took a token: 10 → 6.
    assert_eq!(budget.tokens(), 6.0);
}

#[tokio::test]
async fn a_drained_budget_stops_retries_until_successes_refill_it() {
    let (server, calls) = serve_flaky(usize::MAX, Duration::ZERO).await;
    // 4 tokens; retries only while more than 2 are left after taking one.
    let budget = RetryBudget::new(4, 0.1);
    let retrying = client(
        HttpClient::plaintext_h2c(),
        server.http_uri(),
        Protocol::Grpc,
    )
    .retry_policy(fast_policy().max_attempts(4).budget(budget.clone()));
    let attempts = |before: usize| calls.load(Ordering::SeqCst) - before;

    // Call 1: 4 → 3 (> 2: retry), 3 → 2 (not > 2: the failure is returned). 2 attempts.
    let before = calls.load(Ordering::SeqCst);
    assert_eq!(
        call(&retrying, &FLAKY).await.unwrap_err().code(),
        Code::Unavailable
    );
    assert_eq!(attempts(before), 2);
    assert_eq!(budget.tokens(), 2.0);
    // Calls 2..4: no retries any more; tokens 1, 0, 0.
    for expected in [1.0, 0.0, 0.0] {
        let before = calls.load(Ordering::SeqCst);
        assert_eq!(
            call(&retrying, &FLAKY).await.unwrap_err().code(),
            Code::Unavailable
        );
        assert_eq!(attempts(before), 1);
        assert_eq!(budget.tokens(), expected);
    }
    assert_eq!(calls.load(Ordering::SeqCst), 5);

    // Each success puts back 0.1: 30 of them bring 3.0, and a failure (→ 2.0) still gets
    // no retry; one more success (3.1) allows one (→ 2.1), then none (→ 1.1).
    for _ in 0..30 {
        assert_eq!(call(&retrying, &OK).await.unwrap(), "ok");
    }
    assert_eq!(budget.tokens(), 3.0);
    let before = calls.load(Ordering::SeqCst);
    assert_eq!(
        call(&retrying, &FLAKY).await.unwrap_err().code(),
        Code::Unavailable
    );
    assert_eq!(attempts(before), 1);
    assert_eq!(budget.tokens(), 2.0);
    for _ in 0..11 {
        assert_eq!(call(&retrying, &OK).await.unwrap(), "ok");
    }
    assert_eq!(budget.tokens(), 3.1);
    let before = calls.load(Ordering::SeqCst);
    assert_eq!(
        call(&retrying, &FLAKY).await.unwrap_err().code(),
        Code::Unavailable
    );
    assert_eq!(attempts(before), 2);
    assert_eq!(budget.tokens(), 1.1);
    assert_eq!(calls.load(Ordering::SeqCst), 8);
}

// 3. Retries never run past the call's deadline.
#[tokio::test]
async fn retries_stop_before_the_deadline() {
    let timeout = Duration::from_millis(300);
    let slack = Duration::from_millis(150);
    // Backoffs are random in [0, 200 ms] (full jitter): the first retry always starts before
    // the deadline, how many more do is random (up to max_attempts). Three runs.
    for run in 0..3 {
        let (server, calls) = serve_flaky(usize::MAX, Duration::ZERO).await;
        let policy = RetryPolicy::default()
            .initial_backoff(Duration::from_millis(200))
            .max_backoff(Duration::from_millis(200))
            .max_attempts(10);
        let retrying = client(
            HttpClient::plaintext_h2c(),
            server.http_uri(),
            Protocol::Grpc,
        )
        .retry_policy(policy);
        let started = Instant::now();
        let status = call_with(&retrying, &FLAKY, CallOptions::default().timeout(timeout))
            .await
            .unwrap_err();
        let elapsed = started.elapsed();
        let attempts = calls.load(Ordering::SeqCst);
        assert!(elapsed < timeout + slack, "run {run}: took {elapsed:?}");
        assert!(
            (2..=10).contains(&attempts),
            "run {run}: {attempts} attempts"
        );
        match status.code() {
            // The next attempt could not start before the deadline: the last failure, at
            // once (the failing attempt itself ended before the deadline).
            Code::Unavailable => assert!(elapsed < timeout + Duration::from_millis(50)),
            // An attempt started just before the deadline and was cut by it.
            Code::DeadlineExceeded => assert!(elapsed >= timeout, "run {run}: {elapsed:?}"),
            other => panic!("run {run}: {other:?} after {attempts} attempts, {elapsed:?}"),
        }
    }
}

#[tokio::test]
async fn an_attempt_cut_by_the_deadline_ends_the_call() {
    // Each attempt fails after 120 ms; no backoff: attempts start at 0, 120 and 240 ms, and the
    // third is cut by the 300 ms deadline.
    let (server, calls) = serve_flaky(usize::MAX, Duration::from_millis(120)).await;
    let policy = RetryPolicy::default()
        .initial_backoff(Duration::ZERO)
        .max_attempts(10);
    let retrying = client(
        HttpClient::plaintext_h2c(),
        server.http_uri(),
        Protocol::Grpc,
    )
    .retry_policy(policy);
    let timeout = Duration::from_millis(300);
    let started = Instant::now();
    let status = call_with(&retrying, &FLAKY, CallOptions::default().timeout(timeout))
        .await
        .unwrap_err();
    let elapsed = started.elapsed();
    assert_eq!(status.code(), Code::DeadlineExceeded);
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    assert!(
        elapsed >= timeout && elapsed < timeout + Duration::from_millis(150),
        "{elapsed:?}"
    );
}

// 7. A server-streaming call that fails before its first message is retried.
#[tokio::test]
async fn server_streaming_is_retried_before_its_first_message() {
    // The handler fails before it first waits: the server never wrote a response head of
    // its own (gRPC answers trailers-only, Connect an end-of-stream message), and nothing of
    // the response reached the application.
    let mut outcomes = Vec::new();
    for protocol in [Protocol::Grpc, Protocol::Connect] {
        let (server, calls) = serve_flaky(1, Duration::ZERO).await;
        let retrying = client(HttpClient::plaintext_h2c(), server.http_uri(), protocol)
            .retry_policy(fast_policy());
        let mut received = Vec::new();
        let result = async {
            let mut stream = retrying
                .server_streaming::<StringValue, StringValue>(
                    &FLAKY_STREAM,
                    string("s"),
                    CallOptions::default(),
                )
                .await?;
            while let Some(message) = stream.message().await? {
                received.push(message.value);
            }
            Ok::<_, Status>(())
        }
        .await;
        outcomes.push((
            protocol,
            result.map_err(|s| s.code()),
            received,
            calls.load(Ordering::SeqCst),
        ));
    }
    for (protocol, result, received, calls) in &outcomes {
        assert!(
            result.is_ok() && *received == ["ok#0", "ok#1", "ok#2"] && *calls == 2,
            "{protocol:?}: expected 3 messages after 2 attempts; all outcomes \
             (protocol, result, messages, attempts): {outcomes:?}"
        );
    }
}

// A raw HTTP/2 server, for what the real server never does.

/// `StringValue { value: "ok" }` in a gRPC envelope.
fn grpc_ok_message() -> Bytes {
    Bytes::from_static(&[0, 0, 0, 0, 4, 0x0a, 2, b'o', b'k'])
}

/// A raw h2c gRPC server answering every request with `ok`, except: the first `refuse`
/// streams (over all connections) are reset with `REFUSED_STREAM`, and with `goaway_first`
/// the first connection is sent a GOAWAY with last stream id 0 as soon as its first request's
/// HEADERS frame arrived, then closed.
struct Raw {
    addr: std::net::SocketAddr,
    streams: Arc<AtomicUsize>,
    connections: Arc<AtomicUsize>,
    accept: tokio::task::JoinHandle<()>,
}

impl Drop for Raw {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

impl Raw {
    async fn start(refuse: usize, goaway_first: bool) -> Raw {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let streams = Arc::new(AtomicUsize::new(0));
        let connections = Arc::new(AtomicUsize::new(0));
        let accept = tokio::spawn({
            let (streams, connections) = (streams.clone(), connections.clone());
            async move {
                loop {
                    let Ok((socket, _)) = listener.accept().await else {
                        return;
                    };
                    let n = connections.fetch_add(1, Ordering::SeqCst);
                    if n == 0 && goaway_first {
                        tokio::spawn(goaway_before_processing(socket));
                    } else {
                        tokio::spawn(serve_h2(socket, streams.clone(), refuse));
                    }
                }
            }
        });
        Raw {
            addr,
            streams,
            connections,
            accept,
        }
    }

    fn uri(&self) -> http::Uri {
        format!("http://{}", self.addr).parse().unwrap()
    }
}

async fn serve_h2(socket: TcpStream, streams: Arc<AtomicUsize>, refuse: usize) {
    let Ok(mut connection) = h2::server::handshake(socket).await else {
        return;
    };
    while let Some(Ok((request, mut respond))) = connection.accept().await {
        if streams.fetch_add(1, Ordering::SeqCst) < refuse {
            respond.send_reset(h2::Reason::REFUSED_STREAM);
            continue;
        }
        tokio::spawn(async move {
            let mut body = request.into_body();
            while let Some(Ok(chunk)) = body.data().await {
                let _ = body.flow_control().release_capacity(chunk.len());
            }
            let head = http::Response::builder()
                .status(200)
                .header("content-type", "application/grpc")
                .body(())
                .unwrap();
            let Ok(mut send) = respond.send_response(head, false) else {
                return;
            };
            let _ = send.send_data(grpc_ok_message(), false);
            let mut trailers = http::HeaderMap::new();
            trailers.insert("grpc-status", http::HeaderValue::from_static("0"));
            let _ = send.send_trailers(trailers);
        });
    }
}

/// Reads the client preface and frames up to the first HEADERS, then answers SETTINGS and
/// GOAWAY(last stream id 0, NO_ERROR): the request was not processed. Drains the socket until
/// the client closes it, so the GOAWAY is not lost to a TCP reset.
async fn goaway_before_processing(mut socket: TcpStream) {
    let mut preface = [0u8; 24];
    socket.read_exact(&mut preface).await.unwrap();
    assert_eq!(&preface, b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
    // An empty SETTINGS frame: length 0, type 4, flags 0, stream 0.
    socket
        .write_all(&[0, 0, 0, 4, 0, 0, 0, 0, 0])
        .await
        .unwrap();
    loop {
        let mut header = [0u8; 9];
        socket.read_exact(&mut header).await.unwrap();
        let len = u32::from_be_bytes([0, header[0], header[1], header[2]]) as usize;
        let mut payload = vec![0u8; len];
        socket.read_exact(&mut payload).await.unwrap();
        if header[3] == 1 {
            break;
        }
    }
    // GOAWAY: length 8, type 7, flags 0, stream 0; last stream id 0, error code NO_ERROR.
    let goaway = [0, 0, 8, 7, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    socket.write_all(&goaway).await.unwrap();
    socket.flush().await.unwrap();
    let mut sink = [0u8; 1024];
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        while matches!(socket.read(&mut sink).await, Ok(n) if n > 0) {}
    })
    .await;
}

/// Calls `RAW` (or `RAW_STREAM`, reading the whole stream) once over `transport`: the
/// reply or the failure's code.
async fn raw_call<T: Transport>(
    transport: T,
    uri: http::Uri,
    policy: Option<RetryPolicy>,
) -> Result<String, Code> {
    raw_call_kind(transport, uri, policy, false).await
}

async fn raw_call_kind<T: Transport>(
    transport: T,
    uri: http::Uri,
    policy: Option<RetryPolicy>,
    streaming: bool,
) -> Result<String, Code> {
    let mut client = client(transport, uri, Protocol::Grpc);
    if let Some(policy) = policy {
        client = client.retry_policy(policy);
    }
    if !streaming {
        return call(&client, &RAW).await.map_err(|status| status.code());
    }
    let result = async {
        let mut stream = client
            .server_streaming::<StringValue, StringValue>(
                &RAW_STREAM,
                string("hi"),
                CallOptions::default(),
            )
            .await?;
        let mut values = Vec::new();
        while let Some(message) = stream.message().await? {
            values.push(message.value);
        }
        Ok(values.join(","))
    };
    result.await.map_err(|status: Status| status.code())
}

/// A call of `RAW` (or `RAW_STREAM`) to a raw server refusing the first 2 streams, over the
/// pooled client or a single connection, with or without a retry policy.
async fn refused_stream_case(single: bool, streaming: bool, retry: bool) {
    let raw = Raw::start(2, false).await;
    let policy = retry.then(fast_policy);
    let result = if single {
        let connection = H2Connection::connect(&raw.uri()).await.unwrap();
        raw_call_kind(connection, raw.uri(), policy, streaming).await
    } else {
        raw_call_kind(HttpClient::plaintext_h2c(), raw.uri(), policy, streaming).await
    };
    let streams = raw.streams.load(Ordering::SeqCst);
    let what = format!("single connection: {single}, retry: {retry}, streams seen: {streams}");
    if retry {
        assert_eq!(result, Ok("ok".to_owned()), "{what}");
        assert_eq!(streams, 3, "{what}");
    } else {
        assert_eq!(result, Err(Code::Unavailable), "{what}");
        assert_eq!(streams, 1, "{what}");
    }
    assert_eq!(raw.connections.load(Ordering::SeqCst), 1, "{what}");
}

// 4. Streams refused with REFUSED_STREAM are retried, whatever the method.
#[tokio::test]
async fn refused_streams_are_retried_for_any_method() {
    for single in [false, true] {
        for retry in [true, false] {
            refused_stream_case(single, false, retry).await;
        }
    }
}

#[tokio::test]
async fn refused_server_streams_are_retried_for_any_method() {
    for single in [false, true] {
        for retry in [true, false] {
            refused_stream_case(single, true, retry).await;
        }
    }
}

// 5. A refused connection is retried, whatever the method.
#[tokio::test]
async fn refused_connections_are_retried_for_any_method() {
    // A free port, nobody listening on it yet.
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let uri: http::Uri = format!("http://{addr}").parse().unwrap();

    // Without a policy: unavailable at once.
    let started = Instant::now();
    let result = raw_call(HttpClient::plaintext_h2c(), uri.clone(), None).await;
    assert_eq!(result, Err(Code::Unavailable));
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "{:?}",
        started.elapsed()
    );

    // The server comes up 150 ms later; the retried call reaches it.
    let calls = Arc::new(AtomicUsize::new(0));
    let flaky = Flaky {
        fail_first: 0,
        delay: Duration::ZERO,
        calls: calls.clone(),
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(150)).await;
        let server = Server::builder()
            .bind(addr)
            .await
            .expect("bind the freed port");
        let service = ConnectService::builder(flaky)
            .timer(TokioTimer::new())
            .build();
        server
            .serve_with_shutdown(service, async {
                let _ = stopped.await;
            })
            .await
    });
    let policy = RetryPolicy::default()
        .initial_backoff(Duration::from_millis(100))
        .max_attempts(6);
    let retrying = client(HttpClient::plaintext_h2c(), uri, Protocol::Grpc).retry_policy(policy);
    // The unknown-idempotency declaration of the served method.
    assert_eq!(call(&retrying, &FLAKY_UNKNOWN).await.unwrap(), "ok");
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    let _ = stop.send(());
    server.await.unwrap();
}

// 6. A request above a GOAWAY's last stream id is retried, whatever the method.
#[tokio::test]
async fn requests_refused_by_goaway_are_retried_for_any_method() {
    // Without a policy: unavailable, the server processed nothing.
    let raw = Raw::start(0, true).await;
    let result = raw_call(HttpClient::plaintext_h2c(), raw.uri(), None).await;
    assert_eq!(result, Err(Code::Unavailable));
    assert_eq!(raw.connections.load(Ordering::SeqCst), 1);
    assert_eq!(raw.streams.load(Ordering::SeqCst), 0);

    // With one: the second attempt, on a new connection, succeeds.
    let raw = Raw::start(0, true).await;
    let result = raw_call(HttpClient::plaintext_h2c(), raw.uri(), Some(fast_policy())).await;
    assert_eq!(result, Ok("ok".to_owned()));
    assert_eq!(raw.connections.load(Ordering::SeqCst), 2);
    assert_eq!(raw.streams.load(Ordering::SeqCst), 1);
}
