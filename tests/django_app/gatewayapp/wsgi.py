"""WSGI entry point of the test site."""

from django.core.wsgi import get_wsgi_application

application = get_wsgi_application()
