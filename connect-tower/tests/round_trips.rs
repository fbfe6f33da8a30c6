//! Whole RPCs through connect-tower's `Client` and `ConnectService`, wired back to back in
//! process (the service is the client's transport): the four RPC kinds over Connect, gRPC,
//! gRPC-Web and gRPC-Web text with both codecs, metadata both ways, error statuses, Connect
//! GET, what handlers see of the call, handlers that answer before the request stream ends,
//! and message size limits in both directions. Time comes from a manual timer that never
//! moves.

mod support;

use buffa_types::google::protobuf::StringValue;
use connect_proto_core::ServerConfig;
use connect_tower::client::CallOptions;
use connect_tower::server::ConnectService;
use connect_tower::{Code, Codec, MethodSpec, Protocol, Response, Status};
use http::{HeaderMap, HeaderValue};
use support::*;

fn for_each_wire_and_codec(mut test: impl FnMut(Wire, Codec)) {
    for wire in WIRES {
        for codec in CODECS {
            test(wire, codec);
        }
    }
}

#[test]
fn unary_round_trips_over_every_protocol_and_codec() {
    for_each_wire_and_codec(|wire, codec| {
        let timer = ManualTimer::new();
        let client = client(serve(Echo::new(), &timer), wire, codec, &timer);
        let response = block_on(client.unary::<StringValue, StringValue>(
            &UNARY,
            sv("hello"),
            CallOptions::new(),
        ))
        .unwrap_or_else(|status| panic!("{wire:?}/{codec:?}: {status:?}"));
        assert_eq!(response.message().value, "hello", "{wire:?}/{codec:?}");
    });
}

#[test]
fn client_streaming_round_trips_over_every_protocol_and_codec() {
    for_each_wire_and_codec(|wire, codec| {
        let timer = ManualTimer::new();
        let client = client(serve(Echo::new(), &timer), wire, codec, &timer);
        let response = block_on(async {
            let mut call = client
                .client_streaming::<StringValue, StringValue>(&CLIENT_STREAM, CallOptions::new())
                .await?;
            for part in ["a", "b", "c"] {
                call.send(sv(part)).await?;
            }
            call.finish().await
        })
        .unwrap_or_else(|status| panic!("{wire:?}/{codec:?}: {status:?}"));
        assert_eq!(response.message().value, "a,b,c", "{wire:?}/{codec:?}");
    });
}

#[test]
fn server_streaming_round_trips_over_every_protocol_and_codec() {
    for_each_wire_and_codec(|wire, codec| {
        let timer = ManualTimer::new();
        let client = client(serve(Echo::new(), &timer), wire, codec, &timer);
        let received = block_on(collect_server_stream(&client, &SERVER_STREAM, sv("x,y,z")))
            .unwrap_or_else(|status| panic!("{wire:?}/{codec:?}: {status:?}"));
        assert_eq!(values(&received), ["x", "y", "z"], "{wire:?}/{codec:?}");
    });
}

#[test]
fn bidi_streaming_ping_pongs_over_every_protocol_and_codec() {
    for_each_wire_and_codec(|wire, codec| {
        let timer = ManualTimer::new();
        let client = client(serve(Echo::new(), &timer), wire, codec, &timer);
        block_on(async {
            let mut call = client
                .bidi_streaming::<StringValue, StringValue>(&BIDI, CallOptions::new())
                .await?;
            // Full duplex: each answer arrives before the next request is sent.
            for ping in ["one", "two", "three"] {
                call.send(sv(ping)).await?;
                let pong = call.message().await?.expect("a response");
                assert_eq!(pong.value, ping, "{wire:?}/{codec:?}");
            }
            call.close_send()?;
            assert_eq!(call.message().await?, None, "{wire:?}/{codec:?}");
            Ok::<_, Status>(())
        })
        .unwrap_or_else(|status| panic!("{wire:?}/{codec:?}: {status:?}"));
    });
}

#[test]
fn handlers_see_the_protocol_codec_and_http_method_of_the_call() {
    for_each_wire_and_codec(|wire, codec| {
        let timer = ManualTimer::new();
        let echo = Echo::new().on_unary(|request| async move {
            let ctx = request.context();
            let seen = format!(
                "{}/{}/{}",
                ctx.protocol().as_str(),
                ctx.codec().name(),
                ctx.http_method()
            );
            Ok(Response::new(StringValue::from(seen)))
        });
        let client = client(serve(echo, &timer), wire, codec, &timer);
        let call = |method: &MethodSpec| {
            block_on(client.unary::<StringValue, StringValue>(method, sv(""), CallOptions::new()))
                .unwrap()
                .into_message()
                .value
        };
        let expected = |http_method: &str| {
            format!(
                "{}/{}/{http_method}",
                wire.protocol().as_str(),
                codec.name()
            )
        };
        assert_eq!(call(&UNARY), expected("POST"));
        // Methods without side effects go out as Connect GET requests.
        let lookup = if wire.protocol() == Protocol::Connect {
            "GET"
        } else {
            "POST"
        };
        assert_eq!(call(&LOOKUP), expected(lookup));
    });
}

#[test]
fn unary_headers_and_trailers_travel_both_ways() {
    for wire in WIRES {
        let timer = ManualTimer::new();
        let echo = Echo::new().on_unary(|request| async move {
            let asked = request.headers().get("x-question").cloned();
            let mut headers = HeaderMap::new();
            headers.insert(
                "x-answer-header",
                asked.unwrap_or(HeaderValue::from_static("none")),
            );
            let mut trailers = HeaderMap::new();
            trailers.insert("x-answer-trailer", HeaderValue::from_static("42"));
            Ok(Response::new(request.into_message())
                .with_headers(headers)
                .with_trailers(trailers))
        });
        let client = client(serve(echo, &timer), wire, Codec::Proto, &timer);
        let options = CallOptions::new().header(
            http::HeaderName::from_static("x-question"),
            HeaderValue::from_static("why"),
        );
        let response = block_on(client.unary::<StringValue, StringValue>(&UNARY, sv("m"), options))
            .unwrap_or_else(|status| panic!("{wire:?}: {status:?}"));
        assert_eq!(response.headers()["x-answer-header"], "why", "{wire:?}");
        assert_eq!(response.trailers()["x-answer-trailer"], "42", "{wire:?}");
    }
}

#[test]
fn streaming_headers_and_trailers_travel_both_ways() {
    for wire in WIRES {
        let timer = ManualTimer::new();
        let echo = Echo::new().on_server_stream(|_request, mut responses| async move {
            responses.add_header(
                http::HeaderName::from_static("x-stream-header"),
                HeaderValue::from_static("h"),
            );
            responses.add_trailer(
                http::HeaderName::from_static("x-stream-trailer"),
                HeaderValue::from_static("t"),
            );
            responses.send(sv("only")).await
        });
        let client = client(serve(echo, &timer), wire, Codec::Proto, &timer);
        block_on(async {
            let mut stream = client
                .server_streaming::<StringValue, StringValue>(
                    &SERVER_STREAM,
                    sv(""),
                    CallOptions::new(),
                )
                .await
                .unwrap();
            assert_eq!(
                stream.headers().await.unwrap()["x-stream-header"],
                "h",
                "{wire:?}"
            );
            assert_eq!(stream.message().await.unwrap().unwrap().value, "only");
            assert_eq!(stream.message().await.unwrap(), None);
            assert_eq!(
                stream.trailers().unwrap()["x-stream-trailer"],
                "t",
                "{wire:?}"
            );
        });
    }
}

#[test]
fn handler_errors_reach_the_client_with_code_message_and_metadata() {
    for wire in WIRES {
        let timer = ManualTimer::new();
        let echo = Echo::new()
            .on_unary(|_request| async move {
                let mut metadata = HeaderMap::new();
                metadata.insert("x-why", HeaderValue::from_static("because"));
                Err(Status::new(Code::NotFound, "no such echo").with_metadata(metadata))
            })
            .on_server_stream(|_request, mut responses| async move {
                responses.send(sv("before the error")).await?;
                Err(Status::new(Code::ResourceExhausted, "out of echoes"))
            });
        let client = client(serve(echo, &timer), wire, Codec::Proto, &timer);

        let status =
            block_on(client.unary::<StringValue, StringValue>(&UNARY, sv(""), CallOptions::new()))
                .unwrap_err();
        assert_eq!(status.code(), Code::NotFound, "{wire:?}");
        assert_eq!(status.message(), "no such echo", "{wire:?}");
        assert_eq!(status.metadata()["x-why"], "because", "{wire:?}");

        block_on(async {
            let mut stream = client
                .server_streaming::<StringValue, StringValue>(
                    &SERVER_STREAM,
                    sv(""),
                    CallOptions::new(),
                )
                .await
                .unwrap();
            assert_eq!(
                stream.message().await.unwrap().unwrap().value,
                "before the error"
            );
            let status = stream.message().await.unwrap_err();
            assert_eq!(status.code(), Code::ResourceExhausted, "{wire:?}");
            assert_eq!(status.message(), "out of echoes", "{wire:?}");
        });
    }
}

#[test]
fn a_declared_but_unimplemented_method_answers_unimplemented() {
    for wire in WIRES {
        let timer = ManualTimer::new();
        let client = client(serve(Echo::new(), &timer), wire, Codec::Proto, &timer);
        let status = block_on(client.unary::<StringValue, StringValue>(
            &MISSING,
            sv(""),
            CallOptions::new(),
        ))
        .unwrap_err();
        assert_eq!(status.code(), Code::Unimplemented, "{wire:?}");
        assert!(
            status.message().contains(MISSING_PATH),
            "{wire:?}: {status:?}"
        );
    }
}

#[test]
fn unary_responses_are_complete_at_once_with_an_exact_length_over_http1() {
    // The unary fast path: a call that finished before its head was handed over answers with
    // the whole body; over HTTP/1.x it announces its exact length (a content-length), over
    // HTTP/2 it need not. No timer outlives the call.
    for version in [http::Version::HTTP_11, http::Version::HTTP_2] {
        let timer = ManualTimer::new();
        let service = serve(Echo::new(), &timer);
        let (raw, mut request) = RawCall::request(
            Wire::Connect,
            Codec::Proto,
            &UNARY,
            &[sv("fast")],
            timer.now(),
        );
        *request.version_mut() = version;
        let response = block_on(service.serve(request));
        let hint = http_body::Body::size_hint(response.body());
        let expected = Codec::Proto.encode(&sv("fast")).unwrap().len() as u64;
        if version == http::Version::HTTP_11 {
            assert_eq!(hint.exact(), Some(expected));
        } else {
            assert_eq!(hint.exact(), None);
        }
        let outcome = raw.read(response);
        assert_eq!(values(&outcome.messages), ["fast"]);
        assert!(outcome.result.is_ok(), "{outcome:?}");
        assert_eq!(
            timer.registered_sleeps(),
            0,
            "no timer outlives a finished call"
        );
    }
}

#[test]
fn handlers_on_other_tasks_serve_calls_under_a_tokio_executor() {
    // Tokio is only the executor: the handler hands its sender to a spawned task, whose sends
    // wake the client's task through the call's shared state.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    runtime.block_on(async {
        let timer = ManualTimer::new();
        let echo = Echo::new().on_server_stream(|request, mut responses| async move {
            let parts: Vec<String> = request
                .message()
                .value
                .split(',')
                .map(String::from)
                .collect();
            let task = tokio::spawn(async move {
                for part in parts {
                    responses.send(StringValue::from(part)).await?;
                    tokio::task::yield_now().await;
                }
                Ok::<_, Status>(())
            });
            task.await.expect("the sending task")
        });
        let client = client(serve(echo, &timer), Wire::Grpc, Codec::Proto, &timer);
        let mut stream = client
            .server_streaming::<StringValue, StringValue>(
                &SERVER_STREAM,
                sv("1,2,3,4"),
                CallOptions::new(),
            )
            .await
            .unwrap();
        let mut received = Vec::new();
        while let Some(message) = stream.message().await.unwrap() {
            received.push(message);
        }
        assert_eq!(values(&received), ["1", "2", "3", "4"]);
    });
}

#[test]
fn receive_limits_hold_at_the_limit_and_fail_one_past_it() {
    const LIMIT: usize = 64;
    // `StringValue` of n < 128 bytes encodes to n + 2 bytes.
    let sized = |encoded: usize| StringValue::from("x".repeat(encoded - 2));
    for wire in WIRES {
        let timer = ManualTimer::new();
        let limited = ConnectService::builder(Echo::new())
            .config(ServerConfig::new().max_receive_message_size(LIMIT))
            .timer(timer.clone())
            .build();
        let to_limited_server = client(limited, wire, Codec::Proto, &timer);
        let to_any_server = client(serve(Echo::new(), &timer), wire, Codec::Proto, &timer);
        let limited_client = CallOptions::new().max_receive_message_size(LIMIT);
        for (size, fits) in [(LIMIT, true), (LIMIT + 1, false)] {
            let requests = block_on(to_limited_server.unary::<StringValue, StringValue>(
                &UNARY,
                sized(size),
                CallOptions::new(),
            ));
            let responses = block_on(to_any_server.unary::<StringValue, StringValue>(
                &UNARY,
                sized(size),
                limited_client.clone(),
            ));
            for (side, result) in [("request", requests), ("response", responses)] {
                match result {
                    Ok(response) => {
                        assert!(fits, "{wire:?}: a {size}-byte {side} passed the limit");
                        assert_eq!(response.message().value.len(), size - 2);
                    }
                    Err(status) => {
                        assert!(!fits, "{wire:?}: a {size}-byte {side} failed: {status:?}");
                        assert_eq!(status.code(), Code::ResourceExhausted, "{wire:?} {side}");
                    }
                }
            }
        }
    }
}

#[test]
fn a_receive_limit_bounds_messages_not_the_status_that_ends_the_stream() {
    for wire in WIRES {
        let timer = ManualTimer::new();
        let echo = Echo::new().on_server_stream(|_request, mut responses| async move {
            responses.send(sv("small")).await?;
            let message = "an error message longer than the 32-byte receive limit";
            Err(Status::new(Code::NotFound, message))
        });
        let client = client(serve(echo, &timer), wire, Codec::Proto, &timer);
        block_on(async {
            let options = CallOptions::new().max_receive_message_size(32);
            let mut stream = client
                .server_streaming::<StringValue, StringValue>(&SERVER_STREAM, sv(""), options)
                .await
                .unwrap();
            assert_eq!(stream.message().await.unwrap().unwrap().value, "small");
            let status = stream.message().await.unwrap_err();
            assert_eq!(status.code(), Code::NotFound, "{wire:?}: {status:?}");
        });
    }
}

#[test]
fn handlers_may_answer_before_the_request_stream_ends() {
    for wire in WIRES {
        let timer = ManualTimer::new();
        // Both handlers read one request, answer, and return.
        let echo = Echo::new()
            .on_client_stream(|request| async move {
                let first = request.into_message().message().await?.unwrap();
                Ok(Response::new(first))
            })
            .on_bidi(|request, mut responses| async move {
                let first = request.into_message().message().await?.unwrap();
                responses.send(first).await
            });
        let client = client(serve(echo, &timer), wire, Codec::Proto, &timer);
        let answer = block_on(async {
            let mut call = client
                .client_streaming::<StringValue, StringValue>(&CLIENT_STREAM, CallOptions::new())
                .await?;
            for value in ["1", "2", "3"] {
                call.send(sv(value)).await?;
            }
            call.finish().await
        });
        assert_eq!(answer.unwrap().message().value, "1", "{wire:?}");

        block_on(async {
            let mut call = client
                .bidi_streaming::<StringValue, StringValue>(&BIDI, CallOptions::new())
                .await
                .unwrap();
            call.send(sv("1")).await.unwrap();
            assert_eq!(
                call.message().await.unwrap().unwrap().value,
                "1",
                "{wire:?}"
            );
            assert_eq!(call.message().await.unwrap(), None, "{wire:?}: a clean end");
            assert!(
                call.send(sv("2")).await.is_err(),
                "{wire:?}: the call is over"
            );
        });
    }
}

#[test]
fn a_bidi_handler_can_send_its_headers_before_any_message() {
    for wire in PROTOCOLS {
        let timer = ManualTimer::new();
        let echo = Echo::new().on_bidi(|request, mut responses| async move {
            responses.add_header(
                http::HeaderName::from_static("x-ready"),
                HeaderValue::from_static("yes"),
            );
            responses.send_headers().await?;
            let mut stream = request.into_message();
            while let Some(message) = stream.message().await? {
                responses.send(message).await?;
            }
            Ok(())
        });
        let client = client(serve(echo, &timer), wire, Codec::Proto, &timer);
        block_on(async {
            let mut call = client
                .bidi_streaming::<StringValue, StringValue>(&BIDI, CallOptions::new())
                .await
                .unwrap();
            // Nothing sent yet, and the headers arrive.
            let headers = call.headers().await.unwrap();
            assert_eq!(headers["x-ready"], "yes", "{wire:?}");
            call.send(sv("after")).await.unwrap();
            assert_eq!(
                call.message().await.unwrap().unwrap().value,
                "after",
                "{wire:?}"
            );
        });
    }
}

/// A server stream sent with `send_all` (framed in runs, away from the call's lock, where the
/// call allows it: no interceptor, no compression, not text) arrives whole and in order on
/// every wire, with messages of many sizes (runs end at the queue's room and at 16 KiB); a
/// message over the send limit in the middle fails the stream with `resource_exhausted`
/// after every message before it arrived, and no message after it is sent.
#[test]
fn send_all_streams_arrive_whole_and_in_order_and_stop_at_an_oversized_message() {
    let sizes: Vec<usize> = (0..3_000).map(|i| (i * 37) % 700).collect();
    let texts: Vec<String> = sizes
        .iter()
        .enumerate()
        .map(|(i, &len)| format!("{i}:{}", "x".repeat(len)))
        .collect();
    let request = texts.join(",");
    for wire in WIRES {
        for limit in [None, Some(600)] {
            let timer = ManualTimer::new();
            let echo = Echo::new().on_server_stream(|request, mut responses| async move {
                let parts: Vec<StringValue> = request.message().value.split(',').map(sv).collect();
                responses.send_all(parts).await
            });
            let service = ConnectService::builder(echo)
                .timer(timer.clone())
                .config(ServerConfig::new().max_send_message_size(limit))
                .build();
            let client = client(service, wire, Codec::Proto, &timer);
            let received = block_on(async {
                let mut stream = client
                    .server_streaming::<StringValue, StringValue>(
                        &SERVER_STREAM,
                        sv(&request),
                        CallOptions::new(),
                    )
                    .await?;
                let mut received = Vec::new();
                loop {
                    match stream.message().await {
                        Ok(Some(message)) => received.push(message.value),
                        Ok(None) => return Ok((received, None)),
                        Err(status) => return Ok::<_, Status>((received, Some(status))),
                    }
                }
            })
            .unwrap();
            let case = format!("{wire:?} limit {limit:?}");
            match limit {
                None => {
                    assert_eq!(received.1, None, "{case}");
                    assert_eq!(received.0, texts, "{case}");
                }
                Some(limit) => {
                    // The first message whose encoding (field tag, length, text) exceeds it.
                    let first_too_large = texts
                        .iter()
                        .position(|t| framed_len(Codec::Proto, &sv(t)) - 5 > limit)
                        .expect("some message is over the limit");
                    assert_eq!(received.0, texts[..first_too_large], "{case}");
                    let status = received.1.expect("the stream fails");
                    assert_eq!(status.code(), Code::ResourceExhausted, "{case}: {status:?}");
                }
            }
        }
    }
}
