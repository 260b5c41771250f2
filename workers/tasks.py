"""Celery tasks: thin shells that take a job id and call the services.

``recognition.recognize`` runs on the ``inference`` queue; the sweep and the
retention purge run on ``maintenance`` under Celery beat.
"""
from __future__ import annotations

import os

import django

django.setup()

from celery import Task  # noqa: E402
from celery.signals import task_postrun, task_prerun, worker_process_init, worker_ready, worker_shutdown  # noqa: E402
from celery.exceptions import SoftTimeLimitExceeded, TimeLimitExceeded  # noqa: E402
from django.conf import settings  # noqa: E402
from django.db import close_old_connections  # noqa: E402

from webapp.recognition import services  # noqa: E402
from webapp.recognition.errors import ErrorCode  # noqa: E402
from workers import heartbeat, job_runner, model_cache  # noqa: E402
from workers.celery_app import app  # noqa: E402
from workers.pipeline.classify import ModelFault  # noqa: E402


@worker_ready.connect
def _announce(sender, **kwargs):
    heartbeat.start(sender.hostname, heartbeat.concurrency(app))


@worker_shutdown.connect
def _withdraw(sender, **kwargs):
    heartbeat.stop(sender.hostname)


@worker_process_init.connect
def _warm_up(**kwargs):
    model_cache.warm_up_in_background()


@task_prerun.connect
@task_postrun.connect
def _close_old_connections(**kwargs):
    # What Django does around each web request: drop a connection past CONN_MAX_AGE or one
    # that failed, keep the rest (settings.CELERY_DB_REUSE_MAX stops Celery closing them all).
    close_old_connections()


class JobTask(Task):
    def on_failure(self, exc, task_id, args, kwargs, einfo):
        # The one place a job is marked FAILED for an error nothing else recorded
        # (a bug, a time limit, or transient errors that outlived their retries).
        job_id = args[0] if args else kwargs.get("job_id")
        if isinstance(exc, TimeLimitExceeded):  # the hard limit: reported in the parent, its process is gone
            services.fail_job(job_id, ErrorCode.PROCESSING_TIMEOUT, f"the job took longer than its time limit: {exc!r}", holder_died=True)
        elif isinstance(exc, SoftTimeLimitExceeded):  # struck outside the pipeline's own handler
            services.fail_job(job_id, ErrorCode.PROCESSING_TIMEOUT, f"the job took longer than its time limit: {exc!r}",
                              token=job_runner.held_token(job_id))
        else:
            services.fail_job(job_id, ErrorCode.INTERNAL_ERROR, f"{type(exc).__name__}: {exc}", token=job_runner.held_token(job_id))


@app.task(
    name=services.RECOGNIZE_TASK, base=JobTask, bind=True, acks_late=True,
    autoretry_for=job_runner.TRANSIENT_ERRORS, retry_backoff=2, retry_backoff_max=60, retry_jitter=True, max_retries=settings.JOB_MAX_RETRIES,
    soft_time_limit=settings.JOB_SOFT_TIME_LIMIT, time_limit=settings.JOB_TIME_LIMIT,
)
def recognize(self, job_id: str) -> str:
    try:
        delivery = self.request.delivery_info or {}
        return job_runner.run_job(job_id, message_id=self.request.id, redelivered=bool(delivery.get("redelivered")))
    except ModelFault as fault:
        # TensorFlow's state in this process may be broken for good (a reload in the same
        # process read NaNs too): leave, and the pool starts a fresh process. billiard reports a
        # SystemExit raised by a task as its result, then lets the process go.
        raise SystemExit(f"pool process {os.getpid()} leaves: {fault}") from fault


@app.task(name="recognition.sweep", ignore_result=True)
def sweep() -> dict:
    return services.sweep()


@app.task(name="recognition.purge_expired", ignore_result=True)
def purge_expired() -> int:
    return services.purge_expired()


@app.task(name="diagnostics.ping", ignore_result=True)
def ping(token: str) -> None:
    """A no-op round trip through the broker and a worker: the floor the load benchmark compares with."""
    from django.core.cache import cache

    cache.set(f"diagnostics.ping:{token}", True, timeout=300)
