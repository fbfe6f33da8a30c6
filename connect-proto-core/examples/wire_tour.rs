//! A tour of the wire: plays the same server-streaming RPC over Connect, gRPC and gRPC-Web
//! (and a failing unary call over each) through the Sans-IO core, client and server wired back
//! to back in memory, and prints every HTTP element that would cross the network.
//!
//! Run with `cargo run -p connect-proto-core --example wire_tour`.

use std::time::{Duration, Instant};

use buffa_types::google::protobuf::StringValue;
use bytes::Bytes;
use connect_proto_core::{
    CallOptions, ClientCall, ClientConfig, ClientEvent, ClientOutput, Code, Codec, ErrorDetail,
    Idempotency, MethodKind, MethodSpec, Protocol, ServerCall, ServerConfig, ServerEvent,
    ServerOutput, Status,
};
use http::{HeaderMap, HeaderValue};

const GREET_ALL: MethodSpec = MethodSpec::new(
    "/acme.greet.v1.Greeter/GreetAll",
    MethodKind::ServerStreaming,
    Idempotency::Unknown,
);
const GREET: MethodSpec = MethodSpec::new(
    "/acme.greet.v1.Greeter/Greet",
    MethodKind::Unary,
    Idempotency::NoSideEffects,
);

fn main() {
    let server_config = ServerConfig::new();
    for protocol in [Protocol::Connect, Protocol::Grpc, Protocol::GrpcWeb] {
        for (method, codec) in [(GREET_ALL, Codec::Proto), (GREET, Codec::Json)] {
            println!(
                "══════ {protocol} · {} · {codec} ══════",
                method.method_name()
            );
            let client_config = ClientConfig::new("http://demo.local".parse().expect("static URI"))
                .protocol(protocol)
                .codec(codec);
            play(&client_config, &server_config, method);
            println!();
        }
    }
}

/// One call, end to end, printing the wire.
fn play(client_config: &ClientConfig, server_config: &ServerConfig, method: MethodSpec) {
    let now = Instant::now();
    let codec = client_config.configured_codec();
    let options = CallOptions::new().timeout(Duration::from_secs(5));
    let mut client = ClientCall::start(client_config, now, &method, options).expect("valid call");
    let request = StringValue {
        value: "Ada".into(),
        ..Default::default()
    };
    client
        .send_message(now, codec.encode(&request).expect("encodable"))
        .expect("first message");

    // Client → server.
    let mut server: Option<ServerCall> = None;
    while let Some(out) = client.poll_output() {
        match out {
            ClientOutput::Head(head) => {
                println!("→ {} {}", head.method, head.uri);
                print_headers("→", &head.headers);
                let call = ServerCall::accept(server_config, now, &head, |path| {
                    [GREET_ALL, GREET].into_iter().find(|m| m.path == path)
                });
                match call {
                    Ok(call) => server = Some(call),
                    Err(rejection) => {
                        println!("server rejected the call: {:?}", rejection.status());
                        return;
                    }
                }
            }
            ClientOutput::Data(chunk) => {
                print_data("→", &chunk);
                if let Some(server) = server.as_mut() {
                    server.handle_data(now, chunk);
                }
            }
            ClientOutput::End => {
                println!("→ (end of request)");
                if let Some(server) = server.as_mut() {
                    server.handle_end(None);
                }
            }
            ClientOutput::Cancel => println!("→ (cancel)"),
            other => println!("→ {other:?}"),
        }
    }
    let Some(mut server) = server else { return };

    // The "handler": greet three times when streaming; fail the unary call with details.
    while let Some(event) = server.poll_event() {
        match event {
            ServerEvent::Message(bytes) => {
                let name: StringValue = codec.decode(&bytes, 1024).expect("decodable");
                server
                    .response_headers_mut()
                    .unwrap()
                    .insert("x-greeter", HeaderValue::from_static("tour"));
                if method.kind.streams_responses() {
                    for greeting in ["Hello", "Bonjour", "Hallo"] {
                        let reply = StringValue {
                            value: format!("{greeting}, {}!", name.value),
                            ..Default::default()
                        };
                        server
                            .send_message(codec.encode(&reply).expect("encodable"))
                            .expect("send");
                    }
                }
            }
            ServerEvent::RequestEnd => {
                let outcome = if method.kind.streams_responses() {
                    let mut trailers = HeaderMap::new();
                    trailers.insert("x-greetings", HeaderValue::from_static("3"));
                    Ok(trailers)
                } else {
                    let detail = StringValue {
                        value: "try GreetAll".into(),
                        ..Default::default()
                    };
                    Err(
                        Status::new(Code::FailedPrecondition, "Greet is closed today")
                            .with_detail(ErrorDetail::from_message(&detail)),
                    )
                };
                server.finish(outcome).expect("finish once");
            }
            ServerEvent::Failed(status) => println!("server call failed: {status}"),
            // Only with `set_pass_through` (proxies forwarding compressed payloads).
            ServerEvent::CompressedMessage(_) => unreachable!("no pass-through in this tour"),
            other => println!("server: {other:?}"),
        }
    }

    // Server → client.
    while let Some(out) = server.poll_output() {
        match out {
            ServerOutput::Head(head) => {
                println!("← {}", head.status);
                print_headers("←", &head.headers);
                client.handle_response_head(head);
            }
            ServerOutput::Data(chunk) => {
                print_data("←", &chunk);
                client.handle_data(chunk);
            }
            ServerOutput::Trailers(trailers) => {
                println!("← (trailers)");
                print_headers("←", &trailers);
                client.handle_trailers(trailers);
                client.handle_end();
            }
            ServerOutput::End => {
                println!("← (end of response)");
                client.handle_end();
            }
            other => println!("← {other:?}"),
        }
    }

    // What the application sees.
    while let Some(event) = client.poll_event() {
        match event {
            ClientEvent::Headers(headers) => println!("client: headers {headers:?}"),
            ClientEvent::Message(bytes) => {
                let reply: StringValue = codec.decode(&bytes, 1024).expect("decodable");
                println!("client: message {:?}", reply.value);
            }
            // Only with `set_pass_through` (proxies forwarding compressed payloads).
            ClientEvent::CompressedMessage(_) => unreachable!("no pass-through in this tour"),
            ClientEvent::Finished(Ok(trailers)) => println!("client: ok, trailers {trailers:?}"),
            ClientEvent::Finished(Err(status)) => {
                println!(
                    "client: error {status}, {} detail(s)",
                    status.details().len()
                );
            }
            other => println!("client: {other:?}"),
        }
    }
}

fn print_headers(arrow: &str, headers: &HeaderMap) {
    for (name, value) in headers {
        println!(
            "{arrow}   {name}: {}",
            String::from_utf8_lossy(value.as_bytes())
        );
    }
}

fn print_data(arrow: &str, chunk: &Bytes) {
    let printable = chunk.iter().all(|b| b.is_ascii_graphic() || *b == b' ');
    if printable {
        println!(
            "{arrow} [{} bytes] {}",
            chunk.len(),
            String::from_utf8_lossy(chunk)
        );
    } else {
        let hex: Vec<String> = chunk.iter().take(48).map(|b| format!("{b:02x}")).collect();
        let more = if chunk.len() > 48 { " …" } else { "" };
        println!("{arrow} [{} bytes] {}{more}", chunk.len(), hex.join(" "));
    }
}
