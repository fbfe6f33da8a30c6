//! tonic's code for the greeter's proto, with the vendored protoc.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    if std::env::var_os("PROTOC").is_none() {
        // SAFETY-free: build scripts are single-threaded; tonic-prost-build reads PROTOC.
        unsafe { std::env::set_var("PROTOC", protoc_bin_vendored::protoc_bin_path()?) };
    }
    tonic_prost_build::configure()
        .build_client(false)
        .compile_protos(
            &["../../examples/greeter/proto/greeter.proto"],
            &["../../examples/greeter/proto"],
        )?;
    Ok(())
}
