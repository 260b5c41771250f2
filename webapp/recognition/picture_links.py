"""Signed, expiring links to a job's step pictures: ``/api/v1/pictures/<signed>.png``.

A job's JSON lists its step pictures as these links. The signature (Django's signing, with
SECRET_KEY) covers the stored file's path, so a link opens that one picture for
PICTURE_LINK_SECONDS without a token, a cookie or a database read: an ``<img>`` tag can show
it, and serving it costs the web a fraction of an authenticated API request (a client that
waits for a job and fetches one picture made two requests, and this was the second). A link
cannot be turned into another picture's, and an expired or altered one is a 404. Reading the
job again gives fresh links; ``/api/v1/jobs/{id}/steps/{name}.png`` still serves the same
pictures to a token or a session.
"""
from __future__ import annotations

from django.conf import settings
from django.core import signing
from django.core.files.storage import default_storage
from django.http import FileResponse, JsonResponse
from django.urls import reverse
from django.views.decorators.http import require_GET

from webapp.recognition.errors import ErrorCode, error_body

SALT = "recognition.picture-link"


def link(path: str, request=None) -> str:
    """The signed link to one stored picture (absolute when a request is given)."""
    url = reverse("picture", args=[signing.dumps(path, salt=SALT)])
    return request.build_absolute_uri(url) if request is not None else url


def stored_path(signed: str) -> str | None:
    """The stored path a link was signed for, or None when it is altered or expired."""
    try:
        return signing.loads(signed, salt=SALT, max_age=settings.PICTURE_LINK_SECONDS)
    except signing.BadSignature:  # SignatureExpired is one too
        return None


@require_GET
def picture(request, signed: str):
    path = stored_path(signed)
    if path is None:
        return _not_found("this picture link is altered or has expired; read the job again for fresh links")
    try:
        handle = default_storage.open(path, "rb")
    except (FileNotFoundError, OSError):
        return _not_found("the picture is gone (its job was deleted)")
    response = FileResponse(handle, content_type="image/png")
    response["Cache-Control"] = f"private, max-age={settings.PICTURE_LINK_SECONDS}"
    response["Referrer-Policy"] = "no-referrer"
    return response


def _not_found(message: str) -> JsonResponse:
    return JsonResponse(error_body(ErrorCode.NOT_FOUND, message), status=404)
