//! The `pair_ops` target: a client call and a server call wired back to back in memory.

use std::time::{Duration, Instant};

use arbitrary::{Arbitrary, Unstructured};
use bytes::Bytes;
use connect_proto_core::internal::metadata::metadata_of;
use connect_proto_core::{
    ClientCall, ClientOutput, Rejection, ServerCall, ServerOutput, Status, UsageError,
};
use http::HeaderMap;

use crate::client_ops::{ClientCheck, ClientConfigSpec, OptionsSpec};
use crate::head::ServerConfigSpec;
use crate::server_ops::ServerCheck;
use crate::spec::{HeaderSpec, MAX_OPS, METHODS, StatusSpec, chunks, header_map, lookup};

#[derive(Arbitrary, Debug)]
struct PairScenario {
    client: ClientConfigSpec,
    options: OptionsSpec,
    method: u8,
    server: ServerConfigSpec,
    /// Chunk sizes for request bodies and for response bodies.
    request_chunking: Vec<u8>,
    response_chunking: Vec<u8>,
    ops: Vec<PairOp>,
}

#[derive(Arbitrary, Debug)]
enum PairOp {
    ClientSend(Vec<u8>),
    ClientClose,
    ClientCancel,
    ServerSetHeader(HeaderSpec),
    ServerSendHeaders,
    ServerSend(Vec<u8>),
    ServerFinishOk(Vec<HeaderSpec>),
    ServerFinishErr(StatusSpec),
    Advance(u16),
}

/// Plays whole RPCs of every shape, protocol, codec and compression between a `ClientCall`
/// and a `ServerCall` (admission included), with generated configurations on both sides,
/// arbitrary chunking and a shared fake clock. On top of each side's own invariants (see
/// `client_ops` and `server_ops`): the server receives a prefix of what the client sent and
/// the client a prefix of what the server sent; a complete response always finishes the
/// client; unless the client abandoned the call itself (a `Cancel`), its outcome is the
/// server's: the same code, message and details for an error (a rejection's included), and
/// for success every message and the trailing metadata.
pub fn pair_ops(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let Ok(scenario) = PairScenario::arbitrary(&mut u) else {
        return;
    };
    crate::spec::debug(&scenario);
    let client_config = scenario.client.config();
    let method = METHODS[usize::from(scenario.method) % METHODS.len()].clone();
    let ct = scenario.client.content_type(method.kind);
    let mut now = Instant::now();
    let Ok(client) = ClientCall::start(&client_config, now, &method, scenario.options.options())
    else {
        return;
    };
    let mut pair = Pair {
        server_config: scenario.server.config(),
        request_chunking: scenario.request_chunking.iter().take(8).copied().collect(),
        response_chunking: scenario.response_chunking.iter().take(8).copied().collect(),
        client,
        client_check: ClientCheck::new(method, ct),
        client_sent: Vec::new(),
        client_received: Vec::new(),
        client_cancelled: false,
        server: None,
        server_check: None,
        server_sent: Vec::new(),
        server_outcome: None,
        server_done: false,
        rejected: false,
    };
    pair.pump(now);
    for op in scenario.ops.iter().take(MAX_OPS) {
        match op {
            PairOp::ClientSend(message) => {
                let message = Bytes::copy_from_slice(message);
                if pair.client.send_message(now, message.clone()).is_ok() {
                    pair.client_sent.push(message);
                }
            }
            PairOp::ClientClose => {
                let _ = pair.client.close_send();
            }
            PairOp::ClientCancel => pair.client.cancel(),
            PairOp::Advance(ms) => {
                now += Duration::from_millis(u64::from(*ms));
                pair.client.handle_timeout(now);
                if let Some(server) = &mut pair.server {
                    server.handle_timeout(now);
                }
            }
            PairOp::ServerSetHeader(spec) => {
                if let Some(headers) = pair.server.as_mut().and_then(|s| s.response_headers_mut()) {
                    spec.append_to(headers);
                }
            }
            PairOp::ServerSendHeaders => {
                if let Some(server) = &mut pair.server {
                    let _ = server.send_headers();
                }
            }
            PairOp::ServerSend(message) => {
                if let Some(server) = &mut pair.server {
                    let message = Bytes::copy_from_slice(message);
                    if server.send_message(message.clone()).is_ok() {
                        pair.server_sent.push(message);
                    }
                }
            }
            PairOp::ServerFinishOk(trailers) => {
                let trailers = header_map(trailers);
                if let Some(server) = &mut pair.server {
                    let result = server.finish(Ok(trailers.clone()));
                    if result.is_ok() && pair.server_outcome.is_none() {
                        pair.server_outcome = Some(Ok(trailers));
                    }
                }
            }
            PairOp::ServerFinishErr(spec) => {
                if let Some(server) = &mut pair.server {
                    let status = spec.status();
                    if server.finish(Err(status.clone())).is_ok() && pair.server_outcome.is_none() {
                        pair.server_outcome = Some(Err(status));
                    }
                }
            }
        }
        pair.pump(now);
    }
    pair.check_outcome();
}

struct Pair {
    server_config: connect_proto_core::ServerConfig,
    request_chunking: Vec<u8>,
    response_chunking: Vec<u8>,
    client: ClientCall,
    client_check: ClientCheck,
    client_sent: Vec<Bytes>,
    client_received: Vec<Bytes>,
    client_cancelled: bool,
    server: Option<ServerCall>,
    server_check: Option<ServerCheck>,
    server_sent: Vec<Bytes>,
    /// What the server side decided: the application's finish, the call's own failure, or
    /// the rejection's status.
    server_outcome: Option<Result<HeaderMap, Status>>,
    /// The complete response reached the client.
    server_done: bool,
    /// The server rejected the request at admission.
    rejected: bool,
}

impl Pair {
    /// Moves everything either side emitted to the other until both are quiet.
    fn pump(&mut self, now: Instant) {
        loop {
            let (outputs, messages) = self.client_check.drain(&mut self.client, now);
            self.client_received.extend(messages);
            let mut progressed = !outputs.is_empty();
            for output in outputs {
                self.deliver_to_server(now, output);
            }
            if let (Some(server), Some(check)) = (&mut self.server, &mut self.server_check) {
                let outputs = check.drain(server);
                if let Some(status) = check.failure.clone() {
                    if self.server_outcome.is_none() {
                        self.server_outcome = Some(Err(status));
                    }
                }
                progressed |= !outputs.is_empty();
                for output in outputs {
                    self.deliver_to_client(output);
                }
            }
            if !progressed {
                break;
            }
        }
        self.check_progress();
    }

    fn deliver_to_server(&mut self, now: Instant, output: ClientOutput) {
        match output {
            ClientOutput::Head(head) => {
                assert!(self.server.is_none(), "a second request head");
                match ServerCall::accept(&self.server_config, now, &head, lookup) {
                    Ok(call) => {
                        self.server_check = Some(ServerCheck::new(&call));
                        self.server = Some(call);
                    }
                    Err(rejection) => self.reject(rejection),
                }
            }
            ClientOutput::Data(data) => {
                if let Some(server) = &mut self.server {
                    for chunk in chunks(&data, &self.request_chunking) {
                        server.handle_data(now, chunk);
                    }
                }
            }
            ClientOutput::End => {
                if let Some(server) = &mut self.server {
                    server.handle_end(None);
                }
            }
            ClientOutput::Cancel => {
                self.client_cancelled = true;
                if let (Some(server), Some(check)) = (&mut self.server, &mut self.server_check) {
                    check.reset |= !server.is_finished();
                    server.handle_reset();
                }
            }
            other => panic!("an output the harness does not know: {other:?}"),
        }
    }

    fn reject(&mut self, rejection: Rejection) {
        self.server_outcome = rejection.status().cloned().map(Err);
        self.rejected = true;
        let (head, body) = rejection.into_parts();
        self.client.handle_response_head(head);
        if !body.is_empty() {
            self.client.handle_data(body);
        }
        self.client.handle_end();
        self.server_done = true;
    }

    fn deliver_to_client(&mut self, output: ServerOutput) {
        match output {
            ServerOutput::Head(head) => self.client.handle_response_head(head),
            ServerOutput::Data(data) => {
                for chunk in chunks(&data, &self.response_chunking) {
                    self.client.handle_data(chunk);
                }
            }
            ServerOutput::Trailers(trailers) => {
                self.client.handle_trailers(trailers);
                self.client.handle_end();
                self.server_done = true;
            }
            ServerOutput::End => {
                self.client.handle_end();
                self.server_done = true;
            }
            other => panic!("an output the harness does not know: {other:?}"),
        }
    }

    fn check_progress(&mut self) {
        if let Some(check) = &self.server_check {
            assert!(
                self.client_sent.starts_with(&check.received),
                "the server received what the client did not send"
            );
        }
        assert!(
            self.server_sent.starts_with(&self.client_received),
            "the client received what the server did not send"
        );
        if self.server_done {
            assert!(
                self.client.is_finished(),
                "a complete response left the client open"
            );
            assert_eq!(
                self.client.send_message(Instant::now(), Bytes::new()),
                Err(UsageError::AlreadyFinished)
            );
        }
    }

    fn check_outcome(&self) {
        if self.client_cancelled {
            return;
        }
        let (Some(server), Some(client)) = (&self.server_outcome, &self.client_check.outcome)
        else {
            return;
        };
        match (server, client) {
            (Err(want), Err(got)) if self.rejected => {
                // A Connect streaming rejection of an unknown method is a 404: clients take
                // the code from the HTTP status and ignore the body.
                assert_eq!(
                    got.code(),
                    want.code(),
                    "rejected with {want:?}, saw {got:?}"
                );
            }
            (Err(want), Err(got)) => {
                assert_eq!(
                    (got.code(), got.message(), got.details()),
                    (want.code(), want.message(), want.details()),
                    "the client saw another error than the server sent"
                );
            }
            (Ok(want), Ok(got)) => {
                assert_eq!(
                    self.client_received, self.server_sent,
                    "a successful call lost messages"
                );
                let want = metadata_of(want);
                for (name, value) in &want {
                    // Values that can cross every transport: visible ASCII without surrounding
                    // whitespace (HTTP/2 forbids it; trailer blocks and HTTP/1 trim it).
                    let portable = |v: &http::HeaderValue| {
                        v.to_str().is_ok_and(|s| s.trim_matches([' ', '\t']) == s)
                    };
                    if want.get_all(name).iter().all(portable) {
                        assert!(
                            got.get_all(name).iter().any(|v| v == value),
                            "trailer {name} lost"
                        );
                    }
                }
            }
            (want, got) => panic!("the server ended with {want:?}, the client with {got:?}"),
        }
    }
}
