# Placeholder route so templates can reverse this name; replaced by the auditor pages.
from django.http import HttpResponse
from django.urls import path

urlpatterns = [path("", lambda r: HttpResponse("todo"), name="audit-log")]
