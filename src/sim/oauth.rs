//! Clever's OAuth side: `/oauth/authorize` (auto-login or a sign-in page), the page's
//! `/oauth/authorize/pick`, Clever-initiated `/oauth/instant-login`, and `/oauth/tokens`.
//!
//! Who `/oauth/authorize` signs in without a page: the auto-login user when one is set (it
//! always wins), else the user of the browser session (`clever_sim_session`, see the `session`
//! module) that picking a user or an Instant Login link started. With neither, it shows the
//! sign-in page.
//!
//! `district_id` on authorize: the auto-login (or session) user is used only if they belong to
//! that district; otherwise the sign-in page lists only that district's users (with a notice
//! saying why). Picking a user outside the requested district is a 400 page.

use http::{HeaderMap, StatusCode};
use subtle::ConstantTimeEq;

use super::oidc;
use super::session;
use super::state::{OpenIdRequest, RedeemError, Shared};
use super::users::SimUser;
use super::web::{
    basic_credentials, error_page, is_object_id, media_type, page, with_query, BodyError, Params,
    Reply,
};

/// The scope Clever grants an Instant Login app.
pub const SCOPE: &str = "read:user_id read:sis";

/// A validated authorize request.
#[derive(Debug)]
struct AuthRequest {
    redirect_uri: String,
    state: Option<String>,
    district_id: Option<String>,
    /// `scope` named `openid` (an OpenID Connect relying party): the token answer carries an
    /// `id_token` with this `nonce`.
    openid: Option<OpenIdRequest>,
}

/// Checks the parameters Clever checks before it will redirect anywhere. Any failure is a
/// 400 page: Clever never redirects to an unregistered URI.
fn validate(shared: &Shared, q: &Params) -> Result<AuthRequest, Reply> {
    let bad = |msg: String| error_page(StatusCode::BAD_REQUEST, "Invalid sign-in request", &msg);
    let one = |name: &str| {
        q.single(name)
            .map_err(|r| bad(format!("The parameter {} was sent more than once.", r.0)))
    };
    match one("response_type")? {
        Some("code") => {}
        Some(other) => return Err(bad(format!("Unsupported response_type {other:?}."))),
        None => return Err(bad("Missing response_type (must be \"code\").".into())),
    }
    match one("client_id")? {
        Some(id) if id == shared.client_id => {}
        Some(_) => return Err(bad("Unknown client_id.".into())),
        None => return Err(bad("Missing client_id.".into())),
    }
    let redirect_uri = match one("redirect_uri")? {
        Some(uri) if shared.redirect_uris.iter().any(|r| r == uri) => uri.to_string(),
        Some(uri) => {
            return Err(bad(format!(
                "The redirect_uri {uri:?} is not registered for this application."
            )))
        }
        None => return Err(bad("Missing redirect_uri.".into())),
    };
    let state = one("state")?.map(str::to_string);
    let district_id = match one("district_id")? {
        Some(d) if is_object_id(d) => Some(d.to_string()),
        Some(d) => return Err(bad(format!("Invalid district_id {d:?}."))),
        None => None,
    };
    // Clever manages scopes itself; only `openid` changes the answer (an id_token).
    let openid = match one("scope")? {
        Some(scope) if scope.split(' ').any(|s| s == "openid") => Some(OpenIdRequest {
            nonce: one("nonce")?.map(str::to_string),
        }),
        _ => None,
    };
    // `confirmed` (e.g. confirmed=false) is accepted and has no effect here.
    Ok(AuthRequest {
        redirect_uri,
        state,
        district_id,
        openid,
    })
}

impl AuthRequest {
    fn allows(&self, user: &SimUser) -> bool {
        self.district_id
            .as_deref()
            .is_none_or(|d| user.in_district(d))
    }

    /// The callback carrying `params`, plus `state` exactly when the app sent one.
    fn callback(&self, params: &[(&str, &str)]) -> Reply {
        let mut all = params.to_vec();
        if let Some(state) = &self.state {
            all.push(("state", state));
        }
        Reply::redirect(with_query(&self.redirect_uri, &all))
    }

    fn login(&self, shared: &Shared, user: &SimUser) -> Reply {
        let code = shared.issue_code_for(
            &shared.client_id,
            &self.redirect_uri,
            &user.id,
            self.openid.clone(),
        );
        self.callback(&[("code", &code), ("scope", SCOPE)])
    }

    fn denied(&self) -> Reply {
        self.callback(&[
            ("error", "access_denied"),
            (
                "error_description",
                "The user denied access to this application.",
            ),
        ])
    }
}

/// `GET /oauth/authorize`.
pub(crate) fn authorize(
    shared: &Shared,
    headers: &HeaderMap,
    q: &Params,
    access_denied: bool,
) -> Reply {
    let req = match validate(shared, q) {
        Ok(r) => r,
        Err(page) => return page,
    };
    if access_denied {
        return req.denied();
    }
    let notice = match shared.auto_login() {
        // The browser session: Clever answers at once for a browser that is signed in.
        None => match session::current_user(shared, headers) {
            None => None,
            Some(user) if req.allows(&user) => return req.login(shared, &user),
            Some(user) => Some(format!(
                "You are signed in to the simulator as {}, who is not in district {}; pick a \
                 user from that district.",
                user.full_name(),
                req.district_id.as_deref().unwrap_or("")
            )),
        },
        Some(id) => match shared.user(&id) {
            Some(user) if req.allows(user) => return req.login(shared, user),
            Some(user) => Some(format!(
                "Auto-login user {} is not in district {}; pick a user from that district.",
                user.full_name(),
                req.district_id.as_deref().unwrap_or("")
            )),
            None => Some(format!("Auto-login user {id} does not exist.")),
        },
    };
    sign_in_page(shared, &req, notice.as_deref())
}

/// `GET /oauth/authorize/pick`: the sign-in page's form submission. Signing in starts the
/// browser session.
pub(crate) fn pick(shared: &Shared, headers: &HeaderMap, q: &Params, access_denied: bool) -> Reply {
    let req = match validate(shared, q) {
        Ok(r) => r,
        Err(page) => return page,
    };
    if access_denied || q.has("deny") {
        return req.denied();
    }
    let bad = |msg: &str| error_page(StatusCode::BAD_REQUEST, "Invalid sign-in request", msg);
    let user = match q.single("user") {
        Ok(Some(id)) => match shared.user(id) {
            Some(u) => u,
            None => return bad("No such user."),
        },
        Ok(None) => return bad("Pick a user to sign in as."),
        Err(_) => return bad("Pick exactly one user."),
    };
    if !req.allows(user) {
        return bad("That user is not in the requested district.");
    }
    session::sign_in(shared, headers, &user.id, req.login(shared, user))
}

/// `GET /oauth/instant-login?client_id=…[&district_id=…]&user=ID`: a Clever-initiated login,
/// sent to the primary redirect URI with `code` and `scope` and never a `state`. It starts the
/// browser session, so the app's bounce through `/oauth/authorize` is answered at once.
pub(crate) fn instant_login(shared: &Shared, headers: &HeaderMap, q: &Params) -> Reply {
    let bad = |msg: &str| error_page(StatusCode::BAD_REQUEST, "Invalid Instant Login link", msg);
    match q.single("client_id") {
        Ok(Some(id)) if id == shared.client_id => {}
        Ok(Some(_)) => return bad("Unknown client_id."),
        _ => return bad("Missing or repeated client_id."),
    }
    let user = match q.single("user") {
        Ok(Some(id)) => match shared.user(id) {
            Some(u) => u,
            None => return bad("No such user."),
        },
        _ => {
            return bad("Missing or repeated user (the simulator needs to know who is logging in).")
        }
    };
    match q.single("district_id") {
        Ok(None) => {}
        Ok(Some(d)) if user.in_district(d) => {}
        Ok(Some(_)) => return bad("That user is not in the district of this link."),
        Err(_) => return bad("Repeated district_id."),
    }
    let Some(primary) = shared.redirect_uris.first() else {
        return error_page(
            StatusCode::INTERNAL_SERVER_ERROR,
            "No redirect URI",
            "This application has no registered redirect URI.",
        );
    };
    let code = shared.issue_code(&shared.client_id, primary, &user.id);
    let reply = Reply::redirect(with_query(primary, &[("code", &code), ("scope", SCOPE)]));
    session::sign_in(shared, headers, &user.id, reply)
}

fn sign_in_page(shared: &Shared, req: &AuthRequest, notice: Option<&str>) -> Reply {
    use html_escape::{encode_double_quoted_attribute as attr, encode_text as text};
    let mut hidden = String::new();
    let mut add = |name: &str, value: &str| {
        hidden.push_str(&format!(
            "<input type=\"hidden\" name=\"{}\" value=\"{}\">",
            attr(name),
            attr(value)
        ));
    };
    add("response_type", "code");
    add("client_id", &shared.client_id);
    add("redirect_uri", &req.redirect_uri);
    if let Some(state) = &req.state {
        add("state", state);
    }
    if let Some(d) = &req.district_id {
        add("district_id", d);
    }

    let mut items = String::new();
    for user in shared.users.iter().filter(|u| req.allows(u)) {
        let roles: Vec<&str> = user.role_types().iter().map(|r| r.as_str()).collect();
        let district = match &user.district {
            Some(d) => format!("district <code>{}</code>", text(d)),
            None => format!("authorized by {}, no district", text(&user.authorized_by)),
        };
        items.push_str(&format!(
            "<li><button type=\"submit\" name=\"user\" value=\"{id}\"><strong>{name}</strong> \
             &middot; {roles}<br><span class=\"muted\">{district}</span></button></li>",
            id = attr(&user.id),
            name = text(&user.full_name()),
            roles = text(&roles.join(", ")),
        ));
    }
    if items.is_empty() {
        items.push_str("<li class=\"muted\">No users in this district.</li>");
    }
    let notice = notice
        .map(|n| format!("<p class=\"notice\">{}</p>", text(n)))
        .unwrap_or_default();
    let body = format!(
        "<h1>Clever simulator — sign in as…</h1>{notice}\
         <p class=\"muted\">Signing in to <code>{client}</code>, returning to <code>{uri}</code>.</p>\
         <form method=\"get\" action=\"/oauth/authorize/pick\">{hidden}\
         <ul class=\"users\">{items}</ul>\
         <p><button class=\"deny\" type=\"submit\" name=\"deny\" value=\"1\">Deny access</button></p>\
         </form>",
        client = text(&shared.client_id),
        uri = text(&req.redirect_uri),
    );
    Reply::html(StatusCode::OK, page("Clever simulator — sign in", &body))
        .header(http::header::CACHE_CONTROL, "no-store")
}

/// `POST /oauth/tokens`. `body` is the request body as read (or why it could not be).
pub(crate) fn tokens(
    shared: &Shared,
    headers: &HeaderMap,
    body: Result<&[u8], BodyError>,
) -> Reply {
    let invalid_request =
        |msg: &str| Reply::oauth_error(StatusCode::BAD_REQUEST, "invalid_request", msg);
    let body = match body {
        Ok(b) => b,
        Err(BodyError::TooLarge) => {
            return Reply::oauth_error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "invalid_request",
                "request body too large",
            )
        }
        Err(BodyError::Broken) => return invalid_request("could not read the request body"),
    };

    if let Some(refused) = client_refused(shared, headers) {
        return refused;
    }

    let fields = match media_type(headers).as_deref() {
        Some("application/x-www-form-urlencoded") => Params::parse(body),
        Some("application/json") => match json_fields(body) {
            Some(p) => p,
            None => return invalid_request("malformed JSON body"),
        },
        _ => return invalid_request("invalid content-type"),
    };
    let field = |name: &str| fields.single(name);
    let (grant_type, code, redirect_uri) =
        match (field("grant_type"), field("code"), field("redirect_uri")) {
            (Ok(g), Ok(c), Ok(r)) => (g, c, r),
            _ => return invalid_request("a parameter was sent more than once"),
        };
    match grant_type {
        Some("authorization_code") => {}
        Some(_) => {
            return Reply::oauth_error(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                "grant_type must be authorization_code",
            )
        }
        None => return invalid_request("missing grant_type"),
    }
    let Some(code) = code.filter(|c| !c.is_empty()) else {
        return invalid_request("missing code");
    };
    let Some(redirect_uri) = redirect_uri else {
        return invalid_request("missing redirect_uri");
    };

    match shared.redeem_code(code, &shared.client_id, redirect_uri) {
        Ok(redeemed) => {
            let token = shared.issue_token(&redeemed.user.id, code);
            let mut answer = serde_json::json!({ "access_token": token });
            if shared.token_type_in_response {
                answer["token_type"] = "bearer".into();
            }
            if let Some(openid) = &redeemed.openid {
                match oidc::id_token(shared, headers, &redeemed.user, openid) {
                    Some(id_token) => answer["id_token"] = id_token.into(),
                    None => {
                        return Reply::oauth_error(
                            StatusCode::INTERNAL_SERVER_ERROR,
                            "server_error",
                            "could not sign the id_token",
                        )
                    }
                }
            }
            Reply::json(StatusCode::OK, &answer).header(http::header::CACHE_CONTROL, "no-store")
        }
        Err(RedeemError::WrongRedirectUri) => Reply::oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "redirect_uri does not match the one the code was issued for",
        ),
        Err(_) => Reply::oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", "invalid code"),
    }
}

/// A JSON object body as parameters: string values as they are, numbers and booleans as text.
fn json_fields(body: &[u8]) -> Option<Params> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    let obj = value.as_object()?;
    Some(Params(
        obj.iter()
            .filter_map(|(k, v)| match v {
                serde_json::Value::String(s) => Some((k.clone(), s.clone())),
                serde_json::Value::Number(n) => Some((k.clone(), n.to_string())),
                serde_json::Value::Bool(b) => Some((k.clone(), b.to_string())),
                _ => None,
            })
            .collect(),
    ))
}

/// The 401 `invalid_client` answer unless the request carries the application's client id and
/// secret as HTTP Basic credentials (compared in constant time).
pub(crate) fn client_refused(shared: &Shared, headers: &HeaderMap) -> Option<Reply> {
    let authorized = basic_credentials(headers).is_some_and(|(id, secret)| {
        id == shared.client_id
            && bool::from(secret.as_bytes().ct_eq(shared.client_secret.as_bytes()))
    });
    (!authorized).then(|| {
        Reply::oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "invalid client credentials",
        )
        .header(http::header::WWW_AUTHENTICATE, "Basic realm=\"clever\"")
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::sim::testutil::*;
    use crate::sim::{DEMO_DISTRICT, DEMO_DISTRICT_2, SCOPE};

    #[tokio::test]
    async fn authorize_auto_login_redirects_with_code_scope_and_state() {
        let sim = start_with(|c| c.auto_login = Some(TEACHER.into())).await;
        let resp = client()
            .get(authorize_url(&sim, REDIRECT, &[("state", "s t&=ü")]))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 302);
        let raw = resp.headers()["location"].to_str().unwrap().to_string();
        assert!(raw.contains("scope=read%3Auser_id%20read%3Asis"), "{raw}");
        let (base, q) = location(&resp);
        assert_eq!(base, REDIRECT);
        assert_eq!(q["scope"], SCOPE);
        assert_eq!(q["state"], "s t&=ü");
        assert!(!q["code"].is_empty());
        assert_eq!(exchange(&sim, &q["code"], REDIRECT).await.status(), 200);
    }

    #[tokio::test]
    async fn authorize_without_state_redirects_without_state() {
        let sim = start_with(|c| c.auto_login = Some(TEACHER.into())).await;
        let resp = client()
            .get(authorize_url(&sim, REDIRECT_2, &[]))
            .send()
            .await
            .unwrap();
        let (base, q) = location(&resp);
        assert_eq!(base, REDIRECT_2);
        assert!(q.contains_key("code"));
        assert!(!q.contains_key("state"));
    }

    #[tokio::test]
    async fn authorize_bad_redirect_uri_400_page() {
        let sim = start_with(|c| c.auto_login = Some(TEACHER.into())).await;
        // REDIRECT_2 is registered with a trailing slash: without it, it does not match.
        let unregistered = REDIRECT_2.trim_end_matches('/');
        for uri in [unregistered, "http://evil.example/cb", ""] {
            let resp = client()
                .get(authorize_url(&sim, uri, &[("state", "x")]))
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 400, "{uri}");
            assert!(resp.headers().get("location").is_none());
            assert!(resp.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/html"));
        }
    }

    #[tokio::test]
    async fn authorize_bad_client_or_response_type_400() {
        let sim = start_with(|c| c.auto_login = Some(TEACHER.into())).await;
        let wrong_client = format!(
            "{}?response_type=code&client_id=0000&redirect_uri={}",
            sim.authorize_url(),
            REDIRECT
        );
        let wrong_type = format!(
            "{}?response_type=token&client_id={}&redirect_uri={}",
            sim.authorize_url(),
            sim.client_id(),
            REDIRECT
        );
        let repeated = authorize_url(&sim, REDIRECT, &[("client_id", sim.client_id())]);
        let bad_encoding = format!("{}?response_type=%ZZ&client_id=%FF%FE", sim.authorize_url());
        for url in [wrong_client, wrong_type, repeated, bad_encoding] {
            let resp = client().get(&url).send().await.unwrap();
            assert_eq!(resp.status(), 400, "{url}");
        }
    }

    #[tokio::test]
    async fn authorize_confirmed_false_is_accepted() {
        let sim = start_with(|c| c.auto_login = Some(STUDENT.into())).await;
        let resp = client()
            .get(authorize_url(&sim, REDIRECT, &[("confirmed", "false")]))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 302);
    }

    #[tokio::test]
    async fn authorize_without_auto_login_shows_escaped_sign_in_page() {
        let sim = start().await;
        let resp = client()
            .get(authorize_url(
                &sim,
                REDIRECT,
                &[("state", "\"><script>x</script>")],
            ))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let html = resp.text().await.unwrap();
        assert!(html.contains("Clever simulator — sign in as…"));
        assert!(html.contains("José Ñúñez"));
        assert!(html.contains(TEACHER_B));
        assert!(!html.contains("<script>"));
        assert!(html.contains("&quot;&gt;&lt;script&gt;"));
    }

    #[tokio::test]
    async fn authorize_pick_issues_code_with_state() {
        let sim = start().await;
        let url = authorize_url(&sim, REDIRECT, &[("state", "abc"), ("user", STAFF)])
            .replace("/oauth/authorize?", "/oauth/authorize/pick?");
        let resp = client().get(url).send().await.unwrap();
        assert_eq!(resp.status(), 302);
        let (base, q) = location(&resp);
        assert_eq!(base, REDIRECT);
        assert_eq!(q["state"], "abc");
        assert_eq!(exchange(&sim, &q["code"], REDIRECT).await.status(), 200);
    }

    #[tokio::test]
    async fn authorize_pick_deny_redirects_access_denied() {
        let sim = start().await;
        let url = authorize_url(&sim, REDIRECT, &[("state", "abc"), ("deny", "1")])
            .replace("/oauth/authorize?", "/oauth/authorize/pick?");
        let resp = client().get(url).send().await.unwrap();
        let (_, q) = location(&resp);
        assert_eq!(q["error"], "access_denied");
        assert_eq!(q["state"], "abc");
        assert!(!q.contains_key("code"));
    }

    #[tokio::test]
    async fn authorize_district_mismatch_shows_filtered_page() {
        let sim = start_with(|c| c.auto_login = Some(TEACHER.into())).await;
        let resp = client()
            .get(authorize_url(
                &sim,
                REDIRECT,
                &[("district_id", DEMO_DISTRICT_2)],
            ))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let html = resp.text().await.unwrap();
        assert!(html.contains(TEACHER_B));
        assert!(!html.contains(&format!("value=\"{TEACHER}\"")));
        assert!(html.contains("not in district"));
    }

    #[tokio::test]
    async fn authorize_district_match_auto_logs_in() {
        let sim = start_with(|c| c.auto_login = Some(TEACHER.into())).await;
        let resp = client()
            .get(authorize_url(
                &sim,
                REDIRECT,
                &[("district_id", DEMO_DISTRICT)],
            ))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 302);
    }

    #[tokio::test]
    async fn authorize_pick_outside_district_400() {
        let sim = start().await;
        let url = authorize_url(
            &sim,
            REDIRECT,
            &[("district_id", DEMO_DISTRICT_2), ("user", TEACHER)],
        )
        .replace("/oauth/authorize?", "/oauth/authorize/pick?");
        assert_eq!(client().get(url).send().await.unwrap().status(), 400);
    }

    #[tokio::test]
    async fn instant_login_redirects_to_primary_without_state() {
        let sim = start().await;
        let resp = client()
            .get(sim.instant_login_url(STUDENT))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 302);
        let (base, q) = location(&resp);
        assert_eq!(base, REDIRECT);
        assert_eq!(q["scope"], SCOPE);
        assert!(!q.contains_key("state"));
        assert_eq!(exchange(&sim, &q["code"], REDIRECT).await.status(), 200);
    }

    #[tokio::test]
    async fn instant_login_bad_client_or_user_400() {
        let sim = start().await;
        let wrong_client = sim
            .instant_login_url(STUDENT)
            .replace(sim.client_id(), "0123456789abcdef0123");
        for url in [wrong_client, sim.instant_login_url("nobody")] {
            assert_eq!(client().get(url).send().await.unwrap().status(), 400);
        }
    }

    #[tokio::test]
    async fn tokens_form_exchange_succeeds() {
        let sim = start().await;
        let code = sim.issue_code(TEACHER, REDIRECT);
        let resp = exchange(&sim, &code, REDIRECT).await;
        assert_eq!(resp.status(), 200);
        let body: serde_json::Value = resp.json().await.unwrap();
        assert!(body["access_token"].as_str().unwrap().starts_with("il"));
        assert_eq!(body["token_type"], "bearer");
        assert!(body.get("expires_in").is_none());
        assert!(body.get("refresh_token").is_none());
    }

    #[tokio::test]
    async fn tokens_json_exchange_succeeds() {
        let sim = start().await;
        for content_type in ["application/json", "application/json; charset=utf-8"] {
            let code = sim.issue_code(TEACHER, REDIRECT);
            let body = serde_json::json!({
                "code": code, "grant_type": "authorization_code", "redirect_uri": REDIRECT,
            });
            let resp = client()
                .post(sim.token_url())
                .basic_auth(sim.client_id(), Some(sim.client_secret()))
                .header("content-type", content_type)
                .body(body.to_string())
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 200, "{content_type}");
        }
    }

    #[tokio::test]
    async fn tokens_multipart_or_missing_content_type_rejected() {
        let sim = start().await;
        let code = sim.issue_code(TEACHER, REDIRECT);
        for content_type in [
            Some("multipart/form-data; boundary=x"),
            Some("text/plain"),
            None,
        ] {
            let mut req = client()
                .post(sim.token_url())
                .basic_auth(sim.client_id(), Some(sim.client_secret()))
                .body(format!(
                    "code={code}&grant_type=authorization_code&redirect_uri={REDIRECT}"
                ));
            if let Some(ct) = content_type {
                req = req.header("content-type", ct);
            }
            let resp = req.send().await.unwrap();
            assert_eq!(resp.status(), 400);
            let body: serde_json::Value = resp.json().await.unwrap();
            assert_eq!(body["error"], "invalid_request");
            assert_eq!(body["error_description"], "invalid content-type");
        }
        // A rejected request does not use up the code.
        assert_eq!(exchange(&sim, &code, REDIRECT).await.status(), 200);
    }

    #[tokio::test]
    async fn tokens_wrong_or_missing_secret_401() {
        let sim = start().await;
        let code = sim.issue_code(TEACHER, REDIRECT);
        let form = [
            ("code", code.as_str()),
            ("grant_type", "authorization_code"),
            ("redirect_uri", REDIRECT),
        ];
        let wrong = client()
            .post(sim.token_url())
            .basic_auth(sim.client_id(), Some("0".repeat(40)))
            .form(&form);
        let missing = client().post(sim.token_url()).form(&form);
        let garbage = client()
            .post(sim.token_url())
            .header("authorization", "Basic %%%")
            .form(&form);
        for req in [wrong, missing, garbage] {
            let resp = req.send().await.unwrap();
            assert_eq!(resp.status(), 401);
            let body: serde_json::Value = resp.json().await.unwrap();
            assert_eq!(body["error"], "invalid_client");
        }
    }

    async fn assert_invalid_grant(resp: reqwest::Response) {
        assert_eq!(resp.status(), 400);
        let body: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(body["error"], "invalid_grant");
        assert_eq!(body["error_description"], "invalid code");
    }

    #[tokio::test]
    async fn tokens_reused_code_invalid_grant() {
        let sim = start().await;
        let code = sim.issue_code(TEACHER, REDIRECT);
        assert_eq!(exchange(&sim, &code, REDIRECT).await.status(), 200);
        assert_invalid_grant(exchange(&sim, &code, REDIRECT).await).await;
        // A used code stays used.
        assert_invalid_grant(exchange(&sim, &code, REDIRECT).await).await;
    }

    #[tokio::test]
    async fn tokens_unknown_code_invalid_grant() {
        let sim = start().await;
        assert_invalid_grant(exchange(&sim, "nope", REDIRECT).await).await;
    }

    #[tokio::test]
    async fn tokens_expired_code_invalid_grant() {
        let sim = start().await;
        let code = sim.issue_code(TEACHER, REDIRECT);
        sim.advance_clock(Duration::from_secs(61));
        assert_invalid_grant(exchange(&sim, &code, REDIRECT).await).await;
    }

    #[tokio::test]
    async fn tokens_code_valid_before_sixty_seconds() {
        let sim = start().await;
        let code = sim.issue_code(TEACHER, REDIRECT);
        sim.advance_clock(Duration::from_secs(58));
        assert_eq!(exchange(&sim, &code, REDIRECT).await.status(), 200);
    }

    #[tokio::test]
    async fn tokens_redirect_uri_mismatch_invalid_grant() {
        let sim = start().await;
        let code = sim.issue_code(TEACHER, REDIRECT);
        let resp = exchange(&sim, &code, REDIRECT_2).await;
        assert_eq!(resp.status(), 400);
        let body: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(body["error"], "invalid_grant");
    }

    #[tokio::test]
    async fn tokens_without_token_type_when_disabled() {
        let sim = start_with(|c| c.token_type_in_response = false).await;
        let code = sim.issue_code(TEACHER, REDIRECT);
        let body: serde_json::Value = exchange(&sim, &code, REDIRECT).await.json().await.unwrap();
        assert!(body["access_token"].is_string());
        assert!(body.get("token_type").is_none());
    }

    #[tokio::test]
    async fn tokens_bad_grant_type_or_missing_code_400() {
        let sim = start().await;
        let code = sim.issue_code(TEACHER, REDIRECT);
        for form in [
            vec![
                ("code", code.as_str()),
                ("grant_type", "password"),
                ("redirect_uri", REDIRECT),
            ],
            vec![
                ("grant_type", "authorization_code"),
                ("redirect_uri", REDIRECT),
            ],
            vec![
                ("code", code.as_str()),
                ("grant_type", "authorization_code"),
            ],
            vec![
                ("code", "%ZZ%FF"),
                ("code", "x"),
                ("grant_type", "authorization_code"),
            ],
        ] {
            let resp = client()
                .post(sim.token_url())
                .basic_auth(sim.client_id(), Some(sim.client_secret()))
                .form(&form)
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 400);
        }
    }

    #[tokio::test]
    async fn tokens_malformed_bodies_400_not_panic() {
        let sim = start().await;
        for (ct, body) in [
            ("application/json", "{not json"),
            ("application/json", "[1,2]"),
            (
                "application/x-www-form-urlencoded",
                "code=%ZZ&&&=&grant_type=%FF",
            ),
        ] {
            let resp = client()
                .post(sim.token_url())
                .basic_auth(sim.client_id(), Some(sim.client_secret()))
                .header("content-type", ct)
                .body(body)
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 400, "{body}");
        }
    }

    #[tokio::test]
    async fn tokens_huge_body_413() {
        let sim = start().await;
        let resp = client()
            .post(sim.token_url())
            .basic_auth(sim.client_id(), Some(sim.client_secret()))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(vec![b'a'; 64 * 1024 + 1])
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 413);
    }

    #[tokio::test]
    async fn tokens_get_405() {
        let sim = start().await;
        let resp = client().get(sim.token_url()).send().await.unwrap();
        assert_eq!(resp.status(), 405);
    }
}
