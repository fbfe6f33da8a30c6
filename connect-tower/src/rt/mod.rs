//! The runtime hooks the tower layer needs, and the process-wide defaults that make them
//! impossible to forget:
//!
//! - [`Timer`]: a clock and sleeps. Every server and client enforces deadlines with one; by
//!   default the [`SystemTimer`] (a single lazily started background thread, whatever the
//!   async runtime), or a runtime's own (`connect-tokio-hyper` provides `TokioTimer`).
//! - [`current_deadline`]: the deadline of the call whose handler is running on this thread,
//!   which calls made from a handler inherit.
//! - [`ShutdownSignal`]: a server's graceful shutdown as handlers and calls see it.
//! - [`with_connection`] / [`current_connection`]: how an adapter hands a service (and any
//!   middleware in front of it) the connection a request arrived on.

mod connection_scope;
mod deadline_scope;
mod shutdown;
mod system_timer;

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

pub use connection_scope::{current_connection, with_connection};
pub use deadline_scope::current_deadline;
#[cfg(feature = "server")]
pub(crate) use deadline_scope::with_deadline;
pub use shutdown::{ShutdownSignal, ShutdownTrigger, ShutdownWatch};
pub use system_timer::SystemTimer;

/// A future that completes at a deadline.
pub type Sleep = Pin<Box<dyn Future<Output = ()> + Send + Sync>>;

/// A clock and timer source.
pub trait Timer: Send + Sync + 'static {
    /// The current time.
    fn now(&self) -> Instant;

    /// A future that completes at `deadline` (at once if it has passed).
    fn sleep_until(&self, deadline: Instant) -> Sleep;
}

/// A shared timer handle. The default is the [`SystemTimer`].
#[derive(Clone)]
pub struct SharedTimer(Arc<dyn Timer>);

impl SharedTimer {
    /// A handle to `timer`.
    pub fn new(timer: impl Timer) -> Self {
        SharedTimer(Arc::new(timer))
    }

    /// The current time.
    pub fn now(&self) -> Instant {
        self.0.now()
    }

    /// A sleep until `deadline`.
    pub fn sleep_until(&self, deadline: Instant) -> Sleep {
        self.0.sleep_until(deadline)
    }
}

impl Default for SharedTimer {
    fn default() -> Self {
        SharedTimer::new(SystemTimer::new())
    }
}

impl fmt::Debug for SharedTimer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SharedTimer(..)")
    }
}
