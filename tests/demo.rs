//! `clever-gateway demo`: the real binary with its simulator, sample app and gateway, driven
//! like a browser through the simulator's sign-in page.

mod common;

use std::process::Child;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clever_gateway::identity::UserType;
use clever_gateway::sim::{demo_users, SimUser, DEMO_DISTRICT};

use common::{browser, follow, free_port, location};

const STARTUP: Duration = Duration::from_secs(30);

/// A running `clever-gateway demo`; killed (and reaped) on drop.
struct Demo {
    child: Child,
    /// `http://127.0.0.1:PORT` of the gateway, as printed.
    gateway: String,
    /// The simulator's base URL, as printed.
    sim: String,
    /// The sample app's base URL, as printed.
    app: String,
    /// Everything the demo printed (stdout and stderr).
    output: Arc<Mutex<String>>,
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Demo {
    /// Starts `clever-gateway demo --port <free port>`, reads its banner and waits until the
    /// gateway answers.
    async fn start() -> Demo {
        let port = free_port();
        let (child, rx, output) = common::spawn_demo(port, &[("RUST_LOG", "info")]);

        let mut demo = Demo {
            child,
            gateway: String::new(),
            sim: String::new(),
            app: String::new(),
            output,
        };

        // The banner: "Open  http://127.0.0.1:PORT/ …" then "Clever simulator: URL   sample app: URL".
        let deadline = Instant::now() + STARTUP;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = match rx.recv_timeout(left) {
                Ok(line) => line,
                Err(e) => panic!("demo banner not complete ({e:?}):\n{}", demo.output()),
            };
            let words: Vec<&str> = line.split_whitespace().collect();
            if words.first() == Some(&"Open") {
                let url = words.get(1).expect("URL after Open");
                demo.gateway = url.trim_end_matches('/').to_string();
            }
            if let Some(i) = words.iter().position(|w| *w == "simulator:") {
                demo.sim = words[i + 1].trim_end_matches('/').to_string();
                let j = words
                    .iter()
                    .position(|w| *w == "app:")
                    .expect("sample app URL on the simulator line");
                demo.app = words[j + 1].trim_end_matches('/').to_string();
                break;
            }
        }
        assert!(
            demo.gateway.starts_with("http://127.0.0.1:"),
            "gateway URL printed before the simulator line:\n{}",
            demo.output()
        );
        assert!(demo.sim.starts_with("http://127.0.0.1:"), "{}", demo.sim);
        assert!(demo.app.starts_with("http://127.0.0.1:"), "{}", demo.app);
        assert_ne!(demo.sim, demo.gateway);
        assert_ne!(demo.app, demo.gateway);

        // The banner is printed before the gateway starts listening: poll until it answers.
        let client = reqwest::Client::new();
        loop {
            if let Ok(r) = client.get(demo.url("/_gateway/healthz")).send().await {
                if r.status() == 200 {
                    break;
                }
            }
            assert!(
                matches!(demo.child.try_wait(), Ok(None)),
                "demo exited early:\n{}",
                demo.output()
            );
            assert!(
                Instant::now() < deadline,
                "demo gateway did not answer:\n{}",
                demo.output()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        demo
    }

    fn url(&self, path: &str) -> String {
        format!("{}{}", self.gateway, path)
    }

    /// Everything the demo printed so far, for failure messages.
    fn output(&self) -> String {
        self.output.lock().unwrap().clone()
    }
}

/// The demo user with exactly `roles` in the main demo district.
fn demo_user(roles: &[UserType]) -> SimUser {
    demo_users()
        .into_iter()
        .find(|u| u.role_types() == roles && u.district.as_deref() == Some(DEMO_DISTRICT))
        .expect("demo user with these roles")
}

/// The name the gateway forwards: Clever's `/v3.0/users/{id}` `first`, `middle` and `last`,
/// joined with spaces (unlike `SimUser::full_name`, the middle name is kept).
fn gateway_name(user: &SimUser) -> String {
    [
        user.first.as_ref(),
        user.middle.as_ref(),
        user.last.as_ref(),
    ]
    .into_iter()
    .flatten()
    .map(|s| s.as_str())
    .collect::<Vec<_>>()
    .join(" ")
}

/// `name="value"` attributes of one tag (double-quoted, as the simulator writes them),
/// HTML-unescaped.
fn attrs(tag: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = tag;
    while let Some(eq) = rest.find("=\"") {
        let name = rest[..eq]
            .rsplit(|c: char| c.is_whitespace())
            .next()
            .unwrap_or("")
            .to_string();
        let after = &rest[eq + 2..];
        let end = after.find('"').expect("closing quote");
        let value = html_escape::decode_html_entities(&after[..end]).into_owned();
        out.push((name, value));
        rest = &after[end + 1..];
    }
    out
}

fn attr<'a>(attrs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    attrs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// Every `<tag …>` opening in `html`, with the text up to the matching `</tag>` (or "" when the
/// element has no closing tag).
fn elements<'a>(html: &'a str, tag: &str) -> Vec<(&'a str, &'a str)> {
    let open = format!("<{tag} ");
    let close = format!("</{tag}>");
    let mut out = Vec::new();
    let mut rest = html;
    while let Some(start) = rest.find(&open) {
        let after = &rest[start + open.len()..];
        let gt = after.find('>').expect("tag ends");
        let head = &after[..gt];
        let body_start = &after[gt + 1..];
        let inner = match body_start.find(&close) {
            Some(end) if !body_start[..end].contains(&open) => &body_start[..end],
            _ => "",
        };
        out.push((head, inner));
        rest = body_start;
    }
    out
}

/// The URL a browser goes to when `user` is clicked on the simulator's sign-in page at
/// `page_url`: the GET form's action with its hidden fields, then `user=ID` (form order).
fn pick_url(page_url: &str, html: &str, user: &SimUser) -> String {
    let forms = elements(html, "form");
    let (form_head, form_body) = forms
        .iter()
        .find(|(head, _)| {
            attr(&attrs(head), "action").is_some_and(|a| a.ends_with("/oauth/authorize/pick"))
        })
        .unwrap_or_else(|| panic!("sign-in form on the picker page:\n{html}"));
    let form = attrs(form_head);
    assert_eq!(
        attr(&form, "method")
            .map(str::to_ascii_lowercase)
            .as_deref(),
        Some("get"),
        "{form_head}"
    );
    let mut url = url::Url::parse(page_url)
        .unwrap()
        .join(attr(&form, "action").unwrap())
        .unwrap();
    url.set_query(None);
    {
        let mut q = url.query_pairs_mut();
        for (head, _) in elements(form_body, "input") {
            let a = attrs(head);
            if attr(&a, "type") == Some("hidden") {
                q.append_pair(attr(&a, "name").unwrap(), attr(&a, "value").unwrap_or(""));
            }
        }
        let (button, label) = elements(form_body, "button")
            .into_iter()
            .find(|(head, _)| {
                let a = attrs(head);
                attr(&a, "name") == Some("user") && attr(&a, "value") == Some(user.id.as_str())
            })
            .unwrap_or_else(|| panic!("a button for user {} on the picker:\n{html}", user.id));
        let label = html_escape::decode_html_entities(label);
        assert!(
            label.contains(&user.full_name()),
            "the button for {} is labelled with their name: {label}",
            user.id
        );
        let a = attrs(button);
        q.append_pair("user", attr(&a, "value").unwrap());
    }
    url.to_string()
}

/// Signs `client` in as `user` through the demo's simulator sign-in page, starting at
/// `path` on the gateway; returns the final response (after the callback) and its URL chain.
async fn sign_in_via_picker(
    demo: &Demo,
    client: &reqwest::Client,
    path: &str,
    user: &SimUser,
) -> (reqwest::Response, Vec<String>) {
    // Anonymous browser: the gateway sends it to Clever (here, the simulator).
    let start = client.get(demo.url(path)).send().await.unwrap();
    assert_eq!(start.status(), 302, "anonymous {path} redirects to sign-in");
    let authorize = start.headers()["location"].to_str().unwrap().to_string();
    assert!(
        authorize.starts_with(&format!("{}/oauth/authorize?", demo.sim)),
        "redirected to the demo's simulator: {authorize}"
    );
    let auth_q: Vec<(String, String)> = url::Url::parse(&authorize)
        .unwrap()
        .query_pairs()
        .into_owned()
        .collect();
    let callback = demo.url("/oauth/clever/callback");
    assert!(
        auth_q
            .iter()
            .any(|(k, v)| k == "redirect_uri" && *v == callback),
        "authorize carries the demo's callback: {authorize}"
    );

    // No auto-login in the demo: the simulator shows its sign-in page.
    let picker = client.get(&authorize).send().await.unwrap();
    assert_eq!(picker.status(), 200, "simulator sign-in page");
    let ct = picker.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(ct.starts_with("text/html"), "{ct}");
    let html = picker.text().await.unwrap();
    let shown = html_escape::decode_html_entities(&html).into_owned();
    assert!(shown.contains("sign in as"), "{html}");
    for u in demo_users() {
        assert!(
            shown.contains(&u.full_name()),
            "picker lists {}: {html}",
            u.full_name()
        );
    }

    // Click the user: simulator → gateway callback → back to `path`.
    let pick = pick_url(&authorize, &html, user);
    let pick_q: Vec<(String, String)> = url::Url::parse(&pick)
        .unwrap()
        .query_pairs()
        .into_owned()
        .collect();
    for key in ["client_id", "redirect_uri", "state"] {
        let sent = auth_q.iter().find(|(k, _)| k == key);
        let echoed = pick_q.iter().find(|(k, _)| k == key);
        assert!(sent.is_some(), "gateway sent {key}: {authorize}");
        assert_eq!(sent, echoed, "the picker form carries {key} through");
    }
    let (resp, visited) = follow(client, &pick).await;
    assert!(
        visited
            .iter()
            .any(|u| u.starts_with(&format!("{callback}?"))),
        "login went through the gateway callback: {visited:?}"
    );
    assert_eq!(
        visited.last().map(String::as_str),
        Some(demo.url(path).as_str()),
        "ends back where the browser started: {visited:?}"
    );
    (resp, visited)
}

#[tokio::test]
async fn demo_teacher_signs_in_through_picker_and_app_shows_identity() {
    let demo = Demo::start().await;
    let teacher = demo_user(&[UserType::Teacher]);
    let client = browser();

    let (resp, _) = sign_in_via_picker(&demo, &client, "/", &teacher).await;
    assert_eq!(resp.status(), 200, "{}", demo.output());
    let html = resp.text().await.unwrap();
    assert!(html.contains("Sample school app"), "{html}");
    assert!(html.contains(&teacher.id), "app shows the user id: {html}");
    assert!(
        html.contains("<td>teacher</td>"),
        "app shows the user type: {html}"
    );
    let name = gateway_name(&teacher);
    assert!(name.is_ascii(), "{name}");
    assert!(
        html.contains(&format!("<td>{name}</td>")),
        "app shows the (ASCII) name as sent: {html}"
    );

    // The app's own user (X-Remote-User from the record): a teacher without a district
    // username goes by the email's local part.
    let record = teacher.role(UserType::Teacher).unwrap();
    assert_eq!(record.district_username, None, "{teacher:?}");
    let email = teacher.email.as_deref().unwrap();
    let local = &email[..email.rfind('@').unwrap()];
    assert_eq!(local, "maria.lopez");
    assert!(
        html.contains(&format!(
            "This app knows you as <strong class=\"remote-user\">{local}</strong>"
        )),
        "{html}"
    );
    assert!(
        html.contains("<th>x-remote-user</th><td><code>maria.lopez</code>"),
        "{html}"
    );

    let me = client.get(demo.url("/_gateway/me")).send().await.unwrap();
    assert_eq!(me.status(), 200);
    let me: serde_json::Value = me.json().await.unwrap();
    assert_eq!(me["user_id"], teacher.id.as_str(), "{me}");
    assert_eq!(me["user_types"], serde_json::json!(["teacher"]), "{me}");
    assert_eq!(me["district_id"], DEMO_DISTRICT, "{me}");

    // Teachers are let through to the staff-only route.
    let staff = client.get(demo.url("/staff/")).send().await.unwrap();
    assert_eq!(staff.status(), 200);
    let staff = staff.text().await.unwrap();
    assert!(staff.contains("Sample school app"), "{staff}");
    assert!(staff.contains(&teacher.id), "{staff}");
}

#[tokio::test]
async fn demo_student_refused_on_staff_route() {
    let demo = Demo::start().await;
    let student = demo_user(&[UserType::Student]);
    assert!(
        !student.full_name().is_ascii(),
        "the demo student has a non-ASCII name"
    );
    let client = browser();

    let (resp, _) = sign_in_via_picker(&demo, &client, "/", &student).await;
    assert_eq!(resp.status(), 200, "{}", demo.output());
    let html = resp.text().await.unwrap();
    assert!(html.contains("Sample school app"), "{html}");
    assert!(html.contains(&student.id), "{html}");
    assert!(html.contains("<td>student</td>"), "{html}");
    // The app's own user: the student number.
    let number = student
        .role(UserType::Student)
        .unwrap()
        .student_number
        .clone();
    assert_eq!(number.as_deref(), Some("100234"));
    assert!(
        html.contains("This app knows you as <strong class=\"remote-user\">100234</strong>"),
        "{html}"
    );
    // The demo sends X-Clever-Name; the gateway RFC 8187-encodes it, the app decodes it.
    let name = gateway_name(&student);
    assert!(html.contains("José"), "{html}");
    assert!(
        html.contains(&format!("<td>{name}<br>")),
        "the app shows the decoded name {name:?}: {html}"
    );
    let encoded = format!(
        "UTF-8''{}",
        percent_encoding::utf8_percent_encode(&name, percent_encoding::NON_ALPHANUMERIC)
    );
    assert!(encoded.starts_with("UTF-8''Jos%C3%A9%20"), "{encoded}");
    assert!(
        html.contains(&format!("sent as <code>{encoded}</code>")),
        "the name arrived RFC 8187-encoded as {encoded}: {html}"
    );
    assert!(
        html.contains("<code>x-clever-name</code>"),
        "the app names the header: {html}"
    );

    // The staff-only route refuses a student with the gateway's own 403 page.
    let denied = client.get(demo.url("/staff/")).send().await.unwrap();
    assert_eq!(denied.status(), 403);
    let ct = denied.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(ct.starts_with("text/html"), "{ct}");
    let page = denied.text().await.unwrap();
    assert!(page.contains("Access denied"), "{page}");
    assert!(page.contains("Sign out"), "{page}");
    assert!(
        page.contains(r#"<form method="post" action="/_gateway/logout">"#),
        "{page}"
    );
    assert!(
        !page.contains("Sample school app"),
        "the app was not reached: {page}"
    );

    // Still signed in: the rest of the app keeps working.
    let again = client.get(demo.url("/")).send().await.unwrap();
    assert_eq!(again.status(), 200);
    let me: serde_json::Value = client
        .get(demo.url("/_gateway/me"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["user_id"], student.id.as_str(), "{me}");
}

/// The Instant Login link for `user` on the simulator's home page (`GET {sim}/`), absolute.
async fn instant_login_link(demo: &Demo, client: &reqwest::Client, user: &SimUser) -> String {
    let home = client.get(format!("{}/", demo.sim)).send().await.unwrap();
    assert_eq!(home.status(), 200);
    let html = home.text().await.unwrap();
    let (head, _) = elements(&html, "a")
        .into_iter()
        .find(|(_, label)| html_escape::decode_html_entities(label) == user.full_name())
        .unwrap_or_else(|| panic!("a link for {} on the simulator home page:\n{html}", user.id));
    let href = attr(&attrs(head), "href")
        .expect("href on the Instant Login link")
        .to_string();
    let link = url::Url::parse(&format!("{}/", demo.sim))
        .unwrap()
        .join(&href)
        .unwrap()
        .to_string();
    assert!(
        link.starts_with(&format!("{}/oauth/instant-login?", demo.sim)),
        "{link}"
    );
    link
}

/// The simulator's `GET /_sim/calls` counters.
async fn sim_calls(demo: &Demo) -> serde_json::Value {
    let resp = reqwest::get(format!("{}/_sim/calls", demo.sim))
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    resp.json().await.unwrap()
}

#[tokio::test]
async fn demo_instant_login_lands_signed_in_on_app() {
    let demo = Demo::start().await;
    let teacher = demo_user(&[UserType::Teacher]);
    let client = browser();

    let link = instant_login_link(&demo, &client, &teacher).await;
    // Simulator → gateway callback (no state) → bounce to the simulator's authorize, which
    // answers at once for the signed-in browser → callback with state → the app.
    let (resp, visited) = follow(&client, &link).await;
    let callback = demo.url("/oauth/clever/callback");
    let authorize = format!("{}/oauth/authorize?", demo.sim);
    let callbacks = visited
        .iter()
        .filter(|u| u.starts_with(&format!("{callback}?")))
        .count();
    assert_eq!(
        callbacks, 2,
        "Portal code, then the bounced one: {visited:?}"
    );
    assert!(
        visited.iter().any(|u| u.starts_with(&authorize)),
        "the gateway bounced through authorize: {visited:?}"
    );
    assert_eq!(
        visited.last().map(String::as_str),
        Some(demo.url("/").as_str()),
        "ends on the app, not the picker: {visited:?}"
    );
    assert_eq!(resp.status(), 200, "{visited:?}\n{}", demo.output());
    let html = resp.text().await.unwrap();
    assert!(html.contains("Sample school app"), "{html}");
    assert!(html.contains(&teacher.id), "app shows the user id: {html}");
    assert!(!html.contains("sign in as"), "{html}");

    let calls = sim_calls(&demo).await;
    assert_eq!(calls["tokens"], 1, "exactly one code exchanged: {calls}");
    assert_eq!(calls["authorize"], 1, "one bounce: {calls}");

    let me: serde_json::Value = client
        .get(demo.url("/_gateway/me"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["user_id"], teacher.id.as_str(), "{me}");
}

#[tokio::test]
async fn demo_logout_then_pick_another_user() {
    let demo = Demo::start().await;
    let teacher = demo_user(&[UserType::Teacher]);
    let student = demo_user(&[UserType::Student]);
    let client = browser();

    let (resp, _) = sign_in_via_picker(&demo, &client, "/", &teacher).await;
    assert_eq!(resp.status(), 200, "{}", demo.output());
    assert!(resp.text().await.unwrap().contains(&teacher.id));

    // Sign out of the demo: the page at /_gateway/logout asks, its button POSTs; the gateway
    // ends its session and sends the browser on to the simulator, which ends its own.
    let ask = client
        .get(demo.url("/_gateway/logout"))
        .send()
        .await
        .unwrap();
    assert_eq!(ask.status(), 200);
    let csp = ask.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        csp.contains(&format!("form-action 'self' {}", demo.sim)),
        "the form may lead to the simulator's sign-out: {csp}"
    );
    let form = elements(&ask.text().await.unwrap(), "form")
        .into_iter()
        .map(|(tag, _)| attrs(tag))
        .find(|a| attr(a, "action") == Some("/_gateway/logout"))
        .expect("a sign-out form");
    assert_eq!(attr(&form, "method"), Some("post"));
    let posted = client
        .post(demo.url("/_gateway/logout"))
        .header("origin", demo.url(""))
        .header("sec-fetch-site", "same-origin")
        .send()
        .await
        .unwrap();
    assert_eq!(posted.status(), 302);
    let next = posted.url().join(&location(&posted)).unwrap().to_string();
    let (out, visited) = follow(&client, &next).await;
    assert!(
        visited
            .last()
            .is_some_and(|u| u.starts_with(&format!("{}/oauth/logout?", demo.sim))),
        "{visited:?}"
    );
    assert_eq!(out.status(), 200);
    let html = out.text().await.unwrap();
    assert!(
        html.contains("Signed out of the Clever simulator"),
        "{html}"
    );
    let again = elements(&html, "a")
        .into_iter()
        .find(|(_, label)| *label == "Sign in again")
        .unwrap_or_else(|| panic!("a Sign in again link:\n{html}"));
    assert_eq!(
        attr(&attrs(again.0), "href"),
        Some(demo.url("/").as_str()),
        "{html}"
    );
    let me = client.get(demo.url("/_gateway/me")).send().await.unwrap();
    assert_ne!(me.status(), 200, "signed out of the gateway");

    // The next visit shows the picker again, not an automatic sign-in as the teacher.
    let (picker, visited) = follow(&client, &demo.url("/")).await;
    let page_url = visited.last().unwrap().clone();
    assert!(
        page_url.starts_with(&format!("{}/oauth/authorize?", demo.sim)),
        "{visited:?}"
    );
    assert_eq!(picker.status(), 200);
    let html = picker.text().await.unwrap();
    assert!(
        html_escape::decode_html_entities(&html).contains("sign in as"),
        "{html}"
    );

    // And another user can be picked.
    let (resp, visited) = follow(&client, &pick_url(&page_url, &html, &student)).await;
    assert_eq!(
        visited.last().map(String::as_str),
        Some(demo.url("/").as_str()),
        "{visited:?}"
    );
    assert_eq!(resp.status(), 200);
    let html = resp.text().await.unwrap();
    assert!(html.contains(&student.id), "{html}");
    assert!(!html.contains(&teacher.id), "{html}");
}
