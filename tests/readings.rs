//! Path variants through the real binary (issue 14, point 1), in the demo's layout: `/` open to
//! every signed-in user (with a public `/public/`), `/staff` for teachers only, both the same
//! app. Whatever its literal form, a path that an app server reads as under `/staff` gets
//! `/staff`'s policy or a 400, never only `/`'s; and a public path stays public only if every
//! reading of it does.

mod common;

use common::*;

/// The simulator signing in as `user`, one recording app behind two routes, and the gateway.
async fn demo_layout(user: &str) -> Env {
    on_a_free_port(async |port| {
        let sim = sim_for(port, Some(user)).await;
        let app = Upstream::start().await;
        let cfg = format!(
            "{}\n[[upstream]]\nname = \"app\"\nurl = \"http://{a}\"\npublic_paths = [\"/public/\"]\n\
             [[upstream]]\nname = \"staff-only\"\nurl = \"http://{a}\"\npath_prefix = \"/staff\"\n\
             allow_user_types = [\"teacher\", \"staff\", \"district_admin\"]\n",
            base_config(port, &sim, ""),
            a = app.addr,
        );
        let gw = try_start_gateway_env(port, &cfg, sim.client_secret(), &[]).await?;
        Ok(Env { sim, app, gw })
    })
    .await
}

/// `GET path` on a connection of its own, with `cookie` (when signed in): the status.
async fn status(env: &Env, path: &str, cookie: Option<&str>) -> u16 {
    let cookie = cookie.map_or(String::new(), |c| format!("Cookie: {c}\r\n"));
    let answer = raw(
        env.gw.port,
        format!(
            "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: application/json\r\n{cookie}Connection: close\r\n\r\n"
        )
        .as_bytes(),
    )
    .await;
    raw_status(&answer)
}

/// Each of these is `/staff/x` to some app server (Tomcat, Jetty, IIS, Express, ASP.NET Core,
/// or a stack that applies NFKC).
const STAFF_VARIANTS: &[&str] = &[
    "/STAFF/x",
    "/Staff/x",
    "/staff;x/x",
    "/staff;jsessionid=1/x",
    "/staff./x",
    "/staff%20/x",
    "/staff%2e/x",
    "/STAFF;x./x",
    "/%EF%BD%93%EF%BD%94%EF%BD%81%EF%BD%86%EF%BD%86/x",
    "/%C5%BFtaff/x",
    "/public/%EF%BC%8E%EF%BC%8E/staff/x",
    "/public/%EF%BC%8E%EF%BC%8E%EF%BC%8Fstaff/x",
];

#[tokio::test]
async fn student_refused_on_every_variant_of_the_staff_route() {
    let student = user_with_roles(&["student"]);
    let env = demo_layout(&student).await;
    let cookie = session_cookie(&env, &browser()).await;
    assert_eq!(
        status(&env, "/x", Some(&cookie)).await,
        200,
        "the open route"
    );
    assert_eq!(status(&env, "/staff/x", Some(&cookie)).await, 403);
    let before = env.app.count();
    let mut forwarded = Vec::new();
    for path in STAFF_VARIANTS {
        let s = status(&env, path, Some(&cookie)).await;
        if s != 403 && s != 400 {
            forwarded.push(format!("{path} -> {s}"));
        }
    }
    assert!(
        forwarded.is_empty(),
        "a student got past /staff's policy: {forwarded:?}"
    );
    assert_eq!(env.app.count(), before, "nothing reached the app");
    assert!(
        env.gw
            .logs()
            .lines()
            .any(|l| l.contains("policy denied") && l.contains("staff-only")),
        "denials are logged under the staff route:\n{}",
        env.gw.logs()
    );
}

#[tokio::test]
async fn teacher_reaches_the_staff_route_through_variants_but_not_unsafe_ones() {
    let teacher = user_with_roles(&["teacher"]);
    let env = demo_layout(&teacher).await;
    let cookie = session_cookie(&env, &browser()).await;
    for path in ["/STAFF/x", "/staff;jsessionid=1/x", "/Grades/Report.aspx"] {
        assert_eq!(status(&env, path, Some(&cookie)).await, 200, "{path}");
        let seen = env.app.last();
        assert_eq!(seen.uri, *path, "forwarded as sent");
        assert_eq!(
            seen.header("x-clever-user-type").as_deref(),
            Some("teacher")
        );
    }
    // A path some server reads as `..` (full-width `．．．` is `...` under NFKC), or with a
    // backslash, is refused for everyone, signed in or not.
    let before = env.app.count();
    for path in [
        "/staff/%EF%BC%8E%EF%BC%8E%EF%BC%8E/x",
        "/staff/x%EF%BC%BC..%EF%BC%BCadmin",
    ] {
        assert_eq!(status(&env, path, Some(&cookie)).await, 400, "{path}");
    }
    assert_eq!(env.app.count(), before, "nothing reached the app");
}

#[tokio::test]
async fn public_path_not_climbable_by_any_reading() {
    let student = user_with_roles(&["student"]);
    let env = demo_layout(&student).await;
    assert_eq!(status(&env, "/public/app.css", None).await, 200, "public");
    let before = env.app.count();
    for path in [
        "/public/%EF%BC%8E%EF%BC%8E/x",
        "/public/%EF%BC%8E%EF%BC%8E%EF%BC%8Fx",
        "/public/a/%EF%BC%8E%EF%BC%8E/%EF%BC%8E%EF%BC%8E/x",
        "/public/%E2%80%A5/x",
        "/PUBLIC/x",
        "/public;x/x",
    ] {
        assert_eq!(
            status(&env, path, None).await,
            401,
            "{path}: needs a session"
        );
    }
    for path in [
        "/public/%EF%BC%8E%EF%BC%8E%EF%BC%8E/x",
        "/public/%EF%BC%BCx",
        "/public/%EF%BC%85%EF%BC%92%EF%BD%85/x",
    ] {
        assert_eq!(status(&env, path, None).await, 400, "{path}");
    }
    assert_eq!(
        env.app.count(),
        before,
        "nothing reached the app anonymously"
    );
}
