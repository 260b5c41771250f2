from django.apps import AppConfig


class RecognitionConfig(AppConfig):
    name = "webapp.recognition"
    label = "recognition"
    verbose_name = "Handwritten arithmetic recognition"

    def ready(self) -> None:
        from webapp.recognition import signals  # noqa: F401  (stored files follow their rows)
