//! Replays the committed fuzz inputs through the target bodies: every seed
//! (`fuzz/corpus/<target>/seed-*`) and every regression (`fuzz/regressions/<target>/*`).
//! A crash the fuzzer once found stays fixed because `cargo test --workspace` runs this.

use std::fs;
use std::path::{Path, PathBuf};

use connect_fuzz_harness::TARGETS;

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the harness lives in fuzz/")
        .to_path_buf()
}

/// The files of `dir` whose names start with `prefix`, sorted; none if `dir` is missing.
fn inputs(dir: &Path, prefix: &str) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .map(|e| e.expect("readable directory entry").path())
        .filter(|p| p.is_file())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(prefix) && !n.starts_with('.'))
        })
        .collect();
    files.sort();
    files
}

fn replay(kind: &str, dir_of: impl Fn(&str) -> PathBuf, prefix: &str) -> usize {
    let mut count = 0;
    for (name, target) in TARGETS {
        for file in inputs(&dir_of(name), prefix) {
            let data = fs::read(&file).expect("readable input");
            eprintln!("{kind} {name}: {}", file.display());
            target(&data);
            count += 1;
        }
    }
    count
}

#[test]
fn every_target_has_a_seed_corpus() {
    for (name, _) in TARGETS {
        let seeds = inputs(&fuzz_dir().join("corpus").join(name), "seed-");
        assert!(!seeds.is_empty(), "no seeds for {name}");
        assert!(
            fuzz_dir()
                .join("fuzz_targets")
                .join(format!("{name}.rs"))
                .is_file(),
            "no cargo-fuzz target for {name}"
        );
    }
}

#[test]
fn seeds_replay() {
    let count = replay("seed", |t| fuzz_dir().join("corpus").join(t), "seed-");
    assert!(count >= TARGETS.len());
}

#[test]
fn regressions_replay() {
    replay("regression", |t| fuzz_dir().join("regressions").join(t), "");
}

/// Regression directories must belong to a target (a typo would silently skip its inputs).
#[test]
fn regression_directories_name_targets() {
    let Ok(entries) = fs::read_dir(fuzz_dir().join("regressions")) else {
        return;
    };
    for entry in entries {
        let path = entry.expect("readable directory entry").path();
        if path.is_dir() {
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            assert!(
                TARGETS.iter().any(|(t, _)| *t == name),
                "fuzz/regressions/{name} is not a target"
            );
        }
    }
}

/// Empty and tiny inputs exercise every early return.
#[test]
fn tiny_inputs() {
    for (_, target) in TARGETS {
        for data in [&[][..], &[0], &[0xff; 3], &[1, 2, 3, 4, 5, 6, 7, 8]] {
            target(data);
        }
    }
}
