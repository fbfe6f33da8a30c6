//! Pins the size of a call. An adapter keeps each call in a block of its own (shared with a
//! handler, or owned by a driver) together with its own bookkeeping; with glibc's allocator a
//! block above 1 KiB takes its slow path (several hundred instructions more per call, and
//! colder memory). The calls keep their queues in allocations of their own so that block
//! stays under the line: these bounds leave an adapter a little over 100 bytes for a client
//! call and 500 for a server call.

use connect_proto_core::{ClientCall, ServerCall};

#[test]
fn a_server_call_leaves_room_under_one_kib() {
    let size = std::mem::size_of::<ServerCall>();
    assert!(size <= 512, "a server call is {size} bytes");
}

#[test]
fn a_client_call_leaves_room_under_one_kib() {
    let size = std::mem::size_of::<ClientCall>();
    assert!(size <= 928, "a client call is {size} bytes");
}
