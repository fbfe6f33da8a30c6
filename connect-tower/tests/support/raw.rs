//! A protocol-level client, for tests that poll the server's response future and body by hand.

use std::time::Instant;

use buffa_types::google::protobuf::StringValue;
use bytes::{Bytes, BytesMut};
use connect_proto_core::{ClientCall, ClientEvent, ClientOutput};
use connect_tower::client::CallOptions;
use connect_tower::server::ResponseBody;
use connect_tower::{Codec, MethodSpec, Status};
use http::HeaderMap;
use http_body::Frame;
use http_body_util::{BodyExt, Full};

use super::{Wire, block_on};

/// One call driven at the protocol level with the core's `ClientCall`: the test builds the
/// request, hands it to the service itself, and feeds the response back.
pub struct RawCall {
    call: ClientCall,
    head: Option<http::request::Parts>,
}

/// What a [`RawCall`] saw of the response.
#[derive(Debug)]
pub struct RawOutcome {
    /// The HTTP status.
    pub http_status: http::StatusCode,
    /// The response messages.
    pub messages: Vec<StringValue>,
    /// `Ok(trailers)` or the failure.
    pub result: Result<HeaderMap, Status>,
}

impl RawCall {
    /// Starts a call at `now`; unary-request calls send `messages[0]` with the head.
    pub fn start(
        wire: Wire,
        codec: Codec,
        method: &MethodSpec,
        options: CallOptions,
        now: Instant,
    ) -> RawCall {
        let call = ClientCall::start(&wire.config(codec), now, method, options).expect("start");
        RawCall { call, head: None }
    }

    /// Queues one request message.
    pub fn send(&mut self, now: Instant, message: &StringValue) {
        let bytes = self.call.codec().encode(message).expect("encode");
        self.call.send_message(now, bytes).expect("send");
    }

    /// Ends the request stream.
    pub fn close(&mut self) {
        self.call.close_send().expect("close");
    }

    /// The request head (once available) and the request body bytes queued so far.
    pub fn take_request(&mut self) -> (Option<http::request::Parts>, Bytes) {
        let mut body = BytesMut::new();
        while let Some(output) = self.call.poll_output() {
            match output {
                ClientOutput::Head(head) => self.head = Some(head),
                ClientOutput::Data(data) => body.extend_from_slice(&data),
                ClientOutput::End | ClientOutput::Cancel => {}
                other => panic!("unexpected: {other:?}"),
            }
        }
        (self.head.take(), body.freeze())
    }

    /// A complete request: `messages` sent (and the stream closed for streaming requests).
    pub fn request(
        wire: Wire,
        codec: Codec,
        method: &MethodSpec,
        messages: &[StringValue],
        now: Instant,
    ) -> (RawCall, http::Request<Full<Bytes>>) {
        let mut raw = RawCall::start(wire, codec, method, CallOptions::new(), now);
        for message in messages {
            raw.send(now, message);
        }
        if method.kind.streams_requests() {
            raw.close();
        }
        let (head, body) = raw.take_request();
        let request = http::Request::from_parts(head.expect("request head"), Full::new(body));
        (raw, request)
    }

    /// Feeds a response head.
    pub fn head(&mut self, head: http::response::Parts) {
        self.call.handle_response_head(head);
    }

    /// Feeds one body frame (`None`: the body ended).
    pub fn frame(&mut self, frame: Option<Frame<Bytes>>) {
        match frame {
            None => self.call.handle_end(),
            Some(frame) => match frame.into_data() {
                Ok(data) => self.call.handle_data(data),
                Err(frame) => {
                    self.call
                        .handle_trailers(frame.into_trailers().expect("trailers frame"));
                }
            },
        }
    }

    /// Reads the rest of `body` (it must not get stuck) and reports the outcome.
    pub fn finish(mut self, http_status: http::StatusCode, mut body: ResponseBody) -> RawOutcome {
        loop {
            let frame = block_on(body.frame()).map(|f| f.expect("infallible"));
            let end = frame.is_none();
            self.frame(frame);
            if end {
                break;
            }
        }
        let codec = self.call.codec();
        let mut messages = Vec::new();
        let mut result = None;
        while let Some(event) = self.call.poll_event() {
            match event {
                ClientEvent::Headers(_) => {}
                ClientEvent::Message(bytes) => {
                    messages.push(codec.decode(&bytes, usize::MAX).expect("decode"))
                }
                ClientEvent::CompressedMessage(_) => panic!("pass-through is never enabled here"),
                ClientEvent::Finished(outcome) => result = Some(outcome),
                other => panic!("unexpected: {other:?}"),
            }
        }
        RawOutcome {
            http_status,
            messages,
            result: result.expect("the call finished"),
        }
    }

    /// Reads a whole response.
    pub fn read(mut self, response: http::Response<ResponseBody>) -> RawOutcome {
        let (head, body) = response.into_parts();
        let status = head.status;
        self.head(head);
        self.finish(status, body)
    }
}
