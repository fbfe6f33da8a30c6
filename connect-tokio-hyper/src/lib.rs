//! Tokio and hyper runtime adapter for [`connect_tower`].
//!
//! # Contract
//!
//! This crate moves bytes between sockets and the tower layer, and nothing else: it owns
//! accept loops, connections, TLS, timers and shutdown, and converts between hyper's and
//! `http`'s types. Every protocol decision (header names, envelopes, status mapping) is made
//! by `connect-tower` and `connect-proto-core`; no wire element of Connect, gRPC or gRPC-Web
//! is written here.
//!
//! - [`TokioTimer`]: the [`connect_tower::rt::Timer`] for Tokio, so deadlines are enforced.
//! - [`Server`] (feature `server`): serves any cloneable
//!   `tower::Service<http::Request<hyper::body::Incoming>>` (a
//!   [`ConnectService`](connect_tower::server::ConnectService), an axum `Router`, …) over
//!   HTTP/1.1 and HTTP/2 with prior knowledge (h2c) on one port, or over rustls TLS with ALPN
//!   and optional client-certificate verification. The service sees the connection's
//!   [`ConnectionInfo`](connect_tower::ConnectionInfo) (peer, shutdown) while it is called and
//!   polled ([`with_connection`](connect_tower::rt::with_connection): once per connection, not
//!   inserted into each request's extensions; middleware reads
//!   [`current_connection`](connect_tower::rt::current_connection)). Graceful shutdown drains
//!   in-flight calls up to a deadline, then closes what is left. Connection count, header
//!   read and TLS handshake timeouts, HTTP/2 stream limits and keep-alive are configurable.
//! - [`HttpClient`] (feature `client`): a pooled transport (HTTP/1.1, h2c, or TLS with the
//!   HTTP version chosen by ALPN) for [`connect_tower::client::Client`].
//! - [`H2Connection`] (feature `client`): one HTTP/2 connection whose `poll_ready` reports
//!   the peer's stream limit and the connection's death, for `tower::balance`.
//! - [`tls`] (features `server-tls`, `client-tls`): PEM loading and rustls configurations,
//!   with the crypto provider chosen by feature (`aws-lc-rs` or `ring`).
//!
//! # Features
//!
//! | feature | what it adds | what it builds |
//! |---|---|---|
//! | `server` (default) | [`Server`] | hyper's server, h2 |
//! | `client` (default) | [`HttpClient`], [`H2Connection`] | hyper's client, hyper-util's pool |
//! | `server-tls` | `ServerBuilder::tls`, [`tls`] | rustls, tokio-rustls (no provider) |
//! | `client-tls` | `HttpClient::tls`, TLS for [`H2Connection`] | rustls, tokio-rustls (no provider) |
//! | `aws-lc-rs` | the aws-lc-rs crypto provider | aws-lc-sys (C, cmake) |
//! | `ring` | the ring crypto provider | ring (C and assembly, no cmake) |
//! | `native-roots` | `HttpClient::tls_with_native_roots` | rustls-native-certs |
//!
//! The defaults are a plaintext server and client: no TLS stack, no C compiler. With TLS and
//! neither provider feature, configurations use the process-wide default provider
//! (`rustls::crypto::CryptoProvider::install_default`) and fail with
//! [`Error::NoCryptoProvider`] when none is installed.
//!
//! HTTP/2 stream resets seen by the client transports are reported as
//! [`TransportError::reset`](connect_tower::client::TransportError::reset), so the tower
//! layer can map the reset code to a status; every other transport failure is passed through
//! as a boxed error.
//!
//! # Example
//!
//! ```no_run
//! # #[cfg(all(feature = "server", feature = "client"))]
//! # async fn example(dispatch: impl connect_tower::server::Dispatch) -> Result<(), Box<dyn std::error::Error>> {
//! use connect_tokio_hyper::{HttpClient, Server, TokioTimer};
//! use connect_tower::server::ConnectService;
//!
//! let service = ConnectService::builder(dispatch).timer(TokioTimer::new()).build();
//! let server = Server::builder().bind("127.0.0.1:0").await?;
//! let addr = server.local_addr()?;
//! let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
//! let running = tokio::spawn(server.serve_with_shutdown(service, async {
//!     let _ = stopped.await;
//! }));
//!
//! let uri: http::Uri = format!("http://{addr}").parse()?;
//! let client = connect_tower::client::Client::new(
//!     HttpClient::plaintext_h2c(),
//!     connect_tower::client::ClientConfig::new(uri),
//! )
//! .timer(TokioTimer::new());
//! // … calls …
//! # drop(client);
//! let _ = stop.send(());
//! let _outcome = running.await?;
//! # Ok(())
//! # }
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]
// The crate docs link to every feature's items; with some features off, those links dangle.
#![cfg_attr(
    not(all(feature = "server", feature = "client", feature = "tls")),
    allow(rustdoc::broken_intra_doc_links)
)]

#[cfg(feature = "client")]
mod client;
mod error;
#[cfg(feature = "server")]
mod server;
mod timer;
#[cfg(feature = "tls")]
pub mod tls;

#[cfg(feature = "client")]
pub use client::{
    DEFAULT_H2_CLIENT_CONNECTION_WINDOW, DEFAULT_H2_CLIENT_STREAM_WINDOW,
    DEFAULT_HTTP2_KEEP_ALIVE_INTERVAL, DEFAULT_MAX_CONNECTIONS_PER_HOST, H2Connection,
    H2ConnectionBuilder, HttpClient, HttpClientBuilder, ResponseBody, ResponseFuture,
};
pub use error::{Error, Result};
#[cfg(feature = "server")]
pub use server::{
    DEFAULT_DEADLINE_GRACE, DEFAULT_DRAIN_TIMEOUT, DEFAULT_HEADER_READ_TIMEOUT,
    DEFAULT_HTTP2_MAX_CONCURRENT_STREAMS, DEFAULT_IDLE_TIMEOUT, DEFAULT_MAX_CONCURRENT_CALLS,
    DEFAULT_MAX_CONNECTIONS, IncomingBody, Server, ServerBuilder, ServerError, Shutdown,
};
pub use timer::TokioTimer;

/// A boxed error, as transports produce.
pub use connect_tower::BoxError;
