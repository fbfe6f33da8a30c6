//! The header blocks every successful call of a server writes, rendered once per server
//! configuration: the head's content type and accepted compressions (one block per content
//! type), and gRPC's `grpc-status: 0`. A call starts its head or trailers from a clone of
//! its block (no header name hashed, no slot looked up) and adds only what is its own.

use http::{HeaderMap, HeaderValue};

use crate::codec::Codec;
use crate::internal::grpc::encode_status;
use crate::internal::headers::names::CONTENT_TYPE;
use crate::protocol::{ContentType, WireForm};

const FORMS: [WireForm; 5] = WireForm::ALL;
const CODECS: [Codec; 2] = [Codec::Proto, Codec::Json];

/// A server configuration's rendered header blocks.
#[derive(Debug)]
pub(crate) struct ResponseHeads {
    /// Per content type (see `slot`): `content-type` and, if the server has compressions to
    /// offer, the form's accept header.
    success: [HeaderMap; FORMS.len() * CODECS.len()],
    /// The trailer block of a gRPC call that succeeded.
    grpc_ok: HeaderMap,
    /// The compressions the server accepts (the value of every form's accept header).
    accept_encoding: Option<HeaderValue>,
}

impl ResponseHeads {
    /// The blocks of a server that accepts `accept_encoding` (`None`: identity only).
    pub(crate) fn new(accept_encoding: Option<&HeaderValue>) -> Self {
        let success = std::array::from_fn(|slot| {
            let content_type = ContentType {
                form: FORMS[slot / CODECS.len()],
                codec: CODECS[slot % CODECS.len()],
            };
            debug_assert_eq!(self::slot(content_type), slot);
            let mut headers = HeaderMap::new();
            headers.insert(CONTENT_TYPE, content_type.header_value());
            if let Some(value) = accept_encoding {
                headers.insert(content_type.form.compression_headers().1, value.clone());
            }
            headers
        });
        let mut grpc_ok = HeaderMap::new();
        encode_status(None, &HeaderMap::new(), &mut grpc_ok);
        ResponseHeads {
            success,
            grpc_ok,
            accept_encoding: accept_encoding.cloned(),
        }
    }

    /// A successful head's protocol headers for `content_type`.
    pub(crate) fn success(&self, content_type: ContentType) -> HeaderMap {
        self.success[slot(content_type)].clone()
    }

    /// The trailers (before application metadata) of a gRPC call that succeeded.
    pub(crate) fn grpc_ok(&self) -> HeaderMap {
        self.grpc_ok.clone()
    }

    /// The compressions the server accepts, as its accept headers name them.
    pub(crate) fn accept_encoding(&self) -> Option<&HeaderValue> {
        self.accept_encoding.as_ref()
    }
}

/// The index of `content_type`'s block.
fn slot(content_type: ContentType) -> usize {
    let form = match content_type.form {
        WireForm::ConnectUnary => 0,
        WireForm::ConnectStreaming => 1,
        WireForm::Grpc => 2,
        WireForm::GrpcWeb => 3,
        WireForm::GrpcWebText => 4,
    };
    let codec = match content_type.codec {
        Codec::Proto => 0,
        Codec::Json => 1,
    };
    form * CODECS.len() + codec
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::internal::headers::names::GRPC_STATUS;

    #[test]
    fn each_content_type_has_its_own_block() {
        let accept = HeaderValue::from_static("gzip");
        for heads in [ResponseHeads::new(Some(&accept)), ResponseHeads::new(None)] {
            for form in FORMS {
                for codec in CODECS {
                    let content_type = ContentType { form, codec };
                    let block = heads.success(content_type);
                    assert_eq!(
                        block.get(CONTENT_TYPE),
                        Some(&content_type.header_value()),
                        "{content_type:?}"
                    );
                    let accept_header = form.compression_headers().1;
                    assert_eq!(block.get(accept_header), heads.accept_encoding());
                    let expected = 1 + usize::from(heads.accept_encoding().is_some());
                    assert_eq!(block.len(), expected, "{content_type:?}");
                }
            }
            let ok = heads.grpc_ok();
            assert_eq!(ok.len(), 1);
            assert_eq!(ok[GRPC_STATUS], "0");
        }
    }
}
