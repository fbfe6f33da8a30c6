//! Golden tests: the build.rs path reproduces `tests/golden/` (default options) and
//! `tests/golden_owned/` (`views=false`: handlers take owned requests) exactly, and the protoc
//! plugin (through real, vendored protoc) produces the same files as the build.rs path.
//!
//! Regenerate the expectations with `UPDATE_GOLDEN=1 cargo test -p connect-codegen --test golden`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use connect_codegen::{Builder, Options};

/// The fixture files, as protoc names them (relative to `tests/protos`).
const FIXTURES: &[&str] = &[
    "acme/v1/greeter.proto",
    "acme/v1/common.proto",
    "acme/v1/keywords.proto",
    "acme/v1/inner/types.proto",
    "acme/v1/type/money.proto",
    "legacy/v2/legacy.proto",
    "ed/v1/editions.proto",
];

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn protos_dir() -> PathBuf {
    manifest_dir().join("tests/protos")
}

/// Each golden directory and the options it is generated with.
fn golden_cases() -> [(&'static str, Options); 2] {
    [
        ("tests/golden", Options::new()),
        ("tests/golden_owned", Options::new().views(false)),
    ]
}

/// An empty scratch directory unique to `name`.
fn scratch_dir(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("connect-codegen-golden")
        .join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create scratch dir");
    dir
}

fn fixture_paths() -> Vec<PathBuf> {
    FIXTURES.iter().map(|f| protos_dir().join(f)).collect()
}

fn builder() -> Builder {
    Builder::new()
        .files(&fixture_paths())
        .includes(&[protos_dir()])
        .cargo_instructions(false)
}

/// Every file in `dir` (non-recursive), by name.
fn read_dir(dir: &Path) -> BTreeMap<String, String> {
    std::fs::read_dir(dir)
        .expect("read dir")
        .map(|entry| {
            let path = entry.expect("dir entry").path();
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .expect("utf-8 name")
                .to_string();
            (
                name,
                std::fs::read_to_string(&path).expect("read generated file"),
            )
        })
        .collect()
}

fn in_memory(files: Vec<connect_codegen::OutputFile>) -> BTreeMap<String, String> {
    files.into_iter().map(|f| (f.name, f.content)).collect()
}

/// Asserts two file sets are equal, naming the first difference.
fn assert_same(expected: &BTreeMap<String, String>, actual: &BTreeMap<String, String>, what: &str) {
    let expected_names: Vec<_> = expected.keys().collect();
    let actual_names: Vec<_> = actual.keys().collect();
    assert_eq!(expected_names, actual_names, "{what}: file sets differ");
    for (name, want) in expected {
        let got = &actual[name];
        if want != got {
            let line = want
                .lines()
                .zip(got.lines())
                .position(|(a, b)| a != b)
                .unwrap_or(0);
            panic!(
                "{what}: {name} differs at line {}:\n  expected: {:?}\n  actual:   {:?}",
                line + 1,
                want.lines().nth(line),
                got.lines().nth(line)
            );
        }
    }
}

/// Runs vendored protoc with the built plugin into a fresh directory and returns its files.
fn run_plugin(scratch: &str, parameter: &str) -> BTreeMap<String, String> {
    let out = scratch_dir(scratch);
    let protoc = protoc_bin_vendored::protoc_bin_path().expect("vendored protoc");
    let include = protoc_bin_vendored::include_path().expect("vendored includes");
    let mut command = Command::new(protoc);
    command
        .arg(format!(
            "--plugin=protoc-gen-connect-rust={}",
            env!("CARGO_BIN_EXE_protoc-gen-connect-rust")
        ))
        .arg(format!("--connect-rust_out={}", out.display()))
        .arg(format!("--proto_path={}", protos_dir().display()))
        .arg(format!("--proto_path={}", include.display()));
    if !parameter.is_empty() {
        command.arg(format!("--connect-rust_opt={parameter}"));
    }
    command.args(FIXTURES);
    let output = command.output().expect("run protoc");
    assert!(
        output.status.success(),
        "protoc failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    read_dir(&out)
}

#[test]
fn build_path_matches_golden() {
    for (dir, options) in golden_cases() {
        let out = scratch_dir(&format!("builder-{}", dir.replace('/', "-")));
        builder()
            .options(options)
            .out_dir(&out)
            .compile()
            .expect("compile fixtures");
        let actual = read_dir(&out);
        let golden = manifest_dir().join(dir);
        if std::env::var_os("UPDATE_GOLDEN").is_some_and(|v| v == "1") {
            let _ = std::fs::remove_dir_all(&golden);
            std::fs::create_dir_all(&golden).expect("create golden dir");
            for (name, content) in &actual {
                std::fs::write(golden.join(name), content).expect("write golden file");
            }
            continue;
        }
        assert_same(
            &read_dir(&golden),
            &actual,
            &format!("build.rs output vs {dir} (UPDATE_GOLDEN=1 to regenerate)"),
        );
    }
}

#[test]
fn plugin_matches_build_path() {
    let expected = in_memory(builder().generate().expect("generate").files);
    assert_same(
        &expected,
        &run_plugin("plugin-default", ""),
        "plugin vs build.rs path",
    );
}

#[test]
fn plugin_options_match_builder_options() {
    let parameter = "views=false,json=false,client=false,include_file=mod.rs,\
                     extern_path=.acme.v1.inner=::inner_crate";
    let options = Options::new()
        .views(false)
        .json(false)
        .client(false)
        .include_file(Some("mod.rs"))
        .extern_path(".acme.v1.inner", "::inner_crate");
    let expected = in_memory(
        builder()
            .options(options)
            .generate()
            .expect("generate")
            .files,
    );
    let actual = run_plugin("plugin-options", parameter);
    assert_same(&expected, &actual, "plugin vs build.rs path, with options");
    assert!(actual.contains_key("mod.rs") && !actual.contains_key("_include.rs"));
    assert!(
        actual.keys().all(|name| !name.contains("__view")),
        "views=false still wrote view files"
    );
    let greeter = &actual["acme.v1.greeter.__connect.rs"];
    assert!(
        greeter.contains("(::inner_crate::InnerRequest)"),
        "extern path not used:\n{greeter}"
    );
}

#[test]
fn plugin_reports_bad_options_through_protoc() {
    let protoc = protoc_bin_vendored::protoc_bin_path().expect("vendored protoc");
    let out = scratch_dir("plugin-bad-option");
    let output = Command::new(protoc)
        .arg(format!(
            "--plugin=protoc-gen-connect-rust={}",
            env!("CARGO_BIN_EXE_protoc-gen-connect-rust")
        ))
        .arg(format!("--connect-rust_out={}", out.display()))
        .arg("--connect-rust_opt=server=perhaps")
        .arg(format!("--proto_path={}", protos_dir().display()))
        .arg("acme/v1/common.proto")
        .output()
        .expect("run protoc");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("server=perhaps"), "{stderr}");
}

#[test]
fn builder_reports_missing_files_and_protoc_errors() {
    let dir = scratch_dir("builder-errors");
    let missing = Builder::new()
        .files(&[dir.join("missing.proto")])
        .includes(&[&dir])
        .out_dir(dir.join("out"))
        .cargo_instructions(false)
        .compile()
        .expect_err("a missing file must fail");
    assert!(
        matches!(missing, connect_codegen::Error::Io { .. }),
        "{missing:?}"
    );

    std::fs::write(
        dir.join("broken.proto"),
        "syntax = \"proto3\";\nmessage {\n",
    )
    .expect("write broken.proto");
    let broken = Builder::new()
        .files(&[dir.join("broken.proto")])
        .includes(&[&dir])
        .out_dir(dir.join("out"))
        .cargo_instructions(false)
        .compile()
        .expect_err("a syntax error must fail");
    match broken {
        connect_codegen::Error::Protoc { stderr, .. } => {
            assert!(stderr.contains("broken.proto"), "{stderr}")
        }
        other => panic!("expected a protoc error, got {other:?}"),
    }
}

/// `unknown_fields=false` generates messages without the unknown-field member (and the
/// default keeps it), through both paths.
#[test]
fn unknown_fields_false_generates_messages_that_drop_them() {
    const MEMBER: &str = "__buffa_unknown_fields";
    let holds_member =
        |files: &[connect_codegen::OutputFile]| files.iter().any(|f| f.content.contains(MEMBER));
    let kept = builder().generate().expect("generate").files;
    assert!(holds_member(&kept), "the default keeps unknown fields");
    let dropped = builder()
        .unknown_fields(false)
        .generate()
        .expect("generate")
        .files;
    assert!(!holds_member(&dropped), "unknown_fields=false drops them");
    let options = Options::from_parameter("unknown_fields=false").expect("parameter");
    assert!(!options.unknown_fields);
    let through_options = builder().options(options).generate().expect("generate");
    assert_eq!(through_options.files, dropped);
}
