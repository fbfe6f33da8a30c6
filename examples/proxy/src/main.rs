//! `connect-proxy`: forwards Connect, gRPC and gRPC-Web calls to one backend.
//!
//! ```text
//! connect-proxy --listen 127.0.0.1:8080 --backend http://127.0.0.1:50051 \
//!     [--backend-protocol grpc|connect|grpc-web] [--backend-http1] \
//!     [--tls-cert cert.pem --tls-key key.pem]
//! ```
//! Stops gracefully on Ctrl-C or SIGTERM.

use std::process::ExitCode;
use std::sync::Arc;

use connect_proto_core::Protocol;
use connect_proxy_example::{BoxError, Proxy};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

const USAGE: &str = "usage: connect-proxy --listen ADDR --backend URI \
[--backend-protocol grpc|connect|grpc-web] [--backend-http1] [--tls-cert PEM --tls-key PEM]";

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("connect-proxy: {error}\n{USAGE}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), BoxError> {
    let mut listen = None;
    let mut backend = None;
    let mut protocol = Protocol::Grpc;
    let mut http2 = true;
    let (mut cert, mut key) = (None, None);
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--listen" => listen = Some(value()?),
            "--backend" => backend = Some(value()?.parse()?),
            "--backend-protocol" => {
                protocol = match value()?.as_str() {
                    "grpc" => Protocol::Grpc,
                    "connect" => Protocol::Connect,
                    "grpc-web" => Protocol::GrpcWeb,
                    other => return Err(format!("unknown protocol {other:?}").into()),
                }
            }
            "--backend-http1" => http2 = false,
            "--tls-cert" => cert = Some(value()?),
            "--tls-key" => key = Some(value()?),
            other => return Err(format!("unknown argument {other:?}").into()),
        }
    }
    let listen = listen.ok_or("--listen is required")?;
    let backend = backend.ok_or("--backend is required")?;
    let tls = match (cert, key) {
        (Some(cert), Some(key)) => Some(tls_config(&cert, &key)?),
        (None, None) => None,
        _ => return Err("--tls-cert and --tls-key go together".into()),
    };
    let proxy = Proxy::builder(backend)
        .backend_protocol(protocol)
        .backend_http2(http2)
        .build();
    let listener = tokio::net::TcpListener::bind(&listen).await?;
    eprintln!("connect-proxy: listening on {}", listener.local_addr()?);
    proxy.serve(listener, tls, stop_signal()).await?;
    Ok(())
}

fn tls_config(cert: &str, key: &str) -> Result<Arc<rustls::ServerConfig>, BoxError> {
    let certs = CertificateDer::pem_file_iter(cert)?.collect::<Result<Vec<_>, _>>()?;
    let key = PrivateKeyDer::from_pem_file(key)?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

async fn stop_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(_) => return std::future::pending().await,
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
