"""A small Django site behind the gateway, for tests/django.rs.

It knows its users only by the header the gateway builds (`X-Remote-User`, set with
`[upstream.set_headers]`), through Django's own RemoteUserMiddleware and RemoteUserBackend,
which create a Django user the first time a name arrives. Debian's python3-django is enough.

    /usr/bin/python3 tests/django_app/serve.py PORT DB_FILE

prints `ready http://127.0.0.1:PORT` once it serves, then serves until killed.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def main():
    port, db = int(sys.argv[1]), sys.argv[2]
    os.environ["GATEWAYAPP_DB"] = db
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "gatewayapp.settings")
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0, interactive=False)
    from django.core.servers.basehttp import WSGIServer, get_internal_wsgi_application, run

    print(f"ready http://127.0.0.1:{port}", flush=True)
    run("127.0.0.1", port, get_internal_wsgi_application(), threading=True, server_cls=WSGIServer)


if __name__ == "__main__":
    main()
