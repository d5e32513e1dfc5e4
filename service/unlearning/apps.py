from django.apps import AppConfig


class UnlearningConfig(AppConfig):
    name = "service.unlearning"
    label = "unlearning"
    verbose_name = "Unlearning pipeline"
    default_auto_field = "django.db.models.BigAutoField"
