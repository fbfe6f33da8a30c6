//! Mounting services in an [`axum::Router`] (feature `axum`).
//!
//! [`ConnectRouterExt::connect_service`] adds one route per method of a [`ConnectService`]
//! at the method's own path (`/package.Service/Method`, every HTTP method, so Connect GET
//! works too), next to the application's other routes. The routes are ordinary axum routes:
//! they live in a `Router<S>` whatever its state type, and layers added to the router with
//! `Router::layer` after mounting wrap RPCs too. Handlers keep their own state in the service
//! value (axum's `State` is for axum handlers); request extensions set by layers reach
//! handlers through [`RequestContext::extensions`](crate::RequestContext::extensions).
//!
//! Paths that no route serves get axum's fallback (404 unless set); a gRPC client reads an
//! HTTP 404 as `unimplemented`, a Connect client as `unimplemented` too. Do not mount with
//! `nest_service`: axum strips the prefix it nests under, and every call would miss.
//!
//! ```
//! use axum::Router;
//! use axum::routing::get;
//! use connect_tower::axum::ConnectRouterExt;
//! use connect_tower::server::{ConnectService, Routes};
//!
//! #[derive(Clone)]
//! struct AppState {
//!     greeting: &'static str,
//! }
//!
//! let rpc = ConnectService::new(Routes::new()); // e.g. GreeterServer::new(MyGreeter)
//! let app: Router = Router::new()
//!     .route("/healthz", get(|axum::extract::State(state): axum::extract::State<AppState>| async move { state.greeting }))
//!     .connect_service(rpc)
//!     .with_state(AppState { greeting: "ok" });
//! # let _ = app;
//! ```

use connect_proto_core::MethodSpec;

use crate::server::{ConnectService, Dispatch};

/// Mounts [`ConnectService`]s in an [`axum::Router`].
pub trait ConnectRouterExt: Sized {
    /// Adds a route for every method of `service`, at the method's path.
    ///
    /// # Panics
    ///
    /// As `axum::Router::route_service` does: when a method's path is already routed.
    #[must_use]
    fn connect_service<D: Dispatch>(self, service: ConnectService<D>) -> Self;
}

impl<S> ConnectRouterExt for axum::Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    fn connect_service<D: Dispatch>(self, service: ConnectService<D>) -> Self {
        let paths: Vec<MethodSpec> = service.methods().to_vec();
        paths.iter().fold(self, |router, spec| {
            router.route_service(spec.path(), service.clone())
        })
    }
}
