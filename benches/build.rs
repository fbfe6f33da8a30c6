//! Generates the benchmark service three times, once per stack, into separate directories of
//! `$OUT_DIR`, all with the vendored protoc.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    // SAFETY-free: build scripts are single-threaded here; prost-build and connectrpc-build read
    // `PROTOC`.
    unsafe { std::env::set_var("PROTOC", &protoc) };
    let files = ["proto/bench/v1/bench.proto"];
    let includes = ["proto"];
    println!("cargo:rerun-if-changed=proto");

    let ours = out.join("ours");
    std::fs::create_dir_all(&ours)?;
    connect_codegen::Builder::new()
        .files(&files)
        .includes(&includes)
        .out_dir(&ours)
        .compile()?;

    let tonic = out.join("tonic");
    std::fs::create_dir_all(&tonic)?;
    tonic_prost_build::configure()
        .out_dir(&tonic)
        .compile_protos(&files, &includes)?;

    let peer = out.join("connectrpc");
    std::fs::create_dir_all(&peer)?;
    connectrpc_build::Config::new()
        .files(&files)
        .includes(&includes)
        .out_dir(&peer)
        .include_file("_connectrpc.rs")
        .compile()?;
    Ok(())
}
