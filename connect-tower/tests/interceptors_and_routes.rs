//! Interceptors and routing.
//!
//! - Interceptors: request hooks run in the order added, response-header hooks in reverse and
//!   see the handler's headers; header and extension changes reach the handler; a rejection's
//!   status (with metadata) reaches the client of every RPC kind and the handler never runs; a
//!   panicking hook ends only its call, with `internal`.
//! - Routes: several services behind one `Dispatch`, each path to its service, the last
//!   service added wins a shared path, unknown methods are `unimplemented` (Connect: HTTP 404
//!   with an `unimplemented` body; gRPC and gRPC-Web: `grpc-status: 12`), and a method a
//!   service declares but does not implement is `unimplemented` too (Connect: HTTP 501).

mod support;

use buffa_types::google::protobuf::StringValue;
use connect_tower::client::CallOptions;
use connect_tower::intercept::{CallInfo, InterceptFuture};
use connect_tower::server::{ConnectService, Dispatch, Interceptor, Routes};
use connect_tower::{
    Code, Codec, Idempotency, MethodKind, MethodSpec, Request, RequestContext, Response, Status,
};
use http::{HeaderMap, HeaderValue};
use support::*;

/// Records its hooks in a log and appends its name to `x-chain` (request) and
/// `x-chain-response` (response headers).
struct Recorder {
    name: &'static str,
    log: Log,
}

fn append(headers: &mut HeaderMap, name: &'static str, suffix: &str) {
    let before = headers
        .get(name)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    headers.insert(
        name,
        HeaderValue::from_str(&format!("{before}{suffix}")).unwrap(),
    );
}

impl Interceptor for Recorder {
    fn on_request<'a>(&'a self, ctx: &'a mut RequestContext) -> InterceptFuture<'a> {
        self.log.push(format!("{} request", self.name));
        append(ctx.headers_mut(), "x-chain", self.name);
        Box::pin(std::future::ready(Ok(())))
    }

    fn on_response_headers(&self, _call: &CallInfo, headers: &mut HeaderMap) -> Result<(), Status> {
        let saw_handler = headers.contains_key("x-handler");
        self.log.push(format!(
            "{} response (handler headers: {saw_handler})",
            self.name
        ));
        append(headers, "x-chain-response", self.name);
        Ok(())
    }
}

/// A user id an interceptor derives from the request, for handlers.
#[derive(Clone, Debug)]
struct UserId(String);

/// Rejects calls without `authorization`; otherwise records the user in the extensions.
struct RequireAuth;

impl Interceptor for RequireAuth {
    fn on_request<'a>(&'a self, ctx: &'a mut RequestContext) -> InterceptFuture<'a> {
        // An async check would be awaited here; this one needs no waiting.
        let outcome = match ctx.headers().get("authorization") {
            Some(token) => {
                let user = UserId(token.to_str().unwrap().to_owned());
                ctx.extensions_mut().insert(user);
                Ok(())
            }
            None => {
                let mut metadata = HeaderMap::new();
                metadata.insert("x-auth-hint", HeaderValue::from_static("send a token"));
                Err(Status::new(Code::Unauthenticated, "missing credentials")
                    .with_metadata(metadata)
                    .into())
            }
        };
        Box::pin(std::future::ready(outcome))
    }
}

/// Panics in the hook named by the request's `x-panic-in` header.
struct Volatile;

impl Interceptor for Volatile {
    fn on_request<'a>(&'a self, ctx: &'a mut RequestContext) -> InterceptFuture<'a> {
        if ctx
            .headers()
            .get("x-panic-in")
            .is_some_and(|v| v == "request")
        {
            panic!("the request hook panicked");
        }
        if ctx
            .headers()
            .get("x-panic-in")
            .is_some_and(|v| v == "response")
        {
            ctx.extensions_mut().insert(PanicInResponse);
        }
        Box::pin(std::future::ready(Ok(())))
    }

    fn on_response_headers(&self, _call: &CallInfo, headers: &mut HeaderMap) -> Result<(), Status> {
        if headers.contains_key("x-panic-please") {
            panic!("the response hook panicked");
        }
        Ok(())
    }
}

#[derive(Clone)]
struct PanicInResponse;

fn header(value: &'static str) -> HeaderValue {
    HeaderValue::from_static(value)
}

#[test]
fn interceptors_run_in_order_and_response_hooks_in_reverse() {
    let timer = ManualTimer::new();
    let log = Log::default();
    let handler_log = log.clone();
    let echo = Echo::new().on_unary(move |request| {
        handler_log.push("handler");
        async move {
            let chain = request.headers()["x-chain"].to_str().unwrap().to_owned();
            let mut headers = HeaderMap::new();
            headers.insert("x-handler", header("yes"));
            Ok(Response::new(StringValue::from(chain)).with_headers(headers))
        }
    });
    let service = ConnectService::builder(echo)
        .timer(timer.clone())
        .interceptor(Recorder {
            name: "A",
            log: log.clone(),
        })
        .interceptor(Recorder {
            name: "B",
            log: log.clone(),
        })
        .build();
    let client = client(service, Wire::Connect, Codec::Proto, &timer);
    let response =
        block_on(client.unary::<StringValue, StringValue>(&UNARY, sv(""), CallOptions::new()))
            .unwrap();
    assert_eq!(
        response.message().value,
        "AB",
        "request hooks in order, changes visible"
    );
    assert_eq!(response.headers()["x-chain-response"], "BA");
    assert_eq!(
        log.entries(),
        [
            "A request",
            "B request",
            "handler",
            "B response (handler headers: true)",
            "A response (handler headers: true)",
        ]
    );
}

#[test]
fn interceptor_extensions_and_headers_reach_the_handler() {
    let timer = ManualTimer::new();
    let echo = Echo::new().on_unary(|request| async move {
        let user = request
            .context()
            .extensions()
            .get::<UserId>()
            .map(|u| u.0.clone());
        Ok(Response::new(StringValue::from(format!("{user:?}"))))
    });
    let service = ConnectService::builder(echo)
        .timer(timer.clone())
        .interceptor(RequireAuth)
        .build();
    let client = client(service, Wire::Grpc, Codec::Proto, &timer);
    let options = CallOptions::new().header(http::header::AUTHORIZATION, header("alice"));
    let response =
        block_on(client.unary::<StringValue, StringValue>(&UNARY, sv(""), options)).unwrap();
    assert_eq!(response.message().value, "Some(\"alice\")");
}

#[test]
fn a_rejection_reaches_clients_of_every_kind_and_the_handler_never_runs() {
    for wire in PROTOCOLS {
        let timer = ManualTimer::new();
        let echo = Echo::new();
        let dispatched = echo.dispatched.clone();
        let service = ConnectService::builder(echo)
            .timer(timer.clone())
            .interceptor(RequireAuth)
            .build();
        let client = client(service, wire, Codec::Proto, &timer);
        let options = CallOptions::new;
        let check = |status: Status, kind: &str| {
            assert_eq!(
                status.code(),
                Code::Unauthenticated,
                "{wire:?} {kind}: {status:?}"
            );
            assert_eq!(status.message(), "missing credentials", "{wire:?} {kind}");
            assert_eq!(
                status.metadata()["x-auth-hint"],
                "send a token",
                "{wire:?} {kind}"
            );
        };

        let unary = block_on(client.unary::<StringValue, StringValue>(&UNARY, sv(""), options()));
        check(unary.unwrap_err(), "unary");
        let server_stream = block_on(async {
            let mut stream = client
                .server_streaming::<StringValue, StringValue>(&SERVER_STREAM, sv("a,b"), options())
                .await?;
            stream.message().await
        });
        check(server_stream.unwrap_err(), "server streaming");
        let client_stream = block_on(async {
            let mut call = client
                .client_streaming::<StringValue, StringValue>(&CLIENT_STREAM, options())
                .await?;
            // The call may already have ended: a send then fails, and `finish` reports why.
            let _ = call.send(sv("a")).await;
            call.finish().await
        });
        check(client_stream.unwrap_err(), "client streaming");
        let bidi = block_on(async {
            let mut call = client
                .bidi_streaming::<StringValue, StringValue>(&BIDI, options())
                .await?;
            let _ = call.send(sv("a")).await;
            call.message().await
        });
        check(bidi.unwrap_err(), "bidi");
        assert_eq!(dispatched.get(), 0, "{wire:?}: no handler ran");

        let authorized = options().header(http::header::AUTHORIZATION, header("bob"));
        let served =
            block_on(client.unary::<StringValue, StringValue>(&UNARY, sv("ok"), authorized));
        assert_eq!(served.unwrap().message().value, "ok", "{wire:?}");
        assert_eq!(dispatched.get(), 1, "{wire:?}");
    }
}

#[test]
fn a_panicking_interceptor_yields_internal_and_the_service_keeps_serving() {
    for wire in PROTOCOLS {
        let timer = ManualTimer::new();
        let echo = Echo::new().on_unary(|request| async move {
            let mut headers = HeaderMap::new();
            if request
                .context()
                .extensions()
                .get::<PanicInResponse>()
                .is_some()
            {
                headers.insert("x-panic-please", header("1"));
            }
            Ok(Response::new(request.into_message()).with_headers(headers))
        });
        let dispatched = echo.dispatched.clone();
        let service = ConnectService::builder(echo)
            .timer(timer.clone())
            .interceptor(Volatile)
            .build();
        let client = client(service, wire, Codec::Proto, &timer);
        let call = |hook: Option<&'static str>| {
            let mut options = CallOptions::new();
            if let Some(hook) = hook {
                options = options.header(http::HeaderName::from_static("x-panic-in"), header(hook));
            }
            block_on(client.unary::<StringValue, StringValue>(&UNARY, sv("fine"), options))
        };

        let status = call(Some("request")).unwrap_err();
        assert_eq!(status.code(), Code::Internal, "{wire:?}: {status:?}");
        assert_eq!(dispatched.get(), 0, "{wire:?}: the handler never ran");
        let status = call(Some("response")).unwrap_err();
        assert_eq!(status.code(), Code::Internal, "{wire:?}: {status:?}");
        assert_eq!(call(None).unwrap().message().value, "fine", "{wire:?}");
    }
}

#[test]
fn routes_send_each_path_to_its_service() {
    for wire in PROTOCOLS {
        let timer = ManualTimer::new();
        let echo = Echo::new();
        let dispatched = echo.dispatched.clone();
        let routes = Routes::new().service(echo).service(Greeter);
        let client = client(serve(routes, &timer), wire, Codec::Proto, &timer);

        let greeting = block_on(client.unary::<StringValue, StringValue>(
            &GREET,
            sv("bob"),
            CallOptions::new(),
        ));
        assert_eq!(greeting.unwrap().message().value, "hello, bob", "{wire:?}");
        assert_eq!(dispatched.get(), 0, "{wire:?}: the greeter served it");

        let echoed = block_on(client.unary::<StringValue, StringValue>(
            &UNARY,
            sv("bob"),
            CallOptions::new(),
        ));
        assert_eq!(echoed.unwrap().message().value, "bob", "{wire:?}");
        let streamed = block_on(collect_server_stream(&client, &SERVER_STREAM, sv("p,q")));
        assert_eq!(values(&streamed.unwrap()), ["p", "q"], "{wire:?}");
        assert_eq!(dispatched.get(), 2, "{wire:?}");
    }
}

#[test]
fn routes_list_every_method_and_the_last_service_wins_a_shared_path() {
    let timer = ManualTimer::new();
    let first = Echo::new();
    let second = Echo::new().on_unary(|_request| async { Ok(Response::new(sv("second"))) });
    let (first_count, second_count) = (first.dispatched.clone(), second.dispatched.clone());
    let routes = Routes::new()
        .service(first)
        .service(Greeter)
        .service(second);

    let mut paths: Vec<&str> = routes.methods().iter().map(|m| m.path()).collect();
    let (echo, greet) = (Echo::new(), GREET);
    let mut expected: Vec<&str> = echo.methods().iter().map(|m| m.path()).collect();
    expected.push(greet.path());
    expected.sort_unstable();
    assert_eq!(paths, expected, "each path once, sorted");
    paths.dedup();
    assert_eq!(paths.len(), expected.len());
    assert_eq!(routes.method(GREET.path()), Some(GREET));
    assert_eq!(routes.method("/test.v1.Echo/Nope"), None);

    let client = client(serve(routes, &timer), Wire::Connect, Codec::Proto, &timer);
    let answer =
        block_on(client.unary::<StringValue, StringValue>(&UNARY, sv(""), CallOptions::new()));
    assert_eq!(answer.unwrap().message().value, "second");
    assert_eq!((first_count.get(), second_count.get()), (0, 1));
}

const UNKNOWN: MethodSpec = MethodSpec::new(
    "/test.v1.Nowhere/Nothing",
    MethodKind::Unary,
    Idempotency::Unknown,
);
const UNKNOWN_STREAM: MethodSpec = MethodSpec::new(
    "/test.v1.Echo/NoSuchStream",
    MethodKind::BidiStreaming,
    Idempotency::Unknown,
);

#[test]
fn unknown_methods_are_unimplemented_for_every_protocol() {
    for wire in WIRES {
        let timer = ManualTimer::new();
        let routes = Routes::new().service(Echo::new()).service(Greeter);
        let routed = client(serve(routes, &timer), wire, Codec::Proto, &timer);
        let status = block_on(routed.unary::<StringValue, StringValue>(
            &UNKNOWN,
            sv(""),
            CallOptions::new(),
        ))
        .unwrap_err();
        assert_eq!(status.code(), Code::Unimplemented, "{wire:?}: {status:?}");
        let status = block_on(async {
            let mut call = routed
                .bidi_streaming::<StringValue, StringValue>(&UNKNOWN_STREAM, CallOptions::new())
                .await?;
            call.close_send()?;
            call.message().await
        })
        .unwrap_err();
        assert_eq!(status.code(), Code::Unimplemented, "{wire:?}: {status:?}");

        // An empty router serves nothing.
        let empty = client(serve(Routes::new(), &timer), wire, Codec::Proto, &timer);
        let status =
            block_on(empty.unary::<StringValue, StringValue>(&UNARY, sv(""), CallOptions::new()))
                .unwrap_err();
        assert_eq!(status.code(), Code::Unimplemented, "{wire:?}: {status:?}");
    }
}

#[test]
fn unknown_and_unimplemented_methods_use_each_protocols_http_status() {
    // Connect: an unknown path is HTTP 404 (which clients map to `unimplemented`) with an
    // `unimplemented` error body; an `unimplemented` error from a declared method is HTTP 501
    // (the Connect code-to-HTTP table). gRPC and gRPC-Web always answer 200 with the status in
    // `grpc-status`.
    let cases = [
        (Wire::Connect, &UNKNOWN, 404),
        (Wire::Connect, &MISSING, 501),
        (Wire::Grpc, &UNKNOWN, 200),
        (Wire::Grpc, &MISSING, 200),
        (Wire::GrpcWeb, &UNKNOWN, 200),
        (Wire::GrpcWeb, &MISSING, 200),
    ];
    for (wire, method, http_status) in cases {
        let timer = ManualTimer::new();
        let service = serve(Routes::new().service(Echo::new()), &timer);
        let (raw, request) = RawCall::request(wire, Codec::Proto, method, &[sv("")], timer.now());
        let outcome = raw.read(block_on(service.serve(request)));
        let case = format!("{wire:?} {}", method.path);
        assert_eq!(outcome.http_status.as_u16(), http_status, "{case}");
        let status = outcome.result.unwrap_err();
        assert_eq!(status.code(), Code::Unimplemented, "{case}: {status:?}");
    }
}

/// Methods registered at run time, one per RPC kind, next to a generated-style service.
fn closures() -> Routes {
    let method = |name: &str, kind| {
        MethodSpec::owned(format!("/dyn.v1.Dyn/{name}"), kind, Default::default())
    };
    Routes::new()
        .service(Greeter)
        .unary(
            method("Upper", MethodKind::Unary),
            |request: Request<StringValue>| async move {
                Ok(Response::new(sv(&request.message().value.to_uppercase())))
            },
        )
        .server_streaming(
            method("Split", MethodKind::ServerStreaming),
            |request: Request<StringValue>, mut responses| async move {
                for part in request.message().value.split(',') {
                    responses.send(sv(part)).await?;
                }
                Ok(())
            },
        )
        .client_streaming(
            method("Join", MethodKind::ClientStreaming),
            |request: Request<connect_tower::server::Streaming<StringValue>>| async move {
                let mut requests = request.into_message();
                let mut parts = Vec::new();
                while let Some(part) = requests.message().await? {
                    parts.push(part.value);
                }
                Ok(Response::new(sv(&parts.join("+"))))
            },
        )
        .bidi_streaming(
            method("Shout", MethodKind::BidiStreaming),
            |request: Request<connect_tower::server::Streaming<StringValue>>,
             mut responses| async move {
                let mut requests = request.into_message();
                while let Some(part) = requests.message().await? {
                    responses.send(sv(&format!("{}!", part.value))).await?;
                }
                Ok(())
            },
        )
}

#[test]
fn routes_serve_methods_registered_as_closures_beside_services() {
    let spec = |name: &str, kind| {
        MethodSpec::owned(format!("/dyn.v1.Dyn/{name}"), kind, Default::default())
    };
    for wire in PROTOCOLS {
        let timer = ManualTimer::new();
        let routes = closures();
        let paths: Vec<&str> = routes.methods().iter().map(|m| m.path()).collect();
        assert!(paths.contains(&"/dyn.v1.Dyn/Upper") && paths.contains(&GREET.path()));
        let client = client(serve(routes.clone(), &timer), wire, Codec::Proto, &timer);

        let upper = block_on(client.unary::<StringValue, StringValue>(
            &spec("Upper", MethodKind::Unary),
            sv("abc"),
            CallOptions::new(),
        ));
        assert_eq!(upper.unwrap().message().value, "ABC", "{wire:?}");

        let split = block_on(collect_server_stream(
            &client,
            &spec("Split", MethodKind::ServerStreaming),
            sv("a,b,c"),
        ));
        assert_eq!(values(&split.unwrap()), ["a", "b", "c"], "{wire:?}");

        let joined = block_on(async {
            let mut call = client
                .client_streaming::<StringValue, StringValue>(
                    &spec("Join", MethodKind::ClientStreaming),
                    CallOptions::new(),
                )
                .await?;
            for part in ["x", "y"] {
                call.send(sv(part)).await?;
            }
            call.finish().await
        });
        assert_eq!(joined.unwrap().message().value, "x+y", "{wire:?}");

        let shouted = block_on(async {
            let mut call = client
                .bidi_streaming::<StringValue, StringValue>(
                    &spec("Shout", MethodKind::BidiStreaming),
                    CallOptions::new(),
                )
                .await?;
            call.send(sv("hey")).await?;
            call.close_send()?;
            let mut received = Vec::new();
            while let Some(message) = call.message().await? {
                received.push(message);
            }
            Ok::<_, Status>(received)
        });
        assert_eq!(values(&shouted.unwrap()), ["hey!"], "{wire:?}");

        let greeting = block_on(client.unary::<StringValue, StringValue>(
            &GREET,
            sv("dyn"),
            CallOptions::new(),
        ));
        assert_eq!(greeting.unwrap().message().value, "hello, dyn", "{wire:?}");
    }
}

#[test]
#[should_panic(expected = "/dyn.v1.Dyn/Wrong is declared ServerStreaming but registered as Unary")]
fn a_method_registered_under_another_kind_is_refused_at_startup() {
    let _ = Routes::new().unary(
        MethodSpec::owned(
            "/dyn.v1.Dyn/Wrong",
            MethodKind::ServerStreaming,
            Default::default(),
        ),
        |_request: Request<StringValue>| async { Ok(Response::new(sv(""))) },
    );
}
