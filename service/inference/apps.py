from django.apps import AppConfig


class InferenceConfig(AppConfig):
    name = "service.inference"
    label = "inference"
    verbose_name = "Inference gateway"
