"""Signed, expiring links to a job's step pictures, fetched without the API's per-request work.

A result's ``steps`` are links a client (or a browser's ``<img>``) fetches with no token: the
link itself is the permission, like an S3 presigned URL, and it expires. On S3 storage they
ARE S3 presigned URLs (django-storages signs them), so the pictures never pass through the
web containers. On filesystem storage they point at ``MEDIA_URL`` with an expiry and an HMAC
of the stored name and that expiry, keyed on SECRET_KEY; ``SignedMediaMiddleware`` answers
them before sessions, authentication and the database: a picture costs about a fifth of the
CPU it did through the API view (token, job row, DRF), which measured 4 of a job's 5 requests.

Links are minted per response, but their expiry is rounded up to the next LINK_STEP_SECONDS,
so the links of one job stay the same for a while and a browser's cache keeps working while
a page polls it. The token-authenticated ``/api/v1/jobs/<id>/steps/<name>.png`` stays, for
clients that build URLs themselves; a client whose link has expired reads the job again.
"""
from __future__ import annotations

import time
from urllib.parse import quote, urlencode

from django.conf import settings
from django.core.files.storage import FileSystemStorage, default_storage
from django.core.signing import Signer
from django.http import FileResponse, JsonResponse
from django.utils.crypto import constant_time_compare

from webapp.recognition.errors import ErrorCode, error_body

LINK_STEP_SECONDS = 300
_signer = Signer(salt="webapp.recognition.step_links")


def _signature(name: str, expires: int) -> str:
    return _signer.signature(f"{name}\n{expires}")


def step_link(name: str, request=None, now: float | None = None) -> str:
    """A link to the stored file ``name`` that works without credentials until it expires."""
    if not isinstance(default_storage, FileSystemStorage):
        return default_storage.url(name)  # S3: presigned for AWS_QUERYSTRING_EXPIRE seconds
    now = time.time() if now is None else now
    expires = (int(now + settings.STEP_LINK_SECONDS) // LINK_STEP_SECONDS + 1) * LINK_STEP_SECONDS
    path = settings.MEDIA_URL + quote(name) + "?" + urlencode({"expires": expires, "signature": _signature(name, expires)})
    return request.build_absolute_uri(path) if request is not None else path


def _error(status: int, code: ErrorCode, message: str) -> JsonResponse:
    return JsonResponse(error_body(code, message), status=status)


def serve(request) -> JsonResponse | FileResponse:
    """The file a signed link names, or a typed error: 403 for a link that is altered or expired
    (both say nothing about whether the file exists), 404 for a file deleted since."""
    name = request.path[len(settings.MEDIA_URL):]
    expires, signature = request.GET.get("expires", ""), request.GET.get("signature", "")
    if not (expires.isdigit() and signature and constant_time_compare(signature, _signature(name, int(expires)))):
        return _error(403, ErrorCode.INVALID_LINK, "this link is not a valid picture link; take the links from the job's `steps`")
    if int(expires) < time.time():
        return _error(403, ErrorCode.LINK_EXPIRED, "this link has expired; read the job again for fresh ones")
    try:
        stored = default_storage.open(name, "rb")
    except OSError:
        return _error(404, ErrorCode.STEP_NOT_FOUND, "the picture is gone (its job was deleted, or retention removed it)")
    response = FileResponse(stored, content_type="image/png")
    response["Cache-Control"] = f"private, max-age={max(0, int(expires) - int(time.time()))}"
    return response


class SignedMediaMiddleware:
    """Answers GET/HEAD under MEDIA_URL from a signed link; everything else goes on."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.method in ("GET", "HEAD") and request.path.startswith(settings.MEDIA_URL):
            request.get_host()  # ALLOWED_HOSTS still holds: a disallowed host is a 400 as everywhere else
            return serve(request)
        return self.get_response(request)
