"""Routes of the test site."""

from django.urls import path

from . import views

urlpatterns = [
    path("", views.home),
    path("whoami", views.whoami),
    path("logout/", views.logout_view),
    path("public/whoami", views.whoami),
]
