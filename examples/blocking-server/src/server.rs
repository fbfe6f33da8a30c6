//! The listener: one thread per connection up to a bound, keep-alive, and a graceful stop.

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::net::{
    IpAddr, Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, TcpListener, TcpStream, ToSocketAddrs,
};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use connect_proto_core::{Code, ServerConfig};

use crate::greeter::GreeterOptions;
use crate::http1::{self, Conn, Head, HeadLimits};
use crate::response::ResponseWriter;
use crate::serve::{self, Context, Next};

/// Default bound on open connections (and so on threads).
const DEFAULT_MAX_CONNECTIONS: usize = 256;
/// Default bound on a request head.
const DEFAULT_MAX_HEAD_BYTES: usize = 16 * 1024;
/// Default wait for the next request on an open connection.
const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Default time to read a request head once it began.
const DEFAULT_HEAD_TIMEOUT: Duration = Duration::from_secs(10);
/// Default wait for a request body's next bytes when the call sets no earlier timer.
const DEFAULT_BODY_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Default wait for the client to take response bytes.
const DEFAULT_WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// Default time a stopping server waits for requests in flight.
const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
/// The write timeout of the `503` sent to a connection over the limit (by the accepting
/// thread, which must not wait long).
const REFUSAL_WRITE_TIMEOUT: Duration = Duration::from_millis(100);
/// How long to wait for connection threads after their sockets were shut down.
const FORCED_CLOSE_WAIT: Duration = Duration::from_secs(1);
/// The pause after an `accept` failure (such as running out of file descriptors).
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(50);

/// The server's limits and settings. Every limit has a default.
#[derive(Clone, Debug)]
pub struct ServerOptions {
    max_connections: usize,
    max_head_bytes: usize,
    idle_timeout: Duration,
    head_timeout: Duration,
    body_read_timeout: Duration,
    write_timeout: Duration,
    drain_timeout: Duration,
    protocol: ServerConfig,
    greeter: GreeterOptions,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_head_bytes: DEFAULT_MAX_HEAD_BYTES,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            head_timeout: DEFAULT_HEAD_TIMEOUT,
            body_read_timeout: DEFAULT_BODY_READ_TIMEOUT,
            write_timeout: DEFAULT_WRITE_TIMEOUT,
            drain_timeout: DEFAULT_DRAIN_TIMEOUT,
            protocol: ServerConfig::new(),
            greeter: GreeterOptions::new(),
        }
    }
}

impl ServerOptions {
    /// The defaults: 256 connections, 16 KiB heads read within 10 s, 60 s idle, 30 s body
    /// reads and writes, 10 s to drain, the core's default protocol settings.
    pub fn new() -> Self {
        ServerOptions::default()
    }

    /// The most open connections, each with its thread; more are answered `503` and closed.
    #[must_use]
    pub fn max_connections(mut self, max: usize) -> Self {
        self.max_connections = max;
        self
    }

    /// The largest request head (request line and fields); larger ones are answered `431`.
    #[must_use]
    pub fn max_head_bytes(mut self, max: usize) -> Self {
        self.max_head_bytes = max;
        self
    }

    /// How long a connection waits for a request (the first, or the next one on a
    /// keep-alive connection) before it is closed.
    #[must_use]
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.idle_timeout = timeout;
        self
    }

    /// How long a request head may take once its first byte arrived (`408` after).
    #[must_use]
    pub fn head_timeout(mut self, timeout: Duration) -> Self {
        self.head_timeout = timeout;
        self
    }

    /// How long a request body read may wait when the call sets no earlier timer (its
    /// deadline, or the core's body pause limit): the call then fails as a broken body.
    #[must_use]
    pub fn body_read_timeout(mut self, timeout: Duration) -> Self {
        self.body_read_timeout = timeout;
        self
    }

    /// How long a write may wait for the client to take bytes before the connection is
    /// dropped.
    #[must_use]
    pub fn write_timeout(mut self, timeout: Duration) -> Self {
        self.write_timeout = timeout;
        self
    }

    /// How long [`Server::serve`] waits, once stopped, for requests in flight before it shuts
    /// their connections down.
    #[must_use]
    pub fn drain_timeout(mut self, timeout: Duration) -> Self {
        self.drain_timeout = timeout;
        self
    }

    /// The core's protocol settings (limits, compression, maximum timeout). Whatever
    /// protocols it enables, the server speaks Connect and gRPC-Web only: gRPC needs HTTP/2.
    #[must_use]
    pub fn protocol(mut self, config: ServerConfig) -> Self {
        self.protocol = config;
        self
    }

    /// The greeter's settings.
    #[must_use]
    pub fn greeter(mut self, options: GreeterOptions) -> Self {
        self.greeter = options;
        self
    }
}

/// Counters of a server's life so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Connections served (each on its own thread).
    pub connections_accepted: u64,
    /// Connections refused because [`ServerOptions::max_connections`] were open.
    pub connections_refused: u64,
    /// Request heads read (including those answered with an error).
    pub requests: u64,
    /// Connections open now.
    pub open_connections: usize,
}

/// A bound listener, ready to [`serve`](Server::serve).
#[derive(Debug)]
pub struct Server {
    listener: TcpListener,
    shared: Arc<Shared>,
}

/// Stops a [`Server`] from any thread; cheap to clone.
#[derive(Clone)]
pub struct ShutdownHandle {
    shared: Arc<Shared>,
}

impl Server {
    /// Binds the listener.
    pub fn bind(addr: impl ToSocketAddrs, options: ServerOptions) -> io::Result<Server> {
        let listener = TcpListener::bind(addr)?;
        let local = listener.local_addr()?;
        // Stopping wakes the blocked `accept` with a connection of its own.
        let wake_ip = match local.ip() {
            IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
            ip => ip,
        };
        let ctx = Context {
            protocol: options.protocol.clone().protocols(true, false, true),
            greeter: options.greeter.clone(),
            body_read_timeout: options.body_read_timeout,
            stopping: AtomicBool::new(false),
        };
        let limits = HeadLimits {
            max_bytes: options.max_head_bytes,
            idle_timeout: options.idle_timeout,
            read_timeout: options.head_timeout,
        };
        let shared = Shared {
            ctx,
            limits,
            options,
            wake: SocketAddr::new(wake_ip, local.port()),
            open: Mutex::new(0),
            closed: Condvar::new(),
            sockets: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(0),
            accepted: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            requests: AtomicU64::new(0),
        };
        Ok(Server {
            listener,
            shared: Arc::new(shared),
        })
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// A handle that stops the server.
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        ShutdownHandle {
            shared: Arc::clone(&self.shared),
        }
    }

    /// Serves until [`ShutdownHandle::shutdown`]: then stops accepting, lets requests in flight
    /// finish (closing their connections after them) for up to the drain timeout, shuts the
    /// remaining connections down, and returns the final counters.
    pub fn serve(self) -> io::Result<Stats> {
        for incoming in self.listener.incoming() {
            if self.shared.ctx.stopping.load(Ordering::Acquire) {
                break;
            }
            match incoming {
                Ok(stream) => Shared::start(&self.shared, stream),
                Err(e) if is_transient(&e) => {}
                // Out of file descriptors or memory: pause rather than spin.
                Err(_) => thread::sleep(ACCEPT_ERROR_PAUSE),
            }
        }
        self.shared.drain();
        Ok(self.shared.stats())
    }
}

impl ShutdownHandle {
    /// Stops the server: no new connections, idle ones close, requests in flight finish.
    /// Returns at once; [`Server::serve`] returns when the drain is over.
    pub fn shutdown(&self) {
        if !self.shared.ctx.stopping.swap(true, Ordering::AcqRel) {
            let _ = TcpStream::connect_timeout(&self.shared.wake, Duration::from_secs(1));
        }
    }

    /// The server's counters now.
    pub fn stats(&self) -> Stats {
        self.shared.stats()
    }
}

impl fmt::Debug for ShutdownHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ShutdownHandle")
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

/// What the listener and the connection threads share.
#[derive(Debug)]
struct Shared {
    ctx: Context,
    limits: HeadLimits,
    options: ServerOptions,
    wake: SocketAddr,
    /// Open connections; `closed` is notified when one closes.
    open: Mutex<usize>,
    closed: Condvar,
    /// A handle on each open connection's socket, to shut them down when draining times out.
    sockets: Mutex<HashMap<u64, TcpStream>>,
    next_id: AtomicU64,
    accepted: AtomicU64,
    refused: AtomicU64,
    requests: AtomicU64,
}

impl Shared {
    /// Starts a thread for `stream`, or refuses it when the server is full.
    fn start(this: &Arc<Shared>, stream: TcpStream) {
        {
            let mut open = lock(&this.open);
            if *open >= this.options.max_connections {
                drop(open);
                this.refused.fetch_add(1, Ordering::Relaxed);
                return refuse(stream);
            }
            *open += 1;
        }
        let id = this.next_id.fetch_add(1, Ordering::Relaxed);
        if let Ok(handle) = stream.try_clone() {
            lock(&this.sockets).insert(id, handle);
        }
        // The guard closes the books on the connection however its thread ends, and also if
        // the thread cannot be spawned (the closure holding it is then dropped).
        let guard = Open {
            shared: Arc::clone(this),
            id,
        };
        let spawned = thread::Builder::new()
            .name(format!("blocking-server-conn-{id}"))
            .spawn(move || {
                let guard = guard;
                connection(stream, &guard.shared);
            });
        match spawned {
            Ok(_) => {
                this.accepted.fetch_add(1, Ordering::Relaxed);
            }
            Err(_) => {
                this.refused.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Waits for open connections to finish, up to the drain timeout, then shuts the rest
    /// down and waits a little more for their threads.
    fn drain(&self) {
        if !self.wait_closed(self.options.drain_timeout) {
            for socket in lock(&self.sockets).values() {
                let _ = socket.shutdown(Shutdown::Both);
            }
            self.wait_closed(FORCED_CLOSE_WAIT);
        }
    }

    /// Waits until no connection is open; `false` on timeout.
    fn wait_closed(&self, timeout: Duration) -> bool {
        let start = Instant::now();
        let mut open = lock(&self.open);
        while *open > 0 {
            let left = timeout.saturating_sub(start.elapsed());
            if left.is_zero() {
                return false;
            }
            open = self
                .closed
                .wait_timeout(open, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        true
    }

    fn stats(&self) -> Stats {
        Stats {
            connections_accepted: self.accepted.load(Ordering::Relaxed),
            connections_refused: self.refused.load(Ordering::Relaxed),
            requests: self.requests.load(Ordering::Relaxed),
            open_connections: *lock(&self.open),
        }
    }
}

/// One open connection's place in the books.
struct Open {
    shared: Arc<Shared>,
    id: u64,
}

impl Drop for Open {
    fn drop(&mut self) {
        lock(&self.shared.sockets).remove(&self.id);
        let mut open = lock(&self.shared.open);
        *open = open.saturating_sub(1);
        self.shared.closed.notify_all();
    }
}

/// Serves the requests of one connection, one after the other.
fn connection(stream: TcpStream, shared: &Shared) {
    let _ = stream.set_nodelay(true);
    if stream
        .set_write_timeout(Some(shared.options.write_timeout))
        .is_err()
    {
        return;
    }
    let mut conn = Conn::new(stream);
    loop {
        match http1::read_head(&mut conn, &shared.limits, &shared.ctx.stopping) {
            Ok(Head::Request(head)) => {
                shared.requests.fetch_add(1, Ordering::Relaxed);
                match serve::serve_request(&mut conn, *head, &shared.ctx) {
                    Next::KeepAlive if !shared.ctx.stopping.load(Ordering::Acquire) => {}
                    Next::KeepAlive | Next::Close => return conn.linger_close(),
                }
            }
            Ok(Head::Invalid(status)) => {
                let _ = ResponseWriter::new(false, false).write_status(&mut conn, status);
                return conn.linger_close();
            }
            Ok(Head::Closed) | Err(_) => return,
        }
    }
}

/// Answers a connection over the limit with the HTTP status of `unavailable` and closes it.
fn refuse(stream: TcpStream) {
    let _ = stream.set_write_timeout(Some(REFUSAL_WRITE_TIMEOUT));
    let mut conn = Conn::new(stream);
    let _ =
        ResponseWriter::new(false, false).write_status(&mut conn, Code::Unavailable.http_status());
}

/// `accept` errors that concern one connection only.
fn is_transient(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
            | io::ErrorKind::WouldBlock
    )
}

/// Locks a mutex; a poisoned one (a thread panicked while holding it) is still usable: the
/// counters and maps it guards stay consistent.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
