//! The proxy under test for the conformance runner (`conformance/run.sh proxy`): reads one
//! `ServerCompatRequest` from stdin, starts a backend server under test — the program named on
//! the command line, given the same request but asked for plaintext HTTP/2 — then starts
//! `connect-proxy` (examples/proxy) in front of it with what the runner asked for (TLS, client
//! certificates, the receive limit), answers with the proxy's address, and serves until
//! SIGTERM. Every case the runner plays then crosses the proxy: the client's protocol in, the
//! backend protocol out (gRPC unless `--backend-protocol connect|grpc-web`).
//!
//! ```text
//! conformance-proxy [--backend-protocol grpc|connect|grpc-web] -- BACKEND [ARGS...]
//! ```

use std::process::{ExitCode, Stdio};

use buffa::Message as _;
use connect_conformance::proto::conformance_service as service;
use connect_conformance::proto::{HTTPVersion, ServerCompatRequest, ServerCompatResponse};
use connect_conformance::{
    BoxError, announce, read_delimited, server_tls, stop_signal, write_delimited,
};
use connect_proto_core::{Protocol, ServerConfig};
use connect_proxy_example::Proxy;
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("conformance-proxy: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), BoxError> {
    let mut args = std::env::args().skip(1);
    let mut backend_protocol = Protocol::Grpc;
    let mut backend_command = Vec::new();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--backend-protocol" => {
                backend_protocol = match args.next().as_deref() {
                    Some("grpc") => Protocol::Grpc,
                    Some("connect") => Protocol::Connect,
                    Some("grpc-web") => Protocol::GrpcWeb,
                    other => return Err(format!("unknown backend protocol {other:?}").into()),
                }
            }
            "--" => backend_command.extend(args.by_ref()),
            other => return Err(format!("unknown argument {other:?}").into()),
        }
    }
    let (program, program_args) = backend_command
        .split_first()
        .ok_or("usage: conformance-proxy [--backend-protocol P] -- BACKEND [ARGS...]")?;

    let mut stdin = tokio::io::stdin();
    let request = read_delimited(&mut stdin)
        .await?
        .ok_or("no ServerCompatRequest on stdin")?;
    let request = ServerCompatRequest::decode_from_slice(&request)?;

    // The backend: the same features, over plaintext HTTP/2 (the proxy's own leg).
    let backend_request = ServerCompatRequest {
        http_version: HTTPVersion::HTTP_VERSION_2.into(),
        use_tls: false,
        client_tls_cert: Vec::new(),
        server_creds: Default::default(),
        ..request.clone()
    };
    let mut backend = Command::new(program)
        .args(program_args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("starting {program}: {e}"))?;
    let mut backend_stdin = backend.stdin.take().ok_or("no backend stdin")?;
    write_delimited(&mut backend_stdin, &backend_request.encode_to_vec()).await?;
    backend_stdin.flush().await?;
    let mut backend_stdout = backend.stdout.take().ok_or("no backend stdout")?;
    let answer = read_delimited(&mut backend_stdout)
        .await?
        .ok_or("the backend answered nothing")?;
    let answer = ServerCompatResponse::decode_from_slice(&answer)?;
    let backend_uri = format!("http://{}:{}", answer.host, answer.port).parse()?;

    // The proxy, as the runner asked for the server under test.
    let mut config = ServerConfig::new().compress_min_bytes(0);
    if request.message_receive_limit > 0 {
        config = config.max_receive_message_size(request.message_receive_limit as usize);
    }
    let proxy = Proxy::builder(backend_uri)
        .backend_protocol(backend_protocol)
        .backend_http2(true)
        .server_config(config)
        .methods([
            &service::UNARY,
            &service::SERVER_STREAM,
            &service::CLIENT_STREAM,
            &service::BIDI_STREAM,
            &service::UNIMPLEMENTED,
            &service::IDEMPOTENT_UNARY,
        ])
        .build();
    let (tls, pem_cert) = match server_tls(&request)? {
        Some((tls, cert)) => (Some(tls), cert),
        None => (None, Vec::new()),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    announce(listener.local_addr()?, pem_cert).await?;
    let shutdown = async {
        let _ = stop_signal().await;
    };
    proxy.serve(listener, tls, shutdown).await?;
    let _ = backend.start_kill();
    let _ = backend.wait().await;
    Ok(())
}
