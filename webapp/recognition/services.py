"""What the API and the workers do to jobs, as plain functions (views and tasks are thin shells).

A job's life: :func:`submit_job` stores the image and enqueues it after commit;
a worker :func:`claim_job`\\ s it with one conditional UPDATE (a QUEUED job, or a
RUNNING one whose lease expired), and :func:`finish_job` saves the result only
``WHERE attempt_token = <mine>``. :func:`sweep` re-enqueues what a lost message,
a Redis restart or a killed worker left behind, and fails jobs past their attempts.

No recognition code runs here: the web side imports this module too.
"""
from __future__ import annotations

import csv
import io
import logging
import uuid
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import IntegrityError, connection, connections, router, transaction
from django.db.models import Count, F, Max, Q
from django.db.models.functions import Now
from django.utils import timezone
from PIL import Image
from rest_framework import status

from webapp.recognition import job_events
from webapp.recognition.errors import ApiError, ErrorCode
from webapp.recognition.models import Batch, Correction, Job
from webapp.recognition.signals import delete_stored
from webapp.recognition.uploads import Page
from workers.pipeline import grammar
from workers.pipeline.errors import RecognitionError

log = logging.getLogger(__name__)

RECOGNIZE_TASK = "recognition.recognize"
INFERENCE_QUEUE = "inference"
CROP_SIZE = 28
NEVER_ENQUEUED_GRACE = timedelta(seconds=5)  # a job the broker refused was just tried: wait a little


# --- submitting -----------------------------------------------------------------------------
def _new_job(owner, page: Page, kind: str, batch: Batch | None = None, page_number: int | None = None, idempotency_key: str | None = None) -> Job:
    job = Job(
        owner=owner, kind=kind, batch=batch, page_number=page_number, source_name=page.name[:255],
        image_sha256=page.sha256, idempotency_key=idempotency_key, max_attempts=settings.JOB_MAX_ATTEMPTS,
        enqueued_at=Now(),  # sent right after commit; enqueue() clears it if the broker refuses (one UPDATE less per job)
    )
    job.image.save(f"jobs/{job.id}/input{page.extension}", ContentFile(page.data), save=False)
    return job


def submit_job(owner, page: Page, kind: str, idempotency_key: str | None = None) -> tuple[Job, bool]:
    """Store the image and create a queued job; ``(job, False)`` when the key was already used."""
    if idempotency_key:
        original = _job_for_key(owner, idempotency_key)
        if original is not None:
            return _replay(original, page, kind), False
    job = _new_job(owner, page, kind, idempotency_key=idempotency_key)
    try:
        with transaction.atomic():
            if idempotency_key:
                # An older job may hold the key past the 24 h window: it gives the key up.
                stale = timezone.now() - timedelta(hours=settings.IDEMPOTENCY_WINDOW_HOURS)
                Job.objects.filter(owner=owner, idempotency_key=idempotency_key, queued_at__lt=stale).update(idempotency_key=None)
            job.save()
    except IntegrityError:
        # A concurrent request with the same key won the race: answer with its job.
        delete_stored([job.image.name])
        if not idempotency_key:
            raise  # not a key clash: nothing to answer with
        original = _job_for_key(owner, idempotency_key)
        if original is None:
            raise
        return _replay(original, page, kind), False
    except BaseException:
        delete_stored([job.image.name])  # nothing half-stored
        raise
    log.info("job queued", extra={"job_id": str(job.id), "kind": kind, "bytes": len(page.data)})
    transaction.on_commit(lambda: enqueue([job.id], marked=True))
    return job, True


def _job_for_key(owner, key: str) -> Job | None:
    since = timezone.now() - timedelta(hours=settings.IDEMPOTENCY_WINDOW_HOURS)
    return Job.objects.filter(owner=owner, idempotency_key=key, queued_at__gte=since).first()


def _replay(original: Job, page: Page, kind: str) -> Job:
    if original.image_sha256 != page.sha256 or original.kind != kind:
        different = "image" if original.image_sha256 != page.sha256 else f"kind ({original.kind}, not {kind})"
        raise ApiError(
            ErrorCode.IDEMPOTENCY_KEY_REUSED,
            f"this Idempotency-Key was used in the last 24 h for a different {different}",
            status.HTTP_409_CONFLICT, job=str(original.id),
        )
    return original


def submit_batch(owner, name: str, pages: list[Page], kind: str = Job.Kind.WORKSHEET) -> Batch:
    with transaction.atomic():
        batch = Batch.objects.create(owner=owner, name=name[:200])
        add_pages(batch, pages, kind)
    return batch


def _locked(rows, what: str):
    """The one row of ``rows``, locked until the transaction ends.

    A 404 when it is gone: another request deleted it after this one looked it up
    (a second DELETE of the same object, or a write that waited on a delete's lock).
    """
    try:
        return rows.select_for_update().get()
    except rows.model.DoesNotExist:
        raise ApiError(ErrorCode.NOT_FOUND, f"the {what} was deleted meanwhile", status.HTTP_404_NOT_FOUND) from None


def add_pages(batch: Batch, pages: list[Page], kind: str = Job.Kind.WORKSHEET) -> list[Job]:
    jobs: list[Job] = []
    try:
        with transaction.atomic():
            # Lock the batch so two uploads of more pages number them without a clash or going over the limit,
            # and so that a delete of the batch takes the new pages with it (or this finds the batch gone).
            _locked(Batch.objects.filter(pk=batch.pk), "batch")
            held = batch.jobs.aggregate(count=Count("pk"), last=Max("page_number"))
            if held["count"] + len(pages) > settings.MAX_PAGES_PER_BATCH:
                raise ApiError(
                    ErrorCode.TOO_MANY_PAGES, f"the batch would hold {held['count'] + len(pages)} pages; the limit MAX_PAGES_PER_BATCH is {settings.MAX_PAGES_PER_BATCH}",
                    status.HTTP_413_REQUEST_ENTITY_TOO_LARGE, limit="MAX_PAGES_PER_BATCH", limit_value=settings.MAX_PAGES_PER_BATCH,
                )
            first = (held["last"] or 0) + 1  # after the last page, not the count: a deleted page's number is not given again
            for i, page in enumerate(pages):
                jobs.append(_new_job(batch.owner, page, kind, batch=batch, page_number=first + i))
            Job.objects.bulk_create(jobs)
            ids = [job.id for job in jobs]
            transaction.on_commit(lambda: enqueue(ids, marked=True))
    except BaseException:
        delete_stored([job.image.name for job in jobs])  # nothing half-stored
        raise
    return jobs


def enqueue(job_ids: list, marked: bool = False) -> int:
    """Send one message per job. A broker that is down is logged, never raised: the sweep retries.

    ``marked``: new jobs, inserted with enqueued_at already set; only those not sent are
    cleared, so that the sweep sends them at once. (A web process that dies between the
    commit and the send leaves a marked job: the sweep sends it after JOB_REQUEUE_AFTER.)
    """
    from workers.celery_app import app  # the Celery app only: tasks are sent by name

    sent = []
    for job_id in job_ids:
        try:
            app.send_task(RECOGNIZE_TASK, args=[str(job_id)], queue=INFERENCE_QUEUE)
        except Exception:  # kombu/redis raise many types for "broker unreachable"
            log.warning("could not enqueue job %s; the sweep will retry", job_id, exc_info=True)
            break
        sent.append(job_id)
    unsent = job_ids[len(sent):]  # sending stops at the first refusal
    if marked and unsent:
        Job.objects.filter(pk__in=unsent).update(enqueued_at=None)
    elif not marked and sent:
        Job.objects.filter(pk__in=sent).update(enqueued_at=Now())  # the database's clock
    return len(sent)


def database_now():
    """The database's clock. Leases are set by workers and checked by beat, on different hosts:
    one clock for all of them means a host whose clock drifts cannot steal or strand a job."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT statement_timestamp()")
            return cursor.fetchone()[0]
    return timezone.now()  # SQLite: the database is a file on this host, so this is its clock


# --- running (called by the worker) ------------------------------------------------------------
@dataclass(frozen=True)
class Claim:
    job: Job
    token: uuid.UUID


def _claimable(now) -> Q:
    return Q(status=Job.Status.QUEUED) | Q(status=Job.Status.RUNNING, lease_expires_at__lt=now)


def claim_job(job_id) -> Claim | None:
    """Take the job for one attempt, or None when it is finished, leased to another worker, or gone."""
    token = uuid.uuid4()
    database = router.db_for_write(Job)
    job = _claim_returning(job_id, token, database) if connections[database].vendor == "postgresql" else _claim_then_read(job_id, token)
    if job is None:
        now = Now()
        _fail_exhausted(Job.objects.filter(_claimable(now), pk=job_id), now)
        return None
    return Claim(job, token)


_CLAIM_SQL = """
UPDATE {table}
   SET status = %(running)s, attempt_token = %(token)s, attempts = attempts + 1,
       lease_expires_at = statement_timestamp() + %(lease_s)s * interval '1 second', started_at = statement_timestamp()
 WHERE id = %(id)s AND attempts < max_attempts
   AND (status = %(queued)s OR (status = %(running)s AND lease_expires_at < statement_timestamp()))
RETURNING *
""".format(table=Job._meta.db_table)


def _claim_returning(job_id, token: uuid.UUID, database: str = "default") -> Job | None:
    # PostgreSQL: the claim and the read in one statement. The same conditions as _claimable and
    # the database's clock as Now() (statement_timestamp()); the ORM needs an UPDATE and a SELECT,
    # and building those two was a quarter of a worker's CPU for a canvas line.
    params = {"running": Job.Status.RUNNING.value, "queued": Job.Status.QUEUED.value, "token": token,
              "lease_s": settings.JOB_LEASE_SECONDS, "id": job_id}
    return next(iter(Job.objects.raw(_CLAIM_SQL, params).using(database)), None)  # iterated once: one UPDATE


def _claim_then_read(job_id, token: uuid.UUID) -> Job | None:
    now = Now()  # the database's clock, as in database_now(), without a round trip of its own
    claimed = (
        Job.objects.filter(_claimable(now), pk=job_id, attempts__lt=F("max_attempts"))
        .update(
            status=Job.Status.RUNNING, attempt_token=token, attempts=F("attempts") + 1,
            lease_expires_at=now + timedelta(seconds=settings.JOB_LEASE_SECONDS), started_at=now,
        )
    )
    return Job.objects.filter(pk=job_id).first() if claimed else None  # None also when deleted right after the claim


def _fail_exhausted(jobs, now) -> int:
    return jobs.filter(attempts__gte=F("max_attempts")).update(
        status=Job.Status.FAILED, error_code=ErrorCode.TOO_MANY_ATTEMPTS,
        error_message="workers stopped on this job too many times (JOB_MAX_ATTEMPTS)",
        finished_at=now, lease_expires_at=None,
    )


def wait_for_job(job: Job, seconds: float) -> Job:
    """The job once it has finished, or as it is after ``seconds`` (capped at JOB_WAIT_MAX_S)."""
    if job.finished or seconds <= 0:
        return job

    def finished() -> bool:
        # The status alone: the whole row (with its result) is read once, at the end.
        status = Job.objects.filter(pk=job.pk).values_list("status", flat=True).first()
        return status is None or status in Job.FINISHED  # None: deleted while waiting

    job_events.wait_until_finished(job.pk, min(seconds, settings.JOB_WAIT_MAX_S), finished)
    job.refresh_from_db()  # raises Job.DoesNotExist when it was deleted meanwhile
    return job


def read_image(job: Job) -> bytes:
    with default_storage.open(job.image.name, "rb") as handle:
        return handle.read()


def finish_job(
    claim: Claim, *, record: dict | None, error: RecognitionError | None, model_version: str | None,
    pictures: dict[str, bytes] | None = None, crops_png: bytes | None = None, processing_ms: int | None = None,
) -> bool:
    """Save this attempt's outcome; False (and nothing kept) when a newer attempt owns the job."""
    folder = f"jobs/{claim.job.id}/{claim.token.hex[:12]}"
    steps = {name: default_storage.save(f"{folder}/{name}.png", ContentFile(png)) for name, png in (pictures or {}).items()}
    crops = default_storage.save(f"{folder}/symbols.png", ContentFile(crops_png)) if crops_png else ""
    fields = dict(
        status=Job.Status.FAILED if error else Job.Status.SUCCEEDED, result=record, steps=steps, symbol_crops=crops,
        model_version=model_version or "", finished_at=Now(), processing_ms=processing_ms, lease_expires_at=None,
        error_code=error.code if error else "", error_message=error.message if error else "",
        error_detail=_error_detail(error),
    )
    try:
        saved = Job.objects.filter(pk=claim.job.id, attempt_token=claim.token, status=Job.Status.RUNNING).update(**fields)
    except BaseException:
        delete_stored(list(steps.values()) + ([crops] if crops else []))
        raise
    if not saved:
        log.info("job %s: attempt %s lost its claim; its output is discarded", claim.job.id, claim.token)
        delete_stored(list(steps.values()) + ([crops] if crops else []))
    else:
        transaction.on_commit(lambda: job_events.announce_finished(claim.job.id))
    return bool(saved)


def _error_detail(error: RecognitionError | None) -> dict:
    if error is None:
        return {}
    return {k: v for k, v in (("best_reading", error.best_reading), ("position", error.position)) if v is not None}


def release_job(claim: Claim) -> None:
    """Give the job back to the queue after a transient error (best effort: the lease covers failure)."""
    Job.objects.filter(pk=claim.job.id, attempt_token=claim.token, status=Job.Status.RUNNING).update(
        status=Job.Status.QUEUED, lease_expires_at=None
    )


def fail_job(job_id, code: str, message: str, token: uuid.UUID | None = None, holder_died: bool = False) -> bool:
    """Mark an unfinished job FAILED (the task's one place for failures nothing else recorded).

    With ``token``, only while that attempt holds the job; with ``holder_died`` (its process was
    killed at the hard time limit, well inside its lease) whatever attempt runs it; otherwise only
    a job no live attempt holds, so a stale task never fails a newer attempt.
    """
    if holder_died:
        mine = Q(status__in=[Job.Status.QUEUED, Job.Status.RUNNING])
    elif token is not None:  # running it, or released it (transient error) with nobody claiming it since
        mine = Q(status__in=[Job.Status.QUEUED, Job.Status.RUNNING], attempt_token=token)
    else:
        mine = Q(status=Job.Status.QUEUED) | Q(status=Job.Status.RUNNING, lease_expires_at__lt=database_now())
    failed = Job.objects.filter(mine, pk=job_id).update(
        status=Job.Status.FAILED, error_code=code, error_message=message[:2000],
        finished_at=Now(), lease_expires_at=None,
    )
    if failed:
        transaction.on_commit(lambda: job_events.announce_finished(job_id))
    return bool(failed)


# --- housekeeping (Celery beat) ----------------------------------------------------------------
def sweep(now=None, limit: int = 1000) -> dict[str, int]:
    """Fail jobs past their attempts; re-enqueue queued jobs nobody took and running jobs whose lease expired."""
    now = now or database_now()
    expired = Q(status=Job.Status.RUNNING, lease_expires_at__lt=now)
    failed = _fail_exhausted(Job.objects.filter(expired | Q(status=Job.Status.QUEUED)), now)
    requeue_before = now - timedelta(seconds=settings.JOB_REQUEUE_AFTER)
    never_sent = Q(status=Job.Status.QUEUED, enqueued_at__isnull=True, queued_at__lt=now - NEVER_ENQUEUED_GRACE)
    sent_long_ago = Q(status=Job.Status.QUEUED, enqueued_at__lt=requeue_before)
    # A running job whose lease expired is sent again once, unless it was sent since its lease ran out.
    abandoned = expired & (Q(enqueued_at__isnull=True) | Q(enqueued_at__lt=F("lease_expires_at")) | Q(enqueued_at__lt=requeue_before))
    if _broker_holds_every_queued_message():
        sent_long_ago = Q(pk__in=[])  # a backlog, not a loss: sending them again would only add duplicates
    stale = list(Job.objects.filter(never_sent | sent_long_ago | abandoned).order_by("queued_at").values_list("id", flat=True)[:limit])
    requeued = enqueue(stale) if stale else 0
    if failed or requeued:
        log.info("sweep: %d failed after too many attempts, %d re-enqueued", failed, requeued)
    return {"failed": failed, "requeued": requeued}


def _broker_holds_every_queued_message() -> bool:
    """Whether the inference queue holds a message for every queued job that was sent.

    A queued job is sent again after JOB_REQUEUE_AFTER because its message may be lost (a Redis
    restart keeps none). Under a backlog it is merely waiting: while messages wait and they are
    as many as such jobs (less those the workers have reserved, one per process at most),
    nothing was lost. A job whose message alone was lost then waits until the backlog drains
    (the queue empties), as it would have anyway. With the broker unreachable, the answer is no.
    """
    from webapp.recognition.queue_stats import broker_depth, worker_processes

    depth = broker_depth()
    if not depth:  # unreachable, or nothing waits: a queued job sent long ago lost its message
        return False
    sent = Job.objects.filter(status=Job.Status.QUEUED, enqueued_at__isnull=False).count()
    return depth + worker_processes() >= sent


def purge_expired(now=None, chunk: int = 500) -> int:
    """Delete jobs (and their files) older than JOB_RETENTION_DAYS, then batches left empty."""
    cutoff = (now or timezone.now()) - timedelta(days=settings.JOB_RETENTION_DAYS)
    deleted = 0
    while True:
        ids = list(Job.objects.filter(queued_at__lt=cutoff).values_list("id", flat=True)[:chunk])
        if not ids:
            break
        with transaction.atomic():
            deleted += Job.objects.filter(pk__in=ids).delete()[1].get("recognition.Job", 0)
    Batch.objects.filter(created_at__lt=cutoff, jobs__isnull=True).delete()
    delete_orphaned_files()
    return deleted


STORED_FOLDERS = ("jobs", "corrections")
"""Where files live, each under its job's id (jobs/<id>/..., corrections/<id>/...)."""
ORPHAN_MIN_AGE = timedelta(hours=1)
"""An upload's file is stored just before its job's row is committed: younger files are left alone."""


def delete_orphaned_files(now=None) -> int:
    """Delete stored files whose job is gone, and return how many.

    A job's files are deleted after its row, once the transaction commits; should the storage
    fail then (S3 unreachable), they would outlive the job that promised them gone. Run with
    the retention purge, this finds them later: folders named for a job id with no row, all of
    whose files are older than ORPHAN_MIN_AGE.
    """
    now = now or timezone.now()
    removed = 0
    for top in STORED_FOLDERS:
        try:
            folders, _ = default_storage.listdir(top)
        except (FileNotFoundError, NotImplementedError):
            continue
        ids = {}
        for name in folders:
            try:
                ids[uuid.UUID(name)] = name
            except ValueError:
                continue  # not a job's folder: never ours to delete
        existing = set()
        id_list = list(ids)
        for start in range(0, len(id_list), 1000):
            existing.update(Job.objects.filter(pk__in=id_list[start : start + 1000]).values_list("id", flat=True))
        for job_id in ids.keys() - existing:
            folder = f"{top}/{ids[job_id]}"
            files = _files_under(folder)
            if files and all(now - default_storage.get_modified_time(path) >= ORPHAN_MIN_AGE for path in files):
                delete_stored(files)
                removed += len(files)
                files = []
            if not files:
                _remove_empty_folders(folder, now)
    if removed:
        log.warning("deleted %d stored files whose job was gone", removed)
    return removed


def _remove_empty_folders(folder: str, now) -> None:
    """On a filesystem, the folders a deleted job's files left behind (S3 has no folders).
    Only those untouched for ORPHAN_MIN_AGE: an upload makes its folder a moment before it
    writes its file."""
    try:
        root = Path(default_storage.path(folder))
    except NotImplementedError:
        return
    oldest_allowed = (now - ORPHAN_MIN_AGE).timestamp()
    try:
        # Ages read before any removal: removing a folder touches its parent's.
        ages = {path: path.stat().st_mtime for path in [root, *root.rglob("*")]}
    except OSError:
        return
    for path in sorted(ages, key=lambda p: len(p.parts), reverse=True):
        try:
            if ages[path] <= oldest_allowed:
                path.rmdir()  # fails, and is left, unless empty
        except OSError:
            pass


def _files_under(folder: str) -> list[str]:
    folders, files = default_storage.listdir(folder)
    found = [f"{folder}/{name}" for name in files]
    for name in folders:
        found += _files_under(f"{folder}/{name}")
    return found


# --- deleting (called by the API) ---------------------------------------------------------------
def delete_job(job: Job) -> None:
    """Delete the job and its files; a 404 when another request deleted it first."""
    # Lock and re-read the row: a worker finishing right now either saved its pictures before
    # (and they are deleted with the row) or finds the row gone and deletes its own.
    with transaction.atomic():
        _locked(Job.objects.filter(pk=job.pk), "job").delete()


def delete_batch(batch: Batch) -> None:
    """Delete the batch, its jobs and their files; a 404 when another request deleted it first."""
    with transaction.atomic():
        # The batch first, as add_pages locks it: pages being added are either committed before
        # (and deleted here) or find the batch gone. Then its jobs, as delete_job locks one, so that
        # the rows deleted (and the files their signal deletes) are the ones workers last saved.
        batch = _locked(Batch.objects.filter(pk=batch.pk), "batch")
        list(Job.objects.filter(batch=batch).order_by("pk").select_for_update().values_list("pk", flat=True))
        batch.delete()


# --- corrections -------------------------------------------------------------------------------
SYMBOL_ALIASES = {"×": "*", "x": "*", "X": "*", "·": "*", "−": "-", "–": "-"}


def normalise_expression(text: str) -> str:
    return "".join(SYMBOL_ALIASES.get(c, c) for c in text if not c.isspace())


def apply_correction(job: Job, line: int, *, symbol: int | None = None, choice: str | None = None, expression: str | None = None) -> Correction:
    """Re-read one line from a chosen alternative or a typed expression; no new job is run."""
    stored: list[str] = []
    try:
        with transaction.atomic():
            job = _locked(Job.objects.filter(pk=job.pk), "job")
            lines = (job.result or {}).get("lines") or []
            if not job.finished or not lines:
                raise ApiError(ErrorCode.JOB_NOT_FINISHED, "the job has no lines to correct yet", status.HTTP_409_CONFLICT)
            if not 0 <= line < len(lines):
                raise ApiError(ErrorCode.INVALID_CORRECTION, f"line must be 0..{len(lines) - 1}", field="line")
            current = lines[line]
            read_as = current.get("expression") or ""
            symbols = list(current.get("symbols") or [])
            if expression is None:
                if current.get("retyped_apart"):
                    raise ApiError(ErrorCode.INVALID_CORRECTION, f"line {line} was typed with another number of symbols than were read, "
                                   "so a symbol can no longer be picked; type the whole line instead", field="symbol")
                text = _with_alternative(symbols, symbol, choice)
            else:
                text = normalise_expression(expression)
            try:
                parsed = grammar.parse_line(text)
            except RecognitionError as error:
                raise ApiError(ErrorCode.INVALID_CORRECTION, f"{text!r} is not an expression: {error.message}", field="expression")
            aligned = len(text) == len(symbols)
            if aligned:
                # Each symbol read is now what the user chose or typed, so that a later pick builds
                # on this correction rather than on the first reading (and labels its crops so).
                symbols = [{**read, "symbol": typed} for read, typed in zip(symbols, text)]
            lines[line] = {
                **current, "symbols": symbols, "expression": parsed.expression,
                "value": parsed.value, "answer": parsed.answer, "answer_expression": parsed.answer_expression,
                "correct": parsed.correct, "error": None,
                "read_as": current.get("read_as", read_as), "corrected": True, "retyped_apart": not aligned,
            }
            job.result["lines"] = lines
            _refresh_page_error(job)
            correction = Correction(job=job, line=line, symbol=symbol, read_as=read_as, expression=text)
            if job.symbol_crops and aligned:
                correction.labels = text  # one class per crop: usable as training data
            correction.crops = _line_crops(job, line, len(symbols))
            stored += [correction.crops] if correction.crops else []
            correction.save()
            job.save(update_fields=["result", "status", "error_code", "error_message", "error_detail"])
    except BaseException:
        delete_stored(stored)  # the correction was not kept, so neither is its crop file
        raise
    return correction


def _with_alternative(symbols: list[dict], index: int | None, choice: str | None) -> str:
    if index is None or not 0 <= index < len(symbols):
        raise ApiError(ErrorCode.INVALID_CORRECTION, f"symbol must be 0..{len(symbols) - 1}", field="symbol")
    choice = normalise_expression(choice or "")
    shown = [alternative[0] for alternative in symbols[index].get("top3", [])]
    if choice not in shown:
        raise ApiError(
            ErrorCode.INVALID_CORRECTION, f"choice must be one of the shown alternatives {shown}", field="choice", alternatives=shown
        )
    text = [s["symbol"] for s in symbols]
    text[index] = choice
    return "".join(text)


def _refresh_page_error(job: Job) -> None:
    """The page fails only while every line fails (the same rule as the pipeline's PageResult)."""
    lines = job.result["lines"]
    failing = [line["error"] for line in lines if line.get("error")]
    if failing and len(failing) == len(lines):
        return
    job.result["error"] = None
    if job.error_code in (ErrorCode.UNPARSABLE_EXPRESSION, ErrorCode.VALUE_TOO_LARGE, ErrorCode.TOO_MANY_SYMBOLS):
        job.status, job.error_code, job.error_message, job.error_detail = Job.Status.SUCCEEDED, "", "", {}


def _line_crops(job: Job, line: int, count: int) -> str:
    """Cut this line's crops out of the job's crop sheet and store them with the correction."""
    if not job.symbol_crops or count == 0:
        return ""
    with default_storage.open(job.symbol_crops, "rb") as handle:
        sheet = Image.open(io.BytesIO(handle.read()))
        sheet.load()
    row = sheet.crop((0, line * CROP_SIZE, count * CROP_SIZE, (line + 1) * CROP_SIZE))
    buffer = io.BytesIO()
    row.save(buffer, format="PNG")
    return default_storage.save(f"corrections/{job.id}/line{line}-{uuid.uuid4().hex[:8]}.png", ContentFile(buffer.getvalue()))


# --- batches -------------------------------------------------------------------------------------
def page_lines(job: Job) -> list[dict]:
    return [
        {
            "line": number, "expression": line.get("expression"), "answer": line.get("answer"),
            "answer_expression": line.get("answer_expression"),
            "value": line.get("value"), "correct": line.get("correct"),
            "error": (line.get("error") or {}).get("code"),
        }
        for number, line in enumerate((job.result or {}).get("lines") or [], 1)
    ]


def score(lines: list[dict]) -> dict[str, int]:
    return {
        "correct": sum(1 for line in lines if line["correct"] is True),
        "answered": sum(1 for line in lines if line["correct"] is not None),
        "total": len(lines),
    }


def batch_summary(batch: Batch) -> dict:
    jobs = list(batch.jobs.order_by("page_number"))
    pages = []
    for job in jobs:
        lines = page_lines(job)
        pages.append({
            "job": job, "page_number": job.page_number, "source_name": job.source_name, "status": job.status,
            "lines": lines, "score": score(lines),
            "error": {"code": job.error_code, "message": job.error_message} if job.error_code else None,
        })
    done = sum(1 for job in jobs if job.finished)
    totals = {key: sum(page["score"][key] for page in pages) for key in ("correct", "answered", "total")}
    return {
        "progress": {"done": done, "total": len(jobs), "failed": sum(1 for j in jobs if j.status == Job.Status.FAILED)},
        "finished": done == len(jobs), "score": totals, "pages": pages,
    }


def _cell(text: str) -> str:
    """A text cell a spreadsheet will not run as a formula (an expression may start with - or +)."""
    return "'" + text if text[:1] in ("=", "+", "-", "@") and not text.lstrip("+-").isdigit() else text


CSV_COLUMNS = ["page", "source", "line", "expression", "written_answer", "value", "correct", "status", "error"]


def _written_answer(line: dict) -> str:
    """The right-hand side as written ('56', '4*9'); older results hold only its value."""
    if line.get("answer_expression"):
        return _cell(line["answer_expression"])
    return "" if line["answer"] is None else str(line["answer"])


def batch_csv(batch: Batch) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    for page in batch_summary(batch)["pages"]:
        if not page["lines"]:
            writer.writerow([page["page_number"], _cell(page["source_name"]), "", "", "", "", "", page["status"], (page["error"] or {}).get("code", "")])
        for line in page["lines"]:
            correct = "" if line["correct"] is None else ("yes" if line["correct"] else "no")
            writer.writerow([
                page["page_number"], _cell(page["source_name"]), line["line"], _cell(line["expression"] or ""),
                _written_answer(line), "" if line["value"] is None else line["value"],
                correct, page["status"], line["error"] or "",
            ])
    return out.getvalue()
