//! The waker a driver polls a shared-state handler with: a wake notes that the handler has
//! something new to look at and wakes the task that drives the call. The driver polls the
//! handler only when it was woken, not every time the response body is polled (once per
//! message written, the handler would otherwise be polled again for nothing: its request
//! body, its send room and its own futures are where they were).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Wake, Waker};

/// What a handler's wakes reach.
struct Shared {
    /// Set by a wake, cleared when the driver decides to poll the handler.
    woken: AtomicBool,
    /// The waker of the task driving the call.
    task: Mutex<Option<Waker>>,
}

impl Wake for Shared {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::Release);
        let task = self.task.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(task) = &*task {
            task.wake_by_ref();
        }
    }
}

/// The handler's side: its waker, and whether it is due a poll.
pub(crate) struct HandlerWake {
    shared: Arc<Shared>,
    waker: Waker,
    /// The driving task's waker as last handed to `shared` (compared without its lock).
    registered: Option<Waker>,
}

impl HandlerWake {
    /// A handler not polled yet: due at once.
    pub(crate) fn new() -> Self {
        let shared = Arc::new(Shared {
            woken: AtomicBool::new(true),
            task: Mutex::new(None),
        });
        let waker = Waker::from(shared.clone());
        HandlerWake {
            shared,
            waker,
            registered: None,
        }
    }

    /// Whether the handler was woken since its last poll began, with the task polling
    /// through `cx` as the one its next wake reaches (registered before the flag is read: a
    /// wake after the read reaches it).
    pub(crate) fn is_due(&mut self, cx: &Context<'_>) -> bool {
        let current = self
            .registered
            .as_ref()
            .is_some_and(|waker| waker.will_wake(cx.waker()));
        if !current {
            let waker = cx.waker().clone();
            *self
                .shared
                .task
                .lock()
                .unwrap_or_else(PoisonError::into_inner) = Some(waker.clone());
            self.registered = Some(waker);
        }
        self.shared.woken.load(Ordering::Acquire)
    }

    /// The handler is about to be polled: wakes from now on make it due again.
    pub(crate) fn begin_poll(&self) {
        self.shared.woken.store(false, Ordering::Release);
    }

    /// The waker to poll the handler with.
    pub(crate) fn waker(&self) -> &Waker {
        &self.waker
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    struct CountingWake(AtomicUsize);

    impl Wake for CountingWake {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn counting() -> (Arc<CountingWake>, Waker) {
        let count = Arc::new(CountingWake(AtomicUsize::new(0)));
        let waker = Waker::from(count.clone());
        (count, waker)
    }

    /// A handler found due at once (with `cx`'s task registered), whose first poll began.
    fn first_poll_begun(cx: &Context<'_>) -> HandlerWake {
        let mut wake = HandlerWake::new();
        assert!(wake.is_due(cx));
        assert!(wake.is_due(cx), "looking does not clear it");
        wake.begin_poll();
        wake
    }

    #[test]
    fn a_new_handler_is_due_until_polled_then_only_after_a_wake() {
        let (count, task) = counting();
        let cx = Context::from_waker(&task);
        let mut wake = first_poll_begun(&cx);
        assert!(!wake.is_due(&cx));
        wake.waker().wake_by_ref();
        assert_eq!(count.0.load(Ordering::SeqCst), 1, "the task is woken");
        assert!(wake.is_due(&cx));
        wake.begin_poll();
        assert!(!wake.is_due(&cx));
        // A clone the handler kept wakes the same way.
        let kept = wake.waker().clone();
        kept.wake();
        assert_eq!(count.0.load(Ordering::SeqCst), 2);
        assert!(wake.is_due(&cx));
    }

    #[test]
    fn a_wake_during_a_poll_makes_the_handler_due_again() {
        let (_count, task) = counting();
        let cx = Context::from_waker(&task);
        let mut wake = first_poll_begun(&cx);
        // The handler wakes itself while polled (a yield).
        wake.waker().wake_by_ref();
        assert!(wake.is_due(&cx));
    }

    #[test]
    fn wakes_reach_the_task_that_looked_last() {
        let (first, first_waker) = counting();
        let (second, second_waker) = counting();
        let mut wake = first_poll_begun(&Context::from_waker(&first_waker));
        assert!(!wake.is_due(&Context::from_waker(&second_waker)));
        wake.waker().wake_by_ref();
        assert_eq!(first.0.load(Ordering::SeqCst), 0);
        assert_eq!(second.0.load(Ordering::SeqCst), 1);
        assert!(wake.is_due(&Context::from_waker(&second_waker)));
    }
}
