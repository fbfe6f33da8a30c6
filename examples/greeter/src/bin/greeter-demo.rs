//! The demo: a greeter server on a loopback port, and clients that call every RPC type over
//! Connect (HTTP/1.1 and h2c), gRPC (h2c) and gRPC-Web (HTTP/1.1), printing what happened.
//!
//! ```text
//! cargo run -p greeter-example --bin greeter-demo
//! ```

use std::time::Duration;

use connect_proto_core::{Codec, Protocol};
use connect_tokio_hyper::{HttpClient, Server, TokioTimer};
use connect_tower::client::{CallOptions, Client, ClientConfig};
use connect_tower::server::ConnectService;
use greeter_example::greet::greeter::GreeterClient;
use greeter_example::greet::{HelloRequest, RepeatRequest};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let service = ConnectService::builder(greeter_example::service())
        .timer(TokioTimer::new())
        .build();
    let server = Server::builder().bind("127.0.0.1:0").await?;
    let addr = server.local_addr()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(server.serve_with_shutdown(service, async {
        let _ = stopped.await;
    }));
    println!("greeter listening on http://{addr} (HTTP/1.1 and h2c on one port)\n");

    let base: http::Uri = format!("http://{addr}").parse()?;
    let setups = [
        (
            "Connect over HTTP/1.1, JSON",
            Protocol::Connect,
            Codec::Json,
            false,
        ),
        (
            "Connect over h2c, proto",
            Protocol::Connect,
            Codec::Proto,
            true,
        ),
        ("gRPC over h2c, proto", Protocol::Grpc, Codec::Proto, true),
        (
            "gRPC-Web over HTTP/1.1, proto",
            Protocol::GrpcWeb,
            Codec::Proto,
            false,
        ),
    ];
    for (title, protocol, codec, h2c) in setups {
        println!("── {title} ──");
        let transport = if h2c {
            HttpClient::plaintext_h2c()
        } else {
            HttpClient::plaintext_http1()
        };
        let config = ClientConfig::new(base.clone())
            .protocol(protocol)
            .codec(codec)
            .default_timeout(Some(Duration::from_secs(5)));
        let client = GreeterClient::new(Client::new(transport, config).timer(TokioTimer::new()));
        if let Err(status) = tour(&client).await {
            println!("  call failed: {status}");
        }
        println!();
    }

    let _ = stop.send(());
    let shutdown = serving.await?;
    println!("server stopped (drained: {})", shutdown.drained());
    Ok(())
}

/// One call of each type, plus an error with its code.
async fn tour(client: &GreeterClient<HttpClient>) -> Result<(), connect_tower::Status> {
    // Unary (NO_SIDE_EFFECTS: Connect sends it as a GET).
    let reply = client.say_hello(hello("Ada")).await?;
    println!(
        "  unary          SayHello           → {:?}",
        reply.message().message
    );

    // Server streaming.
    let mut stream = client
        .say_hello_repeatedly(RepeatRequest {
            name: "Grace".into(),
            times: 3,
            ..Default::default()
        })
        .await?;
    while let Some(reply) = stream.message().await? {
        println!("  server stream  SayHelloRepeatedly → {:?}", reply.message);
    }

    // Client streaming.
    let mut call = client.say_hello_to_all().await?;
    for name in ["Alan", "Barbara", "Edsger"] {
        call.send(hello(name)).await?;
    }
    let reply = call.finish().await?;
    println!(
        "  client stream  SayHelloToAll      → {:?}",
        reply.message().message
    );

    // Bidi streaming: one reply per request, interleaved.
    let mut call = client.converse().await?;
    for name in ["Ken", "Dennis"] {
        call.send(hello(name)).await?;
        if let Some(reply) = call.message().await? {
            println!("  bidi stream    Converse           → {:?}", reply.message);
        }
    }
    call.close_send()?;
    while let Some(reply) = call.message().await? {
        println!("  bidi stream    Converse           → {:?}", reply.message);
    }

    // An error travels with its code and message.
    let options = CallOptions::new().timeout(Duration::from_secs(1));
    match client.say_hello_with_options(hello(""), options).await {
        Ok(reply) => println!("  unexpected success: {:?}", reply.message().message),
        Err(status) => println!(
            "  error          SayHello(\"\")       → {} ({})",
            status.code(),
            status.message()
        ),
    }
    Ok(())
}

fn hello(name: &str) -> HelloRequest {
    HelloRequest {
        name: name.into(),
        ..Default::default()
    }
}
