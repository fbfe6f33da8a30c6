//! [`SystemTimer`]: deadlines without any async runtime, from one background thread shared by
//! the whole process.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Condvar, Mutex, MutexGuard, OnceLock};
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use super::{Sleep, Timer};

/// The default [`Timer`]: [`Instant::now`] as the clock, and sleeps woken by one lazily
/// started background thread (`connect-timer`) shared by every server and client of the
/// process.
///
/// It works under any async runtime (or none), which is why servers and clients use it unless
/// given another: a deadline is enforced even when nobody thought of installing a timer. A
/// sleep costs one allocation and an ordered-map insert; a sleep dropped before it fires is
/// removed at once, so the thread only ever holds the sleeps of calls in flight. Runtimes with
/// timers of their own (Tokio's, through `connect-tokio-hyper`'s `TokioTimer`) can be used
/// instead, for example to pause time in tests.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemTimer {
    _private: (),
}

impl SystemTimer {
    /// A handle to the process-wide timer thread (started on the first sleep).
    pub fn new() -> Self {
        SystemTimer { _private: () }
    }
}

impl Timer for SystemTimer {
    fn now(&self) -> Instant {
        Instant::now()
    }

    fn sleep_until(&self, deadline: Instant) -> Sleep {
        Box::pin(ThreadSleep {
            deadline,
            key: None,
        })
    }
}

/// Sleeps waiting for the thread, ordered by deadline (the `u64` tells equal deadlines apart).
struct Wheel {
    state: Mutex<WheelState>,
    changed: Condvar,
}

#[derive(Default)]
struct WheelState {
    sleeps: BTreeMap<(Instant, u64), Waker>,
    next_id: u64,
    thread_started: bool,
}

fn wheel() -> &'static Wheel {
    static WHEEL: OnceLock<Wheel> = OnceLock::new();
    WHEEL.get_or_init(|| Wheel {
        state: Mutex::new(WheelState::default()),
        changed: Condvar::new(),
    })
}

impl Wheel {
    fn lock(&self) -> MutexGuard<'_, WheelState> {
        // Nothing panics while the lock is held; a poisoned lock still holds consistent data.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The thread: wakes every sleep whose deadline passed, then waits for the next one.
    fn run(&'static self) {
        let mut state = self.lock();
        loop {
            let now = Instant::now();
            let mut due = Vec::new();
            while let Some(entry) = state.sleeps.first_entry() {
                if entry.key().0 > now {
                    break;
                }
                due.push(entry.remove());
            }
            if !due.is_empty() {
                drop(state);
                due.into_iter().for_each(Waker::wake);
                state = self.lock();
                continue;
            }
            state = match state.sleeps.first_key_value() {
                None => self.changed.wait(state).unwrap_or_else(|p| p.into_inner()),
                Some(((at, _), _)) => {
                    let wait = at.saturating_duration_since(now);
                    self.changed
                        .wait_timeout(state, wait)
                        .unwrap_or_else(|p| p.into_inner())
                        .0
                }
            };
        }
    }
}

struct ThreadSleep {
    deadline: Instant,
    /// The registration, while one exists.
    key: Option<(Instant, u64)>,
}

impl Future for ThreadSleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        if Instant::now() >= this.deadline {
            this.deregister();
            return Poll::Ready(());
        }
        let shared = wheel();
        let mut state = shared.lock();
        if let Some(key) = this.key {
            if let Some(waker) = state.sleeps.get_mut(&key) {
                if !waker.will_wake(cx.waker()) {
                    *waker = cx.waker().clone();
                }
                return Poll::Pending;
            }
            // Woken early (the thread's clock read raced this one): register again.
        }
        let key = (this.deadline, state.next_id);
        state.next_id += 1;
        let first = state.sleeps.first_key_value().is_none_or(|(k, _)| key < *k);
        state.sleeps.insert(key, cx.waker().clone());
        this.key = Some(key);
        if !state.thread_started {
            let spawned = std::thread::Builder::new()
                .name("connect-timer".into())
                .spawn(|| wheel().run());
            // Without a thread (the process is out of threads) the next sleep tries again.
            state.thread_started = spawned.is_ok();
        }
        drop(state);
        if first {
            shared.changed.notify_one();
        }
        Poll::Pending
    }
}

impl ThreadSleep {
    fn deregister(&mut self) {
        if let Some(key) = self.key.take() {
            wheel().lock().sleeps.remove(&key);
        }
    }
}

impl Drop for ThreadSleep {
    fn drop(&mut self) {
        self.deregister();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::Wake;
    use std::time::Duration;

    use super::*;

    struct Flag(AtomicUsize, std::thread::Thread);

    impl Wake for Flag {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
            self.1.unpark();
        }
    }

    /// Polls `sleep` until it completes, parking between wake-ups; returns the wake count.
    fn block_on(mut sleep: Sleep) -> usize {
        let flag = Arc::new(Flag(AtomicUsize::new(0), std::thread::current()));
        let waker = Waker::from(flag.clone());
        let mut cx = Context::from_waker(&waker);
        while sleep.as_mut().poll(&mut cx).is_pending() {
            std::thread::park_timeout(Duration::from_secs(5));
        }
        flag.0.load(Ordering::SeqCst)
    }

    #[test]
    fn sleeps_until_the_deadline_and_not_longer() {
        let timer = SystemTimer::new();
        let start = Instant::now();
        let wakes = block_on(timer.sleep_until(start + Duration::from_millis(30)));
        let slept = start.elapsed();
        assert!(slept >= Duration::from_millis(30), "{slept:?}");
        assert!(slept < Duration::from_secs(2), "{slept:?}");
        assert!(wakes >= 1);
        // A deadline in the past completes at once, without registering.
        assert_eq!(block_on(timer.sleep_until(start)), 0);
    }

    #[test]
    fn dropped_sleeps_leave_nothing_behind() {
        let timer = SystemTimer::new();
        let far = Instant::now() + Duration::from_secs(3600);
        let waker = Waker::noop();
        let mut cx = Context::from_waker(waker);
        let mut sleeps: Vec<Sleep> = (0..100).map(|_| timer.sleep_until(far)).collect();
        for sleep in &mut sleeps {
            assert!(sleep.as_mut().poll(&mut cx).is_pending());
        }
        let registered = |far: Instant| {
            wheel()
                .lock()
                .sleeps
                .keys()
                .filter(|(at, _)| *at == far)
                .count()
        };
        assert_eq!(registered(far), 100);
        drop(sleeps);
        assert_eq!(registered(far), 0);
    }

    #[test]
    fn an_earlier_sleep_wakes_the_thread() {
        let timer = SystemTimer::new();
        // A far sleep first, so the thread waits long; a near one must still fire on time.
        let waker = Waker::noop();
        let mut far = timer.sleep_until(Instant::now() + Duration::from_secs(3600));
        assert!(
            far.as_mut()
                .poll(&mut Context::from_waker(waker))
                .is_pending()
        );
        let start = Instant::now();
        block_on(timer.sleep_until(start + Duration::from_millis(20)));
        assert!(start.elapsed() < Duration::from_secs(2));
    }
}
