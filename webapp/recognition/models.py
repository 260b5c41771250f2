"""Jobs, batches of worksheet pages, and user corrections."""
from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.db.models.functions import Now
from django.utils import timezone


class Batch(models.Model):
    """Scanned worksheet pages uploaded together; each page is one worksheet job."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="batches")
    name = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name_plural = "batches"


class Job(models.Model):
    class Kind(models.TextChoices):
        EXPRESSION = "expression", "One line, as drawn on the canvas"
        WORKSHEET = "worksheet", "A page of many lines"

    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"

    FINISHED = (Status.SUCCEEDED, Status.FAILED)

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="jobs")
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.EXPRESSION)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    batch = models.ForeignKey(Batch, null=True, blank=True, on_delete=models.CASCADE, related_name="jobs")
    page_number = models.PositiveIntegerField(null=True, blank=True)  # 1-based, within the batch
    source_name = models.CharField(max_length=255, blank=True)  # the uploaded file's name, with "#page" for PDFs

    image = models.FileField(max_length=255)
    image_sha256 = models.CharField(max_length=64)

    result = models.JSONField(null=True, blank=True)  # the CLI's --json record
    steps = models.JSONField(default=dict, blank=True)  # step name -> storage path
    symbol_crops = models.CharField(max_length=255, blank=True)  # storage path: one row of 28×28 crops per line
    error_code = models.CharField(max_length=64, blank=True)
    error_message = models.TextField(blank=True)
    error_detail = models.JSONField(default=dict, blank=True)  # best_reading, position
    model_version = models.CharField(max_length=32, blank=True)

    attempts = models.PositiveSmallIntegerField(default=0)
    max_attempts = models.PositiveSmallIntegerField(default=3)
    attempt_token = models.UUIDField(null=True, blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True)

    idempotency_key = models.CharField(max_length=255, null=True, blank=True)

    # The database's clock, as for the other times a job records (set on insert and read back):
    # web hosts, workers and beat compare them, and their own clocks may drift apart.
    queued_at = models.DateTimeField(db_default=Now())
    enqueued_at = models.DateTimeField(null=True, blank=True)  # last time a message was sent for it
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    processing_ms = models.PositiveIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["-queued_at", "-id"]  # a batch's pages share queued_at (one INSERT)
        indexes = [
            models.Index(fields=["owner", "-queued_at"]),
            models.Index(fields=["status", "enqueued_at"]),
            models.Index(fields=["status", "lease_expires_at"]),
            models.Index(fields=["queued_at"]),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["owner", "idempotency_key"],
                condition=models.Q(idempotency_key__isnull=False),
                name="one_job_per_idempotency_key",
            ),
            # add_pages numbers pages under the batch's lock, after the last one; this holds it to that.
            models.UniqueConstraint(
                fields=["batch", "page_number"],
                condition=models.Q(batch__isnull=False),
                name="one_job_per_batch_page",
            ),
        ]

    @property
    def finished(self) -> bool:
        return self.status in self.FINISHED

    def stored_paths(self) -> list[str]:
        paths = [self.image.name] if self.image else []
        paths += list(self.steps.values())
        if self.symbol_crops:
            paths.append(self.symbol_crops)
        return paths


class Correction(models.Model):
    """A user's fix of one line: licence-clean real handwriting for later training."""

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="corrections")
    line = models.PositiveIntegerField()  # 0-based line index in the result
    symbol = models.PositiveIntegerField(null=True, blank=True)  # set when one symbol's alternative was chosen
    read_as = models.CharField(max_length=255)  # the expression before this correction
    expression = models.CharField(max_length=255)  # the corrected expression
    labels = models.CharField(max_length=255, blank=True)  # one class per crop, when they line up
    crops = models.CharField(max_length=255, blank=True)  # storage path of this line's 28×28 crops, left to right
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["created_at"]


class ModelVersion(models.Model):
    """A model version whose files are in shared storage, each checked by sha256 (deployments)."""

    version = models.CharField(primary_key=True, max_length=32)
    files = models.JSONField()  # file name -> sha256
    metrics = models.JSONField(null=True, blank=True)
    registered_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["version"]


class ModelPointer(models.Model):
    """Promotions and rollbacks, newest last: the newest row names the ACTIVE version."""

    class Action(models.TextChoices):
        SEED = "seed"
        PROMOTE = "promote"
        ROLLBACK = "rollback"

    action = models.CharField(max_length=16, choices=Action.choices)
    version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="pointers")
    previous = models.CharField(max_length=32, blank=True)
    forced = models.BooleanField(default=False)
    at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["id"]


class WorkerHeartbeat(models.Model):
    """A live Celery worker (one row per worker node), refreshed every few seconds by the worker itself."""

    name = models.CharField(primary_key=True, max_length=255)
    processes = models.PositiveIntegerField()
    seen_at = models.DateTimeField(default=timezone.now)
