from django.apps import AppConfig


class WebhooksConfig(AppConfig):
    name = "service.webhooks"
    label = "webhooks"
    verbose_name = "Status webhooks"

    def ready(self) -> None:
        # The requests app announces every status change (service.requests.signals); this app,
        # a layer above it, turns those into deliveries. Audit codes registered here, once.
        from service.audit.events import register
        from service.requests.signals import request_status_changed

        from . import receivers
        from .events import AUDIT_EVENTS

        for action, template in AUDIT_EVENTS.items():
            register(action, template)
        request_status_changed.connect(receivers.on_request_status_changed, dispatch_uid="webhooks.on_request_status_changed")
