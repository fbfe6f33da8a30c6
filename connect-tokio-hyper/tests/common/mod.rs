//! Shared test fixtures: a hand-written `Dispatch`, a running server, and certificates.
#![allow(dead_code)]

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

pub use buffa_types::google::protobuf::StringValue;
use connect_proto_core::Idempotency;
#[cfg(all(feature = "tls", any(feature = "aws-lc-rs", feature = "ring")))]
use connect_tokio_hyper::tls::rustls;
#[cfg(all(feature = "tls", any(feature = "aws-lc-rs", feature = "ring")))]
use connect_tokio_hyper::tls::{ClientAuth, Identity};
use connect_tokio_hyper::{ServerBuilder, Shutdown, TokioTimer};
use connect_tower::codec::decode_owned;
use connect_tower::server::{
    ConnectService, Dispatch, IncomingCall, ResponseSender, Streaming, bidi_streaming,
    client_streaming, server_streaming, unary,
};
use connect_tower::{Code, MethodKind, MethodSpec, Request, Response, Status};

pub const ECHO: MethodSpec = MethodSpec::new(
    "/test.v1.EchoService/Echo",
    MethodKind::Unary,
    Idempotency::Unknown,
);
pub const REPEAT: MethodSpec = MethodSpec::new(
    "/test.v1.EchoService/Repeat",
    MethodKind::ServerStreaming,
    Idempotency::Unknown,
);
pub const SLEEP: MethodSpec = MethodSpec::new(
    "/test.v1.EchoService/Sleep",
    MethodKind::Unary,
    Idempotency::Unknown,
);
pub const PEER: MethodSpec = MethodSpec::new(
    "/test.v1.EchoService/Peer",
    MethodKind::Unary,
    Idempotency::Unknown,
);
pub const FAIL: MethodSpec = MethodSpec::new(
    "/test.v1.EchoService/Fail",
    MethodKind::Unary,
    Idempotency::Unknown,
);

pub const COLLECT: MethodSpec = MethodSpec::new(
    "/test.v1.EchoService/Collect",
    MethodKind::ClientStreaming,
    Idempotency::Unknown,
);
pub const CHAT: MethodSpec = MethodSpec::new(
    "/test.v1.EchoService/Chat",
    MethodKind::BidiStreaming,
    Idempotency::Unknown,
);

static METHODS: [MethodSpec; 7] = [ECHO, REPEAT, SLEEP, PEER, FAIL, COLLECT, CHAT];

/// How many messages `Repeat` sends.
pub const REPEAT_COUNT: usize = 3;

/// A test service:
/// - `Echo` answers with the request;
/// - `Repeat` sends the request `REPEAT_COUNT` times, suffixed with `#i`;
/// - `Sleep` sleeps for the request's value in milliseconds, then answers `slept`;
/// - `Peer` describes the request's `PeerInfo`;
/// - `Fail` answers `resource_exhausted` with the request as message;
/// - `Collect` joins the requests with `,` (and counts a stream that failed in `cancelled`);
/// - `Chat` answers each request with `re: ` and the request.
#[derive(Clone, Default)]
pub struct Echo {
    /// Sleeps that were dropped before they finished.
    pub abandoned: Arc<AtomicUsize>,
    /// Sleeps that started.
    pub started: Arc<AtomicUsize>,
    /// Request streams that failed (the client cancelled).
    pub cancelled: Arc<AtomicUsize>,
}

impl Dispatch for Echo {
    fn methods(&self) -> &[MethodSpec] {
        &METHODS
    }

    fn method(&self, path: &str) -> Option<MethodSpec> {
        METHODS.iter().find(|m| m.path == path).cloned()
    }

    fn dispatch(&self, call: IncomingCall) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        let path = call.method().path.clone();
        if path == ECHO.path {
            Box::pin(unary(
                call,
                decode_owned::<StringValue>,
                |request: Request<StringValue>| async move {
                    Ok(Response::new(string(&request.message().value)))
                },
            ))
        } else if path == REPEAT.path {
            Box::pin(server_streaming(
                call,
                decode_owned::<StringValue>,
                |request: Request<StringValue>, mut sender: ResponseSender<StringValue>| async move {
                    for i in 0..REPEAT_COUNT {
                        sender
                            .send(string(&format!("{}#{i}", request.message().value)))
                            .await?;
                    }
                    Ok(())
                },
            ))
        } else if path == SLEEP.path {
            let abandoned = self.abandoned.clone();
            let started = self.started.clone();
            Box::pin(unary(
                call,
                decode_owned::<StringValue>,
                move |request: Request<StringValue>| async move {
                    started.fetch_add(1, Ordering::SeqCst);
                    let mut guard = DropGuard {
                        counter: abandoned,
                        armed: true,
                    };
                    let millis: u64 = request.message().value.parse().unwrap_or(0);
                    tokio::time::sleep(Duration::from_millis(millis)).await;
                    guard.armed = false;
                    Ok(Response::new(string("slept")))
                },
            ))
        } else if path == COLLECT.path {
            let cancelled = self.cancelled.clone();
            Box::pin(client_streaming(
                call,
                decode_owned::<StringValue>,
                move |request: Request<Streaming<StringValue>>| async move {
                    let mut stream = request.into_message();
                    let mut values = Vec::new();
                    loop {
                        match stream.message().await {
                            Ok(Some(message)) => values.push(message.value),
                            Ok(None) => break,
                            Err(status) => {
                                cancelled.fetch_add(1, Ordering::SeqCst);
                                return Err(status);
                            }
                        }
                    }
                    Ok(Response::new(string(&values.join(","))))
                },
            ))
        } else if path == CHAT.path {
            Box::pin(bidi_streaming(
                call,
                decode_owned::<StringValue>,
                |request: Request<Streaming<StringValue>>,
                 mut sender: ResponseSender<StringValue>| async move {
                    let mut stream = request.into_message();
                    while let Some(message) = stream.message().await? {
                        sender
                            .send(string(&format!("re: {}", message.value)))
                            .await?;
                    }
                    Ok(())
                },
            ))
        } else if path == PEER.path {
            Box::pin(unary(
                call,
                decode_owned::<StringValue>,
                |request: Request<StringValue>| async move {
                    let text = match request.peer() {
                        None => "none".to_owned(),
                        Some(peer) => format!(
                            "tls={} certs={} remote={} local={} version={:?}",
                            peer.tls,
                            peer.tls_client_certs.as_ref().map_or(0, |c| c.len()),
                            peer.remote_addr.is_some(),
                            peer.local_addr.is_some(),
                            request.context().http_version(),
                        ),
                    };
                    Ok(Response::new(string(&text)))
                },
            ))
        } else {
            Box::pin(unary(
                call,
                decode_owned::<StringValue>,
                |request: Request<StringValue>| async move {
                    Err::<Response<StringValue>, _>(Status::new(
                        Code::ResourceExhausted,
                        request.message().value.clone(),
                    ))
                },
            ))
        }
    }
}

struct DropGuard {
    counter: Arc<AtomicUsize>,
    armed: bool,
}

impl Drop for DropGuard {
    fn drop(&mut self) {
        if self.armed {
            self.counter.fetch_add(1, Ordering::SeqCst);
        }
    }
}

pub fn string(value: &str) -> StringValue {
    StringValue {
        value: value.to_owned(),
        ..Default::default()
    }
}

/// A server running in a task.
pub struct Running {
    pub addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    handle: tokio::task::JoinHandle<Shutdown>,
}

impl Running {
    /// Starts graceful shutdown without waiting for it.
    pub fn begin_shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }

    /// Shuts down and waits for the outcome.
    pub async fn shutdown(mut self) -> Shutdown {
        self.begin_shutdown();
        self.handle.await.expect("the server task panicked")
    }

    pub fn http_uri(&self) -> http::Uri {
        format!("http://{}", self.addr).parse().unwrap()
    }

    pub fn https_uri(&self) -> http::Uri {
        format!("https://localhost:{}", self.addr.port())
            .parse()
            .unwrap()
    }
}

/// Serves `echo` (deadlines enforced with `TokioTimer`) on 127.0.0.1, port 0.
pub async fn start(builder: ServerBuilder, echo: Echo) -> Running {
    let service = ConnectService::builder(echo)
        .timer(TokioTimer::new())
        .build();
    start_service(builder, service).await
}

/// Serves any service on 127.0.0.1, port 0.
pub async fn start_service<S, B>(builder: ServerBuilder, service: S) -> Running
where
    S: tower::Service<
            http::Request<connect_tokio_hyper::IncomingBody>,
            Response = http::Response<B>,
        > + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    S::Error: Into<connect_tokio_hyper::BoxError>,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<connect_tokio_hyper::BoxError>,
{
    let server = builder.bind("127.0.0.1:0").await.expect("bind");
    let addr = server.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let handle = tokio::spawn(server.serve_with_shutdown(service, async {
        let _ = stopped.await;
    }));
    Running {
        addr,
        stop: Some(stop),
        handle,
    }
}

#[cfg(all(feature = "tls", any(feature = "aws-lc-rs", feature = "ring")))]
/// A CA, a server certificate for `localhost` and 127.0.0.1, and a client certificate.
pub struct Pki {
    pub ca_pem: String,
    pub server: Identity,
    pub client: Identity,
    pub server_key_pem: String,
}

#[cfg(all(feature = "tls", any(feature = "aws-lc-rs", feature = "ring")))]
impl Pki {
    pub fn new() -> Pki {
        Pki::with_key_alg(&rcgen::PKCS_ECDSA_P256_SHA256)
    }

    pub fn with_key_alg(alg: &'static rcgen::SignatureAlgorithm) -> Pki {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
        let ca_key = KeyPair::generate_for(alg).unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "connect-tokio-hyper test CA");
        let ca_cert = ca_params.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca_params, ca_key);

        let server_key = KeyPair::generate_for(alg).unwrap();
        let server_params =
            CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
        let server_cert = server_params.signed_by(&server_key, &issuer).unwrap();

        let client_key = KeyPair::generate_for(alg).unwrap();
        let mut client_params = CertificateParams::new(vec!["client.test".to_owned()]).unwrap();
        client_params
            .distinguished_name
            .push(DnType::CommonName, "test client");
        let client_cert = client_params.signed_by(&client_key, &issuer).unwrap();

        let chain = |cert: &rcgen::Certificate| format!("{}{}", cert.pem(), ca_cert.pem());
        Pki {
            ca_pem: ca_cert.pem(),
            server: Identity::from_pem(
                chain(&server_cert).as_bytes(),
                server_key.serialize_pem().as_bytes(),
            )
            .unwrap(),
            client: Identity::from_pem(
                chain(&client_cert).as_bytes(),
                client_key.serialize_pem().as_bytes(),
            )
            .unwrap(),
            server_key_pem: server_key.serialize_pem(),
        }
    }

    pub fn roots(&self) -> Arc<rustls::RootCertStore> {
        Arc::new(connect_tokio_hyper::tls::root_store_from_pem(self.ca_pem.as_bytes()).unwrap())
    }

    pub fn server_config(&self, client_auth: ClientAuth) -> Arc<rustls::ServerConfig> {
        connect_tokio_hyper::tls::server_config(self.server.clone(), client_auth).unwrap()
    }

    pub fn client_config(&self, with_identity: bool) -> Arc<rustls::ClientConfig> {
        connect_tokio_hyper::tls::client_config(
            self.roots(),
            with_identity.then(|| self.client.clone()),
        )
        .unwrap()
    }

    /// The client configuration, offering only `alpn`.
    pub fn client_config_alpn(
        &self,
        with_identity: bool,
        alpn: &[u8],
    ) -> Arc<rustls::ClientConfig> {
        let mut config = (*self.client_config(with_identity)).clone();
        config.alpn_protocols = vec![alpn.to_vec()];
        Arc::new(config)
    }
}

/// The server-streaming method [`Flood`] serves.
pub static FLOOD: MethodSpec = MethodSpec::new(
    "/test.v1.FloodService/Flood",
    MethodKind::ServerStreaming,
    Idempotency::Unknown,
);

/// Answers [`FLOOD`] calls with messages of a given size until the call ends, counting them;
/// notes when the handler is dropped and how many handlers are running. Serves everything
/// else as [`Echo`].
#[derive(Clone)]
pub struct Flood {
    pub sent: Arc<AtomicUsize>,
    pub dropped: Arc<AtomicBool>,
    pub live: Arc<AtomicUsize>,
    message_size: usize,
}

impl Flood {
    /// Floods with messages carrying `size` bytes each.
    pub fn with_message_size(size: usize) -> Self {
        Flood {
            sent: Arc::default(),
            dropped: Arc::default(),
            live: Arc::default(),
            message_size: size,
        }
    }
}

/// One running handler, counted in `Flood::live` until it is dropped; sets `Flood::dropped`
/// when it goes.
struct FloodHandler {
    live: Arc<AtomicUsize>,
    dropped: Arc<AtomicBool>,
}

impl Drop for FloodHandler {
    fn drop(&mut self) {
        self.live.fetch_sub(1, Ordering::SeqCst);
        self.dropped.store(true, Ordering::SeqCst);
    }
}

impl Dispatch for Flood {
    fn methods(&self) -> &[MethodSpec] {
        std::slice::from_ref(&FLOOD)
    }

    fn method(&self, path: &str) -> Option<MethodSpec> {
        if path == FLOOD.path {
            Some(FLOOD.clone())
        } else {
            Echo::default().method(path)
        }
    }

    fn dispatch(&self, call: IncomingCall) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        if call.method().path != FLOOD.path {
            return Echo::default().dispatch(call);
        }
        let sent = self.sent.clone();
        self.live.fetch_add(1, Ordering::SeqCst);
        let guard = FloodHandler {
            live: self.live.clone(),
            dropped: self.dropped.clone(),
        };
        let message = "x".repeat(self.message_size);
        Box::pin(server_streaming(
            call,
            decode_owned::<StringValue>,
            move |_: Request<StringValue>, mut sender: ResponseSender<StringValue>| async move {
                let _guard = guard;
                loop {
                    sender.send(string(&message)).await?;
                    sent.fetch_add(1, Ordering::SeqCst);
                }
            },
        ))
    }
}
