//! The contract of a server-streaming call's start: when the client's call returns, the
//! server's handler is running and waiting, so an event published right after is received.

mod common;

use std::future::Future;
use std::pin::Pin;

use common::*;
use connect_proto_core::Idempotency;
use connect_tokio_hyper::{HttpClient, Server};
use connect_tower::client::{CallOptions, Client, ClientConfig};
use connect_tower::codec::decode_owned;
use connect_tower::server::{
    ConnectService, Dispatch, IncomingCall, ResponseSender, server_streaming,
};
use connect_tower::{MethodKind, MethodSpec, Protocol, Request, Status};
use tokio::sync::broadcast;

static WATCH: MethodSpec = MethodSpec::new(
    "/test.v1.WatchService/Watch",
    MethodKind::ServerStreaming,
    Idempotency::Unknown,
);

/// Forwards every event published after the call started, until the channel closes.
#[derive(Clone)]
struct Watch {
    events: broadcast::Sender<String>,
}

impl Dispatch for Watch {
    fn methods(&self) -> &[MethodSpec] {
        std::slice::from_ref(&WATCH)
    }

    fn method(&self, path: &str) -> Option<MethodSpec> {
        (path == WATCH.path).then_some(WATCH.clone())
    }

    fn dispatch(&self, call: IncomingCall) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        let events = self.events.clone();
        Box::pin(server_streaming(
            call,
            decode_owned::<StringValue>,
            move |_: Request<StringValue>, mut sender: ResponseSender<StringValue>| async move {
                let mut events = events.subscribe();
                while let Ok(event) = events.recv().await {
                    sender.send(string(&event)).await?;
                }
                Ok::<(), Status>(())
            },
        ))
    }
}

#[tokio::test]
async fn an_event_published_after_the_call_returns_arrives() {
    let (events, _) = broadcast::channel(16);
    let service = ConnectService::new(Watch {
        events: events.clone(),
    });
    let server = start_service(Server::builder(), service).await;
    for (protocol, h2) in [
        (Protocol::Connect, false),
        (Protocol::Connect, true),
        (Protocol::Grpc, true),
        (Protocol::GrpcWeb, false),
        (Protocol::GrpcWeb, true),
    ] {
        let transport = if h2 {
            HttpClient::plaintext_h2c()
        } else {
            HttpClient::plaintext_http1()
        };
        let client = Client::new(
            transport,
            ClientConfig::new(server.http_uri()).protocol(protocol),
        );
        for round in 0..5 {
            let mut stream = client
                .server_streaming::<StringValue, StringValue>(
                    &WATCH,
                    string(""),
                    CallOptions::new(),
                )
                .await
                .unwrap();
            let event = format!("{protocol:?} h2={h2} #{round}");
            events
                .send(event.clone())
                .expect("the handler is subscribed");
            let received = stream.message().await.unwrap().expect("the event");
            assert_eq!(received.value, event);
        }
    }
    server.shutdown().await;
}
