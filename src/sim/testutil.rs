//! Test helpers: start a simulator on 127.0.0.1:0 and drive it with reqwest.

use std::collections::HashMap;

use super::{SimConfig, SimHandle};

pub(crate) const REDIRECT: &str = "http://127.0.0.1:9/oauth/clever/callback";
pub(crate) const REDIRECT_2: &str = "http://127.0.0.1:9/other/callback/";

pub(crate) const STUDENT: &str = "5fc43758db087d0be186c29d";
pub(crate) const TEACHER: &str = "5fc43758db087d0be186c2a1";
pub(crate) const STAFF: &str = "5fc43758db087d0be186c2b2";
pub(crate) const MULTI: &str = "5fc43758db087d0be186c2d4";
pub(crate) const CONTACT: &str = "5fc43758db087d0be186c2e5";
pub(crate) const STUDENT_NO_EMAIL: &str = "5fc43758db087d0be186c2f6";
pub(crate) const NULL_ROLE: &str = "5fc43758db087d0be186c307";
pub(crate) const TEACHER_B: &str = "60a1f0c2e4b0a1b2c3d4e5f6";
pub(crate) const LIBRARY: &str = "61b2c3d4e5f60718293a4b5c";

pub(crate) async fn start_with(tweak: impl FnOnce(&mut SimConfig)) -> SimHandle {
    let mut cfg = SimConfig::new(vec![REDIRECT.to_string(), REDIRECT_2.to_string()]);
    tweak(&mut cfg);
    SimHandle::start("127.0.0.1:0".parse().unwrap(), cfg)
        .await
        .expect("start simulator")
}

pub(crate) async fn start() -> SimHandle {
    start_with(|_| {}).await
}

/// A client that does not follow redirects.
pub(crate) fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// A browser-like client: keeps cookies (so it holds the simulator's session), does not follow
/// redirects.
pub(crate) fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// The `/oauth/authorize/pick` URL that chooses `user` on the sign-in page.
pub(crate) fn pick_url(
    sim: &SimHandle,
    redirect_uri: &str,
    user: &str,
    extra: &[(&str, &str)],
) -> String {
    let mut params = extra.to_vec();
    params.push(("user", user));
    authorize_url(sim, redirect_uri, &params).replace("/oauth/authorize?", "/oauth/authorize/pick?")
}

/// The user a code was issued for, found by exchanging it and asking `/v3.0/me`.
pub(crate) async fn code_user(sim: &SimHandle, code: &str, redirect_uri: &str) -> String {
    let resp = exchange(sim, code, redirect_uri).await;
    assert_eq!(resp.status(), 200);
    let body: serde_json::Value = resp.json().await.unwrap();
    let token = body["access_token"].as_str().unwrap();
    let me: serde_json::Value = api_get(sim, "/v3.0/me", token).await.json().await.unwrap();
    me["data"]["id"].as_str().unwrap().to_string()
}

/// The redirect target of `resp` split into (URL without query, decoded query parameters).
pub(crate) fn location(resp: &reqwest::Response) -> (String, HashMap<String, String>) {
    let loc = resp
        .headers()
        .get("location")
        .expect("Location header")
        .to_str()
        .unwrap();
    let url = url::Url::parse(loc).expect("absolute Location");
    let params = url.query_pairs().into_owned().collect();
    let mut base = url.clone();
    base.set_query(None);
    (base.to_string(), params)
}

/// The authorize URL for this simulator's client with `extra` parameters.
pub(crate) fn authorize_url(sim: &SimHandle, redirect_uri: &str, extra: &[(&str, &str)]) -> String {
    let mut url = url::Url::parse(&sim.authorize_url()).unwrap();
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", sim.client_id())
        .append_pair("redirect_uri", redirect_uri)
        .extend_pairs(extra);
    url.to_string()
}

/// POSTs a form token exchange with the right client credentials.
pub(crate) async fn exchange(sim: &SimHandle, code: &str, redirect_uri: &str) -> reqwest::Response {
    client()
        .post(sim.token_url())
        .basic_auth(sim.client_id(), Some(sim.client_secret()))
        .form(&[
            ("code", code),
            ("grant_type", "authorization_code"),
            ("redirect_uri", redirect_uri),
        ])
        .send()
        .await
        .unwrap()
}

/// An access token for `user_id`, obtained through a real code exchange.
pub(crate) async fn token_for(sim: &SimHandle, user_id: &str) -> String {
    let code = sim.issue_code(user_id, REDIRECT);
    let resp = exchange(sim, &code, REDIRECT).await;
    assert_eq!(resp.status(), 200);
    let body: serde_json::Value = resp.json().await.unwrap();
    body["access_token"].as_str().unwrap().to_string()
}

/// GET `path` on the simulator with a bearer token.
pub(crate) async fn api_get(sim: &SimHandle, path: &str, token: &str) -> reqwest::Response {
    client()
        .get(format!("{}{path}", sim.api_base()))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}
