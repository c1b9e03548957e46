//! Checks made before the gateway decides anything: a clean request target, bounded headers,
//! unambiguous framing (request-smuggling shapes).

use crate::gateway::refusal::Refusal;

/// The most header bytes (names and values) a request may carry; pingora itself allows 1 MiB.
pub const MAX_HEADER_BYTES: usize = 32 * 1024;

/// The most bytes of a request's header section read at all, as sent (request line, header
/// lines, line ends): the [`MAX_HEADER_BYTES`] of names and values, and room for a long
/// request line and the framing. Past it the gateway stops reading and answers 431
/// (`proxy::header_guard`), so an unfinished header holds at most this much per connection.
pub const MAX_HEADER_SECTION: usize = MAX_HEADER_BYTES + 16 * 1024;

/// Checks what must hold before the gateway looks at a request at all: a request target of
/// visible ASCII without `#`, headers within `MAX_HEADER_BYTES`, unambiguous framing.
/// `raw_head`: the HTTP/1 request line and headers as received (pingora drops a fragment from
/// the target and `Content-Length` beside `Transfer-Encoding`; only these bytes still show
/// them). `None` for HTTP/2.
pub fn refuse_request(
    raw_target: &[u8],
    headers: &http::HeaderMap,
    raw_head: Option<&[u8]>,
) -> Option<Refusal> {
    if raw_target
        .iter()
        .any(|&b| !b.is_ascii_graphic() || b == b'#')
        || raw_head.is_some_and(request_line_has_fragment)
    {
        return Some(Refusal::BadTarget);
    }
    let size: usize = headers
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len())
        .sum();
    if size > MAX_HEADER_BYTES {
        return Some(Refusal::HeadersTooLarge);
    }
    let cl_and_te = headers.contains_key(http::header::TRANSFER_ENCODING)
        && raw_head.is_some_and(raw_has_content_length);
    if cl_and_te {
        return Some(Refusal::BadFraming { both_lengths: true });
    }
    framing_error(headers).map(|_| Refusal::BadFraming {
        both_lengths: false,
    })
}

/// Why a request's framing is refused (request smuggling shapes), if it is: both
/// `Content-Length` and `Transfer-Encoding`, several different `Content-Length`s, or a
/// transfer coding other than `chunked`.
pub fn framing_error(headers: &http::HeaderMap) -> Option<&'static str> {
    use http::header::{CONTENT_LENGTH, TRANSFER_ENCODING};
    let cls: Vec<&[u8]> = headers
        .get_all(CONTENT_LENGTH)
        .iter()
        .map(|v| v.as_bytes())
        .collect();
    let te = headers.get_all(TRANSFER_ENCODING).iter().count();
    if !cls.is_empty() && te > 0 {
        return Some("both Content-Length and Transfer-Encoding");
    }
    if cls.windows(2).any(|w| w[0] != w[1]) {
        return Some("conflicting Content-Length headers");
    }
    if cls
        .iter()
        .any(|v| v.is_empty() || !v.iter().all(u8::is_ascii_digit))
    {
        return Some("invalid Content-Length");
    }
    let chunked_only = headers
        .get_all(TRANSFER_ENCODING)
        .iter()
        .all(|v| v.as_bytes().eq_ignore_ascii_case(b"chunked"));
    if te > 1 || !chunked_only {
        return Some("unsupported Transfer-Encoding");
    }
    None
}

/// Whether the request line of raw HTTP/1 request bytes has a `#` (a fragment, which a client
/// never sends and pingora silently cuts off: `/public#/../admin` would reach the app as
/// `/public`).
fn request_line_has_fragment(raw: &[u8]) -> bool {
    let line = raw.split(|&b| b == b'\n').next().unwrap_or_default();
    line.contains(&b'#')
}

/// Whether raw HTTP/1 request-header bytes carry a `Content-Length` line. Pingora drops
/// `Content-Length` when `Transfer-Encoding` is present (RFC 9112 §6.3), so the smuggling
/// shape CL+TE can only be seen in the raw bytes.
pub fn raw_has_content_length(raw: &[u8]) -> bool {
    raw.split(|&b| b == b'\n').skip(1).any(|line| {
        line.iter().position(|&b| b == b':').is_some_and(|colon| {
            line[..colon]
                .trim_ascii()
                .eq_ignore_ascii_case(b"content-length")
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> http::HeaderMap {
        let mut h = http::HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    #[test]
    fn framing_error_smuggling_shapes_refused() {
        for bad in [
            vec![("content-length", "5"), ("transfer-encoding", "chunked")],
            vec![("content-length", "5"), ("content-length", "6")],
            vec![("content-length", "5x")],
            vec![("transfer-encoding", "gzip, chunked")],
            vec![
                ("transfer-encoding", "chunked"),
                ("transfer-encoding", "chunked"),
            ],
        ] {
            assert!(framing_error(&headers(&bad)).is_some(), "{bad:?}");
        }
    }

    #[test]
    fn refuse_request_target_fragment_controls_non_ascii() {
        let h = headers(&[]);
        for t in [&b"/x#f"[..], b"/x\x01", b"/caf\xc3\xa9", b"/a b"] {
            assert_eq!(
                refuse_request(t, &h, None).map(|r| r.status()),
                Some(400),
                "{t:?}"
            );
        }
        assert!(refuse_request(b"/ok?a=%20", &h, None).is_none());
    }

    #[test]
    fn refuse_request_fragment_cut_by_the_parser_still_seen_in_raw_bytes() {
        let h = headers(&[]);
        let raw = b"GET /public#/../admin HTTP/1.1\r\nHost: x\r\n\r\n";
        assert_eq!(
            refuse_request(b"/public", &h, Some(raw)).map(|r| r.status()),
            Some(400)
        );
        // A `#` in a header value is not the target's.
        let raw = b"GET /public HTTP/1.1\r\nX-Tag: #1\r\n\r\n";
        assert!(refuse_request(b"/public", &h, Some(raw)).is_none());
    }

    #[test]
    fn refuse_request_oversized_headers_431() {
        let big = "a".repeat(MAX_HEADER_BYTES);
        let h = headers(&[("cookie", big.as_str())]);
        assert_eq!(
            refuse_request(b"/", &h, None).map(|r| r.status()),
            Some(431)
        );
        let ok = "a".repeat(MAX_HEADER_BYTES - 100);
        assert!(refuse_request(b"/", &headers(&[("cookie", ok.as_str())]), None).is_none());
    }

    #[test]
    fn refuse_request_cl_and_te_400() {
        // Pingora keeps only Transfer-Encoding; the raw bytes still have Content-Length.
        let te = headers(&[("transfer-encoding", "chunked")]);
        let raw = b"POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert_eq!(
            refuse_request(b"/", &te, Some(raw)).map(|r| r.status()),
            Some(400)
        );
        let raw = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert!(refuse_request(b"/", &te, Some(raw)).is_none());
    }

    #[test]
    fn raw_has_content_length_finds_header_lines_only() {
        assert!(raw_has_content_length(
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
        ));
        assert!(raw_has_content_length(
            b"POST / HTTP/1.1\r\ncontent-length : 5\r\n\r\n"
        ));
        assert!(!raw_has_content_length(
            b"POST /content-length: HTTP/1.1\r\nX-Content-Length: 5\r\n\r\n"
        ));
    }

    #[test]
    fn framing_error_normal_requests_pass() {
        assert_eq!(framing_error(&headers(&[])), None);
        assert_eq!(framing_error(&headers(&[("content-length", "5")])), None);
        assert_eq!(
            framing_error(&headers(&[("transfer-encoding", "Chunked")])),
            None
        );
    }
}
