//! A foreign peer: `grpc-health-probe` (grpc-go's health client) against the health service
//! over a real socket.
//!
//! The probe's path comes from `GRPC_HEALTH_PROBE` (scripts/check-health-reflection installs
//! the tool and sets it). Unset, the test only says it did not run; set to a path that is not
//! there, it fails, so a broken install is never a silent pass.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use connect_tokio_hyper::{Server, TokioTimer};
use connect_tower::server::{ConnectService, Routes};

/// The environment variable naming the `grpc-health-probe` binary.
const PROBE_ENV: &str = "GRPC_HEALTH_PROBE";

/// grpc-health-probe's exit codes (its README): healthy, RPC failure, unhealthy.
const HEALTHY: i32 = 0;
const RPC_FAILURE: i32 = 3;
const UNHEALTHY: i32 = 4;

fn probe_path() -> Option<PathBuf> {
    let path = PathBuf::from(std::env::var_os(PROBE_ENV)?);
    assert!(
        path.is_file(),
        "{PROBE_ENV} is set to {}, which does not exist: install grpc-health-probe \
         (scripts/check-health-reflection does) or unset {PROBE_ENV}",
        path.display()
    );
    Some(path)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_health_probe_sees_the_statuses() {
    let Some(probe) = probe_path() else {
        eprintln!("{PROBE_ENV} is not set: grpc-health-probe was not run");
        return;
    };
    let (health, health_server) = connect_health::server();
    health.set_serving("acme.v1.Up");
    health.set_not_serving("acme.v1.Down");
    let service = ConnectService::builder(Routes::new().service(health_server))
        .timer(TokioTimer::new())
        .build();
    let server = Server::builder().bind("127.0.0.1:0").await.expect("bind");
    let addr = server.local_addr().expect("local addr");
    let serving = tokio::spawn(server.serve(service));

    for (service, expected) in [
        ("", HEALTHY),
        ("acme.v1.Up", HEALTHY),
        ("acme.v1.Down", UNHEALTHY),
        ("acme.v1.Nobody", RPC_FAILURE),
    ] {
        let probe = probe.clone();
        let output = tokio::task::spawn_blocking(move || {
            Command::new(probe)
                .arg(format!("-addr={addr}"))
                .arg(format!("-service={service}"))
                .arg("-connect-timeout=5s")
                .arg("-rpc-timeout=5s")
                .output()
        })
        .await
        .expect("probe task")
        .expect("run grpc-health-probe");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        eprintln!(
            "grpc-health-probe -service={service:?}: {:?}: {text}",
            output.status
        );
        assert_eq!(output.status.code(), Some(expected), "{service:?}: {text}");
    }

    // The status can change under a running server.
    health.set_serving("acme.v1.Down");
    let output = Command::new(&probe)
        .arg(format!("-addr={addr}"))
        .arg("-service=acme.v1.Down")
        .output()
        .expect("run grpc-health-probe");
    assert_eq!(output.status.code(), Some(HEALTHY));
    serving.abort();
    let _ = tokio::time::timeout(Duration::from_secs(1), serving).await;
}
