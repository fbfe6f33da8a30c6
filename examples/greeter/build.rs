//! Generates messages (buffa) and the service (connect-codegen) from `proto/greeter.proto` into
//! `$OUT_DIR`, with the vendored protoc.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    connect_codegen::Builder::new()
        .files(&["proto/greeter.proto"])
        .includes(&["proto"])
        .compile()?;
    Ok(())
}
