# Placeholder route so templates can reverse this name; replaced by the reviewer pages.
from django.http import HttpResponse
from django.urls import path

urlpatterns = [path("", lambda r: HttpResponse("todo"), name="staff-queue")]
