//! With `views=false`, handlers take owned request messages (decoded with
//! `connect_tower::codec::decode_owned`): `tests/golden_owned/` compiles warning-free and serves
//! every RPC kind.

#![deny(warnings)]

mod support;

use connect_proto_core::{CallOptions, Codec};
use connect_tower::server::{ConnectService, ResponseSender, Streaming};
use connect_tower::{Code, Request, Response, Status};
use support::{Outcome, PROTOCOLS};

/// The generated module tree, without views.
mod proto {
    include!("golden_owned/_include.rs");
}

use proto::acme::v1::greeter::{self, Greeter, GreeterServer};
use proto::acme::v1::{HelloReply, HelloRequest};

/// Greets by echoing names; `UpdateGreeting` and the rest keep their default bodies.
struct OwnedGreetings;

impl Greeter for OwnedGreetings {
    async fn say_hello(
        &self,
        request: Request<HelloRequest>,
    ) -> Result<Response<HelloReply>, Status> {
        let HelloRequest { name, .. } = request.into_message();
        Ok(Response::new(reply(name)))
    }

    async fn say_hello_stream(
        &self,
        request: Request<HelloRequest>,
        mut responses: ResponseSender<HelloReply>,
    ) -> Result<(), Status> {
        let name = &request.message().name;
        responses.send(reply(name.clone())).await?;
        responses.send(reply(name.to_uppercase())).await
    }

    async fn collect_hellos(
        &self,
        request: Request<Streaming<HelloRequest>>,
    ) -> Result<Response<HelloReply>, Status> {
        let mut stream = request.into_message();
        let mut names = Vec::new();
        while let Some(message) = stream.message().await? {
            names.push(message.name);
        }
        Ok(Response::new(reply(names.join(","))))
    }

    async fn chat(
        &self,
        request: Request<Streaming<HelloRequest>>,
        mut responses: ResponseSender<HelloReply>,
    ) -> Result<(), Status> {
        let mut stream = request.into_message();
        while let Some(message) = stream.message().await? {
            responses.send(reply(message.name)).await?;
        }
        Ok(())
    }
}

fn reply(message: String) -> HelloReply {
    HelloReply {
        message,
        ..Default::default()
    }
}

fn hello(name: &str) -> HelloRequest {
    HelloRequest {
        name: name.to_string(),
        ..Default::default()
    }
}

#[tokio::test]
async fn every_rpc_kind_with_owned_requests() {
    let service = ConnectService::new(GreeterServer::new(OwnedGreetings));
    let cases: [(_, &[&str], &[&str]); 4] = [
        (&greeter::SAY_HELLO, &["Ada"], &["Ada"]),
        (&greeter::SAY_HELLO_STREAM, &["Ada"], &["Ada", "ADA"]),
        (&greeter::COLLECT_HELLOS, &["Ada", "Grace"], &["Ada,Grace"]),
        (&greeter::CHAT, &["Ada", "Grace"], &["Ada", "Grace"]),
    ];
    for protocol in PROTOCOLS {
        for codec in [Codec::Proto, Codec::Json] {
            for (method, names, expected) in &cases {
                let requests: Vec<HelloRequest> = names.iter().map(|n| hello(n)).collect();
                let outcome: Outcome<HelloReply> = support::call(
                    &service,
                    protocol,
                    codec,
                    method,
                    &requests,
                    CallOptions::new(),
                )
                .await;
                let what = format!("{protocol:?} {codec:?} {}", method.path);
                assert!(outcome.result.is_ok(), "{what}: {:?}", outcome.result);
                let messages: Vec<&str> = outcome
                    .messages
                    .iter()
                    .map(|m| m.message.as_str())
                    .collect();
                assert_eq!(messages, *expected, "{what}");
            }
        }
    }
}

#[tokio::test]
async fn default_bodies_answer_unimplemented() {
    let service = ConnectService::new(GreeterServer::new(OwnedGreetings));
    let outcome: Outcome<HelloReply> = support::call(
        &service,
        PROTOCOLS[0],
        Codec::Proto,
        &greeter::UPDATE_GREETING,
        &[hello("Ada")],
        CallOptions::new(),
    )
    .await;
    let status = outcome.result.expect_err("unimplemented");
    assert_eq!(status.code(), Code::Unimplemented);
}
