"""The Django admin of the status webhooks: register an endpoint for an API client (the secret is
shown once, in the confirmation message), disable one, read deliveries and attempts, replay."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages

from service.accounts.roles import actor_for_user
from service.common.errors import ApplicationError

from . import services
from .events import EVENT_TYPES
from .models import WebhookAttempt, WebhookDelivery, WebhookEndpoint


class EndpointForm(forms.ModelForm):
    url = forms.URLField(max_length=2000, assume_scheme="https", help_text="Where events are POSTed: an http(s) URL.")
    events = forms.MultipleChoiceField(choices=[(e, e) for e in EVENT_TYPES], widget=forms.CheckboxSelectMultiple)

    class Meta:
        model = WebhookEndpoint
        fields = ["api_client", "url", "description", "events"]


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(admin.ModelAdmin):
    form = EndpointForm
    list_display = ["url", "api_client", "is_active", "created_at"]
    list_filter = ["is_active"]
    actions = ["disable"]

    def get_readonly_fields(self, request, obj=None):
        return ["api_client", "url", "description", "events", "is_active", "created_at", "disabled_at"] if obj else []

    def get_fields(self, request, obj=None):
        return ["api_client", "url", "description", "events"] + (["is_active", "created_at", "disabled_at"] if obj else [])

    def save_model(self, request, obj, form, change):
        if change:
            return  # endpoints are not edited: disable one and register another
        data = form.cleaned_data
        try:
            endpoint, secret = services.webhook_endpoint_create(
                actor=actor_for_user(request.user), api_client_id=data["api_client"].pk, url=data["url"], events=data["events"], description=data["description"]
            )
        except ApplicationError as exc:
            raise forms.ValidationError(exc.detail) from exc
        obj.pk = endpoint.pk
        messages.warning(request, f"Signing secret of the new endpoint (shown once, give it to the client): {secret}")

    @admin.action(description="Disable the selected endpoints")
    def disable(self, request, queryset):
        for endpoint in queryset:
            services.webhook_endpoint_disable(actor=actor_for_user(request.user), endpoint_id=endpoint.pk)


class AttemptInline(admin.TabularInline):
    model = WebhookAttempt
    extra = 0
    can_delete = False
    readonly_fields = ["number", "attempted_at", "status_code", "latency_ms", "error", "replay"]

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(admin.ModelAdmin):
    list_display = ["id", "event_type", "endpoint", "status", "attempt_count", "last_status_code", "created_at"]
    list_filter = ["status", "event_type"]
    readonly_fields = [f.name for f in WebhookDelivery._meta.fields]
    inlines = [AttemptInline]
    actions = ["replay"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    @admin.action(description="Replay the selected deliveries")
    def replay(self, request, queryset):
        for delivery in queryset:
            try:
                services.webhook_delivery_replay(actor=actor_for_user(request.user), delivery_id=delivery.pk)
            except ApplicationError as exc:
                messages.error(request, f"{delivery.pk}: {exc.detail}")
