//! The service model built from the fixtures: names, type paths, comments, options.

use std::path::PathBuf;

use connect_codegen::model::{FileServices, Idempotency, MethodModel, ServiceModel, StreamKind};
use connect_codegen::{Builder, Options};

fn protos() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/protos")
}

fn model(files: &[&str], options: &Options) -> Vec<FileServices> {
    let paths: Vec<PathBuf> = files.iter().map(|f| protos().join(f)).collect();
    let set = Builder::new()
        .files(&paths)
        .includes(&[protos()])
        .descriptor_set()
        .expect("descriptor set");
    let names: Vec<String> = files.iter().map(|f| f.to_string()).collect();
    connect_codegen::services(&set.file, &names, options).expect("model")
}

fn service<'a>(files: &'a [FileServices], full_name: &str) -> &'a ServiceModel {
    files
        .iter()
        .flat_map(|f| &f.services)
        .find(|s| s.full_name == full_name)
        .unwrap_or_else(|| panic!("no service {full_name}"))
}

fn method<'a>(service: &'a ServiceModel, name: &str) -> &'a MethodModel {
    service
        .methods
        .iter()
        .find(|m| m.proto_name == name)
        .unwrap_or_else(|| panic!("no method {name}"))
}

const ALL: &[&str] = &[
    "acme/v1/greeter.proto",
    "acme/v1/common.proto",
    "acme/v1/keywords.proto",
    "acme/v1/inner/types.proto",
    "acme/v1/type/money.proto",
    "legacy/v2/legacy.proto",
    "ed/v1/editions.proto",
];

#[test]
fn files_without_services_are_left_out() {
    let files = model(ALL, &Options::new());
    let names: Vec<&str> = files.iter().map(|f| f.file_name.as_str()).collect();
    assert_eq!(
        names,
        [
            "acme/v1/greeter.proto",
            "acme/v1/keywords.proto",
            "acme/v1/inner/types.proto",
            "legacy/v2/legacy.proto",
            "ed/v1/editions.proto"
        ]
    );
}

#[test]
fn greeter_methods() {
    let files = model(ALL, &Options::new());
    let greeter = service(&files, "acme.v1.Greeter");
    assert_eq!(greeter.module_name, "greeter");
    assert_eq!(greeter.rust_name, "Greeter");
    assert_eq!(greeter.server_name, "GreeterServer");
    assert_eq!(greeter.client_name, "GreeterClient");
    assert!(!greeter.deprecated);
    assert!(
        greeter
            .comment
            .as_deref()
            .unwrap_or("")
            .contains("[brackets]")
    );

    let kinds: Vec<(StreamKind, Idempotency)> = greeter
        .methods
        .iter()
        .map(|m| (m.kind, m.idempotency))
        .collect();
    assert_eq!(
        kinds[..5],
        [
            (StreamKind::Unary, Idempotency::NoSideEffects),
            (StreamKind::ServerStreaming, Idempotency::Unknown),
            (StreamKind::ClientStreaming, Idempotency::Unknown),
            (StreamKind::BidiStreaming, Idempotency::Unknown),
            (StreamKind::Unary, Idempotency::Idempotent),
        ]
    );

    let say_hello = method(greeter, "SayHello");
    assert_eq!(say_hello.path, "/acme.v1.Greeter/SayHello");
    assert_eq!(say_hello.const_name, "SAY_HELLO");
    assert_eq!(say_hello.fn_name, "say_hello");
    assert_eq!(say_hello.with_options_fn_name, "say_hello_with_options");
    assert_eq!(say_hello.request.proto_name, "acme.v1.HelloRequest");
    assert_eq!(say_hello.request.owned_path, "super::HelloRequest");
    assert_eq!(
        say_hello.request.view_path.as_deref(),
        Some("super::__buffa::view::HelloRequestView")
    );
    assert_eq!(
        say_hello.request.view_handle_path.as_deref(),
        Some("super::__buffa::view::HelloRequestOwnedView")
    );
    assert_eq!(
        say_hello.comment.as_deref(),
        Some(" Says hello. Safe to call with Connect GET.\n")
    );
    assert!(method(greeter, "LegacyHello").deprecated);

    let nested = &method(greeter, "Undocumented").response;
    assert_eq!(nested.owned_path, "super::inner::outer::Nested");
    assert_eq!(
        nested.view_path.as_deref(),
        Some("super::inner::__buffa::view::outer::NestedView")
    );
    assert_eq!(
        nested.view_handle_path.as_deref(),
        Some("super::inner::__buffa::view::outer::NestedOwnedView")
    );
    assert_eq!(method(greeter, "Undocumented").comment, None);
}

#[test]
fn well_known_types_resolve_to_buffa_types() {
    let files = model(ALL, &Options::new());
    let admin = service(&files, "acme.v1.Admin");
    assert!(admin.deprecated);
    let ping = method(admin, "Ping");
    assert_eq!(
        ping.request.owned_path,
        "::buffa_types::google::protobuf::Empty"
    );
    assert_eq!(
        ping.response.view_path.as_deref(),
        Some("::buffa_types::google::protobuf::__buffa::view::TimestampView")
    );
}

#[test]
fn keywords_and_collisions() {
    let files = model(ALL, &Options::new());
    let svc = service(&files, "acme.v1.Type");
    assert_eq!(
        svc.module_name, "type_",
        "the package acme.v1.type owns `r#type`"
    );
    assert_eq!(svc.rust_name, "Type");
    let names: Vec<(&str, &str)> = svc
        .methods
        .iter()
        .map(|m| (m.const_name.as_str(), m.fn_name.as_str()))
        .collect();
    assert_eq!(
        names,
        [
            ("MATCH", "r#match"),
            ("ASYNC", "r#async"),
            ("SELF", "self_"),
            ("SELF_", "self__"),
            ("TYPE", "r#type"),
            ("SERVICE_NAME_", "service_name"),
            ("GEN", "r#gen"),
            ("PAY", "pay"),
        ]
    );
    assert_eq!(
        method(svc, "Pay").request.owned_path,
        "super::r#type::Money"
    );
    assert_eq!(service(&files, "acme.v1.Inner").module_name, "inner_");
    let with_options: Vec<&str> = svc
        .methods
        .iter()
        .map(|m| m.with_options_fn_name.as_str())
        .collect();
    assert_eq!(
        with_options,
        [
            "match_with_options",
            "async_with_options",
            "self_with_options",
            "self_with_options_",
            "type_with_options",
            "service_name_with_options",
            "gen_with_options",
            "pay_with_options",
        ]
    );
}

#[test]
fn client_and_handler_names_move_aside() {
    let files = model(ALL, &Options::new());
    let clashes = service(&files, "acme.v1.Clashes");
    let names: Vec<(&str, &str)> = clashes
        .methods
        .iter()
        .map(|m| (m.fn_name.as_str(), m.with_options_fn_name.as_str()))
        .collect();
    assert_eq!(
        names,
        [
            ("new_", "new_with_options"),
            ("inner_", "inner_with_options"),
            ("ping", "ping_with_options_"),
            ("ping_with_options", "ping_with_options_with_options"),
            ("clone_", "clone_with_options"),
        ]
    );
    let s = service(&files, "acme.v1.S");
    assert_eq!(
        (s.rust_name.as_str(), s.server_name.as_str()),
        ("S", "SServer")
    );
    let lower = service(&files, "acme.v1.lower_case_service");
    assert_eq!(lower.module_name, "lower_case_service");
    assert_eq!(lower.rust_name, "LowerCaseService");
    assert_eq!(lower.client_name, "LowerCaseServiceClient");
    let keyword = service(&files, "acme.v1.Type");
    assert_eq!(keyword.server_name, "TypeServer");
    assert!(service(&files, "acme.v1.Nothing").methods.is_empty());
}

#[test]
fn cross_package_paths() {
    let files = model(ALL, &Options::new());
    let forward = method(service(&files, "acme.v1.inner.InnerService"), "Forward");
    assert_eq!(forward.request.owned_path, "super::super::Envelope");
    assert_eq!(forward.response.owned_path, "super::outer::Nested");
    let relay = method(service(&files, "legacy.v2.LegacyService"), "Relay");
    assert_eq!(
        relay.request.owned_path,
        "super::super::super::acme::v1::HelloRequest"
    );
}

#[test]
fn extern_paths_and_views_off() {
    let options = Options::new()
        .views(false)
        .extern_path(".acme.v1.inner", "::inner_crate");
    let files = model(&["acme/v1/greeter.proto"], &options);
    let undocumented = method(service(&files, "acme.v1.Greeter"), "Undocumented");
    assert_eq!(
        undocumented.request.owned_path,
        "::inner_crate::InnerRequest"
    );
    assert_eq!(
        undocumented.response.owned_path,
        "::inner_crate::outer::Nested"
    );
    assert_eq!(undocumented.request.view_path, None);
}
