//! Sans-IO protocol core for Connect, gRPC and gRPC-Web.
//!
//! # Contract
//!
//! This crate knows every wire rule of the three protocols and does no I/O: no sockets, no
//! clock, no threads, no `async`. It turns HTTP heads, body chunks and trailers into RPC events
//! and back. Time comes from the caller, only where it moves a timer (`now: Instant` when a
//! call starts, when a unary request body's chunk arrives, when a client writes its request
//! head, when a reset may mean an expired deadline); the core answers `poll_timeout()` and
//! reacts to `handle_timeout(now)`. Nothing derived from the network can
//! make it panic; every broken rule becomes a [`ProtocolError`] that maps to one [`Code`].
//! Messages are carried as encoded bytes; [`Codec`] turns them into buffa messages.
//!
//! # The run loop
//!
//! A call is a state machine. **After every `handle_*` (or `send_*`/`finish`), drain every
//! `poll_*` before waiting for I/O.** Outputs are owned values: nothing borrows the call across
//! an await point. A complete unary exchange, client and server wired back to back:
//!
//! ```
//! use std::time::Instant;
//! use bytes::Bytes;
//! use connect_proto_core::{
//!     CallOptions, ClientCall, ClientConfig, ClientEvent, ClientOutput, MethodKind, MethodSpec,
//!     Idempotency, ServerCall, ServerConfig, ServerEvent, ServerOutput,
//! };
//!
//! const SAY: MethodSpec = MethodSpec::new("/acme.Greeter/Say", MethodKind::Unary, Idempotency::Unknown);
//! let now = Instant::now();
//! let client_config = ClientConfig::new("http://localhost".parse().unwrap());
//! let server_config = ServerConfig::new();
//!
//! // Client: start the call and send the one request message.
//! let mut client = ClientCall::start(&client_config, now, &SAY, CallOptions::new()).unwrap();
//! client.send_message(now, Bytes::from_static(b"\x0a\x03Bob")).unwrap();
//! let (mut head, mut body) = (None, Vec::new());
//! while let Some(out) = client.poll_output() {
//!     match out {
//!         ClientOutput::Head(h) => head = Some(h),
//!         ClientOutput::Data(d) => body.push(d),
//!         // `End`; `Cancel` (never here); outputs a later version may add.
//!         _ => {}
//!     }
//! }
//!
//! // Server: admit the head, feed the body, answer.
//! let mut server = ServerCall::accept(&server_config, now, &head.unwrap(), |path| {
//!     (path == SAY.path).then(|| SAY.clone())
//! })
//! .unwrap();
//! for chunk in body {
//!     server.handle_data(now, chunk);
//! }
//! server.handle_end(None);
//! while let Some(event) = server.poll_event() {
//!     if let ServerEvent::Message(request) = event {
//!         assert_eq!(&request[..], b"\x0a\x03Bob");
//!         server.send_message(Bytes::from_static(b"\x0a\x02hi")).unwrap();
//!         server.finish(Ok(Default::default())).unwrap();
//!     }
//! }
//!
//! // Client: feed the response back.
//! while let Some(out) = server.poll_output() {
//!     match out {
//!         ServerOutput::Head(h) => client.handle_response_head(h),
//!         ServerOutput::Data(d) => client.handle_data(d),
//!         ServerOutput::Trailers(t) => client.handle_trailers(t),
//!         ServerOutput::End => client.handle_end(),
//!         // Outputs a later version may add.
//!         _ => {}
//!     }
//! }
//! let events: Vec<_> = std::iter::from_fn(|| client.poll_event()).collect();
//! assert!(matches!(&events[1], ClientEvent::Message(m) if &m[..] == b"\x0a\x02hi"));
//! assert!(matches!(&events[2], ClientEvent::Finished(Ok(_))));
//! ```
//!
//! # Map
//!
//! | concern | module |
//! |---|---|
//! | server and client call state machines | [`call`] |
//! | codes, statuses, errors | [`code`], [`status`], [`error`] |
//! | protocols, wire forms, content types | [`protocol`] |
//! | method shapes | [`method`] |
//! | codecs (buffa: binary, JSON, views) | [`codec`] |
//! | compression | [`compression`] |
//! | default limits | [`limits`] |
//! | wire pieces (envelopes, error bodies, trailers, timeouts, header names): for fuzzing, tests and frame-level tools | [`internal`] |
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod call;
pub mod code;
pub mod codec;
pub mod compression;
pub mod cors;
pub mod error;
pub mod internal;
pub mod limits;
pub mod method;
pub mod protocol;
pub mod status;

pub use call::{
    Admission, CallOptions, ClientCall, ClientConfig, ClientEvent, ClientOutput, Rejection,
    ServerCall, ServerConfig, ServerEvent, ServerOutput,
};
pub use code::Code;
pub use codec::Codec;
pub use error::{ProtocolError, Rule, UsageError};
pub use method::{Idempotency, MethodKind, MethodSpec};
pub use protocol::{ContentType, Protocol, WireForm};
pub use status::{ErrorDetail, Status};
