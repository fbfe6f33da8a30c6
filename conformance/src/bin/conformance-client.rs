//! The client under test for the conformance runner: reads size-delimited
//! `ClientCompatRequest`s from stdin until EOF, runs them concurrently (each under a safety
//! timeout), writes one size-delimited `ClientCompatResponse` per request to stdout (in
//! completion order, writes serialised), and exits when all are answered or on SIGTERM.

use std::process::ExitCode;
use std::time::Duration;

use buffa::Message as _;
use connect_conformance::client::{decode_request, run_case};
use connect_conformance::proto::__buffa::oneof::client_compat_response::Result as CaseResult;
use connect_conformance::proto::{ClientCompatResponse, ClientErrorResult};
use connect_conformance::{read_delimited, write_delimited};
use tokio::sync::mpsc;

/// Longest a single case may take beyond its own timeout before it is reported as an error.
const SAFETY_MARGIN: Duration = Duration::from_secs(10);

/// Cases in flight at once: the runner sends every case up front, and timing-sensitive cases
/// (deadlines, delays) need the machine not to be saturated by thousands of concurrent calls.
const MAX_IN_FLIGHT: usize = 32;

#[tokio::main]
async fn main() -> ExitCode {
    connect_conformance::install_type_registry();
    // `--transport h2connection`: HTTP/2 cases over one H2Connection per server.
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        [] | ["--transport", "pooled"] => {}
        ["--transport", "h2connection"] => connect_conformance::client::use_single_connections(),
        other => {
            eprintln!(
                "conformance-client: unexpected arguments {other:?} (--transport pooled|h2connection)"
            );
            return ExitCode::FAILURE;
        }
    }
    let (results, mut outbox) = mpsc::unbounded_channel::<ClientCompatResponse>();
    let writer = tokio::spawn(async move {
        let mut stdout = tokio::io::stdout();
        while let Some(response) = outbox.recv().await {
            if let Err(error) = write_delimited(&mut stdout, &response.encode_to_vec()).await {
                eprintln!("conformance-client: writing a result: {error}");
                return false;
            }
        }
        true
    });

    let reader = async {
        let mut stdin = tokio::io::stdin();
        let mut cases = tokio::task::JoinSet::new();
        let slots = std::sync::Arc::new(tokio::sync::Semaphore::new(MAX_IN_FLIGHT));
        loop {
            match read_delimited(&mut stdin).await {
                Ok(Some(bytes)) => {
                    let results = results.clone();
                    let Ok(slot) = slots.clone().acquire_owned().await else {
                        break;
                    };
                    cases.spawn(async move {
                        let response = run(&bytes).await;
                        drop(slot);
                        let _ = results.send(response);
                    });
                }
                Ok(None) => break,
                Err(error) => {
                    eprintln!("conformance-client: reading a request: {error}");
                    break;
                }
            }
        }
        while cases.join_next().await.is_some() {}
    };

    let mut terminate =
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(signal) => signal,
            Err(error) => {
                eprintln!("conformance-client: {error}");
                return ExitCode::FAILURE;
            }
        };
    tokio::select! {
        () = reader => {}
        _ = terminate.recv() => return ExitCode::SUCCESS,
    }
    drop(results);
    match writer.await {
        Ok(true) => ExitCode::SUCCESS,
        _ => ExitCode::FAILURE,
    }
}

/// Runs one case, turning anything that prevents running it into an error result.
async fn run(bytes: &bytes::Bytes) -> ClientCompatResponse {
    let request = match decode_request(bytes) {
        Ok(request) => request,
        Err(error) => return error_result(String::new(), error),
    };
    let limit = request.timeout_ms.map_or(Duration::from_secs(30), |ms| {
        Duration::from_millis(u64::from(ms))
    }) + SAFETY_MARGIN;
    let outcome = tokio::time::timeout(limit, run_case(&request)).await;
    let result = match outcome {
        Ok(Ok(result)) => CaseResult::Response(Box::new(result)),
        Ok(Err(error)) => return error_result(request.test_name.clone(), error),
        Err(_) => {
            return error_result(
                request.test_name.clone(),
                format!("no outcome after {limit:?}"),
            );
        }
    };
    ClientCompatResponse {
        test_name: request.test_name,
        result: Some(result),
        ..Default::default()
    }
}

fn error_result(test_name: String, message: String) -> ClientCompatResponse {
    ClientCompatResponse {
        test_name,
        result: Some(CaseResult::Error(Box::new(ClientErrorResult {
            message,
            ..Default::default()
        }))),
        ..Default::default()
    }
}
