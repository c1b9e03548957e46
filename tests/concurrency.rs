//! 200 parallel logins, for one user and for 200 different users, against the real binary:
//! every one succeeds, every session id is distinct, and the upstream sees each browser as its
//! own user.

mod common;

use std::collections::HashSet;

use clever_gateway::sim::{demo_users, SimConfig, SimHandle};
use common::*;

const N: usize = 200;

/// A simulator with the demo users plus `extra` generated teachers; returns their ids.
async fn sim_with_users(port: u16, extra: usize) -> (SimHandle, Vec<String>) {
    let mut cfg = SimConfig::new(vec![format!(
        "http://127.0.0.1:{port}/oauth/clever/callback"
    )]);
    let template = demo_users()
        .into_iter()
        .find(|u| {
            u.role_types() == [clever_gateway::identity::UserType::Teacher] && u.district.is_some()
        })
        .expect("a district teacher");
    let mut ids = Vec::new();
    for i in 0..extra {
        let mut u = template.clone();
        u.id = format!("7e57{i:020x}");
        u.first = Some(format!("Load{i}"));
        u.email = Some(format!("load{i}@example.org"));
        ids.push(u.id.clone());
        cfg.users.push(u);
    }
    let sim = SimHandle::start("127.0.0.1:0".parse().unwrap(), cfg)
        .await
        .unwrap();
    (sim, ids)
}

/// Logs a fresh browser in as `user` (through the simulator's sign-in form, or auto-login
/// when `user` is `None`); returns the session cookie value.
async fn login(gw_url: String, user: Option<String>) -> String {
    let c = browser();
    let r = c.get(format!("{gw_url}/who")).send().await.unwrap();
    assert_eq!(r.status(), 302);
    let mut authorize = location(&r);
    if let Some(u) = &user {
        authorize = authorize.replace("/oauth/authorize?", "/oauth/authorize/pick?") + "&user=" + u;
    }
    let a = c.get(&authorize).send().await.unwrap();
    assert_eq!(a.status(), 302, "simulator issues a code");
    let done = c.get(location(&a)).send().await.unwrap();
    assert_eq!(done.status(), 302, "callback signs in");
    let session = set_cookie_value(&done, "clever_gateway").expect("session cookie");
    let r = c.get(format!("{gw_url}/who")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    session
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_hundred_parallel_logins_succeed_with_distinct_sessions() {
    let port = free_port();
    let (sim, ids) = sim_with_users(port, N).await;
    let app = Upstream::start().await;
    let cfg = format!(
        "{}\n[[upstream]]\nname = \"app\"\nurl = \"http://{}\"\n",
        base_config(port, &sim, ""),
        app.addr
    );
    let gw = start_gateway(port, &cfg, sim.client_secret()).await;
    let teacher = user_with_roles(&["teacher"]);

    // One user, 200 browsers at once.
    sim.set_auto_login(Some(&teacher));
    let tasks: Vec<_> = (0..N)
        .map(|_| tokio::spawn(login(gw.url(""), None)))
        .collect();
    let mut sessions = HashSet::new();
    for t in tasks {
        let s = t.await.expect("login task");
        assert!(sessions.insert(s), "session ids never collide");
    }
    assert_eq!(sessions.len(), N);
    let same_user = app
        .requests()
        .iter()
        .filter(|s| s.header("x-clever-user-id").as_deref() == Some(teacher.as_str()))
        .count();
    assert_eq!(same_user, N, "every browser reached the app as the teacher");

    // 200 different users at once.
    sim.set_auto_login(None);
    let before = app.count();
    let tasks: Vec<_> = ids
        .iter()
        .map(|id| tokio::spawn(login(gw.url(""), Some(id.clone()))))
        .collect();
    for t in tasks {
        let s = t.await.expect("login task");
        assert!(sessions.insert(s), "session ids never collide");
    }
    assert_eq!(sessions.len(), 2 * N);
    let seen: HashSet<String> = app.requests()[before..]
        .iter()
        .filter_map(|s| s.header("x-clever-user-id"))
        .collect();
    let want: HashSet<String> = ids.iter().cloned().collect();
    assert_eq!(seen, want, "each browser reached the app as its own user");
    assert_eq!(app.count() - before, N);
}
