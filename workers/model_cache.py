"""One classifier per worker process, loaded after fork, never before.

TensorFlow hangs in a child forked after the parent initialised it, so nothing
here runs at import time. A pool process starts loading on a thread as soon as it
is up (:func:`warm_up_in_background`, from ``worker_process_init``, which itself must
return within seconds); its first job waits for that load instead of paying all of
it inside the job's own time limit. The active version is
read for every job (one small file, or one indexed row in a deployment): a
promotion or a rollback reaches every worker without a restart, and each job
records the version that read it.

In a deployment (MODEL_REGISTRY=database) the files come from shared storage into
a local cache, checked by sha256. A version that cannot be fetched or loaded is
logged, and the previous one keeps serving; it is tried again after RETRY_SECONDS.
"""
from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path

from celery.exceptions import SoftTimeLimitExceeded
from django.db import InterfaceError, OperationalError

from workers.pipeline.classify import ModelFault
from workers.pipeline.errors import raised_by

log = logging.getLogger(__name__)

RETRY_SECONDS = 30.0
_lock = threading.Lock()
_classifier = None
_failed: dict[str, float] = {}  # version -> when it last failed to load


class ModelUnavailable(Exception):
    """No model can serve at all."""


class ModelStillLoading(ModelUnavailable):
    """The job's time limit struck while this process was loading its model (or waiting for
    its warm-up to): the time went on the process's start, not on the job's image, so the job
    is passed on like one that meets no model rather than failed as processing_timeout."""


def _threads() -> int:
    return int(os.environ.get("TF_NUM_THREADS", "1"))


def _cache_root() -> Path:
    from django.conf import settings

    return Path(settings.VAR_DIR) / "model-cache"


def _load(version: str):
    from webapp.recognition import model_store
    from workers.pipeline.classify import SymbolClassifier

    root = model_store.fetch(version, _cache_root()) if model_store.in_database() else None
    # A time limit that strikes while loading ends the job (processing_timeout); it must not be
    # taken for a model LiteRT cannot compile, which would serve the slower graph for good.
    return SymbolClassifier(version, models_root=root, threads=_threads(), propagate=(SoftTimeLimitExceeded,))


def wanted_version() -> str:
    from webapp.recognition import model_store

    return model_store.wanted_version()


def _raise_if_time_limit(error: BaseException) -> None:
    """The job's soft time limit, struck however deep (Keras re-raises it as its own error),
    stays a time limit: never taken for a missing pointer or a broken model."""
    if (limit := raised_by(error, (SoftTimeLimitExceeded,))) is not None:
        raise limit


def get_classifier():
    try:
        version = wanted_version()
    except Exception as error:  # no pointer, or the database is away: keep serving what is loaded
        _raise_if_time_limit(error)
        if _classifier is None:
            if isinstance(error, (OperationalError, InterfaceError)):
                raise  # a database blip in a fresh worker: the job is retried, not failed for good
            raise ModelUnavailable(f"no active model version: {error}") from error
        log.error("cannot read the active model version (%s); %s keeps serving", error, _classifier.version)
        return _classifier
    try:
        with _lock:  # held only while a model loads: by the warm-up, or by another job's thread
            return _loaded(version)
    except SoftTimeLimitExceeded as limit:
        if _classifier is not None and _classifier.version == version:
            raise  # the model was ready: the job's own time ran out
        raise ModelStillLoading(
            f"model {version} was still loading in process {os.getpid()} when the job's time limit struck"
        ) from limit


def _loaded(version: str):
    """The classifier for ``version``, loaded now if need be (called holding the lock)."""
    global _classifier
    if _classifier is not None and _classifier.version == version:
        return _classifier
    if _classifier is not None and time.monotonic() - _failed.get(version, -1e9) < RETRY_SECONDS:
        return _classifier
    try:
        log.info("loading model %s in process %d", version, os.getpid())
        started = time.monotonic()
        _classifier = _load(version)
        _failed.pop(version, None)
        log.info("model %s loaded in process %d in %.1f s", version, os.getpid(), time.monotonic() - started)
    except Exception as error:  # a missing or corrupt model must not stop the worker
        _raise_if_time_limit(error)
        if _classifier is None and isinstance(error, ModelFault):
            raise  # nothing to serve, and maybe TensorFlow broken in this process: the job goes elsewhere
        _failed[version] = time.monotonic()
        if _classifier is None:
            raise ModelUnavailable(f"model {version} cannot be loaded: {error}") from error
        log.error("model %s cannot be loaded (%s); %s keeps serving", version, error, _classifier.version)
    return _classifier


def warm_up_in_background() -> threading.Thread:
    """Load the active model on a thread now, rather than in the process's first job.

    Loading TensorFlow and a model takes seconds (more on a busy machine); a pool process
    replaced after a crash would otherwise meet its first job with nothing loaded, and spend
    that job's soft time limit on the load. A job that arrives meanwhile waits on the lock.
    """
    def load() -> None:
        from django.db import connection

        try:
            get_classifier()
        except Exception:  # noqa: BLE001 - logged here; the first job tries again and reports it
            log.exception("warming up the model failed; the first job will try again")
        finally:
            connection.close()  # this thread's own database connection

    thread = threading.Thread(target=load, name="model-warm-up", daemon=True)
    thread.start()
    return thread
