//! Generates the key-value messages with prost-build, using the vendored protoc (unless
//! `PROTOC` is set).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut config = prost_build::Config::new();
    if std::env::var_os("PROTOC").is_none() {
        config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);
    }
    config.compile_protos(&["proto/kv.proto"], &["proto"])?;
    println!("cargo:rerun-if-changed=proto/kv.proto");
    Ok(())
}
