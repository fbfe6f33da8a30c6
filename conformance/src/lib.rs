//! Programs for the official ConnectRPC conformance runner
//! (`connectrpc.com/conformance`): a server under test (`conformance-server`) and a client
//! under test (`conformance-client`), both built only on this workspace's public APIs.
//!
//! The protocol buffers are generated at build time by `connect-codegen`'s `Builder` from the
//! runner's own `.proto` files, fetched with `go mod download` (see `build.rs`).

pub mod client;
pub mod service;

/// Code generated from `connectrpc/conformance/v1/*.proto`.
#[allow(missing_docs, clippy::all)]
pub mod generated {
    include!(concat!(env!("OUT_DIR"), "/_include.rs"));
}

pub use generated::connectrpc::conformance::v1 as proto;

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use buffa::Message as _;
use bytes::Bytes;
use connect_tokio_hyper::tls::{ClientAuth, Identity, root_store_from_pem, server_config};
use http::{HeaderMap, HeaderName, HeaderValue};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Installs the JSON type registry (the conformance messages and the well-known types), so
/// `google.protobuf.Any` fields serialize as `{"@type": …, …}` in proto3 JSON. Call once at
/// startup.
pub fn install_type_registry() {
    let mut registry = buffa::type_registry::TypeRegistry::new();
    buffa_types::register_wkt_types(&mut registry);
    proto::register_types(&mut registry);
    buffa::type_registry::set_type_registry(registry);
}

/// Reads one size-delimited message (4-byte big-endian length, then the bytes); `None` at a
/// clean end of input.
pub async fn read_delimited(input: &mut (impl AsyncRead + Unpin)) -> io::Result<Option<Bytes>> {
    let mut prefix = [0u8; 4];
    match input.read_exact(&mut prefix).await {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = u32::from_be_bytes(prefix) as usize;
    let mut body = vec![0u8; len];
    input.read_exact(&mut body).await?;
    Ok(Some(Bytes::from(body)))
}

/// Writes one size-delimited message.
pub async fn write_delimited(
    output: &mut (impl AsyncWrite + Unpin),
    message: &[u8],
) -> io::Result<()> {
    let len = u32::try_from(message.len()).map_err(|_| io::Error::other("message too large"))?;
    let mut framed = Vec::with_capacity(4 + message.len());
    framed.extend_from_slice(&len.to_be_bytes());
    framed.extend_from_slice(message);
    output.write_all(&framed).await?;
    output.flush().await
}

/// The error type of the programs' setup steps.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A server's TLS configuration.
pub type TlsConfig = Arc<connect_tokio_hyper::tls::rustls::ServerConfig>;

/// The TLS a `ServerCompatRequest` asks for (with client certificates required when it gives
/// a client CA), and the certificate to report; `None` without `use_tls`.
pub fn server_tls(
    request: &proto::ServerCompatRequest,
) -> Result<Option<(TlsConfig, Vec<u8>)>, BoxError> {
    if !request.use_tls {
        return Ok(None);
    }
    let creds = request
        .server_creds
        .as_option()
        .ok_or("use_tls without server_creds")?;
    let identity = Identity::from_pem(&creds.cert, &creds.key)?;
    let client_auth = if request.client_tls_cert.is_empty() {
        ClientAuth::None
    } else {
        ClientAuth::Required(Arc::new(root_store_from_pem(&request.client_tls_cert)?))
    };
    Ok(Some((
        server_config(identity, client_auth)?,
        creds.cert.clone(),
    )))
}

/// Tells the runner where the server under test listens: a `ServerCompatResponse` on stdout.
pub async fn announce(addr: SocketAddr, pem_cert: Vec<u8>) -> io::Result<()> {
    let response = proto::ServerCompatResponse {
        host: addr.ip().to_string(),
        port: u32::from(addr.port()),
        pem_cert,
        ..Default::default()
    };
    write_delimited(&mut tokio::io::stdout(), &response.encode_to_vec()).await
}

/// Resolves when the runner asks the server to stop (SIGTERM) or on Ctrl-C.
pub async fn stop_signal() -> io::Result<()> {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = terminate.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    Ok(())
}

/// Conformance headers (`name`, values) → an HTTP header map. Invalid names or values are
/// skipped.
pub fn to_header_map(headers: &[proto::Header]) -> HeaderMap {
    let mut map = HeaderMap::new();
    append_headers(headers, &mut map);
    map
}

/// Appends conformance headers to an HTTP header map.
pub fn append_headers(headers: &[proto::Header], map: &mut HeaderMap) {
    for header in headers {
        let Ok(name) = HeaderName::from_bytes(header.name.to_ascii_lowercase().as_bytes()) else {
            continue;
        };
        for value in &header.value {
            if let Ok(value) = HeaderValue::from_str(value) {
                map.append(name.clone(), value);
            }
        }
    }
}

/// An HTTP header map → conformance headers, one entry per name with every value.
pub fn from_header_map(map: &HeaderMap) -> Vec<proto::Header> {
    map.keys()
        .map(|name| proto::Header {
            name: name.as_str().to_owned(),
            value: map
                .get_all(name)
                .iter()
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
                .collect(),
            ..Default::default()
        })
        .collect()
}
