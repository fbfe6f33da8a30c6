//! Generates `grpc.health.v1` (messages and service) into `$OUT_DIR` with the vendored protoc,
//! and writes its descriptor set there for server reflection.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    connect_codegen::Builder::new()
        .files(&["proto/grpc/health/v1/health.proto"])
        .includes(&["proto"])
        // Handlers take owned requests: a health request is one short string.
        .views(false)
        .file_descriptor_set_path("health.binpb")
        .compile()?;
    Ok(())
}
