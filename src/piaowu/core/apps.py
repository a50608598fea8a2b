from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "piaowu.core"
    label = "core"
