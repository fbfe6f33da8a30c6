//! The `build.rs` front-end: runs protoc for a descriptor set, then the same generation as the
//! plugin.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use buffa_descriptor::generated::descriptor::FileDescriptorSet;

use crate::{Error, Generated, Options, generate};

/// Environment variable naming the protoc binary to use instead of the vendored one.
pub const PROTOC_ENV: &str = "PROTOC";

/// Compiles `.proto` files into Rust from a build script.
///
/// ```no_run
/// // build.rs
/// fn main() -> Result<(), Box<dyn std::error::Error>> {
///     connect_codegen::Builder::new()
///         .files(&["proto/acme/v1/greeter.proto"])
///         .includes(&["proto"])
///         .compile()?;
///     Ok(())
/// }
/// ```
///
/// protoc is the vendored one from `protoc-bin-vendored` (protoc 36.2, editions supported)
/// unless the `PROTOC` environment variable names another. The vendored well-known-type
/// `.proto` files are always on the include path, after the given includes.
///
/// [`file_descriptor_set_path`](Self::file_descriptor_set_path) also writes the compiled
/// files' descriptors, for server reflection (`connect-reflection`) or dynamic messages:
///
/// ```no_run
/// // build.rs
/// fn main() -> Result<(), Box<dyn std::error::Error>> {
///     connect_codegen::Builder::new()
///         .files(&["proto/acme/v1/greeter.proto"])
///         .includes(&["proto"])
///         .file_descriptor_set_path("greeter.binpb") // into $OUT_DIR
///         .compile()?;
///     Ok(())
/// }
/// // lib.rs:
/// // pub const FILE_DESCRIPTOR_SET: &[u8] =
/// //     include_bytes!(concat!(env!("OUT_DIR"), "/greeter.binpb"));
/// ```
#[derive(Clone, Debug)]
pub struct Builder {
    files: Vec<PathBuf>,
    includes: Vec<PathBuf>,
    out_dir: Option<PathBuf>,
    options: Options,
    cargo_instructions: bool,
    file_descriptor_set_path: Option<PathBuf>,
}

impl Default for Builder {
    fn default() -> Self {
        Builder::new()
    }
}

impl Builder {
    /// A builder with default [`Options`], writing to `$OUT_DIR`.
    pub fn new() -> Self {
        Builder {
            files: Vec::new(),
            includes: Vec::new(),
            out_dir: None,
            options: Options::default(),
            cargo_instructions: true,
            file_descriptor_set_path: None,
        }
    }

    /// Adds `.proto` files to generate. Each must lie inside one of the [`includes`](Self::includes).
    pub fn files(mut self, files: &[impl AsRef<Path>]) -> Self {
        self.files
            .extend(files.iter().map(|f| f.as_ref().to_path_buf()));
        self
    }

    /// Adds include directories (protoc's `-I`), searched in order.
    pub fn includes(mut self, includes: &[impl AsRef<Path>]) -> Self {
        self.includes
            .extend(includes.iter().map(|i| i.as_ref().to_path_buf()));
        self
    }

    /// Sets the output directory (default: `$OUT_DIR`).
    pub fn out_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.out_dir = Some(dir.into());
        self
    }

    /// Also writes the serialized `google.protobuf.FileDescriptorSet` of the compiled files and
    /// everything they import (transitively, well-known types included), as protoc's
    /// `--descriptor_set_out` with `--include_imports` and `--include_source_info` writes it,
    /// to `path` when [`compile`](Self::compile) runs. A relative `path` is taken relative to
    /// the output directory (`$OUT_DIR` by default), so `"descriptors.binpb"` lands next to the
    /// generated code; an absolute one is used as is.
    ///
    /// Files appear in dependency order (every file after its imports). The source info keeps
    /// the `.proto` comments, which reflection clients (`grpcurl describe`) show. Register the
    /// bytes with a reflection service, e.g. `connect-reflection`'s
    /// `ReflectionService::builder().register_file_descriptor_set(..)`. This is prost-build's
    /// `file_descriptor_set_path`; the protoc plugin's counterpart is the
    /// `file_descriptor_set` option ([`Options::file_descriptor_set`]), which writes a Rust
    /// constant instead.
    pub fn file_descriptor_set_path(mut self, path: impl Into<PathBuf>) -> Self {
        self.file_descriptor_set_path = Some(path.into());
        self
    }

    /// See [`Options::file_descriptor_set`].
    pub fn file_descriptor_set(mut self, file_name: Option<&str>) -> Self {
        self.options = self.options.file_descriptor_set(file_name);
        self
    }

    /// See [`Options::extern_path`].
    pub fn extern_path(
        mut self,
        proto_path: impl Into<String>,
        rust_path: impl Into<String>,
    ) -> Self {
        self.options = self.options.extern_path(proto_path, rust_path);
        self
    }

    /// See [`Options::client`].
    pub fn client(mut self, enabled: bool) -> Self {
        self.options = self.options.client(enabled);
        self
    }

    /// See [`Options::server`].
    pub fn server(mut self, enabled: bool) -> Self {
        self.options = self.options.server(enabled);
        self
    }

    /// See [`Options::views`].
    pub fn views(mut self, enabled: bool) -> Self {
        self.options = self.options.views(enabled);
        self
    }

    /// See [`Options::json`].
    pub fn json(mut self, enabled: bool) -> Self {
        self.options = self.options.json(enabled);
        self
    }

    /// See [`Options::unknown_fields`].
    pub fn unknown_fields(mut self, enabled: bool) -> Self {
        self.options = self.options.unknown_fields(enabled);
        self
    }

    /// See [`Options::include_file`].
    pub fn include_file(mut self, name: Option<&str>) -> Self {
        self.options = self.options.include_file(name);
        self
    }

    /// Replaces all generation options at once.
    pub fn options(mut self, options: Options) -> Self {
        self.options = options;
        self
    }

    /// Whether to print `cargo:rerun-if-changed` / `cargo:warning` lines (default `true`; turn
    /// off outside build scripts).
    pub fn cargo_instructions(mut self, enabled: bool) -> Self {
        self.cargo_instructions = enabled;
        self
    }

    /// Runs protoc and generation, writes every file into the output directory (and the
    /// descriptor set, when [`file_descriptor_set_path`](Self::file_descriptor_set_path) is
    /// set).
    pub fn compile(self) -> Result<(), Error> {
        let out_dir = match &self.out_dir {
            Some(dir) => dir.clone(),
            None => std::env::var_os("OUT_DIR")
                .map(PathBuf::from)
                .ok_or(Error::NoOutDir)?,
        };
        if self.cargo_instructions {
            self.print_rerun_instructions();
        }
        let files_to_generate = self.files_to_generate()?;
        let bytes = self.descriptor_set_bytes()?;
        let set = decode_descriptor_set(&bytes)?;
        let generated = generate(&set.file, &files_to_generate, &self.options)?;
        if self.cargo_instructions {
            for warning in &generated.warnings {
                println!("cargo:warning={}", warning.replace('\n', " "));
            }
        }
        std::fs::create_dir_all(&out_dir)
            .map_err(Error::io(format!("creating {}", out_dir.display())))?;
        for file in &generated.files {
            let path = out_dir.join(&file.name);
            std::fs::write(&path, &file.content)
                .map_err(Error::io(format!("writing {}", path.display())))?;
        }
        if let Some(path) = &self.file_descriptor_set_path {
            let path = out_dir.join(path);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)
                    .map_err(Error::io(format!("creating {}", parent.display())))?;
            }
            std::fs::write(&path, &bytes)
                .map_err(Error::io(format!("writing {}", path.display())))?;
        }
        Ok(())
    }

    /// Runs protoc and generation without writing anything.
    pub fn generate(&self) -> Result<Generated, Error> {
        let files_to_generate = self.files_to_generate()?;
        let set = self.descriptor_set()?;
        generate(&set.file, &files_to_generate, &self.options)
    }

    /// Runs protoc and decodes the descriptor set of the files, imports and source info
    /// included (what [`generate`](Self::generate) generates from).
    pub fn descriptor_set(&self) -> Result<FileDescriptorSet, Error> {
        decode_descriptor_set(&self.descriptor_set_bytes()?)
    }

    /// Runs protoc and returns the serialized descriptor set of the files, imports and source
    /// info included: what [`file_descriptor_set_path`](Self::file_descriptor_set_path)
    /// writes.
    pub fn descriptor_set_bytes(&self) -> Result<Vec<u8>, Error> {
        let protoc = protoc_path()?;
        let vendored_include = protoc_bin_vendored::include_path().ok();
        let set_path = scratch_path();
        let mut command = Command::new(&protoc);
        command
            .arg("--include_imports")
            .arg("--include_source_info")
            .arg(flag("--descriptor_set_out=", &set_path));
        for include in self.includes.iter().chain(&vendored_include) {
            command.arg(flag("--proto_path=", include));
        }
        command.args(&self.files);
        let output = command
            .output()
            .map_err(Error::io(format!("running {}", protoc.display())));
        let bytes = output.and_then(|output| {
            if output.status.success() {
                std::fs::read(&set_path)
                    .map_err(Error::io(format!("reading {}", set_path.display())))
            } else {
                Err(Error::Protoc {
                    status: output.status.to_string(),
                    stderr: String::from_utf8_lossy(&output.stderr).trim().to_string(),
                })
            }
        });
        let _ = std::fs::remove_file(&set_path);
        bytes
    }

    /// The files' names as protoc gives them (checked before protoc runs, so a missing file
    /// is an I/O error naming it).
    fn files_to_generate(&self) -> Result<Vec<String>, Error> {
        self.files
            .iter()
            .map(|f| proto_name(f, &self.includes))
            .collect()
    }

    fn print_rerun_instructions(&self) {
        println!("cargo:rerun-if-env-changed={PROTOC_ENV}");
        for path in self.files.iter().chain(&self.includes) {
            println!("cargo:rerun-if-changed={}", path.display());
        }
    }
}

/// Decodes protoc's descriptor set output (trusted input: tooling limits).
fn decode_descriptor_set(bytes: &[u8]) -> Result<FileDescriptorSet, Error> {
    let options = buffa_codegen::tooling_decode_options().map_err(Error::Decode)?;
    options
        .decode_from_slice::<FileDescriptorSet>(bytes)
        .map_err(|e| {
            Error::Decode(buffa_codegen::decode_failure(
                "FileDescriptorSet",
                &e,
                options.element_memory_limit(),
            ))
        })
}

/// `PROTOC`, else the vendored binary.
fn protoc_path() -> Result<PathBuf, Error> {
    match std::env::var_os(PROTOC_ENV) {
        Some(path) if !path.is_empty() => Ok(PathBuf::from(path)),
        _ => {
            protoc_bin_vendored::protoc_bin_path().map_err(|e| Error::ProtocNotFound(e.to_string()))
        }
    }
}

/// The name protoc gives `file`: its path relative to the first include directory holding it,
/// with `/` separators.
fn proto_name(file: &Path, includes: &[PathBuf]) -> Result<String, Error> {
    let canonical = |p: &Path| {
        p.canonicalize()
            .map_err(Error::io(format!("resolving {}", p.display())))
    };
    let file_abs = canonical(file)?;
    for include in includes {
        let Ok(include_abs) = canonical(include) else {
            continue;
        };
        if let Ok(relative) = file_abs.strip_prefix(&include_abs) {
            let parts: Vec<String> = relative
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            return Ok(parts.join("/"));
        }
    }
    Err(Error::NotInIncludes(file.to_path_buf()))
}

/// A fresh path in the temp directory for the descriptor set.
fn scratch_path() -> PathBuf {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    std::env::temp_dir().join(format!(
        "connect-codegen-{}-{n}-{nanos}.binpb",
        std::process::id()
    ))
}

fn flag(name: &str, path: &Path) -> std::ffi::OsString {
    let mut flag = std::ffi::OsString::from(name);
    flag.push(path.as_os_str());
    flag
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proto_names_are_include_relative() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/protos");
        let file = root.join("acme/v1/greeter.proto");
        assert_eq!(
            proto_name(&file, &[PathBuf::from("/nonexistent"), root.clone()]).unwrap(),
            "acme/v1/greeter.proto"
        );
        assert_eq!(
            proto_name(&file, &[root.join("acme")]).unwrap(),
            "v1/greeter.proto"
        );
        assert!(matches!(
            proto_name(&file, &[root.join("legacy")]),
            Err(Error::NotInIncludes(_))
        ));
    }
}
