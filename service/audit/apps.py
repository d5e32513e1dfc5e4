from django.apps import AppConfig


class AuditConfig(AppConfig):
    name = "service.audit"
    label = "audit"
