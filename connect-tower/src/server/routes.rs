//! [`Routes`]: several services behind one [`Dispatch`], routed by path through a table built
//! once.

use std::borrow::Cow;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use connect_proto_core::MethodSpec;

use super::{Dispatch, IncomingCall};

/// Routes calls to several services. Paths are looked up in a hash table built as services are
/// added; a path served twice is served by the service added last.
#[derive(Clone, Default)]
pub struct Routes {
    services: Vec<Arc<dyn Dispatch>>,
    routes: HashMap<Cow<'static, str>, (usize, MethodSpec)>,
    methods: Vec<MethodSpec>,
}

impl Routes {
    /// An empty router (every call is `unimplemented`).
    pub fn new() -> Self {
        Routes::default()
    }

    /// Adds a service.
    #[must_use]
    pub fn service(mut self, service: impl Dispatch) -> Self {
        let index = self.services.len();
        for spec in service.methods() {
            self.routes.insert(spec.path.clone(), (index, spec.clone()));
        }
        self.services.push(Arc::new(service));
        self.methods = self.routes.values().map(|(_, spec)| spec.clone()).collect();
        self.methods.sort_by(|a, b| a.path.cmp(&b.path));
        self
    }
}

impl Dispatch for Routes {
    fn methods(&self) -> &[MethodSpec] {
        &self.methods
    }

    fn method(&self, path: &str) -> Option<MethodSpec> {
        self.routes.get(path).map(|(_, spec)| spec.clone())
    }

    fn dispatch(&self, call: IncomingCall) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        match self.routes.get(call.method().path()) {
            Some((index, _)) => self.services[*index].dispatch(call),
            None => Box::pin(super::unimplemented(call)),
        }
    }
}

impl std::fmt::Debug for Routes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Routes")
            .field("methods", &self.routes.len())
            .finish()
    }
}
