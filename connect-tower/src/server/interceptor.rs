//! Server interceptors: code that runs around every call, whatever its RPC type — read or
//! modify request headers and extensions, reject the call with a [`Status`] before the handler
//! runs, and add response headers.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use connect_proto_core::{Code, Status};
use http::HeaderMap;

use crate::message::RequestContext;

/// A server interceptor. Both hooks have no-op defaults; a hook that panics ends its call
/// with `internal` (the server keeps serving).
///
/// ```
/// use connect_tower::server::Interceptor;
/// use connect_tower::RequestContext;
/// use connect_proto_core::{Code, Status};
///
/// /// Rejects calls without an `authorization` header.
/// struct RequireAuth;
///
/// impl Interceptor for RequireAuth {
///     fn on_request(&self, ctx: &mut RequestContext) -> Result<(), Status> {
///         if ctx.headers().contains_key("authorization") {
///             Ok(())
///         } else {
///             Err(Status::new(Code::Unauthenticated, "missing credentials"))
///         }
///     }
/// }
/// ```
pub trait Interceptor: Send + Sync + 'static {
    /// Runs before the handler. An error ends the call with that status; the handler never
    /// runs.
    fn on_request(&self, ctx: &mut RequestContext) -> Result<(), Status> {
        let _ = ctx;
        Ok(())
    }

    /// Runs once, just before the response head is written, with the response headers the
    /// handler set.
    fn on_response_headers(&self, headers: &mut HeaderMap) {
        let _ = headers;
    }
}

/// An ordered list of interceptors (cheap to clone).
#[derive(Clone, Default)]
pub(crate) struct Interceptors(Arc<Vec<Arc<dyn Interceptor>>>);

impl Interceptors {
    pub(crate) fn push(&mut self, interceptor: Arc<dyn Interceptor>) {
        let mut list: Vec<_> = self.0.iter().cloned().collect();
        list.push(interceptor);
        self.0 = Arc::new(list);
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Request hooks in order; the first error wins. A hook that panics fails the call with
    /// `internal`.
    pub(crate) fn on_request(&self, ctx: &mut RequestContext) -> Result<(), Status> {
        self.0.iter().try_for_each(|i| {
            catch_unwind(AssertUnwindSafe(|| i.on_request(ctx)))
                .unwrap_or_else(|_| Err(Status::new(Code::Internal, "an interceptor panicked")))
        })
    }

    /// Response-header hooks in reverse order (the outermost interceptor sees the final map).
    /// A hook that panics fails the call with `internal`.
    pub(crate) fn on_response_headers(&self, headers: &mut HeaderMap) -> Result<(), Status> {
        for interceptor in self.0.iter().rev() {
            catch_unwind(AssertUnwindSafe(|| {
                interceptor.on_response_headers(headers)
            }))
            .map_err(|_| Status::new(Code::Internal, "an interceptor panicked"))?;
        }
        Ok(())
    }
}

impl std::fmt::Debug for Interceptors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Interceptors({})", self.0.len())
    }
}
