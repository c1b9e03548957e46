//! An upstream's response head checked before it reaches the client: the framing headers a
//! response without a body must not carry, and a protocol switch nobody asked for.

/// Whether a response with this status has no body whatever its headers say (RFC 9110
/// §6.4.1: 1xx, 204 and 304). Its `Content-Length` or `Transfer-Encoding` is removed: passed
/// on, it tells a client on a kept-alive connection to read the next response's first bytes
/// as this one's body.
pub fn has_no_body(status: u16) -> bool {
    matches!(status, 100..=199 | 204 | 304)
}

/// Why the gateway refuses an upstream's response head, if it does (the client gets the 502
/// page): a `101 Switching Protocols` to a request that asked for no upgrade would turn the
/// client's connection into a raw tunnel to the app.
pub fn refusal(status: u16, upgrade_requested: bool) -> Option<&'static str> {
    (status == 101 && !upgrade_requested)
        .then_some("the app switched protocols (101) for a request that asked for no upgrade")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn has_no_body_for_1xx_204_304_only() {
        for s in [100, 101, 103, 199, 204, 304] {
            assert!(has_no_body(s), "{s}");
        }
        for s in [200, 201, 205, 206, 301, 302, 400, 404, 500] {
            assert!(!has_no_body(s), "{s}");
        }
    }

    #[test]
    fn refusal_only_for_an_unrequested_101() {
        assert!(refusal(101, false).is_some());
        assert_eq!(refusal(101, true), None);
        for s in [100, 200, 204, 304, 502] {
            assert_eq!(refusal(s, false), None, "{s}");
        }
    }
}
