"""Signed, expiring links to a job's step pictures, fetched without the API's per-request work.

A result's ``steps`` are links a client (or a browser's ``<img>``) fetches with no token: the
link itself is the permission, like an S3 presigned URL, and it expires. On filesystem storage
they point at ``MEDIA_URL`` with an expiry and an HMAC of the stored name and that expiry,
keyed on SECRET_KEY (SECRET_KEY_FALLBACKS still verify while a key is rotated);
``SignedMediaMiddleware`` answers them before sessions, authentication and the database: a
picture costs about a fifth of the CPU it did through the API view, which was 4 of a job's 5
requests. Only names shaped like a step picture are ever signed or served, so a leaked key
opens no uploaded image and no model file.

Links are minted per response, but their expiry is rounded up to the next LINK_STEP_SECONDS,
so the links of one job stay the same for a while and a browser's cache keeps working while
a page polls it. The token-authenticated ``/api/v1/jobs/<id>/steps/<name>.png/`` stays, for
clients that build URLs themselves; a client whose link has expired reads the job again.

On S3 storage the links ARE S3 presigned URLs (django-storages signs them), so the pictures
never pass through the web containers. S3 then has the last word: a link changes on every
read, S3 answers errors in its own XML, and a link dies early when the credentials that
signed it expire first (an instance role's last hours, not days).
"""
from __future__ import annotations

import logging
import re
import time
from urllib.parse import quote, urlencode

from django.conf import settings
from django.core.files.storage import FileSystemStorage, default_storage
from django.core.signing import BadSignature, Signer
from django.http import FileResponse, JsonResponse
from prometheus_client import Counter

from webapp.recognition.errors import ErrorCode, error_body

log = logging.getLogger(__name__)

LINK_STEP_SECONDS = 300
STEP_PICTURE_NAME = re.compile(r"jobs/[0-9a-f-]{36}/[0-9a-f]{12}/[A-Za-z0-9_-]+\.png")
"""What services.finish_job stores: jobs/<job>/<attempt>/<step>.png (the storage may add a suffix
such as ``_aB3dE9x`` if a name were ever taken)."""
_EXPIRES = re.compile(r"[0-9]{1,12}")  # ASCII digits only: str.isdigit() also takes '²', which int() refuses
_SALT = "webapp.recognition.step_links"
RESPONSES = Counter("arith_step_link_responses", "Step picture link responses by status (answered before django-prometheus' by-status counts)", ["status"])


def _signer() -> Signer:
    return Signer(salt=_SALT)  # SECRET_KEY, and SECRET_KEY_FALLBACKS when verifying


def _signature(name: str, expires: int) -> str:
    return _signer().signature(f"{name}\n{expires}")


def _signed(name: str, expires: int, signature: str) -> bool:
    signer = _signer()
    try:
        signer.unsign(f"{name}\n{expires}{signer.sep}{signature}")
    except BadSignature:
        return False
    return True


def step_link(name: str, request=None, now: float | None = None) -> str | None:
    """A link to the stored step picture ``name`` that works without credentials until it expires
    (None, logged, for a name that is not a step picture's: only those are ever linked)."""
    if not STEP_PICTURE_NAME.fullmatch(name):
        log.error("not linking %r: it is not a step picture's name", name)
        return None
    if not isinstance(default_storage, FileSystemStorage):
        return default_storage.url(name)  # S3: presigned for STEP_LINK_SECONDS (querystring_expire)
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
    now = time.time()
    expires_at = int(expires) if _EXPIRES.fullmatch(expires) else None
    if not (STEP_PICTURE_NAME.fullmatch(name) and expires_at is not None and signature
            # nothing this service signs lives longer: a link from the far future was not minted here
            and expires_at <= now + settings.STEP_LINK_SECONDS + LINK_STEP_SECONDS
            and _signed(name, expires_at, signature)):
        return _error(403, ErrorCode.INVALID_LINK, "this link is not a valid picture link; take the links from the job's `steps`")
    if expires_at < now:
        return _error(403, ErrorCode.LINK_EXPIRED, "this link has expired; read the job again for fresh ones")
    try:
        stored = default_storage.open(name, "rb")
    except OSError:
        return _error(404, ErrorCode.STEP_NOT_FOUND, "the picture is gone (its job was deleted, or retention removed it)")
    response = FileResponse(stored, content_type="image/png")
    response["Cache-Control"] = f"private, max-age={max(0, expires_at - int(now))}"
    return response


class SignedMediaMiddleware:
    """Answers GET/HEAD under MEDIA_URL from a signed link; everything else goes on."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.method in ("GET", "HEAD") and request.path.startswith(settings.MEDIA_URL):
            request.get_host()  # ALLOWED_HOSTS still holds: a disallowed host is a 400 as everywhere else
            response = serve(request)
            RESPONSES.labels(str(response.status_code)).inc()
            return response
        return self.get_response(request)
