//! The nginx `auth_request` recipe (`deploy/forward-auth/nginx.conf`) with Debian's nginx on
//! loopback in front of a recording app, the real gateway binary as the auth server and the
//! Clever simulator: a signed-in request reaches the app with identity headers, an anonymous
//! one is redirected to login, and a client's own `X-Clever-User-Id` never reaches the app.
//! Skipped, with a message, when there is no nginx (`apt-get install nginx`).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use reqwest::cookie::CookieStore;

const RECIPE: &str = include_str!("../deploy/forward-auth/nginx.conf");

fn nginx_binary() -> Option<PathBuf> {
    ["/usr/sbin/nginx", "/usr/bin/nginx"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

/// nginx running the recipe in the foreground from a temporary prefix; killed on drop.
struct Nginx {
    child: Child,
    dir: tempfile::TempDir,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Nginx {
    fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default()
    }
}

/// The recipe with its example addresses replaced by the test's loopback ports.
fn recipe_for(port: u16, gateway: u16, app: std::net::SocketAddr) -> String {
    let s = RECIPE
        .replace("listen 80;", &format!("listen 127.0.0.1:{port};"))
        .replace("127.0.0.1:8080", &format!("127.0.0.1:{gateway}"))
        .replace("127.0.0.1:9000", &app.to_string());
    assert!(s.contains(&format!(
        "127.0.0.1:{gateway}/_gateway/auth?upstream=gradebook"
    )));
    s
}

async fn start_nginx(bin: &Path, port: u16, server_block: &str) -> Nginx {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().display();
    let conf = format!(
        "daemon off;\nmaster_process off;\npid {p}/nginx.pid;\nerror_log {p}/error.log info;\n\
         events {{ worker_connections 64; }}\n\
         http {{\n access_log off;\n client_body_temp_path {p}/body;\n proxy_temp_path {p}/proxy;\n\
         fastcgi_temp_path {p}/fastcgi;\n uwsgi_temp_path {p}/uwsgi;\n scgi_temp_path {p}/scgi;\n\
         {server_block}\n}}\n"
    );
    let conf_path = dir.path().join("nginx.conf");
    std::fs::write(&conf_path, conf).unwrap();
    let child = Command::new(bin)
        .arg("-p")
        .arg(dir.path())
        .arg("-e")
        .arg(dir.path().join("error.log"))
        .arg("-c")
        .arg(&conf_path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start nginx");
    let mut n = Nginx { child, dir };
    let deadline = Instant::now() + Duration::from_secs(10);
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        assert!(
            matches!(n.child.try_wait(), Ok(None)),
            "nginx exited:\n{}",
            n.error_log()
        );
        assert!(
            Instant::now() < deadline,
            "nginx did not start:\n{}",
            n.error_log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    n
}

#[tokio::test]
async fn nginx_auth_request_recipe_end_to_end() {
    let Some(bin) = nginx_binary() else {
        eprintln!("SKIP nginx_auth_request_recipe_end_to_end: no nginx (apt-get install nginx)");
        return;
    };
    let (nginx_port, gw_port) = (free_port(), free_port());
    let user = user_with_roles(&["teacher"]);
    // Clever sends the browser back through nginx: the callback is on nginx's port.
    let sim = sim_for(nginx_port, Some(&user)).await;
    let app = Upstream::start().await;
    let cfg = base_config(nginx_port, &sim, "").replacen(
        &format!("listen = [\"127.0.0.1:{nginx_port}\"]"),
        &format!("listen = [\"127.0.0.1:{gw_port}\"]\ntrusted_proxies = [\"127.0.0.1/32\"]"),
        1,
    );
    let cfg = format!(
        "{cfg}\n[[upstream]]\nname = \"gradebook\"\nurl = \"http://{}\"\n",
        app.addr
    );
    let _gw = start_gateway(gw_port, &cfg, sim.client_secret()).await;
    let nginx = start_nginx(&bin, nginx_port, &recipe_for(nginx_port, gw_port, app.addr)).await;
    let url = |p: &str| format!("http://127.0.0.1:{nginx_port}{p}");

    // Anonymous, with a forged identity: redirected to login, the app sees nothing.
    let jar = std::sync::Arc::new(reqwest::cookie::Jar::default());
    let client = reqwest::Client::builder()
        .cookie_provider(jar.clone())
        .redirect(reqwest::redirect::Policy::none())
        .default_headers(
            [(reqwest::header::ACCEPT, "text/html".parse().unwrap())]
                .into_iter()
                .collect(),
        )
        .build()
        .unwrap();
    let r = client
        .get(url("/grades?term=2"))
        .header("x-clever-user-id", "forged")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302, "{}", nginx.error_log());
    let login = location(&r);
    assert!(
        login.ends_with("/_gateway/login?rd=%2Fgrades%3Fterm%3D2"),
        "{login}"
    );
    assert_eq!(app.count(), 0, "anonymous request reached the app");

    // Signing in through nginx ends on the app with the gateway's identity headers.
    let (r, visited) = follow(&client, &url("/grades?term=2")).await;
    assert_eq!(r.status(), 200, "{visited:?}\n{}", nginx.error_log());
    assert_eq!(r.text().await.unwrap(), "upstream ok");
    let seen = app.last();
    assert_eq!(seen.uri, "/grades?term=2");
    assert_eq!(seen.header("x-clever-user-id"), Some(user.clone()));
    assert_eq!(
        seen.header("x-clever-user-type").as_deref(),
        Some("teacher")
    );

    // Signed in, with forged identity headers: only the gateway's reach the app.
    let r = client
        .get(url("/again"))
        .header("x-clever-user-id", "forged")
        .header("x_clever_user_id", "forged")
        .header("x-clever-email", "forged@example.org")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let seen = app.last();
    assert_eq!(seen.all("x-clever-user-id"), vec![user.clone()]);
    assert!(seen.header("x_clever_user_id").is_none());
    assert!(seen.header("x-clever-email").is_none());

    // The app's own cookies pass; the gateway's session cookie does not.
    let session = jar
        .cookies(&url("/").parse().unwrap())
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    assert!(session.contains("clever_gateway="), "{session}");
    let r = reqwest::Client::new()
        .get(url("/cookies"))
        .header("cookie", format!("a=1; {session}; b=2"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(app.last().all("cookie"), vec!["a=1; b=2".to_string()]);
}
