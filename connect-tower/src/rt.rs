//! The runtime hooks the tower layer needs: a clock and timers, supplied by a runtime adapter
//! (`connect-tokio-hyper` provides one for Tokio).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

/// A future that completes at a deadline.
pub type Sleep = Pin<Box<dyn Future<Output = ()> + Send + Sync>>;

/// A clock and timer source.
pub trait Timer: Send + Sync + 'static {
    /// The current time.
    fn now(&self) -> Instant;

    /// A future that completes at `deadline` (at once if it has passed).
    fn sleep_until(&self, deadline: Instant) -> Sleep;
}

/// A shared timer handle.
#[derive(Clone)]
pub struct SharedTimer(pub(crate) Option<Arc<dyn Timer>>);

impl SharedTimer {
    /// A handle to `timer`.
    pub fn new(timer: impl Timer) -> Self {
        SharedTimer(Some(Arc::new(timer)))
    }

    /// No timer: deadlines are still parsed and visible to handlers, but not enforced.
    pub fn none() -> Self {
        SharedTimer(None)
    }

    /// The current time (the system clock when no timer is installed).
    pub fn now(&self) -> Instant {
        match &self.0 {
            Some(timer) => timer.now(),
            None => Instant::now(),
        }
    }

    /// A sleep until `deadline`, or `None` without a timer.
    pub fn sleep_until(&self, deadline: Instant) -> Option<Sleep> {
        self.0.as_ref().map(|t| t.sleep_until(deadline))
    }

    /// Whether a timer is installed.
    pub fn is_some(&self) -> bool {
        self.0.is_some()
    }
}

impl fmt::Debug for SharedTimer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_some() {
            "SharedTimer(..)"
        } else {
            "SharedTimer(none)"
        })
    }
}
