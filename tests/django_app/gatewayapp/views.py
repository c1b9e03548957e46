"""Pages of the test site: who Django thinks is signed in, and the site's own sign-out."""

from django.contrib.auth import get_user_model, logout
from django.http import HttpResponse, JsonResponse
from django.utils.html import escape


def home(request):
    name = request.user.get_username() if request.user.is_authenticated else "nobody"
    return HttpResponse(
        f"<!doctype html><title>Django</title><h1>Signed in to Django as {escape(name)}</h1>"
        '<p><a href="/logout/">Sign out</a></p>'
    )


def whoami(request):
    user = request.user
    return JsonResponse(
        {
            "authenticated": user.is_authenticated,
            "username": user.get_username() if user.is_authenticated else None,
            # Every header that could name the user, as Django received it.
            "remote_user_headers": {
                k: v for k, v in request.META.items() if "REMOTE_USER" in k.upper()
            },
            "users": sorted(get_user_model().objects.values_list("username", flat=True)),
        }
    )


def logout_view(request):
    logout(request)
    return HttpResponse("<!doctype html><title>Signed out</title><h1>Signed out of Django</h1>")
