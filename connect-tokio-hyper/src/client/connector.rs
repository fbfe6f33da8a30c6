//! The pooled client's connector: TCP through hyper-util's `HttpConnector`, then rustls for
//! `https` URIs, reporting an ALPN-negotiated HTTP/2 to the pool.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use http::Uri;
use http::uri::Authority;
use hyper::rt::{Read, ReadBufCursor, Write};
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tower_service::Service;

use crate::BoxError;

/// Opens connections for the pool.
#[derive(Clone)]
pub(super) struct Connector {
    http: HttpConnector,
    /// The TLS connector and the handshake timeout.
    #[cfg(feature = "tls")]
    tls: Option<(tokio_rustls::TlsConnector, Option<Duration>)>,
    limits: HostLimits,
}

/// The most connections open to each host: a connection holds a permit of its host's
/// semaphore while it lives, and opening one past the limit waits for a permit (the pool
/// meanwhile hands the request the first connection that becomes idle).
#[derive(Clone)]
pub(super) struct HostLimits {
    max: Option<usize>,
    hosts: Arc<Mutex<HashMap<Authority, Arc<Semaphore>>>>,
}

impl HostLimits {
    pub(super) fn new(max: Option<usize>) -> Self {
        HostLimits {
            max,
            hosts: Arc::default(),
        }
    }

    /// A permit for one more connection to `uri`'s host, waiting while it has the most.
    fn acquire(&self, uri: &Uri) -> impl Future<Output = Option<OwnedSemaphorePermit>> + use<> {
        let semaphore = match (self.max, uri.authority()) {
            (Some(max), Some(authority)) => {
                let mut hosts = self.hosts.lock().unwrap_or_else(|p| p.into_inner());
                // Hosts nobody connects to any more are forgotten.
                hosts.retain(|_, semaphore| {
                    Arc::strong_count(semaphore) > 1 || semaphore.available_permits() < max
                });
                Some(
                    hosts
                        .entry(authority.clone())
                        .or_insert_with(|| Arc::new(Semaphore::new(max)))
                        .clone(),
                )
            }
            _ => None,
        };
        async move {
            match semaphore {
                Some(semaphore) => semaphore.acquire_owned().await.ok(),
                None => None,
            }
        }
    }
}

impl std::fmt::Debug for Connector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut debug = f.debug_struct("Connector");
        #[cfg(feature = "tls")]
        debug.field("tls", &self.tls.is_some());
        debug.finish_non_exhaustive()
    }
}

impl Connector {
    /// Plaintext connections; `https` URIs are refused.
    pub(super) fn plaintext(
        connect_timeout: Option<Duration>,
        nodelay: bool,
        limits: HostLimits,
    ) -> Self {
        let mut http = HttpConnector::new();
        http.enforce_http(true);
        http.set_connect_timeout(connect_timeout);
        http.set_nodelay(nodelay);
        Connector {
            http,
            #[cfg(feature = "tls")]
            tls: None,
            limits,
        }
    }

    /// TLS connections; `http` URIs are refused.
    #[cfg(feature = "tls")]
    pub(super) fn tls(
        connect_timeout: Option<Duration>,
        nodelay: bool,
        limits: HostLimits,
        config: std::sync::Arc<rustls::ClientConfig>,
    ) -> Self {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_connect_timeout(connect_timeout);
        http.set_nodelay(nodelay);
        Connector {
            http,
            tls: Some((tokio_rustls::TlsConnector::from(config), connect_timeout)),
            limits,
        }
    }
}

impl Service<Uri> for Connector {
    type Response = Stream;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Stream, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.http.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let permit = self.limits.acquire(&uri);
        #[cfg(feature = "tls")]
        if let Some((tls, handshake_timeout)) = self.tls.clone() {
            if uri.scheme() != Some(&http::uri::Scheme::HTTPS) {
                let error = crate::Error::InvalidUri(format!("{uri}: a TLS client needs https"));
                return Box::pin(async move { Err(error.into()) });
            }
            let name = crate::tls::server_name(&uri);
            let mut http = self.http.clone();
            return Box::pin(async move {
                let name = name?;
                let permit = permit.await;
                let tcp = http.call(uri).await?.into_inner();
                let handshake = tls.connect(name, tcp);
                let stream = match handshake_timeout {
                    Some(timeout) => tokio::time::timeout(timeout, handshake)
                        .await
                        .map_err(|_| crate::Error::Timeout("the TLS handshake"))??,
                    None => handshake.await?,
                };
                Ok(Stream {
                    io: Io::Tls(Box::new(TokioIo::new(stream))),
                    _permit: permit,
                })
            });
        }
        let mut http = self.http.clone();
        Box::pin(async move {
            let permit = permit.await;
            Ok(Stream {
                io: Io::Plain(http.call(uri).await?),
                _permit: permit,
            })
        })
    }
}

/// A client connection: plain TCP or TLS over TCP, holding its host's connection permit.
pub(super) struct Stream {
    io: Io,
    _permit: Option<OwnedSemaphorePermit>,
}

enum Io {
    Plain(TokioIo<TcpStream>),
    #[cfg(feature = "tls")]
    Tls(Box<TokioIo<tokio_rustls::client::TlsStream<TcpStream>>>),
}

impl Connection for Stream {
    fn connected(&self) -> Connected {
        match &self.io {
            Io::Plain(stream) => stream.connected(),
            #[cfg(feature = "tls")]
            Io::Tls(stream) => {
                let (tcp, session) = stream.inner().get_ref();
                let connected = tcp.connected();
                if session.alpn_protocol() == Some(crate::tls::ALPN_H2) {
                    connected.negotiated_h2()
                } else {
                    connected
                }
            }
        }
    }
}

impl Read for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        match &mut self.get_mut().io {
            Io::Plain(stream) => Pin::new(stream).poll_read(cx, buf),
            #[cfg(feature = "tls")]
            Io::Tls(stream) => Pin::new(stream.as_mut()).poll_read(cx, buf),
        }
    }
}

impl Write for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match &mut self.get_mut().io {
            Io::Plain(stream) => Pin::new(stream).poll_write(cx, buf),
            #[cfg(feature = "tls")]
            Io::Tls(stream) => Pin::new(stream.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().io {
            Io::Plain(stream) => Pin::new(stream).poll_flush(cx),
            #[cfg(feature = "tls")]
            Io::Tls(stream) => Pin::new(stream.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().io {
            Io::Plain(stream) => Pin::new(stream).poll_shutdown(cx),
            #[cfg(feature = "tls")]
            Io::Tls(stream) => Pin::new(stream.as_mut()).poll_shutdown(cx),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match &self.io {
            Io::Plain(stream) => stream.is_write_vectored(),
            #[cfg(feature = "tls")]
            Io::Tls(stream) => stream.is_write_vectored(),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match &mut self.get_mut().io {
            Io::Plain(stream) => Pin::new(stream).poll_write_vectored(cx, bufs),
            #[cfg(feature = "tls")]
            Io::Tls(stream) => Pin::new(stream.as_mut()).poll_write_vectored(cx, bufs),
        }
    }
}
