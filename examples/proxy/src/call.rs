//! One proxied call: the client's request admitted by a `ServerCall`, the backend's request
//! made by a `ClientCall`, and a run loop that moves events between the two and bytes
//! between them and the sockets.
//!
//! The loop follows the core's run-loop rule: after every input (a body frame, a response
//! head, a timer) it drains every event and output of both calls before it waits again. What
//! it forwards it never decodes: messages keep the codec the client chose, and compressed
//! payloads cross untouched when both legs use the same compression.

use std::collections::VecDeque;
use std::future::{Future, pending};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use connect_proto_core::{
    ClientCall, ClientEvent, ClientOutput, ServerCall, ServerEvent, ServerOutput, Status,
    UsageError,
};
use http::{Request, Response};
use http_body::Frame;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use tokio::sync::{mpsc, oneshot};

use crate::Inner;
use crate::body::{ChannelBody, FRAMES_IN_FLIGHT, Item};

/// The backend's response, on its way.
type BackendResponse = Pin<
    Box<dyn Future<Output = Result<Response<Incoming>, hyper_util::client::legacy::Error>> + Send>,
>;

/// Serves one request: admission, then (for an admitted call) a task that runs the call; the
/// returned response carries the head as soon as the client-facing call writes it.
pub(crate) async fn handle(inner: Arc<Inner>, request: Request<Incoming>) -> Response<ChannelBody> {
    let now = Instant::now();
    let (parts, body) = request.into_parts();
    let spec = inner.method_for(&parts);
    let mut server = match ServerCall::accept(&inner.server_config, now, &parts, |_| spec) {
        Ok(call) => call,
        Err(rejection) => {
            linger(&parts, body);
            let (head, body) = rejection.into_parts();
            return Response::from_parts(head, ChannelBody::full(body));
        }
    };
    let spec = server.method().clone();
    let client = match inner.backend_call(now, &server, &spec, &parts.headers) {
        Ok(client) => client,
        Err(status) => {
            linger(&parts, body);
            let _ = server.finish(Err(status));
            return respond_now(server);
        }
    };
    server.set_pass_through(true);
    let (head_tx, head_rx) = oneshot::channel();
    let call = Call {
        inner,
        server,
        client,
        request_body: Some(body),
        held_request: None,
        head_tx: Some(head_tx),
        pending_head: None,
        http1: parts.version < http::Version::HTTP_2,
        to_client: None,
        to_client_queue: VecDeque::new(),
        to_client_end: false,
        backend_response: None,
        backend_body: None,
        to_backend: None,
        to_backend_queue: VecDeque::new(),
        to_backend_end: false,
    };
    tokio::spawn(call.run());
    match head_rx.await {
        Ok(response) => response,
        // The loop always writes a head before it ends; should it not, fail the request.
        Err(_) => Response::builder()
            .status(http::StatusCode::INTERNAL_SERVER_ERROR)
            .body(ChannelBody::full(Bytes::new()))
            .unwrap_or_else(|_| Response::new(ChannelBody::full(Bytes::new()))),
    }
}

/// A request answered before its body was read: over HTTP/1.1 the body is still read (and
/// dropped, within bounds) while the answer goes out, so a client still writing it sees the
/// answer rather than a reset connection; HTTP/2 streams simply end.
fn linger(head: &http::request::Parts, body: Incoming) {
    if head.version < http::Version::HTTP_2 {
        tokio::spawn(drain(body));
    }
}

/// The response of a call that ended before anything was forwarded.
fn respond_now(mut server: ServerCall) -> Response<ChannelBody> {
    let (tx, body) = ChannelBody::channel();
    let mut head = None;
    while let Some(output) = server.poll_output() {
        let frame = match output {
            ServerOutput::Head(parts) => {
                head = Some(parts);
                continue;
            }
            ServerOutput::Data(data) => Frame::data(data),
            ServerOutput::Trailers(trailers) => Frame::trailers(trailers),
            _ => break,
        };
        // A rendered error is a head, at most one body chunk and trailers: it fits.
        let _ = tx.try_send(Ok(frame));
    }
    match head {
        Some(head) => Response::from_parts(head, body),
        None => Response::new(ChannelBody::full(Bytes::new())),
    }
}

struct Call {
    inner: Arc<Inner>,
    /// The call with the client.
    server: ServerCall,
    /// The call with the backend.
    client: ClientCall,
    request_body: Option<Incoming>,
    /// A unary request's message, until the request ends.
    held_request: Option<Held>,
    head_tx: Option<oneshot::Sender<Response<ChannelBody>>>,
    /// The response head, held until the outputs that came with it are drained: a response
    /// complete at that point goes out whole (a gRPC trailers-only response must end with
    /// its head; a unary body gets an exact length).
    pending_head: Option<http::response::Parts>,
    /// HTTP/1.1: a request body still arriving after the response is read to its end, so
    /// the client can finish writing and read the answer (no reset under its feet).
    http1: bool,
    to_client: Option<mpsc::Sender<Item>>,
    to_client_queue: VecDeque<Item>,
    /// The client-facing response ends once its queue is written.
    to_client_end: bool,
    backend_response: Option<BackendResponse>,
    backend_body: Option<Incoming>,
    to_backend: Option<mpsc::Sender<Item>>,
    to_backend_queue: VecDeque<Item>,
    /// The backend request ends once its queue is written.
    to_backend_end: bool,
}

impl Call {
    async fn run(mut self) {
        loop {
            self.pump();
            if self.server.is_finished() && !self.client.is_finished() {
                // The client-facing call ended first (its deadline, the client went away, a
                // broken request): the backend call has no one to answer.
                self.client.cancel();
                self.pump();
            }
            self.close_finished_bodies();
            if self.server.is_finished() && self.to_client.is_none() && self.head_tx.is_none() {
                if self.http1 {
                    if let Some(body) = self.request_body.take() {
                        drain(body).await;
                    }
                }
                return;
            }
            let deadline = match (self.server.poll_timeout(), self.client.poll_timeout()) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            let read_request = self.to_backend_queue.len() < FRAMES_IN_FLIGHT;
            let read_backend = self.to_client_queue.len() < FRAMES_IN_FLIGHT;
            let wake = tokio::select! {
                biased;
                ready = has_room(self.to_client.as_ref()), if !self.to_client_queue.is_empty() => {
                    Wake::ClientRoom(ready)
                }
                ready = has_room(self.to_backend.as_ref()), if !self.to_backend_queue.is_empty() => {
                    Wake::BackendRoom(ready)
                }
                () = closed(self.to_client.as_ref()) => Wake::ClientRoom(false),
                frame = next_frame(self.request_body.as_mut()), if read_request => {
                    Wake::RequestFrame(frame)
                }
                response = poll_response(self.backend_response.as_mut()) => {
                    Wake::BackendResponse(response)
                }
                frame = next_frame(self.backend_body.as_mut()), if read_backend => {
                    Wake::BackendFrame(frame)
                }
                () = sleep_until(deadline) => Wake::Timer,
            };
            self.on_wake(wake);
        }
    }

    fn on_wake(&mut self, wake: Wake) {
        match wake {
            Wake::ClientRoom(true) => send_one(self.to_client.as_ref(), &mut self.to_client_queue),
            Wake::ClientRoom(false) => self.client_gone(),
            Wake::BackendRoom(true) => {
                send_one(self.to_backend.as_ref(), &mut self.to_backend_queue);
            }
            // hyper dropped the request body: the response side tells why.
            Wake::BackendRoom(false) => {
                self.to_backend = None;
                self.to_backend_queue.clear();
            }
            Wake::RequestFrame(frame) => self.on_request_frame(frame),
            Wake::BackendResponse(response) => {
                self.backend_response = None;
                self.on_backend_response(response);
            }
            Wake::BackendFrame(frame) => self.on_backend_frame(frame),
            Wake::Timer => {
                let now = Instant::now();
                self.server.handle_timeout(now);
                self.client.handle_timeout(now);
            }
        }
    }

    /// Drains both calls until neither has anything more to say.
    fn pump(&mut self) {
        loop {
            let mut progressed = false;
            while let Some(event) = self.server.poll_event() {
                progressed = true;
                self.on_server_event(event);
            }
            while let Some(output) = self.client.poll_output() {
                progressed = true;
                self.on_client_output(output);
            }
            while let Some(event) = self.client.poll_event() {
                progressed = true;
                self.on_client_event(event);
            }
            while let Some(output) = self.server.poll_output() {
                progressed = true;
                self.on_server_output(output);
            }
            if !progressed {
                self.release_head();
                return;
            }
        }
    }

    /// Hands the response head to hyper: with the whole body when the response is complete
    /// (only data queued, and its end), otherwise with a body the loop keeps writing.
    fn release_head(&mut self) {
        let Some(head) = self.pending_head.take() else {
            return;
        };
        let complete = self.to_client_end
            && self
                .to_client_queue
                .iter()
                .all(|item| matches!(item, Ok(frame) if frame.is_data()));
        let (tx, body) = if complete {
            let chunks: Vec<Bytes> = self
                .to_client_queue
                .drain(..)
                .filter_map(|item| item.ok()?.into_data().ok())
                .collect();
            (None, ChannelBody::full(chunks.concat().into()))
        } else {
            let (tx, body) = ChannelBody::channel();
            (Some(tx), body)
        };
        let delivered = self
            .head_tx
            .take()
            .is_some_and(|head_tx| head_tx.send(Response::from_parts(head, body)).is_ok());
        if delivered {
            self.to_client = tx;
        } else {
            self.client_gone();
        }
    }

    /// The client's request, towards the backend.
    fn on_server_event(&mut self, event: ServerEvent) {
        let now = Instant::now();
        let unary_request = !self.server.method().kind.streams_requests();
        let sent = match event {
            // A unary request goes on only once the core saw it end with exactly one message:
            // forwarded earlier, a second message could arrive after the backend answered.
            ServerEvent::Message(message) if unary_request => {
                self.held_request = Some(Held::Plain(message));
                Ok(())
            }
            ServerEvent::CompressedMessage(payload) if unary_request => {
                self.held_request = Some(Held::Compressed(payload));
                Ok(())
            }
            ServerEvent::Message(message) => self.client.send_message(now, message),
            ServerEvent::CompressedMessage(payload) => self.forward_compressed(now, payload),
            ServerEvent::RequestEnd => match self.held_request.take() {
                Some(Held::Plain(message)) => self.client.send_message(now, message),
                Some(Held::Compressed(payload)) => self.forward_compressed(now, payload),
                None => self.client.close_send(),
            },
            // The core already queued the answer to the client.
            ServerEvent::Failed(_) => {
                self.client.cancel();
                return;
            }
            _ => Err(UsageError::InvalidRequest(
                "an unknown request event".into(),
            )),
        };
        self.forwarding_failed(sent);
    }

    /// A request payload compressed by the client: as it is when the backend leg uses the
    /// same compression, decompressed (and recompressed by the core) otherwise.
    fn forward_compressed(&mut self, now: Instant, payload: Bytes) -> Result<(), UsageError> {
        if self.client.send_compression() == self.server.request_compression() {
            return self.client.send_compressed_message(now, payload);
        }
        match self.server.decompress_message(payload) {
            Ok(message) => self.client.send_message(now, message),
            Err(error) => {
                let _ = self.server.finish(Err(error.to_status()));
                Ok(())
            }
        }
    }

    /// The backend's response, towards the client.
    fn on_client_event(&mut self, event: ClientEvent) {
        let sent = match event {
            ClientEvent::Headers(headers) => {
                if let Some(target) = self.server.response_headers_mut() {
                    target.extend(headers);
                }
                // Streams start at once, as the backend started them.
                self.server.send_headers()
            }
            ClientEvent::Message(message) => self.server.send_message(message),
            ClientEvent::CompressedMessage(payload) => {
                if self.server.response_compression() == self.client.response_compression() {
                    self.server.send_compressed_message(payload)
                } else {
                    match self.client.decompress_message(payload) {
                        Ok(message) => self.server.send_message(message),
                        Err(error) => Err(UsageError::Compression(error.to_string())),
                    }
                }
            }
            ClientEvent::Finished(outcome) => self.server.finish(outcome),
            _ => Err(UsageError::InvalidRequest(
                "an unknown response event".into(),
            )),
        };
        self.forwarding_failed(sent);
    }

    /// A message that could not be forwarded ends both calls; one for a call that already
    /// ended is dropped (its outcome is on its way).
    fn forwarding_failed(&mut self, sent: Result<(), UsageError>) {
        match sent {
            Ok(()) | Err(UsageError::AlreadyFinished) => {}
            Err(error) => {
                let _ = self.server.finish(Err(Status::from(error)));
                self.client.cancel();
            }
        }
    }

    fn on_client_output(&mut self, output: ClientOutput) {
        match output {
            ClientOutput::Head(parts) => {
                let (tx, body) = ChannelBody::channel();
                self.to_backend = Some(tx);
                let request = Request::from_parts(parts, body);
                self.backend_response = Some(Box::pin(self.inner.backend.request(request)));
            }
            ClientOutput::Data(data) => self.to_backend_queue.push_back(Ok(Frame::data(data))),
            ClientOutput::End => self.to_backend_end = true,
            ClientOutput::Cancel => {
                self.to_backend_queue.clear();
                if let Some(tx) = self.to_backend.take() {
                    // An error frame makes hyper abandon the request (an HTTP/2 reset).
                    let _ = tx.try_send(Err("the call was cancelled".into()));
                }
                self.backend_response = None;
                self.backend_body = None;
            }
            // An output a newer core might add: abandon the backend call.
            _ => self.client.cancel(),
        }
    }

    fn on_server_output(&mut self, output: ServerOutput) {
        match output {
            ServerOutput::Head(parts) => self.pending_head = Some(parts),
            ServerOutput::Data(data) => self.to_client_queue.push_back(Ok(Frame::data(data))),
            ServerOutput::Trailers(trailers) => {
                self.to_client_queue
                    .push_back(Ok(Frame::trailers(trailers)));
            }
            ServerOutput::End => self.to_client_end = true,
            // An output a newer core might add: the response ends (cut short, never a
            // silent success).
            _ => {
                self.to_client_queue.clear();
                self.to_client_end = true;
            }
        }
    }

    fn on_request_frame(&mut self, frame: Option<Result<Frame<Bytes>, hyper::Error>>) {
        match frame {
            Some(Ok(frame)) => {
                // Request trailers carry nothing the protocols use.
                if let Ok(data) = frame.into_data() {
                    self.server.handle_data(Instant::now(), data);
                }
            }
            Some(Err(error)) => {
                self.request_body = None;
                if reset_code(&error).is_some() {
                    self.server.handle_reset();
                } else {
                    self.server.handle_body_error(&error.to_string());
                }
            }
            None => {
                self.request_body = None;
                self.server.handle_end(None);
            }
        }
    }

    fn on_backend_response(
        &mut self,
        response: Result<Response<Incoming>, hyper_util::client::legacy::Error>,
    ) {
        match response {
            Ok(response) => {
                let (head, body) = response.into_parts();
                self.client.handle_response_head(head);
                self.backend_body = Some(body);
            }
            Err(error) => self.backend_failed(&error),
        }
    }

    fn on_backend_frame(&mut self, frame: Option<Result<Frame<Bytes>, hyper::Error>>) {
        match frame {
            Some(Ok(frame)) => match frame.into_data() {
                Ok(data) => self.client.handle_data(data),
                Err(frame) => {
                    if let Ok(trailers) = frame.into_trailers() {
                        self.client.handle_trailers(trailers);
                    }
                }
            },
            Some(Err(error)) => {
                self.backend_body = None;
                self.backend_failed(&error);
            }
            None => {
                self.backend_body = None;
                self.client.handle_end();
            }
        }
    }

    fn backend_failed(&mut self, error: &(dyn std::error::Error + 'static)) {
        match reset_code(error) {
            Some(code) => self.client.handle_reset(Instant::now(), Some(code)),
            None => self.client.handle_transport_error(&error_chain(error)),
        }
    }

    /// The client went away (its connection closed, it reset the stream): both calls end.
    fn client_gone(&mut self) {
        self.to_client = None;
        self.to_client_queue.clear();
        self.head_tx = None;
        self.request_body = None;
        self.server.handle_reset();
        self.client.cancel();
        self.pump();
    }

    /// Ends the bodies whose last frame is written.
    fn close_finished_bodies(&mut self) {
        if self.to_client_end && self.to_client_queue.is_empty() {
            self.to_client = None;
        }
        if self.to_backend_end && self.to_backend_queue.is_empty() {
            self.to_backend = None;
        }
    }
}

/// The most of an unread HTTP/1.1 request body read (and dropped) after the response, and for
/// how long: enough for a client to finish writing a message over the limit and read why.
const DRAIN_BYTES: usize = 8 << 20;
const DRAIN_TIME: std::time::Duration = std::time::Duration::from_secs(5);

/// Reads what is left of a request body, within bounds, so an HTTP/1.1 client still writing
/// it sees the response instead of a reset connection.
async fn drain(mut body: Incoming) {
    let reading = async {
        let mut read = 0;
        while let Some(Ok(frame)) = body.frame().await {
            read += frame.data_ref().map_or(0, Bytes::len);
            if read > DRAIN_BYTES {
                return;
            }
        }
    };
    let _ = tokio::time::timeout(DRAIN_TIME, reading).await;
}

/// A unary request's one message, as it arrived.
enum Held {
    Plain(Bytes),
    Compressed(Bytes),
}

/// What woke the run loop.
enum Wake {
    /// Room in the client-facing body (`false`: the client is gone).
    ClientRoom(bool),
    /// Room in the backend request body (`false`: hyper dropped it).
    BackendRoom(bool),
    RequestFrame(Option<Result<Frame<Bytes>, hyper::Error>>),
    BackendResponse(Result<Response<Incoming>, hyper_util::client::legacy::Error>),
    BackendFrame(Option<Result<Frame<Bytes>, hyper::Error>>),
    Timer,
}

/// Whether `tx` has room for one more frame, once it has (never, without a sender).
async fn has_room(tx: Option<&mpsc::Sender<Item>>) -> bool {
    match tx {
        // The permit is dropped at once: this loop is the only sender, so the room stays.
        Some(tx) => tx.reserve().await.is_ok(),
        None => pending().await,
    }
}

/// Sends the first queued frame into `tx`, which has room.
fn send_one(tx: Option<&mpsc::Sender<Item>>, queue: &mut VecDeque<Item>) {
    if let (Some(tx), Some(item)) = (tx, queue.pop_front()) {
        if let Err(mpsc::error::TrySendError::Full(item)) = tx.try_send(item) {
            queue.push_front(item);
        }
    }
}

/// Completes when `tx`'s receiver is gone (never, without a sender).
async fn closed(tx: Option<&mpsc::Sender<Item>>) {
    match tx {
        Some(tx) => tx.closed().await,
        None => pending().await,
    }
}

/// The next frame of `body` (never, without one).
async fn next_frame(body: Option<&mut Incoming>) -> Option<Result<Frame<Bytes>, hyper::Error>> {
    match body {
        Some(body) => body.frame().await,
        None => pending().await,
    }
}

async fn poll_response(
    response: Option<&mut BackendResponse>,
) -> Result<Response<Incoming>, hyper_util::client::legacy::Error> {
    match response {
        Some(response) => response.await,
        None => pending().await,
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline.into()).await,
        None => pending().await,
    }
}

/// The HTTP/2 error code of a stream reset somewhere in `error`'s source chain.
fn reset_code(error: &(dyn std::error::Error + 'static)) -> Option<u32> {
    let mut current = Some(error);
    while let Some(error) = current {
        if let Some(h2) = error.downcast_ref::<h2::Error>() {
            return h2.reason().map(u32::from);
        }
        current = error.source();
    }
    None
}

/// An error and its causes, one line.
fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut current = error.source();
    while let Some(cause) = current {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        current = cause.source();
    }
    text
}
