from django.apps import AppConfig


class RequestsConfig(AppConfig):
    name = "service.requests"
    label = "requests"
    verbose_name = "Erasure requests"
