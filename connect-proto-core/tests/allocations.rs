//! Pins the number of heap allocations the core makes for one small unary exchange, so a
//! regression fails loudly. A counting global allocator counts `alloc`, `alloc_zeroed` and
//! `realloc` calls made on this thread while the Pair harness is inside a call into the core
//! (`common::IN_CORE`); harness work (recording, chunking, collecting events) is not counted.
//!
//! If a change moves a figure on purpose, update the constant and say why in the commit.

// These tests exercise gzip and zstd (not a default feature): `cargo test -p connect-proto-core
// --features zstd`, or `cargo test --workspace`, where other members turn it on.
#![cfg(all(feature = "gzip", feature = "zstd"))]

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use bytes::Bytes;
use http::HeaderMap;

use common::*;
use connect_proto_core::codec::Codec;
use connect_proto_core::compression::CompressionRegistry;
use connect_proto_core::{
    CallOptions, ClientConfig, ClientEvent, Idempotency, MethodKind, MethodSpec, ServerConfig,
};

/// One unary Connect (binary proto) exchange, client start to client outcome. (18 before the
/// calls kept short event/output queues inline, content types were parsed without a
/// lowercased copy, metadata maps started empty and the request URI stopped being copied;
/// 6 before the calls' queues moved to allocations of their own, one for the server's and
/// two for the client's: three small blocks instead of two above 1 KiB, which glibc's
/// allocator serves several times slower.)
const CONNECT_UNARY_ALLOCATIONS: u64 = 9;
/// One unary gRPC exchange, client start to client outcome (29 before the same changes, 10
/// before the queues' own allocations).
const GRPC_UNARY_ALLOCATIONS: u64 = 13;

struct Counting;

thread_local! {
    static COUNT: Cell<u64> = const { Cell::new(0) };
}

fn note() {
    if IN_CORE.try_with(Cell::get).unwrap_or(false) {
        let _ = COUNT.try_with(|c| c.set(c.get() + 1));
    }
}

// SAFETY: every method forwards to the system allocator unchanged; counting touches only
// const-initialised thread-locals without destructors, which never allocate.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note();
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note();
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note();
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const UNARY: MethodSpec = MethodSpec::new(
    "/acme.v1.Greeter/Say",
    MethodKind::Unary,
    Idempotency::Unknown,
);
/// `StringValue { value: "Bob" }` and `StringValue { value: "Hello, Bob" }`.
const REQUEST: &[u8] = b"\x0a\x03Bob";
const RESPONSE: &[u8] = b"\x0a\x0aHello, Bob";

/// The same algorithms whatever the cargo features (the count must not depend on them).
fn registry() -> CompressionRegistry {
    CompressionRegistry::identity_only()
        .with(algorithm("gzip"))
        .with(algorithm("zstd"))
}

/// Plays one exchange and returns the allocations the core made.
fn exchange(client_config: &ClientConfig, server_config: &ServerConfig) -> u64 {
    let server_config = server_config.clone();
    let options = CallOptions::new();
    COUNT.with(|c| c.set(0));
    let mut p = Pair::start(
        client_config,
        server_config,
        UNARY,
        options,
        Chunking::Whole,
        Chunking::Whole,
    );
    p.record = false;
    p.client_send(Bytes::from_static(REQUEST));
    p.server_send(Bytes::from_static(RESPONSE));
    p.server_finish(Ok(HeaderMap::new()));
    let count = COUNT.with(Cell::get);
    assert!(
        matches!(&p.client_events[..], [
        ClientEvent::Headers(_),
        ClientEvent::Message(m),
        ClientEvent::Finished(Ok(_)),
    ] if m == RESPONSE),
        "{:?}",
        p.client_events
    );
    count
}

fn measure(name: &str, client_config: &ClientConfig) -> u64 {
    let server_config = ServerConfig::new().compression(registry());
    // Warm up one-time lazy initialisation, then require identical figures.
    exchange(client_config, &server_config);
    let first = exchange(client_config, &server_config);
    let second = exchange(client_config, &server_config);
    assert_eq!(first, second, "{name}: the allocation count is not stable");
    println!("{name}: {first} allocations per exchange");
    first
}

#[test]
fn allocations_per_unary_exchange_are_pinned() {
    let connect = measure(
        "connect unary proto",
        &Wire::Connect
            .client_config(Codec::Proto)
            .accept_compression(registry()),
    );
    let grpc = measure(
        "grpc unary proto",
        &Wire::Grpc
            .client_config(Codec::Proto)
            .accept_compression(registry()),
    );
    assert_eq!(
        connect, CONNECT_UNARY_ALLOCATIONS,
        "connect unary proto allocations changed"
    );
    assert_eq!(
        grpc, GRPC_UNARY_ALLOCATIONS,
        "grpc unary proto allocations changed"
    );
}

#[test]
fn counting_sees_core_work_only() {
    COUNT.with(|c| c.set(0));
    let v: Vec<u8> = Vec::with_capacity(10);
    drop(v);
    assert_eq!(COUNT.with(Cell::get), 0);
    core(|| drop(Vec::<u8>::with_capacity(10)));
    assert_eq!(COUNT.with(Cell::get), 1);
}
