from django.apps import AppConfig
from django.contrib.admin import apps as admin_apps  # the module: its AdminConfig must not count as one of this module's


class LockoutAdminConfig(admin_apps.AdminConfig):
    """django.contrib.admin, with a default site whose login locks out after LOGIN_MAX_FAILURES, as the web login does."""

    default = False  # RecognitionConfig stays this module's default, for "webapp.recognition"
    default_site = "webapp.recognition.login.LockoutAdminSite"


class RecognitionConfig(AppConfig):
    name = "webapp.recognition"
    label = "recognition"
    verbose_name = "Handwritten arithmetic recognition"

    def ready(self) -> None:
        from django.db.models.signals import post_migrate

        from webapp.recognition import authentication, signals  # noqa: F401  (cached tokens follow their rows; so do stored files)

        post_migrate.connect(_seed_models, sender=self)


def _seed_models(sender, **kwargs) -> None:
    """The first migrate of a deployment seeds the model table and storage from the repository's models/."""
    from webapp.recognition import model_store

    if model_store.in_database() and model_store.seed_from_repository():
        print(f"  seeded the model registry from models/: ACTIVE {model_store.active_version()}")
