"""The data subject's pages (server-rendered, usable without JavaScript)."""

from django.urls import path

from . import views_public

urlpatterns = [
    path("", views_public.home, name="home"),
    path("request/new/", views_public.request_new, name="request-new"),
    path("request/verify/", views_public.request_verify, name="request-verify"),
    path("request/status/", views_public.request_status, name="request-status"),
]
