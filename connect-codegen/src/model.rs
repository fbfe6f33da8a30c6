//! The service model: every service of the files being generated, with the Rust names and type
//! paths the emitter needs, resolved once.
//!
//! Type paths come from buffa's own resolver ([`CodeGenContext`]), so a request type named here
//! is exactly the type buffa generated (or the extern / well-known type it maps to). Paths are
//! relative to a service's module, which sits one level below its package's module.

use std::collections::{BTreeMap, BTreeSet};

use buffa_codegen::context::CodeGenContext;
use buffa_descriptor::generated::descriptor::method_options::IdempotencyLevel;
use buffa_descriptor::generated::descriptor::{
    FileDescriptorProto, MethodDescriptorProto, ServiceDescriptorProto, SourceCodeInfo,
};

use crate::Error;
use crate::names::{
    Namespace, escape_ident, escape_path, to_shouty_snake_case, to_snake_case, to_upper_camel_case,
};

/// `FileDescriptorProto.service` field number (a `SourceCodeInfo` path element).
const FILE_SERVICE_FIELD: i32 = 6;
/// `ServiceDescriptorProto.method` field number (a `SourceCodeInfo` path element).
const SERVICE_METHOD_FIELD: i32 = 2;
/// Module depth of generated service items below their package module.
const SERVICE_MODULE_DEPTH: usize = 1;
/// Names a service module already holds before any method is added.
const RESERVED_IN_SERVICE_MODULE: &[&str] = &["SERVICE_NAME"];
/// Method names the generated client already has (`GreeterClient::new`, `inner`, and `clone`,
/// which an inherent method would shadow). Handler and client methods share one name per RPC,
/// so an RPC named `New` is `new_` on both sides.
const RESERVED_FN_NAMES: &[&str] = &["new", "inner", "clone"];
/// Suffix of the client method that takes per-call options (`say_hello_with_options`).
const WITH_OPTIONS_SUFFIX: &str = "_with_options";
/// Names buffa places at a package root besides messages, enums, their modules and sub-packages.
const RESERVED_AT_PACKAGE_ROOT: &[&str] = &["__buffa", "register_types", "descriptor_pool"];

/// Every service of one generated `.proto` file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileServices {
    /// The file's name as protoc knows it (`acme/v1/greeter.proto`).
    pub file_name: String,
    /// The file's proto package (`acme.v1`; empty for none).
    pub package: String,
    /// The services, in declaration order.
    pub services: Vec<ServiceModel>,
}

/// One service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceModel {
    /// Fully-qualified proto name (`acme.v1.Greeter`), which is also the service part of every
    /// method's HTTP path.
    pub full_name: String,
    /// The proto name (`Greeter`).
    pub proto_name: String,
    /// The proto package (`acme.v1`; empty for none).
    pub package: String,
    /// Rust identifier of the module holding this service's items, unique at the package root
    /// (`greeter`, `r#type`, `inner_` when a sub-package `inner` exists).
    pub module_name: String,
    /// Name of the service trait: the proto name in `UpperCamelCase`, keyword-escaped
    /// (`Greeter`, `Self_`; `my_service` → `MyService`).
    pub rust_name: String,
    /// Name of the server struct that serves a trait implementation (`GreeterServer`).
    pub server_name: String,
    /// Name of the typed client struct (`GreeterClient`).
    pub client_name: String,
    /// The leading comment from `source_code_info`, as written (not yet escaped).
    pub comment: Option<String>,
    /// `option deprecated = true`.
    pub deprecated: bool,
    /// The methods, in declaration order.
    pub methods: Vec<MethodModel>,
}

/// One method of a service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MethodModel {
    /// The proto name (`SayHello`), which is also the method part of the HTTP path.
    pub proto_name: String,
    /// The HTTP path, `/acme.v1.Greeter/SayHello`.
    pub path: String,
    /// Identifier of the method's `MethodSpec` constant, unique in the service module
    /// (`SAY_HELLO`).
    pub const_name: String,
    /// Name of the method's handler (service trait) and client method, `snake_case` and
    /// keyword-escaped, unique in the service and never `new`, `inner` or `clone`
    /// (`say_hello`, `r#match`, `new_`).
    pub fn_name: String,
    /// Name of the client method that also takes per-call options
    /// (`say_hello_with_options`), unique among every method name of the client.
    pub with_options_fn_name: String,
    /// The stream type.
    pub kind: StreamKind,
    /// The `idempotency_level` option.
    pub idempotency: Idempotency,
    /// The request message.
    pub request: MessageRef,
    /// The response message.
    pub response: MessageRef,
    /// The leading comment from `source_code_info`, as written (not yet escaped).
    pub comment: Option<String>,
    /// `option deprecated = true`.
    pub deprecated: bool,
}

/// A message type as seen from a service module.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MessageRef {
    /// Fully-qualified proto name without the leading dot (`google.protobuf.Empty`).
    pub proto_name: String,
    /// Rust path of buffa's owned type, relative to the service module
    /// (`super::HelloRequest`, `super::inner::outer::Nested`,
    /// `::buffa_types::google::protobuf::Empty`).
    pub owned_path: String,
    /// Rust path of buffa's view type (`super::__buffa::view::HelloRequestView`), when views are
    /// generated.
    pub view_path: Option<String>,
    /// Rust path of buffa's `'static` view handle, the type `HasMessageView::ViewHandle` names
    /// (`super::__buffa::view::HelloRequestOwnedView`), when views are generated. Handlers
    /// receive requests as this type.
    pub view_handle_path: Option<String>,
}

/// The stream type of a method.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StreamKind {
    /// One request, one response.
    Unary,
    /// A stream of requests, one response.
    ClientStreaming,
    /// One request, a stream of responses.
    ServerStreaming,
    /// Streams both ways.
    BidiStreaming,
}

impl StreamKind {
    /// Whether the client sends a stream of requests (client- and bidi-streaming).
    pub fn streams_requests(self) -> bool {
        matches!(
            self,
            StreamKind::ClientStreaming | StreamKind::BidiStreaming
        )
    }

    /// Whether the server sends a stream of responses (server- and bidi-streaming).
    pub fn streams_responses(self) -> bool {
        matches!(
            self,
            StreamKind::ServerStreaming | StreamKind::BidiStreaming
        )
    }
}

/// The `idempotency_level` method option.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Idempotency {
    /// Not set (or `IDEMPOTENCY_UNKNOWN`).
    Unknown,
    /// `NO_SIDE_EFFECTS`.
    NoSideEffects,
    /// `IDEMPOTENT`.
    Idempotent,
}

/// Builds the model for every service in `files_to_generate`.
///
/// `ctx` must be built from the same descriptors and configuration buffa generates from
/// (`CodeGenContext::for_generate`), so that every type path agrees with buffa's output.
/// Files without services are left out.
pub(crate) fn build(
    ctx: &CodeGenContext<'_>,
    files_to_generate: &[String],
    views: bool,
) -> Result<Vec<FileServices>, Error> {
    let module_names = service_module_names(ctx);
    let mut out = Vec::new();
    for name in files_to_generate {
        let file = ctx
            .files
            .iter()
            .find(|f| f.name.as_deref() == Some(name.as_str()))
            .ok_or_else(|| {
                Error::Model(format!(
                    "file_to_generate '{name}' is not in the descriptor set"
                ))
            })?;
        if file.service.is_empty() {
            continue;
        }
        let package = file.package.clone().unwrap_or_default();
        let comments = Comments::of(file);
        let services = file
            .service
            .iter()
            .enumerate()
            .map(|(index, service)| {
                let full_name = join(&package, service.name.as_deref().unwrap_or(""));
                let module_name = module_names.get(&full_name).cloned().unwrap_or_default();
                service_model(
                    ctx,
                    service,
                    &package,
                    full_name,
                    module_name,
                    comments.service(index),
                    views,
                    |m| comments.method(index, m),
                )
            })
            .collect::<Result<_, _>>()?;
        out.push(FileServices {
            file_name: name.clone(),
            package,
            services,
        });
    }
    Ok(out)
}

#[allow(clippy::too_many_arguments)]
fn service_model<'c>(
    ctx: &CodeGenContext<'_>,
    service: &ServiceDescriptorProto,
    package: &str,
    full_name: String,
    module_name: String,
    comment: Option<&'c str>,
    views: bool,
    method_comment: impl Fn(usize) -> Option<&'c str>,
) -> Result<ServiceModel, Error> {
    let proto_name = service
        .name
        .clone()
        .ok_or_else(|| Error::Model(format!("a service in '{package}' has no name")))?;
    let mut consts = Namespace::with_reserved(RESERVED_IN_SERVICE_MODULE.iter().copied());
    let mut fns = Namespace::with_reserved(RESERVED_FN_NAMES.iter().copied());
    let mut methods: Vec<MethodModel> = service
        .method
        .iter()
        .enumerate()
        .map(|(index, method)| {
            method_model(
                ctx,
                method,
                package,
                &full_name,
                views,
                &mut consts,
                &mut fns,
                method_comment(index),
            )
        })
        .collect::<Result<_, _>>()?;
    // Claimed after every `fn_name`, so that a method named `FooWithOptions` keeps its plain
    // name and `Foo`'s options variant moves aside.
    for method in &mut methods {
        let base = method
            .fn_name
            .trim_start_matches("r#")
            .trim_end_matches('_');
        method.with_options_fn_name = fns.claim(&format!("{base}{WITH_OPTIONS_SUFFIX}"));
    }
    let camel = to_upper_camel_case(&proto_name);
    Ok(ServiceModel {
        rust_name: escape_ident(&camel),
        server_name: format!("{camel}Server"),
        client_name: format!("{camel}Client"),
        proto_name,
        package: package.to_string(),
        module_name,
        comment: comment.map(str::to_string),
        deprecated: service
            .options
            .as_option()
            .and_then(|o| o.deprecated)
            .unwrap_or(false),
        methods,
        full_name,
    })
}

#[allow(clippy::too_many_arguments)]
fn method_model(
    ctx: &CodeGenContext<'_>,
    method: &MethodDescriptorProto,
    package: &str,
    service_full_name: &str,
    views: bool,
    consts: &mut Namespace,
    fns: &mut Namespace,
    comment: Option<&str>,
) -> Result<MethodModel, Error> {
    let proto_name = method
        .name
        .clone()
        .ok_or_else(|| Error::Model(format!("a method of '{service_full_name}' has no name")))?;
    let kind = match (
        method.client_streaming.unwrap_or(false),
        method.server_streaming.unwrap_or(false),
    ) {
        (false, false) => StreamKind::Unary,
        (true, false) => StreamKind::ClientStreaming,
        (false, true) => StreamKind::ServerStreaming,
        (true, true) => StreamKind::BidiStreaming,
    };
    let options = method.options.as_option();
    let idempotency = match options.and_then(|o| o.idempotency_level) {
        Some(IdempotencyLevel::NO_SIDE_EFFECTS) => Idempotency::NoSideEffects,
        Some(IdempotencyLevel::IDEMPOTENT) => Idempotency::Idempotent,
        Some(IdempotencyLevel::IDEMPOTENCY_UNKNOWN) | None => Idempotency::Unknown,
    };
    let what = |side: &str| format!("{side} type of {service_full_name}.{proto_name}");
    Ok(MethodModel {
        path: format!("/{service_full_name}/{proto_name}"),
        const_name: consts.claim(&to_shouty_snake_case(&proto_name)),
        fn_name: fns.claim(&to_snake_case(&proto_name)),
        with_options_fn_name: String::new(),
        kind,
        idempotency,
        request: message_ref(
            ctx,
            method.input_type.as_deref(),
            package,
            views,
            &what("request"),
        )?,
        response: message_ref(
            ctx,
            method.output_type.as_deref(),
            package,
            views,
            &what("response"),
        )?,
        comment: comment.map(str::to_string),
        deprecated: options.and_then(|o| o.deprecated).unwrap_or(false),
        proto_name,
    })
}

/// Resolves a method's input or output type through buffa's context.
fn message_ref(
    ctx: &CodeGenContext<'_>,
    type_name: Option<&str>,
    package: &str,
    views: bool,
    what: &str,
) -> Result<MessageRef, Error> {
    let fqn = type_name.ok_or_else(|| Error::Model(format!("the {what} is missing")))?;
    let unknown = || Error::Model(format!("the {what}, '{fqn}', is not in the descriptor set"));
    let owned_path = ctx
        .rust_type_relative(fqn, package, SERVICE_MODULE_DEPTH)
        .ok_or_else(unknown)?;
    let view_path = if views {
        let split = ctx
            .rust_type_relative_split(fqn, package, SERVICE_MODULE_DEPTH)
            .ok_or_else(unknown)?;
        let (within_prefix, last) = match split.within_package.rsplit_once("::") {
            Some((prefix, last)) => (format!("{prefix}::"), last),
            None => (String::new(), split.within_package.as_str()),
        };
        let to_package = if split.to_package.is_empty() {
            String::new()
        } else {
            format!("{}::", split.to_package)
        };
        Some(format!(
            "{to_package}{}::view::{within_prefix}{last}View",
            buffa_codegen::context::SENTINEL_MOD
        ))
    } else {
        None
    };
    Ok(MessageRef {
        proto_name: fqn.trim_start_matches('.').to_string(),
        owned_path: escape_path(&owned_path),
        view_handle_path: view_path
            .as_deref()
            .map(|view| escape_path(&view_handle_path(view))),
        view_path: view_path.as_deref().map(escape_path),
    })
}

/// buffa's `'static` view handle next to a view type: `…::FooView` → `…::FooOwnedView`.
fn view_handle_path(view_path: &str) -> String {
    let stem = view_path.strip_suffix("View").unwrap_or(view_path);
    format!("{stem}OwnedView")
}

/// Module names for every service in the descriptor set, keyed by full name.
///
/// A service module shares its package root with buffa's items: message modules (named as
/// buffa names them), sub-package modules and buffa's reserved names. Names are handed out per
/// package in sorted service-name order, so they depend neither on declaration order nor on
/// which files of the package are being generated.
fn service_module_names(ctx: &CodeGenContext<'_>) -> BTreeMap<String, String> {
    let packages: BTreeSet<&str> = ctx
        .files
        .iter()
        .map(|f| f.package.as_deref().unwrap_or(""))
        .collect();
    let mut by_package: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for file in ctx.files {
        let package = file.package.as_deref().unwrap_or("");
        by_package
            .entry(package)
            .or_default()
            .extend(file.service.iter().filter_map(|s| s.name.as_deref()));
    }
    let mut out = BTreeMap::new();
    for (package, mut services) in by_package {
        if services.is_empty() {
            continue;
        }
        services.sort_unstable();
        let mut namespace =
            Namespace::with_reserved(occupied_package_names(ctx, package, &packages));
        for service in services {
            let name = namespace.claim(&to_snake_case(service));
            out.insert(join(package, service), name);
        }
    }
    out
}

/// Snake-case names buffa may place at the root of `package`.
fn occupied_package_names(
    ctx: &CodeGenContext<'_>,
    package: &str,
    packages: &BTreeSet<&str>,
) -> Vec<String> {
    let mut names: Vec<String> = RESERVED_AT_PACKAGE_ROOT
        .iter()
        .map(|s| s.to_string())
        .collect();
    for file in ctx
        .files
        .iter()
        .filter(|f| f.package.as_deref().unwrap_or("") == package)
    {
        for message in &file.message_type {
            let name = message.name.as_deref().unwrap_or("");
            // Modules share the type namespace with structs: `message greeter` would clash too.
            names.push(escape_ident(&format!(
                "{}{name}",
                ctx.config.type_name_prefix
            )));
            names.push(escape_ident(&ctx.nested_module_name(package, name)));
        }
        for enumeration in &file.enum_type {
            let name = enumeration.name.as_deref().unwrap_or("");
            names.push(escape_ident(&format!(
                "{}{name}",
                ctx.config.type_name_prefix
            )));
        }
    }
    for other in packages {
        let child = if package.is_empty() {
            Some(*other)
        } else {
            other
                .strip_prefix(package)
                .and_then(|r| r.strip_prefix('.'))
        };
        if let Some(segment) = child
            .and_then(|c| c.split('.').next())
            .filter(|s| !s.is_empty())
        {
            names.push(escape_ident(segment));
        }
    }
    names
}

/// Leading comments of one file's services and methods, from `source_code_info`.
struct Comments {
    by_path: BTreeMap<Vec<i32>, String>,
}

impl Comments {
    fn of(file: &FileDescriptorProto) -> Comments {
        let info: Option<&SourceCodeInfo> = file.source_code_info.as_option();
        let by_path = info
            .into_iter()
            .flat_map(|info| info.location.iter())
            .filter(|loc| loc.path.first() == Some(&FILE_SERVICE_FIELD))
            .filter_map(|loc| {
                let text = loc.leading_comments.as_deref()?;
                (!text.trim().is_empty()).then(|| (loc.path.clone(), text.to_string()))
            })
            .collect();
        Comments { by_path }
    }

    fn service(&self, service: usize) -> Option<&str> {
        self.lookup(&[FILE_SERVICE_FIELD, index(service)])
    }

    fn method(&self, service: usize, method: usize) -> Option<&str> {
        self.lookup(&[
            FILE_SERVICE_FIELD,
            index(service),
            SERVICE_METHOD_FIELD,
            index(method),
        ])
    }

    fn lookup(&self, path: &[i32]) -> Option<&str> {
        self.by_path.get(path).map(String::as_str)
    }
}

fn index(i: usize) -> i32 {
    i32::try_from(i).unwrap_or(i32::MAX)
}

fn join(package: &str, name: &str) -> String {
    if package.is_empty() {
        name.to_string()
    } else {
        format!("{package}.{name}")
    }
}
