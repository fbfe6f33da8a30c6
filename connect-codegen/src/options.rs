//! Generation options, shared by the plugin (as a parameter string) and [`Builder`](crate::Builder).

use crate::Error;

/// The default name of the module-tree file.
pub const DEFAULT_INCLUDE_FILE: &str = "_include.rs";

/// What to generate. [`Default`] generates everything: messages with views and proto3 JSON,
/// service constants, server side and client side, plus the [`DEFAULT_INCLUDE_FILE`] module tree.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Options {
    /// `(proto path, Rust path)` pairs, in order. See [`Options::extern_path`].
    pub extern_paths: Vec<(String, String)>,
    /// Generate the client side.
    pub client: bool,
    /// Generate the server side.
    pub server: bool,
    /// Generate buffa view types (zero-copy borrowed messages).
    pub views: bool,
    /// Generate proto3 JSON support (serde) on messages.
    pub json: bool,
    /// Keep the fields a message does not know when decoding it, and write them back when
    /// encoding it. See [`Options::unknown_fields`].
    pub unknown_fields: bool,
    /// Name of the module-tree file, or `None` for no module tree.
    pub include_file: Option<String>,
    /// Name of a Rust file holding the serialized descriptor set of the input, or `None` for
    /// none. See [`Options::file_descriptor_set`].
    pub file_descriptor_set: Option<String>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            extern_paths: Vec::new(),
            client: true,
            server: true,
            views: true,
            json: true,
            unknown_fields: true,
            include_file: Some(DEFAULT_INCLUDE_FILE.to_string()),
            file_descriptor_set: None,
        }
    }
}

impl Options {
    /// The defaults.
    pub fn new() -> Self {
        Options::default()
    }

    /// Takes messages under `proto_path` (a package such as `.acme.common`, or one type such as
    /// `.acme.common.Money`) from the Rust path `rust_path` (`::acme_common`, or
    /// `::acme_common::Money` for one type) instead of generating them. The Rust path must be
    /// absolute (`::…` or `crate::…`). The leading `.` of the proto path may be left out.
    /// Well-known types (`.google.protobuf`) map to `::buffa_types::google::protobuf` unless
    /// given here.
    pub fn extern_path(
        mut self,
        proto_path: impl Into<String>,
        rust_path: impl Into<String>,
    ) -> Self {
        self.extern_paths
            .push((proto_path.into(), rust_path.into()));
        self
    }

    /// Whether to generate the client side (default `true`).
    pub fn client(mut self, enabled: bool) -> Self {
        self.client = enabled;
        self
    }

    /// Whether to generate the server side (default `true`).
    pub fn server(mut self, enabled: bool) -> Self {
        self.server = enabled;
        self
    }

    /// Whether buffa generates view types (default `true`).
    pub fn views(mut self, enabled: bool) -> Self {
        self.views = enabled;
        self
    }

    /// Whether buffa generates proto3 JSON (serde) support (default `true`).
    pub fn json(mut self, enabled: bool) -> Self {
        self.json = enabled;
        self
    }

    /// Whether messages keep the fields they do not know (default `true`): decoded into a
    /// `__buffa_unknown_fields` member and written back when the message is encoded, so a
    /// message passed on (a proxy, an older service in the middle) loses nothing. `false`
    /// drops them on decode, as prost does: each message is a little smaller and cheaper to
    /// clone, measure and encode.
    pub fn unknown_fields(mut self, enabled: bool) -> Self {
        self.unknown_fields = enabled;
        self
    }

    /// The module-tree file's name, or `None` to write none (default `Some("_include.rs")`).
    pub fn include_file(mut self, name: Option<&str>) -> Self {
        self.include_file = name.map(str::to_string);
        self
    }

    /// Also writes a Rust file of this name (a bare name ending in `.rs`) holding
    /// `pub const FILE_DESCRIPTOR_SET: &[u8]`: the serialized `google.protobuf.FileDescriptorSet`
    /// of every descriptor generation received — the files to generate and all their imports,
    /// in dependency order — for server reflection (`connect-reflection`). Include it where the
    /// constant should live: `include!(concat!(env!("OUT_DIR"), "/descriptors.rs"));`.
    /// Default `None`.
    ///
    /// Through the protoc plugin the set holds what protoc sends plugins (source info, hence
    /// comments, only for the files to generate); through [`Builder`](crate::Builder) it holds
    /// protoc's `--include_source_info` output (comments for every file). The build-script
    /// alternative writing raw bytes is
    /// [`Builder::file_descriptor_set_path`](crate::Builder::file_descriptor_set_path).
    pub fn file_descriptor_set(mut self, file_name: Option<&str>) -> Self {
        self.file_descriptor_set = file_name.map(str::to_string);
        self
    }

    /// Parses a protoc plugin parameter: comma-separated `key=value` entries (see the crate docs
    /// for the keys). Empty entries are ignored; an unknown key is an error.
    pub fn from_parameter(parameter: &str) -> Result<Options, Error> {
        let mut options = Options::default();
        for entry in parameter
            .split(',')
            .map(str::trim)
            .filter(|e| !e.is_empty())
        {
            let (key, value) = entry
                .split_once('=')
                .ok_or_else(|| Error::InvalidOption(format!("'{entry}' is not key=value")))?;
            match key.trim() {
                "extern_path" => {
                    let (proto, rust) = value.split_once('=').ok_or_else(|| {
                        Error::InvalidOption(format!(
                            "extern_path '{value}' is not .proto.path=::rust::path"
                        ))
                    })?;
                    options
                        .extern_paths
                        .push((proto.trim().to_string(), rust.trim().to_string()));
                }
                "client" => options.client = parse_bool(key, value)?,
                "server" => options.server = parse_bool(key, value)?,
                "views" => options.views = parse_bool(key, value)?,
                "json" => options.json = parse_bool(key, value)?,
                "unknown_fields" => options.unknown_fields = parse_bool(key, value)?,
                "include_file" => {
                    let name = value.trim();
                    options.include_file = (!name.is_empty()).then(|| name.to_string());
                }
                "file_descriptor_set" => {
                    let name = value.trim();
                    options.file_descriptor_set = (!name.is_empty()).then(|| name.to_string());
                }
                // Read by buffa_codegen::decode_request before the request is decoded.
                buffa_codegen::ELEMENT_MEMORY_LIMIT_OPT => {}
                other => return Err(Error::InvalidOption(format!("unknown option '{other}'"))),
            }
        }
        Ok(options)
    }

    /// The extern paths in the form buffa expects, checked: proto paths get their leading `.`,
    /// Rust paths must be absolute.
    pub(crate) fn normalised_extern_paths(&self) -> Result<Vec<(String, String)>, Error> {
        self.extern_paths
            .iter()
            .map(|(proto, rust)| {
                let proto = proto.trim();
                let proto = if proto.starts_with('.') { proto.to_string() } else { format!(".{proto}") };
                if proto.len() < 2 || proto.split('.').skip(1).any(str::is_empty) {
                    return Err(Error::InvalidOption(format!("extern_path proto path '{proto}' is malformed")));
                }
                let rust = rust.trim();
                if !(rust.starts_with("::") || rust.starts_with("crate::")) {
                    return Err(Error::InvalidOption(format!(
                        "extern_path Rust path '{rust}' must be absolute (start with '::' or 'crate::')"
                    )));
                }
                Ok((proto, rust.to_string()))
            })
            .collect()
    }

    /// The include file name, checked to be a bare file name.
    pub(crate) fn checked_include_file(&self) -> Result<Option<&str>, Error> {
        checked_file_name("include_file", self.include_file.as_deref())
    }

    /// The descriptor-set file name, checked to be a bare file name.
    pub(crate) fn checked_file_descriptor_set(&self) -> Result<Option<&str>, Error> {
        checked_file_name("file_descriptor_set", self.file_descriptor_set.as_deref())
    }
}

/// `name`, if it is a bare file name ending in `.rs`.
fn checked_file_name<'a>(key: &str, name: Option<&'a str>) -> Result<Option<&'a str>, Error> {
    match name {
        Some(name) if name.contains(['/', '\\', '"', '\n']) || !name.ends_with(".rs") => {
            Err(Error::InvalidOption(format!(
                "{key} '{name}' must be a bare file name ending in .rs"
            )))
        }
        other => Ok(other),
    }
}

fn parse_bool(key: &str, value: &str) -> Result<bool, Error> {
    match value.trim() {
        "true" => Ok(true),
        "false" => Ok(false),
        other => Err(Error::InvalidOption(format!(
            "{key}={other}: expected true or false"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_key() {
        let o = Options::from_parameter(
            "extern_path=.acme.common=::acme_common, client=false,server=true,views=false,json=false,unknown_fields=false,include_file=mod.rs,file_descriptor_set=fds.rs",
        )
        .unwrap();
        assert_eq!(o.file_descriptor_set.as_deref(), Some("fds.rs"));
        assert_eq!(
            o.extern_paths,
            vec![(".acme.common".to_string(), "::acme_common".to_string())]
        );
        assert!(!o.client && o.server && !o.views && !o.json && !o.unknown_fields);
        assert_eq!(o.include_file.as_deref(), Some("mod.rs"));
    }

    #[test]
    fn empty_parameter_is_default() {
        assert_eq!(Options::from_parameter("").unwrap(), Options::default());
        assert_eq!(Options::from_parameter(" , ").unwrap(), Options::default());
    }

    #[test]
    fn empty_include_file_disables_it() {
        assert_eq!(
            Options::from_parameter("include_file=")
                .unwrap()
                .include_file,
            None
        );
    }

    #[test]
    fn element_memory_limit_is_accepted() {
        assert!(Options::from_parameter("element_memory_limit=unlimited").is_ok());
    }

    #[test]
    fn rejects_bad_entries() {
        assert!(Options::from_parameter("client").is_err());
        assert!(Options::from_parameter("client=maybe").is_err());
        assert!(Options::from_parameter("bogus=1").is_err());
        assert!(Options::from_parameter("extern_path=.a").is_err());
    }

    #[test]
    fn extern_paths_are_normalised_and_checked() {
        let o = Options::new()
            .extern_path("acme.common", "::c")
            .extern_path(".x.Y", "crate::y::Y");
        assert_eq!(
            o.normalised_extern_paths().unwrap(),
            vec![
                (".acme.common".into(), "::c".into()),
                (".x.Y".into(), "crate::y::Y".into())
            ]
        );
        assert!(
            Options::new()
                .extern_path(".a", "relative::path")
                .normalised_extern_paths()
                .is_err()
        );
        assert!(
            Options::new()
                .extern_path(".a..b", "::x")
                .normalised_extern_paths()
                .is_err()
        );
        assert!(
            Options::new()
                .extern_path(".", "::x")
                .normalised_extern_paths()
                .is_err()
        );
    }

    #[test]
    fn include_file_must_be_bare() {
        assert!(
            Options::new()
                .include_file(Some("a/b.rs"))
                .checked_include_file()
                .is_err()
        );
        assert!(
            Options::new()
                .include_file(Some("a.txt"))
                .checked_include_file()
                .is_err()
        );
        assert_eq!(
            Options::new().checked_include_file().unwrap(),
            Some("_include.rs")
        );
        assert!(
            Options::new()
                .file_descriptor_set(Some("../x.rs"))
                .checked_file_descriptor_set()
                .is_err()
        );
        assert_eq!(Options::new().checked_file_descriptor_set().unwrap(), None);
    }
}
