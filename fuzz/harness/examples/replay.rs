//! Runs inputs through one target body outside libFuzzer, for triage:
//! `cargo run -p connect-fuzz-harness --example replay -- <target> <file>…`.

use connect_fuzz_harness::TARGETS;

fn main() {
    let mut args = std::env::args().skip(1);
    let name = args.next().unwrap_or_default();
    let Some((_, target)) = TARGETS.iter().find(|(n, _)| *n == name) else {
        let names: Vec<&str> = TARGETS.iter().map(|(n, _)| *n).collect();
        eprintln!(
            "usage: replay <target> <file>…; targets: {}",
            names.join(", ")
        );
        std::process::exit(2);
    };
    for file in args {
        let data = std::fs::read(&file).unwrap_or_else(|e| panic!("{file}: {e}"));
        println!("{name}: {file} ({} bytes)", data.len());
        target(&data);
    }
}
