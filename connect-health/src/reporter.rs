//! [`HealthReporter`]: the statuses the service reports, and the watches that follow them.
//!
//! One mutex guards the statuses and the registered watches; it is only held for map updates
//! and waker bookkeeping, never across an `await`, and wakers are woken after it is released.
//! Watches are plain std wakers in slots (freed when a watch is dropped), so no runtime is
//! needed and a finished `Watch` call leaves nothing behind.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use crate::ServingStatus;

/// The handle a server uses to report the health of its services: cheap to clone, shareable
/// across threads, and read by every [`HealthService`](crate::HealthService) made from it.
///
/// Services are named as health clients ask for them, conventionally by their fully-qualified
/// protobuf name (`acme.v1.Greeter`); the empty name `""` is the server as a whole, which a new
/// reporter reports as `SERVING` (as grpc-go's health server does), so a bare probe succeeds
/// as soon as the server runs. Other services are unknown (`Check` answers `not_found`,
/// `Watch` reports `SERVICE_UNKNOWN`) until a status is set.
///
/// ```
/// use connect_health::{HealthReporter, ServingStatus};
///
/// let health = HealthReporter::new();
/// assert_eq!(health.status(""), Some(ServingStatus::SERVING));
/// health.set_serving("acme.v1.Greeter");
/// health.set_not_serving("acme.v1.Greeter"); // e.g. its database is unreachable
/// assert_eq!(health.status("acme.v1.Greeter"), Some(ServingStatus::NOT_SERVING));
/// health.clear("acme.v1.Greeter");
/// assert_eq!(health.status("acme.v1.Greeter"), None);
/// ```
#[derive(Clone)]
pub struct HealthReporter {
    shared: Arc<Shared>,
}

struct Shared {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Known services and their status (never `SERVICE_UNKNOWN`: that is the absence).
    statuses: BTreeMap<String, ServingStatus>,
    /// Registered watches, in slots their owners free when dropped.
    watchers: Vec<Option<Watcher>>,
    free: Vec<usize>,
}

struct Watcher {
    service: String,
    /// The service's status changed since the watch last looked.
    changed: bool,
    waker: Option<Waker>,
}

impl Default for HealthReporter {
    fn default() -> Self {
        HealthReporter::new()
    }
}

impl HealthReporter {
    /// A reporter that knows only the server as a whole (`""`), as `SERVING`.
    pub fn new() -> Self {
        let reporter = HealthReporter {
            shared: Arc::new(Shared {
                state: Mutex::new(State::default()),
            }),
        };
        reporter.set_serving("");
        reporter
    }

    /// Reports `service` as `SERVING`.
    pub fn set_serving(&self, service: impl Into<String>) {
        self.set_status(service, ServingStatus::SERVING);
    }

    /// Reports `service` as `NOT_SERVING`.
    pub fn set_not_serving(&self, service: impl Into<String>) {
        self.set_status(service, ServingStatus::NOT_SERVING);
    }

    /// Reports `service` with `status`. Watches of the service see the new status (if it
    /// changed). `SERVICE_UNKNOWN` is the same as [`clear`](Self::clear): the service becomes
    /// unknown.
    pub fn set_status(&self, service: impl Into<String>, status: ServingStatus) {
        let service = service.into();
        if status == ServingStatus::SERVICE_UNKNOWN {
            self.clear(&service);
            return;
        }
        let wakers = {
            let mut state = self.shared.lock();
            let previous = state.statuses.insert(service.clone(), status);
            if previous == Some(status) {
                return;
            }
            state.changed(&service)
        };
        wakers.into_iter().for_each(Waker::wake);
    }

    /// Forgets `service`: `Check` answers `not_found` for it and watches see
    /// `SERVICE_UNKNOWN` (and stay open, so a later status reaches them).
    pub fn clear(&self, service: &str) {
        let wakers = {
            let mut state = self.shared.lock();
            if state.statuses.remove(service).is_none() {
                return;
            }
            state.changed(service)
        };
        wakers.into_iter().for_each(Waker::wake);
    }

    /// The status reported for `service`, `None` if it is unknown.
    pub fn status(&self, service: &str) -> Option<ServingStatus> {
        self.shared.lock().statuses.get(service).copied()
    }

    /// Every known service and its status, ordered by name.
    pub fn statuses(&self) -> Vec<(String, ServingStatus)> {
        let state = self.shared.lock();
        state
            .statuses
            .iter()
            .map(|(name, status)| (name.clone(), *status))
            .collect()
    }

    /// Starts following `service`: the watch yields its status now, then again after each
    /// change.
    pub(crate) fn watch(&self, service: String) -> Watch {
        let mut state = self.shared.lock();
        let watcher = Watcher {
            service,
            // The first poll reports the current status.
            changed: true,
            waker: None,
        };
        let slot = match state.free.pop() {
            Some(slot) => {
                state.watchers[slot] = Some(watcher);
                slot
            }
            None => {
                state.watchers.push(Some(watcher));
                state.watchers.len() - 1
            }
        };
        Watch {
            shared: self.shared.clone(),
            slot,
        }
    }

    #[cfg(test)]
    fn watchers(&self) -> usize {
        let state = self.shared.lock();
        state.watchers.iter().flatten().count()
    }
}

impl fmt::Debug for HealthReporter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.shared.lock();
        f.debug_struct("HealthReporter")
            .field("statuses", &state.statuses)
            .field("watches", &state.watchers.iter().flatten().count())
            .finish()
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // The state stays consistent through a panic elsewhere (every update is one map
        // operation), so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl State {
    /// Marks the watches of `service` changed and returns their wakers, to wake once the lock
    /// is released.
    fn changed(&mut self, service: &str) -> Vec<Waker> {
        self.watchers
            .iter_mut()
            .flatten()
            .filter(|w| w.service == service)
            .filter_map(|w| {
                w.changed = true;
                w.waker.take()
            })
            .collect()
    }
}

/// A registration following one service's status; frees its slot when dropped.
pub(crate) struct Watch {
    shared: Arc<Shared>,
    slot: usize,
}

impl Watch {
    /// The service's status (`SERVICE_UNKNOWN` when unknown) if it changed since the last
    /// call (or this is the first), else registers `cx`'s waker.
    pub(crate) fn poll_status(&mut self, cx: &mut Context<'_>) -> Poll<ServingStatus> {
        let mut state = self.shared.lock();
        let State {
            statuses, watchers, ..
        } = &mut *state;
        let Some(Some(watcher)) = watchers.get_mut(self.slot) else {
            // Unreachable: the slot is ours until drop.
            return Poll::Pending;
        };
        if watcher.changed {
            watcher.changed = false;
            let status = statuses
                .get(&watcher.service)
                .copied()
                .unwrap_or(ServingStatus::SERVICE_UNKNOWN);
            return Poll::Ready(status);
        }
        match &mut watcher.waker {
            Some(waker) if waker.will_wake(cx.waker()) => {}
            entry => *entry = Some(cx.waker().clone()),
        }
        Poll::Pending
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let mut state = self.shared.lock();
        if let Some(entry) = state.watchers.get_mut(self.slot) {
            *entry = None;
            state.free.push(self.slot);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn poll(watch: &mut Watch) -> Poll<ServingStatus> {
        watch.poll_status(&mut Context::from_waker(Waker::noop()))
    }

    #[test]
    fn the_server_as_a_whole_starts_serving() {
        let health = HealthReporter::new();
        assert_eq!(health.status(""), Some(ServingStatus::SERVING));
        assert_eq!(health.status("x"), None);
        assert_eq!(
            health.statuses(),
            vec![(String::new(), ServingStatus::SERVING)]
        );
    }

    #[test]
    fn service_unknown_clears() {
        let health = HealthReporter::new();
        health.set_serving("a");
        health.set_status("a", ServingStatus::SERVICE_UNKNOWN);
        assert_eq!(health.status("a"), None);
    }

    #[test]
    fn watches_see_the_current_status_then_changes() {
        let health = HealthReporter::new();
        let mut watch = health.watch("a".into());
        assert_eq!(
            poll(&mut watch),
            Poll::Ready(ServingStatus::SERVICE_UNKNOWN)
        );
        assert_eq!(poll(&mut watch), Poll::Pending);
        health.set_serving("b");
        assert_eq!(poll(&mut watch), Poll::Pending, "another service");
        health.set_serving("a");
        health.set_serving("a");
        assert_eq!(poll(&mut watch), Poll::Ready(ServingStatus::SERVING));
        assert_eq!(poll(&mut watch), Poll::Pending);
        health.set_not_serving("a");
        health.set_serving("a");
        // Changes in between are coalesced; the watch sees the latest status.
        assert_eq!(poll(&mut watch), Poll::Ready(ServingStatus::SERVING));
        health.clear("a");
        assert_eq!(
            poll(&mut watch),
            Poll::Ready(ServingStatus::SERVICE_UNKNOWN)
        );
    }

    #[test]
    fn changes_wake_the_watch() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        use std::task::Wake;

        struct Counter(AtomicUsize);
        impl Wake for Counter {
            fn wake(self: Arc<Self>) {
                self.0.fetch_add(1, Ordering::SeqCst);
            }
        }
        let counter = Arc::new(Counter(AtomicUsize::new(0)));
        let waker = Waker::from(counter.clone());
        let health = HealthReporter::new();
        let mut watch = health.watch("a".into());
        let mut cx = Context::from_waker(&waker);
        assert!(watch.poll_status(&mut cx).is_ready());
        assert!(watch.poll_status(&mut cx).is_pending());
        health.set_serving("other");
        assert_eq!(counter.0.load(Ordering::SeqCst), 0);
        health.set_serving("a");
        assert_eq!(counter.0.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn dropped_watches_free_their_slots() {
        let health = HealthReporter::new();
        for _ in 0..100 {
            let mut watch = health.watch("a".into());
            let _ = poll(&mut watch);
        }
        assert_eq!(health.watchers(), 0);
        assert_eq!(health.shared.lock().watchers.len(), 1);
        let _kept = health.watch("a".into());
        assert_eq!(health.watchers(), 1);
    }
}
