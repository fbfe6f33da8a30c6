//! The shared load generator: the same code drives every server. It replays precomputed request
//! bytes per workload over raw `h2` (gRPC and Connect over h2c) or hyper's HTTP/1.1 client
//! connection (Connect over HTTP/1.1), and checks every response: HTTP status, the gRPC status
//! in the trailers or the Connect end-stream message, and the number of response messages.
//!
//! It doubles as the "bare" client: the cheapest possible client on this stack.

use std::cell::Cell;
use std::future::Future;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, Uri};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;

use crate::envelope::{EnvelopeScanner, Piece};
use crate::workload::{Kind, Messages, SERVICE, Shape, Wire, envelope};

/// HTTP/2 windows of the load generator's connections (generous, as real clients set them).
const STREAM_WINDOW: u32 = 2 * 1024 * 1024;
const CONNECTION_WINDOW: u32 = 8 * 1024 * 1024;

/// One workload over one wire, ready to replay.
#[derive(Clone, Debug)]
pub struct Plan {
    pub kind: Kind,
    pub wire: Wire,
    uri: Uri,
    headers: HeaderMap,
    /// Request body chunks: one per message (a bare body for Connect unary).
    chunks: Vec<Bytes>,
    /// The whole request body (HTTP/1.1 sends it at once).
    body: Bytes,
}

impl Plan {
    /// The request of `kind` over `wire` to the server at `addr`.
    pub fn new(messages: &Messages, kind: Kind, wire: Wire, addr: SocketAddr) -> Self {
        let uri: Uri = format!("http://{addr}{SERVICE}{}", kind.method())
            .parse()
            .expect("valid uri");
        let mut headers = HeaderMap::new();
        let streaming = kind.shape() != Shape::Unary;
        let content_type = match wire {
            Wire::Grpc => "application/grpc",
            _ if streaming => "application/connect+proto",
            _ => "application/proto",
        };
        headers.insert("content-type", HeaderValue::from_static(content_type));
        match wire {
            Wire::Grpc => {
                headers.insert("te", HeaderValue::from_static("trailers"));
            }
            Wire::ConnectH2 | Wire::ConnectH1 => {
                headers.insert("connect-protocol-version", HeaderValue::from_static("1"));
            }
        }
        let bare = wire != Wire::Grpc && !streaming;
        let chunks: Vec<Bytes> = messages
            .requests(kind)
            .into_iter()
            .map(|m| if bare { m } else { envelope(0, &m) })
            .collect();
        let body = Bytes::from(chunks.concat());
        Plan {
            kind,
            wire,
            uri,
            headers,
            chunks,
            body,
        }
    }

    fn head(&self) -> Request<()> {
        let mut request = Request::new(());
        *request.method_mut() = Method::POST;
        *request.uri_mut() = self.uri.clone();
        *request.headers_mut() = self.headers.clone();
        request
    }
}

/// Reads a response body incrementally: counts messages, keeps the end-of-stream frame.
pub struct ResponseReader {
    wire: Wire,
    enveloped: bool,
    envelopes: EnvelopeScanner,
    /// Complete response messages.
    pub messages: usize,
    end_frame: Option<Vec<u8>>,
    bare_len: usize,
}

impl ResponseReader {
    /// A reader for the response of `plan`.
    pub fn new(plan: &Plan) -> Self {
        ResponseReader {
            wire: plan.wire,
            enveloped: plan.wire == Wire::Grpc || plan.kind.shape() != Shape::Unary,
            envelopes: EnvelopeScanner::default(),
            messages: 0,
            end_frame: None,
            bare_len: 0,
        }
    }

    /// Feeds a body chunk.
    pub fn feed(&mut self, chunk: &[u8]) {
        if !self.enveloped {
            self.bare_len += chunk.len();
            return;
        }
        // Flag 0x02 ends a Connect stream, 0x80 carries gRPC-Web trailers.
        let is_end = |flags: u8| flags & 0x82 != 0;
        let end_frame = &mut self.end_frame;
        let messages = &mut self.messages;
        self.envelopes.feed(chunk, |piece| match piece {
            Piece::Payload(flags, payload) if is_end(flags) => {
                end_frame
                    .get_or_insert_with(Vec::new)
                    .extend_from_slice(payload);
            }
            Piece::Payload(..) => {}
            Piece::End(flags) if is_end(flags) => {
                end_frame.get_or_insert_with(Vec::new);
            }
            Piece::End(_) => *messages += 1,
        });
    }

    /// Checks the whole response.
    pub fn finish(
        self,
        status: http::StatusCode,
        headers: &HeaderMap,
        trailers: Option<&HeaderMap>,
        expected: usize,
    ) -> Result<(), String> {
        if status != http::StatusCode::OK {
            return Err(format!("HTTP status {status}"));
        }
        if !self.envelopes.at_boundary() {
            return Err("the body ended inside an envelope".into());
        }
        let messages = if self.enveloped {
            self.messages
        } else {
            usize::from(self.bare_len > 0)
        };
        match self.wire {
            Wire::Grpc => {
                let status = trailers
                    .and_then(|t| t.get("grpc-status"))
                    .or_else(|| headers.get("grpc-status"));
                match status.map(HeaderValue::as_bytes) {
                    Some(b"0") => {}
                    Some(other) => {
                        let message = trailers
                            .and_then(|t| t.get("grpc-message"))
                            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
                        return Err(format!(
                            "grpc-status {} {message:?}",
                            String::from_utf8_lossy(other)
                        ));
                    }
                    None => return Err("no grpc-status".into()),
                }
            }
            Wire::ConnectH2 | Wire::ConnectH1 if self.enveloped => match &self.end_frame {
                Some(end) if !end.windows(7).any(|w| w == b"\"error\"") => {}
                Some(end) => return Err(format!("end-stream {}", String::from_utf8_lossy(end))),
                None => return Err("no end-stream message".into()),
            },
            _ => {}
        }
        if messages != expected {
            return Err(format!("{messages} response messages, expected {expected}"));
        }
        Ok(())
    }
}

/// Opens an h2c connection; its driver runs as a local task.
pub async fn h2_connect(addr: SocketAddr) -> Result<h2::client::SendRequest<Bytes>, String> {
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| e.to_string())?;
    let _ = tcp.set_nodelay(true);
    let (send, connection) = h2::client::Builder::new()
        .initial_window_size(STREAM_WINDOW)
        .initial_connection_window_size(CONNECTION_WINDOW)
        .handshake::<_, Bytes>(tcp)
        .await
        .map_err(|e| e.to_string())?;
    tokio::task::spawn_local(async move {
        let _ = connection.await;
    });
    Ok(send)
}

/// Opens an HTTP/1.1 connection; its driver runs as a local task.
pub async fn h1_connect(
    addr: SocketAddr,
) -> Result<hyper::client::conn::http1::SendRequest<Full<Bytes>>, String> {
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| e.to_string())?;
    let _ = tcp.set_nodelay(true);
    let (send, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .map_err(|e| e.to_string())?;
    tokio::task::spawn_local(async move {
        let _ = connection.await;
    });
    Ok(send)
}

/// One call over h2.
pub async fn h2_call(send: &h2::client::SendRequest<Bytes>, plan: &Plan) -> Result<(), String> {
    let err = |e: h2::Error| e.to_string();
    let mut send = send.clone().ready().await.map_err(err)?;
    let (response, mut stream) = send.send_request(plan.head(), false).map_err(err)?;
    let mut reader = ResponseReader::new(plan);
    if plan.kind.shape() == Shape::Bidi {
        let mut response = Some(response);
        let mut body = None;
        for (round, chunk) in plan.chunks.iter().enumerate() {
            stream.send_data(chunk.clone(), false).map_err(err)?;
            if let Some(response) = response.take() {
                let response = response.await.map_err(err)?;
                if response.status() != http::StatusCode::OK {
                    return Err(format!("HTTP status {}", response.status()));
                }
                body = Some(response);
            }
            let Some(response) = body.as_mut() else {
                return Err("no response".into());
            };
            let recv = response.body_mut();
            while reader.messages <= round {
                match recv.data().await {
                    Some(Ok(data)) => {
                        let _ = recv.flow_control().release_capacity(data.len());
                        reader.feed(&data);
                    }
                    Some(Err(e)) => return Err(e.to_string()),
                    None => return Err(format!("stream ended after {round} rounds")),
                }
            }
        }
        stream.send_data(Bytes::new(), true).map_err(err)?;
        let Some(response) = body else {
            return Err("no response".into());
        };
        return read_h2_response(response, reader, plan).await;
    }
    let last = plan.chunks.len() - 1;
    for (i, chunk) in plan.chunks.iter().enumerate() {
        stream.send_data(chunk.clone(), i == last).map_err(err)?;
    }
    let response = response.await.map_err(err)?;
    read_h2_response(response, reader, plan).await
}

async fn read_h2_response(
    response: http::Response<h2::RecvStream>,
    mut reader: ResponseReader,
    plan: &Plan,
) -> Result<(), String> {
    let (parts, mut recv) = response.into_parts();
    while let Some(data) = recv.data().await {
        let data = data.map_err(|e| e.to_string())?;
        let _ = recv.flow_control().release_capacity(data.len());
        reader.feed(&data);
    }
    let trailers = recv.trailers().await.map_err(|e| e.to_string())?;
    reader.finish(
        parts.status,
        &parts.headers,
        trailers.as_ref(),
        plan.kind.responses(),
    )
}

/// One call over HTTP/1.1.
pub async fn h1_call(
    send: &mut hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    plan: &Plan,
) -> Result<(), String> {
    send.ready().await.map_err(|e| e.to_string())?;
    let mut request = Request::new(Full::new(plan.body.clone()));
    *request.method_mut() = Method::POST;
    *request.uri_mut() = plan.uri.clone();
    *request.headers_mut() = plan.headers.clone();
    request
        .headers_mut()
        .insert("host", HeaderValue::from_static("127.0.0.1"));
    let response = send
        .send_request(request)
        .await
        .map_err(|e| e.to_string())?;
    let (parts, mut body) = response.into_parts();
    let mut reader = ResponseReader::new(plan);
    let mut trailers = None;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| e.to_string())?;
        match frame.into_data() {
            Ok(data) => reader.feed(&data),
            Err(frame) => trailers = frame.into_trailers().ok(),
        }
    }
    reader.finish(
        parts.status,
        &parts.headers,
        trailers.as_ref(),
        plan.kind.responses(),
    )
}

/// Something that makes one call per invocation (a client implementation, or the raw driver).
pub trait Caller: Clone + 'static {
    /// One complete call, checked.
    fn call(&mut self) -> impl Future<Output = Result<(), String>>;
}

/// The raw driver as a [`Caller`].
#[derive(Clone)]
pub enum RawCaller {
    /// A handle to a shared h2 connection.
    H2(h2::client::SendRequest<Bytes>, Rc<Plan>),
    /// A dedicated HTTP/1.1 connection.
    H1(
        Rc<std::cell::RefCell<hyper::client::conn::http1::SendRequest<Full<Bytes>>>>,
        Rc<Plan>,
    ),
}

impl Caller for RawCaller {
    #[allow(
        clippy::await_holding_refcell_ref,
        reason = "a worker owns its HTTP/1.1 connection: the borrow is never contended"
    )]
    async fn call(&mut self) -> Result<(), String> {
        match self {
            RawCaller::H2(send, plan) => h2_call(send, plan).await,
            RawCaller::H1(send, plan) => {
                let mut send = send.borrow_mut();
                h1_call(&mut send, plan).await
            }
        }
    }
}

/// The raw callers for `concurrency` workers: over h2, `connections` shared connections; over
/// HTTP/1.1 one connection per worker.
pub async fn raw_callers(
    plan: &Plan,
    addr: SocketAddr,
    concurrency: usize,
    connections: usize,
) -> Result<Vec<RawCaller>, String> {
    let plan = Rc::new(plan.clone());
    if plan.wire.is_h2() {
        let mut conns = Vec::new();
        for _ in 0..connections.max(1) {
            conns.push(h2_connect(addr).await?);
        }
        Ok((0..concurrency)
            .map(|i| RawCaller::H2(conns[i % conns.len()].clone(), plan.clone()))
            .collect())
    } else {
        let mut callers = Vec::new();
        for _ in 0..concurrency {
            let send = h1_connect(addr).await?;
            callers.push(RawCaller::H1(
                Rc::new(std::cell::RefCell::new(send)),
                plan.clone(),
            ));
        }
        Ok(callers)
    }
}

/// What a phase of calls measured.
#[derive(Debug, Default)]
pub struct PhaseResult {
    pub calls: u64,
    pub errors: u64,
    pub elapsed: Duration,
    /// Per-call latencies in nanoseconds (when recorded).
    pub latencies: Vec<u64>,
    pub first_error: Option<String>,
}

impl PhaseResult {
    /// Calls per second.
    pub fn rate(&self) -> f64 {
        self.calls as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// The latency at quantile `q` (0..=1), in microseconds.
    pub fn quantile_us(&mut self, q: f64) -> f64 {
        if self.latencies.is_empty() {
            return f64::NAN;
        }
        self.latencies.sort_unstable();
        let index = ((self.latencies.len() - 1) as f64 * q).round() as usize;
        self.latencies[index] as f64 / 1000.0
    }
}

/// Runs one worker per caller until `duration` passes (or `max_calls` calls were started), on
/// the current `LocalSet`. Elapsed time runs until the last worker finished its last call.
pub async fn run_phase<C: Caller>(
    callers: &[C],
    duration: Duration,
    max_calls: Option<u64>,
    record_latency: bool,
) -> PhaseResult {
    let start = Instant::now();
    let deadline = start + duration;
    let started = Rc::new(Cell::new(0u64));
    let mut workers = Vec::new();
    for caller in callers {
        let mut caller = caller.clone();
        let started = started.clone();
        workers.push(tokio::task::spawn_local(async move {
            let mut result = PhaseResult::default();
            if record_latency {
                result.latencies.reserve(1 << 16);
            }
            loop {
                if Instant::now() >= deadline {
                    break;
                }
                if let Some(max) = max_calls
                    && started.get() >= max
                {
                    break;
                }
                started.set(started.get() + 1);
                let t0 = Instant::now();
                match caller.call().await {
                    Ok(()) => {
                        result.calls += 1;
                        if record_latency {
                            result.latencies.push(t0.elapsed().as_nanos() as u64);
                        }
                    }
                    Err(e) => {
                        result.errors += 1;
                        if result.first_error.is_none() {
                            result.first_error = Some(e);
                        }
                    }
                }
            }
            result
        }));
    }
    let mut total = PhaseResult::default();
    for worker in workers {
        if let Ok(r) = worker.await {
            total.calls += r.calls;
            total.errors += r.errors;
            total.latencies.extend(r.latencies);
            if total.first_error.is_none() {
                total.first_error = r.first_error;
            }
        }
    }
    total.elapsed = start.elapsed();
    total
}
