//! The deadline of the call being handled on this thread: set while a server drives its
//! handler, read when a client call starts, so calls made from a handler never outlive it.

use std::cell::Cell;
use std::time::Instant;

thread_local! {
    static CURRENT: Cell<Option<Instant>> = const { Cell::new(None) };
}

/// The deadline of the call whose handler is running on this thread right now, if it has one.
///
/// `connect-tower` sets it while it polls a handler, and client calls started there take it as
/// their deadline when it is earlier than their own (unless their
/// [`CallOptions::propagate_deadline`](connect_proto_core::CallOptions::propagate_deadline) is
/// off). Work a handler spawns onto other tasks does not see it: pass
/// [`RequestContext::deadline`](crate::RequestContext::deadline) along explicitly
/// (`CallOptions::deadline_at_most`).
pub fn current_deadline() -> Option<Instant> {
    CURRENT.with(Cell::get)
}

/// Runs `f` with `deadline` as the current deadline (restoring the previous one after, even
/// if `f` unwinds).
#[cfg(feature = "server")]
pub(crate) fn with_deadline<R>(deadline: Option<Instant>, f: impl FnOnce() -> R) -> R {
    struct Restore(Option<Instant>);
    impl Drop for Restore {
        fn drop(&mut self) {
            CURRENT.with(|current| current.set(self.0));
        }
    }
    let _restore = Restore(CURRENT.with(|current| current.replace(deadline)));
    f()
}

#[cfg(all(test, feature = "server"))]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn scopes_nest_and_restore() {
        let outer = Instant::now() + Duration::from_secs(10);
        let inner = outer - Duration::from_secs(5);
        assert_eq!(current_deadline(), None);
        with_deadline(Some(outer), || {
            assert_eq!(current_deadline(), Some(outer));
            with_deadline(Some(inner), || assert_eq!(current_deadline(), Some(inner)));
            assert_eq!(current_deadline(), Some(outer));
            let unwound = std::panic::catch_unwind(|| with_deadline(None, || panic!("boom")));
            assert!(unwound.is_err());
            assert_eq!(current_deadline(), Some(outer));
        });
        assert_eq!(current_deadline(), None);
    }
}
