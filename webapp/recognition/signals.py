"""Stored files follow their rows: deleting a job (or its batch, or its owner) deletes its files.

The files go after the transaction commits, so a rolled-back delete loses nothing.
"""
from __future__ import annotations

import logging

from django.core.files.storage import default_storage
from django.db import transaction
from django.db.models.signals import post_delete
from django.dispatch import receiver

from webapp.recognition.models import Correction, Job

log = logging.getLogger(__name__)


def delete_stored(paths: list[str]) -> None:
    for path in paths:
        try:
            default_storage.delete(path)
        except Exception:  # filesystem or S3 (botocore) errors: a leftover file must not fail the delete
            log.warning("could not delete stored file %s", path, exc_info=True)


@receiver(post_delete, sender=Job)
def _job_deleted(sender, instance: Job, **kwargs) -> None:
    paths = instance.stored_paths()
    transaction.on_commit(lambda: delete_stored(paths), robust=True)


@receiver(post_delete, sender=Correction)
def _correction_deleted(sender, instance: Correction, **kwargs) -> None:
    if instance.crops:
        paths = [instance.crops]
        transaction.on_commit(lambda: delete_stored(paths), robust=True)
