//! `protoc-gen-connect-rust`: the protoc plugin. Reads a `CodeGeneratorRequest` on stdin, writes
//! a `CodeGeneratorResponse` on stdout. Options are documented in the `connect_codegen` crate docs.
//!
//! ```text
//! protoc --plugin=protoc-gen-connect-rust=/path/to/protoc-gen-connect-rust \
//!        --connect-rust_out=src/gen --connect-rust_opt=client=false \
//!        -I proto proto/acme/v1/greeter.proto
//! ```

use std::io::{Read, Write};
use std::process::ExitCode;

const USAGE: &str = "\
protoc-gen-connect-rust: protoc plugin generating ConnectRPC services (and buffa messages) in Rust.

It reads a CodeGeneratorRequest on stdin and writes a CodeGeneratorResponse on stdout;
run it through protoc:

  protoc --plugin=protoc-gen-connect-rust=PATH --connect-rust_out=OUT_DIR \\
         [--connect-rust_opt=KEY=VALUE,...] -I INCLUDE FILE.proto...

Options: extern_path=.proto.pkg=::rust::path (repeatable), client=true|false,
server=true|false, views=true|false, json=true|false, include_file=NAME (empty: none),
element_memory_limit=BYTES|unlimited.
";

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    if let Some(arg) = args.next() {
        return match arg.as_str() {
            "--version" | "-V" => {
                println!("protoc-gen-connect-rust {}", env!("CARGO_PKG_VERSION"));
                ExitCode::SUCCESS
            }
            "--help" | "-h" => {
                print!("{USAGE}");
                ExitCode::SUCCESS
            }
            other => {
                eprintln!("protoc-gen-connect-rust: unexpected argument '{other}'\n\n{USAGE}");
                ExitCode::FAILURE
            }
        };
    }

    let mut request = Vec::new();
    if let Err(e) = std::io::stdin().lock().read_to_end(&mut request) {
        eprintln!("protoc-gen-connect-rust: reading stdin: {e}");
        return ExitCode::FAILURE;
    }
    let outcome = connect_codegen::plugin::handle(&request);
    for warning in &outcome.warnings {
        eprintln!("protoc-gen-connect-rust: warning: {warning}");
    }
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = stdout
        .write_all(&outcome.encode())
        .and_then(|()| stdout.flush())
    {
        eprintln!("protoc-gen-connect-rust: writing stdout: {e}");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
