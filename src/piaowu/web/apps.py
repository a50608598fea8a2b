from django.apps import AppConfig


class WebConfig(AppConfig):
    name = "piaowu.web"
    label = "web"
