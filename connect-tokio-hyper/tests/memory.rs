//! Memory held by streams that announce large messages and stall: what the server keeps is
//! what it received, never what was announced. Counted with a counting global allocator
//! (this test binary only).

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use connect_proto_core::internal::envelope::encode_prefix;
use connect_tokio_hyper::Server;
use tokio::net::TcpStream;

struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const STREAMS: usize = 200;
/// What each stream announces: a 4 MiB message (the default receive limit).
const ANNOUNCED: u32 = 4 * 1024 * 1024;
/// What each stream actually sends before stalling.
const SENT: usize = 16 * 1024;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_streams_hold_what_they_sent_not_what_they_announced() {
    let server = start(Server::builder(), Echo::default()).await;
    // Warm up (connections, buffers, the timer wheel) before the baseline.
    let baseline_streams = open_streams(server.addr, 2).await;
    drop(baseline_streams);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let before = LIVE.load(Ordering::Relaxed);

    let streams = open_streams(server.addr, STREAMS).await;
    // Let the server read what was sent.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let held = LIVE.load(Ordering::Relaxed) - before;
    let per_stream = held / STREAMS as isize;
    eprintln!("{STREAMS} stalled streams: {held} bytes in all, {per_stream} per stream");
    // The stated bound: 64 KiB per stream (the 16 KiB sent plus the call's and both HTTP/2
    // ends' bookkeeping), against 4 MiB announced.
    assert!(
        per_stream < 64 * 1024,
        "{per_stream} bytes per stalled stream"
    );
    drop(streams);
    server.shutdown().await;
}

/// Opens `count` client-streaming calls over HTTP/2 (100 per connection), each sending an
/// envelope prefix that announces `ANNOUNCED` bytes and then `SENT` bytes of it.
async fn open_streams(addr: std::net::SocketAddr, count: usize) -> Vec<impl Sized> {
    let mut held = Vec::new();
    let started = Instant::now();
    for batch in 0..count.div_ceil(100) {
        let tcp = TcpStream::connect(addr).await.unwrap();
        let (mut client, connection) = h2::client::handshake(tcp).await.unwrap();
        let driver = tokio::spawn(async move {
            let _ = connection.await;
        });
        for _ in 0..(count - batch * 100).min(100) {
            let request = http::Request::post(format!("http://{addr}{}", COLLECT.path))
                .header("content-type", "application/grpc")
                .header("te", "trailers")
                .body(())
                .unwrap();
            client = client.ready().await.unwrap();
            let (response, mut send) = client.send_request(request, false).unwrap();
            let mut body = encode_prefix(0, ANNOUNCED).to_vec();
            body.resize(5 + SENT, b'x');
            send.send_data(Bytes::from(body), false).unwrap();
            held.push((response, send));
        }
        held.shrink_to_fit();
        std::mem::forget(driver);
        assert!(started.elapsed() < Duration::from_secs(10));
    }
    held
}
