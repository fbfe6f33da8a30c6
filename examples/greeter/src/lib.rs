//! A greeter served with ConnectRPC: `proto/greeter.proto` compiled by `connect-codegen` in
//! `build.rs`, implemented by [`MyGreeter`], and served by `connect-tower` over Connect, gRPC
//! and gRPC-Web.
//!
//! [`service`] returns the generated server, ready to wrap in a
//! `connect_tower::server::ConnectService` (a `tower::Service<http::Request<_>>`) or to add to
//! a `connect_tower::server::Routes`:
//!
//! ```
//! let service = connect_tower::server::ConnectService::new(greeter_example::service());
//! # let _ = service;
//! ```
//!
//! The generated client, [`greet::greeter::GreeterClient`], calls it over any tower transport; the
//! tests in `tests/` use the service itself as the transport, in process.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

use connect_tower::server::{ResponseSender, Streaming};
use connect_tower::{Code, Request, Response, Status};

/// Everything generated from `proto/`: one module per proto package.
#[allow(missing_docs, reason = "buffa's package modules carry no docs")]
pub mod proto {
    include!(concat!(env!("OUT_DIR"), "/_include.rs"));
}

/// The `connectrpc.greet.v1` package: messages and the `greeter` service module.
pub use proto::connectrpc::greet::v1 as greet;

use greet::greeter::{Greeter, GreeterServer};
use greet::{HelloReply, HelloRequestOwnedView, RepeatRequestOwnedView};

/// The most greetings `SayHelloRepeatedly` sends for one request.
pub const MAX_REPEATS: u32 = 10;

/// The greeter: says hello, politely and without state.
#[derive(Clone, Copy, Debug, Default)]
pub struct MyGreeter;

/// The generated server for [`MyGreeter`].
pub fn service() -> GreeterServer<MyGreeter> {
    GreeterServer::new(MyGreeter)
}

impl Greeter for MyGreeter {
    async fn say_hello(
        &self,
        request: Request<HelloRequestOwnedView>,
    ) -> Result<Response<HelloReply>, Status> {
        let name = checked_name(request.message().name())?;
        Ok(Response::new(reply(format!("Hello, {name}!"))))
    }

    async fn say_hello_repeatedly(
        &self,
        request: Request<RepeatRequestOwnedView>,
        mut responses: ResponseSender<HelloReply>,
    ) -> Result<(), Status> {
        let message = request.message();
        let name = checked_name(message.name())?;
        let times = message.times();
        if !(1..=MAX_REPEATS).contains(&times) {
            return Err(Status::new(
                Code::OutOfRange,
                format!("times must be between 1 and {MAX_REPEATS}, not {times}"),
            ));
        }
        for round in 1..=times {
            let greeting = format!("Hello, {name}! ({round}/{times})");
            responses.send(reply(greeting)).await?;
        }
        Ok(())
    }

    async fn say_hello_to_all(
        &self,
        request: Request<Streaming<HelloRequestOwnedView>>,
    ) -> Result<Response<HelloReply>, Status> {
        let mut requests = request.into_message();
        let mut names = Vec::new();
        while let Some(request) = requests.message().await? {
            names.push(checked_name(request.name())?.to_string());
        }
        let everyone = match names.split_last() {
            None => return Err(Status::new(Code::InvalidArgument, "no names to greet")),
            Some((last, [])) => last.clone(),
            Some((last, rest)) => format!("{} and {last}", rest.join(", ")),
        };
        Ok(Response::new(reply(format!("Hello, {everyone}!"))))
    }

    async fn converse(
        &self,
        request: Request<Streaming<HelloRequestOwnedView>>,
        mut responses: ResponseSender<HelloReply>,
    ) -> Result<(), Status> {
        let mut requests = request.into_message();
        while let Some(request) = requests.message().await? {
            let name = checked_name(request.name())?;
            responses.send(reply(format!("Hello, {name}!"))).await?;
        }
        Ok(())
    }
}

/// `name`, unless it is empty (`invalid_argument`).
fn checked_name(name: &str) -> Result<&str, Status> {
    if name.is_empty() {
        Err(Status::new(Code::InvalidArgument, "name must not be empty"))
    } else {
        Ok(name)
    }
}

fn reply(message: String) -> HelloReply {
    HelloReply {
        message,
        ..Default::default()
    }
}

/// Completes on SIGTERM (Unix) or Ctrl-C: the stop signal of the example servers.
pub async fn stop_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}
