from django.apps import AppConfig


class ConsoleConfig(AppConfig):
    name = "piaowu.console"
    label = "console"
