//! What goes wrong outside any call — failed accepts, TLS handshakes, broken connections — as
//! [`ServerError`]s for the hook set with [`ServerBuilder::on_error`](super::ServerBuilder::on_error).

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use crate::BoxError;

/// A failure outside any call. None of them stops the server: an accept error pauses the
/// accept loop briefly (unless it concerns one connection only), the others end one
/// connection. Calls report their own failures to their clients, not here.
#[derive(Debug)]
#[non_exhaustive]
pub enum ServerError {
    /// `accept` failed, e.g. out of file descriptors.
    Accept(io::Error),
    /// A TLS handshake failed (including a missing or invalid client certificate).
    TlsHandshake {
        /// The peer.
        remote: SocketAddr,
        /// Why.
        error: io::Error,
    },
    /// A TLS handshake did not finish within the handshake timeout.
    TlsHandshakeTimeout {
        /// The peer.
        remote: SocketAddr,
    },
    /// A client sent no complete request head (HTTP/1.1) or preface (HTTP/2) within the
    /// header read timeout — nothing at all, or a part and then nothing; its connection was
    /// closed.
    Silent {
        /// The peer.
        remote: SocketAddr,
    },
    /// A connection ended with an HTTP error: a malformed request, an HTTP/2 protocol
    /// violation, a failing socket. Ordinary endings — the client closing its connection, idle
    /// or mid-call, or resetting a stream — are not reported.
    Connection {
        /// The peer.
        remote: SocketAddr,
        /// Why (a `hyper::Error` or an I/O error).
        error: BoxError,
    },
}

impl ServerError {
    /// The peer, for errors that concern one connection.
    pub fn remote(&self) -> Option<SocketAddr> {
        match self {
            ServerError::Accept(_) => None,
            ServerError::TlsHandshake { remote, .. }
            | ServerError::TlsHandshakeTimeout { remote }
            | ServerError::Silent { remote }
            | ServerError::Connection { remote, .. } => Some(*remote),
        }
    }
}

impl fmt::Display for ServerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServerError::Accept(error) => write!(f, "accept failed: {error}"),
            ServerError::TlsHandshake { remote, error } => {
                write!(f, "TLS handshake with {remote} failed: {error}")
            }
            ServerError::TlsHandshakeTimeout { remote } => {
                write!(f, "TLS handshake with {remote} timed out")
            }
            ServerError::Silent { remote } => {
                write!(f, "{remote} sent nothing before the header read timeout")
            }
            ServerError::Connection { remote, error } => {
                write!(f, "connection with {remote} failed: {error}")
            }
        }
    }
}

impl std::error::Error for ServerError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ServerError::Accept(error) | ServerError::TlsHandshake { error, .. } => Some(error),
            ServerError::Connection { error, .. } => Some(&**error),
            ServerError::TlsHandshakeTimeout { .. } | ServerError::Silent { .. } => None,
        }
    }
}

/// Whether an I/O error is a peer going away (closing or resetting its connection) rather
/// than a failure worth reporting.
pub(crate) fn is_disconnect(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe
            | io::ErrorKind::UnexpectedEof
            | io::ErrorKind::NotConnected
    )
}

/// Whether an HTTP/1.1 connection error is an ordinary ending: the client closed or reset
/// the connection (before, during or after a request).
pub(crate) fn is_ordinary_http1_end(error: &hyper::Error) -> bool {
    if error.is_incomplete_message() || error.is_closed() || error.is_canceled() {
        return true;
    }
    source_io_error(error).is_some_and(is_disconnect)
}

/// Whether an HTTP/2 connection error is an ordinary ending: the client went away, or said
/// goodbye with `NO_ERROR` (or cancelled).
pub(crate) fn is_ordinary_http2_end(error: &h2::Error) -> bool {
    if let Some(io) = error.get_io() {
        return is_disconnect(io);
    }
    error.is_remote()
        && matches!(
            error.reason(),
            Some(h2::Reason::NO_ERROR) | Some(h2::Reason::CANCEL)
        )
}

fn source_io_error<'a>(error: &'a (dyn std::error::Error + 'static)) -> Option<&'a io::Error> {
    let mut current = Some(error);
    while let Some(error) = current {
        if let Some(io) = error.downcast_ref::<io::Error>() {
            return Some(io);
        }
        current = error.source();
    }
    None
}

/// A reporting function.
type HookFn = dyn Fn(&ServerError) + Send + Sync;

/// The hook errors are reported to (none by default).
#[derive(Clone, Default)]
pub(crate) struct ErrorHook(Option<Arc<HookFn>>);

impl ErrorHook {
    pub(crate) fn new(hook: impl Fn(&ServerError) + Send + Sync + 'static) -> Self {
        ErrorHook(Some(Arc::new(hook)))
    }

    /// Reports `error`; a hook that panics is caught (the server never stops for it).
    pub(crate) fn report(&self, error: ServerError) {
        if let Some(hook) = &self.0 {
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| hook(&error)));
        }
    }
}

impl fmt::Debug for ErrorHook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_some() { "Some(..)" } else { "None" })
    }
}
