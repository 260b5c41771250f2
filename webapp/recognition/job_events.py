"""Wake the clients that wait for a job to finish (``GET /api/v1/jobs/{id}/?wait=N``).

Without this, every client polls, and at load most of the web's work is answering
"not yet". The worker that finishes a job publishes on a Redis channel named after the
job, after its result is committed.

Each web process holds ONE subscription to every job's channel (a pattern), read by one
listener thread that hands each announcement to the threads waiting on that job. A
subscription per waiting request would cost a connection, a SUBSCRIBE and a teardown
per request, which at load was a good part of the web's work. The listener also
remembers the jobs announced in the last RECENT_S, so a job that finished between the
caller's read and the wait is not missed and needs no query.

The database stays the truth: a waiter also asks it every RECHECK_S (so an announcement
lost while the listener reconnects costs at most that), and every POLL_S while the
listener is not subscribed. With no Redis (the embedded ``make run`` stack) it checks the
database every POLL_S. Waiters per web process are capped, so waits never take every thread.
"""
from __future__ import annotations

import logging
import os
import threading
import time
from collections import OrderedDict
from contextlib import contextmanager
from functools import lru_cache
from typing import Callable, Iterator

import redis
from django.conf import settings

log = logging.getLogger(__name__)

RECHECK_S = 1.0
"""With Redis: how often a waiter also asks the database (a lost message costs at most this)."""
POLL_S = 0.2
"""Without Redis, or while the listener is not subscribed: how often a waiter asks the database."""
RECENT_S = 5.0
"""How long the listener remembers an announced job, for a waiter that arrives just after
it (the gap between the caller's read and the wait: milliseconds)."""
SILENT_S = 15.0
"""A subscription that has heard nothing, not even its own PINGs' answers, for this long is
taken for dead (a Redis host gone without closing the socket) and made again."""
PING_S = 5.0


def _channel_prefix() -> str:
    # The deployment's broker key prefix: channels ignore Redis database numbers, and one
    # process should hear only its own deployment's jobs.
    return f"{settings.JOB_EVENTS_PREFIX}job-finished:"


def _channel(job_id) -> str:
    return f"{_channel_prefix()}{job_id}"


def _redis_url() -> str:
    return settings.JOB_EVENTS_REDIS_URL


@lru_cache(maxsize=1)
def _client() -> redis.Redis | None:
    url = _redis_url()
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
        client.publish(_channel(job_id), b"finished")
    except redis.RedisError as error:
        log.warning("could not announce job %s finished: %s", job_id, error)


class Listener:
    """This process's one subscription to every job's channel, shared by its waiting threads."""

    RECONNECT_S = 1.0

    def __init__(self, url: str):
        # No socket timeout: the connection idles between announcements. Its own PINGs every
        # PING_S, and SILENT_S without any answer, tell a dead one.
        self._client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=None, socket_keepalive=True)
        self._prefix = _channel_prefix()
        self._lock = threading.Lock()
        self._waiting: dict[str, set[threading.Event]] = {}
        self._recent: OrderedDict[str, float] = OrderedDict()  # job id -> when announced, oldest first
        self.subscribed = threading.Event()
        self._thread = threading.Thread(target=self._run, name="job-events", daemon=True)
        self._thread.start()

    @contextmanager
    def watch(self, job_id) -> Iterator[threading.Event]:
        """An event set when the job is announced (already set if it was, within RECENT_S)."""
        key, event = str(job_id), threading.Event()
        with self._lock:
            if key in self._recent:
                event.set()
            self._waiting.setdefault(key, set()).add(event)
        try:
            yield event
        finally:
            with self._lock:
                events = self._waiting.get(key)
                if events is not None:
                    events.discard(event)
                    if not events:
                        del self._waiting[key]

    def _announced(self, job_id: str) -> None:
        now = time.monotonic()
        with self._lock:
            self._recent[job_id] = now
            self._recent.move_to_end(job_id)
            while self._recent and next(iter(self._recent.values())) < now - RECENT_S:
                self._recent.popitem(last=False)
            for event in self._waiting.get(job_id, ()):
                event.set()

    def alive(self) -> bool:
        return self._thread.is_alive()

    def _run(self) -> None:
        while True:
            subscription = self._client.pubsub()
            try:
                subscription.psubscribe(self._prefix + "*")
                heard = pinged = time.monotonic()
                while True:
                    message = subscription.get_message(timeout=1.0)
                    now = time.monotonic()
                    if message is not None:
                        heard = now
                        if message["type"] == "psubscribe":
                            self.subscribed.set()  # confirmed by Redis: from here on nothing is missed
                        elif message["type"] == "pmessage":
                            self._announced(message["channel"].decode()[len(self._prefix):])
                    if now - heard > SILENT_S:
                        raise ConnectionError(f"no answer from Redis for {SILENT_S:.0f}s")
                    if now - pinged > PING_S:
                        subscription.ping()
                        pinged = now
            except Exception as error:  # Redis went away: waiters fall back to the database until it is back
                log.warning("job announcements unavailable, retrying in %.0fs: %s", self.RECONNECT_S, error)
            finally:
                self.subscribed.clear()
                try:
                    subscription.close()
                except Exception:
                    pass
            time.sleep(self.RECONNECT_S)


_listener_lock = threading.Lock()
_listeners: dict[int, Listener] = {}  # by process ID: a forked child starts its own


def _listener() -> Listener | None:
    url = _redis_url()
    if not url:
        return None
    with _listener_lock:
        listener = _listeners.get(os.getpid())
        if listener is None or not listener.alive():
            listener = _listeners[os.getpid()] = Listener(url)
    listener.subscribed.wait(2.0)  # a new listener: do not miss what finishes next (at once when subscribed)
    return listener


def wait_until_finished(job_id, timeout: float, is_finished: Callable[[], bool]) -> bool:
    """Block up to ``timeout`` seconds until ``is_finished()``; returns its last answer
    (True at once when the job's announcement comes: it is sent after the result is committed).

    Call it for a job just read as not finished: a finish since then is seen through the
    listener's memory of recent announcements, without asking ``is_finished`` first.

    When every waiting slot of this process is taken it returns at once: the client
    gets the job as it is and asks again, rather than the web running out of threads.
    """
    if timeout <= 0 or not _slots().acquire(blocking=False):
        return is_finished()
    try:
        deadline = time.monotonic() + timeout
        listener = _listener()
        if listener is None:
            return _wait_polling(deadline, is_finished)
        with listener.watch(job_id) as announced:
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return is_finished()
                interval = RECHECK_S if listener.subscribed.is_set() else POLL_S
                if announced.wait(min(remaining, interval)):
                    return True
                if is_finished():  # the periodic check: an announcement can be lost
                    return True
    finally:
        _slots().release()


def _wait_polling(deadline: float, is_finished: Callable[[], bool]) -> bool:
    while not is_finished():
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        time.sleep(min(remaining, POLL_S))
    return True
