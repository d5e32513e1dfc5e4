from django.apps import AppConfig


class UnlearningConfig(AppConfig):
    name = "service.unlearning"
    label = "unlearning"
    verbose_name = "Unlearning pipeline"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from service.requests.signals import request_approved

        from . import receivers

        request_approved.connect(receivers.on_request_approved, dispatch_uid="forget.unlearning.request_approved")
