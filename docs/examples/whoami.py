"""whoami: a tiny WSGI app behind clever-gateway that shows who is signed in.

Standard library only. Run it on loopback, so that only the gateway can reach it:

    python3 whoami.py            # http://127.0.0.1:9000, put behind [[upstream]] url

The gateway removes any X-Clever-* header a client sends and sets its own, so when
X-Clever-User-Id is present, the gateway put it there. Absent means the request came through a
public path (or did not come through the gateway at all): treat it as "not signed in".
"""

from html import escape
from urllib.parse import unquote
from wsgiref.simple_server import make_server

RFC8187_PREFIX = "UTF-8''"


def decode_rfc8187(value):
    """Decodes X-Clever-Name / X-Clever-Email as the gateway sends them.

    Printable ASCII arrives as it is ("Ada Lovelace"); anything else as RFC 8187 ext-value,
    "UTF-8''" followed by the percent-encoded UTF-8 bytes ("UTF-8''Jos%C3%A9" is "José"). The
    gateway also encodes an ASCII value that happens to start with "UTF-8''", so the prefix
    is never ambiguous.
    """
    if value is None or not value.startswith(RFC8187_PREFIX):
        return value
    return unquote(value[len(RFC8187_PREFIX):], encoding="utf-8", errors="replace")


def identity(environ):
    """The signed-in user from the gateway's headers, or None. WSGI (like CGI and PHP) turns
    header X-Clever-User-Id into environ key HTTP_X_CLEVER_USER_ID."""
    user_id = environ.get("HTTP_X_CLEVER_USER_ID")
    if not user_id:
        return None
    return {
        "user_id": user_id,
        # Several roles arrive comma-separated: "teacher,district_admin".
        "user_types": [t for t in environ.get("HTTP_X_CLEVER_USER_TYPE", "").split(",") if t],
        # Absent for teacher-authorized (Library) logins.
        "district_id": environ.get("HTTP_X_CLEVER_DISTRICT_ID"),
        # Only when the upstream turns them on in [upstream.headers].
        "name": decode_rfc8187(environ.get("HTTP_X_CLEVER_NAME")),
        "email": decode_rfc8187(environ.get("HTTP_X_CLEVER_EMAIL")),
    }


def app(environ, start_response):
    who = identity(environ)
    if who is None:
        start_response("401 Unauthorized", [("Content-Type", "text/plain; charset=utf-8")])
        return [b"Not signed in: open this app through clever-gateway.\n"]
    is_staff = bool({"teacher", "staff", "district_admin"} & set(who["user_types"]))
    rows = "".join(
        f"<tr><th>{escape(k)}</th><td>{escape(str(v))}</td></tr>" for k, v in who.items()
    )
    body = (
        "<!doctype html><meta charset=utf-8><title>whoami</title>"
        f"<h1>Hello, {escape(who['name'] or who['user_id'])}</h1>"
        f"<p>{'Staff view' if is_staff else 'Student view'}</p>"
        f"<table>{rows}</table>"
        '<form method="post" action="/_gateway/logout"><button>Sign out</button></form>'
    ).encode("utf-8")
    start_response(
        "200 OK",
        [
            ("Content-Type", "text/html; charset=utf-8"),
            ("Content-Length", str(len(body))),
            # Per-user page: never stored by a shared cache.
            ("Cache-Control", "private, no-store"),
        ],
    )
    return [body]


if __name__ == "__main__":
    with make_server("127.0.0.1", 9000, app) as server:
        print("whoami on http://127.0.0.1:9000 (reach it through clever-gateway)")
        server.serve_forever()
