"""Model rollout across hosts: a database pointer, files in shared storage checked by sha256.

Two extra worker processes share no models folder (each has its own VAR_DIR and an
empty MODELS_DIR); they fetch versions from storage and switch without a restart.
Each listens on its own queue, so the test knows which worker read which job.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.files.base import ContentFile

from models import registry
from tests.images import line_png
from tests.stack import REPO, start_process, wait_until

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def two_workers(stack, tmp_path_factory):
    folder = tmp_path_factory.mktemp("hosts")
    (folder / "no-models").mkdir()
    workers = {}
    for name in ("a", "b"):
        env = {**stack.env, "VAR_DIR": str(folder / name), "MODELS_DIR": str(folder / "no-models"),
               "WORKER_QUEUES": f"host-{name}", "WORKER_NAME": f"host-{name}"}
        workers[name] = start_process(f"worker-{name}", ["deploy/start-worker.sh"], env, folder)
    for process in workers.values():
        wait_until(lambda p=process: " ready." in p.log.read_text(), 60, what=f"{process.name} to start")
    yield folder, workers
    for process in workers.values():
        process.stop()


def _models_cli(stack, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in stack.env.items() if k != "DJANGO_ALLOW_ASYNC_UNSAFE"}
    return subprocess.run([sys.executable, "-m", "models", *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)


def _read_on(stack, client, host: str, text: str = "6*7") -> dict:
    from django.utils import timezone

    from webapp.recognition.models import Job
    from workers.celery_app import app

    # Sent only to this host's queue; "sent an hour from now" keeps the sweep from sending it elsewhere.
    job = Job(owner=client.user, image_sha256="0" * 64, source_name=f"{host}.png", enqueued_at=timezone.now() + timedelta(hours=1))
    job.image.save(f"jobs/{job.id}/input.png", ContentFile(line_png(text, 1)), save=False)
    job.save()
    app.send_task("recognition.recognize", args=[str(job.id)], queue=f"host-{host}")
    body = client.wait(stack.api(f"jobs/{job.id}/"), timeout=90)
    assert body["status"] == "succeeded", body["error"]
    return body


@pytest.fixture(autouse=True)
def serving_restored(stack):
    """Whatever a test here promotes, the version that served before it serves after it, even when
    the test fails half-way: every later test reads with the deployment's model."""
    from webapp.recognition import model_store
    from webapp.recognition.models import ModelPointer

    serving = model_store.active_version()
    yield serving
    current = model_store.active_version()
    if current != serving:
        ModelPointer.objects.create(action="promote", version_id=serving, previous=current, forced=True)


def test_workers_on_two_hosts_follow_promote_and_rollback_without_a_restart(stack, two_workers):
    folder, workers = two_workers
    client = stack.client()
    serving = registry.active_version(REPO / "models")  # the repository's ACTIVE, seeded at migrate
    earlier = len(_models_cli(stack, "history").stdout.splitlines())
    assert {h: _read_on(stack, client, h)["model_version"] for h in "ab"} == {"a": serving, "b": serving}

    refused = _models_cli(stack, "promote", "v0001")
    assert refused.returncode != 0 and "below the real-handwriting floors" in refused.stderr
    promoted = _models_cli(stack, "promote", "v0001", "--force")
    assert promoted.returncode == 0, promoted.stderr
    assert f"{serving} -> v0001" in promoted.stdout
    assert {h: _read_on(stack, client, h)["model_version"] for h in "ab"} == {"a": "v0001", "b": "v0001"}

    rolled = _models_cli(stack, "rollback")
    assert rolled.returncode == 0 and serving in rolled.stdout
    assert {h: _read_on(stack, client, h)["model_version"] for h in "ab"} == {"a": serving, "b": serving}
    assert all(process.popen.poll() is None for process in workers.values())  # never restarted
    for host in "ab":  # each host fetched both versions from storage into its own cache, verified
        cache = folder / host / "model-cache"
        assert sorted(p.name for p in cache.iterdir() if not p.name.startswith(".")) == sorted(["v0001", serving])
    history = _models_cli(stack, "history").stdout.splitlines()
    assert [line.split()[1] for line in history[earlier:]] == ["promote", "rollback"]


def test_a_corrupt_model_is_refused_and_the_previous_version_keeps_serving(stack, two_workers, tmp_path):
    from webapp.recognition import model_store
    from webapp.recognition.models import ModelPointer

    folder, workers = two_workers
    client = stack.client()
    serving = registry.active_version(REPO / "models")
    copy = tmp_path / "v0099"
    shutil.copytree(REPO / "models" / "v0001", copy)
    model_store.register_folder(copy)
    stored = Path(stack.env["MEDIA_ROOT"]) / "models" / "v0099" / "model.keras"
    stored.write_bytes(b"not a model")  # damaged in storage

    refused = _models_cli(stack, "promote", "v0099", "--force")
    assert refused.returncode != 0 and "models/v0099/model.keras is corrupt: sha256" in refused.stderr
    assert model_store.active_version() == serving

    # Damaged after a promotion instead: the workers refuse it and keep reading with the serving version.
    ModelPointer.objects.create(action="promote", version_id="v0099", previous=serving, forced=True)
    try:
        for host in "ab":
            assert _read_on(stack, client, host)["model_version"] == serving
            log = workers[host].log.read_text()
            assert "model v0099 cannot be loaded" in log and "is corrupt" in log and f"{serving} keeps serving" in log
    finally:
        assert _models_cli(stack, "rollback").returncode == 0
    assert model_store.active_version() == serving


def test_rollback_verifies_the_stored_files_of_its_target_as_promote_does(stack, tmp_path):
    from webapp.recognition import model_store
    from webapp.recognition.models import ModelPointer

    serving = model_store.active_version()
    copy = tmp_path / "v0098"
    shutil.copytree(REPO / "models" / "v0001", copy)
    model_store.register_folder(copy)
    assert _models_cli(stack, "promote", "v0098", "--force").returncode == 0
    assert _models_cli(stack, "promote", "v0001", "--force").returncode == 0

    # Promoting the version that serves adds no pointer row, so the rollback below still goes back a version.
    rows = ModelPointer.objects.count()
    again = _models_cli(stack, "promote", "v0001", "--force")
    assert again.returncode == 0, again.stderr
    assert ModelPointer.objects.count() == rows and model_store.active_version() == "v0001"

    stored = Path(stack.env["MEDIA_ROOT"]) / "models" / "v0098" / "model.keras"
    original = stored.read_bytes()
    stored.write_bytes(b"not a model")  # the rollback target, damaged in storage
    try:
        refused = _models_cli(stack, "rollback")
        assert refused.returncode != 0
        assert "cannot roll back to v0098: models/v0098/model.keras is corrupt: sha256" in refused.stderr
        assert model_store.active_version() == "v0001" and ModelPointer.objects.count() == rows
        stored.unlink()
        with pytest.raises(model_store.ModelStoreError, match="cannot roll back to v0098: models/v0098/model.keras is missing"):
            model_store.rollback()
    finally:
        stored.write_bytes(original)
    assert model_store.rollback() == "v0098"
    assert model_store.rollback() == serving
    assert model_store.active_version() == serving
