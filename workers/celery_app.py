"""The Celery app, configured from Django settings under the ``CELERY_`` namespace.

Importing this module imports no task code and no TensorFlow: the web side uses
it only to send tasks by name. The worker process loads ``workers.tasks``.
"""
from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webapp.config.settings.production")

app = Celery("handwritten_arithmetic")
app.config_from_object("django.conf:settings", namespace="CELERY")


def _make_filesystem_broker_folders() -> None:
    """The embedded broker's folders must exist before the first message (kombu does not create them)."""
    from django.conf import settings

    options = getattr(settings, "CELERY_BROKER_TRANSPORT_OPTIONS", {})
    if settings.CELERY_BROKER_URL.startswith("filesystem"):
        for key in ("data_folder_in", "data_folder_out", "control_folder", "processed_folder"):
            os.makedirs(options[key], exist_ok=True)


_make_filesystem_broker_folders()
