//! What a response costs its HTTP/2 stream task, over a real socket: a response body that
//! yields its chunks one at a time is polled once for each chunk and once more to wait for
//! the next — no wake-up for nothing in between (`h2` wakes the task registered on a
//! stream's send side whenever it assigns window, which the server's pipe asks for per
//! chunk).

mod common;

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use common::*;
use connect_tokio_hyper::{IncomingBody, Server};
use http_body::Frame;
use tokio::net::TcpStream;
use tokio::sync::mpsc;

/// A response body fed by the test, counting its polls.
struct Chunks {
    chunks: mpsc::UnboundedReceiver<Bytes>,
    polls: Arc<AtomicUsize>,
}

impl http_body::Body for Chunks {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.polls.fetch_add(1, Ordering::SeqCst);
        self.chunks
            .poll_recv(cx)
            .map(|chunk| chunk.map(|chunk| Ok(Frame::data(chunk))))
    }
}

#[tokio::test]
async fn a_streamed_response_costs_two_polls_per_chunk() {
    const CHUNKS: usize = 20;
    let (feed, chunks) = mpsc::unbounded_channel();
    let polls = Arc::new(AtomicUsize::new(0));
    let body = Arc::new(Mutex::new(Some(Chunks {
        chunks,
        polls: polls.clone(),
    })));
    let service = tower::service_fn(move |_: http::Request<IncomingBody>| {
        let body = body.lock().unwrap().take().expect("one request");
        async move { Ok::<_, Infallible>(http::Response::new(body)) }
    });
    let server = start_service(Server::builder(), service).await;
    let tcp = TcpStream::connect(server.addr).await.unwrap();
    let (mut client, connection) = h2::client::handshake(tcp).await.unwrap();
    let driver = tokio::spawn(async move {
        let _ = connection.await;
    });
    let request = http::Request::get(format!("http://{}/", server.addr))
        .body(())
        .unwrap();
    let (response, _) = client.send_request(request, true).unwrap();
    let mut body = response.await.unwrap().into_body();

    for i in 0..CHUNKS {
        let chunk = Bytes::from(vec![b'a' + (i % 26) as u8; 100]);
        feed.send(chunk.clone()).unwrap();
        let received = tokio::time::timeout(Duration::from_secs(5), body.data())
            .await
            .expect("the chunk arrives")
            .expect("the stream is open")
            .unwrap();
        assert_eq!(received, chunk, "chunk {i}");
        let _ = body.flow_control().release_capacity(received.len());
    }
    drop(feed);
    // The end comes as an empty frame that closes the stream.
    let rest = tokio::time::timeout(Duration::from_secs(5), async {
        let mut rest = Vec::new();
        while let Some(data) = body.data().await {
            rest.extend_from_slice(&data.unwrap());
        }
        rest
    })
    .await
    .expect("the stream ends");
    assert!(rest.is_empty(), "no more data: {rest:?}");

    // Per chunk: the poll that yields it and the poll that waits for the next; plus the
    // first wait and the end. A wake-up per chunk for nothing would make it three.
    let polls = polls.load(Ordering::SeqCst);
    assert!(
        polls <= 2 * CHUNKS + 2,
        "{polls} polls of the body for {CHUNKS} chunks"
    );
    driver.abort();
    server.shutdown().await;
}
