//! What observing costs, counted with a counting global allocator (this test binary only, one
//! test, so no other test allocates meanwhile): an observed call allocates exactly one more
//! block per side (its record) than an unobserved one; an unobserved call allocates nothing
//! for observability, with the `tracing` feature on or off (no subscriber is installed, so
//! spans are disabled).

mod support;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use buffa_types::google::protobuf::StringValue;
use connect_tower::Codec;
use connect_tower::client::CallOptions;
use connect_tower::observe::{CallEnd, CallObserver};
use connect_tower::server::ConnectService;
use support::*;

struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded to the system allocator unchanged; only a counter is added.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract, passed on as is.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Observes nothing, at no cost of its own.
struct Nothing;

impl CallObserver for Nothing {
    fn on_call_end(&self, _call: &CallEnd) {}
}

/// Allocations of one unary call and one server stream, after a warm-up.
fn allocations_per_round(observed: bool) -> usize {
    let timer = ManualTimer::new();
    let mut builder = ConnectService::builder(Echo::new()).timer(timer.clone());
    if observed {
        builder = builder.observer(Nothing);
    }
    let mut calls = client(builder.build(), Wire::Grpc, Codec::Proto, &timer);
    if observed {
        calls = calls.observer(Nothing);
    }
    let round = || {
        block_on(calls.unary::<StringValue, StringValue>(&UNARY, sv("hello"), CallOptions::new()))
            .unwrap();
        block_on(collect_server_stream(&calls, &SERVER_STREAM, sv("a,b"))).unwrap();
    };
    round();
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    round();
    ALLOCATIONS.load(Ordering::Relaxed) - before
}

#[test]
fn an_observer_costs_one_allocation_per_call_and_side_and_none_without_one() {
    let unobserved = allocations_per_round(false);
    assert_eq!(allocations_per_round(false), unobserved, "deterministic");
    let observed = allocations_per_round(true);
    // Two calls, two sides: four records.
    assert_eq!(observed, unobserved + 4, "unobserved: {unobserved}");
}
