//! Shared harness for connect-tower's in-process tests: no sockets, no sleeps, no real time.
//!
//! - [`ManualTimer`]: a [`Timer`] whose clock only moves when a test calls
//!   [`advance`](ManualTimer::advance); sleeps registered with it are woken then.
//! - [`Task`] and [`block_on`]: futures polled by hand with a counting waker. Everything runs
//!   in one thread and every wake-up happens inside a poll or an explicit test action, so a
//!   future that is pending without having been woken is stuck: [`block_on`] then panics
//!   instead of hanging.
//! - [`Echo`]: a hand-written [`Dispatch`] (what connect-codegen generates) with one method of
//!   each kind over `google.protobuf.StringValue`, whose handlers a test can replace; and
//!   [`Greeter`], a second service for routing tests.
//! - [`RawCall`]: a protocol-level client built on the core's `ClientCall`, for tests that
//!   poll the server's response future and body by hand.
//! - Probes: [`Counter`] (with drop guards), [`Slot`] (to hand a handler's stream or sender to
//!   the test), [`ChannelBody`] (a request body the test feeds), [`WithConnection`] (a
//!   transport layer that records a [`ConnectionInfo`], as runtime adapters do).
#![allow(dead_code, reason = "each test binary uses a different part")]

mod echo;
mod raw;

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use buffa_types::google::protobuf::StringValue;
use bytes::Bytes;
use connect_tower::client::{CallOptions, Client, ClientConfig, Transport};
use connect_tower::rt::{Sleep, Timer};
use connect_tower::server::{ConnectService, Dispatch};
use connect_tower::{Codec, ConnectionInfo, MethodSpec, Protocol, Status};
use http_body::{Body, Frame};

#[allow(unused_imports, reason = "each test binary uses a different part")]
pub use echo::*;
#[allow(unused_imports, reason = "each test binary uses a different part")]
pub use raw::*;

// ---------------------------------------------------------------------------------------------
// Time.

/// A clock that only moves when told to, and the sleeps waiting on it. Cheap to clone; clones
/// share the clock.
#[derive(Clone)]
pub struct ManualTimer {
    state: Arc<Mutex<TimerState>>,
}

struct TimerState {
    now: Instant,
    next_id: u64,
    /// Pending sleeps by registration id: deadline and the waker of their last poll.
    sleeps: BTreeMap<u64, (Instant, Waker)>,
}

impl ManualTimer {
    /// A timer whose clock starts at an arbitrary origin and stands still.
    pub fn new() -> Self {
        ManualTimer {
            state: Arc::new(Mutex::new(TimerState {
                now: Instant::now(),
                next_id: 0,
                sleeps: BTreeMap::new(),
            })),
        }
    }

    fn lock(&self) -> MutexGuard<'_, TimerState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The manual time.
    pub fn now(&self) -> Instant {
        self.lock().now
    }

    /// Moves the clock forward and wakes every sleep that is now due; returns how many were.
    pub fn advance(&self, by: Duration) -> usize {
        let due: Vec<Waker> = {
            let mut state = self.lock();
            state.now += by;
            let now = state.now;
            let ids: Vec<u64> = state
                .sleeps
                .iter()
                .filter(|(_, (at, _))| *at <= now)
                .map(|(id, _)| *id)
                .collect();
            ids.iter()
                .filter_map(|id| state.sleeps.remove(id))
                .map(|(_, waker)| waker)
                .collect()
        };
        let woken = due.len();
        due.into_iter().for_each(Waker::wake);
        woken
    }

    /// Sleeps polled, not yet due and not dropped.
    pub fn registered_sleeps(&self) -> usize {
        self.lock().sleeps.len()
    }
}

impl Default for ManualTimer {
    fn default() -> Self {
        ManualTimer::new()
    }
}

impl Timer for ManualTimer {
    fn now(&self) -> Instant {
        ManualTimer::now(self)
    }

    fn sleep_until(&self, deadline: Instant) -> Sleep {
        Box::pin(ManualSleep {
            timer: self.clone(),
            deadline,
            id: None,
        })
    }
}

struct ManualSleep {
    timer: ManualTimer,
    deadline: Instant,
    id: Option<u64>,
}

impl Future for ManualSleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        let mut state = this.timer.lock();
        if state.now >= this.deadline {
            if let Some(id) = this.id.take() {
                state.sleeps.remove(&id);
            }
            return Poll::Ready(());
        }
        let id = *this.id.get_or_insert_with(|| {
            state.next_id += 1;
            state.next_id
        });
        state.sleeps.insert(id, (this.deadline, cx.waker().clone()));
        Poll::Pending
    }
}

impl Drop for ManualSleep {
    fn drop(&mut self) {
        if let Some(id) = self.id.take() {
            self.timer.lock().sleeps.remove(&id);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Polling by hand.

/// A waker that counts its wake-ups.
#[derive(Default)]
pub struct WakeCounter(AtomicUsize);

impl WakeCounter {
    pub fn count(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

impl Wake for WakeCounter {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// A future polled by hand, always with the same counting waker.
pub struct Task<'a, T> {
    future: Pin<Box<dyn Future<Output = T> + 'a>>,
    counter: Arc<WakeCounter>,
    waker: Waker,
}

impl<'a, T> Task<'a, T> {
    pub fn new(future: impl Future<Output = T> + 'a) -> Self {
        let counter = Arc::new(WakeCounter::default());
        Task {
            future: Box::pin(future),
            waker: Waker::from(counter.clone()),
            counter,
        }
    }

    /// Polls once.
    pub fn poll(&mut self) -> Poll<T> {
        self.future
            .as_mut()
            .poll(&mut Context::from_waker(&self.waker))
    }

    /// Wake-ups of this task's waker so far.
    pub fn wakes(&self) -> usize {
        self.counter.count()
    }

    /// Polls once, expecting `Pending`.
    #[track_caller]
    pub fn pending(&mut self) {
        assert!(self.poll().is_pending(), "expected the task to be pending");
    }

    /// Polls once, expecting an output.
    #[track_caller]
    pub fn ready(&mut self) -> T {
        match self.poll() {
            Poll::Ready(output) => output,
            Poll::Pending => panic!("expected the task to be ready"),
        }
    }

    /// Polls until ready. A poll that returns pending without a wake-up since it began means
    /// the task is stuck (in one thread on manual time nothing else will wake it): that
    /// panics, so a hang fails fast.
    #[track_caller]
    pub fn run(&mut self) -> T {
        for _ in 0..10_000 {
            let before = self.wakes();
            if let Poll::Ready(output) = self.poll() {
                return output;
            }
            assert!(
                self.wakes() > before,
                "stalled: pending and nothing will wake it (a manual-time test must advance)"
            );
        }
        panic!("livelock: 10,000 polls without completing");
    }
}

/// Runs a future to completion in this thread; panics if it gets stuck (see [`Task::run`]).
#[track_caller]
pub fn block_on<T>(future: impl Future<Output = T>) -> T {
    Task::new(future).run()
}

// ---------------------------------------------------------------------------------------------
// Probes.

/// A shared counter; its [`guard`](Counter::guard)s count their drops.
#[derive(Clone, Debug, Default)]
pub struct Counter(Arc<AtomicUsize>);

impl Counter {
    pub fn new() -> Self {
        Counter::default()
    }

    pub fn get(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }

    pub fn incr(&self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }

    /// A value that increments the counter when dropped (move it into a handler future to see
    /// when the future is dropped).
    pub fn guard(&self) -> DropGuard {
        DropGuard(self.clone())
    }
}

/// See [`Counter::guard`].
pub struct DropGuard(Counter);

impl Drop for DropGuard {
    fn drop(&mut self) {
        self.0.incr();
    }
}

/// A value whose drop panics (a handler whose cancellation panics).
pub struct PanicOnDrop;

impl Drop for PanicOnDrop {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            panic!("PanicOnDrop dropped");
        }
    }
}

/// A place a handler puts something (its request stream, its sender) for the test to take.
pub struct Slot<T>(Arc<Mutex<Option<T>>>);

impl<T> Clone for Slot<T> {
    fn clone(&self) -> Self {
        Slot(self.0.clone())
    }
}

impl<T> Default for Slot<T> {
    fn default() -> Self {
        Slot(Arc::new(Mutex::new(None)))
    }
}

impl<T> Slot<T> {
    pub fn new() -> Self {
        Slot::default()
    }

    pub fn put(&self, value: T) {
        *self.0.lock().unwrap() = Some(value);
    }

    #[track_caller]
    pub fn take(&self) -> T {
        self.0.lock().unwrap().take().expect("the slot is empty")
    }
}

/// A log of events from several places, in order.
#[derive(Clone, Debug, Default)]
pub struct Log(Arc<Mutex<Vec<String>>>);

impl Log {
    pub fn push(&self, entry: impl Into<String>) {
        self.0.lock().unwrap().push(entry.into());
    }

    pub fn entries(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
}

/// A request body fed by the test through the sender: pending until a chunk is sent, ended
/// when the sender is dropped.
pub struct ChannelBody(tokio::sync::mpsc::UnboundedReceiver<Bytes>);

pub fn channel_body() -> (tokio::sync::mpsc::UnboundedSender<Bytes>, ChannelBody) {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    (tx, ChannelBody(rx))
}

impl Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.get_mut()
            .0
            .poll_recv(cx)
            .map(|chunk| chunk.map(|c| Ok(Frame::data(c))))
    }
}

/// A transport layer that records a [`ConnectionInfo`] in every request's extensions, as the
/// runtime adapters' servers do.
#[derive(Clone)]
pub struct WithConnection<S> {
    pub inner: S,
    pub info: ConnectionInfo,
}

impl<S, B> tower_service::Service<http::Request<B>> for WithConnection<S>
where
    S: tower_service::Service<http::Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> S::Future {
        request.extensions_mut().insert(self.info.clone());
        self.inner.call(request)
    }
}

// ---------------------------------------------------------------------------------------------
// Messages, protocols, builders.

/// A `StringValue`.
pub fn sv(value: &str) -> StringValue {
    StringValue::from(value)
}

/// The values of a list of messages.
pub fn values(messages: &[StringValue]) -> Vec<&str> {
    messages.iter().map(|m| m.value.as_str()).collect()
}

/// Calls a server-streaming method and collects every response (or the failure).
pub async fn collect_server_stream<T: Transport>(
    client: &Client<T>,
    method: &MethodSpec,
    request: StringValue,
) -> Result<Vec<StringValue>, Status> {
    let mut stream = client
        .server_streaming::<StringValue, StringValue>(method, request, CallOptions::new())
        .await?;
    let mut received = Vec::new();
    while let Some(message) = stream.message().await? {
        received.push(message);
    }
    Ok(received)
}

/// How a client talks: a protocol, and for gRPC-Web binary or text bodies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wire {
    Connect,
    Grpc,
    GrpcWeb,
    GrpcWebText,
}

/// Every wire form.
pub const WIRES: [Wire; 4] = [Wire::Connect, Wire::Grpc, Wire::GrpcWeb, Wire::GrpcWebText];
/// One wire form per protocol.
pub const PROTOCOLS: [Wire; 3] = [Wire::Connect, Wire::Grpc, Wire::GrpcWeb];
/// Both codecs.
pub const CODECS: [Codec; 2] = [Codec::Proto, Codec::Json];

impl Wire {
    pub fn protocol(self) -> Protocol {
        match self {
            Wire::Connect => Protocol::Connect,
            Wire::Grpc => Protocol::Grpc,
            Wire::GrpcWeb | Wire::GrpcWebText => Protocol::GrpcWeb,
        }
    }

    pub fn config(self, codec: Codec) -> ClientConfig {
        ClientConfig::new(http::Uri::from_static("http://in-process.test"))
            .protocol(self.protocol())
            .codec(codec)
            .grpc_web_text(self == Wire::GrpcWebText)
    }
}

/// A service over `dispatch` whose deadlines run on `timer`.
pub fn serve<D: Dispatch>(dispatch: D, timer: &ManualTimer) -> ConnectService<D> {
    ConnectService::builder(dispatch)
        .timer(timer.clone())
        .build()
}

/// A client over an in-process transport whose deadlines run on `timer`.
pub fn client<T: Transport>(
    transport: T,
    wire: Wire,
    codec: Codec,
    timer: &ManualTimer,
) -> Client<T> {
    Client::new(transport, wire.config(codec)).timer(timer.clone())
}

/// The size of `message` framed in a 5-byte envelope, uncompressed.
pub fn framed_len(codec: Codec, message: &StringValue) -> usize {
    5 + codec.encode(message).expect("encode").len()
}
