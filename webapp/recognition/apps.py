from django.apps import AppConfig


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
