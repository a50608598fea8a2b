from django.apps import AppConfig


class WebConfig(AppConfig):
    name = "piaowu.web"
    label = "web"

    def ready(self) -> None:
        from django.contrib.auth.signals import user_logged_in

        from piaowu.web.signals import adopt_anonymous_purchases

        user_logged_in.connect(adopt_anonymous_purchases, dispatch_uid="piaowu.web.adopt")
