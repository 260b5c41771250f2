"""Read what the application left of a request body, so the connection can carry the next request.

Django stops reading a body it refuses: too many files in a batch, a JSON body over its
limit, a request without a token. gunicorn then drains at most 64 KiB of the rest before it
closes the connection, after it has already answered "Connection: keep-alive" (an application's
own "Connection: close" header is dropped). A client that sends its next request on that
connection meets a reset, and a POST is not retried (CI run of 9866543: the POST after a
refused 1,000-file batch). Reading the rest here, before gunicorn looks, keeps the connection
usable.

The drain is bounded twice, so that a client cannot hold a thread with a body that never
comes: by ``limit_bytes`` (MAX_REQUEST_BYTES, which the API refuses unread anyway) and by
``DRAIN_SECONDS`` in all, as a deadline on the socket. Past either bound gunicorn closes the connection, as before.
"""
from __future__ import annotations

import socket
import time

CHUNK_BYTES = 256 * 1024
DRAIN_SECONDS = 5.0
"""As long as gunicorn's own drain may take (its worker data timeout)."""


class DrainUnreadBody:
    def __init__(self, application, limit_bytes: int):
        self.application = application
        self.limit_bytes = limit_bytes

    def __call__(self, environ, start_response):
        response = self.application(environ, start_response)
        if _worth_draining(environ, self.limit_bytes):
            _drain(environ["wsgi.input"], self.limit_bytes, environ.get("gunicorn.socket"))
        return response


def _worth_draining(environ, limit_bytes: int) -> bool:
    if environ.get("HTTP_CONNECTION", "").lower() == "close":
        return False  # the client will not send another request on this connection
    try:
        declared = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return False
    if declared:
        return 0 < declared <= limit_bytes
    # A chunked body has no length; gunicorn's input ends where the body does.
    return bool(environ.get("wsgi.input_terminated")) and "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower()


def _drain(stream, limit_bytes: int, connection: socket.socket | None) -> None:
    """Read and drop the rest of a body, for at most DRAIN_SECONDS in all; a read past the
    body's end returns b"" at once."""
    previous = connection.gettimeout() if connection is not None else None
    deadline = time.monotonic() + DRAIN_SECONDS
    remaining = limit_bytes
    try:
        while remaining > 0:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            if connection is not None:
                connection.settimeout(left)
            chunk = stream.read(min(CHUNK_BYTES, remaining))
            if not chunk:
                return
            remaining -= len(chunk)
    except OSError:  # the client went away or stalled (a timeout is an OSError): gunicorn closes
        return
    finally:
        if connection is not None:
            connection.settimeout(previous)
