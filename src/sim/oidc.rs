//! Clever's OpenID Connect side, for off-the-shelf relying parties (Apache's mod_auth_openidc
//! in the storm benchmark): the discovery document at `/.well-known/openid-configuration`, the
//! signing keys at `/oauth/certs`, and the `id_token` the token endpoint adds when the
//! authorize request's `scope` named `openid`.
//!
//! Claims as Clever documents them: `iss`, `sub` (the multi-role user id, as `/userinfo`
//! answers it), `aud` = the client id, `iat`, `exp` = `iat` + 1 h, `nonce` when the request
//! had one, `user_type`, `district`, `email`, `given_name`, `family_name`. The simulator signs
//! with ES256 (Clever's algorithm is not documented; relying parties read it from the keys).
//! The issuer is the URL the request reached the simulator at (scheme and `Host`), so
//! discovery, keys and tokens agree however a test or benchmark addresses it.

use http::{HeaderMap, StatusCode};
use serde::Serialize;
use serde_json::json;

use super::state::{OpenIdRequest, Shared};
use super::users::SimUser;
use super::web::Reply;

/// How long an id_token is valid.
const ID_TOKEN_TTL_SECS: u64 = 3600;

/// The issuer: `http(s)://` + the request's `Host`.
fn issuer(shared: &Shared, headers: &HeaderMap) -> String {
    let host = headers
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1");
    format!("{}://{host}", shared.scheme())
}

/// `GET /.well-known/openid-configuration`.
pub(crate) fn discovery(shared: &Shared, headers: &HeaderMap) -> Reply {
    let iss = issuer(shared, headers);
    Reply::json(
        StatusCode::OK,
        &json!({
            "issuer": iss,
            "authorization_endpoint": format!("{iss}/oauth/authorize"),
            "token_endpoint": format!("{iss}/oauth/tokens"),
            "userinfo_endpoint": format!("{iss}/userinfo"),
            "jwks_uri": format!("{iss}/oauth/certs"),
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["ES256"],
            "scopes_supported": ["openid", "profile", "email"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "claims_supported": ["iss", "sub", "aud", "iat", "exp", "nonce", "user_type",
                "district", "email", "given_name", "family_name"],
        }),
    )
}

/// `GET /oauth/certs`: the JWKS.
pub(crate) fn certs(shared: &Shared) -> Reply {
    Reply::json(
        StatusCode::OK,
        &json!({ "keys": [shared.signing_key.jwk()] }),
    )
}

#[derive(Serialize)]
struct Claims<'a> {
    iss: String,
    sub: &'a str,
    aud: &'a str,
    iat: u64,
    exp: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    nonce: Option<&'a str>,
    user_type: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    district: Option<&'a str>,
    email: Option<&'a str>,
    given_name: Option<&'a str>,
    family_name: Option<&'a str>,
}

/// The signed id_token for `user`, or `None` if signing failed.
pub(crate) fn id_token(
    shared: &Shared,
    headers: &HeaderMap,
    user: &SimUser,
    openid: &OpenIdRequest,
) -> Option<String> {
    let iat = crate::session::unix_secs(shared.wall_now());
    let claims = Claims {
        iss: issuer(shared, headers),
        sub: &user.multi_role_user_id,
        aud: &shared.client_id,
        iat,
        exp: iat + ID_TOKEN_TTL_SECS,
        nonce: openid.nonce.as_deref(),
        user_type: user
            .role_types()
            .first()
            .map(|r| r.as_str())
            .unwrap_or("user"),
        district: user.district.as_deref(),
        email: user.email.as_deref(),
        given_name: user.first.as_deref(),
        family_name: user.last.as_deref(),
    };
    shared.signing_key.sign(&claims).ok()
}

#[cfg(test)]
mod tests {
    use jsonwebtoken::{Algorithm, DecodingKey, Validation};
    use serde_json::Value;

    use crate::sim::testutil::*;

    #[tokio::test]
    async fn openid_scope_gets_an_id_token_that_verifies_with_the_published_keys() {
        let sim = start_with(|c| c.auto_login = Some(STUDENT.into())).await;
        let discovery: Value = client()
            .get(format!(
                "{}/.well-known/openid-configuration",
                sim.base_url()
            ))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(discovery["issuer"], sim.base_url());
        assert_eq!(discovery["token_endpoint"], sim.token_url());
        let jwks: Value = client()
            .get(discovery["jwks_uri"].as_str().unwrap())
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let resp = client()
            .get(authorize_url(
                &sim,
                REDIRECT,
                &[
                    ("scope", "openid email"),
                    ("nonce", "n-0S6"),
                    ("state", "s"),
                ],
            ))
            .send()
            .await
            .unwrap();
        let (_, q) = location(&resp);
        let body: Value = exchange(&sim, &q["code"], REDIRECT)
            .await
            .json()
            .await
            .unwrap();
        let token = body["id_token"].as_str().expect("an id_token");
        let header = jsonwebtoken::decode_header(token).unwrap();
        let jwk = jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["kid"].as_str() == header.kid.as_deref())
            .expect("the token's key is published");
        let key = DecodingKey::from_jwk(&serde_json::from_value(jwk.clone()).unwrap()).unwrap();
        let mut v = Validation::new(Algorithm::ES256);
        v.set_audience(&[sim.client_id()]);
        v.set_issuer(&[sim.base_url()]);
        let claims = jsonwebtoken::decode::<Value>(token, &key, &v)
            .unwrap()
            .claims;
        let user = sim.users().iter().find(|u| u.id == STUDENT).unwrap();
        assert_eq!(claims["sub"], user.multi_role_user_id.as_str());
        assert_eq!(claims["nonce"], "n-0S6");
        assert_eq!(claims["user_type"], "student");
        assert_eq!(claims["given_name"], "José");
        assert_eq!(
            claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap(),
            3600
        );
        // Without `openid` in the scope (the gateway's own requests), no id_token.
        let resp = client()
            .get(authorize_url(&sim, REDIRECT, &[("state", "s")]))
            .send()
            .await
            .unwrap();
        let (_, q) = location(&resp);
        let body: Value = exchange(&sim, &q["code"], REDIRECT)
            .await
            .json()
            .await
            .unwrap();
        assert!(body.get("id_token").is_none());
    }
}
