"""The web app's inference pages (mounted at /staff/playground/ by service.config.urls)."""

from django.urls import path

from . import views

urlpatterns = [
    path("", views.playground, name="playground"),
]
