"""Every error code the API can return, triggered for real, in the one error shape."""
from __future__ import annotations

import io
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
import requests
from PIL import Image

from tests.images import line_png, png
from tests.stack import REPO, api_error, free_port, start_process, wait_until

pytestmark = pytest.mark.slow


def _pdf(pages: int, size=(200, 100), fmt: str = "PDF") -> bytes:
    images = [Image.new("L", size, 255) for _ in range(pages)]
    buffer = io.BytesIO()
    images[0].save(buffer, format=fmt, save_all=True, append_images=images[1:])
    return buffer.getvalue()


def test_bad_requests_get_typed_400s(stack):
    client = stack.client()
    jobs = stack.api("jobs/")
    fields = api_error(client.post(jobs, json={"image_base64": "AAAA", "kind": "poem"}), 400, "invalid_request")["fields"]
    assert "kind" in fields
    api_error(client.post(jobs, data="{not json", headers={"Content-Type": "application/json"}), 400, "malformed_request")
    api_error(client.post(jobs, data="hello", headers={"Content-Type": "text/plain"}), 415, "unsupported_media_type")
    api_error(client.post(jobs, files={"kind": (None, "expression")}), 400, "missing_image")
    api_error(client.post(jobs, json={"image_base64": "data:image/png;base64,@@not base64@@"}), 400, "invalid_base64")
    api_error(client.submit(b"just some text", name="notes.txt"), 400, "unsupported_file_type")
    api_error(client.submit(_pdf(1), name="one.pdf"), 400, "unsupported_file_type")  # PDFs go to batches
    error = api_error(client.submit(_pdf(2, fmt="TIFF"), name="scan.tif"), 400, "unsupported_file_type")  # and so do multi-page TIFFs
    assert "2 pages" in error["message"] and "batches" in error["message"]
    batches = stack.api("batches/")
    api_error(client.post(batches, files=[("files", ("bad.pdf", b"%PDF-1.4 this is not really a PDF", "application/pdf"))]), 400, "invalid_pdf")
    api_error(client.post(batches, files={"name": (None, "nothing")}), 400, "missing_image")
    api_error(client.submit(line_png("6*7", seed=1), headers={"Idempotency-Key": "k" * 300}), 400, "invalid_request")
    # None of them made a job.
    assert client.get(jobs).json()["results"] == []


def test_each_limit_is_named_in_its_413(stack):
    client = stack.client()
    big = os.urandom(int(stack.env["MAX_IMAGE_BYTES"]) + 1)
    error = api_error(client.submit(big, name="huge.png"), 413, "file_too_large")
    assert error["limit"] == "MAX_IMAGE_BYTES"

    wide = io.BytesIO()
    Image.new("L", (8000, 6000), 255).save(wide, format="PNG")  # 48 Mpx, a small file
    error = api_error(client.submit(wide.getvalue(), name="wide.png"), 413, "too_many_pixels")
    assert error["limit"] == "MAX_IMAGE_PIXELS" and "48,000,000" in error["message"]

    limit = int(stack.env["MAX_PAGES_PER_BATCH"])
    error = api_error(client.post(stack.api("batches/"), files=[("files", ("many.pdf", _pdf(limit + 1), "application/pdf"))]), 413, "too_many_pages")
    assert error["limit"] == "MAX_PAGES_PER_BATCH"
    batch = client.post(stack.api("batches/"), files=[("files", ("four.pdf", _pdf(limit - 1), "application/pdf"))])
    assert batch.status_code == 202
    error = api_error(client.post(batch.headers["Location"] + "pages/", files=[("files", ("two.pdf", _pdf(2), "application/pdf"))]), 413, "too_many_pages")
    error = api_error(client.post(batch.headers["Location"] + "pages/", files=[("files", ("two.tif", _pdf(2, fmt="TIFF"), "image/tiff"))]), 413, "too_many_pages")

    chunk = os.urandom(int(stack.env["MAX_IMAGE_BYTES"]) - 10)
    files = [("files", (f"{i}.png", chunk, "image/png")) for i in range(5)]
    error = api_error(client.post(stack.api("batches/"), files=files), 413, "request_too_large")
    assert error["limit"] == "MAX_REQUEST_BYTES"

    too_long = "A" * (int(stack.env["MAX_IMAGE_BYTES"]) * 4 // 3 + 70_000)
    api_error(client.post(stack.api("jobs/"), json={"image_base64": too_long}), 413, "file_too_large")


def test_api_errors_for_lookups_methods_and_formats(stack):
    client = stack.client()
    api_error(client.get(stack.api("jobs/00000000-0000-0000-0000-000000000000/")), 404, "not_found")
    url = client.submit(line_png("6*7", seed=1)).headers["Location"]
    job = client.wait(url)
    api_error(client.put(url, json={}), 405, "method_not_allowed")
    api_error(client.get(stack.api("jobs/"), headers={"Accept": "text/csv"}), 406, "not_acceptable")
    error = api_error(client.get(url + "steps/nope.png"), 404, "step_not_found")
    assert "binarised" in error["message"]
    api_error(client.post(url + "corrections/", json={"line": 3, "expression": "1+1"}), 400, "invalid_correction")
    api_error(client.post(url + "corrections/", json={"symbol": 99, "choice": "7"}), 400, "invalid_correction")
    first = job["result"]["lines"][0]["symbols"][0]
    not_shown = next(c for c in "0123456789" if c not in [alt for alt, _ in first["top3"]])
    api_error(client.post(url + "corrections/", json={"symbol": 0, "choice": not_shown}), 400, "invalid_correction")
    api_error(client.post(url + "corrections/", json={"expression": "6**7"}), 400, "invalid_correction")
    api_error(client.post(url + "corrections/", json={"symbol": 0}), 400, "invalid_request")


def test_a_job_that_has_not_finished_has_no_pictures_and_takes_no_correction(stack):
    from django.utils import timezone

    from webapp.recognition.models import Job

    client = stack.client()
    # A job a worker holds right now: running, with a live lease.
    job = Job.objects.create(
        owner=client.user, image="jobs/held/input.png", image_sha256="0" * 64, status=Job.Status.RUNNING,
        attempts=1, lease_expires_at=timezone.now() + timezone.timedelta(hours=1), enqueued_at=timezone.now(),
    )
    url = stack.api(f"jobs/{job.id}/")
    api_error(client.get(url + "steps/boxes.png"), 409, "job_not_finished")
    api_error(client.post(url + "corrections/", json={"expression": "1+1"}), 409, "job_not_finished")
    job.delete()


def test_session_requests_without_a_csrf_token_are_denied(stack):
    from django.contrib.auth import get_user_model

    get_user_model().objects.create_user("staff-csrf", password="staff pass 123", is_staff=True)
    browser = requests.Session()
    login_page = browser.get(f"{stack.url}/admin/login/")
    response = browser.post(
        f"{stack.url}/admin/login/?next=/admin/",
        data={"username": "staff-csrf", "password": "staff pass 123", "csrfmiddlewaretoken": browser.cookies["csrftoken"]},
        headers={"Referer": f"{stack.url}/admin/login/"},
    )
    assert login_page.status_code == 200 and response.status_code == 200 and "sessionid" in browser.cookies
    assert browser.get(stack.api("jobs/")).status_code == 200  # the session authenticates
    error = api_error(browser.post(stack.api("jobs/"), json={"image_base64": "AAAA"}), 403, "permission_denied")
    assert "CSRF" in error["message"]


def test_jobs_fail_with_typed_codes(stack):
    client = stack.client()
    blank = png(np.full((200, 500), 255, np.uint8))
    jpeg = io.BytesIO()
    Image.open(io.BytesIO(line_png("6*7", seed=1))).convert("L").save(jpeg, format="JPEG")
    # A damaged PNG is refused at upload (its checksums are verified); a cut JPEG is only found when decoded.
    truncated = jpeg.getvalue()[: len(jpeg.getvalue()) // 2]
    cases = {"no_symbols": blank, "truncated_image": truncated, "value_too_large": line_png("8" * 102, seed=3)}
    urls = {code: client.submit(data, name=f"{code}.png", kind="worksheet").headers["Location"] for code, data in cases.items()}
    for code, url in urls.items():
        job = client.wait(url)
        assert job["status"] == "failed" and job["error"]["code"] == code, job["error"]


def test_a_job_whose_image_is_gone_fails_with_image_missing(stack):
    from webapp.recognition import services
    from webapp.recognition.models import Job

    client = stack.client()
    job = Job.objects.create(owner=client.user, image="jobs/nowhere/input.png", image_sha256="0" * 64)
    services.enqueue([job.id])
    body = client.wait(stack.api(f"jobs/{job.id}/"))
    assert body["status"] == "failed" and body["error"]["code"] == "image_missing"


def test_a_job_over_its_soft_time_limit_fails_with_processing_timeout(stack):
    from datetime import timedelta

    from django.core.files.base import ContentFile
    from django.utils import timezone

    from tests.images import page_image
    from webapp.recognition.models import Job
    from workers.celery_app import app

    client = stack.client()
    page = png(page_image(["7*8=56", "12-5=7", "3*(4+2)=18", "9+8=17"], seed=1, dpi=300))
    # Marked as sent an hour from now, so that only the message below runs it (the sweep leaves it alone).
    job = Job.objects.create(owner=client.user, kind="worksheet", image_sha256="0" * 64, source_name="page.png",
                             enqueued_at=timezone.now() + timedelta(hours=1))
    job.image.save(f"jobs/{job.id}/input.png", ContentFile(page))
    # The same task, with a per-message soft limit far below what a 300 dpi page takes.
    app.send_task("recognition.recognize", args=[str(job.id)], queue="inference", soft_time_limit=0.05, time_limit=30)
    body = client.wait(stack.api(f"jobs/{job.id}/"))
    assert body["status"] == "failed" and body["error"]["code"] == "processing_timeout", body["error"]


def test_a_job_that_keeps_failing_on_storage_ends_with_internalapi_error(stack):
    from webapp.recognition import services
    from webapp.recognition.models import Job

    client = stack.client()
    folder = f"jobs/a-folder-not-a-file-{client.user.pk}"
    (Path(stack.env["MEDIA_ROOT"]) / folder).mkdir(parents=True)
    # Reading it raises IsADirectoryError: an OSError, retried JOB_MAX_RETRIES times, then recorded.
    job = Job.objects.create(owner=client.user, image=folder, image_sha256="0" * 64, enqueued_at=None)
    services.enqueue([job.id])
    body = client.wait(stack.api(f"jobs/{job.id}/"), timeout=60)
    assert body["status"] == "failed" and body["error"]["code"] == "internal_error"
    assert "IsADirectoryError" in body["error"]["message"] and body["attempts"] == 2


def test_a_database_outage_is_a_503_in_the_error_shape_and_liveness_stays_up(stack):
    port = free_port()
    env = {**stack.env, "DATABASE_URL": "postgres://nobody@127.0.0.1:9/none", "BIND": f"127.0.0.1:{port}", "WEB_CONCURRENCY": "1",
           # start-web.sh empties its metrics folder: the stack's web process keeps its own
           "PROMETHEUS_MULTIPROC_DIR": str(Path(stack.folder) / "prometheus-web-no-database")}
    web = start_process("web-no-database", ["deploy/start-web.sh"], env, stack.folder)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until(lambda: _answers(f"{url}/healthz"), 60, what="the web process without a database")
        response = requests.get(f"{url}/api/v1/jobs/", headers={"Authorization": "Token whatever"})
        api_error(response, 503, "database_unavailable")
        assert response.headers["Retry-After"]
        assert requests.get(f"{url}/healthz").status_code == 200
        ready = requests.get(f"{url}/readyz")
        assert ready.status_code == 503 and ready.json()["checks"]["database"].startswith("error")
        assert ready.json()["checks"]["broker"] == "ok"
    finally:
        web.stop()


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=2).status_code == 200
    except requests.ConnectionError:
        return False


def test_the_web_side_never_imports_tensorflow():
    code = (
        "import sys, django; django.setup();"
        "from django.urls import get_resolver; get_resolver().url_patterns;"
        "import webapp.recognition.api.views, webapp.recognition.services;"
        "heavy = [m for m in ('tensorflow', 'keras', 'cv2') if m in sys.modules];"
        "print(heavy); sys.exit(1 if heavy else 0)"
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "webapp.config.settings.test"}
    result = subprocess.run([str(REPO / ".venv/bin/python"), "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_multipart_body_with_too_many_fields_is_a_400(stack):
    # Django refuses more than DATA_UPLOAD_MAX_NUMBER_FIELDS (1000) with TooManyFieldsSent, a SuspiciousOperation.
    client = stack.client()
    fields = [(f"field{i}", (None, "x")) for i in range(1001)]
    image = [("image", ("line.png", line_png("6*7", seed=1), "image/png"))]
    for url, files in ((stack.api("jobs/"), image + fields), (stack.api("batches/"), [("files", image[0][1])] + fields)):
        error = api_error(client.post(url, files=files), 400, "malformed_request")
        assert error["limit"] == "DATA_UPLOAD_MAX_NUMBER_FIELDS", error
    assert client.get(stack.api("jobs/")).json()["results"] == []
