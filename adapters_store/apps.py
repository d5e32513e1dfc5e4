from django.apps import AppConfig


class AdaptersStoreConfig(AppConfig):
    name = "adapters_store"
    label = "adapters_store"
    verbose_name = "Adapter registry"
    default_auto_field = "django.db.models.BigAutoField"
