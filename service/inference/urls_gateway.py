"""The gateway process's URLconf. `run_gateway` serves it; the web app does not mount it (its
ROOT_URLCONF stays service.config.urls), so none of these routes exists on the web app."""

from django.urls import path

from . import api

urlpatterns = [
    path("", api.Index.as_view(), name="gateway-index"),
    path("healthz", api.Health.as_view(), name="gateway-health"),
    path("v1/models", api.Models.as_view(), name="gateway-models"),
    path("v1/models/<path:model_id>", api.Model.as_view(), name="gateway-model"),
    path("v1/chat/completions", api.ChatCompletions.as_view(), name="gateway-chat-completions"),
    path("v1/completions", api.Completions.as_view(), name="gateway-completions"),
    path("api/v1/generate", api.Generate.as_view(), name="gateway-generate"),
]

handler404 = "service.inference.api.not_found"
handler500 = "service.inference.api.server_error"
