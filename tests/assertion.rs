//! Signed identity assertions through the real gateway binary: `X-Clever-Assertion` reaches an
//! upstream with `assertion = true`, verifies with `/_gateway/jwks.json` (in Rust, and with
//! `examples/verify_assertion.py` when PyJWT is importable), is cached per session, rides on
//! forward-auth answers, and a client's own `X-Clever-Assertion` never reaches the app.

mod common;

use std::process::Command;

use common::*;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};

async fn env(user: &str) -> Env {
    env_with(
        Some(user),
        "assertion = true\npublic_paths = [\"/pub/\"]",
        "",
    )
    .await
}

fn issuer(env: &Env) -> String {
    format!("http://127.0.0.1:{}", env.gw.port)
}

async fn verify(env: &Env, token: &str, audience: &str) -> serde_json::Value {
    let jwks: JwkSet = reqwest::get(env.gw.url("/_gateway/jwks.json"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let header = jsonwebtoken::decode_header(token).unwrap();
    assert_eq!(header.alg, Algorithm::ES256);
    let jwk = jwks
        .find(header.kid.as_deref().expect("kid"))
        .expect("the token's kid is published");
    let mut v = Validation::new(Algorithm::ES256);
    v.set_audience(&[audience]);
    v.set_issuer(&[issuer(env)]);
    jsonwebtoken::decode::<serde_json::Value>(token, &DecodingKey::from_jwk(jwk).unwrap(), &v)
        .expect("assertion verifies with the published JWKS")
        .claims
}

#[tokio::test]
async fn assertion_reaches_upstream_verifies_and_is_cached() {
    let user = user_with_roles(&["teacher"]);
    let env = env(&user).await;
    let client = browser();
    let r = sign_in(&env, &client, "/").await;
    assert_eq!(r.status(), 200);
    let seen = env.app.last();
    let tokens = seen.all("x-clever-assertion");
    assert_eq!(tokens.len(), 1, "one assertion, the gateway's");
    let token = tokens[0].clone();
    let claims = verify(&env, &token, "app").await;
    assert_eq!(claims["sub"], user.as_str());
    assert_eq!(claims["user_types"], serde_json::json!(["teacher"]));
    assert_eq!(claims["iss"], issuer(&env));
    assert_eq!(
        claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap(),
        300
    );

    // The next request carries the same (cached) token, and a forged one is dropped.
    let r = client
        .get(env.gw.url("/again"))
        .header("x-clever-assertion", "forged.token.here")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        env.app.last().all("x-clever-assertion"),
        vec![token.clone()]
    );

    // Forward-auth answers carry it too.
    let r = client
        .get(env.gw.url("/_gateway/auth?upstream=app"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-clever-assertion"].to_str().unwrap(), token);
}

#[tokio::test]
async fn assertion_forged_by_anonymous_client_never_reaches_app() {
    let env = env(&user_with_roles(&["student"])).await;
    let r = reqwest::Client::new()
        .get(env.gw.url("/pub/x"))
        .header("x-clever-assertion", "forged.token.here")
        .header("x_clever_assertion", "forged.token.here")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let seen = env.app.last();
    assert!(seen.header("x-clever-assertion").is_none());
    assert!(seen.header("x_clever_assertion").is_none());
}

/// A Python 3 with PyJWT and cryptography, if there is one (`python3` on PATH, then Debian's).
fn python_with_pyjwt() -> Option<String> {
    ["python3", "/usr/bin/python3"].into_iter().find_map(|py| {
        Command::new(py)
            .args(["-c", "import jwt, cryptography"])
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|_| py.to_string())
    })
}

#[tokio::test]
async fn assertion_python_example_verifies_against_live_gateway() {
    let Some(py) = python_with_pyjwt() else {
        eprintln!(
            "SKIP assertion_python_example_verifies_against_live_gateway: no python3 with PyJWT \
             and cryptography (apt-get install python3-jwt python3-cryptography)"
        );
        return;
    };
    let user = user_with_roles(&["teacher"]);
    let env = env(&user).await;
    sign_in(&env, &browser(), "/").await;
    let token = env.app.last().header("x-clever-assertion").unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/verify_assertion.py");
    let jwks = env.gw.url("/_gateway/jwks.json");
    let run = |audience: &str| {
        Command::new(&py)
            .arg(script)
            .args([
                "--jwks",
                &jwks,
                "--issuer",
                &issuer(&env),
                "--audience",
                audience,
            ])
            .arg(&token)
            .output()
            .unwrap()
    };
    // Blocking is fine here: the script talks to the gateway process, not to this runtime.
    let ok = run("app");
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let claims: serde_json::Value = serde_json::from_slice(&ok.stdout).unwrap();
    assert_eq!(claims["sub"], user.as_str());
    let wrong = run("another-app");
    assert_eq!(wrong.status.code(), Some(1), "wrong audience refused");
}
