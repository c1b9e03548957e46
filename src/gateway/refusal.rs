//! Every way the gateway refuses a request or a sign-in fails, in one enum: each `Refusal`
//! knows its status, its reason label (logs, metrics, the JSON `error`), the title and text the
//! user sees and its log level. `Refusal::answer` is the one place a refusal is logged and
//! counted; `Refusal::reply` the one renderer of the error page (HTML for a browser, JSON for
//! everything else), never with a token, secret or session id.

use std::borrow::Cow;

use tracing::Level;

use crate::auth::policy::Denial;
use crate::clever::CleverError;
use crate::gateway::pages::{page, Reply, SIGN_OUT_FORM};
use crate::process::metrics::{LoginOutcome, Metrics};

/// Where a failed sign-in's "Try again" leads.
const SIGN_IN_AGAIN: &str = "/_gateway/login?rd=/";

/// The text of every store-unavailable page.
const STORE_DOWN: &str =
    "The gateway cannot reach its session store. Please try again in a moment.";

/// The text of the sign-in state refusals.
const SIGN_IN_AGAIN_TEXT: &str =
    "This sign-in attempt is not valid or has expired. Please sign in again.";

/// Why the gateway answers a request itself with an error instead of letting it through.
#[derive(Debug)]
pub enum Refusal {
    // Before any decision (`gateway::refuse_request`).
    /// A request target with a fragment, a control character or a non-ASCII byte.
    BadTarget,
    /// Headers over `MAX_HEADER_BYTES`.
    HeadersTooLarge,
    /// Request-smuggling framing; `both_lengths`: Content-Length beside Transfer-Encoding.
    BadFraming { both_lengths: bool },
    /// A plain-HTTP request to redirect to HTTPS names no valid host.
    NoHostForHttps,

    // Routing and the gateway's own endpoints.
    /// The path does not normalise; the routing error's text.
    BadPath(String),
    /// No upstream serves the address.
    NotFound,
    /// `/_gateway/<name>` that does not exist.
    NoGatewayPage,
    /// `/_gateway/auth` with a malformed query or an unknown or repeated `upstream`.
    BadForwardAuthQuery(&'static str),
    /// `/_gateway/login` with a malformed query.
    BadLoginLink,
    /// `/_gateway/login` with `rd` twice.
    RepeatedRd,
    /// `/_gateway/login?rd=` that is not a same-site path.
    BadReturnPath,
    /// A sign-out `POST` another site sent; why it looks cross-site.
    CrossSiteSignOut(&'static str),
    /// `/_gateway/logout` with a method other than GET, HEAD or POST.
    SignOutMethod,
    /// No valid session on a request that needs one (API clients, forward-auth, `/me`).
    Unauthenticated { login_url: String },
    /// A signed-in user the upstream's policy refuses.
    Denied {
        upstream: String,
        user_id: String,
        denial: Denial,
    },
    /// The session store cannot be reached while deciding a request; the store's error.
    StoreUnavailable(String),
    /// The proxy could not get an answer from the upstream (or read the request): the status
    /// (400, 408, 500, 502, 504). Logged by the proxy with the pingora error.
    Upstream(u16),

    // Sign-in (the callback), each counted as a failed login.
    /// A callback query that does not parse; why.
    BadCallback(&'static str),
    /// A callback without `code`.
    MissingCode,
    /// A login cookie that is not valid for the state (or one from before an upgrade); why.
    InvalidState(&'static str),
    /// A callback state this browser has no login cookie for.
    StateMismatch,
    /// A second Clever-initiated callback in a row.
    BounceLoop,
    /// Clever sent `error=` back: its code and description, already sanitised.
    CleverCallbackError { code: String, description: String },
    /// A call to Clever failed.
    Clever(CleverError),
    /// The session store failed during a sign-in; the store's error.
    SignInStoreUnavailable(String),
    /// The session store failed during a sign-out (shown as the sign-in page, not counted).
    SignOutStoreUnavailable(String),
}

impl Refusal {
    /// The HTTP status, the reason label and the page title: each triple once, here.
    fn head(&self) -> (u16, &'static str, &'static str) {
        use Refusal::*;
        match self {
            BadTarget => (400, "bad_target", "Bad request"),
            HeadersTooLarge => (431, "headers_too_large", "Bad request"),
            BadFraming { .. } => (400, "bad_framing", "Bad request"),
            NoHostForHttps => (400, "bad_host", "Bad request"),
            BadPath(_) => (400, "bad_path", "Bad request"),
            NotFound | NoGatewayPage => (404, "not_found", "Page not found"),
            BadForwardAuthQuery(_) | BadLoginLink | RepeatedRd => {
                (400, "bad_request", "Bad request")
            }
            BadReturnPath => (400, "bad_return_path", "Bad request"),
            CrossSiteSignOut(_) => (403, "cross_site", "Sign-out refused"),
            SignOutMethod => (405, "method_not_allowed", "Method not allowed"),
            Unauthenticated { .. } => (401, "unauthenticated", "Sign-in required"),
            Denied { denial, .. } => (403, denial.reason(), "Access denied"),
            StoreUnavailable(_) => (503, "store_unavailable", "Temporarily unavailable"),
            Upstream(status) => (
                *status,
                "proxy_error",
                match status {
                    502 => "The application is not responding",
                    504 => "The application is taking too long",
                    400 | 408 => "Bad request",
                    _ => "Something went wrong",
                },
            ),
            BadCallback(_) => (400, "bad_callback", "Sign-in could not be completed"),
            MissingCode => (400, "missing_code", "Sign-in could not be completed"),
            InvalidState(_) => (400, "invalid_state", "Sign-in could not be completed"),
            StateMismatch => (400, "state_mismatch", "Sign-in could not be completed"),
            BounceLoop => (400, "bounce_loop", "Sign-in did not complete"),
            CleverCallbackError { .. } => (400, "clever_error", "Sign-in was not completed"),
            Clever(e) => (
                e.status(),
                e.reason(),
                match e {
                    CleverError::InvalidGrant => "Sign-in link expired",
                    CleverError::Timeout(_) => "Clever is not responding",
                    CleverError::RateLimited(_) => "Clever is busy",
                    CleverError::UserNotShared => "Your account is not shared with this app",
                    _ => "Clever sign-in failed",
                },
            ),
            SignInStoreUnavailable(_) | SignOutStoreUnavailable(_) => (
                503,
                "store_unavailable",
                "Sign-in is temporarily unavailable",
            ),
        }
    }

    pub fn status(&self) -> u16 {
        self.head().0
    }

    /// The machine-readable reason: the JSON `error`, the log's `reason`, the metrics label.
    pub fn reason(&self) -> &'static str {
        self.head().1
    }

    pub fn title(&self) -> &'static str {
        self.head().2
    }

    /// What the user is told.
    pub fn text(&self) -> Cow<'static, str> {
        use Refusal::*;
        Cow::Borrowed(match self {
            BadTarget => "The address has a fragment, a control character or a non-ASCII byte.",
            HeadersTooLarge => "The request headers (often cookies) are too large.",
            BadFraming { both_lengths: true } => {
                "The request has both Content-Length and Transfer-Encoding."
            }
            BadFraming { both_lengths: false } => "The request's length headers are not valid.",
            NoHostForHttps => "The request names no valid host, so it cannot be sent to HTTPS.",
            BadPath(e) => return Cow::Owned(format!("The address is not valid: {e}.")),
            NotFound => "No application is served at this address.",
            NoGatewayPage => "There is no such gateway page.",
            BadForwardAuthQuery(why) => *why,
            BadLoginLink => "The login link is malformed.",
            RepeatedRd => "The login link repeats rd.",
            BadReturnPath => "The return address must be a path on this site.",
            CrossSiteSignOut(_) => {
                "Another site asked your browser to sign you out. You are still signed in."
            }
            SignOutMethod => "Sign out with POST /_gateway/logout.",
            Unauthenticated { .. } => "Sign in with Clever to open this app.",
            Denied { denial, .. } => return Cow::Owned(denial.message()),
            StoreUnavailable(_) | SignInStoreUnavailable(_) | SignOutStoreUnavailable(_) => {
                STORE_DOWN
            }
            Upstream(502) => "The gateway could not get an answer from the application. Please try again in a moment.",
            Upstream(504) => "The application did not answer in time. Please try again in a moment.",
            Upstream(400 | 408) => "The request could not be read.",
            Upstream(_) => "The gateway could not complete this request.",
            BadCallback(_) => "The sign-in link is malformed.",
            MissingCode => "The sign-in link has no code.",
            InvalidState(_) => SIGN_IN_AGAIN_TEXT,
            StateMismatch => "This sign-in was started in another browser or its cookie is missing. Please sign in again.",
            BounceLoop => "Clever sent you back without finishing the sign-in. Please open the app from Clever again.",
            CleverCallbackError { code, .. } => {
                return Cow::Owned(format!(
                    "Clever did not complete the sign-in ({code}). Please try again."
                ))
            }
            Clever(CleverError::InvalidGrant) => "This sign-in link has expired or was already used. Please sign in again.",
            Clever(CleverError::Timeout(_)) => "Clever did not answer in time, so you could not be signed in. Please try again in a moment.",
            Clever(CleverError::RateLimited(_)) => "Clever is receiving too many requests right now. Please try again in a minute.",
            Clever(CleverError::UserNotShared) => "Your district has not shared your Clever account with this app, so the gateway cannot sign you in. Ask your district's Clever administrator to share it with this app.",
            Clever(_) => "Something went wrong while talking to Clever, so you could not be signed in. Please try again.",
        })
    }

    /// How loud the refusal is logged: ERROR when the gateway itself is failing, INFO for a
    /// policy doing its job, DEBUG for the everyday answers not logged before (404, 401).
    pub fn level(&self) -> Level {
        use Refusal::*;
        match self {
            StoreUnavailable(_) | SignInStoreUnavailable(_) | SignOutStoreUnavailable(_) => {
                Level::ERROR
            }
            Denied { .. } => Level::INFO,
            NotFound
            | NoGatewayPage
            | NoHostForHttps
            | Unauthenticated { .. }
            | SignOutMethod
            | BadLoginLink
            | RepeatedRd => Level::DEBUG,
            _ => Level::WARN,
        }
    }

    /// The log line's message.
    fn log_message(&self) -> &'static str {
        use Refusal::*;
        match self {
            BadTarget | HeadersTooLarge | BadFraming { .. } => "request refused",
            NoHostForHttps => "no host to redirect to HTTPS",
            BadPath(_) => "bad request path",
            NotFound | NoGatewayPage => "not found",
            BadForwardAuthQuery(_) => "forward-auth refused",
            BadLoginLink | RepeatedRd => "bad login link",
            BadReturnPath => "login rd refused: not a same-site path",
            CrossSiteSignOut(_) => "sign-out refused",
            SignOutMethod => "sign-out: method not allowed",
            Unauthenticated { .. } => "unauthenticated",
            Denied {
                denial: Denial::MissingField { .. },
                ..
            } => "policy denied: a required header cannot be built",
            Denied { .. } => "policy denied",
            StoreUnavailable(_) | SignInStoreUnavailable(_) | SignOutStoreUnavailable(_) => {
                "session store unavailable"
            }
            Upstream(_) => "request failed",
            BadCallback(_) => "bad callback",
            MissingCode => "callback without code",
            InvalidState(why) => why,
            StateMismatch => "callback state not bound to this browser",
            BounceLoop => "second Clever-initiated callback in a row; not bouncing again",
            CleverCallbackError { .. } => "Clever returned an error to the callback",
            Clever(_) => "login failed",
        }
    }

    /// The detail logged as `why` (a fixed text) or `error` (a failure's own message).
    fn why(&self) -> Option<&str> {
        use Refusal::*;
        match self {
            BadTarget | HeadersTooLarge | BadFraming { .. } => match self.text() {
                Cow::Borrowed(t) => Some(t),
                Cow::Owned(_) => None,
            },
            BadPath(why) => Some(why),
            BadForwardAuthQuery(why) | CrossSiteSignOut(why) | BadCallback(why) => Some(why),
            _ => None,
        }
    }

    /// The label of `clever_gateway_logins_total{outcome="failed"}` this refusal counts under,
    /// for a failed sign-in.
    fn failed_login(&self) -> Option<&'static str> {
        use Refusal::*;
        match self {
            // Not "clever_error", which counts Clever's HTTP failures (CleverError::Status).
            CleverCallbackError { .. } => Some("callback_error"),
            SignInStoreUnavailable(_) => Some("store_unavailable"),
            BadCallback(_) | MissingCode | InvalidState(_) | StateMismatch | BounceLoop
            | Clever(_) => Some(self.reason()),
            _ => None,
        }
    }

    /// The one place a refusal is logged and counted, then rendered (`reply`). `metrics`:
    /// where failed logins and policy denials are counted (none for the plain-HTTP redirect,
    /// which has no counter).
    pub fn answer(&self, request_id: &str, wants_html: bool, metrics: Option<&Metrics>) -> Reply {
        self.log(request_id);
        if let Some(m) = metrics {
            if let Some(label) = self.failed_login() {
                m.login(LoginOutcome::Failed, label);
            }
            if let Refusal::Denied {
                upstream, denial, ..
            } = self
            {
                m.policy_denied(upstream, denial.reason());
            }
        }
        self.reply(request_id, wants_html)
    }

    /// Logged in the request's span: the one the caller runs in, or one opened here.
    fn log(&self, request_id: &str) {
        let span = (!super::in_request_span()).then(|| super::request_span(request_id));
        let _in_span = span.as_ref().map(tracing::Span::enter);
        macro_rules! at {
            ($($field:tt)*) => {
                match self.level() {
                    Level::ERROR => tracing::error!($($field)*),
                    Level::WARN => tracing::warn!($($field)*),
                    Level::INFO => tracing::info!($($field)*),
                    _ => tracing::debug!($($field)*),
                }
            };
        }
        let reason = self.reason();
        let message = self.log_message();
        match self {
            Refusal::Denied {
                upstream,
                user_id,
                denial,
            } => match denial {
                Denial::MissingField {
                    header,
                    missing,
                    stale,
                } => {
                    let fields: Vec<&str> = missing.iter().map(|f| f.name()).collect();
                    at!(
                        upstream = %upstream,
                        user_id = %user_id,
                        reason,
                        header = %header,
                        fields = %fields.join(","),
                        stale,
                        "{message}"
                    )
                }
                _ => at!(
                    upstream = %upstream,
                    user_id = %user_id,
                    reason,
                    "{message}"
                ),
            },
            Refusal::CleverCallbackError { code, description } => at!(
                reason,
                error = %code,
                description = %description,
                "{message}"
            ),
            Refusal::Clever(e) => at!(reason, error = %e, "{message}"),
            Refusal::StoreUnavailable(e)
            | Refusal::SignInStoreUnavailable(e)
            | Refusal::SignOutStoreUnavailable(e) => {
                at!(reason, error = %e, "{message}")
            }
            _ => at!(reason, why = self.why(), "{message}"),
        }
    }

    /// Where "Try again" leads, if anywhere.
    fn retry(&self) -> Option<&str> {
        use Refusal::*;
        match self {
            Unauthenticated { login_url } => Some(login_url),
            BadCallback(_)
            | MissingCode
            | InvalidState(_)
            | StateMismatch
            | CleverCallbackError { .. }
            | Clever(_)
            | SignInStoreUnavailable(_)
            | SignOutStoreUnavailable(_) => Some(SIGN_IN_AGAIN),
            _ => None,
        }
    }

    /// The one renderer: HTML for browsers, JSON for everything else, with the headers the
    /// refusal needs (`WWW-Authenticate` on a 401, `Allow` on a 405).
    pub fn reply(&self, request_id: &str, wants_html: bool) -> Reply {
        let (status, reason, title) = self.head();
        let text = self.text();
        let retry = self.retry();
        let reply = if wants_html {
            use html_escape::{encode_double_quoted_attribute as attr, encode_text as esc};
            let mut actions = String::new();
            if let Some(r) = retry {
                actions.push_str(&format!(
                    r#"<a class="button" href="{}">Try again</a>"#,
                    attr(r)
                ));
            }
            if matches!(self, Refusal::Denied { .. }) {
                actions.push_str(SIGN_OUT_FORM);
            }
            Reply::html(
                status,
                page(
                    title,
                    &format!(
                        "<p>{message}</p>\n<div>{actions}</div>\n<p class=\"code\">Error {status} &middot; request id <code>{rid}</code> &middot; clever-gateway</p>",
                        message = esc(&text),
                        rid = esc(request_id),
                    ),
                ),
            )
        } else if let Refusal::Unauthenticated { login_url } = self {
            Reply::json(
                status,
                &serde_json::json!({"error": reason, "login_url": login_url}),
            )
        } else {
            let mut v = serde_json::json!({
                "error": reason,
                "message": text,
                "request_id": request_id,
            });
            if let Some(r) = retry {
                v["retry"] = serde_json::Value::String(r.to_string());
            }
            Reply::json(status, &v)
        };
        match self {
            Refusal::Unauthenticated { .. } => reply.with_header(
                http::header::WWW_AUTHENTICATE,
                r#"Clever realm="clever-gateway""#.to_string(),
            ),
            Refusal::SignOutMethod => {
                reply.with_header(http::header::ALLOW, "GET, HEAD, POST".to_string())
            }
            _ => reply,
        }
    }

    /// Whether the page offers "Sign out" (its form must be allowed to lead to the sign-out's
    /// redirect).
    pub fn offers_sign_out(&self) -> bool {
        matches!(self, Refusal::Denied { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(r: &Reply) -> String {
        String::from_utf8(r.body.to_vec()).unwrap()
    }

    #[test]
    fn html_escapes_and_shows_request_id() {
        let r = Refusal::Unauthenticated {
            login_url: "/_gateway/login?rd=/\"x".into(),
        }
        .reply("rid-1", true);
        let html = body(&r);
        assert!(html.contains("rid-1"));
        assert!(html.contains("Try again"));
        assert!(!html.contains("/\"x"));
        assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
        assert_eq!(r.header("cache-control"), Some("no-store"));
        let r = Refusal::BadPath("<script>alert(1)</script>".into()).reply("rid-1", true);
        assert!(!body(&r).contains("<script>"));
    }

    #[test]
    fn json_for_non_browsers() {
        let r = Refusal::InvalidState("x").reply("rid-1", false);
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(v["error"], "invalid_state");
        assert_eq!(v["request_id"], "rid-1");
        assert_eq!(v["retry"], SIGN_IN_AGAIN);
        assert_eq!(r.status, 400);
    }

    #[test]
    fn sign_out_is_a_post_form_never_a_link() {
        let r = Refusal::Denied {
            upstream: "u".into(),
            user_id: "1".into(),
            denial: Denial::UserType,
        }
        .reply("rid-1", true);
        let html = body(&r);
        assert!(html.contains(r#"<form method="post" action="/_gateway/logout">"#));
        assert!(!html.contains(r#"href="/_gateway/logout""#));
        assert_eq!(r.status, 403);
    }

    #[test]
    fn unauthenticated_is_401_with_www_authenticate_both_ways() {
        for html in [false, true] {
            let r = Refusal::Unauthenticated {
                login_url: "/_gateway/login?rd=%2F".into(),
            }
            .reply("r", html);
            assert_eq!(r.status, 401);
            assert_eq!(
                r.header("www-authenticate"),
                Some(r#"Clever realm="clever-gateway""#)
            );
        }
        let r = Refusal::Unauthenticated {
            login_url: "/_gateway/login?rd=%2F".into(),
        }
        .reply("r", false);
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"error": "unauthenticated", "login_url": "/_gateway/login?rd=%2F"})
        );
    }

    /// Every refusal's (status, label, title), pinned: the labels are what logs, metrics and
    /// dashboards key on, and each triple belongs to one kind of refusal.
    #[test]
    fn every_refusal_keeps_its_status_label_and_title_and_renders_both_ways() {
        use crate::clever::Endpoint;
        let all = [
            (Refusal::BadTarget, 400, "bad_target", "Bad request"),
            (
                Refusal::HeadersTooLarge,
                431,
                "headers_too_large",
                "Bad request",
            ),
            (
                Refusal::BadFraming { both_lengths: true },
                400,
                "bad_framing",
                "Bad request",
            ),
            (Refusal::NoHostForHttps, 400, "bad_host", "Bad request"),
            (Refusal::BadPath("x".into()), 400, "bad_path", "Bad request"),
            (Refusal::NotFound, 404, "not_found", "Page not found"),
            (Refusal::NoGatewayPage, 404, "not_found", "Page not found"),
            (
                Refusal::BadForwardAuthQuery("q"),
                400,
                "bad_request",
                "Bad request",
            ),
            (Refusal::BadLoginLink, 400, "bad_request", "Bad request"),
            (Refusal::RepeatedRd, 400, "bad_request", "Bad request"),
            (
                Refusal::BadReturnPath,
                400,
                "bad_return_path",
                "Bad request",
            ),
            (
                Refusal::CrossSiteSignOut("w"),
                403,
                "cross_site",
                "Sign-out refused",
            ),
            (
                Refusal::SignOutMethod,
                405,
                "method_not_allowed",
                "Method not allowed",
            ),
            (
                Refusal::Unauthenticated {
                    login_url: "/l".into(),
                },
                401,
                "unauthenticated",
                "Sign-in required",
            ),
            (
                Refusal::Denied {
                    upstream: "u".into(),
                    user_id: "1".into(),
                    denial: Denial::District,
                },
                403,
                "district_not_allowed",
                "Access denied",
            ),
            (
                Refusal::StoreUnavailable("e".into()),
                503,
                "store_unavailable",
                "Temporarily unavailable",
            ),
            (
                Refusal::Upstream(502),
                502,
                "proxy_error",
                "The application is not responding",
            ),
            (
                Refusal::Upstream(504),
                504,
                "proxy_error",
                "The application is taking too long",
            ),
            (Refusal::Upstream(408), 408, "proxy_error", "Bad request"),
            (
                Refusal::Upstream(500),
                500,
                "proxy_error",
                "Something went wrong",
            ),
            (
                Refusal::BadCallback("b"),
                400,
                "bad_callback",
                "Sign-in could not be completed",
            ),
            (
                Refusal::MissingCode,
                400,
                "missing_code",
                "Sign-in could not be completed",
            ),
            (
                Refusal::InvalidState("i"),
                400,
                "invalid_state",
                "Sign-in could not be completed",
            ),
            (
                Refusal::StateMismatch,
                400,
                "state_mismatch",
                "Sign-in could not be completed",
            ),
            (
                Refusal::BounceLoop,
                400,
                "bounce_loop",
                "Sign-in did not complete",
            ),
            (
                Refusal::CleverCallbackError {
                    code: "access_denied".into(),
                    description: String::new(),
                },
                400,
                "clever_error",
                "Sign-in was not completed",
            ),
            (
                Refusal::Clever(CleverError::InvalidGrant),
                400,
                "invalid_grant",
                "Sign-in link expired",
            ),
            (
                Refusal::Clever(CleverError::Timeout(Endpoint::Tokens)),
                504,
                "clever_timeout",
                "Clever is not responding",
            ),
            (
                Refusal::SignInStoreUnavailable("e".into()),
                503,
                "store_unavailable",
                "Sign-in is temporarily unavailable",
            ),
        ];
        for (r, status, label, title) in all {
            assert_eq!(
                (r.status(), r.reason(), r.title()),
                (status, label, title),
                "{r:?}"
            );
            let json = r.reply("rid-9", false);
            assert_eq!(json.status, status);
            let v: serde_json::Value = serde_json::from_slice(&json.body).unwrap();
            assert_eq!(v["error"], label, "{r:?}");
            let html = r.reply("rid-9", true);
            assert_eq!(html.status, status);
            let page = body(&html);
            assert!(
                page.contains(&format!("<h1>{}</h1>", html_escape::encode_text(title))),
                "{page}"
            );
            assert!(page.contains("rid-9"), "{r:?}");
        }
    }
}
