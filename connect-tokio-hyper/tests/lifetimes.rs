//! How long calls live, through the real server and client: deadlines that nobody configured
//! a timer for, deadlines that propagate from a handler to the calls it makes, panics that stay
//! inside their call, and graceful shutdown seen by handlers, streams and clients.

mod common;

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use connect_proto_core::{Idempotency, ServerConfig};
use connect_tokio_hyper::{HttpClient, Server};
use connect_tower::client::{CallOptions, Client, ClientConfig};
use connect_tower::codec::decode_owned;
use connect_tower::intercept::InterceptFuture;
use connect_tower::server::{
    ConnectService, Dispatch, IncomingCall, Interceptor, ResponseSender, server_streaming, unary,
};
use connect_tower::{Code, MethodKind, MethodSpec, Protocol, Request, RequestContext, Response};
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;

const TIMEOUT: MethodSpec = MethodSpec::new(
    "/probe.v1.Probe/Timeout",
    MethodKind::Unary,
    Idempotency::Unknown,
);
const RELAY: MethodSpec = MethodSpec::new(
    "/probe.v1.Probe/Relay",
    MethodKind::Unary,
    Idempotency::Unknown,
);
const PANIC: MethodSpec = MethodSpec::new(
    "/probe.v1.Probe/Panic",
    MethodKind::Unary,
    Idempotency::Unknown,
);
const DROP_PANIC: MethodSpec = MethodSpec::new(
    "/probe.v1.Probe/DropPanic",
    MethodKind::Unary,
    Idempotency::Unknown,
);
const TICKS: MethodSpec = MethodSpec::new(
    "/probe.v1.Probe/Ticks",
    MethodKind::ServerStreaming,
    Idempotency::Unknown,
);
const POLITE_TICKS: MethodSpec = MethodSpec::new(
    "/probe.v1.Probe/PoliteTicks",
    MethodKind::ServerStreaming,
    Idempotency::Unknown,
);
static PROBE_METHODS: [MethodSpec; 6] = [TIMEOUT, RELAY, PANIC, DROP_PANIC, TICKS, POLITE_TICKS];

/// Probes for call lifetimes:
/// - `Timeout` answers with the timeout header it received (or `none`);
/// - `Relay` calls `Timeout` on `target` (no timeout of its own) and answers with its answer;
/// - `Panic` panics; `DropPanic` sleeps forever holding a value whose `drop` panics;
/// - `Ticks` sends a tick every 20 ms, forever; `PoliteTicks` does the same until the server
///   starts draining, then sends `bye` and ends successfully.
#[derive(Clone, Default)]
struct Probe {
    target: Arc<Mutex<Option<http::Uri>>>,
    /// Handlers running now (a guard in each).
    live: Arc<AtomicUsize>,
    /// Handlers that started.
    started: Arc<AtomicUsize>,
}

struct Live(Arc<AtomicUsize>);

impl Drop for Live {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

struct PanicOnDrop;

impl Drop for PanicOnDrop {
    fn drop(&mut self) {
        panic!("a handler's drop panicked");
    }
}

impl Probe {
    fn enter(&self) -> Live {
        self.started.fetch_add(1, Ordering::SeqCst);
        self.live.fetch_add(1, Ordering::SeqCst);
        Live(self.live.clone())
    }
}

fn timeout_header(ctx: &RequestContext) -> String {
    ["grpc-timeout", "connect-timeout-ms"]
        .iter()
        .find_map(|name| ctx.headers().get(*name))
        .map_or("none".to_owned(), |v| v.to_str().unwrap_or("?").to_owned())
}

impl Dispatch for Probe {
    fn methods(&self) -> &[MethodSpec] {
        &PROBE_METHODS
    }

    fn method(&self, path: &str) -> Option<MethodSpec> {
        PROBE_METHODS.iter().find(|m| m.path == path).cloned()
    }

    fn dispatch(&self, call: IncomingCall) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        let probe = self.clone();
        let path = call.method().path.clone();
        if path == TIMEOUT.path {
            Box::pin(unary(
                call,
                decode_owned::<StringValue>,
                move |request: Request<StringValue>| async move {
                    let _live = probe.enter();
                    Ok(Response::new(string(&timeout_header(request.context()))))
                },
            ))
        } else if path == RELAY.path {
            Box::pin(unary(
                call,
                decode_owned::<StringValue>,
                move |_: Request<StringValue>| async move {
                    let _live = probe.enter();
                    let target = probe.target.lock().unwrap().clone().expect("a target");
                    let client = Client::new(
                        HttpClient::plaintext_h2c(),
                        ClientConfig::new(target).protocol(Protocol::Grpc),
                    );
                    client
                        .unary::<StringValue, StringValue>(&TIMEOUT, string(""), CallOptions::new())
                        .await
                },
            ))
        } else if path == PANIC.path {
            Box::pin(unary(
                call,
                decode_owned::<StringValue>,
                move |_: Request<StringValue>| async move {
                    let _live = probe.enter();
                    if probe.live.load(Ordering::SeqCst) > 0 {
                        panic!("the handler panicked");
                    }
                    Ok(Response::new(string("unreachable")))
                },
            ))
        } else if path == DROP_PANIC.path {
            Box::pin(unary(
                call,
                decode_owned::<StringValue>,
                move |_: Request<StringValue>| async move {
                    let _live = probe.enter();
                    let _bomb = PanicOnDrop;
                    std::future::pending::<()>().await;
                    Ok(Response::new(string("unreachable")))
                },
            ))
        } else {
            let polite = path == POLITE_TICKS.path;
            Box::pin(server_streaming(
                call,
                decode_owned::<StringValue>,
                move |request: Request<StringValue>, mut sender: ResponseSender<StringValue>| async move {
                    let _live = probe.enter();
                    let shutdown = request.context().shutdown();
                    let mut draining = std::pin::pin!(shutdown.draining());
                    loop {
                        tokio::select! {
                            () = &mut draining, if polite => {
                                sender.send(string("bye")).await?;
                                return Ok(());
                            }
                            () = tokio::time::sleep(Duration::from_millis(20)) => {
                                sender.send(string("tick")).await?;
                            }
                        }
                    }
                },
            ))
        }
    }
}

/// Rejects nothing, but panics when a request says so.
struct PanickyInterceptor;

impl Interceptor for PanickyInterceptor {
    fn on_request<'a>(&'a self, ctx: &'a mut RequestContext) -> InterceptFuture<'a> {
        Box::pin(async move {
            // Panics while polled, the way an async hook would.
            if ctx.headers().contains_key("x-panic") {
                panic!("the interceptor panicked");
            }
            Ok(())
        })
    }
}

fn grpc_client(uri: http::Uri) -> Client<HttpClient> {
    Client::new(
        HttpClient::plaintext_h2c(),
        ClientConfig::new(uri).protocol(Protocol::Grpc),
    )
}

/// `ConnectService::new` and `Client::new` install no timer; deadlines are enforced anyway.
#[tokio::test]
async fn deadlines_hold_without_any_timer_configured() {
    let echo = Echo::default();
    let server = start_service(Server::builder(), ConnectService::new(echo.clone())).await;
    for protocol in [Protocol::Connect, Protocol::Grpc, Protocol::GrpcWeb] {
        let client = Client::new(
            HttpClient::plaintext_h2c(),
            ClientConfig::new(server.http_uri()).protocol(protocol),
        );
        let started = Instant::now();
        let status = client
            .unary::<StringValue, StringValue>(
                &SLEEP,
                string("10000"),
                CallOptions::new().timeout(Duration::from_millis(200)),
            )
            .await
            .expect_err("the deadline passes first");
        assert_eq!(status.code(), Code::DeadlineExceeded, "{protocol:?}");
        assert!(started.elapsed() < Duration::from_secs(2));
    }
    let start = Instant::now();
    while echo.abandoned.load(Ordering::SeqCst) < 3 {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "handlers were not dropped"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    server.shutdown().await;
}

/// A client built the README's way (no timer) against a server that accepts connections and
/// then never answers: the call ends with `deadline_exceeded` by its timeout.
#[tokio::test]
async fn a_client_gets_its_deadline_from_a_server_that_never_answers() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    // Accepts, reads everything, answers nothing (a half-open peer, as far as calls can tell).
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut sink = [0u8; 1024];
                while matches!(socket.read(&mut sink).await, Ok(n) if n > 0) {}
            });
        }
    });
    let uri: http::Uri = format!("http://{addr}").parse().unwrap();
    for (protocol, transport) in [
        (Protocol::Grpc, HttpClient::plaintext_h2c()),
        (Protocol::Connect, HttpClient::plaintext_http1()),
    ] {
        let config = ClientConfig::new(uri.clone())
            .protocol(protocol)
            .default_timeout(Some(Duration::from_millis(300)));
        let client = Client::new(transport, config);
        let started = Instant::now();
        let status = client
            .unary::<StringValue, StringValue>(&ECHO, string("hello?"), CallOptions::new())
            .await
            .expect_err("nobody answers");
        assert_eq!(
            status.code(),
            Code::DeadlineExceeded,
            "{protocol:?}: {status}"
        );
        let after = started.elapsed();
        assert!(
            after >= Duration::from_millis(290) && after < Duration::from_secs(2),
            "{protocol:?}: ended after {after:?}"
        );
    }
}

#[tokio::test]
async fn max_timeout_bounds_calls_that_send_no_timeout() {
    let service = ConnectService::builder(Echo::default())
        .config(ServerConfig::new().max_timeout(Some(Duration::from_millis(200))))
        .build();
    let server = start_service(Server::builder(), service).await;
    let client = grpc_client(server.http_uri());
    let started = Instant::now();
    let status = client
        .unary::<StringValue, StringValue>(&SLEEP, string("10000"), CallOptions::new())
        .await
        .expect_err("the server's bound applies");
    assert_eq!(status.code(), Code::DeadlineExceeded);
    assert!(started.elapsed() < Duration::from_secs(2));
    server.shutdown().await;
}

/// A call made from a handler carries the time its caller has left, unless it opts out.
#[tokio::test]
async fn handlers_pass_their_deadline_on() {
    let probe = Probe::default();
    let server = start_service(Server::builder(), ConnectService::new(probe.clone())).await;
    *probe.target.lock().unwrap() = Some(server.http_uri());
    let client = grpc_client(server.http_uri());

    let reply = client
        .unary::<StringValue, StringValue>(
            &RELAY,
            string(""),
            CallOptions::new().timeout(Duration::from_secs(2)),
        )
        .await
        .unwrap();
    let seen = reply.message().value.clone();
    let micros: u64 = seen
        .strip_suffix('u')
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("a timeout in microseconds, not {seen:?}"));
    assert!(
        micros <= 2_000_000 && micros > 1_000_000,
        "the relayed call announced {seen}, not the time left of 2 s"
    );
    // Without a deadline upstream, the relayed call has none either.
    let reply = client
        .unary::<StringValue, StringValue>(&RELAY, string(""), CallOptions::new())
        .await
        .unwrap();
    assert_eq!(reply.message().value, "none");
    // Opting out at the outer call does not matter to the inner one; the inner call's own
    // opt-out is tested in connect-tower. Calls outside any handler see no current deadline.
    assert_eq!(connect_tower::rt::current_deadline(), None);
    server.shutdown().await;
}

/// A handler that panics, an interceptor that panics, a handler whose `drop` panics and an
/// error hook that panics: each call that exists ends `internal` (or by its deadline), and the
/// next call on the same HTTP/2 connection is served.
#[tokio::test]
async fn panics_stay_inside_their_call() {
    let probe = Probe::default();
    let service = ConnectService::builder(probe.clone())
        .interceptor(PanickyInterceptor)
        .build();
    let builder = Server::builder()
        .header_read_timeout(Some(Duration::from_millis(100)))
        .on_error(|_| panic!("the error hook panicked"));
    let server = start_service(builder, service).await;
    let client = grpc_client(server.http_uri());
    let healthy = || async {
        client
            .unary::<StringValue, StringValue>(&TIMEOUT, string(""), CallOptions::new())
            .await
            .expect("the next call on the connection is served")
    };

    let status = client
        .unary::<StringValue, StringValue>(&PANIC, string(""), CallOptions::new())
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Internal, "{status}");
    healthy().await;

    let options = CallOptions::new().header(
        http::HeaderName::from_static("x-panic"),
        http::HeaderValue::from_static("1"),
    );
    let status = client
        .unary::<StringValue, StringValue>(&TIMEOUT, string(""), options)
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Internal, "{status}");
    healthy().await;

    let status = client
        .unary::<StringValue, StringValue>(
            &DROP_PANIC,
            string(""),
            CallOptions::new().timeout(Duration::from_millis(100)),
        )
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status}");
    healthy().await;

    // A silent connection is reported to the hook, which panics.
    let _silent = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    healthy().await;
    server.shutdown().await;
}

/// A stream open across shutdown: handlers that watch for it end their stream their way;
/// those that do not get `unavailable` when the drain deadline passes. Every handler has
/// ended when `serve_with_shutdown` returns.
#[tokio::test]
async fn streams_open_across_shutdown_end_with_a_status() {
    let probe = Probe::default();
    let builder = Server::builder().drain_timeout(Duration::from_millis(200));
    let mut server = start_service(builder, ConnectService::new(probe.clone())).await;
    let mut outcomes = Vec::new();
    for (protocol, transport) in [
        (Protocol::Grpc, HttpClient::plaintext_h2c()),
        (Protocol::Connect, HttpClient::plaintext_h2c()),
        (Protocol::GrpcWeb, HttpClient::plaintext_http1()),
    ] {
        let client = Client::new(
            transport,
            ClientConfig::new(server.http_uri()).protocol(protocol),
        );
        for method in [TICKS, POLITE_TICKS] {
            let mut stream = client
                .server_streaming::<StringValue, StringValue>(
                    &method,
                    string(""),
                    CallOptions::new(),
                )
                .await
                .unwrap();
            assert_eq!(stream.message().await.unwrap().unwrap().value, "tick");
            outcomes.push(tokio::spawn(async move {
                let mut last = String::new();
                loop {
                    match stream.message().await {
                        Ok(Some(message)) => last = message.value,
                        Ok(None) => return (protocol, method.path.clone(), Ok(last)),
                        Err(status) => return (protocol, method.path.clone(), Err(status.code())),
                    }
                }
            }));
        }
    }
    let started = Instant::now();
    server.begin_shutdown();
    let shutdown = server.shutdown().await;
    let took = started.elapsed();
    assert!(took < Duration::from_secs(3), "shutdown took {took:?}");
    assert_eq!(
        probe.live.load(Ordering::SeqCst),
        0,
        "every handler has ended"
    );
    assert!(!shutdown.drained());
    for outcome in outcomes {
        let (protocol, path, result) = outcome.await.unwrap();
        if path == POLITE_TICKS.path {
            assert_eq!(result, Ok("bye".to_owned()), "{protocol:?} {path}");
        } else {
            assert_eq!(result, Err(Code::Unavailable), "{protocol:?} {path}");
        }
    }
}

/// Fifty clients calling through a graceful shutdown: every call either completed, or failed
/// `unavailable` without its handler having run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_is_lost_in_a_graceful_shutdown_under_load() {
    let probe = Probe::default();
    let mut server = start_service(Server::builder(), ConnectService::new(probe.clone())).await;
    let uri = server.http_uri();
    let ok = Arc::new(AtomicUsize::new(0));
    let unavailable = Arc::new(AtomicUsize::new(0));
    let mut clients = Vec::new();
    for index in 0..60 {
        let (protocol, transport) = match index % 3 {
            0 => (Protocol::Grpc, HttpClient::plaintext_h2c()),
            1 => (Protocol::Connect, HttpClient::plaintext_http1()),
            _ => (Protocol::GrpcWeb, HttpClient::plaintext_h2c()),
        };
        let client = Client::new(transport, ClientConfig::new(uri.clone()).protocol(protocol));
        let (ok, unavailable) = (ok.clone(), unavailable.clone());
        clients.push(tokio::spawn(async move {
            let mut others = Vec::new();
            let deadline = Instant::now() + Duration::from_millis(800);
            while Instant::now() < deadline {
                match client
                    .unary::<StringValue, StringValue>(&TIMEOUT, string(""), CallOptions::new())
                    .await
                {
                    Ok(_) => {
                        ok.fetch_add(1, Ordering::SeqCst);
                    }
                    Err(status) if status.code() == Code::Unavailable => {
                        unavailable.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                    Err(status) => others.push(status),
                }
            }
            others
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    server.begin_shutdown();
    let shutdown = server.shutdown().await;
    assert!(shutdown.drained());
    for client in clients {
        let others = client.await.unwrap();
        assert!(others.is_empty(), "calls failed otherwise: {others:?}");
    }
    let ok = ok.load(Ordering::SeqCst);
    assert!(ok > 0 && unavailable.load(Ordering::SeqCst) > 0);
    assert_eq!(
        probe.started.load(Ordering::SeqCst),
        ok,
        "a handler ran for a call that did not succeed"
    );
}
