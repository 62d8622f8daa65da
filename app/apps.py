from django.apps import AppConfig


class SiteDirectoryConfig(AppConfig):
    name = "app"
    verbose_name = "Site directory"
