//! A server's shutdown as calls see it: [`ShutdownSignal`] (for handlers and the call driver)
//! and [`ShutdownTrigger`] (for the runtime adapter that runs the server).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

const RUNNING: u8 = 0;
const DRAINING: u8 = 1;
const FORCED: u8 = 2;

/// The shutdown of the server a call runs on, in two phases: **draining** (graceful shutdown
/// started: no new connections or streams, calls in flight may finish) and **forced** (the
/// drain deadline passed: calls still open end now with `unavailable`, which connect-tower
/// does by itself).
///
/// Handlers get it from [`RequestContext::shutdown`](crate::RequestContext::shutdown), to end
/// long streams with a status of their choosing once draining starts:
///
/// ```no_run
/// # async fn handler(ctx: &connect_tower::RequestContext) {
/// let shutdown = ctx.shutdown();
/// // e.g. in a `select!` next to the stream's work:
/// shutdown.draining().await;
/// // … send a last message, then end the stream …
/// # }
/// ```
#[derive(Clone, Default)]
pub struct ShutdownSignal(Option<Arc<State>>);

/// The adapter's side of a [`ShutdownSignal`]: moves every clone of the signal through the
/// phases.
#[derive(Clone)]
pub struct ShutdownTrigger(Arc<State>);

struct State {
    phase: AtomicU8,
    waiters: Mutex<Waiters>,
}

/// Registered wakers, in slots that their owners free when dropped.
#[derive(Default)]
struct Waiters {
    slots: Vec<Option<Waker>>,
    free: Vec<usize>,
}

impl ShutdownTrigger {
    /// A trigger and the signal it moves.
    pub fn new() -> (ShutdownTrigger, ShutdownSignal) {
        let state = Arc::new(State {
            phase: AtomicU8::new(RUNNING),
            waiters: Mutex::new(Waiters::default()),
        });
        (ShutdownTrigger(state.clone()), ShutdownSignal(Some(state)))
    }

    /// Another handle to the signal.
    pub fn signal(&self) -> ShutdownSignal {
        ShutdownSignal(Some(self.0.clone()))
    }

    /// Graceful shutdown started.
    pub fn drain(&self) {
        self.0.advance(DRAINING);
    }

    /// The drain deadline passed: calls still open end with `unavailable`.
    pub fn force(&self) {
        self.0.advance(FORCED);
    }
}

impl fmt::Debug for ShutdownTrigger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ShutdownTrigger")
            .field(&self.0.phase.load(Ordering::Acquire))
            .finish()
    }
}

impl ShutdownSignal {
    /// A signal that never fires (calls served outside any server with a shutdown).
    pub fn never() -> Self {
        ShutdownSignal(None)
    }

    /// Whether graceful shutdown has started (also true once forced).
    pub fn is_draining(&self) -> bool {
        self.phase() >= DRAINING
    }

    /// Whether the drain deadline has passed.
    pub fn is_forced(&self) -> bool {
        self.phase() >= FORCED
    }

    /// A reusable registration for polling this signal's phases (see [`ShutdownWatch`]).
    pub fn watch(&self) -> ShutdownWatch {
        ShutdownWatch::new(self.clone())
    }

    /// Completes when graceful shutdown starts (never, for [`never`](Self::never)).
    pub fn draining(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut watch = self.watch();
        std::future::poll_fn(move |cx| watch.poll_phase(cx, DRAINING))
    }

    /// Completes when the drain deadline passes.
    pub fn forced(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut watch = self.watch();
        std::future::poll_fn(move |cx| watch.poll_phase(cx, FORCED))
    }

    fn phase(&self) -> u8 {
        self.0
            .as_ref()
            .map_or(RUNNING, |state| state.phase.load(Ordering::Acquire))
    }
}

impl fmt::Debug for ShutdownSignal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let phase = match self.phase() {
            RUNNING => "running",
            DRAINING => "draining",
            _ => "forced",
        };
        f.debug_tuple("ShutdownSignal").field(&phase).finish()
    }
}

impl State {
    fn lock(&self) -> MutexGuard<'_, Waiters> {
        self.waiters.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn advance(&self, phase: u8) {
        if self.phase.fetch_max(phase, Ordering::AcqRel) >= phase {
            return;
        }
        let wakers: Vec<Waker> = self.lock().slots.iter().flatten().cloned().collect();
        wakers.into_iter().for_each(Waker::wake);
    }
}

/// A reusable registration to be woken when a [`ShutdownSignal`] reaches a phase, for loops
/// that poll the shutdown next to their other work (a connection's `select!`, a call's
/// driver); get one from [`ShutdownSignal::watch`]. Its slot is freed on drop, so long-lived
/// signals do not collect the wakers of finished calls or connections.
///
/// The watch keeps its own copy of the waker it registered: polled again by the same task,
/// it reads the phase and returns without taking the lock that every watcher of the signal
/// shares. As a [`Future`] it completes when the drain deadline passes (like
/// [`ShutdownSignal::forced`]).
pub struct ShutdownWatch {
    signal: ShutdownSignal,
    /// The registered slot and the waker stored in it.
    registered: Option<(usize, Waker)>,
}

impl ShutdownWatch {
    fn new(signal: ShutdownSignal) -> Self {
        ShutdownWatch {
            signal,
            registered: None,
        }
    }

    /// Whether the drain deadline has passed, by the phase alone (nothing is registered).
    pub fn is_forced(&self) -> bool {
        self.signal.is_forced()
    }

    /// Whether graceful shutdown has started, registering `cx`'s waker if not.
    pub fn poll_draining(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        self.poll_phase(cx, DRAINING)
    }

    /// Whether the drain deadline passed, registering `cx`'s waker if not.
    pub fn poll_forced(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        self.poll_phase(cx, FORCED)
    }

    fn poll_phase(&mut self, cx: &mut Context<'_>, phase: u8) -> Poll<()> {
        let Some(state) = &self.signal.0 else {
            return Poll::Pending;
        };
        if state.phase.load(Ordering::Acquire) >= phase {
            return Poll::Ready(());
        }
        if let Some((_, waker)) = &self.registered {
            if waker.will_wake(cx.waker()) {
                // The slot holds this task's waker: `advance` wakes it after moving the phase,
                // which was read above.
                return Poll::Pending;
            }
        }
        let waker = cx.waker().clone();
        let mut waiters = state.lock();
        let slot = match &self.registered {
            Some((slot, _)) => *slot,
            None => match waiters.free.pop() {
                Some(free) => free,
                None => {
                    waiters.slots.push(None);
                    waiters.slots.len() - 1
                }
            },
        };
        waiters.slots[slot] = Some(waker.clone());
        drop(waiters);
        self.registered = Some((slot, waker));
        // The phase may have moved while registering.
        if state.phase.load(Ordering::Acquire) >= phase {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

impl fmt::Debug for ShutdownWatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ShutdownWatch")
            .field("signal", &self.signal)
            .field("registered", &self.registered.is_some())
            .finish()
    }
}

impl Drop for ShutdownWatch {
    fn drop(&mut self) {
        if let (Some(state), Some((slot, _))) = (&self.signal.0, self.registered.take()) {
            let mut waiters = state.lock();
            waiters.slots[slot] = None;
            waiters.free.push(slot);
        }
    }
}

impl Future for ShutdownWatch {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.get_mut().poll_forced(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_advance_and_wake_watchers() {
        let (trigger, signal) = ShutdownTrigger::new();
        let waker = Waker::noop();
        let mut cx = Context::from_waker(waker);
        let mut watch = ShutdownWatch::new(signal.clone());
        let mut draining = signal.watch();
        assert!(watch.poll_forced(&mut cx).is_pending());
        assert!(draining.poll_draining(&mut cx).is_pending());
        assert!(!signal.is_draining());
        trigger.drain();
        assert!(signal.is_draining() && !signal.is_forced());
        assert!(draining.poll_draining(&mut cx).is_ready());
        assert!(watch.poll_forced(&mut cx).is_pending());
        trigger.force();
        assert!(signal.is_forced());
        assert!(watch.poll_forced(&mut cx).is_ready());
        // Going back is not possible.
        trigger.drain();
        assert!(signal.is_forced());
    }

    #[test]
    fn is_forced_reads_the_phase_without_registering() {
        let (trigger, signal) = ShutdownTrigger::new();
        let watch = signal.watch();
        assert!(!watch.is_forced());
        trigger.drain();
        assert!(!watch.is_forced());
        trigger.force();
        assert!(watch.is_forced());
        assert!(trigger.0.lock().slots.is_empty());
        assert!(!ShutdownSignal::never().watch().is_forced());
    }

    #[test]
    fn dropped_watches_free_their_slots() {
        let (trigger, signal) = ShutdownTrigger::new();
        let waker = Waker::noop();
        let mut cx = Context::from_waker(waker);
        for _ in 0..1000 {
            let mut watch = ShutdownWatch::new(signal.clone());
            assert!(watch.poll_forced(&mut cx).is_pending());
        }
        assert_eq!(trigger.0.lock().slots.len(), 1);
        assert!(ShutdownSignal::never().forced().poll_once_pending());
    }

    struct CountingWaker(std::sync::atomic::AtomicUsize);

    impl std::task::Wake for CountingWaker {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn the_waker_of_the_latest_poll_is_woken() {
        let (trigger, signal) = ShutdownTrigger::new();
        let first = Arc::new(CountingWaker(Default::default()));
        let second = Arc::new(CountingWaker(Default::default()));
        let mut watch = ShutdownWatch::new(signal);
        let first_waker = Waker::from(first.clone());
        // Polled again by the same task: one slot, the same waker.
        for _ in 0..3 {
            assert!(
                watch
                    .poll_forced(&mut Context::from_waker(&first_waker))
                    .is_pending()
            );
        }
        // Moved to another task: the new waker replaces the old one in the same slot.
        let second_waker = Waker::from(second.clone());
        assert!(
            watch
                .poll_forced(&mut Context::from_waker(&second_waker))
                .is_pending()
        );
        assert_eq!(trigger.0.lock().slots.len(), 1);
        trigger.force();
        assert_eq!(first.0.load(Ordering::SeqCst), 0);
        assert_eq!(second.0.load(Ordering::SeqCst), 1);
        assert!(
            watch
                .poll_forced(&mut Context::from_waker(&second_waker))
                .is_ready()
        );
        drop(watch);
        assert_eq!(trigger.0.lock().free, vec![0]);
    }

    trait PendingOnce {
        fn poll_once_pending(self) -> bool;
    }

    impl<F: Future<Output = ()>> PendingOnce for F {
        fn poll_once_pending(self) -> bool {
            let mut future = std::pin::pin!(self);
            future
                .as_mut()
                .poll(&mut Context::from_waker(Waker::noop()))
                .is_pending()
        }
    }
}
