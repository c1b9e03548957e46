//! WebSocket upgrades through the real gateway binary to a real WebSocket echo upstream: a
//! signed-in upgrade passes with identity headers (a client's own dropped) and echoes; an
//! anonymous one gets 401 and never reaches the app.

mod common;

use std::sync::{Arc, Mutex};

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

use common::*;

/// One upgrade request's headers, as (lower-case name, value).
type Headers = Vec<(String, String)>;

/// A WebSocket echo server that records each upgrade request's headers.
struct Echo {
    addr: std::net::SocketAddr,
    upgrades: Arc<Mutex<Vec<Headers>>>,
}

async fn echo_server() -> Echo {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let upgrades: Arc<Mutex<Vec<Headers>>> = Arc::default();
    let rec = upgrades.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let rec = rec.clone();
            tokio::spawn(async move {
                // The callback's error type is tungstenite's, large or not.
                #[allow(clippy::result_large_err)]
                let record = |req: &Request, resp: Response| {
                    rec.lock().unwrap().push(
                        req.headers()
                            .iter()
                            .map(|(k, v)| {
                                (k.as_str().to_string(), v.to_str().unwrap_or("").to_string())
                            })
                            .collect(),
                    );
                    Ok(resp)
                };
                let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(stream, record).await else {
                    return;
                };
                while let Some(Ok(msg)) = ws.next().await {
                    if (msg.is_text() || msg.is_binary()) && ws.send(msg).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    Echo { addr, upgrades }
}

async fn env(echo: &Echo, user: &str) -> Env {
    let tail = format!(
        "[[upstream]]\nname = \"ws\"\nurl = \"http://{}\"\npath_prefix = \"/ws\"\n",
        echo.addr
    );
    env_with(Some(user), "", &tail).await
}

fn ws_request(
    env: &Env,
    cookie: Option<&str>,
) -> tokio_tungstenite::tungstenite::handshake::client::Request {
    let mut req = format!("ws://127.0.0.1:{}/ws/echo", env.gw.port)
        .into_client_request()
        .unwrap();
    req.headers_mut()
        .insert("x-clever-user-id", "forged".parse().unwrap());
    if let Some(c) = cookie {
        req.headers_mut().insert("cookie", c.parse().unwrap());
    }
    req
}

#[tokio::test]
async fn websocket_signed_in_upgrade_passes_with_identity_and_echoes() {
    let echo = echo_server().await;
    let user = user_with_roles(&["teacher"]);
    let env = env(&echo, &user).await;
    let cookie = session_cookie(&env, &browser()).await;
    let (mut ws, resp) = tokio_tungstenite::connect_async(ws_request(&env, Some(&cookie)))
        .await
        .expect("upgrade through the gateway");
    assert_eq!(resp.status(), 101);
    ws.send(Message::text("hello over the gateway"))
        .await
        .unwrap();
    let back = tokio::time::timeout(std::time::Duration::from_secs(5), ws.next())
        .await
        .expect("echo in time")
        .unwrap()
        .unwrap();
    assert_eq!(back.into_text().unwrap(), "hello over the gateway");
    let _ = ws.close(None).await;

    let upgrades = echo.upgrades.lock().unwrap().clone();
    assert_eq!(upgrades.len(), 1);
    let ids: Vec<&String> = upgrades[0]
        .iter()
        .filter(|(k, _)| k == "x-clever-user-id")
        .map(|(_, v)| v)
        .collect();
    assert_eq!(ids, vec![&user], "the gateway's identity, not the client's");
    assert!(upgrades[0]
        .iter()
        .all(|(k, v)| k != "cookie" || !v.contains("clever_gateway=")));
}

#[tokio::test]
async fn websocket_anonymous_upgrade_401_never_reaches_app() {
    let echo = echo_server().await;
    let env = env(&echo, &user_with_roles(&["teacher"])).await;
    let err = tokio_tungstenite::connect_async(ws_request(&env, None))
        .await
        .expect_err("anonymous upgrade refused");
    match err {
        WsError::Http(resp) => assert_eq!(resp.status(), 401),
        other => panic!("expected an HTTP 401, got {other:?}"),
    }
    assert!(echo.upgrades.lock().unwrap().is_empty());
}

/// Slow (70 s): an upgraded connection that stays silent longer than the 60 s upstream read
/// timeout of ordinary requests still echoes afterwards. Run with `--ignored`.
#[tokio::test]
#[ignore = "slow: waits 70 s"]
async fn websocket_idle_longer_than_read_timeout_stays_open() {
    let echo = echo_server().await;
    let env = env(&echo, &user_with_roles(&["teacher"])).await;
    let cookie = session_cookie(&env, &browser()).await;
    let (mut ws, _) = tokio_tungstenite::connect_async(ws_request(&env, Some(&cookie)))
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_secs(70)).await;
    ws.send(Message::text("still there")).await.unwrap();
    let back = tokio::time::timeout(std::time::Duration::from_secs(5), ws.next())
        .await
        .expect("echo in time")
        .expect("connection open")
        .expect("no error");
    assert_eq!(back.into_text().unwrap(), "still there");
}
