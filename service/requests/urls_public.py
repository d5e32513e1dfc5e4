# Placeholder routes so templates can reverse these names; replaced by the public pages.
from django.http import HttpResponse
from django.urls import path

urlpatterns = [
    path("request/new/", lambda r: HttpResponse("todo"), name="request-new"),
    path("request/status/", lambda r: HttpResponse("todo"), name="request-status"),
]
