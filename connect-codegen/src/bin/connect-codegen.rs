//! `connect-codegen`: generate Rust for `.proto` files without a system `protoc` (the
//! vendored one is used unless `PROTOC` is set). For checked-in generated code and scripts;
//! `build.rs` users call [`connect_codegen::Builder`] directly.
//!
//! ```text
//! connect-codegen --out DIR [--include DIR]... [--option KEY=VALUE]... FILE.proto...
//! ```
//!
//! Options are the plugin's (`client=false`, `server=false`, `views=false`,
//! `extern_path=.pkg=::path`, …).

use std::path::PathBuf;
use std::process::ExitCode;

use connect_codegen::{Builder, Options};

const USAGE: &str =
    "usage: connect-codegen --out DIR [--include DIR]... [--option KEY=VALUE]... FILE.proto...";

fn main() -> ExitCode {
    match run(std::env::args().skip(1).collect()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("connect-codegen: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Vec<String>) -> Result<(), String> {
    let mut out: Option<PathBuf> = None;
    let mut includes: Vec<PathBuf> = Vec::new();
    let mut options: Vec<String> = Vec::new();
    let mut files: Vec<PathBuf> = Vec::new();
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let mut value = |flag: &str| {
            args.next()
                .ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))
        };
        match arg.as_str() {
            "--out" => out = Some(value("--out")?.into()),
            "--include" | "-I" => includes.push(value("--include")?.into()),
            "--option" => options.push(value("--option")?),
            "--help" | "-h" => {
                println!("{USAGE}");
                return Ok(());
            }
            flag if flag.starts_with('-') => return Err(format!("unknown flag {flag}\n{USAGE}")),
            file => files.push(file.into()),
        }
    }
    let out = out.ok_or_else(|| format!("--out is required\n{USAGE}"))?;
    if files.is_empty() {
        return Err(format!("no .proto files given\n{USAGE}"));
    }
    let options = Options::from_parameter(&options.join(",")).map_err(|e| e.to_string())?;
    std::fs::create_dir_all(&out).map_err(|e| format!("creating {}: {e}", out.display()))?;
    Builder::new()
        .files(&files)
        .includes(&includes)
        .out_dir(out)
        .options(options)
        .cargo_instructions(false)
        .compile()
        .map_err(|e| e.to_string())
}
