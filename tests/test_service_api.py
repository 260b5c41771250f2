"""The job API end to end: real gunicorn, Celery worker, PostgreSQL and Redis (see conftest.stack)."""
from __future__ import annotations

import base64
import csv
import io
from pathlib import Path

import pytest

from tests.images import line_png, worksheet_pdf
from tests.stack import alternative_that_parses, wait_until

pytestmark = pytest.mark.slow

STEPS = {"binarised", "boxes", "crops", "summary"}


def test_a_canvas_line_is_submitted_polled_and_read_with_its_step_pictures(stack):
    import requests

    client = stack.client()
    response = client.submit(line_png("12+3*4", seed=1))
    assert response.status_code == 202
    assert response.headers["Retry-After"] == "1"
    job_url = response.headers["Location"]
    assert job_url == response.json()["url"] and response.json()["status"] in ("queued", "running", "succeeded")

    job = client.wait(job_url)
    assert job["status"] == "succeeded", job
    (line,) = job["result"]["lines"]
    assert (line["expression"], line["value"], line["answer"], line["correct"]) == ("12+3*4", 24, None, None)
    assert job["model_version"] == client.get(stack.api("models/")).json()["active"]
    assert job["attempts"] == 1 and job["processing_ms"] > 0 and job["error"] is None
    assert job["started_at"] >= job["queued_at"] and job["finished_at"] >= job["started_at"]
    assert set(job["steps"]) == STEPS
    for url in job["steps"].values():
        picture = requests.get(url)  # signed links are fetched without the token (S3's presigned ones refuse it)
        assert picture.status_code == 200 and picture.headers["Content-Type"] == "image/png"
        assert picture.content[:4] == b"\x89PNG"
    original = client.get(job_url + "image/")
    assert original.status_code == 200 and original.content == line_png("12+3*4", seed=1)


def test_step_links_need_no_token_but_must_be_signed_and_unexpired(stack):
    """A result's picture links are capabilities, like S3 presigned URLs: no token, an HMAC, an expiry."""
    import time

    import requests
    from django.conf import settings

    from tests.stack import api_error
    from webapp.recognition.models import Job
    from webapp.recognition.step_links import LINK_STEP_SECONDS, step_link

    client = stack.client()
    job = client.wait(client.submit(line_png("6*7", seed=4)).headers["Location"])
    again = client.get(job["url"]).json()["steps"]

    def expiry(link: str) -> int:
        return int(link.split("expires=")[1].split("&")[0])

    # Stable across reads, so a browser's cache holds (unless the two reads straddle a 5-minute step)
    assert again == job["steps"] or {expiry(again[n]) - expiry(job["steps"][n]) for n in again} == {LINK_STEP_SECONDS}, (again, job["steps"])
    for url in job["steps"].values():
        picture = requests.get(url)  # no Authorization, no session
        assert picture.status_code == 200 and picture.content[:4] == b"\x89PNG"
        assert picture.headers["Content-Type"] == "image/png" and picture.headers["Cache-Control"].startswith("private, max-age=")
    link = job["steps"]["boxes"]
    path, query = link.split("?")
    api_error(requests.get(path), 403, "invalid_link")  # unsigned: the media folder is not browsable
    api_error(requests.get(link[:-1] + ("A" if link[-1] != "A" else "B")), 403, "invalid_link")
    api_error(requests.get(path.replace("boxes.png", "binarised.png") + "?" + query), 403, "invalid_link")  # a signature names one file
    api_error(requests.get(link.replace("expires=", "expires=9")), 403, "invalid_link")  # nor can its life be extended
    api_error(requests.get(link.replace("expires=", "expires=%C2%B2")), 403, "invalid_link")  # '²' is no digit here
    head = requests.head(link)
    assert head.status_code == 200 and head.headers["Content-Type"] == "image/png" and not head.content
    stored = Job.objects.get(pk=job["id"])
    expired = step_link(stored.steps["boxes"], now=time.time() - settings.STEP_LINK_SECONDS - 600)
    api_error(requests.get(stack.url + expired), 403, "link_expired")
    # Even with the key, only step pictures are served, and only for as long as this service signs:
    from webapp.recognition.step_links import _signature

    for name, expires in ((stored.image.name, int(time.time()) + 60), (stored.steps["boxes"], int(time.time()) + 30 * 24 * 3600)):
        forged = f"{stack.url}/media/{name}?expires={expires}&signature={_signature(name, expires)}"
        api_error(requests.get(forged), 403, "invalid_link")
    assert client.delete(job["url"]).status_code == 204
    api_error(requests.get(link), 404, "step_not_found")  # the job and its pictures are gone
    access_log = stack.processes["web"].log.read_text(errors="replace")
    signature = query.split("signature=")[1]
    assert path.split("/media", 1)[1] in access_log and "?expires=" in access_log and signature not in access_log  # no credential in the log


def test_a_base64_canvas_in_json_with_a_written_answer_is_checked(stack):
    client = stack.client()
    data_url = "data:image/png;base64," + base64.b64encode(line_png("7*8=54", seed=2)).decode()
    response = client.post(stack.api("jobs/"), json={"image_base64": data_url})
    assert response.status_code == 202
    job = client.wait(response.headers["Location"])
    (line,) = job["result"]["lines"]
    assert (line["expression"], line["value"], line["answer"], line["correct"]) == ("7*8", 56, 54, False)
    # As the base64 tool prints it, wrapped at 76 columns:
    wrapped = base64.encodebytes(line_png("6*7", seed=2)).decode()
    assert "\n" in wrapped
    response = client.post(stack.api("jobs/"), json={"image_base64": wrapped})
    assert response.status_code == 202, response.text
    assert client.wait(response.headers["Location"])["result"]["lines"][0]["value"] == 42


def test_an_uploaded_jpeg_is_served_back_as_a_jpeg_to_a_client_that_asks_for_one(stack):
    import io

    from PIL import Image

    client = stack.client()
    buffer = io.BytesIO()
    Image.open(io.BytesIO(line_png("6*7", 1))).convert("L").save(buffer, format="JPEG")
    job_url = client.submit(buffer.getvalue(), name="photo.jpg").headers["Location"]
    for accept in ("image/jpeg", "image/*", "*/*"):
        served = client.get(job_url + "image/", headers={"Accept": accept})
        assert served.status_code == 200 and served.headers["Content-Type"] == "image/jpeg" and served.content == buffer.getvalue()
    refused = client.get(job_url + "image/", headers={"Accept": "text/html"})
    assert refused.status_code == 406 and refused.json()["error"]["code"] == "not_acceptable"


def test_an_image_over_the_limit_is_refused_naming_the_image_limit(stack):
    client = stack.client()
    limit = int(stack.env["MAX_IMAGE_BYTES"])
    refused = client.submit(line_png("6*7", 1) + b"\0" * limit, name="big.png")
    assert refused.status_code == 413
    error = refused.json()["error"]
    assert (error["code"], error["limit"], error["limit_value"]) == ("file_too_large", "MAX_IMAGE_BYTES", limit)


def test_a_jobs_written_out_representation_equals_drfs_generic_one(stack):
    """JobSerializer writes its fields out for speed; DRF's ModelSerializer path is the reference."""
    from datetime import timedelta

    from django.core.files.base import ContentFile
    from django.utils import timezone
    from rest_framework import serializers
    from rest_framework.renderers import JSONRenderer
    from rest_framework.request import Request
    from rest_framework.test import APIRequestFactory

    from webapp.recognition.api.serializers import JobSerializer
    from webapp.recognition.models import Job

    client = stack.client()
    ids = [client.wait(client.submit(line_png(text, seed=1)).headers["Location"])["id"] for text in ("12+3*4", "7+")]
    batch = client.post(stack.api("batches/"), files=[("files", ("p.png", line_png("6*7", 2), "image/png"))]).json()
    later = timezone.now() + timedelta(hours=1)  # held queued and running: nulls and empty steps
    for status in ("queued", "running"):
        held = Job(owner=client.user, image_sha256="0" * 64, source_name="held.png", enqueued_at=later, status=status,
                   lease_expires_at=later if status == "running" else None, started_at=timezone.now() if status == "running" else None)
        held.image.save(f"jobs/{held.id}/input.png", ContentFile(line_png("6*7", 1)), save=False)
        held.save()
        ids.append(held.id)
    request = Request(APIRequestFactory().get("/api/v1/jobs/", HTTP_HOST="127.0.0.1"))
    jobs = list(Job.objects.filter(pk__in=ids)) + list(Job.objects.filter(batch_id=batch["id"]))
    assert {job.status for job in jobs} >= {"succeeded", "failed", "queued", "running"} and any(job.batch_id for job in jobs)
    for job in jobs:
        serializer = JobSerializer(job, context={"request": request})
        generic = serializers.ModelSerializer.to_representation(serializer, job)
        assert JSONRenderer().render(serializer.data) == JSONRenderer().render(generic)  # values, types and key order


def test_jobs_are_listed_newest_first_with_a_cursor_and_a_status_filter(stack):
    client = stack.client()
    urls = [client.submit(line_png(text, seed=3)).headers["Location"] for text in ("6*7", "7*8=56", "12+3*4")]
    for url in urls:
        client.wait(url)
    first = client.get(stack.api("jobs/"), params={"page_size": 2}).json()
    assert [job["url"] for job in first["results"]] == urls[::-1][:2]
    second = client.get(first["next"]).json()
    assert [job["url"] for job in second["results"]] == urls[:1] and second["next"] is None
    succeeded = client.get(stack.api("jobs/"), params={"status": "succeeded"}).json()["results"]
    assert len(succeeded) == 3
    assert client.get(stack.api("jobs/"), params={"status": "queued"}).json()["results"] == []


def test_deleting_a_job_removes_its_row_and_every_stored_file(stack):
    from webapp.recognition.models import Job

    client = stack.client()
    url = client.submit(line_png("6*7", seed=4)).headers["Location"]
    job = client.wait(url)
    stored = Job.objects.get(pk=job["id"])
    media = Path(stack.env["MEDIA_ROOT"])
    files = [media / name for name in [stored.image.name, stored.symbol_crops, *stored.steps.values()]]
    assert all(path.is_file() for path in files) and len(files) == 6
    assert client.delete(url).status_code == 204
    assert client.get(url).status_code == 404
    wait_until(lambda: not any(path.exists() for path in files), 10, what="the files to go")


def test_the_same_idempotency_key_returns_the_original_job(stack):
    client, other = stack.client(), stack.client()
    png = line_png("6*7", seed=5)
    first = client.submit(png, headers={"Idempotency-Key": "upload-42"})
    again = client.submit(png, headers={"Idempotency-Key": "upload-42"})
    assert first.status_code == again.status_code == 202
    assert again.json()["id"] == first.json()["id"] and again.headers["Idempotent-Replayed"] == "true"
    clash = client.submit(line_png("7*8=56", seed=5), headers={"Idempotency-Key": "upload-42"})
    assert clash.status_code == 409 and clash.json()["error"]["code"] == "idempotency_key_reused"
    assert clash.json()["error"]["job"] == first.json()["id"]
    # The same image sent as another kind of job is another request, not a retry of this one.
    as_worksheet = client.submit(png, kind="worksheet", headers={"Idempotency-Key": "upload-42"})
    assert as_worksheet.status_code == 409 and as_worksheet.json()["error"]["code"] == "idempotency_key_reused"
    # Keys belong to a user: another user's same key is a new job.
    assert other.submit(png, headers={"Idempotency-Key": "upload-42"}).json()["id"] != first.json()["id"]
    assert len(client.get(stack.api("jobs/")).json()["results"]) == 1


def test_a_correction_by_alternative_or_by_typing_re_evaluates_and_keeps_the_crops(stack, tmp_path):
    from django.core.management import call_command

    from workers.pipeline import grammar

    client = stack.client()
    url = client.submit(line_png("12+3*4", seed=1)).headers["Location"]
    job = client.wait(url)
    (line,) = job["result"]["lines"]
    index, choice, text = alternative_that_parses(line)

    corrected = client.post(url + "corrections/", json={"line": 0, "symbol": index, "choice": choice})
    assert corrected.status_code == 200, corrected.text
    body = corrected.json()
    fixed = body["result"]["lines"][0]
    assert fixed["expression"] == grammar.parse_line(text).expression and fixed["value"] == grammar.parse_line(text).value
    assert fixed["value"] != 24 and fixed["corrected"] is True and fixed["read_as"] == "12+3*4"
    assert fixed["symbols"][index]["symbol"] == choice
    assert body["correction"]["labels"] == text
    assert client.get(url).json()["result"]["lines"][0]["value"] == fixed["value"]  # stored, no new job
    assert len(client.get(stack.api("jobs/")).json()["results"]) == 1

    typed = client.post(url + "corrections/", json={"line": 0, "expression": "12 + 3 × 5"}).json()
    assert (typed["result"]["lines"][0]["expression"], typed["result"]["lines"][0]["value"]) == ("12+3*5", 27)
    assert typed["result"]["lines"][0]["read_as"] == "12+3*4"

    call_command("export_corrections", str(tmp_path), stdout=io.StringIO())
    rows = list(csv.DictReader(open(tmp_path / "labels.csv")))
    mine = [row for row in rows if row["job"] == job["id"]]
    assert "".join(row["label"] for row in mine) == text + "12+3*5"
    assert {row["model_version"] for row in mine} == {job["model_version"]}  # which preprocessing made the crops
    from PIL import Image

    assert Image.open(tmp_path / mine[0]["file"]).size == (28, 28)


def test_a_pick_after_a_typed_fix_builds_on_it_and_a_line_retyped_apart_takes_typing_only(stack):
    client = stack.client()
    url = client.submit(line_png("12+3*4", seed=1)).headers["Location"]
    client.wait(url)
    typed = client.post(url + "corrections/", json={"line": 0, "expression": "12+3*5"}).json()["result"]["lines"][0]
    assert "".join(symbol["symbol"] for symbol in typed["symbols"]) == "12+3*5"  # each crop is now what was typed
    index, choice, text = alternative_that_parses(typed)
    assert text.endswith("5") or index == 5
    picked = client.post(url + "corrections/", json={"line": 0, "symbol": index, "choice": choice})
    assert picked.status_code == 200, picked.text
    assert picked.json()["correction"]["labels"] == text  # the typed 5 is kept, and its crop labelled 5
    # Typed with more symbols than were read: the crops no longer match, so only typing goes on.
    apart = client.post(url + "corrections/", json={"line": 0, "expression": "12+3*45"}).json()["result"]["lines"][0]
    assert apart["value"] == 147 and apart["retyped_apart"] is True
    refused = client.post(url + "corrections/", json={"line": 0, "symbol": index, "choice": choice})
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "invalid_correction"
    assert client.get(url).json()["result"]["lines"][0]["value"] == 147  # nothing changed by the refusal
    again = client.post(url + "corrections/", json={"line": 0, "expression": "12+3*4"}).json()["result"]["lines"][0]
    assert again["value"] == 24 and again["retyped_apart"] is False


def test_an_unparsable_line_fails_with_its_best_reading_and_a_typed_fix_recovers_it(stack):
    client = stack.client()
    url = client.submit(line_png("7+", seed=1)).headers["Location"]
    job = client.wait(url)
    assert job["status"] == "failed"
    assert job["error"]["code"] == "unparsable_expression" and job["error"]["best_reading"] == "7+"
    assert set(job["steps"]) == STEPS  # the pictures show what was seen
    fixed = client.post(url + "corrections/", json={"expression": "7+1"}).json()
    assert fixed["status"] == "succeeded" and fixed["error"] is None
    assert fixed["result"]["lines"][0]["value"] == 8


def test_a_multi_page_tiff_in_a_batch_is_one_job_per_page(stack):
    # Document scanners write a stack of worksheets as one TIFF of many pages, as others write a PDF.
    import io

    from PIL import Image

    from tests.images import page_image

    pages = [["7*8=56", "9+8=16"], ["6*7=42"]]
    images = [Image.fromarray(page_image(lines, seed=3 + index, dpi=200)) for index, lines in enumerate(pages)]
    tiff = io.BytesIO()
    images[0].save(tiff, format="TIFF", save_all=True, append_images=images[1:], compression="tiff_lzw")
    client = stack.client()
    response = client.post(stack.api("batches/"), files=[("files", ("scan.tif", tiff.getvalue(), "image/tiff"))])
    assert response.status_code == 202, response.text
    assert response.json()["progress"]["total"] == 2
    batch = wait_until(lambda: (b := client.get(response.headers["Location"]).json())["finished"] and b, 120, what="the batch")
    assert batch["progress"] == {"done": 2, "total": 2, "failed": 0}
    assert [page["source_name"] for page in batch["pages"]] == ["scan.tif#page=1", "scan.tif#page=2"]
    assert [len(page["lines"]) for page in batch["pages"]] == [2, 1]  # every line of both pages, in order


def test_a_batch_of_a_three_page_pdf_and_an_image_is_marked_page_by_page(stack):
    import requests

    pages = [["7*8=56", "12-5=7", "3*(4+2)=18"], ["9+8=16", "6*7=42", "15-6=9"], ["2+2=4", "8*3=24", "(6-2)*5=20"]]
    client = stack.client()
    # Seed 5 draws glyphs that v0014, v0018 and session 19's full-MNIST models all read: since
    # session 19 the digits are MNIST's official test digits, and seed 2's then read two lines
    # wrong with every version (an `8` in two pieces, an `=` as `-`).
    pdf = worksheet_pdf(pages, seed=5, dpi=200)
    response = client.post(stack.api("batches/"), files=[("files", ("week1.pdf", pdf, "application/pdf"))], data={"name": "Week 1"})
    assert response.status_code == 202, response.text
    batch_url = response.headers["Location"]
    assert response.json()["progress"]["total"] == 3 and response.json()["name"] == "Week 1"

    more = client.post(batch_url + "pages/", files=[("files", ("extra.png", line_png("7*8=54", seed=2), "image/png"))])
    assert more.status_code == 202 and more.json()["progress"]["total"] == 4

    batch = wait_until(lambda: (b := client.get(batch_url).json())["finished"] and b, 120, what="the batch")
    assert batch["progress"] == {"done": 4, "total": 4, "failed": 0}
    assert [page["source_name"] for page in batch["pages"]] == ["week1.pdf#page=1", "week1.pdf#page=2", "week1.pdf#page=3", "extra.png"]
    wrong = {"9+8=16", "7*8=54"}  # a pupil's mistakes, on page 2 and the extra page
    written = [text for lines in pages for text in lines] + ["7*8=54"]
    read = [line for page in batch["pages"] for line in page["lines"]]
    assert [len(page["lines"]) for page in batch["pages"]] == [3, 3, 3, 1]
    # Marking is what this test is about; reading each glyph right is what the quality tests
    # measure. So: every line read exactly but at most one (a model version may misread a
    # glyph), and every mark consistent with what was read.
    as_written = [(text.split("=")[0], int(text.split("=")[1]), text not in wrong) for text in written]
    as_read = [(line["expression"], line["answer"], line["correct"]) for line in read]
    assert sum(r == w for r, w in zip(as_read, as_written)) >= len(written) - 1, as_read
    for line in read:  # a line that could not be evaluated (the misread one may not parse) is never marked
        evaluated = line["value"] is not None and line["answer"] is not None
        assert line["correct"] == (line["value"] == line["answer"] if evaluated else None), line
    for (expression, answer, correct), line in zip(as_written, read):
        if (line["expression"], line["answer"]) == (expression, answer):
            assert line["correct"] is correct, line  # a pupil's mistake is marked wrong, the rest right
    for page in batch["pages"]:
        assert requests.get(page["boxes"]).content[:4] == b"\x89PNG"  # each page's overlay, by its signed link
        marks = [line["correct"] for line in page["lines"]]
        assert page["score"] == {"correct": marks.count(True), "answered": len(marks) - marks.count(None), "total": len(marks)}
    assert batch["score"] == {key: sum(page["score"][key] for page in batch["pages"]) for key in ("correct", "answered", "total")}
    assert batch["score"]["total"] == 10

    exported = client.get(batch["results_csv"])
    assert exported.status_code == 200 and exported.headers["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    assert len(rows) == 10
    yes_no = {True: "yes", False: "no", None: ""}
    blank = lambda value: "" if value is None else str(value)  # noqa: E731
    assert [(r["expression"], r["written_answer"], r["value"], r["correct"]) for r in rows] == [
        (blank(line["expression"]), blank(line["answer"]), blank(line["value"]), yes_no[line["correct"]]) for line in read
    ]

    job_urls = [page["job"] for page in batch["pages"]]
    assert client.delete(batch_url).status_code == 204
    assert client.get(batch_url).status_code == 404
    assert all(client.get(url).status_code == 404 for url in job_urls)


def test_the_job_list_pages_through_a_batchs_pages_that_share_one_queued_time(stack):
    client = stack.client()
    files = [("files", (f"p{i}.png", line_png("6*7", seed=i), "image/png")) for i in range(4)]
    batch = client.post(stack.api("batches/"), files=files)
    assert batch.status_code == 202
    times = {job["queued_at"] for job in client.get(stack.api("jobs/"), params={"page_size": 10}).json()["results"]}
    assert len(times) == 1  # one INSERT, one database time
    seen, url = [], stack.api("jobs/?page_size=1")
    while url:
        page = client.get(url).json()
        seen += [job["id"] for job in page["results"]]
        url = page["next"]
    assert len(seen) == 4 and len(set(seen)) == 4  # each job once, none skipped


def test_users_see_only_their_own_jobs_and_batches(stack):
    owner, stranger = stack.client(), stack.client()
    job_url = owner.submit(line_png("6*7", seed=6)).headers["Location"]
    owner.wait(job_url)
    batch_url = owner.post(stack.api("batches/"), files=[("files", ("p.png", line_png("6*7", seed=6), "image/png"))]).headers["Location"]
    for url in (job_url, job_url + "steps/boxes.png", job_url + "image/", batch_url, batch_url + "results.csv"):
        response = stranger.get(url)
        assert response.status_code == 404 and response.json()["error"]["code"] == "not_found", url
    assert stranger.delete(job_url).status_code == 404
    assert stranger.post(job_url + "corrections/", json={"expression": "1+1"}).status_code == 404
    assert stranger.get(stack.api("jobs/")).json()["results"] == []
    assert stranger.get(stack.api("batches/")).json()["results"] == []
    assert owner.get(job_url).status_code == 200


def test_tokens_come_from_the_endpoint_and_the_api_needs_one(stack):
    import requests

    stack.client(username="alice-token", password="correct horse battery")
    anonymous = requests.get(stack.api("jobs/"))
    assert anonymous.status_code == 401 and anonymous.json()["error"]["code"] == "not_authenticated"
    wrong = requests.get(stack.api("jobs/"), headers={"Authorization": "Token nope"})
    assert wrong.status_code == 401 and wrong.json()["error"]["code"] == "authentication_failed"
    denied = requests.post(stack.api("auth/token/"), json={"username": "alice-token", "password": "wrong"})
    assert denied.status_code == 401 and denied.json()["error"]["code"] == "authentication_failed"
    token = requests.post(stack.api("auth/token/"), json={"username": "alice-token", "password": "correct horse battery"}).json()["token"]
    assert requests.get(stack.api("jobs/"), headers={"Authorization": f"Token {token}"}).status_code == 200


def test_uploads_are_throttled_with_retry_after(stack):
    client = stack.client()
    limit = int(stack.env["UPLOAD_THROTTLE_RATE"].split("/")[0])
    for _ in range(limit):
        assert client.post(stack.api("jobs/"), data={}).status_code == 400  # counted, though empty
    throttled = client.post(stack.api("jobs/"), data={})
    assert throttled.status_code == 429
    error = throttled.json()["error"]
    assert error["code"] == "throttled" and error["retry_after"] > 0
    assert int(throttled.headers["Retry-After"]) == error["retry_after"]
    assert client.get(stack.api("jobs/")).status_code == 200  # reading is not throttled
    assert stack.client().submit(line_png("6*7", seed=6)).status_code == 202  # nor are other users


def test_model_versions_are_listed_with_the_active_one(stack):
    from models import registry

    body = stack.client().get(stack.api("models/")).json()
    assert body["active"] == registry.active_version()
    listed = {v["version"]: v for v in body["versions"]}
    assert set(registry.list_versions()) <= set(listed)  # seeded from models/ at the first migrate
    assert [v["version"] for v in body["versions"] if v["active"]] == [body["active"]]
    assert all(listed[v]["metrics"]["test_accuracy"] > 0.9 for v in registry.list_versions())
    assert [b.split(":")[0] for b in listed["v0002"]["below_promotion_floors"]] == ["+", "("]


def test_schema_docs_and_health(stack):
    import requests

    from webapp.recognition.errors import ErrorCode

    schema = requests.get(f"{stack.url}/api/schema/", headers={"Accept": "application/json"})
    assert schema.status_code == 200
    enum = schema.json()["components"]["schemas"]["ErrorCodeEnum"]["enum"]
    assert set(enum) == set(ErrorCode.values)
    assert "202" in schema.json()["paths"]["/api/v1/jobs/"]["post"]["responses"]
    docs = requests.get(f"{stack.url}/api/docs/")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()
    script = docs.text.split('src="')[1].split('"')[0]
    assert script.startswith("/static/") and requests.get(stack.url + script).status_code == 200  # served here, no CDN
    assert requests.get(f"{stack.url}/healthz").json() == {"status": "ok"}
    ready = requests.get(f"{stack.url}/readyz").json()
    assert ready["status"] == "ok" and set(ready["checks"]) == {"database", "broker", "model"}
    documented = Path(__file__).resolve().parent.parent.joinpath("docs/errors.md").read_text()
    missing = [code for code in ErrorCode.values if f"`{code}`" not in documented]
    assert not missing, f"docs/errors.md lacks {missing}: run python webapp/manage.py write_errors_doc"


def test_metrics_and_json_logs_carry_jobs_models_and_job_ids(stack):
    import json

    import requests

    client = stack.client()
    job = client.wait(client.submit(line_png("6*7", seed=7)).headers["Location"])
    assert requests.get(job["steps"]["boxes"]).status_code == 200
    text = requests.get(f"{stack.url}/metrics").text
    served = [line for line in text.splitlines() if line.startswith('arith_step_link_responses_total{status="200"}')]
    assert served and float(served[0].split()[-1]) >= 1  # the pictures answered before django-prometheus' status counts
    succeeded = [line for line in text.splitlines() if line.startswith('arith_jobs{status="succeeded"}')]
    assert succeeded and float(succeeded[0].split()[-1]) >= 1
    assert f'arith_active_model{{version="{job["model_version"]}"}} 1.0' in text
    assert 'arith_job_processing_seconds{quantile="0.95"}' in text and 'arith_job_queue_seconds{quantile="0.5"}' in text
    assert "django_http_requests_latency_seconds_by_view_method_bucket" in text
    assert requests.get(f"{stack.url}/metrics", headers={"X-Forwarded-For": "203.0.113.9"}).status_code == 404

    def logged(process: str) -> list[dict]:
        lines = (Path(stack.folder) / f"{process}.log").read_text().splitlines()
        return [json.loads(line) for line in lines if line.startswith("{")]

    worker_lines = [line for line in logged("worker") if line.get("job_id") == job["id"]]
    assert any(line["message"] == "job succeeded" for line in worker_lines)
    assert any(line.get("job_id") == job["id"] and line["message"] == "job queued" for line in logged("web"))


def test_an_idle_keep_alive_connection_stays_open_past_gunicorns_default(stack):
    # A load balancer reuses idle connections for up to its idle timeout (the ALB's: 60 s). Had
    # gunicorn closed them sooner (its default is 2 s), one closed as it was reused would fail a
    # request: a 502 from the ALB, a reset here. start-web.sh holds them for WEB_KEEPALIVE (75 s).
    import http.client
    import select
    import socket
    import time
    from urllib.parse import urlsplit

    address = urlsplit(stack.url)
    connection = http.client.HTTPConnection(address.hostname, address.port, timeout=10)
    connection.request("GET", "/healthz")
    first = connection.getresponse()
    assert first.status == 200 and first.getheader("Connection", "keep-alive").lower() != "close"
    first.read()
    idle_socket = connection.sock
    time.sleep(3.5)
    # Nothing was asked, so anything to read can only be the end of the stream: a close.
    readable, _, _ = select.select([idle_socket], [], [], 0)
    assert not (readable and idle_socket.recv(1, socket.MSG_PEEK) == b""), "gunicorn closed the idle connection"
    connection.request("GET", "/healthz")
    second = connection.getresponse()
    assert second.status == 200 and connection.sock is idle_socket
    second.read()
    connection.close()
