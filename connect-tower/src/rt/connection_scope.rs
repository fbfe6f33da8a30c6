//! The connection a request arrived on, as a runtime adapter hands it to the service: set on
//! this thread while the adapter calls the service and polls its future, read by
//! [`ConnectService`](crate::server::ConnectService) when it admits the request — one
//! connection-level fact passed per connection, with nothing inserted into each request's
//! extensions.

use std::cell::Cell;
use std::sync::Arc;

use crate::message::ConnectionInfo;

thread_local! {
    static CURRENT: Cell<Option<Arc<ConnectionInfo>>> = const { Cell::new(None) };
}

/// Runs `f` — a service's `call`, or one poll of its future — with `connection` as the
/// connection the request arrived on (restoring the previous one after, even if `f`
/// unwinds). Runtime adapters wrap both in it; a [`ConnectService`](crate::server::ConnectService)
/// reached synchronously from there (directly, or through layers that call their inner
/// service in `call` or in `poll`) reads it. A service moved to another task (a
/// `tower::buffer` worker) does not: adapters that serve through one insert the
/// [`ConnectionInfo`] into the request's extensions instead, which is read as well.
///
/// The connection is shared (`Arc`): an adapter keeps one per connection, and each scope
/// costs a reference count, not a copy of the addresses.
pub fn with_connection<R>(connection: &Arc<ConnectionInfo>, f: impl FnOnce() -> R) -> R {
    struct Restore(Option<Arc<ConnectionInfo>>);
    impl Drop for Restore {
        fn drop(&mut self) {
            let previous = self.0.take();
            CURRENT.with(|current| current.set(previous));
        }
    }
    let previous = CURRENT.with(|current| current.replace(Some(connection.clone())));
    let _restore = Restore(previous);
    f()
}

/// The connection of the request being served on this thread, as the adapter handed it over
/// with [`with_connection`]: what tower middleware in front of a service reads (in its `call`,
/// or while its future is polled) to learn the peer, now that adapters do not insert it into
/// every request's extensions.
pub fn current_connection() -> Option<Arc<ConnectionInfo>> {
    CURRENT.with(|current| {
        let connection = current.take();
        current.set(connection.clone());
        connection
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::PeerInfo;

    fn info(port: u16) -> Arc<ConnectionInfo> {
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        Arc::new(ConnectionInfo::new(
            PeerInfo::new(Some(addr), None),
            Default::default(),
        ))
    }

    fn port() -> Option<u16> {
        current_connection().and_then(|c| c.peer.remote_addr.map(|a| a.port()))
    }

    #[test]
    fn scopes_nest_restore_and_survive_panics() {
        assert_eq!(port(), None);
        with_connection(&info(1), || {
            assert_eq!(port(), Some(1));
            with_connection(&info(2), || assert_eq!(port(), Some(2)));
            assert_eq!(port(), Some(1));
            let unwound = std::panic::catch_unwind(|| with_connection(&info(3), || panic!("boom")));
            assert!(unwound.is_err());
            assert_eq!(port(), Some(1));
        });
        assert_eq!(port(), None);
    }
}
