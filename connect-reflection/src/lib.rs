//! gRPC server reflection (`grpc.reflection.v1` and `grpc.reflection.v1alpha`
//! `ServerReflection`) for servers built on connect-tower.
//!
//! # Contract
//!
//! A [`ReflectionService`] describes the services of a server to reflection clients (grpcurl,
//! buf curl, grpcui, Postman) from the descriptor sets registered with its
//! [builder](ReflectionService::builder), over Connect, gRPC and gRPC-Web, in both protocol
//! versions (serve [`v1_server`](ReflectionService::v1_server) and
//! [`v1alpha_server`](ReflectionService::v1alpha_server), or both at once with
//! [`routes`](ReflectionService::routes)). On one `ServerReflectionInfo` stream it answers
//! each question with one response, in order:
//!
//! - `list_services`: every service declared in the registered sets (the reflection services
//!   themselves included, as grpc-go lists them), sorted, unless
//!   [`service_names`](ReflectionServiceBuilder::service_names) says otherwise;
//! - `file_by_filename`, `file_containing_symbol` (services, methods, messages, enums, nested
//!   types, extensions, message fields) and `file_containing_extension`: serialized
//!   `FileDescriptorProto`s, the file asked for first, then its transitive imports. **Each file
//!   is sent once per stream** (as grpc-go does): an import already sent on the stream is left
//!   out, the file asked for never is;
//! - `all_extension_numbers_of_type`: the numbers of the registered extensions of a message;
//! - anything unknown: an `error_response` with `NOT_FOUND` (a request with no question:
//!   `INVALID_ARGUMENT`), and the stream goes on.
//!
//! The stream ends with `OK` when the client closes its side, and also when the server starts
//! draining while no question is pending, so idle reflection sessions do not hold a graceful
//! shutdown open. Descriptor sets are linked and checked when the service is
//! [built](ReflectionServiceBuilder::build); each file is serialized once then.
//!
//! Descriptor sets come from `connect_codegen::Builder::file_descriptor_set_path` (or protoc's
//! `--descriptor_set_out` with `--include_imports`, or the codegen's `file_descriptor_set`
//! option): every import must be in some registered set.
//!
//! ```
//! use connect_reflection::ReflectionService;
//! use connect_tower::server::{ConnectService, Routes};
//!
//! # fn main() -> Result<(), connect_reflection::Error> {
//! // In your crate: `include_bytes!(concat!(env!("OUT_DIR"), "/descriptors.binpb"))`,
//! // written by `connect_codegen::Builder::file_descriptor_set_path("descriptors.binpb")`.
//! let my_descriptors: &[u8] = connect_health::FILE_DESCRIPTOR_SET;
//! let reflection = ReflectionService::builder()
//!     .register_file_descriptor_set(my_descriptors)?
//!     .build()?;
//! let (_health, health_server) = connect_health::server();
//! let routes = Routes::new()
//!     .service(health_server) // … and the server's own services
//!     .service(reflection.routes());
//! let service = ConnectService::new(routes);
//! # let _ = service;
//! # Ok(())
//! # }
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod descriptors;

use std::collections::HashMap;
use std::future::{Future, poll_fn};
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::task::Poll;

use buffa_descriptor::PoolError;
use buffa_descriptor::generated::descriptor::{FileDescriptorProto, FileDescriptorSet};
use connect_tower::server::{ResponseSender, Routes, Streaming};
use connect_tower::{Code, Request, Status};

use descriptors::{Answer, Descriptors, Sent};

/// Everything generated from `proto/grpc/reflection/`.
#[allow(missing_docs, reason = "buffa's package modules carry no docs")]
pub mod proto {
    include!(concat!(env!("OUT_DIR"), "/_include.rs"));
}

/// The `grpc.reflection.v1` package: messages and the `server_reflection` service module
/// (server, client, method constants).
pub use proto::grpc::reflection::v1;
/// The `grpc.reflection.v1alpha` package (deprecated upstream, still asked for by older
/// clients): the same protocol as [`v1`].
pub use proto::grpc::reflection::v1alpha;

/// The serialized `google.protobuf.FileDescriptorSet` of both reflection protocols'
/// `.proto` files. Every [`ReflectionService`] registers it, so it describes itself.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/reflection.binpb"));

/// Why descriptors could not be registered or linked.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The bytes are not a serialized `google.protobuf.FileDescriptorSet`.
    #[error("not a FileDescriptorSet: {0}")]
    Decode(#[source] buffa::DecodeError),
    /// A file in a set has no name.
    #[error("a FileDescriptorProto in the set has no name")]
    UnnamedFile,
    /// Two registered files have the same name but different contents (source info aside).
    #[error("{0:?} is registered twice with different contents")]
    ConflictingFile(String),
    /// A file imports one that no registered set holds (build the set with its imports:
    /// protoc's `--include_imports`, which `connect_codegen::Builder` uses).
    #[error("{file:?} imports {import:?}, which no registered descriptor set holds")]
    MissingImport {
        /// The importing file.
        file: String,
        /// The missing import.
        import: String,
    },
    /// The descriptors do not link: a type name that resolves to nothing, a symbol declared
    /// twice, …
    #[error("invalid descriptors: {0}")]
    Invalid(#[source] PoolError),
}

/// The reflection service: answers `ServerReflectionInfo` for both protocol versions from
/// registered descriptors. Cheap to clone (the descriptors are shared). See the
/// [crate docs](crate) for what it answers.
#[derive(Clone, Debug)]
pub struct ReflectionService {
    descriptors: Arc<Descriptors>,
}

/// Registers descriptor sets for a [`ReflectionService`].
#[derive(Clone, Debug, Default)]
#[must_use]
pub struct ReflectionServiceBuilder {
    files: Vec<FileDescriptorProto>,
    by_name: HashMap<String, usize>,
    service_names: Option<Vec<String>>,
}

impl ReflectionService {
    /// A builder, with nothing registered but the reflection protocols themselves.
    pub fn builder() -> ReflectionServiceBuilder {
        ReflectionServiceBuilder::default()
    }

    /// The fully-qualified names `list_services` answers, sorted.
    pub fn service_names(&self) -> &[String] {
        self.descriptors.services()
    }

    /// The generated `grpc.reflection.v1.ServerReflection` server.
    pub fn v1_server(&self) -> v1::server_reflection::ServerReflectionServer<ReflectionService> {
        v1::server_reflection::ServerReflectionServer::new(self.clone())
    }

    /// The generated `grpc.reflection.v1alpha.ServerReflection` server.
    pub fn v1alpha_server(
        &self,
    ) -> v1alpha::server_reflection::ServerReflectionServer<ReflectionService> {
        v1alpha::server_reflection::ServerReflectionServer::new(self.clone())
    }

    /// Both servers in one `Routes`, to serve alone or add to the server's own `Routes`
    /// (`Routes::service` takes a `Routes` too).
    pub fn routes(&self) -> Routes {
        Routes::new()
            .service(self.v1_server())
            .service(self.v1alpha_server())
    }

    /// The answer to one question, with the files this stream has been sent.
    fn answer(&self, question: Question<'_>, sent: &mut Sent) -> Answer {
        let descriptors = &self.descriptors;
        match question {
            Question::FileByFilename(name) => descriptors.file_by_filename(name, sent),
            Question::FileContainingSymbol(symbol) => {
                descriptors.file_containing_symbol(symbol, sent)
            }
            Question::FileContainingExtension {
                containing_type,
                number,
            } => descriptors.file_containing_extension(containing_type, number, sent),
            Question::AllExtensionNumbersOfType(type_name) => {
                descriptors.extension_numbers(type_name)
            }
            Question::ListServices => descriptors.list_services(),
            Question::Missing => Answer::Error {
                code: Code::InvalidArgument,
                message: "the request asks no question (message_request is not set)".into(),
            },
        }
    }
}

impl ReflectionServiceBuilder {
    /// Registers the files of a serialized `google.protobuf.FileDescriptorSet` (what
    /// `connect_codegen::Builder::file_descriptor_set_path` writes). A file already registered
    /// under the same name is skipped if it has the same contents (source info aside), an
    /// error otherwise. The bytes are trusted (they come from your build): they are decoded
    /// without buffa's memory bound for untrusted input, so large schemas fit.
    pub fn register_file_descriptor_set(mut self, bytes: &[u8]) -> Result<Self, Error> {
        for file in decode_set(bytes)?.file {
            self.add_file(file)?;
        }
        Ok(self)
    }

    /// Lists exactly these services (fully-qualified names) in `list_services`, instead of
    /// every service the registered files declare. Files of unlisted services can still be
    /// looked up.
    pub fn service_names<I>(mut self, names: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        self.service_names = Some(names.into_iter().map(Into::into).collect());
        self
    }

    /// Links the registered files (with the reflection protocols' own) and builds the service.
    pub fn build(mut self) -> Result<ReflectionService, Error> {
        for file in decode_set(FILE_DESCRIPTOR_SET)?.file {
            self.add_file(file)?;
        }
        let descriptors = Descriptors::new(self.files, self.service_names)?;
        Ok(ReflectionService {
            descriptors: Arc::new(descriptors),
        })
    }

    fn add_file(&mut self, file: FileDescriptorProto) -> Result<(), Error> {
        let name = file.name.clone().ok_or(Error::UnnamedFile)?;
        match self.by_name.get(&name) {
            Some(&index) => {
                if !same_contents(&self.files[index], &file) {
                    return Err(Error::ConflictingFile(name));
                }
            }
            None => {
                self.by_name.insert(name, self.files.len());
                self.files.push(file);
            }
        }
        Ok(())
    }
}

/// Decodes a descriptor set. The bytes are trusted (they come from the build), so buffa's
/// memory bound for untrusted input is lifted: large schemas fit.
fn decode_set(bytes: &[u8]) -> Result<FileDescriptorSet, Error> {
    buffa::DecodeOptions::new()
        .with_element_memory_limit(usize::MAX)
        .decode_from_slice(bytes)
        .map_err(Error::Decode)
}

/// Whether two files are the same, ignoring source info (which one build keeps and another
/// may not).
fn same_contents(a: &FileDescriptorProto, b: &FileDescriptorProto) -> bool {
    let strip = |file: &FileDescriptorProto| {
        let mut file = file.clone();
        file.source_code_info = Default::default();
        file
    };
    a == b || strip(a) == strip(b)
}

/// One question, whichever protocol version asked it.
enum Question<'a> {
    FileByFilename(&'a str),
    FileContainingSymbol(&'a str),
    FileContainingExtension {
        containing_type: &'a str,
        number: i32,
    },
    AllExtensionNumbersOfType(&'a str),
    ListServices,
    Missing,
}

/// The next request, or `None` when the client closed its side or the server started
/// draining while no request was pending.
async fn next_request<T>(
    requests: &mut Streaming<T>,
    mut draining: Pin<&mut (impl Future<Output = ()> + Send)>,
) -> Result<Option<T>, Status> {
    // `Streaming::message` takes a message only when one is there: dropping it while it
    // waits loses nothing.
    let mut message = pin!(requests.message());
    poll_fn(|cx| {
        if let Poll::Ready(message) = message.as_mut().poll(cx) {
            return Poll::Ready(message);
        }
        if draining.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Ok(None));
        }
        Poll::Pending
    })
    .await
}

/// Implements one protocol version's handler trait: the same answers, in that version's
/// message types.
macro_rules! serve_version {
    ($version:ident) => {
        impl $version::server_reflection::ServerReflection for ReflectionService {
            async fn server_reflection_info(
                &self,
                request: Request<Streaming<$version::ServerReflectionRequest>>,
                mut responses: ResponseSender<$version::ServerReflectionResponse>,
            ) -> Result<(), Status> {
                use $version::server_reflection_request::MessageRequest;
                use $version::server_reflection_response::MessageResponse;

                let (context, mut requests) = request.into_parts();
                let mut draining = pin!(context.shutdown().draining());
                let mut sent = Sent::new();
                while let Some(request) = next_request(&mut requests, draining.as_mut()).await? {
                    let question = match &request.message_request {
                        Some(MessageRequest::FileByFilename(name)) => {
                            Question::FileByFilename(name)
                        }
                        Some(MessageRequest::FileContainingSymbol(symbol)) => {
                            Question::FileContainingSymbol(symbol)
                        }
                        Some(MessageRequest::FileContainingExtension(extension)) => {
                            Question::FileContainingExtension {
                                containing_type: &extension.containing_type,
                                number: extension.extension_number,
                            }
                        }
                        Some(MessageRequest::AllExtensionNumbersOfType(type_name)) => {
                            Question::AllExtensionNumbersOfType(type_name)
                        }
                        Some(MessageRequest::ListServices(_)) => Question::ListServices,
                        None => Question::Missing,
                    };
                    let answer = match self.answer(question, &mut sent) {
                        Answer::Files(files) => MessageResponse::FileDescriptorResponse(Box::new(
                            $version::FileDescriptorResponse {
                                file_descriptor_proto: files,
                                ..Default::default()
                            },
                        )),
                        Answer::ExtensionNumbers {
                            base_type_name,
                            numbers,
                        } => MessageResponse::AllExtensionNumbersResponse(Box::new(
                            $version::ExtensionNumberResponse {
                                base_type_name,
                                extension_number: numbers,
                                ..Default::default()
                            },
                        )),
                        Answer::Services(names) => MessageResponse::ListServicesResponse(Box::new(
                            $version::ListServiceResponse {
                                service: names
                                    .into_iter()
                                    .map(|name| $version::ServiceResponse {
                                        name,
                                        ..Default::default()
                                    })
                                    .collect(),
                                ..Default::default()
                            },
                        )),
                        Answer::Error { code, message } => {
                            MessageResponse::ErrorResponse(Box::new($version::ErrorResponse {
                                error_code: i32::from(code as u8),
                                error_message: message,
                                ..Default::default()
                            }))
                        }
                    };
                    let response = $version::ServerReflectionResponse {
                        valid_host: request.host.clone(),
                        message_response: Some(answer),
                        original_request: buffa::MessageField::some(request),
                        ..Default::default()
                    };
                    responses.send(response).await?;
                }
                Ok(())
            }
        }
    };
}

serve_version!(v1);
serve_version!(v1alpha);
