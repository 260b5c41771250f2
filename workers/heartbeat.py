"""Each worker node says it is alive, and how many processes it runs, in the database.

The autoscaling figures (``manage.py queue_stats``) count worker processes from these
rows, which works across hosts and brokers without Celery's broadcast control.
"""
from __future__ import annotations

import logging
import os
import threading

log = logging.getLogger(__name__)

INTERVAL_SECONDS = 10.0
_stop = threading.Event()


def _beat(name: str, processes: int) -> None:
    from django.db import connection
    from django.db.models.functions import Now

    from webapp.recognition.models import WorkerHeartbeat

    while not _stop.is_set():
        try:
            # The database's clock, which the healthcheck and the autoscaling figures compare with.
            WorkerHeartbeat.objects.update_or_create(name=name, defaults={"processes": processes, "seen_at": Now()})
        except Exception:  # the database may be away for a moment; the next beat tries again
            log.warning("worker heartbeat failed", exc_info=True)
        finally:
            connection.close()
        _stop.wait(INTERVAL_SECONDS)


def start(name: str, processes: int) -> None:
    threading.Thread(target=_beat, args=(name, processes), name="heartbeat", daemon=True).start()


def stop(name: str) -> None:
    from webapp.recognition.models import WorkerHeartbeat

    _stop.set()
    try:
        WorkerHeartbeat.objects.filter(name=name).delete()
    except Exception:
        log.warning("could not remove the heartbeat of %s", name, exc_info=True)


def concurrency(app) -> int:
    return int(os.environ.get("WORKER_CONCURRENCY") or app.conf.worker_concurrency or os.cpu_count() or 1)
