"""Structured logs that carry the job ID through the web and the worker.

``bind_job(job_id)`` puts the ID in a context variable for the duration of a
request or a task; :class:`JobIdFilter` copies it onto every log record, and the
JSON formatter (python-json-logger) writes it as ``"job_id"``.
"""
from __future__ import annotations

import contextlib
import contextvars
import logging

_job_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("job_id", default=None)


@contextlib.contextmanager
def bind_job(job_id):
    token = _job_id.set(str(job_id))
    try:
        yield
    finally:
        _job_id.reset(token)


class JobIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if not getattr(record, "job_id", None):
            record.job_id = _job_id.get()
        return True


class RequestPathOnlyFilter(logging.Filter):
    """Django's request logs (a 4xx, a 5xx) carry the request, whose text holds its query string;
    a step picture link's query is its signature, a credential. Keep the method and path only."""

    def filter(self, record: logging.LogRecord) -> bool:
        request = getattr(record, "request", None)
        if request is not None and hasattr(request, "path"):
            record.request = f"{request.method} {request.path}"
        return True
