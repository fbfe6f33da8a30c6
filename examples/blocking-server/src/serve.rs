//! One request: admission by the core, the body fed to the call as it arrives, the handler,
//! and the response written as the call produces it.
//!
//! The run loop is the core's rule: after every `handle_*`, `send_message` or `finish`, drain
//! `poll_event` and `poll_output` (see [`Exchange::drain`]) before touching the socket again.
//! Time enters in two places: `Instant::now()` when the head and each body chunk arrive, and
//! the socket's read timeout, set to what is left until `poll_timeout()`, after which the loop
//! calls `handle_timeout`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, Version};

use connect_proto_core::codec::CodecMessage;
use connect_proto_core::{
    ProtocolError, ServerCall, ServerConfig, ServerEvent, Status, UsageError,
};

use crate::body::{BodyError, BodyItem, BodyReader};
use crate::greet::{HelloReply, HelloRequest, RepeatRequest};
use crate::greeter::{self, GreeterOptions, ReplyStream, Route};
use crate::http1::{Conn, Fill, RequestHead, after};
use crate::response::ResponseWriter;

/// What the connection does after a request.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Next {
    /// Read the next request.
    KeepAlive,
    /// Close, the response being complete (or impossible to finish).
    Close,
}

/// What every request of a server shares.
#[derive(Debug)]
pub(crate) struct Context {
    /// The core's protocol settings (Connect and gRPC-Web).
    pub(crate) protocol: ServerConfig,
    /// The handlers' settings.
    pub(crate) greeter: GreeterOptions,
    /// How long a body read may wait when the call has no timer of its own.
    pub(crate) body_read_timeout: Duration,
    /// Set when the server stops: responses then close their connection.
    pub(crate) stopping: AtomicBool,
}

/// Serves one request whose head was just read.
pub(crate) fn serve_request(conn: &mut Conn, head: RequestHead, ctx: &Context) -> Next {
    let RequestHead {
        parts,
        framing,
        keep_alive,
        expect_continue,
    } = head;
    let keep_alive = keep_alive && !ctx.stopping.load(Ordering::Acquire);
    let mut out = ResponseWriter::new(parts.version == Version::HTTP_10, keep_alive);
    let mut body = BodyReader::new(framing);

    let mut route = None;
    let accepted = ServerCall::accept(&ctx.protocol, Instant::now(), &parts, |path| {
        let (found, spec) = greeter::route(path)?;
        route = Some(found);
        Some(spec)
    });
    let call = match accepted {
        Ok(call) => call,
        Err(rejection) => {
            // Keep the connection only if the rest of the body is already here to skip; a
            // client waiting for `100 Continue` gets none and may or may not send its body.
            if expect_continue || !body.skip_buffered(&mut conn.buf) {
                out.close_after();
            }
            let (head, bytes) = rejection.into_parts();
            return match out.write_complete(conn, head, bytes) {
                Ok(()) if out.keeps_alive() => Next::KeepAlive,
                _ => Next::Close,
            };
        }
    };
    let Some(route) = route else {
        // Unreachable: an accepted call's path was routed.
        return Next::Close;
    };

    let mut exchange = Exchange {
        call,
        out,
        request: None,
        request_ended: false,
        failed: None,
        client_gone: false,
    };
    let wants_body = expect_continue && !body.is_over() && !exchange.call.is_request_done();
    if wants_body && conn.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").is_err() {
        return Next::Close;
    }
    exchange.read_request(conn, &mut body, ctx);
    if exchange.request_ended && !exchange.call.is_finished() {
        exchange.run_handler(conn, route, ctx);
    }
    if !exchange.call.is_finished() {
        // A handler always finishes; this is the safety net that never leaves the wire open.
        let _ = exchange
            .call
            .finish(Err(Status::internal("the handler did not finish")));
        exchange.drain(conn);
    }
    if exchange.client_gone || !exchange.out.is_complete() {
        return Next::Close;
    }
    if exchange.out.keeps_alive() && body.is_done() {
        Next::KeepAlive
    } else {
        Next::Close
    }
}

/// A call in progress and its response.
struct Exchange {
    call: ServerCall,
    out: ResponseWriter,
    /// The request message (both methods take exactly one).
    request: Option<Bytes>,
    /// The request ended well (`RequestEnd`).
    request_ended: bool,
    /// The call failed with this status (its response is queued).
    failed: Option<Status>,
    /// Writing failed or the client closed the connection: the call was reset.
    client_gone: bool,
}

impl Exchange {
    /// Feeds the request body to the call until the request side is done.
    fn read_request(&mut self, conn: &mut Conn, body: &mut BodyReader, ctx: &Context) {
        loop {
            if self.call.is_request_done() && !body.is_done() {
                // The call stopped reading (an error, a GET with a body): the rest of the
                // body cannot be skipped reliably, so the connection closes after the response.
                self.out.close_after();
            }
            self.drain(conn);
            if self.call.is_request_done() || self.client_gone {
                return;
            }
            let now = Instant::now();
            let (wait, call_timer) = match self.call.poll_timeout() {
                Some(at) if at <= now => {
                    self.call.handle_timeout(now);
                    continue;
                }
                Some(at) if at - now <= ctx.body_read_timeout => (at - now, true),
                _ => (ctx.body_read_timeout, false),
            };
            match body.next(conn, wait) {
                Ok(BodyItem::Data(chunk)) => self.call.handle_data(Instant::now(), chunk),
                Ok(BodyItem::End) => self.call.handle_end(None),
                Ok(BodyItem::TimedOut) if call_timer => self.call.handle_timeout(Instant::now()),
                Ok(BodyItem::TimedOut) => self
                    .call
                    .handle_body_error("the request body stalled past the read timeout"),
                Err(BodyError::Malformed(why)) => self.call.handle_body_error(why),
                // The core's rule: a body shorter than its framing is a broken body (answered
                // if the client still reads); a failed socket is a client gone.
                Err(BodyError::Truncated) => self
                    .call
                    .handle_body_error("the connection closed before the request body ended"),
                Err(BodyError::Reset) => self.reset(),
            }
        }
    }

    /// Decodes the request and runs the method's handler, then finishes the call.
    fn run_handler(&mut self, conn: &mut Conn, route: Route, ctx: &Context) {
        let Some(message) = self.request.take() else {
            return;
        };
        let mut scratch = BytesMut::new();
        let outcome = match route {
            Route::SayHello => self
                .decode::<HelloRequest>(&message, ctx)
                .and_then(|request| greeter::say_hello(&request))
                // Not flushed: `finish` follows at once, and the whole response then goes out
                // with a `content-length`.
                .and_then(|reply| self.send(conn, &reply, &mut scratch, false)),
            Route::SayHelloRepeatedly => {
                self.decode::<RepeatRequest>(&message, ctx)
                    .and_then(|request| {
                        let mut replies = Responses {
                            exchange: self,
                            conn,
                            scratch,
                        };
                        greeter::say_hello_repeatedly(&request, &ctx.greeter, &mut replies)
                    })
            }
        };
        if !self.call.is_finished() {
            // A call that already failed (deadline, client gone) has its response queued.
            let _ = self.call.finish(outcome.map(|()| HeaderMap::new()));
        }
        self.drain(conn);
    }

    /// Sends one response message (after checking the deadline), and with `flush` writes it
    /// out at once.
    fn send<M: CodecMessage>(
        &mut self,
        conn: &mut Conn,
        message: &M,
        scratch: &mut BytesMut,
        flush: bool,
    ) -> Result<(), Status> {
        self.check_deadline(conn)?;
        let encoded = self
            .call
            .codec()
            .encode_message_into(message, scratch)
            .map_err(|e| Status::from(UsageError::from(e)))?;
        self.call.send_message(encoded)?;
        if flush {
            self.drain(conn);
        }
        self.ended()
    }

    /// The request message decoded with the call's codec; failures are the core's
    /// `invalid_argument`.
    fn decode<M: CodecMessage>(&self, message: &[u8], ctx: &Context) -> Result<M, Status> {
        self.call
            .codec()
            .decode(message, ctx.protocol.receive_limit())
            .map_err(|e| Status::from(ProtocolError::in_request(e.into())))
    }

    /// Drains the call: events for the application, then outputs to the socket.
    fn drain(&mut self, conn: &mut Conn) {
        while let Some(event) = self.call.poll_event() {
            match event {
                ServerEvent::Message(message) => self.request = Some(message),
                // Only in pass-through mode, which this server never turns on; decompressed
                // all the same, so the event is never lost.
                ServerEvent::CompressedMessage(payload) => {
                    match self.call.decompress_message(payload) {
                        Ok(message) => self.request = Some(message),
                        Err(error) => {
                            let _ = self.call.finish(Err(error.to_status()));
                        }
                    }
                }
                ServerEvent::RequestEnd => self.request_ended = true,
                // The response is already queued by the core.
                ServerEvent::Failed(status) => self.failed = Some(status),
                // An event a newer core might add: end the call rather than ignore it.
                _ => {
                    let _ = self
                        .call
                        .finish(Err(Status::internal("the call produced an unknown event")));
                }
            }
        }
        while let Some(output) = self.call.poll_output() {
            if !self.client_gone {
                self.out.push(output);
            }
        }
        if !self.client_gone && self.out.flush(conn).is_err() {
            self.reset();
        }
    }

    /// The client went away: the call is cancelled and nothing more is written.
    fn reset(&mut self) {
        self.client_gone = true;
        self.call.handle_reset();
        // The core cleared the outputs and reports the cancellation as an event.
        while let Some(event) = self.call.poll_event() {
            if let ServerEvent::Failed(status) = event {
                self.failed = Some(status);
            }
        }
    }

    /// The call's deadline passed: fail it (the core queues `deadline_exceeded`).
    fn check_deadline(&mut self, conn: &mut Conn) -> Result<(), Status> {
        let now = Instant::now();
        if self.call.poll_timeout().is_some_and(|at| at <= now) {
            self.call.handle_timeout(now);
            self.drain(conn);
        }
        self.ended()
    }

    /// `Err` once the call is over, with its status, so the handler stops.
    fn ended(&self) -> Result<(), Status> {
        match &self.failed {
            Some(status) => Err(status.clone()),
            None if self.client_gone || self.call.is_finished() => {
                Err(Status::canceled("the call has ended"))
            }
            None => Ok(()),
        }
    }
}

/// The handler's side of a call: sends replies and waits, watching the deadline and the
/// connection.
struct Responses<'a> {
    exchange: &'a mut Exchange,
    conn: &'a mut Conn,
    /// Reused encoding buffer.
    scratch: BytesMut,
}

impl ReplyStream for Responses<'_> {
    fn send(&mut self, reply: &HelloReply) -> Result<(), Status> {
        self.exchange
            .send(self.conn, reply, &mut self.scratch, true)
    }

    /// Waits by reading the socket with a timeout, so a client that goes away ends the call
    /// at once. Bytes that arrive (a pipelined request) stay buffered for later.
    fn pause(&mut self, pause: Duration) -> Result<(), Status> {
        let until = after(Instant::now(), pause);
        loop {
            self.exchange.check_deadline(self.conn)?;
            let now = Instant::now();
            if now >= until {
                return Ok(());
            }
            let wake = match self.exchange.call.poll_timeout() {
                Some(at) => until.min(at),
                None => until,
            };
            if self.conn.buf.len() >= PIPELINE_BUFFER {
                std::thread::sleep(wake.saturating_duration_since(now));
                continue;
            }
            match self.conn.fill(wake.saturating_duration_since(now)) {
                Ok(Fill::Data(_) | Fill::TimedOut) => {}
                Ok(Fill::Eof) | Err(_) => {
                    self.exchange.reset();
                    return self.exchange.ended();
                }
            }
        }
    }
}

/// The most bytes of a next request read ahead while a streaming response waits.
const PIPELINE_BUFFER: usize = 64 * 1024;
