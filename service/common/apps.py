from django.apps import AppConfig


class CommonConfig(AppConfig):
    name = "service.common"
    label = "common"
