"""Every error the API returns has one shape: ``{"error": {"code", "message", ...}}``.

The codes are one enum, shown in the OpenAPI schema and listed in docs/errors.md.
A job that failed carries one of the *job* codes in its ``error`` field.
"""
from __future__ import annotations

from django.db import models
from rest_framework import status
from rest_framework.exceptions import APIException


class ErrorCode(models.TextChoices):
    # Requests
    INVALID_REQUEST = "invalid_request", "A field is missing or has a wrong value (see `fields`)."
    MALFORMED_REQUEST = "malformed_request", "The body could not be parsed (bad JSON or multipart)."
    UNSUPPORTED_MEDIA_TYPE = "unsupported_media_type", "The request's Content-Type is not multipart/form-data or JSON."
    MISSING_IMAGE = "missing_image", "No image was sent."
    INVALID_BASE64 = "invalid_base64", "`image_base64` is not valid base64."
    UNSUPPORTED_FILE_TYPE = "unsupported_file_type", "The file is neither an image (PNG, JPEG, WebP, TIFF) nor a PDF."
    CORRUPT_IMAGE = "corrupt_image", "The image's data is incomplete or damaged (checked at upload)."
    IMAGE_TOO_SMALL = "image_too_small", "The image is smaller than `MIN_IMAGE_SIDE` pixels on a side: it cannot hold handwriting."
    INVALID_PDF = "invalid_pdf", "The PDF could not be opened or has no pages."
    FILE_TOO_LARGE = "file_too_large", "A file is over `MAX_IMAGE_BYTES` (images) or `MAX_PDF_BYTES` (PDFs)."
    REQUEST_TOO_LARGE = "request_too_large", "The whole request is over `MAX_REQUEST_BYTES`."
    TOO_MANY_PIXELS = "too_many_pixels", "An image has more than `MAX_IMAGE_PIXELS` pixels, or a side longer than `MAX_IMAGE_SIDE`."
    TOO_MANY_PAGES = "too_many_pages", "A batch would hold more than `MAX_PAGES_PER_BATCH` pages."
    IDEMPOTENCY_KEY_REUSED = "idempotency_key_reused", "The `Idempotency-Key` was used in the last 24 h for a different image or kind."
    JOB_NOT_FINISHED = "job_not_finished", "The job has no result yet; poll it until it has finished."
    STEP_NOT_FOUND = "step_not_found", "The job has no step picture of that name, or a link's picture was deleted with its job."
    INVALID_LINK = "invalid_link", "A picture link was altered or cut short; take the links from the job's `steps`."
    LINK_EXPIRED = "link_expired", "A picture link is older than `STEP_LINK_SECONDS`; read the job again for fresh links."
    INVALID_CORRECTION = "invalid_correction", "The correction names no such line or symbol, or offers no shown alternative."
    # Auth and limits
    NOT_AUTHENTICATED = "not_authenticated", "No credentials were sent."
    AUTHENTICATION_FAILED = "authentication_failed", "The token or the username and password are wrong."
    PERMISSION_DENIED = "permission_denied", "The credentials do not allow this."
    NOT_FOUND = "not_found", "No such object, or it belongs to another user."
    METHOD_NOT_ALLOWED = "method_not_allowed", "The URL does not take this HTTP method."
    NOT_ACCEPTABLE = "not_acceptable", "The Accept header asks for a format the URL does not serve."
    THROTTLED = "throttled", "Too many uploads, or too many failed logins for a username from one address; retry after `retry_after` seconds (also in `Retry-After`)."
    # Service
    DATABASE_UNAVAILABLE = "database_unavailable", "The database cannot be reached; retry later."
    INTERNAL_ERROR = "internal_error", "An unexpected error; it is logged."
    # Jobs (in a failed job's `error`)
    NOT_AN_IMAGE = "not_an_image", "Job: the stored file is not a readable image."
    EMPTY_IMAGE = "empty_image", "Job: the image has no pixels."
    IMAGE_MISSING = "image_missing", "Job: its stored image is gone (deleted from storage before a worker read it)."
    TRUNCATED_IMAGE = "truncated_image", "Job: the image data is incomplete or corrupt."
    MULTI_PAGE_IMAGE = "multi_page_image", "Job: the image is a TIFF of several pages; a job reads one (a batch takes them apart)."
    UNSUPPORTED_IMAGE_MODE = "unsupported_image_mode", "Job: the image's colour mode (LAB, for one) cannot be turned into grey."
    NO_SYMBOLS = "no_symbols", "Job: no symbols were found (a blank image, or only specks)."
    NOT_HANDWRITING = "not_handwriting", "Job: the image is mostly ink (noise or a photo), not handwriting."
    TOO_MANY_SYMBOLS = "too_many_symbols", "Job: more symbols than a line or page may hold."
    UNPARSABLE_EXPRESSION = "unparsable_expression", "Job: the symbols do not form an expression; `best_reading` shows what was read."
    VALUE_TOO_LARGE = "value_too_large", "Job: a result exceeds 10^100."
    PROCESSING_TIMEOUT = "processing_timeout", "Job: recognition took longer than `JOB_SOFT_TIME_LIMIT`."
    MODEL_UNAVAILABLE = "model_unavailable", "Job: no model version could be loaded on the worker (see its log)."
    TOO_MANY_ATTEMPTS = "too_many_attempts", "Job: workers stopped on it `JOB_MAX_ATTEMPTS` times."


class ApiError(APIException):
    """An error with a stable code, a message for people and optional extra fields."""

    def __init__(self, code: ErrorCode, message: str, status_code: int = status.HTTP_400_BAD_REQUEST, **extra):
        super().__init__(detail=message, code=code.value)
        self.status_code = status_code
        self.error_code = code
        self.message = message
        self.extra = extra


def error_body(code: str, message: str, **extra) -> dict:
    return {"error": {"code": str(code), "message": message, **extra}}


HTTP_STATUS = {
    "invalid_request": 400, "malformed_request": 400, "unsupported_media_type": 415, "missing_image": 400,
    "invalid_base64": 400, "unsupported_file_type": 400, "corrupt_image": 400, "image_too_small": 400, "invalid_pdf": 400, "file_too_large": 413,
    "request_too_large": 413, "too_many_pixels": 413, "too_many_pages": 413, "idempotency_key_reused": 409,
    "job_not_finished": 409, "step_not_found": 404, "invalid_link": 403, "link_expired": 403, "invalid_correction": 400, "not_authenticated": 401,
    "authentication_failed": 401, "permission_denied": 403, "not_found": 404, "method_not_allowed": 405,
    "not_acceptable": 406, "throttled": 429, "database_unavailable": 503, "internal_error": 500,
}
"""The HTTP status of each request error; the codes not listed end failed jobs."""
