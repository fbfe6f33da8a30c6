//! Generates `grpc.reflection.v1` and `grpc.reflection.v1alpha` (messages and services) into
//! `$OUT_DIR` with the vendored protoc, and writes their descriptor set there: the reflection
//! service describes itself too.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    connect_codegen::Builder::new()
        .files(&[
            "proto/grpc/reflection/v1/reflection.proto",
            "proto/grpc/reflection/v1alpha/reflection.proto",
        ])
        .includes(&["proto"])
        // Handlers take owned requests (a question is a few short strings).
        .views(false)
        .file_descriptor_set_path("reflection.binpb")
        .compile()?;
    Ok(())
}
