//! The registered descriptors, indexed for the questions reflection asks: files by name and
//! by the symbols they declare, their imports, extensions by type, and the services listed.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use buffa::Message;
use buffa_descriptor::DescriptorPool;
use buffa_descriptor::generated::descriptor::{FileDescriptorProto, FileDescriptorSet};
use connect_tower::Code;

use crate::Error;

/// What the service answers from: built once, shared by every stream.
#[derive(Debug)]
pub(crate) struct Descriptors {
    pool: DescriptorPool,
    /// Every file, serialized once, in registration order.
    files: Vec<File>,
    by_name: HashMap<String, usize>,
    /// The fully-qualified service names `list_services` answers, sorted.
    services: Vec<String>,
}

#[derive(Debug)]
struct File {
    bytes: Arc<[u8]>,
    /// Indices of the files it imports.
    imports: Vec<usize>,
}

/// An answer to one question (the version-independent form of a `message_response`).
#[derive(Debug, PartialEq)]
pub(crate) enum Answer {
    /// Serialized `FileDescriptorProto`s.
    Files(Vec<Vec<u8>>),
    /// The extension numbers of a type.
    ExtensionNumbers {
        base_type_name: String,
        numbers: Vec<i32>,
    },
    /// The services offered.
    Services(Vec<String>),
    /// The question could not be answered.
    Error { code: Code, message: String },
}

impl Answer {
    fn not_found(message: String) -> Answer {
        Answer::Error {
            code: Code::NotFound,
            message,
        }
    }
}

/// The files already sent on one stream (each is sent once per stream, as grpc-go does).
pub(crate) type Sent = HashSet<usize>;

impl Descriptors {
    /// Links `files` (unique by name) and indexes them. `services`, when given, replaces the
    /// list of every service the files declare.
    pub(crate) fn new(
        files: Vec<FileDescriptorProto>,
        services: Option<Vec<String>>,
    ) -> Result<Descriptors, Error> {
        let mut by_name = HashMap::with_capacity(files.len());
        for (index, file) in files.iter().enumerate() {
            by_name.insert(file.name.clone().unwrap_or_default(), index);
        }
        let mut indexed = Vec::with_capacity(files.len());
        for file in &files {
            let name = file.name.as_deref().unwrap_or_default();
            let imports = file
                .dependency
                .iter()
                .map(|dependency| {
                    by_name
                        .get(dependency)
                        .copied()
                        .ok_or_else(|| Error::MissingImport {
                            file: name.to_string(),
                            import: dependency.clone(),
                        })
                })
                .collect::<Result<Vec<_>, _>>()?;
            indexed.push(File {
                bytes: file.encode_to_vec().into(),
                imports,
            });
        }
        let pool = DescriptorPool::new(FileDescriptorSet {
            file: files,
            ..Default::default()
        })
        .map_err(Error::Invalid)?;
        let services = match services {
            Some(names) => names.into_iter().collect::<BTreeSet<_>>(),
            None => pool
                .services()
                .iter()
                .map(|s| s.full_name().to_string())
                .collect(),
        };
        Ok(Descriptors {
            pool,
            files: indexed,
            by_name,
            services: services.into_iter().collect(),
        })
    }

    /// The services `list_services` answers.
    pub(crate) fn services(&self) -> &[String] {
        &self.services
    }

    /// `list_services`.
    pub(crate) fn list_services(&self) -> Answer {
        Answer::Services(self.services.clone())
    }

    /// `file_by_filename`: the file, then the imports not yet sent on this stream.
    pub(crate) fn file_by_filename(&self, name: &str, sent: &mut Sent) -> Answer {
        match self.by_name.get(name) {
            Some(&index) => self.with_imports(index, sent),
            None => Answer::not_found(format!("unknown file {name:?}")),
        }
    }

    /// `file_containing_symbol`: the file declaring a service, method, message, enum (nested
    /// ones too), extension or message field.
    pub(crate) fn file_containing_symbol(&self, symbol: &str, sent: &mut Sent) -> Answer {
        match self.file_of_symbol(symbol) {
            Some(index) => self.with_imports(index, sent),
            None => Answer::not_found(format!("unknown symbol {symbol:?}")),
        }
    }

    /// `file_containing_extension`: the file declaring the extension of `containing_type`
    /// numbered `number`.
    pub(crate) fn file_containing_extension(
        &self,
        containing_type: &str,
        number: i32,
        sent: &mut Sent,
    ) -> Answer {
        let Some(extendee) = self.pool.message_index(containing_type) else {
            return Answer::not_found(format!("unknown message type {containing_type:?}"));
        };
        let extension = u32::try_from(number)
            .ok()
            .and_then(|number| self.pool.extension_for(extendee, number));
        let file = extension.and_then(|e| self.file_of_symbol(e.full_name()));
        match file {
            Some(index) => self.with_imports(index, sent),
            None => Answer::not_found(format!(
                "no extension of {containing_type:?} numbered {number}"
            )),
        }
    }

    /// `all_extension_numbers_of_type`: the numbers of every registered extension of a
    /// message type.
    pub(crate) fn extension_numbers(&self, type_name: &str) -> Answer {
        let Some(extendee) = self.pool.message_index(type_name) else {
            return Answer::not_found(format!("unknown message type {type_name:?}"));
        };
        let numbers = self
            .pool
            .extensions_of(extendee)
            .filter_map(|e| i32::try_from(e.field().number()).ok())
            .collect();
        Answer::ExtensionNumbers {
            base_type_name: type_name.strip_prefix('.').unwrap_or(type_name).to_string(),
            numbers,
        }
    }

    /// The index of the file declaring `symbol` (a leading `.` is allowed).
    fn file_of_symbol(&self, symbol: &str) -> Option<usize> {
        let file = self.pool.file_containing_symbol(symbol).or_else(|| {
            // A field: its message's file.
            let (message, field) = symbol.rsplit_once('.')?;
            let descriptor = self.pool.message_by_name(message)?;
            descriptor.field_by_name(field)?;
            self.pool.file_containing_symbol(message)
        })?;
        self.by_name.get(file.name.as_deref()?).copied()
    }

    /// `index`'s file (always), then its transitive imports that this stream has not been
    /// sent yet, breadth first.
    fn with_imports(&self, index: usize, sent: &mut Sent) -> Answer {
        let mut answer = Vec::new();
        let mut queued = HashSet::from([index]);
        let mut queue = std::collections::VecDeque::from([index]);
        while let Some(current) = queue.pop_front() {
            let Some(file) = self.files.get(current) else {
                continue;
            };
            let first_time = sent.insert(current);
            if current == index || first_time {
                answer.push(file.bytes.to_vec());
            }
            for &import in &file.imports {
                if queued.insert(import) {
                    queue.push_back(import);
                }
            }
        }
        Answer::Files(answer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use buffa_descriptor::generated::descriptor::field_descriptor_proto::{Label, Type};
    use buffa_descriptor::generated::descriptor::{
        DescriptorProto, FieldDescriptorProto, ServiceDescriptorProto,
    };

    fn file(name: &str, package: &str, imports: &[&str]) -> FileDescriptorProto {
        FileDescriptorProto {
            name: Some(name.into()),
            package: Some(package.into()),
            dependency: imports.iter().map(|i| i.to_string()).collect(),
            syntax: Some("proto3".into()),
            ..Default::default()
        }
    }

    fn message(name: &str) -> DescriptorProto {
        DescriptorProto {
            name: Some(name.into()),
            ..Default::default()
        }
    }

    /// a.proto ← b.proto ← c.proto (c imports b, b imports a); c declares a service.
    fn chain() -> Descriptors {
        let mut a = file("a.proto", "x", &[]);
        let mut outer = message("A");
        outer.nested_type.push(message("Inner"));
        outer.field.push(FieldDescriptorProto {
            name: Some("count".into()),
            number: Some(1),
            r#type: Some(Type::TYPE_INT32),
            label: Some(Label::LABEL_OPTIONAL),
            ..Default::default()
        });
        a.message_type.push(outer);
        let mut b = file("b.proto", "x", &["a.proto"]);
        b.message_type.push(message("B"));
        let mut c = file("c.proto", "y", &["b.proto"]);
        c.service.push(ServiceDescriptorProto {
            name: Some("S".into()),
            ..Default::default()
        });
        Descriptors::new(vec![a, b, c], None).expect("valid")
    }

    fn names(answer: &Answer) -> Vec<String> {
        match answer {
            Answer::Files(files) => files
                .iter()
                .map(|bytes| {
                    FileDescriptorProto::decode_from_slice(bytes)
                        .expect("a file")
                        .name
                        .unwrap_or_default()
                })
                .collect(),
            other => panic!("not files: {other:?}"),
        }
    }

    #[test]
    fn files_come_with_their_imports_once_per_stream() {
        let descriptors = chain();
        let mut sent = Sent::new();
        let first = descriptors.file_by_filename("c.proto", &mut sent);
        assert_eq!(names(&first), ["c.proto", "b.proto", "a.proto"]);
        // Already sent: only the file asked for.
        let again = descriptors.file_by_filename("b.proto", &mut sent);
        assert_eq!(names(&again), ["b.proto"]);
        // A fresh stream gets everything again.
        let fresh = descriptors.file_by_filename("b.proto", &mut Sent::new());
        assert_eq!(names(&fresh), ["b.proto", "a.proto"]);
    }

    #[test]
    fn symbols_resolve_to_their_files() {
        let descriptors = chain();
        for (symbol, file) in [
            ("x.A", "a.proto"),
            (".x.A", "a.proto"),
            ("x.A.Inner", "a.proto"),
            ("x.A.count", "a.proto"),
            ("x.B", "b.proto"),
            ("y.S", "c.proto"),
        ] {
            let answer = descriptors.file_containing_symbol(symbol, &mut Sent::new());
            assert_eq!(names(&answer)[0], file, "{symbol}");
        }
        for unknown in ["x.Nope", "x.A.nope", "", "x", "..", "y.S.Nope"] {
            assert!(
                matches!(
                    descriptors.file_containing_symbol(unknown, &mut Sent::new()),
                    Answer::Error {
                        code: Code::NotFound,
                        ..
                    }
                ),
                "{unknown:?}"
            );
        }
    }

    #[test]
    fn services_default_to_every_declared_one() {
        assert_eq!(chain().services(), ["y.S"]);
        let listed = Descriptors::new(
            vec![file("a.proto", "x", &[])],
            Some(vec!["b.B".into(), "a.A".into(), "a.A".into()]),
        )
        .expect("valid");
        assert_eq!(listed.services(), ["a.A", "b.B"]);
    }

    #[test]
    fn extensions_of_unknown_types_are_not_found() {
        let descriptors = chain();
        assert_eq!(
            descriptors.extension_numbers("x.A"),
            Answer::ExtensionNumbers {
                base_type_name: "x.A".into(),
                numbers: vec![]
            }
        );
        assert!(matches!(
            descriptors.extension_numbers("x.Nope"),
            Answer::Error { .. }
        ));
        assert!(matches!(
            descriptors.file_containing_extension("x.A", 100, &mut Sent::new()),
            Answer::Error { .. }
        ));
        assert!(matches!(
            descriptors.file_containing_extension("x.A", -1, &mut Sent::new()),
            Answer::Error { .. }
        ));
    }

    #[test]
    fn missing_imports_are_reported() {
        let error = Descriptors::new(vec![file("b.proto", "x", &["a.proto"])], None)
            .expect_err("a.proto is missing");
        assert!(
            matches!(&error, Error::MissingImport { file, import } if file == "b.proto" && import == "a.proto"),
            "{error}"
        );
    }
}
