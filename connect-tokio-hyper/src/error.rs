//! The crate's [`Error`] type.

use std::io;

/// What went wrong setting up a server, a client transport or a TLS configuration.
///
/// Failures of individual calls never surface here: the tower layer turns them into statuses.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A socket operation failed (bind, connect, local address).
    #[error("I/O error: {0}")]
    Io(#[from] io::Error),
    /// A URI cannot be used for this transport (missing host, unsupported scheme, …).
    #[error("invalid URI: {0}")]
    InvalidUri(String),
    /// Connecting or handshaking took longer than the configured timeout.
    #[error("timed out: {0}")]
    Timeout(&'static str),
    /// The HTTP/2 handshake failed.
    #[cfg(feature = "client")]
    #[error("HTTP/2 error: {0}")]
    Http2(#[from] h2::Error),
    /// A TLS operation or configuration failed.
    #[cfg(feature = "tls")]
    #[error("TLS error: {0}")]
    Tls(#[from] rustls::Error),
    /// The client certificate verifier could not be built (for example, an empty root store).
    #[cfg(feature = "tls")]
    #[error("client certificate verifier: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
    /// PEM input could not be parsed, or held no item of the wanted kind.
    #[cfg(feature = "tls")]
    #[error("PEM: {0}")]
    Pem(#[from] rustls_pki_types::pem::Error),
    /// No rustls crypto provider: enable this crate's `aws-lc-rs` or `ring` feature, or
    /// install a process-wide default (`CryptoProvider::install_default`).
    #[cfg(feature = "tls")]
    #[error(
        "no rustls crypto provider: enable connect-tokio-hyper's `aws-lc-rs` or `ring` feature, \
         or install a process-wide default provider"
    )]
    NoCryptoProvider,
    /// The peer did not agree to the application protocol this transport needs (ALPN).
    #[cfg(feature = "tls")]
    #[error("the server did not negotiate {0} with ALPN")]
    Alpn(&'static str),
}

/// A `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
