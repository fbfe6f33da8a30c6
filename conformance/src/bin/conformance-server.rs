//! The server under test for the conformance runner: reads one `ServerCompatRequest` from
//! stdin, starts `ConformanceService` on an ephemeral port of 127.0.0.1 (TLS and client
//! certificates as asked), answers with a `ServerCompatResponse`, and serves until SIGTERM.

use std::process::ExitCode;

use buffa::Message as _;
use connect_conformance::proto::ServerCompatRequest;
use connect_conformance::proto::conformance_service::ConformanceServiceServer;
use connect_conformance::service::Conformance;
use connect_conformance::{BoxError, announce, read_delimited, server_tls, stop_signal};
use connect_proto_core::ServerConfig;
use connect_tokio_hyper::Server;
use connect_tokio_hyper::TokioTimer;
use connect_tower::server::ConnectService;

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("conformance-server: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), BoxError> {
    connect_conformance::install_type_registry();
    let mut stdin = tokio::io::stdin();
    let request = read_delimited(&mut stdin)
        .await?
        .ok_or("no ServerCompatRequest on stdin")?;
    let request = ServerCompatRequest::decode_from_slice(&request)?;

    // Compress every response message the client accepts compressed, to exercise the codecs.
    let mut config = ServerConfig::new().compress_min_bytes(0);
    if request.message_receive_limit > 0 {
        config = config.max_receive_message_size(request.message_receive_limit as usize);
    }
    let service = ConnectService::builder(ConformanceServiceServer::new(Conformance))
        .config(config)
        .timer(TokioTimer::new())
        .build();

    let mut builder = Server::builder();
    let mut pem_cert = Vec::new();
    if let Some((tls, cert)) = server_tls(&request)? {
        builder = builder.tls(tls);
        pem_cert = cert;
    }
    let server = builder.bind("127.0.0.1:0").await?;
    announce(server.local_addr()?, pem_cert).await?;
    let shutdown = async {
        let _ = stop_signal().await;
    };
    server.serve_with_shutdown(service, shutdown).await;
    Ok(())
}
