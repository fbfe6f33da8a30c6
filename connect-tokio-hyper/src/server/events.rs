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
    /// A client sent nothing within the header read timeout; its connection was closed.
    Silent {
        /// The peer.
        remote: SocketAddr,
    },
    /// A connection ended with an HTTP error: a malformed request, an HTTP/2 protocol error,
    /// a reset or broken socket (clients that vanish mid-request show up here too).
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

/// A reporting function.
type HookFn = dyn Fn(&ServerError) + Send + Sync;

/// The hook errors are reported to (none by default).
#[derive(Clone, Default)]
pub(crate) struct ErrorHook(Option<Arc<HookFn>>);

impl ErrorHook {
    pub(crate) fn new(hook: impl Fn(&ServerError) + Send + Sync + 'static) -> Self {
        ErrorHook(Some(Arc::new(hook)))
    }

    pub(crate) fn report(&self, error: ServerError) {
        if let Some(hook) = &self.0 {
            hook(&error);
        }
    }
}

impl fmt::Debug for ErrorHook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_some() { "Some(..)" } else { "None" })
    }
}
