"""The REST API: thin views over :mod:`webapp.recognition.services`. No view waits on a task."""
from __future__ import annotations

import logging

from django.conf import settings
from django.contrib.auth import authenticate
from django.core.files.storage import default_storage
from django.http import FileResponse, HttpResponse
from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import exceptions, mixins, serializers, status, viewsets
from rest_framework.authtoken.models import Token
from rest_framework.decorators import action
from rest_framework.pagination import CursorPagination
from rest_framework.parsers import JSONParser, MultiPartParser
from rest_framework.permissions import AllowAny
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.response import Response
from rest_framework.throttling import ScopedRateThrottle
from rest_framework.views import APIView

from models import registry
from webapp.recognition import model_store, services, uploads
from webapp.recognition.api.serializers import (
    BatchCreateSerializer, BatchPagesSerializer, BatchSerializer, CorrectionRequestSerializer, CorrectionSerializer,
    ErrorSerializer, JobCreateSerializer, JobSerializer, ModelVersionSerializer, TokenRequestSerializer,
)
from webapp.recognition.errors import ApiError, ErrorCode
from webapp.recognition.login import LoginLockout
from webapp.recognition.log_context import bind_job
from webapp.recognition.models import Batch, Job

log = logging.getLogger(__name__)

POLL_AFTER_SECONDS = "1"
ERRORS = {code: OpenApiResponse(ErrorSerializer) for code in (400, 401, 404, 409, 413, 415, 429, 503)}


class FailOpenScopedThrottle(ScopedRateThrottle):
    """ScopedRateThrottle that fails open: a cache outage must not stop uploads."""

    def allow_request(self, request, view):
        try:
            return super().allow_request(request, view)
        except Exception:
            log.warning("throttle cache unavailable; allowing the request", exc_info=True)
            return True


class NewestFirst(CursorPagination):
    # Jobs made together (a batch's pages, one INSERT) share queued_at: the ID orders them,
    # so that a cursor's offset among equal times always means the same rows.
    ordering = ("-queued_at", "-id")
    page_size = 20
    page_size_query_param = "page_size"
    max_page_size = 100


class NewestBatchFirst(NewestFirst):
    ordering = ("-created_at", "-id")


class PNGRenderer(BaseRenderer):
    media_type, format, charset, render_style = "image/png", "png", None, "binary"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        return data


class ImageRenderer(PNGRenderer):
    """Any image type: an upload is served as it came (PNG, JPEG, WebP, TIFF or a PDF's page)."""

    media_type, format = "image/*", "image"


class CSVRenderer(BaseRenderer):
    media_type, format, charset = "text/csv", "csv", "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        return data


class ErrorsAsJSON:
    """Errors are JSON even on the URLs that serve a PNG or a CSV."""

    def finalize_response(self, request, response, *args, **kwargs):
        if isinstance(response, Response) and response.status_code >= 400:
            request.accepted_renderer, request.accepted_media_type = JSONRenderer(), "application/json"
        return super().finalize_response(request, response, *args, **kwargs)


def _check_request_size(request) -> None:
    length = int(request.META.get("CONTENT_LENGTH") or 0)
    if length > settings.MAX_REQUEST_BYTES:
        raise ApiError(
            ErrorCode.REQUEST_TOO_LARGE, f"the request is {length:,} bytes; the limit MAX_REQUEST_BYTES is {settings.MAX_REQUEST_BYTES:,}",
            status.HTTP_413_REQUEST_ENTITY_TOO_LARGE, limit="MAX_REQUEST_BYTES", limit_value=settings.MAX_REQUEST_BYTES,
        )
    if request.content_type.startswith("application/json") and length > settings.DATA_UPLOAD_MAX_MEMORY_SIZE:
        raise ApiError(
            ErrorCode.FILE_TOO_LARGE, f"the JSON body is {length:,} bytes; a base64 image may be at most MAX_IMAGE_BYTES ({settings.MAX_IMAGE_BYTES:,}) decoded",
            status.HTTP_413_REQUEST_ENTITY_TOO_LARGE, limit="MAX_IMAGE_BYTES", limit_value=settings.MAX_IMAGE_BYTES,
        )


def _read(upload, images_only: bool = False) -> tuple[str, bytes]:
    """An upload's name and bytes, refused unread when it is over every limit that could apply
    (a job takes only images; a batch takes PDFs too, checked by content once read)."""
    if images_only or settings.MAX_IMAGE_BYTES >= settings.MAX_PDF_BYTES:
        setting, limit = "MAX_IMAGE_BYTES", settings.MAX_IMAGE_BYTES
    else:
        setting, limit = "MAX_PDF_BYTES", settings.MAX_PDF_BYTES
    if upload.size > limit:
        raise uploads.too_large(f"'{upload.name}'", upload.size, limit, setting)
    return upload.name or "upload", upload.read()


def _open_stored(name: str):
    try:
        return default_storage.open(name, "rb")
    except (FileNotFoundError, OSError):
        raise ApiError(ErrorCode.STEP_NOT_FOUND, "the stored file is gone (deleted by retention or by hand)", status.HTTP_404_NOT_FOUND)


def _accepted(request, data: dict, location: str) -> Response:
    return Response(data, status=status.HTTP_202_ACCEPTED, headers={"Location": location, "Retry-After": POLL_AFTER_SECONDS})


def _wait_seconds(request) -> float | None:
    """The ``?wait=`` of a request: None when absent; a typed 400 unless 0..JOB_WAIT_MAX_S."""
    wait = request.query_params.get("wait")
    if wait is None:
        return None
    try:
        seconds = float(wait)
    except ValueError:
        seconds = -1.0
    if not 0 <= seconds <= settings.JOB_WAIT_MAX_S:  # also refuses nan and inf
        raise ApiError(ErrorCode.INVALID_REQUEST, f"wait must be a number of seconds from 0 to {settings.JOB_WAIT_MAX_S:g}", field="wait")
    return seconds


WAIT_PARAMETER = OpenApiParameter("wait", float, required=False, description=(
    "seconds (up to JOB_WAIT_MAX_S, 30 by default) to hold the request until the job has finished; "
    "the answer is the job as it is then. One request instead of many polls."))


class JobViewSet(ErrorsAsJSON, mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.DestroyModelMixin, viewsets.GenericViewSet):
    """Recognition jobs: submit an image, poll it, fetch its step pictures, correct it."""

    serializer_class = JobSerializer
    pagination_class = NewestFirst
    parser_classes = [MultiPartParser, JSONParser]
    throttle_scope = "uploads"

    def dispatch(self, request, *args, **kwargs):
        if "pk" in kwargs:  # the request's log lines carry the job ID
            with bind_job(kwargs["pk"]):
                return super().dispatch(request, *args, **kwargs)
        return super().dispatch(request, *args, **kwargs)

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # schema generation has no user
            return Job.objects.none()
        jobs = Job.objects.filter(owner=self.request.user)  # another user's job is a 404, never a 403
        if self.action == "list":
            wanted = self.request.query_params.get("status")
            if wanted:
                if wanted not in Job.Status.values:
                    raise ApiError(ErrorCode.INVALID_REQUEST, f"status must be one of {', '.join(Job.Status.values)}", field="status")
                jobs = jobs.filter(status=wanted)
        return jobs

    def get_throttles(self):
        return [FailOpenScopedThrottle()] if self.action in ("create",) else []

    @extend_schema(
        request={"multipart/form-data": JobCreateSerializer, "application/json": JobCreateSerializer},
        parameters=[OpenApiParameter("Idempotency-Key", str, OpenApiParameter.HEADER, required=False,
                                     description="the same key from the same user within 24 h returns the original job"),
                    WAIT_PARAMETER],
        responses={200: JobSerializer, 201: JobSerializer, 202: JobSerializer, **ERRORS},
        description=(
            "Submit an image. Returns 202 at once with Location and Retry-After; wait on the job until it finishes. "
            "With ?wait=N the request itself waits up to N seconds: 201 with the finished job (200 when an "
            "Idempotency-Key replays a finished one), or 202 as without it."
        ),
    )
    def create(self, request):
        wait = _wait_seconds(request)  # checked before anything is stored
        _check_request_size(request)
        form = JobCreateSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        if form.validated_data.get("image") is not None:
            name, data = _read(form.validated_data["image"], images_only=True)
        elif form.validated_data.get("image_base64"):
            name, data = "canvas.png", uploads.decode_base64_image(form.validated_data["image_base64"])
        else:
            raise ApiError(ErrorCode.MISSING_IMAGE, "send a file in `image` (multipart) or `image_base64` (JSON)")
        if uploads.is_pdf(data):
            raise ApiError(ErrorCode.UNSUPPORTED_FILE_TYPE, "a job takes one image; send PDFs to /api/v1/batches/")
        page = uploads.check_image(name, data)
        key = request.headers.get("Idempotency-Key") or None
        if key and (len(key) > 255 or not key.isascii() or not key.isprintable()):
            raise ApiError(ErrorCode.INVALID_REQUEST, "Idempotency-Key must be 1-255 printable ASCII characters", field="Idempotency-Key")
        job, created = services.submit_job(request.user, page, form.validated_data["kind"], idempotency_key=key)
        if wait:
            try:
                job = services.wait_for_job(job, wait)
            except Job.DoesNotExist:
                raise ApiError(ErrorCode.NOT_FOUND, "the job was deleted while waiting", status_code=404)
        body = JobSerializer(job, context={"request": request}).data
        if job.finished and wait is not None:  # 201 for a new job; 200 for a replayed one, which is not new
            response = Response(body, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK, headers={"Location": body["url"]})
        else:
            response = _accepted(request, body, body["url"])
        if not created:
            response["Idempotent-Replayed"] = "true"
        return response

    @extend_schema(parameters=[OpenApiParameter("status", str, enum=Job.Status.values)], responses={200: JobSerializer(many=True), **ERRORS})
    def list(self, request, *args, **kwargs):
        return super().list(request, *args, **kwargs)

    @extend_schema(parameters=[WAIT_PARAMETER], responses={200: JobSerializer, **ERRORS})
    def retrieve(self, request, *args, **kwargs):
        wait = _wait_seconds(request)
        job = self.get_object()
        if wait is not None:
            try:
                job = services.wait_for_job(job, wait)
            except Job.DoesNotExist:
                raise ApiError(ErrorCode.NOT_FOUND, "the job was deleted while waiting", status_code=404)
        return Response(self.get_serializer(job).data)

    @extend_schema(responses={204: None, **ERRORS}, description="Delete the job and every file stored for it.")
    def destroy(self, request, *args, **kwargs):
        return super().destroy(request, *args, **kwargs)

    def perform_destroy(self, instance: Job) -> None:
        services.delete_job(instance)

    @extend_schema(responses={(200, "image/png"): OpenApiTypes.BINARY, **ERRORS})
    @action(detail=True, methods=["get"], url_path=r"steps/(?P<name>[a-z0-9_-]+)\.png", url_name="step",
            renderer_classes=[PNGRenderer, JSONRenderer])
    def step(self, request, pk=None, name=None):
        job = self.get_object()
        if name not in job.steps:
            if not job.finished:
                raise ApiError(ErrorCode.JOB_NOT_FINISHED, f"the job is {job.status}; its pictures come when it has finished", status.HTTP_409_CONFLICT)
            raise ApiError(ErrorCode.STEP_NOT_FOUND, f"no step {name!r}; this job has: {', '.join(job.steps) or 'none'}", status.HTTP_404_NOT_FOUND)
        response = FileResponse(_open_stored(job.steps[name]), content_type="image/png")
        response["Cache-Control"] = "private, max-age=86400"
        return response

    @extend_schema(responses={(200, "image/*"): OpenApiTypes.BINARY, **ERRORS}, description="The image as uploaded.")
    @action(detail=True, methods=["get"], url_path="image", url_name="image", renderer_classes=[ImageRenderer, JSONRenderer])
    def image(self, request, pk=None):
        job = self.get_object()
        response = FileResponse(_open_stored(job.image.name))
        response["Cache-Control"] = "private, max-age=86400"
        return response

    @extend_schema(request=CorrectionRequestSerializer, responses={200: JobSerializer, **ERRORS},
                   description="Pick one of a symbol's shown alternatives, or type the line; the job is re-evaluated at once.")
    @action(detail=True, methods=["post"], url_path="corrections", url_name="corrections", parser_classes=[JSONParser])
    def corrections(self, request, pk=None):
        job = self.get_object()
        form = CorrectionRequestSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        data = form.validated_data
        correction = services.apply_correction(
            job, data["line"], symbol=data.get("symbol"), choice=data.get("choice"), expression=data.get("expression")
        )
        body = JobSerializer(correction.job, context={"request": request}).data  # the row as the correction saved it
        body["correction"] = CorrectionSerializer(correction).data
        return Response(body)


class BatchViewSet(ErrorsAsJSON, mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.DestroyModelMixin, viewsets.GenericViewSet):
    """Scanned worksheets: many files or multi-page PDFs, one job per page, marked line by line."""

    serializer_class = BatchSerializer
    pagination_class = NewestBatchFirst
    parser_classes = [MultiPartParser]
    throttle_scope = "uploads"

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Batch.objects.none()
        return Batch.objects.filter(owner=self.request.user)

    def get_throttles(self):
        return [FailOpenScopedThrottle()] if self.action in ("create", "pages") else []

    @extend_schema(responses={204: None, **ERRORS}, description="Delete the batch, its jobs and every file stored for them.")
    def destroy(self, request, *args, **kwargs):
        return super().destroy(request, *args, **kwargs)

    def perform_destroy(self, instance: Batch) -> None:
        services.delete_batch(instance)

    def _files(self, request, serializer_class) -> list[tuple[str, bytes]]:
        _check_request_size(request)
        form = serializer_class(data=request.data)
        if not request.FILES.getlist("files"):
            raise ApiError(ErrorCode.MISSING_IMAGE, "send one or more files in the multipart field `files`")
        form.is_valid(raise_exception=True)
        return [_read(upload) for upload in form.validated_data["files"]], form.validated_data

    @extend_schema(request={"multipart/form-data": BatchCreateSerializer}, responses={202: BatchSerializer, **ERRORS})
    def create(self, request):
        files, data = self._files(request, BatchCreateSerializer)
        pages = uploads.expand_uploads(files)
        batch = services.submit_batch(request.user, data.get("name") or files[0][0], pages)
        body = BatchSerializer(batch, context={"request": request}).data
        return _accepted(request, body, body["url"])

    @extend_schema(request={"multipart/form-data": BatchPagesSerializer}, responses={202: BatchSerializer, **ERRORS})
    @action(detail=True, methods=["post"], url_path="pages", url_name="pages", parser_classes=[MultiPartParser])
    def pages(self, request, pk=None):
        batch = self.get_object()
        files, _ = self._files(request, BatchPagesSerializer)
        pages = uploads.expand_uploads(files, pages_already=batch.jobs.count())
        services.add_pages(batch, pages)
        body = BatchSerializer(batch, context={"request": request}).data
        return _accepted(request, body, body["url"])

    @extend_schema(responses={(200, "text/csv"): OpenApiTypes.STR, **ERRORS})
    @action(detail=True, methods=["get"], url_path="results.csv", url_name="results-csv", renderer_classes=[CSVRenderer, JSONRenderer])
    def results_csv(self, request, pk=None):
        batch = self.get_object()
        response = HttpResponse(services.batch_csv(batch), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="batch-{batch.id}.csv"'
        return response


class ModelVersionsView(APIView):
    """The model versions on disk and the one that serves (ACTIVE)."""

    @extend_schema(responses={200: inline_serializer("ModelList", {"active": serializers.CharField(allow_null=True), "versions": ModelVersionSerializer(many=True)})})
    def get(self, request):
        try:
            active = model_store.active_version()
        except (registry.RegistryError, model_store.ModelStoreError):
            active = None
        versions = []
        for info in model_store.versions():
            metrics = info.get("metrics") or {}
            versions.append({
                "version": info["version"], "active": info["version"] == active, "size_bytes": info["size_bytes"],
                "metrics": {"test_accuracy": (metrics.get("test") or {}).get("accuracy"),
                            "real_handwriting_accuracy": ((metrics.get("real_handwriting") or {}).get("report") or {}).get("all")},
                "below_promotion_floors": registry.promotion_blockers(metrics),
            })
        return Response({"active": active, "versions": versions})


class TokenView(APIView):
    """Exchange a username and password for the user's API token."""

    authentication_classes: list = []
    permission_classes = [AllowAny]
    throttle_classes = [FailOpenScopedThrottle]
    throttle_scope = "auth"
    parser_classes = [JSONParser, MultiPartParser]

    @extend_schema(request=TokenRequestSerializer, responses={200: inline_serializer("TokenResponse", {"token": serializers.CharField()}), **ERRORS})
    def post(self, request):
        form = TokenRequestSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        # The web login's count: a guesser locked out there is locked out here too.
        lockout = LoginLockout(request, form.validated_data["username"])
        if lockout.locked:
            raise exceptions.Throttled(settings.LOGIN_LOCKOUT_SECONDS, "too many failed logins for this username from this address")
        user = authenticate(request, username=form.validated_data["username"], password=form.validated_data["password"])
        if user is None:
            lockout.failed()
            raise ApiError(ErrorCode.AUTHENTICATION_FAILED, "wrong username or password", status.HTTP_401_UNAUTHORIZED)
        lockout.succeeded()
        token, _ = Token.objects.get_or_create(user=user)
        return Response({"token": token.key})
