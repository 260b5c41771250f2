"""One classifier per worker process, loaded lazily on the first job (never before fork).

TensorFlow hangs in a child forked after the parent initialised it, so nothing
here runs at import time or in ``worker_process_init``. The ACTIVE pointer is
re-read for every job (one small file): a promotion or a rollback reaches every
worker without a restart, and each job records the version that read it.
"""
from __future__ import annotations

import logging
import os
import threading

log = logging.getLogger(__name__)

_lock = threading.Lock()
_classifier = None


def wanted_version() -> str:
    from models import registry

    return os.environ.get("MODEL_VERSION") or registry.active_version()


def get_classifier():
    global _classifier
    version = wanted_version()
    with _lock:
        if _classifier is None or _classifier.version != version:
            from workers.pipeline.classify import SymbolClassifier

            log.info("loading model %s in process %d", version, os.getpid())
            _classifier = SymbolClassifier(version, threads=int(os.environ.get("TF_NUM_THREADS", "1")))
        return _classifier
