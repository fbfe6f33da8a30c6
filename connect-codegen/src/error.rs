//! The one error type of the crate.

use std::path::PathBuf;

/// Why generation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A plugin parameter or builder option is malformed or unknown.
    #[error("invalid option: {0}")]
    InvalidOption(String),
    /// The descriptors do not describe what generation needs (a missing name, a method type
    /// that is not in the set, …).
    #[error("invalid descriptors: {0}")]
    Model(String),
    /// buffa-codegen rejected the input.
    #[error("buffa-codegen: {0}")]
    Buffa(#[from] buffa_codegen::CodeGenError),
    /// Generated tokens did not parse as Rust (a bug in this crate).
    #[error("generated code does not parse: {0}")]
    Syntax(String),
    /// A descriptor set or plugin request could not be decoded.
    #[error("{0}")]
    Decode(String),
    /// No `protoc` could be found: `PROTOC` is unset and no vendored binary exists for this
    /// platform.
    #[error("no protoc: set the PROTOC environment variable ({0})")]
    ProtocNotFound(String),
    /// `protoc` ran and failed.
    #[error("protoc failed ({status}): {stderr}")]
    Protoc {
        /// The exit status, as text.
        status: String,
        /// What protoc printed on stderr.
        stderr: String,
    },
    /// An input `.proto` file lies in none of the include directories.
    #[error("{0} is not inside any include directory")]
    NotInIncludes(PathBuf),
    /// `out_dir` was not set and `OUT_DIR` is not in the environment.
    #[error("no output directory: call Builder::out_dir or run from a build script")]
    NoOutDir,
    /// A file-system or process operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        source: std::io::Error,
    },
}

impl Error {
    pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
        let context = context.into();
        move |source| Error::Io { context, source }
    }
}
