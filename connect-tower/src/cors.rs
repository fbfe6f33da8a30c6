//! CORS for browser clients (feature `cors`): a tower-http [`CorsLayer`] that allows what
//! Connect and gRPC-Web need (the lists of [`connect_proto_core::cors`]), for the origins you
//! name.
//!
//! ```
//! use connect_tower::cors::{self, AllowOrigin};
//! use http::HeaderValue;
//!
//! let layer = cors::layer(AllowOrigin::list([HeaderValue::from_static("https://app.example")]));
//! // ServiceBuilder::new().layer(layer).service(connect_service), or axum's Router::layer.
//! # let _ = layer;
//! ```
//!
//! Add the application's own headers with `CorsLayer`'s builder methods: request headers it
//! sends (`authorization`, say) to the allowed headers, response headers and `trailer-`
//! prefixed Connect unary trailers it reads to the exposed ones. Avoid a wildcard origin for
//! calls that carry credentials (browsers refuse it).

use std::time::Duration;

use connect_proto_core::cors::{
    ALLOWED_HEADERS, ALLOWED_METHODS, EXPOSED_HEADERS, PREFLIGHT_MAX_AGE_SECONDS,
};
use http::HeaderName;
pub use tower_http::cors::{AllowOrigin, CorsLayer};

/// A CORS layer for Connect and gRPC-Web calls from `origins`: preflights (`OPTIONS`) are
/// answered with the protocols' methods and request headers and a 2-hour max age, and
/// responses expose the headers browser clients read.
pub fn layer(origins: impl Into<AllowOrigin>) -> CorsLayer {
    CorsLayer::new()
        .allow_origin(origins)
        .allow_methods(ALLOWED_METHODS)
        .allow_headers(ALLOWED_HEADERS.map(HeaderName::from_static))
        .expose_headers(EXPOSED_HEADERS.map(HeaderName::from_static))
        .max_age(Duration::from_secs(u64::from(PREFLIGHT_MAX_AGE_SECONDS)))
}
