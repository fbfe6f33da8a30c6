//! The greeter server binary stops gracefully on SIGTERM: a call in flight finishes, then the
//! process exits successfully.
#![cfg(unix)]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use connect_tokio_hyper::HttpClient;
use connect_tower::client::{Client, ClientConfig};
use greeter_example::greet::RepeatRequest;
use greeter_example::greet::greeter::GreeterClient;

#[tokio::test]
async fn sigterm_drains_and_exits() {
    let mut server = Command::new(env!("CARGO_BIN_EXE_greeter-server"))
        .arg("127.0.0.1:0")
        .stdout(Stdio::piped())
        .spawn()
        .expect("the server starts");
    let mut lines = BufReader::new(server.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    let uri = first
        .rsplit(' ')
        .next()
        .expect("the listening address")
        .to_owned();
    let client = GreeterClient::new(Client::new(
        HttpClient::plaintext_h2c(),
        ClientConfig::new(uri.parse().unwrap()).protocol(connect_tower::Protocol::Grpc),
    ));
    let mut stream = client
        .say_hello_repeatedly(RepeatRequest {
            name: "signal".into(),
            times: 3,
            ..Default::default()
        })
        .await
        .unwrap();
    // The call is on the server once its response head arrived.
    stream.headers().await.unwrap();
    let status = Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let mut received = 0;
    while let Some(_reply) = stream.message().await.unwrap() {
        received += 1;
    }
    assert_eq!(received, 3, "the stream in flight finished");
    let waited = tokio::task::spawn_blocking(move || {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = server.try_wait().unwrap() {
                return Some(status);
            }
            if std::time::Instant::now() > deadline {
                let _ = server.kill();
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    })
    .await
    .unwrap();
    assert!(waited.is_some_and(|s| s.success()), "{waited:?}");
    let last: Vec<String> = lines.map_while(Result::ok).collect();
    assert!(
        last.iter().any(|l| l.starts_with("greeter stopped")),
        "{last:?}"
    );
}
