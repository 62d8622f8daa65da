from django.apps import AppConfig


class SiteDirectoryConfig(AppConfig):
    name = "app"
    verbose_name = "Site directory"

    def ready(self):
        from app import database, logins  # noqa: F401 (connect their receivers to their signals)
