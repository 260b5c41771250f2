"""DRF's exception handler, reshaped: every error is ``{"error": {"code", "message", ...}}``."""
from __future__ import annotations

import logging

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig, SuspiciousOperation, TooManyFieldsSent, TooManyFilesSent
from django.db import InterfaceError, OperationalError
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response

from webapp.recognition.errors import ApiError, ErrorCode, error_body

log = logging.getLogger(__name__)

DRF_CODES: list[tuple[type[Exception], ErrorCode]] = [
    (exceptions.NotAuthenticated, ErrorCode.NOT_AUTHENTICATED),
    (exceptions.AuthenticationFailed, ErrorCode.AUTHENTICATION_FAILED),
    (exceptions.PermissionDenied, ErrorCode.PERMISSION_DENIED),
    (exceptions.NotFound, ErrorCode.NOT_FOUND),
    (exceptions.MethodNotAllowed, ErrorCode.METHOD_NOT_ALLOWED),
    (exceptions.NotAcceptable, ErrorCode.NOT_ACCEPTABLE),
    (exceptions.UnsupportedMediaType, ErrorCode.UNSUPPORTED_MEDIA_TYPE),
    (exceptions.ParseError, ErrorCode.MALFORMED_REQUEST),
    (exceptions.Throttled, ErrorCode.THROTTLED),
    (exceptions.ValidationError, ErrorCode.INVALID_REQUEST),
]


def _message(detail) -> str:
    if isinstance(detail, dict):
        return "; ".join(f"{field}: {_message(value)}" for field, value in detail.items())
    if isinstance(detail, list):
        return " ".join(_message(item) for item in detail)
    return str(detail)


def database_unavailable() -> dict:
    return error_body(ErrorCode.DATABASE_UNAVAILABLE, "the database cannot be reached; retry in a few seconds")


def exception_handler(exc, context):
    if isinstance(exc, ApiError):
        return Response(error_body(exc.error_code, exc.message, **exc.extra), status=exc.status_code)
    if isinstance(exc, Http404):
        return Response(error_body(ErrorCode.NOT_FOUND, "not found"), status=status.HTTP_404_NOT_FOUND)
    if isinstance(exc, DjangoPermissionDenied):
        return Response(error_body(ErrorCode.PERMISSION_DENIED, str(exc) or "permission denied"), status=status.HTTP_403_FORBIDDEN)
    if isinstance(exc, (OperationalError, InterfaceError)):
        log.warning("database unavailable: %s", exc)
        return Response(database_unavailable(), status=status.HTTP_503_SERVICE_UNAVAILABLE, headers={"Retry-After": "5"})
    if isinstance(exc, TooManyFilesSent):
        return Response(
            error_body(ErrorCode.TOO_MANY_PAGES, f"too many files in one request: {exc}", limit="MAX_PAGES_PER_BATCH"),
            status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
        )
    if isinstance(exc, RequestDataTooBig):
        return Response(
            error_body(ErrorCode.FILE_TOO_LARGE, "the request body is over the in-memory limit for a base64 image", limit="MAX_IMAGE_BYTES"),
            status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
        )
    if isinstance(exc, TooManyFieldsSent):
        return Response(
            error_body(ErrorCode.MALFORMED_REQUEST, f"too many fields in one request: {exc}", limit="DATA_UPLOAD_MAX_NUMBER_FIELDS"),
            status=status.HTTP_400_BAD_REQUEST,
        )
    if isinstance(exc, SuspiciousOperation):  # the others Django itself answers with a 400
        log.warning("suspicious request: %s: %s", type(exc).__name__, exc)
        return Response(error_body(ErrorCode.MALFORMED_REQUEST, "the request could not be parsed"), status=status.HTTP_400_BAD_REQUEST)
    for kind, code in DRF_CODES:
        if isinstance(exc, kind):
            extra, headers = {}, {}
            if isinstance(exc, exceptions.ValidationError):
                extra["fields"] = exc.detail
                message = "invalid request: " + _message(exc.detail)
            else:
                message = _message(exc.detail)
            if isinstance(exc, exceptions.Throttled) and exc.wait is not None:
                extra["retry_after"] = int(exc.wait + 0.999)
                headers["Retry-After"] = str(extra["retry_after"])
            if getattr(exc, "auth_header", None):
                headers["WWW-Authenticate"] = exc.auth_header
            return Response(error_body(code, message, **extra), status=exc.status_code, headers=headers)
    log.exception("unexpected error in %s", context.get("view").__class__.__name__ if context.get("view") else "a view")
    return Response(error_body(ErrorCode.INTERNAL_ERROR, "an unexpected error; it has been logged"), status=500)
