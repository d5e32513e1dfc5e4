from django.apps import AppConfig


class RequestsConfig(AppConfig):
    name = "service.requests"
    label = "requests"
    verbose_name = "Erasure requests"

    def ready(self) -> None:
        from service.audit.selectors import register_target_resolver

        from .selectors import audit_target_for

        register_target_resolver(audit_target_for)  # audit filters accept a request's id for its reference
