//! The server under test for the conformance runner: reads one `ServerCompatRequest` from
//! stdin, starts `ConformanceService` on an ephemeral port of 127.0.0.1 (TLS and client
//! certificates as asked), answers with a `ServerCompatResponse`, and serves until SIGTERM.

use std::process::ExitCode;
use std::sync::Arc;

use buffa::Message as _;
use connect_conformance::proto::conformance_service::ConformanceServiceServer;
use connect_conformance::proto::{ServerCompatRequest, ServerCompatResponse};
use connect_conformance::service::Conformance;
use connect_conformance::{read_delimited, write_delimited};
use connect_proto_core::ServerConfig;
use connect_tokio_hyper::Server;
use connect_tokio_hyper::TokioTimer;
use connect_tokio_hyper::tls::{ClientAuth, Identity, root_store_from_pem, server_config};
use connect_tower::server::ConnectService;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

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
    if request.use_tls {
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
        builder = builder.tls(server_config(identity, client_auth)?);
        pem_cert = creds.cert.clone();
    }
    let server = builder.bind("127.0.0.1:0").await?;
    let addr = server.local_addr()?;

    let response = ServerCompatResponse {
        host: addr.ip().to_string(),
        port: u32::from(addr.port()),
        pem_cert,
        ..Default::default()
    };
    let mut stdout = tokio::io::stdout();
    write_delimited(&mut stdout, &response.encode_to_vec()).await?;

    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let shutdown = async move {
        tokio::select! {
            _ = terminate.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    };
    server.serve_with_shutdown(service, shutdown).await;
    Ok(())
}
