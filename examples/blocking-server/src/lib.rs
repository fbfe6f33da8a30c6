//! The greeter served by a blocking `std::net` HTTP/1.1 server that drives
//! [`connect_proto_core::ServerCall`] directly: a second runtime for the Sans-IO core.
//!
//! # Contract
//!
//! **What it demonstrates.** The protocol core needs no async runtime: this crate serves the
//! greeter's `SayHello` (unary) and `SayHelloRepeatedly` (server streaming) over Connect
//! (POST, and GET for `SayHello`, which has no side effects) and gRPC-Web (binary and text),
//! with proto and JSON, using only the standard library, [`httparse`] for request heads, and
//! the core. Every protocol decision — admission, content types, error rendering, envelopes,
//! deadlines, compression — is the core's; this crate does HTTP/1.1 framing and I/O:
//!
//! - one thread per connection, at most [`ServerOptions::max_connections`] of them (beyond
//!   that a connection is answered `503` and closed);
//! - request heads bounded in size (`431`) and read time; malformed heads answered `400`;
//! - request bodies framed by `content-length` or `transfer-encoding: chunked` (decoded here,
//!   bounded), fed to the call as they arrive; a broken body is the call's
//!   `handle_body_error`;
//! - deadlines: the socket's read timeout is set to the time left until the call's
//!   `poll_timeout()`, and the streaming handler waits between messages only until the
//!   deadline, so a call that runs out of time ends with `deadline_exceeded`;
//! - responses with `content-length` when the whole response is known at once (unary),
//!   chunked otherwise (streaming; close-delimited for HTTP/1.0 clients);
//! - keep-alive, `connection: close`, an idle timeout, write timeouts, and a graceful stop
//!   ([`ShutdownHandle::shutdown`]) that lets requests in flight finish.
//!
//! Nothing a peer sends can make it panic.
//!
//! **What it does not do.** No gRPC (it needs HTTP/2 trailers; the core's configuration
//! switches it off, so gRPC requests are answered `415` with the content types that are
//! served), no HTTP/2, no TLS, no request or response trailers, no client-streaming or bidi
//! methods (they are answered `unimplemented`, like any unknown method), no pipelining beyond
//! reading the next request after the current response. It is an example, not a production
//! server: use `connect-tokio-hyper` for that.
//!
//! # Use
//!
//! ```no_run
//! use blocking_server_example::{Server, ServerOptions};
//!
//! let server = Server::bind("127.0.0.1:8080", ServerOptions::new())?;
//! let stop = server.shutdown_handle();
//! std::thread::spawn(move || {
//!     std::thread::sleep(std::time::Duration::from_secs(60));
//!     stop.shutdown();
//! });
//! server.serve()?;
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! # Map
//!
//! | concern | module |
//! |---|---|
//! | listener, connection threads, limits, shutdown | `server` |
//! | request heads and body framing (httparse, chunked decoding) | `http1`, `body` |
//! | response framing (status line, `content-length` / chunked, `connection`) | `response` |
//! | one call: the run loop around `ServerCall` | `serve` |
//! | the greeter's handlers | `greeter` |

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod body;
mod greeter;
mod http1;
mod response;
mod serve;
mod server;

/// Everything generated from the greeter's proto: one module per proto package.
#[allow(missing_docs, reason = "buffa's package modules carry no docs")]
pub mod proto {
    include!(concat!(env!("OUT_DIR"), "/_include.rs"));
}

/// The `connectrpc.greet.v1` package: messages, and the method specs in `greeter`.
pub use proto::connectrpc::greet::v1 as greet;

pub use greeter::{GreeterOptions, MAX_REPEATS};
pub use server::{Server, ServerOptions, ShutdownHandle, Stats};
