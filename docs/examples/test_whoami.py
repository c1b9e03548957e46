"""Tests for whoami.py: the WSGI app with fake environs, and once through a real wsgiref server
so that the header -> HTTP_* mapping is the real one. Standard library only. When `php` is
installed, whoami.php is linted and served by PHP's built-in server for the same checks
(skipped otherwise).

    python3 -m unittest docs/examples/test_whoami.py      # from the repository root
"""

import http.client
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import unittest
from wsgiref.simple_server import WSGIRequestHandler, make_server
from wsgiref.util import setup_testing_defaults

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import whoami  # noqa: E402


def call(headers):
    """Calls the app with the given CGI-style keys; returns (status, headers, body text)."""
    environ = {}
    setup_testing_defaults(environ)
    environ.update(headers)
    seen = {}

    def start_response(status, response_headers):
        seen["status"], seen["headers"] = status, dict(response_headers)

    body = b"".join(whoami.app(environ, start_response))
    return seen["status"], seen["headers"], body.decode("utf-8")


class DecodeRfc8187(unittest.TestCase):
    # Every encoded value below is what the gateway's own encoder (identity::header_safe_value)
    # produces for the decoded one.

    def test_ascii_is_returned_as_is(self):
        self.assertEqual(whoami.decode_rfc8187("Ada Lovelace"), "Ada Lovelace")
        self.assertEqual(whoami.decode_rfc8187("O'Brien"), "O'Brien")
        self.assertEqual(whoami.decode_rfc8187("50% done"), "50% done")

    def test_utf8_values_are_decoded(self):
        self.assertEqual(whoami.decode_rfc8187("UTF-8''Jos%C3%A9"), "José")
        self.assertEqual(
            whoami.decode_rfc8187("UTF-8''Fran%C3%A7ois%20M%C3%BCller"), "François Müller"
        )
        self.assertEqual(whoami.decode_rfc8187("UTF-8''%E6%9D%8E%E5%B0%8F%E9%BE%99"), "李小龙")

    def test_prefix_itself_is_decoded(self):
        # The gateway encodes an ASCII value that starts with UTF-8'' (so it stays unambiguous).
        self.assertEqual(whoami.decode_rfc8187("UTF-8''UTF-8%27%27x"), "UTF-8''x")

    def test_bad_bytes_do_not_raise(self):
        self.assertEqual(whoami.decode_rfc8187("UTF-8''%FF"), "\ufffd")

    def test_none_stays_none(self):
        self.assertIsNone(whoami.decode_rfc8187(None))


class App(unittest.TestCase):
    def test_without_identity_is_401(self):
        status, _, body = call({})
        self.assertTrue(status.startswith("401"))
        self.assertIn("Not signed in", body)

    def test_empty_user_id_is_not_signed_in(self):
        status, _, _ = call({"HTTP_X_CLEVER_USER_ID": ""})
        self.assertTrue(status.startswith("401"))

    def test_student(self):
        status, headers, body = call(
            {
                "HTTP_X_CLEVER_USER_ID": "5fc43758db087d0be186c29d",
                "HTTP_X_CLEVER_USER_TYPE": "student",
                "HTTP_X_CLEVER_DISTRICT_ID": "5d0a9e5d0958b300014e49d2",
            }
        )
        self.assertEqual(status, "200 OK")
        self.assertEqual(headers["Cache-Control"], "private, no-store")
        self.assertIn("Hello, 5fc43758db087d0be186c29d", body)
        self.assertIn("Student view", body)
        self.assertIn("5d0a9e5d0958b300014e49d2", body)

    def test_multi_role_teacher_admin_with_encoded_name(self):
        status, _, body = call(
            {
                "HTTP_X_CLEVER_USER_ID": "5fc43758db087d0be186c29d",
                "HTTP_X_CLEVER_USER_TYPE": "teacher,district_admin",
                "HTTP_X_CLEVER_NAME": "UTF-8''Jos%C3%A9%20Garc%C3%ADa",
                "HTTP_X_CLEVER_EMAIL": "jgarcia@example-district.org",
            }
        )
        self.assertEqual(status, "200 OK")
        self.assertIn("Hello, José García", body)
        self.assertIn("Staff view", body)
        self.assertIn("[&#x27;teacher&#x27;, &#x27;district_admin&#x27;]", body)
        self.assertIn("jgarcia@example-district.org", body)

    def test_identity_values_are_html_escaped(self):
        _, _, body = call(
            {
                "HTTP_X_CLEVER_USER_ID": "5fc43758db087d0be186c29d",
                "HTTP_X_CLEVER_USER_TYPE": "student",
                "HTTP_X_CLEVER_NAME": "<script>alert(1)</script>",
            }
        )
        self.assertNotIn("<script>", body)
        self.assertIn("&lt;script&gt;", body)

    def test_identity_parses_headers(self):
        who = whoami.identity(
            {
                "HTTP_X_CLEVER_USER_ID": "u1",
                "HTTP_X_CLEVER_USER_TYPE": "teacher,staff",
            }
        )
        self.assertEqual(who["user_types"], ["teacher", "staff"])
        self.assertIsNone(who["district_id"])
        self.assertIsNone(who["name"])


class QuietHandler(WSGIRequestHandler):
    def log_message(self, *args):
        pass


class ThroughRealServer(unittest.TestCase):
    """Headers as the gateway sends them on the wire, through wsgiref's own environ building."""

    def test_headers_reach_the_app(self):
        server = make_server("127.0.0.1", 0, whoami.app, handler_class=QuietHandler)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            conn = http.client.HTTPConnection("127.0.0.1", server.server_port, timeout=5)
            conn.request(
                "GET",
                "/",
                headers={
                    "X-Clever-User-Id": "5fc43758db087d0be186c29d",
                    "X-Clever-User-Type": "teacher,district_admin",
                    "X-Clever-District-Id": "5d0a9e5d0958b300014e49d2",
                    "X-Clever-Name": "UTF-8''Zo%C3%AB",
                },
            )
            resp = conn.getresponse()
            body = resp.read().decode("utf-8")
            conn.close()
        finally:
            server.shutdown()
            server.server_close()
        self.assertEqual(resp.status, 200)
        self.assertIn("Hello, Zoë", body)
        self.assertIn("Staff view", body)


HERE = os.path.dirname(os.path.abspath(__file__))
GATEWAY_HEADERS = {
    "X-Clever-User-Id": "5fc43758db087d0be186c29d",
    "X-Clever-User-Type": "teacher,district_admin",
    "X-Clever-District-Id": "5d0a9e5d0958b300014e49d2",
    "X-Clever-Name": "UTF-8''Jos%C3%A9%20Garc%C3%ADa",
}


@unittest.skipUnless(shutil.which("php"), "php is not installed: whoami.php not checked")
class Php(unittest.TestCase):
    def test_lint(self):
        res = subprocess.run(
            ["php", "-l", os.path.join(HERE, "whoami.php")], capture_output=True, text=True
        )
        self.assertEqual(res.returncode, 0, res.stdout + res.stderr)

    def get(self, port, headers):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        conn.request("GET", "/", headers=headers)
        resp = conn.getresponse()
        body = resp.read().decode("utf-8", errors="replace")
        conn.close()
        return resp.status, body

    def test_served_by_php(self):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        proc = subprocess.Popen(
            ["php", "-S", f"127.0.0.1:{port}", os.path.join(HERE, "whoami.php")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 10
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        self.fail("php -S did not start")
                    time.sleep(0.05)
            status, body = self.get(port, {})
            self.assertEqual(status, 401)
            status, body = self.get(port, GATEWAY_HEADERS)
            self.assertEqual(status, 200)
            self.assertIn("Hello, José García", body)
            self.assertIn("Staff view", body)
            self.assertIn("roles teacher, district_admin", body)
            status, body = self.get(
                port,
                {
                    "X-Clever-User-Id": "u1",
                    "X-Clever-User-Type": "student",
                    "X-Clever-Name": "<b>x</b>",
                },
            )
            self.assertIn("Student view", body)
            self.assertNotIn("<b>x</b>", body)
        finally:
            proc.terminate()
            proc.wait(timeout=5)


if __name__ == "__main__":
    unittest.main()
