"""Jobs are never lost and never finish twice: leases, the sweep, a broker that is down, retention."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
import requests
from django.core.files.base import ContentFile

from tests.images import line_png
from tests.stack import REPO, free_port, start_process, wait_until

pytestmark = pytest.mark.slow


def _stored_job(client, text: str, seed: int, **fields):
    """A job row with a real stored image, arranged in a state the API cannot produce on demand."""
    from webapp.recognition.models import Job

    job = Job(owner=client.user, image_sha256="0" * 64, source_name=f"{text}.png", **fields)
    job.image.save(f"jobs/{job.id}/input.png", ContentFile(line_png(text, seed)), save=False)
    job.save()
    return job


def test_a_job_whose_worker_died_is_run_again_when_its_lease_expires(stack):
    from django.utils import timezone

    client = stack.client()
    # As a worker killed mid-job leaves it: running, one attempt spent, its lease now over.
    job = _stored_job(client, "6*7", 1, status="running", attempts=1, lease_expires_at=timezone.now() - timedelta(seconds=1),
                      enqueued_at=timezone.now() - timedelta(minutes=1))
    body = client.wait(stack.api(f"jobs/{job.id}/"), timeout=60)
    assert body["status"] == "succeeded" and body["attempts"] == 2
    assert body["result"]["lines"][0]["value"] == 42


def test_a_queued_job_whose_message_was_lost_is_enqueued_by_the_sweep(stack):
    client = stack.client()
    # As a Redis restart or a lost message leaves it: queued, never sent (or sent into the void).
    job = _stored_job(client, "7*8=56", 2)
    body = client.wait(stack.api(f"jobs/{job.id}/"), timeout=60)
    assert body["status"] == "succeeded" and body["result"]["lines"][0]["correct"] is True


def test_a_backlog_is_not_sent_twice_but_a_lost_queue_is_sent_again(stack):
    # The workers stop taking jobs (a backlog builds); the beat's sweep runs every second and
    # counts a queued job as possibly lost after JOB_REQUEUE_AFTER (4 s here).
    import time

    from django.utils import timezone

    from webapp.recognition.models import Job
    from webapp.recognition.queue_stats import broker_depth
    from webapp.recognition.services import INFERENCE_QUEUE
    from workers.celery_app import app

    # Earlier tests' jobs parked "sent in the future" hold no message: let the sweep send them
    # now, so that every queued job that counts as sent has its message.
    Job.objects.filter(status=Job.Status.QUEUED, enqueued_at__gt=timezone.now()).update(enqueued_at=None)
    wait_until(lambda: not Job.objects.filter(status=Job.Status.QUEUED).exists(), 60, what="earlier jobs to finish")
    replies = app.control.cancel_consumer(INFERENCE_QUEUE, reply=True, timeout=5)
    assert len(replies) >= 1
    client = stack.client()
    try:
        urls = [client.submit(line_png(f"{n}*7", 1)).headers["Location"] for n in range(2, 8)]
        assert broker_depth() == 6  # counted under the stack's CELERY_BROKER_KEY_PREFIX
        time.sleep(8)  # two JOB_REQUEUE_AFTER and eight sweeps
        assert broker_depth() == 6  # waiting, not lost: no duplicates were sent
        with app.connection_for_write() as connection:
            connection.default_channel.queue_purge(INFERENCE_QUEUE)  # as a Redis restart loses them
        wait_until(lambda: broker_depth() == 6, 20, what="the sweep to send the lost messages again")
    finally:
        for reply in replies:
            app.control.add_consumer(INFERENCE_QUEUE, destination=list(reply), reply=True, timeout=5)
    for n, url in zip(range(2, 8), urls):
        body = client.wait(url, timeout=60)
        assert body["status"] == "succeeded" and body["result"]["lines"][0]["value"] == 7 * n and body["attempts"] == 1


def test_a_job_past_its_attempts_fails_with_too_many_attempts(stack):
    from django.utils import timezone

    client = stack.client()
    job = _stored_job(client, "6*7", 1, status="running", attempts=3, max_attempts=3,
                      lease_expires_at=timezone.now() - timedelta(seconds=1))
    body = client.wait(stack.api(f"jobs/{job.id}/"), timeout=30)
    assert body["status"] == "failed" and body["error"]["code"] == "too_many_attempts"
    assert body["attempts"] == 3 and body["result"] is None


def test_a_stale_attempt_can_neither_claim_a_live_job_nor_overwrite_a_newer_attempt(stack):
    from django.utils import timezone

    from webapp.recognition import services
    from webapp.recognition.models import Job

    client = stack.client()
    # Sent "in the future" so the sweep leaves it to this test.
    job = _stored_job(client, "6*7", 1, enqueued_at=timezone.now() + timedelta(hours=1))
    first = services.claim_job(job.id)
    assert first is not None and services.claim_job(job.id) is None  # leased: nobody else takes it
    Job.objects.filter(pk=job.id).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    second = services.claim_job(job.id)
    assert second is not None and second.token != first.token
    assert not services.finish_job(first, record={"stale": True}, error=None, model_version="old", pictures={"boxes": b"png"})
    assert services.finish_job(second, record={"fresh": True}, error=None, model_version="new")
    job.refresh_from_db()
    assert (job.status, job.result, job.model_version, job.attempts, job.steps) == ("succeeded", {"fresh": True}, "new", 2, {})
    assert services.claim_job(job.id) is None  # finished jobs are never run again


@pytest.mark.parametrize("claim", ["_claim_returning", "_claim_then_read"])
def test_both_ways_of_claiming_take_the_same_jobs(stack, claim):
    """PostgreSQL claims with one UPDATE ... RETURNING; other databases (SQLite) with the ORM."""
    from django.db.models import F
    from django.utils import timezone

    from webapp.recognition import services
    from webapp.recognition.models import Job

    from django.conf import settings

    claim = getattr(services, claim)
    client = stack.client()
    later = timezone.now() + timedelta(hours=1)  # so the sweep leaves these to the test
    queued = _stored_job(client, "6*7", 1, enqueued_at=later)
    token = uuid.uuid4()
    job = claim(queued.id, token)
    assert (job.id, job.status, job.attempts, job.source_name) == (queued.id, "running", 1, "6*7.png")
    assert job.lease_expires_at - job.started_at == timedelta(seconds=settings.JOB_LEASE_SECONDS)
    assert job.image.name == queued.image.name and Job.objects.get(pk=queued.id).attempt_token == job.attempt_token == token
    assert claim(queued.id, uuid.uuid4()) is None  # leased
    Job.objects.filter(pk=queued.id).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    assert claim(queued.id, uuid.uuid4()).attempts == 2  # the lease ran out
    Job.objects.filter(pk=queued.id).update(lease_expires_at=timezone.now() - timedelta(seconds=1), attempts=F("max_attempts"))
    assert claim(queued.id, uuid.uuid4()) is None  # no attempts left
    for status in ("succeeded", "failed"):
        assert claim(_stored_job(client, "6*7", 1, enqueued_at=later, status=status).id, uuid.uuid4()) is None
    assert claim(uuid.uuid4(), uuid.uuid4()) is None  # gone


def test_a_submit_while_redis_is_down_is_accepted_and_run_later(stack):
    port = free_port()
    # A web process whose Redis is unreachable, broker and cache (they share one Redis when
    # deployed), on the same database as the running stack.
    env = {**stack.env, "CELERY_BROKER_URL": "redis://127.0.0.1:9/0", "CACHE_URL": "redis://127.0.0.1:9/1",
           "BIND": f"127.0.0.1:{port}", "WEB_CONCURRENCY": "1",
           # start-web.sh empties its metrics folder: the stack's web process keeps its own
           "PROMETHEUS_MULTIPROC_DIR": str(Path(stack.folder) / "prometheus-web-no-redis")}
    web = start_process("web-no-redis", ["deploy/start-web.sh"], env, stack.folder)
    client = stack.client(password="a long enough password 47")
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until(lambda: _answers(f"{url}/healthz"), 60, what="the web process without Redis")
        response = client.post(f"{url}/api/v1/jobs/", files={"image": ("l.png", line_png("12+3*4", 1), "image/png")}, timeout=15)
        assert response.status_code == 202 and response.elapsed.total_seconds() < 5
        assert client.get(f"{url}/api/v1/jobs/{response.json()['id']}/", timeout=15).status_code == 200
        assert client.get(f"{url}/api/v1/jobs/", headers={"Authorization": "Token wrong"}, timeout=15).status_code == 401
        exchanged = requests.post(f"{url}/api/v1/auth/token/", json={"username": client.user.username, "password": "a long enough password 47"}, timeout=15)
        assert exchanged.status_code == 200 and exchanged.json()["token"] == client.token
        browser = requests.Session()
        browser.get(f"{url}/accounts/login/", timeout=15)
        logged_in = browser.post(f"{url}/accounts/login/", allow_redirects=False, headers={"Referer": f"{url}/accounts/login/"}, timeout=15,
                                 data={"username": client.user.username, "password": "a long enough password 47", "csrfmiddlewaretoken": browser.cookies["csrftoken"]})
        assert logged_in.status_code == 302
        ready = requests.get(f"{url}/readyz").json()
        assert ready["checks"]["broker"].startswith("error")
    finally:
        web.stop()
    job_url = stack.api(f"jobs/{response.json()['id']}/")
    body = client.wait(job_url, timeout=60)  # the sweep, on the healthy broker, sent it
    assert body["status"] == "succeeded" and body["result"]["lines"][0]["value"] == 24


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=2).status_code == 200
    except requests.ConnectionError:
        return False


def test_jobs_older_than_the_retention_period_are_purged_with_their_files(stack):
    from django.conf import settings
    from django.utils import timezone

    from webapp.recognition.models import Job
    from workers.celery_app import app

    client = stack.client()
    old_url = client.submit(line_png("6*7", 1)).headers["Location"]
    recent_url = client.submit(line_png("6*7", 2)).headers["Location"]
    old, recent = client.wait(old_url), client.wait(recent_url)
    stored = Job.objects.get(pk=old["id"])
    files = [Path(stack.env["MEDIA_ROOT"]) / name for name in [stored.image.name, *stored.steps.values()]]
    days = settings.JOB_RETENTION_DAYS
    Job.objects.filter(pk=old["id"]).update(queued_at=timezone.now() - timedelta(days=days, minutes=1))
    Job.objects.filter(pk=recent["id"]).update(queued_at=timezone.now() - timedelta(days=days - 1))
    app.send_task("recognition.purge_expired")  # what beat sends every JOB_PURGE_INTERVAL
    wait_until(lambda: client.get(old_url).status_code == 404, 30, what="the purge")
    assert client.get(recent_url).status_code == 200
    wait_until(lambda: not any(path.exists() for path in files), 10, what="the files to go")


def test_files_whose_job_is_gone_are_deleted_by_the_purge_once_they_are_an_hour_old(stack):
    # As a delete whose storage failed after the row went leaves them (S3 unreachable, say).
    import time

    from webapp.recognition import services

    client = stack.client()
    kept = client.wait(client.submit(line_png("6*7", 3)).headers["Location"])
    media = Path(stack.env["MEDIA_ROOT"])
    old, fresh = uuid.uuid4(), uuid.uuid4()
    orphans = [media / "jobs" / str(old) / "input.png", media / "jobs" / str(old) / "abc123" / "boxes.png",
               media / "corrections" / str(old) / "line0-1.png"]
    young = media / "jobs" / str(fresh) / "input.png"  # an upload whose row is not committed yet
    not_a_job = media / "jobs" / "notes" / "readme.txt"
    hour_ago = time.time() - 3700
    live = [path for path in (media / "jobs" / kept["id"]).rglob("*") if path.is_file()]
    assert live
    for path in live:
        os.utime(path, (hour_ago, hour_ago))
    for path in [*orphans, young, not_a_job]:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")
        if path != young:
            os.utime(path, (hour_ago, hour_ago))
    emptied = media / "jobs" / str(uuid.uuid4()) / "abc123"  # a deleted job's folders, their files gone an hour ago
    emptied.mkdir(parents=True)
    new_folder = media / "jobs" / str(uuid.uuid4())  # an upload's folder, its file not written yet
    new_folder.mkdir()
    for folder in (emptied, emptied.parent):
        os.utime(folder, (hour_ago, hour_ago))
    services.purge_expired()
    assert not any(path.exists() for path in orphans)
    assert not emptied.parent.exists() and new_folder.exists()  # old empty folders go, a fresh one stays
    new_folder.rmdir()
    assert young.exists() and not_a_job.exists()
    assert all(path.exists() for path in live)  # a job's files, however old, stay while the job does
    assert client.get(stack.api(f"jobs/{kept['id']}/image/")).status_code == 200
    young.unlink()
    not_a_job.unlink()


def test_make_run_serves_a_job_end_to_end_with_no_servers(tmp_path):
    """The embedded default: SQLite, the filesystem broker and a file cache, all under VAR_DIR."""
    port = free_port()
    # A fresh machine's environment: none of the test stack's settings.
    service_settings = ("DATABASE_URL", "CACHE_URL", "MEDIA_ROOT", "STATIC_ROOT", "VAR_DIR", "DJANGO_", "CELERY_", "JOB_", "MAX_", "UPLOAD_", "AUTH_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(service_settings)}
    env.update(PORT=str(port), VAR_DIR=str(tmp_path / "var"), TF_NUM_THREADS="1")
    log = tmp_path / "run.log"
    process = subprocess.Popen(["deploy/run-local.sh"], cwd=REPO, env=env, stdout=open(log, "wb"), stderr=subprocess.STDOUT, start_new_session=True)
    try:
        token = wait_until(lambda: re.search(r"API token:\s+(\w+)", log.read_text()), 120, what="make run's banner").group(1)
        headers = {"Authorization": f"Token {token}"}
        response = requests.post(f"http://127.0.0.1:{port}/api/v1/jobs/", headers=headers,
                                 files={"image": ("l.png", line_png("12+3*4", 1), "image/png")})
        assert response.status_code == 202, response.text
        url = response.headers["Location"]
        # No Redis here: a waiting request finds the job finished by checking the database.
        body = requests.get(url, headers=headers, params={"wait": "30"}, timeout=60).json()
        if body["status"] not in ("succeeded", "failed"):  # the worker was still loading its model
            body = requests.get(url, headers=headers, params={"wait": "30"}, timeout=60).json()
        assert body["status"] == "succeeded" and body["result"]["lines"][0]["value"] == 24
        assert requests.get(body["steps"]["boxes"]).content[:4] == b"\x89PNG"  # its signed picture link, as a browser fetches it
        assert (tmp_path / "var" / "db.sqlite3").exists() and (tmp_path / "var" / "broker").is_dir()
        assert requests.get(f"http://127.0.0.1:{port}/readyz").status_code == 200
    except BaseException:
        print(log.read_text()[-5000:])
        raise
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            print("make run did not stop within 30 s of SIGTERM:\n" + log.read_text()[-5000:])
            os.killpg(process.pid, signal.SIGKILL)
            raise


def test_a_client_can_wait_for_its_job_in_one_request_instead_of_polling(stack):
    import threading
    import time

    from django.utils import timezone

    from webapp.recognition import services
    from webapp.recognition.errors import ErrorCode

    client = stack.client()
    # A job some worker holds (a long lease): nothing finishes it until the test does.
    job = _stored_job(client, "6*7", 1, status="running", attempts=1, lease_expires_at=timezone.now() + timedelta(minutes=5))
    url = stack.api(f"jobs/{job.id}/")
    begun = time.monotonic()
    held = client.get(url, params={"wait": "1.5"}, timeout=10)
    assert held.status_code == 200 and held.json()["status"] == "running"  # the wait ran out: the job as it is
    assert time.monotonic() - begun >= 1.4

    # The worker's announcement (through Redis) ends the wait as soon as the job fails.
    timer = threading.Timer(1.0, services.fail_job, args=(job.id, ErrorCode.INTERNAL_ERROR, "ended by the test"), kwargs={"holder_died": True})
    timer.start()
    begun = time.monotonic()
    body = client.get(url, params={"wait": "25"}, timeout=40).json()
    waited = time.monotonic() - begun
    timer.join()
    assert body["status"] == "failed" and body["error"]["code"] == "internal_error"
    assert 0.9 <= waited < 10, waited

    # A real job: submitted, then one held request returns it finished.
    submitted = client.submit(line_png("12+3*4", 4))
    assert submitted.status_code == 202
    body = client.get(submitted.headers["Location"], params={"wait": "30"}, timeout=40).json()
    assert body["status"] == "succeeded" and body["result"]["lines"][0]["value"] == 24

    for bad in ("soon", "-1", "nan", "100000"):
        refused = client.get(url, params={"wait": bad}, timeout=10)
        assert refused.status_code == 400 and refused.json()["error"]["code"] == "invalid_request"
        assert refused.json()["error"]["field"] == "wait"


def test_a_submission_can_wait_for_its_own_result(stack):
    from webapp.recognition.models import Job

    client = stack.client()
    done = client.submit(line_png("12+3*4", 4), params={"wait": "30"}, timeout=40)
    assert done.status_code == 201, done.text  # finished within the wait: created, with its result
    body = done.json()
    assert body["status"] == "succeeded" and body["result"]["lines"][0]["value"] == 24
    assert done.headers["Location"] == body["url"] and requests.get(body["steps"]["boxes"]).status_code == 200  # a link: no token

    at_once = client.submit(line_png("12+3*4", 4), params={"wait": "0"})
    assert at_once.status_code == 202 and at_once.json()["status"] == "queued"  # as without ?wait=

    before = Job.objects.filter(owner=client.user).count()
    refused = client.submit(line_png("6*7", 1), params={"wait": "soon"})
    assert refused.status_code == 400 and refused.json()["error"]["field"] == "wait"
    assert Job.objects.filter(owner=client.user).count() == before  # nothing stored


def test_a_job_announced_just_before_the_wait_is_seen_at_once_and_other_deployments_are_not_heard(stack, monkeypatch):
    import threading
    import time

    import redis
    from django.conf import settings

    from webapp.recognition import job_events

    monkeypatch.setattr(job_events, "RECHECK_S", 60.0)  # only an announcement can end these waits early
    early = uuid.uuid4()
    job_events.wait_until_finished(uuid.uuid4(), 0.01, lambda: False)  # this process's listener is up
    job_events.announce_finished(early)  # finished between the caller's read and its wait
    time.sleep(0.3)
    # True only from the remembered announcement: finished() never is, and the wait is 20 s.
    assert job_events.wait_until_finished(early, 20, lambda: False) is True

    # The same job ID announced under another deployment's prefix, on the same Redis, wakes nobody.
    other = uuid.uuid4()
    client = redis.Redis.from_url(settings.JOB_EVENTS_REDIS_URL)
    assert settings.JOB_EVENTS_PREFIX  # the stack has its own
    timer = threading.Timer(0.3, lambda: client.publish(f"someone-else:job-finished:{other}", b"finished"))
    timer.start()
    begun = time.monotonic()
    assert job_events.wait_until_finished(other, 1.5, lambda: False) is False
    assert time.monotonic() - begun >= 1.5
    timer.join()


def test_a_waiting_request_is_woken_by_the_redis_announcement_not_by_its_recheck(stack, monkeypatch):
    import threading
    import time
    import uuid

    from django.conf import settings

    from webapp.recognition import job_events

    assert settings.JOB_EVENTS_REDIS_URL.startswith("redis://")
    monkeypatch.setattr(job_events, "RECHECK_S", 60.0)  # only the announcement can end this wait early
    job_id, finished = uuid.uuid4(), threading.Event()

    def finish():
        finished.set()
        job_events.announce_finished(job_id)

    timer = threading.Timer(0.5, finish)
    timer.start()
    begun = time.monotonic()
    assert job_events.wait_until_finished(job_id, 30, finished.is_set) is True
    timer.join()
    assert time.monotonic() - begun < 10
