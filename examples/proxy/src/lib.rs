//! A protocol-translating RPC proxy built on `connect-proto-core` alone: the core embedded in
//! a gateway, on hyper, without `connect-tower`.
//!
//! # Contract
//!
//! The proxy accepts Connect (POST and GET, unary and streaming), gRPC and gRPC-Web calls for
//! any method path, over HTTP/1.1, h2c or TLS, and forwards each to one backend over the
//! protocol it is configured with (gRPC over h2c by default; Connect or gRPC-Web, over HTTP/2
//! or HTTP/1.1). It never decodes a message: envelopes are re-framed between protocols, and a
//! payload compressed with the algorithm both legs use crosses untouched (otherwise it is
//! decompressed and recompressed, within the limits). Headers and metadata, statuses with
//! their details, trailers, the deadline (the backend sees the time left), cancellation and
//! resets are translated in both directions; streams of all four kinds flow as they arrive
//! (full duplex where both legs are HTTP/2).
//!
//! Everything protocol-shaped comes from the core — admission, rejections, error rendering,
//! framing, status mapping; this crate moves bytes and events between two calls ([`call`]
//! holds the run loop) and owns the sockets.
//!
//! A backend that speaks Connect needs to know whether a method is unary, which gRPC and
//! gRPC-Web requests do not say: give the proxy the methods' specs
//! ([`ProxyBuilder::methods`]); without them such calls fail with `unimplemented`.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! use connect_proxy_example::Proxy;
//!
//! let proxy = Proxy::builder("http://127.0.0.1:50051".parse()?).build();
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! proxy.serve(listener, None, std::future::pending()).await?;
//! # Ok(())
//! # }
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod body;
mod call;
mod listen;

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use connect_proto_core::call::application_metadata;
use connect_proto_core::compression::CompressionRegistry;
use connect_proto_core::{
    CallOptions, ClientCall, ClientConfig, MethodKind, MethodSpec, Protocol, ServerCall,
    ServerConfig, Status,
};
use http::{HeaderMap, Uri, request};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio::net::TcpListener;

pub use body::{BoxError, ChannelBody};

/// A proxy to one backend. Cheap to clone.
#[derive(Clone)]
pub struct Proxy {
    inner: Arc<Inner>,
}

/// Builds a [`Proxy`].
#[derive(Debug)]
pub struct ProxyBuilder {
    backend_uri: Uri,
    backend_protocol: Protocol,
    backend_http2: bool,
    server_config: ServerConfig,
    methods: HashMap<String, MethodSpec>,
}

pub(crate) struct Inner {
    pub(crate) server_config: ServerConfig,
    backend_config: ClientConfig,
    compression: CompressionRegistry,
    methods: HashMap<String, MethodSpec>,
    pub(crate) backend: Client<HttpConnector, ChannelBody>,
}

impl Proxy {
    /// A builder for a proxy to the backend at `backend_uri` (`http://host:port`, optionally
    /// with a path prefix).
    pub fn builder(backend_uri: Uri) -> ProxyBuilder {
        ProxyBuilder {
            backend_uri,
            backend_protocol: Protocol::Grpc,
            backend_http2: true,
            server_config: ServerConfig::new(),
            methods: HashMap::new(),
        }
    }

    /// Serves connections from `listener` (TLS when `tls` is given; ALPN picks HTTP/2 or
    /// HTTP/1.1, plaintext connections may be either) until `shutdown` completes; connections
    /// then finish their calls.
    pub async fn serve(
        &self,
        listener: TcpListener,
        tls: Option<Arc<rustls::ServerConfig>>,
        shutdown: impl Future<Output = ()>,
    ) -> std::io::Result<()> {
        listen::serve(self.clone(), listener, tls, shutdown).await
    }

    /// Proxies one request (for embedding in another server).
    pub async fn handle(
        &self,
        request: http::Request<hyper::body::Incoming>,
    ) -> http::Response<ChannelBody> {
        call::handle(self.inner.clone(), request).await
    }
}

impl ProxyBuilder {
    /// The protocol spoken to the backend. Default: gRPC.
    #[must_use]
    pub fn backend_protocol(mut self, protocol: Protocol) -> Self {
        self.backend_protocol = protocol;
        self
    }

    /// Whether the backend is reached over HTTP/2 (h2c, prior knowledge) or HTTP/1.1.
    /// Default: HTTP/2 (gRPC needs it).
    #[must_use]
    pub fn backend_http2(mut self, http2: bool) -> Self {
        self.backend_http2 = http2;
        self
    }

    /// The client-facing limits and protocols (the receive limit, the longest timeout, the
    /// compression of responses, …). Default: [`ServerConfig::new`].
    #[must_use]
    pub fn server_config(mut self, config: ServerConfig) -> Self {
        self.server_config = config;
        self
    }

    /// The methods the proxy serves (from generated code, or built with
    /// [`MethodSpec::owned`]): their kind and idempotency apply on both legs, and other paths
    /// are unknown methods (Connect: `404`, gRPC: `unimplemented`), answered by the proxy.
    /// Without methods every path is proxied as the request itself describes it
    /// ([`MethodSpec::inferred`]).
    #[must_use]
    pub fn methods<'a>(mut self, methods: impl IntoIterator<Item = &'a MethodSpec>) -> Self {
        for spec in methods {
            self.methods.insert(spec.path().to_owned(), spec.clone());
        }
        self
    }

    /// The proxy.
    pub fn build(self) -> Proxy {
        let compression = CompressionRegistry::default();
        let backend_config = ClientConfig::new(self.backend_uri)
            .protocol(self.backend_protocol)
            .accept_compression(compression.clone());
        // Nagle's algorithm would hold small frames back for a delayed ACK (~40 ms a call).
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let backend = Client::builder(TokioExecutor::new())
            .http2_only(self.backend_http2)
            .build(connector);
        Proxy {
            inner: Arc::new(Inner {
                server_config: self.server_config,
                backend_config,
                compression,
                methods: self.methods,
                backend,
            }),
        }
    }
}

impl Inner {
    /// The method a request addresses: with a schema, one of its methods (other paths are
    /// unknown: the core answers them as it answers unknown methods); without, what the
    /// request tells.
    pub(crate) fn method_for(&self, head: &request::Parts) -> Option<MethodSpec> {
        if self.methods.is_empty() {
            return Some(MethodSpec::inferred(head));
        }
        self.methods.get(head.uri.path()).cloned()
    }

    /// Starts the backend call for an admitted client call: same codec, same compression
    /// where possible (so payloads pass through), the client's metadata and deadline.
    pub(crate) fn backend_call(
        &self,
        now: Instant,
        server: &ServerCall,
        spec: &MethodSpec,
        headers: &HeaderMap,
    ) -> Result<ClientCall, Status> {
        let known = self.methods.contains_key(spec.path());
        if self.backend_config.configured_protocol() == Protocol::Connect
            && !known
            && server.protocol() != Protocol::Connect
            && spec.kind == MethodKind::BidiStreaming
        {
            // gRPC and gRPC-Web bodies look the same for every kind; Connect's do not.
            return Err(Status::unimplemented(format!(
                "the proxy does not know whether {} is unary or streaming, which its Connect \
                 backend needs; configure the method",
                spec.path()
            )));
        }
        // The backend is asked to answer in the compression the client gets, first.
        let mut accept = CompressionRegistry::identity_only();
        for name in server
            .response_compression()
            .into_iter()
            .chain(self.compression.names())
        {
            if let Some(alg) = self.compression.get(name) {
                accept = accept.with(alg.clone());
            }
        }
        let config = self
            .backend_config
            .clone()
            .codec(server.codec())
            .accept_compression(accept);
        let send_compression = server
            .request_compression()
            .and_then(|name| self.compression.get(name))
            .cloned();
        let mut options = CallOptions::new()
            .headers(application_metadata(headers))
            .send_compression(send_compression)
            .use_get(spec.allows_get());
        if let Some(deadline) = server.deadline() {
            options = options.deadline(deadline);
        }
        let mut client = ClientCall::start(&config, now, spec, options).map_err(Status::from)?;
        client.set_pass_through(true);
        Ok(client)
    }
}
