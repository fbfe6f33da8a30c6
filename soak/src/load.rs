//! The load: idle connections held open, unary calls and server streams over every protocol,
//! and the sampling of the server process meanwhile.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use connect_proto_core::{Codec, Protocol};
use connect_tokio_hyper::HttpClient;
use connect_tower::client::{Client, ClientConfig};
use connect_tower::{Code, Status};
use greeter_example::greet::greeter::GreeterClient;
use greeter_example::greet::{HelloRequest, RepeatRequest};

use crate::sampler::{Sample, sample};
use crate::{BoxError, Plan};

/// Every how many unary calls one is sent to fail on purpose (an empty name:
/// `invalid_argument`), so the error path is soaked too.
const INTENDED_ERROR_EVERY: u64 = 100;
/// Messages per server stream.
const STREAM_MESSAGES: u32 = 5;
/// Concurrent server streams.
const STREAM_WORKERS: usize = 8;

/// What a run measured.
#[derive(Debug, Default)]
pub struct Outcome {
    pub unary_ok: u64,
    pub streams_ok: u64,
    pub stream_messages: u64,
    pub intended_errors: u64,
    /// Errors nobody asked for, by code.
    pub errors: BTreeMap<String, u64>,
    /// Unary latencies, microseconds.
    pub latencies_us: Vec<u32>,
    pub samples: Vec<Sample>,
    pub baseline: Option<Sample>,
    pub after_close: Option<Sample>,
    pub load_started: Duration,
    pub load_ended: Duration,
    pub idle_connections: usize,
}

/// The four client setups: (name, protocol, codec, HTTP/2).
const SETUPS: [(&str, Protocol, Codec, bool); 4] = [
    ("connect-h1-json", Protocol::Connect, Codec::Json, false),
    ("connect-h2c-proto", Protocol::Connect, Codec::Proto, true),
    ("grpc-h2c-proto", Protocol::Grpc, Codec::Proto, true),
    ("grpc-web-h1-proto", Protocol::GrpcWeb, Codec::Proto, false),
];

pub async fn drive(plan: Plan, addr: SocketAddr, pid: u32) -> Result<Outcome, BoxError> {
    let start = Instant::now();
    let mut outcome = Outcome {
        baseline: sample(pid, start),
        ..Outcome::default()
    };
    let samples: Arc<Mutex<Vec<Sample>>> = Arc::default();
    let sampling = {
        let samples = samples.clone();
        tokio::spawn(async move {
            while let Some(s) = sample(pid, start) {
                samples.lock().unwrap_or_else(|p| p.into_inner()).push(s);
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        })
    };

    let idle = open_idle_connections(addr, plan.idle_connections).await?;
    outcome.idle_connections = idle.len();

    let base: http::Uri = format!("http://{addr}").parse()?;
    let clients: Vec<GreeterClient<HttpClient>> = SETUPS
        .iter()
        .map(|(_, protocol, codec, h2)| {
            let transport = if *h2 {
                HttpClient::plaintext_h2c()
            } else {
                HttpClient::plaintext_http1()
            };
            let config = ClientConfig::new(base.clone())
                .protocol(*protocol)
                .codec(*codec)
                .default_timeout(Some(Duration::from_secs(10)));
            GreeterClient::new(Client::new(transport, config))
        })
        .collect();
    let clients = Arc::new(clients);

    outcome.load_started = start.elapsed();
    let unary_next = Arc::new(AtomicU64::new(0));
    let stream_next = Arc::new(AtomicU64::new(0));
    let mut workers = Vec::new();
    for _ in 0..plan.concurrency {
        let (clients, next) = (clients.clone(), unary_next.clone());
        workers.push(tokio::spawn(unary_worker(clients, next, plan.unary_calls)));
    }
    for _ in 0..STREAM_WORKERS {
        let (clients, next) = (clients.clone(), stream_next.clone());
        workers.push(tokio::spawn(stream_worker(clients, next, plan.streams)));
    }
    for worker in workers {
        let tally = worker.await?;
        outcome.unary_ok += tally.unary_ok;
        outcome.streams_ok += tally.streams_ok;
        outcome.stream_messages += tally.stream_messages;
        outcome.intended_errors += tally.intended_errors;
        outcome.latencies_us.extend(tally.latencies_us);
        for (code, count) in tally.errors {
            *outcome.errors.entry(code).or_default() += count;
        }
    }
    outcome.load_ended = start.elapsed();

    // Close every client connection; the server's descriptors must come back to baseline.
    drop(clients);
    drop(idle);
    let baseline_fds = outcome.baseline.map_or(0, |s| s.fds);
    let waiting = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let now = sample(pid, start);
        outcome.after_close = now;
        if now.is_none_or(|s| s.fds <= baseline_fds) || waiting.elapsed() > Duration::from_secs(10)
        {
            break;
        }
    }
    sampling.abort();
    outcome.samples = std::mem::take(&mut *samples.lock().unwrap_or_else(|p| p.into_inner()));
    Ok(outcome)
}

#[derive(Default)]
struct Tally {
    unary_ok: u64,
    streams_ok: u64,
    stream_messages: u64,
    intended_errors: u64,
    errors: BTreeMap<String, u64>,
    latencies_us: Vec<u32>,
}

impl Tally {
    fn error(&mut self, status: &Status) {
        *self
            .errors
            .entry(format!("{}: {}", status.code(), status.message()))
            .or_default() += 1;
    }
}

async fn unary_worker(
    clients: Arc<Vec<GreeterClient<HttpClient>>>,
    next: Arc<AtomicU64>,
    total: u64,
) -> Tally {
    let mut tally = Tally::default();
    loop {
        let n = next.fetch_add(1, Ordering::Relaxed);
        if n >= total {
            return tally;
        }
        let client = &clients[(n % clients.len() as u64) as usize];
        let intended = n % INTENDED_ERROR_EVERY == INTENDED_ERROR_EVERY - 1;
        let name = if intended {
            String::new()
        } else {
            format!("soak {n}")
        };
        let started = Instant::now();
        let result = client
            .say_hello(HelloRequest {
                name,
                ..Default::default()
            })
            .await;
        let micros = u32::try_from(started.elapsed().as_micros()).unwrap_or(u32::MAX);
        match result {
            Ok(_) if !intended => {
                tally.unary_ok += 1;
                tally.latencies_us.push(micros);
            }
            Err(status) if intended && status.code() == Code::InvalidArgument => {
                tally.intended_errors += 1;
            }
            Ok(_) => tally.error(&Status::new(Code::Unknown, "an intended error succeeded")),
            Err(status) => tally.error(&status),
        }
    }
}

async fn stream_worker(
    clients: Arc<Vec<GreeterClient<HttpClient>>>,
    next: Arc<AtomicU64>,
    total: u64,
) -> Tally {
    let mut tally = Tally::default();
    loop {
        let n = next.fetch_add(1, Ordering::Relaxed);
        if n >= total {
            return tally;
        }
        let client = &clients[(n % clients.len() as u64) as usize];
        let request = RepeatRequest {
            name: format!("stream {n}"),
            times: STREAM_MESSAGES,
            ..Default::default()
        };
        let mut stream = match client.say_hello_repeatedly(request).await {
            Ok(stream) => stream,
            Err(status) => {
                tally.error(&status);
                continue;
            }
        };
        let mut received = 0;
        loop {
            match stream.message().await {
                Ok(Some(_)) => received += 1,
                Ok(None) if received == STREAM_MESSAGES => {
                    tally.streams_ok += 1;
                    tally.stream_messages += u64::from(received);
                    break;
                }
                Ok(None) => {
                    tally.error(&Status::new(Code::DataLoss, "a stream ended short"));
                    break;
                }
                Err(status) => {
                    tally.error(&status);
                    break;
                }
            }
        }
    }
}

/// Opens `count` HTTP/2 connections (preface and settings exchanged, no stream) and keeps
/// them open while the returned handles live.
async fn open_idle_connections(
    addr: SocketAddr,
    count: usize,
) -> Result<Vec<IdleConnection>, BoxError> {
    let mut connections = Vec::with_capacity(count);
    let mut opening = tokio::task::JoinSet::new();
    let mut next = 0;
    while connections.len() < count {
        while next < count && opening.len() < 100 {
            next += 1;
            opening.spawn(async move {
                let tcp = tokio::net::TcpStream::connect(addr).await?;
                let (send, connection) = h2::client::handshake(tcp).await?;
                let driver = tokio::spawn(async move {
                    let _ = connection.await;
                });
                Ok::<_, BoxError>(IdleConnection {
                    _send: send,
                    driver,
                })
            });
        }
        match opening.join_next().await {
            Some(joined) => connections.push(joined??),
            None => break,
        }
    }
    Ok(connections)
}

/// An idle HTTP/2 connection; closed when dropped.
pub struct IdleConnection {
    _send: h2::client::SendRequest<Bytes>,
    driver: tokio::task::JoinHandle<()>,
}

impl Drop for IdleConnection {
    fn drop(&mut self) {
        self.driver.abort();
    }
}
