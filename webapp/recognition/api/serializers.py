"""What the API reads and writes. Reading a job never touches the image or the pipeline."""
from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers
from rest_framework.reverse import reverse

from webapp.recognition.errors import ErrorCode
from webapp.recognition.models import Batch, Correction, Job
from webapp.recognition.step_links import step_link


class ErrorDetailSerializer(serializers.Serializer):
    code = serializers.ChoiceField(choices=ErrorCode.choices)
    message = serializers.CharField()
    best_reading = serializers.CharField(required=False, allow_null=True)
    position = serializers.IntegerField(required=False, allow_null=True)
    limit = serializers.CharField(required=False, help_text="the setting a request went over")
    fields = serializers.DictField(required=False, help_text="per-field messages, for invalid_request")
    retry_after = serializers.IntegerField(required=False)


class ErrorSerializer(serializers.Serializer):
    error = ErrorDetailSerializer()


class JobCreateSerializer(serializers.Serializer):
    image = serializers.FileField(required=False, help_text="multipart: a PNG, JPEG, WebP or TIFF image")
    image_base64 = serializers.CharField(required=False, help_text="JSON: a canvas PNG as a data: URL or bare base64")
    kind = serializers.ChoiceField(choices=Job.Kind.choices, default=Job.Kind.EXPRESSION)


_DATETIME = serializers.DateTimeField()  # DRF's own formatting of a time, for JobSerializer


class JobSerializer(serializers.ModelSerializer):
    url = serializers.SerializerMethodField()
    batch = serializers.UUIDField(source="batch_id", read_only=True, allow_null=True)
    error = serializers.SerializerMethodField()
    steps = serializers.SerializerMethodField()

    class Meta:
        model = Job
        fields = [
            "id", "url", "kind", "status", "source_name", "image_sha256", "batch", "page_number", "model_version",
            "attempts", "result", "error", "steps", "queued_at", "started_at", "finished_at", "processing_ms",
        ]
        read_only_fields = fields

    def to_representation(self, job: Job) -> dict:
        # The fields above, written out: DRF's generic path rebuilds a ModelSerializer's field
        # objects from the model on every call, and a job is read on every submit and poll (a
        # tenth of the web's CPU per job under load). A test holds this equal to the generic one.
        return {
            "id": str(job.id), "url": self.get_url(job), "kind": str(job.kind), "status": str(job.status),
            "source_name": job.source_name, "image_sha256": job.image_sha256,
            "batch": None if job.batch_id is None else str(job.batch_id), "page_number": job.page_number,
            "model_version": job.model_version, "attempts": job.attempts, "result": job.result,
            "error": self.get_error(job), "steps": self.get_steps(job),
            "queued_at": _DATETIME.to_representation(job.queued_at), "started_at": _DATETIME.to_representation(job.started_at),
            "finished_at": _DATETIME.to_representation(job.finished_at), "processing_ms": job.processing_ms,
        }

    def get_url(self, job: Job) -> str:
        return reverse("job-detail", args=[job.id], request=self.context.get("request"))

    def get_error(self, job: Job) -> dict | None:
        if not job.error_code:
            return None
        return {"code": job.error_code, "message": job.error_message, **job.error_detail}

    @extend_schema_field({
        "type": "object", "additionalProperties": {"type": "string", "format": "uri"},
        "description": "The step pictures (binarised, boxes, crops, summary) as signed links that expire after "
                       "STEP_LINK_SECONDS: fetch them WITHOUT an Authorization header (on S3 storage they are S3 "
                       "presigned URLs, which refuse one). Read the job again for fresh links. Empty until the job has finished.",
    })
    def get_steps(self, job: Job) -> dict[str, str]:
        # Signed links, not the API's step URLs: fetched without a token, and without Django's API work
        links = {name: step_link(stored, self.context.get("request")) for name, stored in job.steps.items()}
        return {name: link for name, link in links.items() if link}


class CorrectionRequestSerializer(serializers.Serializer):
    line = serializers.IntegerField(min_value=0, default=0, help_text="0-based line index in the result")
    symbol = serializers.IntegerField(min_value=0, required=False, help_text="0-based symbol index in that line")
    choice = serializers.CharField(required=False, max_length=4, help_text="one of the symbol's shown top-3 classes")
    expression = serializers.CharField(required=False, max_length=255, help_text="the whole line, typed (× or * or x)")

    def validate(self, data):
        alternative = "symbol" in data or "choice" in data
        if alternative == ("expression" in data):
            raise serializers.ValidationError("send either symbol and choice, or expression")
        if alternative and not ("symbol" in data and "choice" in data):
            raise serializers.ValidationError("symbol and choice go together")
        return data


class CorrectionSerializer(serializers.ModelSerializer):
    class Meta:
        model = Correction
        fields = ["id", "line", "symbol", "read_as", "expression", "labels", "created_at"]
        read_only_fields = fields


class BatchCreateSerializer(serializers.Serializer):
    files = serializers.ListField(child=serializers.FileField(), help_text="images and PDFs; one job per image or PDF page")
    name = serializers.CharField(required=False, allow_blank=True, max_length=200)


class BatchPagesSerializer(serializers.Serializer):
    files = serializers.ListField(child=serializers.FileField())


class LineSummarySerializer(serializers.Serializer):
    line = serializers.IntegerField()
    expression = serializers.CharField(allow_null=True)
    answer = serializers.IntegerField(allow_null=True)
    answer_expression = serializers.CharField(allow_null=True, required=False, help_text="the right-hand side as written, e.g. '4*9'")
    value = serializers.IntegerField(allow_null=True)
    correct = serializers.BooleanField(allow_null=True)
    error = serializers.CharField(allow_null=True)


class ScoreSerializer(serializers.Serializer):
    correct = serializers.IntegerField()
    answered = serializers.IntegerField()
    total = serializers.IntegerField()


class PageSummarySerializer(serializers.Serializer):
    job = serializers.SerializerMethodField()
    boxes = serializers.SerializerMethodField(help_text="signed link to the page with each symbol boxed (fetch it without a token; "
                                                        "it expires like the job's `steps`); null until the page is read")
    page_number = serializers.IntegerField()
    source_name = serializers.CharField()
    status = serializers.CharField()
    lines = LineSummarySerializer(many=True)
    score = ScoreSerializer()
    error = serializers.DictField(allow_null=True)

    def get_job(self, page) -> str:
        return reverse("job-detail", args=[page["job"].id], request=self.context.get("request"))

    def get_boxes(self, page) -> str | None:
        stored = page["job"].steps.get("boxes")
        return step_link(stored, self.context.get("request")) if stored else None


class BatchSerializer(serializers.ModelSerializer):
    url = serializers.SerializerMethodField()
    progress = serializers.SerializerMethodField()
    finished = serializers.SerializerMethodField()
    score = serializers.SerializerMethodField()
    pages = serializers.SerializerMethodField()
    results_csv = serializers.SerializerMethodField()

    class Meta:
        model = Batch
        fields = ["id", "url", "name", "created_at", "progress", "finished", "score", "pages", "results_csv"]
        read_only_fields = fields

    def _summary(self, batch: Batch) -> dict:
        from webapp.recognition.services import batch_summary

        cache = self.context.setdefault("summaries", {})
        if batch.pk not in cache:
            cache[batch.pk] = batch_summary(batch)
        return cache[batch.pk]

    def get_url(self, batch) -> str:
        return reverse("batch-detail", args=[batch.id], request=self.context.get("request"))

    def get_results_csv(self, batch) -> str:
        return reverse("batch-results-csv", args=[batch.id], request=self.context.get("request"))

    def get_progress(self, batch) -> dict:
        return self._summary(batch)["progress"]

    def get_finished(self, batch) -> bool:
        return self._summary(batch)["finished"]

    def get_score(self, batch) -> dict:
        return self._summary(batch)["score"]

    @extend_schema_field(PageSummarySerializer(many=True))
    def get_pages(self, batch) -> list[dict]:
        return PageSummarySerializer(self._summary(batch)["pages"], many=True, context=self.context).data


class ModelVersionSerializer(serializers.Serializer):
    version = serializers.CharField()
    active = serializers.BooleanField()
    size_bytes = serializers.IntegerField(allow_null=True)
    metrics = serializers.DictField(allow_null=True)
    below_promotion_floors = serializers.ListField(child=serializers.CharField())


class TokenRequestSerializer(serializers.Serializer):
    username = serializers.CharField()
    password = serializers.CharField(style={"input_type": "password"})
