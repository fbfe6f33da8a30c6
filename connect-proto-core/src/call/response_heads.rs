//! The header blocks every successful call of a server writes, rendered once per server
//! configuration: the head's content type and accepted compressions (one block per content
//! type), and gRPC's `grpc-status: 0`. A call with nothing of its own to add starts its head or
//! trailers from a clone of its block (no header name hashed, no slot looked up); one with
//! more (a response compression, application metadata, trailers in the head) builds its map
//! the same way the blocks were built, sized for everything it will hold.

use std::borrow::Cow;

use http::{HeaderMap, HeaderValue};

use crate::codec::Codec;
use crate::internal::grpc::encode_status;
use crate::internal::headers::names::CONTENT_TYPE;
use crate::internal::metadata::copy_metadata;
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
            success_head(content_type, accept_encoding, None, &HeaderMap::new(), 0)
        });
        ResponseHeads {
            success,
            grpc_ok: grpc_ok(&HeaderMap::new()),
            accept_encoding: accept_encoding.cloned(),
        }
    }

    /// A successful head's headers for `content_type`: the protocol's (with `encoding`, the
    /// response compression, if any), then the application's `metadata`, with room for
    /// `extra` more (trailers the caller adds to the head).
    pub(crate) fn success(
        &self,
        content_type: ContentType,
        encoding: Option<&'static str>,
        metadata: &HeaderMap,
        extra: usize,
    ) -> HeaderMap {
        if encoding.is_none() && metadata.is_empty() && extra == 0 {
            // A clone is sized for what it holds: only when nothing is added.
            return self.success[slot(content_type)].clone();
        }
        success_head(
            content_type,
            self.accept_encoding.as_ref(),
            encoding,
            metadata,
            extra,
        )
    }

    /// The trailers of a gRPC call that succeeded, with the application's `trailers`: the
    /// rendered block itself when there are none (cloned only by a caller that needs a map of
    /// its own; gRPC-Web serializes it as it is).
    pub(crate) fn grpc_ok(&self, trailers: &HeaderMap) -> Cow<'_, HeaderMap> {
        if trailers.is_empty() {
            return Cow::Borrowed(&self.grpc_ok);
        }
        Cow::Owned(grpc_ok(trailers))
    }

    /// The compressions the server accepts, as its accept headers name them.
    pub(crate) fn accept_encoding(&self) -> Option<&HeaderValue> {
        self.accept_encoding.as_ref()
    }
}

/// Builds a successful head's headers (see [`ResponseHeads::success`]).
fn success_head(
    content_type: ContentType,
    accept_encoding: Option<&HeaderValue>,
    encoding: Option<&'static str>,
    metadata: &HeaderMap,
    extra: usize,
) -> HeaderMap {
    let mut headers = map_for(3 + metadata.len() + extra);
    headers.insert(CONTENT_TYPE, content_type.header_value());
    let (encoding_header, accept_header) = content_type.form.compression_headers();
    if let Some(name) = encoding {
        headers.insert(encoding_header, HeaderValue::from_static(name));
    }
    if let Some(value) = accept_encoding {
        headers.insert(accept_header, value.clone());
    }
    copy_metadata(metadata, &mut headers);
    headers
}

/// A map for up to `entries` headers. Small maps are made as `HeaderMap::new` makes them on
/// their first insert (room for six), as every response head was before these blocks: the
/// allocator sees the same sizes.
fn map_for(entries: usize) -> HeaderMap {
    if entries <= 6 {
        HeaderMap::new()
    } else {
        HeaderMap::with_capacity(entries)
    }
}

/// Builds a gRPC success's trailers with the application's `trailers`.
fn grpc_ok(trailers: &HeaderMap) -> HeaderMap {
    let mut block = map_for(1 + trailers.len());
    encode_status(None, trailers, &mut block);
    block
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
                    let block = heads.success(content_type, None, &HeaderMap::new(), 0);
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
            let ok = heads.grpc_ok(&HeaderMap::new());
            assert_eq!(ok.len(), 1);
            assert_eq!(ok[GRPC_STATUS], "0");
        }
    }

    #[test]
    fn a_head_with_more_holds_the_block_and_the_rest() {
        let accept = HeaderValue::from_static("gzip, zstd");
        let heads = ResponseHeads::new(Some(&accept));
        let mut metadata = HeaderMap::new();
        metadata.insert("x-app", HeaderValue::from_static("1"));
        metadata.insert(CONTENT_TYPE, HeaderValue::from_static("text/html"));
        for form in FORMS {
            let content_type = ContentType {
                form,
                codec: Codec::Proto,
            };
            let head = heads.success(content_type, Some("gzip"), &metadata, 2);
            let (encoding, accept_header) = form.compression_headers();
            assert_eq!(head[CONTENT_TYPE], content_type.header_value(), "{form:?}");
            assert_eq!(head[encoding], "gzip", "{form:?}");
            assert_eq!(head[accept_header], accept, "{form:?}");
            assert_eq!(head["x-app"], "1", "{form:?}");
            assert_eq!(
                head.len(),
                4,
                "{form:?}: the application's content type is not sent"
            );
            assert!(
                head.capacity() >= 6,
                "{form:?}: room for the trailers to come"
            );
        }
        let ok = heads.grpc_ok(&metadata);
        assert_eq!(ok[GRPC_STATUS], "0");
        assert_eq!(ok["x-app"], "1");
        assert_eq!(ok.len(), 2);
    }
}
