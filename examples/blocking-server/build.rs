//! Generates the greeter's messages (buffa, with proto3 JSON) and its method specs from the
//! greeter example's proto into `$OUT_DIR`. No server or client code: this crate drives the
//! protocol core itself.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    connect_codegen::Builder::new()
        .files(&["../greeter/proto/greeter.proto"])
        .includes(&["../greeter/proto"])
        .server(false)
        .client(false)
        .views(false)
        .compile()?;
    Ok(())
}
