//! Rust code generation for ConnectRPC services (Connect, gRPC, gRPC-Web).
//!
//! **Contract.** Given protobuf descriptors, this crate writes Rust source in which every message
//! comes from [`buffa_codegen`] (owned types, zero-copy views, proto3 JSON via serde) and every
//! service gets a module of service items next to its package's messages. Message type paths in
//! service code are resolved by buffa's own resolver, so they always name the types buffa
//! generated — including extern-mapped and well-known types. Generation is deterministic: the
//! same descriptors and options give byte-identical output through both front-ends:
//!
//! - the protoc plugin `protoc-gen-connect-rust` (stdin `CodeGeneratorRequest`, stdout
//!   `CodeGeneratorResponse`; see [`plugin`]);
//! - the build-script API [`Builder`], which runs protoc itself (vendored, no system install
//!   needed) and writes into `$OUT_DIR`.
//!
//! # What is generated per service
//!
//! A module named after the service in `snake_case` (keyword-escaped: `r#type`; suffixed with
//! `_` when the name is taken at the package root, e.g. by a sub-package), holding, for
//! `service Greeter` in `acme.v1`:
//!
//! - `SERVICE_NAME` and one `connect_tower::MethodSpec` constant per method, named in
//!   `SHOUTY_SNAKE_CASE` (`SAY_HELLO`): path, stream kind, idempotency;
//! - with `server`: the trait `Greeter` (one handler method per RPC, `snake_case`, returning
//!   `impl Future + Send`, so implementations may be `async fn`s; every method defaults to
//!   answering `unimplemented`), and `GreeterServer<S: Greeter>`, which implements
//!   `connect_tower::server::Dispatch` with a `match` on the request path. Serve it with
//!   `connect_tower::server::ConnectService::new(GreeterServer::new(my_impl))`, or add it to a
//!   `connect_tower::server::Routes`. Handlers receive buffa's zero-copy view handles
//!   (`Request<HelloRequestOwnedView>`; `to_owned_message()` converts) or, with `views=false`,
//!   owned messages; they answer with owned messages;
//! - with `client`: `GreeterClient<T>`, wrapping a `connect_tower::client::Client<T>` over any
//!   transport, with one `async` method per RPC taking and returning owned messages
//!   (`say_hello`) and a variant taking `CallOptions` (`say_hello_with_options`).
//!
//! ```ignore
//! use acme::v1::greeter::{Greeter, GreeterServer};
//! use connect_tower::{Request, Response, Status};
//!
//! struct MyGreeter;
//!
//! impl Greeter for MyGreeter {
//!     async fn say_hello(
//!         &self,
//!         request: Request<acme::v1::HelloRequestOwnedView>,
//!     ) -> Result<Response<acme::v1::HelloReply>, Status> {
//!         let name = request.message().name();
//!         Ok(Response::new(acme::v1::HelloReply {
//!             message: format!("Hello, {name}!"),
//!             ..Default::default()
//!         }))
//!     }
//! }
//!
//! let service = connect_tower::server::ConnectService::new(GreeterServer::new(MyGreeter));
//! ```
//!
//! Method names are `snake_case` and keyword-escaped (`r#match`; `self_`), and move aside with
//! a `_` suffix when taken: by another method, by the client's own `new`, `inner` and `clone`,
//! or by another method's `…_with_options` variant. Type names are the service name in
//! `UpperCamelCase`. Proto leading comments become rustdoc (escaped so that no `[link]`,
//! `<tag>` or indented block is misread), `option deprecated = true` becomes `#[deprecated]`.
//!
//! # Options
//!
//! The plugin takes them as a comma-separated parameter
//! (`--connect-rust_opt=client=false,extern_path=.acme.common=::acme_common`); [`Builder`] and
//! [`Options`] have a method for each.
//!
//! | key | value | default | meaning |
//! |---|---|---|---|
//! | `extern_path` | `.proto.path=::rust::path` | none | take messages under a proto package (or one type) from a Rust path instead of generating them; repeatable; see [`Options::extern_path`] |
//! | `client` | `true` / `false` | `true` | generate the client side |
//! | `server` | `true` / `false` | `true` | generate the server side |
//! | `views` | `true` / `false` | `true` | buffa view types |
//! | `json` | `true` / `false` | `true` | buffa proto3 JSON (serde) support; service code needs it (`connect-tower` serves every message as JSON too), so turn it off only with `server=false,client=false` |
//! | `unknown_fields` | `true` / `false` | `true` | messages keep the fields they do not know and write them back; `false` drops them, as prost does (smaller, cheaper messages); see [`Options::unknown_fields`] |
//! | `include_file` | file name, or empty | `_include.rs` | name of the module-tree file; empty writes none |
//! | `file_descriptor_set` | file name, or empty | none | also write a Rust file with `pub const FILE_DESCRIPTOR_SET: &[u8]`, the serialized descriptor set of the input and its imports (for server reflection); see [`Options::file_descriptor_set`] |
//! | `element_memory_limit` | bytes or `unlimited` | buffa's | decode bound for the request (buffa's option) |
//!
//! [`Builder::file_descriptor_set_path`] writes the descriptor set as raw bytes instead (protoc's
//! `--descriptor_set_out`) from a build script.
//!
//! Well-known types (`google.protobuf.*`) map to `::buffa_types::google::protobuf` unless an
//! `extern_path` for `.google.protobuf` says otherwise.
//!
//! # Output layout
//!
//! buffa's layout, plus one companion file per `.proto` file that declares services:
//!
//! | file | content |
//! |---|---|
//! | `<pkg>.mod.rs` | one per package: buffa's stitcher; `include!`s everything below |
//! | `<stem>.rs`, `<stem>.__view.rs`, `<stem>.__oneof.rs`, … | buffa's message code per `.proto` (`acme/v1/greeter.proto` → stem `acme.v1.greeter`) |
//! | `<stem>.__connect.rs` | this crate's service modules, included at the package root |
//! | `_include.rs` | the whole module tree: `pub mod acme { pub mod v1 { include!("acme.v1.mod.rs"); … } }` |
//!
//! Include the module tree once:
//!
//! ```ignore
//! pub mod proto {
//!     include!(concat!(env!("OUT_DIR"), "/_include.rs"));
//! }
//! // proto::acme::v1::HelloRequest, proto::acme::v1::greeter::SAY_HELLO
//! ```
//!
//! or one package at a time, nesting modules like the proto packages (cross-package
//! references are `super::`-relative):
//!
//! ```ignore
//! pub mod acme {
//!     pub mod v1 {
//!         buffa::include_proto!("acme.v1");
//!         pub mod inner {
//!             buffa::include_proto!("acme.v1.inner");
//!         }
//!     }
//! }
//! ```
//!
//! For plugin output checked into the source tree, `include!("gen/_include.rs")` or
//! `buffa::include_proto_relative!("gen", "acme.v1")`.
//!
//! The crate that compiles the output depends on `buffa` (feature `json`), `serde` (feature
//! `derive`), `connect-tower` (features `server` and/or `client`, as generated; both are on by
//! default) and, when the protos use well-known types, `buffa-types` (feature `json`).

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod builder;
mod descriptor_set;
mod docs;
mod emit;
mod error;
pub mod model;
mod names;
mod options;
pub mod plugin;

use buffa_codegen::context::CodeGenContext;
use buffa_codegen::{CodeGenConfig, GeneratedFile, GeneratedFileKind, IncludeMode};

pub use buffa_descriptor::generated::descriptor::{FileDescriptorProto, FileDescriptorSet};
pub use builder::{Builder, PROTOC_ENV};
pub use error::Error;
pub use options::{DEFAULT_INCLUDE_FILE, Options};

/// The output of one generation run.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Generated {
    /// Every file to write, all into one directory.
    pub files: Vec<OutputFile>,
    /// Non-fatal diagnostics from buffa-codegen.
    pub warnings: Vec<String>,
}

/// One generated file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutputFile {
    /// Bare file name (no directory).
    pub name: String,
    /// Rust source.
    pub content: String,
}

/// Generates messages and services for `files_to_generate` (names as in
/// `FileDescriptorProto.name`); `files` must also hold every import.
pub fn generate(
    files: &[FileDescriptorProto],
    files_to_generate: &[String],
    options: &Options,
) -> Result<Generated, Error> {
    let config = buffa_config(options)?;
    let include_file = options.checked_include_file()?;
    let descriptor_set = options.checked_file_descriptor_set()?;
    let (mut buffa_files, warnings) =
        buffa_codegen::generate_with_diagnostics(files, files_to_generate, &config)?;

    let ctx = CodeGenContext::for_generate(files, files_to_generate, &config);
    let services = model::build(&ctx, files_to_generate, options.views)?;
    let plan = emit::Plan {
        server: options.server,
        client: options.client,
    };
    let companions = services
        .iter()
        .map(|file| {
            emit::companion(file, plan).map(|c| GeneratedFile {
                name: c.name,
                package: file.package.clone(),
                kind: GeneratedFileKind::Companion,
                content: c.content,
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    buffa_codegen::apply_companions(&mut buffa_files, companions);

    let module_tree = include_file.map(|name| {
        let packages: Vec<(&str, &str)> = buffa_files
            .iter()
            .filter(|f| f.kind == GeneratedFileKind::PackageMod)
            .map(|f| (f.name.as_str(), f.package.as_str()))
            .collect();
        OutputFile {
            name: name.to_string(),
            content: buffa_codegen::generate_module_tree(
                &packages,
                IncludeMode::Relative(""),
                false,
            ),
        }
    });
    let descriptor_set = descriptor_set.map(|name| OutputFile {
        name: name.to_string(),
        content: descriptor_set::rust_constant(files),
    });
    let files = buffa_files
        .into_iter()
        .map(|f| OutputFile {
            name: f.name,
            content: f.content,
        })
        .chain(module_tree)
        .chain(descriptor_set)
        .collect();
    Ok(Generated {
        files,
        warnings: warnings.iter().map(ToString::to_string).collect(),
    })
}

/// The service model of `files_to_generate`: what [`generate`] emits service code from, with
/// every Rust name and message type path resolved (see [`model`]).
pub fn services(
    files: &[FileDescriptorProto],
    files_to_generate: &[String],
    options: &Options,
) -> Result<Vec<model::FileServices>, Error> {
    let config = buffa_config(options)?;
    let ctx = CodeGenContext::for_generate(files, files_to_generate, &config);
    model::build(&ctx, files_to_generate, options.views)
}

/// The buffa configuration for `options`: views, JSON and unknown fields as asked, extern
/// paths checked.
fn buffa_config(options: &Options) -> Result<CodeGenConfig, Error> {
    let mut config = CodeGenConfig::default();
    config.generate_views = options.views;
    config.generate_json = options.json;
    config.preserve_unknown_fields = options.unknown_fields;
    config.extern_paths = options.normalised_extern_paths()?;
    Ok(config)
}
