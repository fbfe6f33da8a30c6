//! The descriptor-set outputs: `Builder::file_descriptor_set_path` (raw bytes, protoc's
//! `--descriptor_set_out`) and the `file_descriptor_set` option (a Rust constant, through the
//! build path and the protoc plugin alike).

use std::path::PathBuf;
use std::process::Command;

use buffa::Message;
use connect_codegen::{Builder, FileDescriptorSet};

fn protos_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/protos")
}

fn scratch_dir(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("connect-codegen-descriptor-set")
        .join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create scratch dir");
    dir
}

fn builder() -> Builder {
    Builder::new()
        .files(&[protos_dir().join("acme/v1/greeter.proto")])
        .includes(&[protos_dir()])
        .cargo_instructions(false)
}

fn names(set: &FileDescriptorSet) -> Vec<&str> {
    set.file.iter().filter_map(|f| f.name.as_deref()).collect()
}

/// Decodes the literal of a generated `FILE_DESCRIPTOR_SET` constant.
fn literal_bytes(rust: &str) -> Vec<u8> {
    let start = rust.find("b\"").expect("byte string") + 2;
    let end = rust.rfind("\";").expect("end of literal");
    let mut bytes = Vec::new();
    let mut chars = rust[start..end].chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some('x') => {
                    let hex: String = chars.by_ref().take(2).collect();
                    bytes.push(u8::from_str_radix(&hex, 16).expect("hex escape"));
                }
                Some('\n') => {
                    while chars.peek().is_some_and(|c| c.is_whitespace()) {
                        chars.next();
                    }
                }
                other => panic!("unexpected escape {other:?}"),
            },
            c => bytes.push(u8::try_from(c).expect("ASCII")),
        }
    }
    bytes
}

#[test]
fn builder_writes_the_set_with_imports_into_the_out_dir() {
    let out = scratch_dir("builder-bytes");
    builder()
        .out_dir(&out)
        .file_descriptor_set_path("sub/greeter.binpb")
        .compile()
        .expect("compile");
    let bytes = std::fs::read(out.join("sub/greeter.binpb")).expect("descriptor set written");
    let set = FileDescriptorSet::decode_from_slice(&bytes).expect("decodes");
    let names = names(&set);
    // Imports first, the compiled file last; source info kept (for comments).
    assert_eq!(names.last(), Some(&"acme/v1/greeter.proto"), "{names:?}");
    assert!(names.contains(&"acme/v1/common.proto"), "{names:?}");
    assert!(names.contains(&"acme/v1/inner/types.proto"), "{names:?}");
    assert!(set.file.iter().all(|f| f.source_code_info.is_set()));
    assert_eq!(bytes, builder().descriptor_set_bytes().expect("bytes"));
    // The generated code is unchanged by the option.
    assert!(out.join("acme.v1.greeter.__connect.rs").exists());
}

#[test]
fn absolute_paths_are_used_as_is() {
    let out = scratch_dir("builder-absolute-out");
    let elsewhere = scratch_dir("builder-absolute-elsewhere").join("set.binpb");
    builder()
        .out_dir(&out)
        .file_descriptor_set_path(&elsewhere)
        .compile()
        .expect("compile");
    assert!(elsewhere.exists());
}

#[test]
fn the_constant_holds_the_same_files_through_builder_and_plugin() {
    let generated = builder()
        .file_descriptor_set(Some("descriptors.rs"))
        .generate()
        .expect("generate");
    let rust = &generated
        .files
        .iter()
        .find(|f| f.name == "descriptors.rs")
        .expect("descriptors.rs generated")
        .content;
    assert!(rust.contains("pub const FILE_DESCRIPTOR_SET: &[u8]"));
    let from_builder = FileDescriptorSet::decode_from_slice(&literal_bytes(rust)).expect("decodes");
    let expected = builder().descriptor_set().expect("set");
    assert_eq!(names(&from_builder), names(&expected));

    // The plugin, through real protoc.
    let out = scratch_dir("plugin");
    let protoc = protoc_bin_vendored::protoc_bin_path().expect("vendored protoc");
    let include = protoc_bin_vendored::include_path().expect("vendored includes");
    let output = Command::new(protoc)
        .arg(format!(
            "--plugin=protoc-gen-connect-rust={}",
            env!("CARGO_BIN_EXE_protoc-gen-connect-rust")
        ))
        .arg(format!("--connect-rust_out={}", out.display()))
        .arg("--connect-rust_opt=file_descriptor_set=descriptors.rs")
        .arg(format!("--proto_path={}", protos_dir().display()))
        .arg(format!("--proto_path={}", include.display()))
        .arg("acme/v1/greeter.proto")
        .output()
        .expect("run protoc");
    assert!(
        output.status.success(),
        "protoc failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let rust = std::fs::read_to_string(out.join("descriptors.rs")).expect("descriptors.rs");
    let from_plugin = FileDescriptorSet::decode_from_slice(&literal_bytes(&rust)).expect("decodes");
    assert_eq!(names(&from_plugin), names(&expected));
}

#[test]
fn bad_constant_file_names_are_rejected() {
    let error = builder()
        .file_descriptor_set(Some("../escape.rs"))
        .generate()
        .expect_err("a path is not a bare name");
    assert!(error.to_string().contains("file_descriptor_set"), "{error}");
}
