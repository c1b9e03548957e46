//! The listening sockets, bound by the gateway itself before pingora starts: an address it
//! cannot listen on stops the start with an error naming it, where pingora, binding in its
//! service thread, retries for 30 s, panics there and leaves the process running without that
//! listener. With `run --upgrade` the running gateway hands its sockets over instead, and only
//! the addresses it does not hand over are bound here. No pingora here: the glue that puts
//! these sockets into pingora's table of listening fds is in `server`.

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::time::{Duration, Instant};

/// A configured address, from the start of `run` until its service starts.
#[derive(Debug)]
pub enum Socket {
    /// Bound and listening, non-blocking (pingora's runtime accepts on it).
    Bound(TcpListener),
    /// In use when `run --upgrade` started: expected from the running gateway.
    Awaited,
}

/// A service's addresses, in the order configured, with their sockets.
pub type Sockets = Vec<(SocketAddr, Socket)>;

/// An address the gateway cannot listen on.
#[derive(Debug, thiserror::Error)]
#[error("cannot listen on {addr}: {source}")]
pub struct ListenError {
    pub addr: SocketAddr,
    pub source: io::Error,
}

/// What a failed bind at the start of `run` means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BindFailure {
    /// The start fails, naming the address.
    Fatal,
    /// The running gateway holds it and will hand it over (`run --upgrade` only).
    Awaited,
}

/// A bind error at the start: only an address in use during an upgrade is expected.
pub fn bind_failure(error: &io::Error, upgrade: bool) -> BindFailure {
    if upgrade && error.kind() == io::ErrorKind::AddrInUse {
        BindFailure::Awaited
    } else {
        BindFailure::Fatal
    }
}

/// Binds every address, in order, and keeps each socket open: addresses that overlap (the
/// same port on `0.0.0.0` and on `127.0.0.1`, say) collide here, not later in pingora. With
/// `upgrade`, an address in use is awaited from the running gateway.
pub fn bind_all(
    addrs: impl IntoIterator<Item = SocketAddr>,
    upgrade: bool,
) -> Result<Sockets, ListenError> {
    let mut sockets = Vec::new();
    for addr in addrs {
        let socket = match bind(addr) {
            Ok(listener) => Socket::Bound(listener),
            Err(e) if bind_failure(&e, upgrade) == BindFailure::Awaited => Socket::Awaited,
            Err(source) => return Err(ListenError { addr, source }),
        };
        sockets.push((addr, socket));
    }
    Ok(sockets)
}

/// A listening socket on `addr` as pingora binds its own: `SO_REUSEADDR` (std sets it), no
/// `SO_REUSEPORT`; non-blocking for tokio. Pingora raises the backlog when it takes it.
pub fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    let listener = TcpListener::bind(addr)?;
    listener.set_nonblocking(true)?;
    Ok(listener)
}

/// What a service does with one of its addresses when it starts.
#[derive(Debug)]
pub enum Claim {
    /// The running gateway handed a socket over for it: pingora uses that one.
    HandedOver,
    /// Ours, bound at the start.
    Ours(TcpListener),
    /// Awaited but not handed over: bind it once it is released ([`bind_when_released`]).
    Missing,
}

/// `handed_over`: the table of sockets from the running gateway has this address.
pub fn claim(handed_over: bool, socket: Socket) -> Claim {
    match (handed_over, socket) {
        // (Ours cannot be handed over too: the running gateway could not have held it.)
        (true, _) => Claim::HandedOver,
        (false, Socket::Bound(listener)) => Claim::Ours(listener),
        (false, Socket::Awaited) => Claim::Missing,
    }
}

/// How long an awaited address that was not handed over may stay in use. The running gateway
/// may still hold it (a reload from `0.0.0.0:8080` to `127.0.0.1:8080`, say): it closes its
/// listeners 5 s after the handover (pingora's close timeout).
pub const RELEASE_WAIT: Duration = Duration::from_secs(10);
const RELEASE_POLL: Duration = Duration::from_millis(200);

/// After a failed bind of a missing address, `waited` into the wait: when to try again, or
/// `None` to give up (any error but "in use", or the wait is over).
pub fn retry_after(error: &io::Error, waited: Duration) -> Option<Duration> {
    (error.kind() == io::ErrorKind::AddrInUse && waited < RELEASE_WAIT)
        .then(|| RELEASE_POLL.min(RELEASE_WAIT - waited))
}

/// Binds `addr`, waiting up to [`RELEASE_WAIT`] while it is in use.
pub async fn bind_when_released(addr: SocketAddr) -> io::Result<TcpListener> {
    let start = Instant::now();
    loop {
        match bind(addr) {
            Ok(listener) => return Ok(listener),
            Err(e) => match retry_after(&e, start.elapsed()) {
                Some(pause) => tokio::time::sleep(pause).await,
                None => return Err(e),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loopback(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    fn in_use() -> io::Error {
        io::Error::from(io::ErrorKind::AddrInUse)
    }

    #[test]
    fn bind_all_free_addresses_are_listening_and_non_blocking() {
        let sockets = bind_all([loopback(0), loopback(0)], false).unwrap();
        assert_eq!(sockets.len(), 2);
        for (_, socket) in &sockets {
            let Socket::Bound(listener) = socket else {
                panic!("{socket:?}")
            };
            let port = listener.local_addr().unwrap().port();
            assert_ne!(port, 0);
            // Listening already: a client connects before anything accepts.
            std::net::TcpStream::connect(loopback(port)).unwrap();
            // Non-blocking: with nothing left in the queue, accept returns at once.
            listener.accept().unwrap();
            let err = listener.accept().unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
        }
    }

    #[test]
    fn bind_all_address_in_use_fails_naming_it() {
        let busy = TcpListener::bind(loopback(0)).unwrap();
        let addr = busy.local_addr().unwrap();
        let err = bind_all([loopback(0), addr], false).unwrap_err();
        assert_eq!(err.addr, addr);
        assert_eq!(err.source.kind(), io::ErrorKind::AddrInUse);
        assert!(
            err.to_string()
                .starts_with(&format!("cannot listen on {addr}: ")),
            "{err}"
        );
    }

    #[test]
    fn bind_all_keeps_each_socket_so_a_later_address_on_the_same_port_collides() {
        // A probe that binds and closes each address in turn passes this list.
        let port = TcpListener::bind(loopback(0))
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let err = bind_all([loopback(port), loopback(port)], false).unwrap_err();
        assert_eq!(err.addr, loopback(port));
        assert_eq!(err.source.kind(), io::ErrorKind::AddrInUse);
    }

    #[test]
    fn bind_all_upgrade_awaits_an_address_in_use_and_binds_the_rest() {
        let busy = TcpListener::bind(loopback(0)).unwrap();
        let addr = busy.local_addr().unwrap();
        let sockets = bind_all([addr, loopback(0)], true).unwrap();
        assert!(matches!(sockets[0], (a, Socket::Awaited) if a == addr));
        assert!(matches!(sockets[1].1, Socket::Bound(_)));
    }

    #[test]
    fn bind_failure_in_use_is_fatal_without_upgrade_awaited_with_it() {
        assert_eq!(bind_failure(&in_use(), false), BindFailure::Fatal);
        assert_eq!(bind_failure(&in_use(), true), BindFailure::Awaited);
    }

    #[test]
    fn bind_failure_other_errors_are_fatal_even_with_upgrade() {
        for kind in [
            io::ErrorKind::PermissionDenied,
            io::ErrorKind::AddrNotAvailable,
        ] {
            assert_eq!(
                bind_failure(&io::Error::from(kind), true),
                BindFailure::Fatal
            );
        }
    }

    #[test]
    fn claim_prefers_a_handed_over_socket() {
        assert!(matches!(claim(true, Socket::Awaited), Claim::HandedOver));
        let ours = bind(loopback(0)).unwrap();
        assert!(matches!(
            claim(true, Socket::Bound(ours)),
            Claim::HandedOver
        ));
    }

    #[test]
    fn claim_not_handed_over_uses_ours_or_is_missing() {
        let ours = bind(loopback(0)).unwrap();
        assert!(matches!(claim(false, Socket::Bound(ours)), Claim::Ours(_)));
        assert!(matches!(claim(false, Socket::Awaited), Claim::Missing));
    }

    #[test]
    fn retry_after_in_use_polls_until_the_wait_is_over() {
        assert_eq!(retry_after(&in_use(), Duration::ZERO), Some(RELEASE_POLL));
        let almost = RELEASE_WAIT - Duration::from_millis(50);
        assert_eq!(
            retry_after(&in_use(), almost),
            Some(Duration::from_millis(50))
        );
        assert_eq!(retry_after(&in_use(), RELEASE_WAIT), None);
    }

    #[test]
    fn retry_after_other_errors_gives_up_at_once() {
        let denied = io::Error::from(io::ErrorKind::PermissionDenied);
        assert_eq!(retry_after(&denied, Duration::ZERO), None);
    }

    #[tokio::test]
    async fn bind_when_released_binds_once_the_holder_lets_go() {
        let busy = TcpListener::bind(loopback(0)).unwrap();
        let addr = busy.local_addr().unwrap();
        let release = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            drop(busy);
        });
        let start = Instant::now();
        let listener = bind_when_released(addr).await.unwrap();
        assert_eq!(listener.local_addr().unwrap(), addr);
        assert!(start.elapsed() >= Duration::from_millis(300));
        release.await.unwrap();
    }
}
