//! Writes the greeter's descriptor set (`greeter.binpb`, with its imports) into `$OUT_DIR`
//! with `connect_codegen::Builder::file_descriptor_set_path`, for the reflection service. The
//! greeter's code itself comes from the greeter-example crate; what the builder generates
//! here besides the descriptors is not used.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    connect_codegen::Builder::new()
        .files(&["../greeter/proto/greeter.proto"])
        .includes(&["../greeter/proto"])
        .client(false)
        .server(false)
        .include_file(None)
        .file_descriptor_set_path("greeter.binpb")
        .compile()?;
    Ok(())
}
