//! The committed golden output (`tests/golden/`) compiles warning-free, and its constants say
//! what the protos say.

#![deny(warnings)]

use connect_tower::{Idempotency, MethodKind, MethodSpec};

/// The generated module tree, as a user includes it.
mod proto {
    include!("golden/_include.rs");
}

use proto::acme::v1 as acme_v1;

fn spec(path: &'static str, kind: MethodKind, idempotency: Idempotency) -> MethodSpec {
    MethodSpec::new(path, kind, idempotency)
}

#[test]
fn greeter_covers_every_stream_kind_and_idempotency() {
    use acme_v1::greeter::*;
    assert_eq!(SERVICE_NAME, "acme.v1.Greeter");
    assert_eq!(
        SAY_HELLO,
        spec(
            "/acme.v1.Greeter/SayHello",
            MethodKind::Unary,
            Idempotency::NoSideEffects
        )
    );
    assert!(SAY_HELLO.allows_get());
    assert_eq!(
        SAY_HELLO_STREAM,
        spec(
            "/acme.v1.Greeter/SayHelloStream",
            MethodKind::ServerStreaming,
            Idempotency::Unknown
        )
    );
    assert_eq!(
        COLLECT_HELLOS,
        spec(
            "/acme.v1.Greeter/CollectHellos",
            MethodKind::ClientStreaming,
            Idempotency::Unknown
        )
    );
    assert_eq!(
        CHAT,
        spec(
            "/acme.v1.Greeter/Chat",
            MethodKind::BidiStreaming,
            Idempotency::Unknown
        )
    );
    assert_eq!(
        UPDATE_GREETING,
        spec(
            "/acme.v1.Greeter/UpdateGreeting",
            MethodKind::Unary,
            Idempotency::Idempotent
        )
    );
    assert_eq!(UNDOCUMENTED.method_name(), "Undocumented");
    assert_eq!(UNDOCUMENTED.service_name(), SERVICE_NAME);
}

#[test]
#[allow(deprecated)]
fn deprecated_items_still_work() {
    assert_eq!(
        acme_v1::greeter::LEGACY_HELLO.path,
        "/acme.v1.Greeter/LegacyHello"
    );
    assert_eq!(acme_v1::admin::SERVICE_NAME, "acme.v1.Admin");
    assert_eq!(
        acme_v1::admin::PING,
        spec(
            "/acme.v1.Admin/Ping",
            MethodKind::Unary,
            Idempotency::NoSideEffects
        )
    );
    assert_eq!(acme_v1::admin::INSPECT.path, "/acme.v1.Admin/Inspect");
}

#[test]
fn keyword_names_are_escaped_and_deconflicted() {
    // `acme.v1.type` is a package, so the service `Type` gets the module `type_`.
    use acme_v1::type_ as svc;
    assert_eq!(svc::SERVICE_NAME, "acme.v1.Type");
    let paths: Vec<&str> = [
        &svc::MATCH,
        &svc::ASYNC,
        &svc::SELF,
        &svc::SELF_,
        &svc::TYPE,
        &svc::GEN,
    ]
    .iter()
    .map(|m| m.method_name())
    .collect();
    assert_eq!(paths, ["Match", "Async", "Self", "Self_", "Type", "Gen"]);
    assert_eq!(svc::SERVICE_NAME_.path, "/acme.v1.Type/ServiceName");
    assert_eq!(svc::PAY.path, "/acme.v1.Type/Pay");
    let _money = acme_v1::r#type::Money::default();
    // `inner` is the sub-package; the service module moved aside.
    assert_eq!(acme_v1::inner_::GET.path, "/acme.v1.Inner/Get");
    assert_eq!(
        acme_v1::inner::inner_service::FORWARD.path,
        "/acme.v1.inner.InnerService/Forward"
    );
}

#[test]
fn proto2_and_editions_services() {
    assert_eq!(
        proto::legacy::v2::legacy_service::LOOKUP,
        spec(
            "/legacy.v2.LegacyService/Lookup",
            MethodKind::Unary,
            Idempotency::NoSideEffects
        )
    );
    assert_eq!(
        proto::legacy::v2::legacy_service::RELAY.kind,
        MethodKind::Unary
    );
    assert_eq!(
        proto::ed::v1::edition_service::WATCH,
        spec(
            "/ed.v1.EditionService/Watch",
            MethodKind::ServerStreaming,
            Idempotency::NoSideEffects
        )
    );
    assert!(!proto::ed::v1::edition_service::WATCH.allows_get());
}

#[test]
fn messages_come_from_buffa_with_views_and_json() {
    use buffa::Message;
    let request = acme_v1::HelloRequest {
        name: "world".into(),
        ..Default::default()
    };
    let bytes = request.encode_to_vec();
    let decoded = acme_v1::HelloRequest::decode_from_slice(&bytes).expect("decode");
    assert_eq!(decoded, request);
    fn is_serde<T: serde::Serialize + for<'de> serde::Deserialize<'de>>() {}
    is_serde::<acme_v1::HelloRequest>();
    is_serde::<proto::legacy::v2::LegacyRequest>();
    let _view: Option<acme_v1::HelloRequestView<'_>> = None;
}

#[test]
fn view_paths_of_the_model_name_real_types() {
    // The layout `model::MessageRef::view_path` assumes: `<package>::__buffa::view::<nesting>`,
    // also for nested, cross-package and well-known types.
    let _nested: Option<acme_v1::inner::__buffa::view::outer::NestedView<'_>> = None;
    let _wkt: Option<buffa_types::google::protobuf::__buffa::view::TimestampView<'_>> = None;
    let _keyword: Option<acme_v1::r#type::__buffa::view::MoneyView<'_>> = None;
}
