"""Wake the clients that wait for a job to finish (``GET /api/v1/jobs/{id}/?wait=N``).

Without this, every client polls, and at load most of the web's work is answering
"not yet". The worker that finishes a job publishes on a Redis channel named after the
job; a web thread waiting on that job is subscribed to it.

The database stays the truth. The worker also leaves a marker key for MARKER_SECONDS, which
the waiter reads after subscribing, so a job that finished just before is not missed without
a database query; the waiter reads the job from the database when woken, and every
RECHECK_S in any case (so a lost message costs at most that). With no Redis (the embedded
``make run`` stack) it checks the database every POLL_S. Waiters per web process are capped, so waits never take every thread.
"""
from __future__ import annotations

import logging
import threading
import time
from functools import lru_cache
from typing import Callable

import redis
from django.conf import settings

log = logging.getLogger(__name__)

RECHECK_S = 1.0
"""With Redis: how often a waiter also asks the database (a lost message costs at most this)."""
MARKER_SECONDS = 120
"""How long the 'finished' marker outlives the job's end, for waiters that subscribe late."""
POLL_S = 0.2
"""Without Redis: how often a waiter asks the database."""


def _channel(job_id) -> str:
    return f"job-finished:{job_id}"  # job IDs are UUIDs: no clash between deployments on one Redis


_marker = _channel  # the marker key and the channel share the name (keys and channels are apart in Redis)


@lru_cache(maxsize=1)
def _client() -> redis.Redis | None:
    url = settings.JOB_EVENTS_REDIS_URL
    return redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=5) if url else None


@lru_cache(maxsize=1)
def _slots() -> threading.BoundedSemaphore:
    return threading.BoundedSemaphore(settings.JOB_WAIT_MAX_WAITERS)


def announce_finished(job_id) -> None:
    """Tell waiters the job has finished (best effort: they also check the database)."""
    client = _client()
    if client is None:
        return
    try:
        client.pipeline(transaction=False).set(_marker(job_id), b"1", ex=MARKER_SECONDS).publish(_channel(job_id), b"finished").execute()
    except redis.RedisError as error:
        log.warning("could not announce job %s finished: %s", job_id, error)


def wait_until_finished(job_id, timeout: float, is_finished: Callable[[], bool]) -> bool:
    """Block up to ``timeout`` seconds until ``is_finished()``; returns its last answer.

    Call it for a job just read as not finished: a finish since then is seen through the
    marker, without asking ``is_finished`` first.

    When every waiting slot of this process is taken it returns at once: the client
    gets the job as it is and asks again, rather than the web running out of threads.
    """
    if timeout <= 0 or not _slots().acquire(blocking=False):
        return is_finished()
    try:
        return _wait(job_id, time.monotonic() + timeout, is_finished)
    finally:
        _slots().release()


def _wait(job_id, deadline: float, is_finished: Callable[[], bool]) -> bool:
    subscription = _subscribe(job_id)
    if subscription is None:
        return _wait_polling(deadline, is_finished)
    try:
        if _marked(job_id):  # finished between the caller's read and the subscription
            return is_finished()
        next_check = time.monotonic() + RECHECK_S
        while True:
            now = time.monotonic()
            if now >= deadline:
                return is_finished()
            until = min(deadline, next_check)
            try:
                # None also comes back at once for the subscription's own confirmation: only an
                # announcement or RECHECK_S gone by is worth a database read.
                message = subscription.get_message(timeout=max(0.0, until - now))
            except redis.RedisError:
                subscription.close()
                subscription = None  # Redis went away mid-wait: keep checking the database
                return _wait_polling(deadline, is_finished)
            if message is None and time.monotonic() < until:
                continue
            if is_finished():  # woken by the announcement, or the periodic check
                return True
            next_check = time.monotonic() + RECHECK_S
    finally:
        if subscription is not None:
            subscription.close()


def _wait_polling(deadline: float, is_finished: Callable[[], bool]) -> bool:
    while not is_finished():
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        time.sleep(min(remaining, POLL_S))
    return True


def _marked(job_id) -> bool:
    try:
        return bool(_client().exists(_marker(job_id)))
    except redis.RedisError:
        return True  # unknown: let the database answer


def _subscribe(job_id):
    client = _client()
    if client is None:
        return None
    try:
        subscription = client.pubsub(ignore_subscribe_messages=True)
        subscription.subscribe(_channel(job_id))
        return subscription
    except redis.RedisError as error:
        log.warning("waiting for job %s without Redis: %s", job_id, error)
        return None
