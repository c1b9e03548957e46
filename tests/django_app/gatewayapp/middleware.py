"""Django's RemoteUserMiddleware, reading the header the gateway sets instead of REMOTE_USER."""

from django.contrib.auth.middleware import RemoteUserMiddleware


class GatewayRemoteUserMiddleware(RemoteUserMiddleware):
    # `X-Remote-User` as WSGI presents it. The gateway removes any client-sent copy (and its
    # `X_Remote_User` spelling) before it forwards a request.
    header = "HTTP_X_REMOTE_USER"
