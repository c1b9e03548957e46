//! Rules that join `[server]` and `[session]` over TLS: a gateway that serves HTTPS on a public
//! address never sends its cookies without `Secure`.

use super::Ctx;
use crate::config::file::{SessionFile, Table};
use crate::config::model::ServerConfig;

/// Refuses `session.cookie_secure = false` with a TLS listener on a non-loopback address: the
/// browser would also send the session cookie over plain HTTP, to this host or to anyone who
/// can answer for it on the network. Loopback TLS listeners (local testing) may keep it;
/// `0.0.0.0` and `[::]` are public.
pub(super) fn secure_cookies_with_tls(
    ctx: &mut Ctx<'_, '_>,
    session: Option<&Table<SessionFile>>,
    server: Option<&ServerConfig>,
) {
    let flag = session.and_then(|s| s.get_ref().cookie_secure.as_ref());
    let public = server.and_then(|s| s.tls_listen.iter().find(|a| !a.ip().is_loopback()));
    if let (Some(flag), Some(public)) = (flag.filter(|f| !*f.get_ref()), public) {
        let why = "browsers would also send the session cookie over plain HTTP, where anyone on \
                   the network can read it and sign in as the user; remove it (false is for \
                   plain-HTTP development and loopback TLS testing only)";
        let what = format!(
            "session.cookie_secure = false with the TLS listener {public}, not a loopback address"
        );
        ctx.err(flag.span(), format!("{what}: {why}"));
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;

    fn tls(addr: &str) -> String {
        format!("tls_listen = [\"{addr}\"]\ntls_cert = \"/c.pem\"\ntls_key = \"/k.pem\"")
    }

    #[test]
    fn cookie_secure_false_with_public_tls_listener_is_error_at_value() {
        for addr in ["0.0.0.0:8443", "[::]:8443", "192.0.2.7:443"] {
            let src = doc(&tls(addr), "", "cookie_secure = false", "");
            let p = one(
                &src,
                &[
                    "session.cookie_secure = false",
                    addr,
                    "not a loopback address",
                    "plain HTTP",
                ],
            );
            assert_eq!(p.line, line_of(&src, "cookie_secure"));
            assert_eq!(p.col, "cookie_secure = ".len() + 1);
        }
    }

    #[test]
    fn cookie_secure_false_with_loopback_tls_listener_is_kept() {
        for addr in ["127.0.0.1:8443", "[::1]:8443", "127.0.0.2:8443"] {
            let c = ok(&doc(&tls(addr), "", "cookie_secure = false", ""));
            assert!(!c.session.cookie_secure);
        }
    }

    #[test]
    fn cookie_secure_false_one_public_among_loopback_is_error() {
        let src = doc(
            "tls_listen = [\"127.0.0.1:8443\", \"10.0.0.5:8443\"]\ntls_cert = \"/c\"\ntls_key = \"/k\"",
            "",
            "cookie_secure = false",
            "",
        );
        one(&src, &["10.0.0.5:8443"]);
    }

    #[test]
    fn cookie_secure_default_or_true_with_public_tls_is_fine() {
        assert!(
            ok(&doc(&tls("0.0.0.0:8443"), "", "", ""))
                .session
                .cookie_secure
        );
        ok(&doc(&tls("0.0.0.0:8443"), "", "cookie_secure = true", ""));
    }

    #[test]
    fn cookie_secure_false_without_tls_is_fine() {
        ok(&doc(
            "listen = [\"0.0.0.0:8080\"]",
            "",
            "cookie_secure = false",
            "",
        ));
    }
}
