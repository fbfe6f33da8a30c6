//! HTTP/2 stream resets reach the tower layer as `TransportError::reset`, before the response
//! head (response future) and mid-body (body frames), over both HTTP/2 transports.

mod common;

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use common::*;
use connect_tokio_hyper::IncomingBody as Incoming;
use connect_tokio_hyper::{H2Connection, HttpClient, Server, TokioTimer};
use connect_tower::client::{CallOptions, Client, ClientConfig, Transport};
use connect_tower::server::{ConnectService, ResponseBody};
use connect_tower::{Code, Protocol};
use http_body::{Body, Frame};

/// Wraps the echo service so every stream is reset with `reason`: before the response head
/// (the service fails) or after the first data frame (the body fails). hyper turns an
/// `h2::Error` carrying a reason into a `RST_STREAM` with that code.
#[derive(Clone)]
struct Resetting {
    inner: ConnectService<Echo>,
    reason: h2::Reason,
    before_head: bool,
}

impl tower::Service<http::Request<Incoming>> for Resetting {
    type Response = http::Response<FailingBody>;
    type Error = h2::Error;
    type Future =
        Pin<Box<dyn Future<Output = Result<http::Response<FailingBody>, h2::Error>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), h2::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<Incoming>) -> Self::Future {
        let reason = self.reason;
        if self.before_head {
            return Box::pin(async move { Err(h2::Error::from(reason)) });
        }
        let response = self.inner.serve(request);
        Box::pin(async move {
            Ok(response.await.map(|inner| FailingBody {
                inner,
                reason,
                sent: false,
            }))
        })
    }
}

struct FailingBody {
    inner: ResponseBody,
    reason: h2::Reason,
    sent: bool,
}

impl Body for FailingBody {
    type Data = Bytes;
    type Error = h2::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, h2::Error>>> {
        if self.sent {
            return Poll::Ready(Some(Err(h2::Error::from(self.reason))));
        }
        match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some(Ok(frame))) => {
                self.sent = frame.is_data();
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(never))) => match never {},
            Poll::Ready(None) => Poll::Ready(Some(Err(h2::Error::from(self.reason)))),
        }
    }
}

async fn serve_resetting(
    reason: h2::Reason,
    before_head: bool,
) -> (std::net::SocketAddr, impl FnOnce()) {
    let service = Resetting {
        inner: ConnectService::builder(Echo::default())
            .timer(TokioTimer::new())
            .build(),
        reason,
        before_head,
    };
    let server = Server::builder().bind("127.0.0.1:0").await.unwrap();
    let addr = server.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(server.serve_with_shutdown(service, async {
        let _ = stopped.await;
    }));
    (addr, move || {
        let _ = stop.send(());
    })
}

async fn streamed_code<T: Transport>(transport: T, uri: http::Uri, protocol: Protocol) -> Code {
    let client = Client::new(transport, ClientConfig::new(uri).protocol(protocol));
    let mut stream = match client
        .server_streaming::<StringValue, StringValue>(&REPEAT, string("r"), CallOptions::new())
        .await
    {
        Ok(stream) => stream,
        Err(status) => return status.code(),
    };
    loop {
        match stream.message().await {
            Ok(Some(_)) => {}
            Ok(None) => panic!("the stream ended normally"),
            Err(status) => return status.code(),
        }
    }
}

#[tokio::test]
async fn resets_map_to_their_codes() {
    let cases = [
        (h2::Reason::CANCEL, Code::Canceled),
        (h2::Reason::ENHANCE_YOUR_CALM, Code::ResourceExhausted),
        (h2::Reason::INADEQUATE_SECURITY, Code::PermissionDenied),
        (h2::Reason::INTERNAL_ERROR, Code::Internal),
        (h2::Reason::REFUSED_STREAM, Code::Unavailable),
    ];
    for before_head in [true, false] {
        for (reason, expected) in cases {
            let (addr, stop) = serve_resetting(reason, before_head).await;
            let uri: http::Uri = format!("http://{addr}").parse().unwrap();
            let connection = H2Connection::connect(&uri).await.unwrap();
            for protocol in [Protocol::Grpc, Protocol::Connect] {
                let pooled =
                    streamed_code(HttpClient::plaintext_h2c(), uri.clone(), protocol).await;
                let single = streamed_code(connection.clone(), uri.clone(), protocol).await;
                for (transport, code) in [("pooled", pooled), ("single", single)] {
                    assert_eq!(
                        code, expected,
                        "{transport} {protocol:?} {reason:?} before_head={before_head}"
                    );
                }
            }
            stop();
        }
    }
}

/// Records the HTTP/2 reason of every request body failure, then serves the echo service.
#[derive(Clone)]
struct Recording {
    inner: ConnectService<Echo>,
    reasons: Arc<Mutex<Vec<Option<h2::Reason>>>>,
}

impl tower::Service<http::Request<Incoming>> for Recording {
    type Response = http::Response<ResponseBody>;
    type Error = std::convert::Infallible;
    type Future =
        Pin<Box<dyn Future<Output = Result<http::Response<ResponseBody>, Self::Error>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<Incoming>) -> Self::Future {
        let reasons = self.reasons.clone();
        let request = request.map(|inner| RecordingBody { inner, reasons });
        let response = self.inner.serve(request);
        Box::pin(async move { Ok(response.await) })
    }
}

struct RecordingBody {
    inner: Incoming,
    reasons: Arc<Mutex<Vec<Option<h2::Reason>>>>,
}

impl Body for RecordingBody {
    type Data = Bytes;
    type Error = connect_tokio_hyper::BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Err(error))) = &polled {
            let reason = connect_tower::TransportError::find(error.as_ref())
                .and_then(|e| e.reset_code)
                .map(h2::Reason::from);
            self.reasons.lock().unwrap().push(reason);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }
}

async fn cancel_client_stream<T: Transport>(transport: T, uri: http::Uri) {
    let client = Client::new(transport, ClientConfig::new(uri).protocol(Protocol::Grpc));
    let mut call = client
        .client_streaming::<StringValue, StringValue>(&COLLECT, CallOptions::new())
        .await
        .unwrap();
    call.send(string("a")).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    drop(call);
}

#[tokio::test]
async fn dropped_calls_reset_their_stream_with_cancel() {
    let echo = Echo::default();
    let reasons = Arc::new(Mutex::new(Vec::new()));
    let service = Recording {
        inner: ConnectService::builder(echo.clone())
            .timer(TokioTimer::new())
            .build(),
        reasons: reasons.clone(),
    };
    let server = Server::builder().bind("127.0.0.1:0").await.unwrap();
    let addr = server.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(server.serve_with_shutdown(service, async {
        let _ = stopped.await;
    }));
    let uri: http::Uri = format!("http://{addr}").parse().unwrap();

    cancel_client_stream(HttpClient::plaintext_h2c(), uri.clone()).await;
    let connection = H2Connection::connect(&uri).await.unwrap();
    cancel_client_stream(connection.clone(), uri.clone()).await;

    let start = std::time::Instant::now();
    while reasons.lock().unwrap().len() < 2 || echo.cancelled.load(Ordering::SeqCst) < 2 {
        assert!(
            start.elapsed() < std::time::Duration::from_secs(5),
            "{:?}",
            reasons.lock().unwrap()
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    assert_eq!(
        *reasons.lock().unwrap(),
        vec![Some(h2::Reason::CANCEL), Some(h2::Reason::CANCEL)]
    );
    // The reservation of the dropped call was released.
    assert_eq!(connection.in_flight(), 0);
    let _ = stop.send(());
    running.await.unwrap();
}
