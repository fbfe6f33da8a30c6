//! The protoc plugin protocol: `CodeGeneratorRequest` bytes in, `CodeGeneratorResponse` bytes out.
//!
//! The `protoc-gen-connect-rust` binary is a thin shell around [`handle`]; it is public so other
//! front-ends (a `buf` plugin wrapper, tests) can drive the same code path.

use buffa::Message;
use buffa_descriptor::generated::compiler::code_generator_response::{Feature, File};
use buffa_descriptor::generated::compiler::{CodeGeneratorRequest, CodeGeneratorResponse};
use buffa_descriptor::generated::descriptor::Edition;

use crate::{Error, Options, generate};

/// The oldest edition the generator accepts.
pub const MINIMUM_EDITION: Edition = Edition::EDITION_PROTO2;
/// The newest edition the generator accepts (buffa resolves 2024 like 2023).
pub const MAXIMUM_EDITION: Edition = Edition::EDITION_2024;

/// What a plugin run produced.
#[derive(Debug)]
pub struct Outcome {
    /// The response for protoc. On failure it carries only `error` (and the feature flags).
    pub response: CodeGeneratorResponse,
    /// Non-fatal diagnostics, for stderr (protoc shows a plugin's stderr).
    pub warnings: Vec<String>,
}

impl Outcome {
    /// The response, encoded for stdout.
    pub fn encode(&self) -> Vec<u8> {
        self.response.encode_to_vec()
    }
}

/// Runs the generator on an encoded `CodeGeneratorRequest`.
///
/// Never fails: a malformed request, a bad parameter or a generation error becomes the
/// response's `error`, which protoc reports and turns into a non-zero exit.
pub fn handle(request: &[u8]) -> Outcome {
    match buffa_codegen::decode_request(request) {
        Ok(request) => respond(&request),
        Err(message) => failure(Error::Decode(message)),
    }
}

/// Runs the generator on a decoded request.
pub fn respond(request: &CodeGeneratorRequest) -> Outcome {
    let result = Options::from_parameter(request.parameter.as_deref().unwrap_or(""))
        .and_then(|options| generate(&request.proto_file, &request.file_to_generate, &options));
    match result {
        Ok(generated) => Outcome {
            response: CodeGeneratorResponse {
                file: generated
                    .files
                    .into_iter()
                    .map(|f| File {
                        name: Some(f.name),
                        content: Some(f.content),
                        ..Default::default()
                    })
                    .collect(),
                ..base_response()
            },
            warnings: generated.warnings,
        },
        Err(error) => failure(error),
    }
}

fn failure(error: Error) -> Outcome {
    Outcome {
        response: CodeGeneratorResponse {
            error: Some(error.to_string()),
            ..base_response()
        },
        warnings: Vec::new(),
    }
}

/// A response announcing proto3 `optional` and editions support.
fn base_response() -> CodeGeneratorResponse {
    let features =
        Feature::FEATURE_PROTO3_OPTIONAL as u64 | Feature::FEATURE_SUPPORTS_EDITIONS as u64;
    CodeGeneratorResponse {
        supported_features: Some(features),
        minimum_edition: Some(MINIMUM_EDITION as i32),
        maximum_edition: Some(MAXIMUM_EDITION as i32),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_becomes_an_error_response() {
        let outcome = handle(&[0xff, 0xff, 0xff]);
        assert!(outcome.response.error.is_some());
        assert_eq!(outcome.response.supported_features, Some(3));
    }

    #[test]
    fn bad_parameter_becomes_an_error_response() {
        let request = CodeGeneratorRequest {
            parameter: Some("nonsense=1".into()),
            ..Default::default()
        };
        let error = respond(&request).response.error.unwrap_or_default();
        assert!(error.contains("unknown option 'nonsense'"), "{error}");
    }

    #[test]
    fn empty_request_generates_only_the_module_tree() {
        let outcome = handle(&CodeGeneratorRequest::default().encode_to_vec());
        assert_eq!(outcome.response.error, None);
        let names: Vec<_> = outcome
            .response
            .file
            .iter()
            .filter_map(|f| f.name.clone())
            .collect();
        assert_eq!(names, vec!["_include.rs".to_string()]);
        assert_eq!(outcome.response.maximum_edition, Some(1001));
    }
}
