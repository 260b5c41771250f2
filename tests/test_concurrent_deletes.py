"""Deletes racing other requests and the workers, made deterministic with real row locks.

The test process plays the other party inside a transaction: it locks a row as a DELETE
(or add_pages, or a finishing worker) would, sends the real HTTP request, waits until
PostgreSQL shows that request blocked on its lock, then deletes or commits. Whatever order
they meet in, the answer is a typed 4xx or a 204 and no stored file is left behind.
"""
from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.files.base import ContentFile

from tests.images import line_png
from tests.stack import api_error, wait_until

pytestmark = pytest.mark.slow


def _blocked_by_me() -> bool:
    """Whether another session waits on a lock this test's transaction holds."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")  # the activity view is otherwise read once per transaction
        cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE pg_backend_pid() = ANY(pg_blocking_pids(pid))")
        return cursor.fetchone()[0] > 0


def _send_and_wait_until_blocked(send):
    """Send a request from another thread; return its future once it waits on this transaction's lock."""
    pool = ThreadPoolExecutor(max_workers=1)
    future = pool.submit(send)
    pool.shutdown(wait=False)
    wait_until(lambda: future.done() or _blocked_by_me(), 30, interval=0.05, what="the request to wait on the lock")
    assert not future.done(), future.result().text[:300]  # it must still be waiting, or nothing was raced
    return future


def _finished_job(owner, **fields):
    """A finished job with a stored image (finished: the sweep and the workers leave it alone)."""
    from webapp.recognition.models import Job

    job = Job(owner=owner, image_sha256="0" * 64, source_name="line.png", status=Job.Status.SUCCEEDED, **fields)
    job.image.save(f"jobs/{job.id}/input.png", ContentFile(line_png("1+1", 1)), save=False)
    job.save()
    return job


def test_a_delete_of_a_job_another_request_deleted_first_is_a_404(stack):
    from django.db import transaction

    from webapp.recognition.models import Job

    client = stack.client()
    job = _finished_job(client.user)
    with transaction.atomic():  # the first DELETE: it holds the row...
        Job.objects.select_for_update().get(pk=job.pk)
        second = _send_and_wait_until_blocked(lambda: client.delete(stack.api(f"jobs/{job.id}/")))
        Job.objects.filter(pk=job.pk).delete()  # ...and deletes it
    api_error(second.result(timeout=30), 404, "not_found")


def test_a_correction_of_a_job_deleted_meanwhile_is_a_404(stack):
    from django.db import transaction

    from webapp.recognition.models import Correction, Job

    client = stack.client()
    line = {"expression": "1+1", "value": 2, "symbols": [{"symbol": s, "top3": [[s, 0.9]]} for s in "1+1"], "error": None}
    job = _finished_job(client.user, result={"lines": [line], "error": None})
    with transaction.atomic():
        Job.objects.select_for_update().get(pk=job.pk)
        correction = _send_and_wait_until_blocked(
            lambda: client.post(stack.api(f"jobs/{job.id}/corrections/"), json={"line": 0, "expression": "1+2"}))
        Job.objects.filter(pk=job.pk).delete()
    api_error(correction.result(timeout=30), 404, "not_found")
    assert not Correction.objects.filter(job_id=job.pk).exists()


def test_pages_added_to_a_batch_deleted_meanwhile_are_a_404_and_store_nothing(stack):
    from django.db import transaction

    from webapp.recognition.models import Batch, Job

    client = stack.client()
    batch = Batch.objects.create(owner=client.user, name="deleted meanwhile")
    _finished_job(client.user, batch=batch, page_number=1)
    media = Path(stack.env["MEDIA_ROOT"])
    before = {p for p in media.rglob("*") if p.is_file()}
    with transaction.atomic():  # a DELETE of the batch, holding it
        Batch.objects.select_for_update().get(pk=batch.pk)
        more = _send_and_wait_until_blocked(lambda: client.post(
            stack.api(f"batches/{batch.id}/pages/"), files=[("files", ("p2.png", line_png("7*8", 2), "image/png"))]))
        batch.delete()
    api_error(more.result(timeout=30), 404, "not_found")
    assert not Job.objects.filter(owner=client.user).exists()
    assert {p for p in media.rglob("*") if p.is_file()} - before == set()  # the new page's image was never stored


def test_a_batch_delete_waits_for_pages_being_added_and_deletes_them_too(stack):
    # Without the batch's lock the DELETE removed the pages it had read, then the batch: the page
    # added meanwhile still pointed at it, and the commit failed (IntegrityError, a 500).
    from django.db import transaction

    from webapp.recognition import services, uploads
    from webapp.recognition.models import Batch, Job

    client = stack.client()
    batch = Batch.objects.create(owner=client.user, name="growing")
    _finished_job(client.user, batch=batch, page_number=1)
    with transaction.atomic():  # a POST .../pages/ in progress: the batch locked, its new page inserted
        added = services.add_pages(batch, [uploads.check_image("p2.png", line_png("7*8", 2))])
        delete = _send_and_wait_until_blocked(lambda: client.delete(stack.api(f"batches/{batch.id}/")))
    response = delete.result(timeout=30)
    assert response.status_code == 204, (response.status_code, response.text[:300])
    assert not Batch.objects.filter(pk=batch.pk).exists() and not Job.objects.filter(batch_id=batch.pk).exists()
    assert not (Path(stack.env["MEDIA_ROOT"]) / added[0].image.name).exists()


def test_a_batch_delete_waits_for_a_worker_finishing_a_page_and_deletes_its_pictures(stack):
    # Without the jobs' lock the DELETE read the page before the worker saved it, and its
    # signal deleted only the files that row named: the worker's step pictures stayed.
    from django.db import transaction
    from django.utils import timezone

    from webapp.recognition import services
    from webapp.recognition.models import Batch, Job

    client = stack.client()
    batch = Batch.objects.create(owner=client.user, name="racing a worker")
    token = uuid.uuid4()
    # A page a worker holds: running, with a live lease, sent long from now (the sweep leaves it alone).
    job = Job(owner=client.user, batch=batch, page_number=1, kind="worksheet", image_sha256="0" * 64, status=Job.Status.RUNNING,
              attempts=1, attempt_token=token, lease_expires_at=timezone.now() + timedelta(hours=1),
              enqueued_at=timezone.now() + timedelta(hours=1))
    job.image.save(f"jobs/{job.id}/input.png", ContentFile(line_png("6*7", 1)), save=False)
    job.save()
    with transaction.atomic():  # the worker saves its outcome; its transaction is not committed yet
        assert services.finish_job(services.Claim(job, token), record={"lines": []}, error=None, model_version="v0001",
                                   pictures={"boxes": line_png("6*7", 1)})
        delete = _send_and_wait_until_blocked(lambda: client.delete(stack.api(f"batches/{batch.id}/")))
        picture = Job.objects.get(pk=job.pk).steps["boxes"]
    response = delete.result(timeout=30)
    assert response.status_code == 204, (response.status_code, response.text[:300])
    media = Path(stack.env["MEDIA_ROOT"])
    assert not Job.objects.filter(pk=job.pk).exists()
    assert not (media / picture).exists() and not (media / job.image.name).exists()


def test_a_page_added_after_a_deleted_page_gets_a_new_number(stack):
    from django.db import IntegrityError, transaction

    from webapp.recognition.models import Job

    client = stack.client()
    files = [("files", (f"p{i}.png", line_png(f"{i}+{i}", i), "image/png")) for i in (1, 2, 3)]
    batch = client.post(stack.api("batches/"), files=files).json()
    numbers = {page["page_number"]: page["job"] for page in batch["pages"]}
    assert sorted(numbers) == [1, 2, 3]
    assert client.delete(numbers[2]).status_code == 204
    more = client.post(batch["url"] + "pages/", files=[("files", ("p4.png", line_png("4+4", 4), "image/png"))])
    assert more.status_code == 202, more.text[:300]
    pages = client.get(batch["url"]).json()["pages"]
    assert [(page["page_number"], page["source_name"]) for page in pages] == [(1, "p1.png"), (3, "p3.png"), (4, "p4.png")]
    # The database holds one page per number in a batch.
    with pytest.raises(IntegrityError), transaction.atomic():
        Job.objects.create(owner=client.user, batch_id=batch["id"], page_number=3, image="jobs/none/input.png", image_sha256="0" * 64)
