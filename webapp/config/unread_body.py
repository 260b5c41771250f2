"""Read what the application left of a request body, so the connection can carry the next request.

Django stops reading a body it refuses: too many files in a batch, a JSON body over its
limit, a request without a token. gunicorn then drains at most 64 KiB of the rest before it
closes the connection, after it has already answered "Connection: keep-alive". A client that
sends its next request on that connection meets a reset, and a POST is not retried (CI run of
9866543: the POST after a refused 1,000-file batch). Reading the rest here, before gunicorn
looks, keeps the connection usable. A body over ``limit_bytes`` (MAX_REQUEST_BYTES, which the
API refuses unread) is left to gunicorn to cut off.
"""
from __future__ import annotations

CHUNK_BYTES = 256 * 1024


class DrainUnreadBody:
    def __init__(self, application, limit_bytes: int):
        self.application = application
        self.limit_bytes = limit_bytes

    def __call__(self, environ, start_response):
        response = self.application(environ, start_response)
        try:
            declared = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            return response
        if 0 < declared <= self.limit_bytes:
            _drain(environ["wsgi.input"], self.limit_bytes)
        return response


def _drain(stream, limit_bytes: int) -> None:
    """Read and drop the rest of a body; a read past the body's end returns b"" at once."""
    remaining = limit_bytes
    try:
        while remaining > 0:
            chunk = stream.read(min(CHUNK_BYTES, remaining))
            if not chunk:
                return
            remaining -= len(chunk)
    except OSError:  # the client went away: nothing left to keep alive
        return
