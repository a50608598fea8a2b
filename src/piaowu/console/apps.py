from django.apps import AppConfig
from django.contrib.admin import apps as admin_apps


class ConsoleConfig(AppConfig):
    name = "piaowu.console"
    label = "console"


class ConsoleAdminConfig(admin_apps.AdminConfig):
    """`django.contrib.admin` whose default site asks staff for their second factor."""

    default = False  # installed by its dotted path in INSTALLED_APPS, not as piaowu.console's
    default_site = "piaowu.console.sites.ConsoleAdminSite"
