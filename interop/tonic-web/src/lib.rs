//! The greeter implemented with tonic and served with tonic-web (gRPC-Web, binary and text,
//! over HTTP/1.1 and HTTP/2), as a foreign peer for our client's gRPC-Web tests.

use std::net::SocketAddr;
use std::pin::Pin;

use tokio_stream::Stream;
use tokio_stream::StreamExt;
use tonic::{Request, Response, Status, Streaming};

/// tonic's code for `connectrpc.greet.v1`.
pub mod greet {
    tonic::include_proto!("connectrpc.greet.v1");
}

use greet::greeter_server::{Greeter, GreeterServer};
use greet::{HelloReply, HelloRequest, RepeatRequest};

/// The greeter, as the example's own does it (same greetings, same errors).
#[derive(Clone, Copy, Debug, Default)]
pub struct TonicGreeter;

fn reply(message: String) -> HelloReply {
    HelloReply { message }
}

fn checked(name: &str) -> Result<&str, Status> {
    if name.is_empty() {
        Err(Status::invalid_argument("name must not be empty"))
    } else {
        Ok(name)
    }
}

type ReplyStream = Pin<Box<dyn Stream<Item = Result<HelloReply, Status>> + Send>>;

#[tonic::async_trait]
impl Greeter for TonicGreeter {
    async fn say_hello(
        &self,
        request: Request<HelloRequest>,
    ) -> Result<Response<HelloReply>, Status> {
        let name = checked(&request.get_ref().name)?;
        Ok(Response::new(reply(format!("Hello, {name}!"))))
    }

    type SayHelloRepeatedlyStream = ReplyStream;

    async fn say_hello_repeatedly(
        &self,
        request: Request<RepeatRequest>,
    ) -> Result<Response<ReplyStream>, Status> {
        let RepeatRequest { name, times } = request.into_inner();
        checked(&name)?;
        let replies =
            (1..=times).map(move |round| Ok(reply(format!("Hello, {name}! ({round}/{times})"))));
        Ok(Response::new(Box::pin(tokio_stream::iter(replies))))
    }

    async fn say_hello_to_all(
        &self,
        request: Request<Streaming<HelloRequest>>,
    ) -> Result<Response<HelloReply>, Status> {
        let mut requests = request.into_inner();
        let mut names = Vec::new();
        while let Some(request) = requests.next().await {
            names.push(checked(&request?.name)?.to_owned());
        }
        let everyone = match names.split_last() {
            None => return Err(Status::invalid_argument("no names to greet")),
            Some((last, [])) => last.clone(),
            Some((last, rest)) => format!("{} and {last}", rest.join(", ")),
        };
        Ok(Response::new(reply(format!("Hello, {everyone}!"))))
    }

    type ConverseStream = ReplyStream;

    async fn converse(
        &self,
        request: Request<Streaming<HelloRequest>>,
    ) -> Result<Response<ReplyStream>, Status> {
        let replies = request.into_inner().map(|request| {
            let request = request?;
            Ok(reply(format!("Hello, {}!", checked(&request.name)?)))
        });
        Ok(Response::new(Box::pin(replies)))
    }
}

/// Serves [`TonicGreeter`] with tonic-web on a loopback port (HTTP/1.1 and h2c); returns the
/// address. The server runs until the runtime ends.
pub async fn serve_tonic_web() -> std::io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
    tokio::spawn(
        tonic::transport::Server::builder()
            .accept_http1(true)
            .layer(tonic_web::GrpcWebLayer::new())
            .add_service(GreeterServer::new(TonicGreeter))
            .serve_with_incoming(incoming),
    );
    Ok(addr)
}
