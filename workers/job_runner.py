"""Run one recognition job: claim it, read its image, recognise, store the result and pictures.

The Celery task is a thin shell over :func:`run_job`; this function can equally be
called from a shell or a test with a job id.
"""
from __future__ import annotations

import logging
import time

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.core.cache import cache
from django.db import InterfaceError, OperationalError

from webapp.recognition import services
from webapp.recognition.errors import ErrorCode
from webapp.recognition.log_context import bind_job
from workers import model_cache
from workers.pipeline import explain
from workers.pipeline.classify import ModelFault
from workers.pipeline.errors import RecognitionError
from workers.pipeline.recognize import record, recognize

log = logging.getLogger(__name__)

TRANSIENT_ERRORS = (OperationalError, InterfaceError, OSError)
"""Worth a retry: the database or the storage was briefly unreachable. A bad image is not."""


UNAVAILABLE_PAUSE_SECONDS = 10.0
"""How long a process with no model waits after giving a job back (at most a quarter of the soft time limit)."""

_held: dict[str, object] = {}  # job id -> this process's claim token, while it runs the job

GIVEN_UP_MESSAGE_SECONDS = 3600
"""How long the mark of a message given up after a model fault is kept (its requeue is immediate)."""


def held_token(job_id: str):
    """The attempt token this process held for a job whose task failed (None before its claim)."""
    return _held.pop(str(job_id), None)


def run_job(job_id: str, message_id: str | None = None, redelivered: bool = False) -> str:
    """Returns what happened: 'succeeded', 'failed', 'released' (no model here: sent again for
    another process), or 'skipped' (finished, leased elsewhere, gone, or a message given up).

    ``message_id`` and ``redelivered`` say which broker message asked (the task's id, and whether
    the broker put the message back after its process was lost)."""
    with bind_job(job_id):
        if redelivered and message_id and _was_given_up(message_id):
            # The process that held this message gave the job back after a model fault and sent
            # it again as a new message, then left; Celery puts a lost process's message back
            # on the queue it came from (reject on worker lost), where the broken node's next
            # process, likely as broken, would race the healthy ones for the job. The mark is in
            # Django's cache: shared through Redis in a deployment (CACHE_URL); with a per-host
            # cache another host does not see it, and the copy only races as before.
            log.info("job skipped: its message was given up after a model fault, and the job sent again",
                     extra={"outcome": "skipped"})
            return "skipped"
        outcome = _run(job_id, message_id)  # on an exception the token stays for the task's on_failure
        _held.pop(str(job_id), None)
        log.info("job %s", outcome, extra={"outcome": outcome})
        return outcome


def _drawn(draw, result, fallback):
    """A picture of the reading, or ``fallback`` if drawing it fails: the pictures illustrate
    the reading, and must never cost it."""
    try:
        return draw(result)
    except SoftTimeLimitExceeded:
        raise
    except Exception:  # noqa: BLE001
        log.exception("%s could not be drawn; the result is kept without it", draw.__name__)
        return fallback


def _pass_on(claim, unavailable: Exception) -> str:
    """Give a job back that this process has no model for, and pause before taking another.

    The fault may be this worker's alone (its MODEL_VERSION names a version that does not
    exist, its copy of the model is unreadable, or the job's time limit struck while this fresh
    process was still loading it): other workers can read the job. Failing it
    here would fail every job in the queue, as fast as the broker hands them over. The pause
    keeps this process from taking the job straight back; a job that meets no model on every
    attempt fails as ``model_unavailable`` at its last one.
    """
    log.error("no model in this process (%s): job released and sent again", unavailable)
    try:
        services.release_job(claim)
        services.enqueue([claim.job.id])
    except TRANSIENT_ERRORS:
        pass  # the lease runs out and the sweep sends it
    if not isinstance(unavailable, model_cache.ModelStillLoading):
        # A process still loading will have its model soon, and its job's hard limit is near.
        time.sleep(min(UNAVAILABLE_PAUSE_SECONDS, settings.JOB_SOFT_TIME_LIMIT / 4))
    return "released"


def _given_up_key(message_id: str) -> str:
    return f"recognition:given-up-message:{message_id}"


def _give_up(message_id: str | None) -> None:
    if not message_id:
        return
    try:
        cache.set(_given_up_key(message_id), True, timeout=GIVEN_UP_MESSAGE_SECONDS)
    except Exception:  # noqa: BLE001 - without the mark the put-back message only races for the job
        log.warning("could not mark the given-up message %s", message_id, exc_info=True)


def _was_given_up(message_id: str) -> bool:
    try:
        return bool(cache.get(_given_up_key(message_id)))
    except Exception:  # noqa: BLE001 - the claim still keeps a job from being read twice
        log.warning("could not read the mark of message %s", message_id, exc_info=True)
        return False


def _run(job_id: str, message_id: str | None = None) -> str:
    claim = services.claim_job(job_id)
    if claim is None:
        return "skipped"
    _held[str(job_id)] = claim.token
    log.info("job claimed", extra={"attempt": claim.job.attempts})
    started = time.monotonic()
    try:
        try:
            data = services.read_image(claim.job)
        except FileNotFoundError:
            error = RecognitionError(ErrorCode.IMAGE_MISSING.value, "the job's stored image is gone")
            services.finish_job(claim, record=record(claim.job.source_name, error=error), error=error, model_version=None)
            return "failed"
        try:
            classifier = model_cache.get_classifier()
        except model_cache.ModelUnavailable as unavailable:
            if claim.job.attempts < claim.job.max_attempts:
                return _pass_on(claim, unavailable)
            error = RecognitionError(ErrorCode.MODEL_UNAVAILABLE.value, f"{unavailable} (tried {claim.job.attempts} times)")
            services.finish_job(claim, record=record(claim.job.source_name, error=error), error=error, model_version=None)
            return "failed"
        version = classifier.version
        if settings.RECOGNITION_TEST_DELAY_S:
            time.sleep(settings.RECOGNITION_TEST_DELAY_S)  # fault tests only; refused by production settings
        try:
            result = recognize(data, classifier, max_pixels=settings.MAX_IMAGE_PIXELS, max_side=settings.MAX_IMAGE_SIDE)
        except RecognitionError as error:
            services.finish_job(claim, record=record(claim.job.source_name, error=error), error=error, model_version=version)
            return "failed"
        pictures = _drawn(explain.explain, result, {})
        sheet = _drawn(explain.symbol_sheet, result, None)  # the crops corrections label: kept even if the pictures fail
        elapsed_ms = int((time.monotonic() - started) * 1000)
        saved = services.finish_job(
            claim, record=record(claim.job.source_name, result), error=result.error, model_version=version,
            pictures=pictures, crops_png=sheet, processing_ms=elapsed_ms,
        )
    except SoftTimeLimitExceeded:
        error = RecognitionError(ErrorCode.PROCESSING_TIMEOUT.value, "recognition took longer than the soft time limit (JOB_SOFT_TIME_LIMIT)")
        services.finish_job(claim, record=record(claim.job.source_name, error=error), error=error, model_version=None)
        return "failed"
    except ModelFault:
        # Not the image's fault: another process reads it. This one's model (or TensorFlow itself)
        # is broken, and the task makes the process leave (a job that keeps meeting broken
        # processes ends as too_many_attempts, at its next claim).
        log.error("the model answered NaN: job released and sent again", exc_info=True)
        try:
            services.release_job(claim)
            if services.enqueue([claim.job.id]):
                _give_up(message_id)  # sent again: the copy Celery puts back once this process leaves is not needed
        except TRANSIENT_ERRORS:
            pass  # the process must leave all the same: the lease runs out and the sweep sends it
        raise
    except TRANSIENT_ERRORS as error:
        # Said here, not only by Celery's retry line (logged at INFO by celery.app.trace, which
        # the settings keep at WARNING): a database or storage blip leaves a trace at once.
        log.warning("job released after a transient error, to be retried: %r", error)
        try:
            services.release_job(claim)
        except TRANSIENT_ERRORS:
            pass  # the lease runs out and the sweep re-enqueues
        raise
    if not saved:
        return "skipped"
    return "failed" if result.error else "succeeded"
