from django.apps import AppConfig


class DossierConfig(AppConfig):
    name = "service.dossier"
    label = "dossier"
    verbose_name = "Request dossiers and signed certificates"
