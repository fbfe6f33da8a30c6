//! The workloads: which method, which messages, how many responses, over which wires; and the
//! request bytes every client replays (built once with prost, so every server and every client
//! sees byte-identical messages).

use bytes::{BufMut, Bytes, BytesMut};
use prost::Message as _;

use crate::tonic_proto as pb;

/// The service path prefix.
pub const SERVICE: &str = "/bench.v1.BenchService/";

/// How many ping-pong rounds one bidi stream plays.
pub const PING_PONG_ROUNDS: usize = 10;
/// How many messages a client stream sends.
pub const UPLOAD_MESSAGES: usize = 10;
/// How many records a log batch holds.
pub const LOG_RECORDS: usize = 50;

/// One workload.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// Unary, small message both ways.
    Echo,
    /// Unary, ~15 KB of structured records in, a checksum out.
    Ingest,
    /// Server streaming, 10 responses.
    Stream10,
    /// Server streaming, 1,000 responses.
    Stream1000,
    /// Server streaming, 100 responses (the proxy comparison only).
    Stream100,
    /// Client streaming, 10 requests.
    Upload10,
    /// Bidi streaming, 10 request/response rounds.
    PingPong,
}

/// The RPC shape of a workload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    Unary,
    ServerStream,
    ClientStream,
    Bidi,
}

/// A protocol and HTTP version.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Wire {
    /// gRPC over h2c.
    Grpc,
    /// Connect over h2c.
    ConnectH2,
    /// Connect over HTTP/1.1.
    ConnectH1,
}

impl Wire {
    /// Short name for tables.
    pub fn name(self) -> &'static str {
        match self {
            Wire::Grpc => "grpc",
            Wire::ConnectH2 => "connect-h2c",
            Wire::ConnectH1 => "connect-h1",
        }
    }

    /// Whether the wire is HTTP/2.
    pub fn is_h2(self) -> bool {
        !matches!(self, Wire::ConnectH1)
    }
}

impl Kind {
    /// Every workload, in report order.
    pub const ALL: [Kind; 6] = [
        Kind::Echo,
        Kind::Ingest,
        Kind::Stream10,
        Kind::Stream1000,
        Kind::Upload10,
        Kind::PingPong,
    ];

    /// Short name for tables.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Echo => "unary_echo",
            Kind::Ingest => "log_ingest",
            Kind::Stream10 => "server_stream_10",
            Kind::Stream1000 => "server_stream_1000",
            Kind::Stream100 => "server_stream_100",
            Kind::Upload10 => "client_stream_10",
            Kind::PingPong => "bidi_pingpong_10",
        }
    }

    /// The method name.
    pub fn method(self) -> &'static str {
        match self {
            Kind::Echo => "Echo",
            Kind::Ingest => "Ingest",
            Kind::Stream10 | Kind::Stream100 | Kind::Stream1000 => "Download",
            Kind::Upload10 => "Upload",
            Kind::PingPong => "PingPong",
        }
    }

    /// The RPC shape.
    pub fn shape(self) -> Shape {
        match self {
            Kind::Echo | Kind::Ingest => Shape::Unary,
            Kind::Stream10 | Kind::Stream100 | Kind::Stream1000 => Shape::ServerStream,
            Kind::Upload10 => Shape::ClientStream,
            Kind::PingPong => Shape::Bidi,
        }
    }

    /// The wires the workload runs over (bidi ping-pong needs full duplex: HTTP/2 only).
    pub fn wires(self) -> &'static [Wire] {
        match self {
            Kind::PingPong => &[Wire::Grpc, Wire::ConnectH2],
            _ => &[Wire::Grpc, Wire::ConnectH2, Wire::ConnectH1],
        }
    }

    /// Responses per call.
    pub fn responses(self) -> usize {
        match self {
            Kind::Stream10 => 10,
            Kind::Stream100 => 100,
            Kind::Stream1000 => 1000,
            Kind::PingPong => PING_PONG_ROUNDS,
            _ => 1,
        }
    }

    /// Parses a name.
    pub fn from_name(name: &str) -> Option<Kind> {
        Kind::ALL
            .into_iter()
            .chain([Kind::Stream100])
            .find(|k| k.name() == name)
    }
}

/// The messages of every workload, as prost values and as encoded bytes.
#[derive(Clone, Debug)]
pub struct Messages {
    pub echo: pb::EchoRequest,
    pub batch: pb::LogBatch,
    pub stream10: pb::StreamRequest,
    pub stream1000: pb::StreamRequest,
    pub stream100: pb::StreamRequest,
    pub upload: pb::EchoRequest,
    pub ping: pb::EchoRequest,
    /// The checksum the ingest handler must answer.
    pub batch_checksum: u64,
}

/// The text of small messages.
pub const ECHO_TEXT: &str = "hello, benchmark";
/// The text of each streamed response.
pub const STREAM_TEXT: &str = "a streamed response message";

impl Messages {
    /// Builds the deterministic messages.
    pub fn new() -> Self {
        let batch = log_batch();
        let batch_checksum = crate::checksum::prost_batch(&batch);
        Messages {
            echo: pb::EchoRequest {
                message: ECHO_TEXT.into(),
            },
            batch,
            stream10: pb::StreamRequest {
                count: 10,
                message: STREAM_TEXT.into(),
            },
            stream1000: pb::StreamRequest {
                count: 1000,
                message: STREAM_TEXT.into(),
            },
            stream100: pb::StreamRequest {
                count: 100,
                message: STREAM_TEXT.into(),
            },
            upload: pb::EchoRequest {
                message: "one of many uploaded messages".into(),
            },
            ping: pb::EchoRequest {
                message: "ping".into(),
            },
            batch_checksum,
        }
    }

    /// The encoded request messages of one call of `kind`.
    pub fn requests(&self, kind: Kind) -> Vec<Bytes> {
        let one = |m: &dyn Fn() -> Vec<u8>| Bytes::from(m());
        match kind {
            Kind::Echo => vec![one(&|| self.echo.encode_to_vec())],
            Kind::Ingest => vec![one(&|| self.batch.encode_to_vec())],
            Kind::Stream10 => vec![one(&|| self.stream10.encode_to_vec())],
            Kind::Stream1000 => vec![one(&|| self.stream1000.encode_to_vec())],
            Kind::Stream100 => vec![one(&|| self.stream100.encode_to_vec())],
            Kind::Upload10 => vec![one(&|| self.upload.encode_to_vec()); UPLOAD_MESSAGES],
            Kind::PingPong => vec![one(&|| self.ping.encode_to_vec()); PING_PONG_ROUNDS],
        }
    }
}

/// A 5-byte-prefixed envelope.
pub fn envelope(flags: u8, payload: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(5 + payload.len());
    out.put_u8(flags);
    out.put_u32(payload.len() as u32);
    out.put_slice(payload);
    out.freeze()
}

/// 50 log records of about 300 bytes each, deterministic.
fn log_batch() -> pb::LogBatch {
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    const SERVICES: [&str; 4] = ["checkout-service", "payments", "inventory-api", "frontend"];
    const ROUTES: [&str; 4] = [
        "/api/v1/orders/{id}",
        "/api/v1/carts/{id}/items",
        "/healthz",
        "/api/v2/payments",
    ];
    let records = (0..LOG_RECORDS)
        .map(|i| {
            let r = next();
            let mut attributes = std::collections::HashMap::new();
            attributes.insert("http.method".to_string(), "POST".to_string());
            attributes.insert(
                "http.route".to_string(),
                ROUTES[(r % 4) as usize].to_string(),
            );
            attributes.insert("user.id".to_string(), format!("u-{:06}", r % 1_000_000));
            attributes.insert("region".to_string(), "eu-west-1".to_string());
            attributes.insert("request.id".to_string(), format!("{:016x}", next()));
            pb::LogRecord {
                timestamp_unix_nanos: 1_764_000_000_000_000_000 + (i as i64) * 1_000_003,
                severity: (1 + r % 4) as i32,
                service: SERVICES[(r >> 8) as usize % 4].to_string(),
                host: format!("ip-10-0-{}-{}.eu-west-1.compute.internal", r % 7, r % 250),
                message: format!(
                    "processed request {i} for customer {} in {} ms: payment authorised, \
                     order queued for fulfilment",
                    r % 100_000,
                    r % 900
                ),
                source: Some(pb::SourceLocation {
                    file: "src/handlers/payment.rs".to_string(),
                    line: 100 + (r % 400) as u32,
                    function: "process_payment_authorisation".to_string(),
                }),
                attributes,
                trace_id: format!("{:016x}{:016x}", next(), next()),
                span_id: next(),
                tags: vec![
                    "prod".to_string(),
                    "canary".to_string(),
                    format!("shard-{}", r % 16),
                ],
            }
        })
        .collect();
    pb::LogBatch { records }
}
