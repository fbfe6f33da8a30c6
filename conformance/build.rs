//! Generates the conformance protocol buffers (messages with buffa, the service with
//! connect-codegen's `Builder`, as users' build scripts do) from the runner's own `.proto`
//! files into `$OUT_DIR`.
//!
//! The files come from the Go module `connectrpc.com/conformance`, the one the runner is built
//! from, fetched with `go mod download` into Go's module cache (shared with the runner install
//! of `conformance/run.sh`). Set `CONNECT_CONFORMANCE_PROTOS` to a directory holding
//! `connectrpc/conformance/v1/*.proto` to build without Go. This crate is not a default
//! workspace member: `cargo build` / `cargo test` at the root never need either.

use std::path::PathBuf;
use std::process::Command;

/// The conformance module version; `conformance/run.sh` installs the runner of the same one.
const MODULE: &str = "connectrpc.com/conformance@v1.0.5";
const PROTOS_ENV: &str = "CONNECT_CONFORMANCE_PROTOS";

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed={PROTOS_ENV}");
    let protos = match std::env::var_os(PROTOS_ENV) {
        Some(dir) => PathBuf::from(dir),
        None => module_dir().join("proto"),
    };
    let package = protos.join("connectrpc/conformance/v1");
    let mut files: Vec<PathBuf> = match std::fs::read_dir(&package) {
        Ok(entries) => entries
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|path| path.extension().is_some_and(|ext| ext == "proto"))
            .collect(),
        Err(e) => fail(&format!("cannot read {}: {e}", package.display())),
    };
    files.sort();
    if files.is_empty() {
        fail(&format!("no .proto files in {}", package.display()));
    }
    if let Err(e) = connect_codegen::Builder::new()
        .files(&files)
        .includes(&[&protos])
        .compile()
    {
        fail(&format!("generating from {}: {e}", protos.display()));
    }
}

/// The module's directory in Go's module cache, downloading it if needed.
fn module_dir() -> PathBuf {
    let output = Command::new("go")
        .args(["mod", "download", "-json", MODULE])
        .env("GOFLAGS", "-mod=mod")
        .output();
    let output = match output {
        Ok(output) => output,
        Err(e) => fail(&format!(
            "running `go mod download {MODULE}` failed ({e}): Go is needed to fetch the \
             conformance protos (or set {PROTOS_ENV})"
        )),
    };
    let json = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        fail(&format!(
            "`go mod download {MODULE}` failed: {}{}",
            json.trim(),
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    // The one field needed from `go mod download -json`: "Dir": "<path>".
    let dir = json.lines().find_map(|line| {
        let value = line.trim().strip_prefix("\"Dir\":")?.trim();
        let value = value.strip_suffix(',').unwrap_or(value);
        Some(value.trim_matches('"').replace("\\\\", "\\"))
    });
    match dir {
        Some(dir) => PathBuf::from(dir),
        None => fail(&format!("`go mod download` named no directory: {json}")),
    }
}

fn fail(why: &str) -> ! {
    eprintln!("connect-conformance build script: {why}");
    eprintln!(
        "This crate holds the programs for the ConnectRPC conformance runner and is not a \
         default workspace member; build it with Go installed (conformance/run.sh does) or \
         with {PROTOS_ENV} set."
    );
    std::process::exit(1);
}
