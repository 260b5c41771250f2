"""A fresh worker process that cannot load a model: a passing database outage is retried, a missing model is a clear failure."""
import shutil
import socket
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest

from tests.images import line_png


@pytest.fixture
def fresh_worker_cache(stack, monkeypatch):
    """This process's model cache as a worker has it before its first job: nothing loaded."""
    from workers import model_cache

    monkeypatch.setattr(model_cache, "_classifier", None)
    monkeypatch.setattr(model_cache, "_failed", {})
    return model_cache


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]  # nothing listens here once the probe is closed


def test_a_database_outage_before_the_first_model_is_retried_not_failed(fresh_worker_cache):
    from django.db import OperationalError, connection

    from workers import job_runner

    saved = dict(connection.settings_dict)
    connection.close()
    connection.settings_dict.update(HOST="127.0.0.1", PORT=str(_closed_port()))
    try:
        # The real driver, failing to reach PostgreSQL: an error the task retries (with
        # backoff), not model_unavailable, which would end the job for good.
        with pytest.raises(OperationalError) as caught:
            fresh_worker_cache.get_classifier()
        assert isinstance(caught.value, job_runner.TRANSIENT_ERRORS)
    finally:
        connection.close()
        connection.settings_dict.clear()
        connection.settings_dict.update(saved)
    assert fresh_worker_cache.wanted_version()  # the database is back for the next test


def test_a_version_that_does_not_exist_is_model_unavailable(fresh_worker_cache, monkeypatch):
    monkeypatch.setenv("MODEL_VERSION", "v9999")
    with pytest.raises(fresh_worker_cache.ModelUnavailable, match="v9999"):
        fresh_worker_cache.get_classifier()


def _leaf_layers(layer):
    """The layers of a model in order, those of nested models included (a layer is its own leaf)."""
    inner = getattr(layer, "layers", None)
    if not inner:
        yield layer
        return
    for sub in inner:
        yield from _leaf_layers(sub)


def _version_reading_nan(root: Path, even_blank: bool = False) -> str:
    """A real version whose weights overflow float32. A blank input (what a load checks) reads
    fine and a symbol reads NaN, as a broken TensorFlow state did; ``even_blank``: the output
    layer's bias is NaN too, so that the blank reads NaN as well."""
    import keras

    from models import registry

    shipped = Path(registry.__file__).parent  # the repository's models, whatever MODELS_DIR says
    version = registry.active_version(shipped)
    shutil.copytree(registry.version_dir(version, shipped), root / version)
    (root / "ACTIVE").write_text(version + "\n")
    model = keras.models.load_model(root / version / "model.keras", compile=False)
    # The layers that hold weights, also inside nested members (an ensemble's output is their
    # mean: one member reading NaN is enough).
    weighted = [layer for layer in _leaf_layers(model) if layer.weights]
    first = weighted[0]
    kernel, *rest = first.get_weights()
    first.set_weights([kernel * 1e38, *rest])
    if even_blank:
        output = weighted[-1]
        kernel, bias = output.get_weights()
        output.set_weights([kernel, np.full_like(bias, np.nan)])
    model.save(root / version / "model.keras")
    return version


def test_a_model_answering_nan_never_gives_an_answer(tmp_path, monkeypatch, capsys):
    from workers import cli
    from workers.pipeline.classify import ModelFault, SymbolClassifier
    from workers.pipeline.recognize import recognize

    version = _version_reading_nan(tmp_path)
    classifier = SymbolClassifier(version, models_root=tmp_path, threads=1)
    with pytest.raises(ModelFault, match="NaN"):
        recognize(line_png("6*7", 1), classifier)
    # The CLI stops: no file's reading can be trusted (not one internal_error record per file).
    image = tmp_path / "line.png"
    image.write_bytes(line_png("6*7", 1))
    monkeypatch.setenv("MODELS_DIR", str(tmp_path))
    assert cli.main(["solve", str(image), str(image), "--json"]) == 2
    output = capsys.readouterr()
    assert "NaN" in output.err and output.out == ""


def test_a_fresh_process_whose_model_reads_nan_even_when_loading_passes_the_job_on(fresh_worker_cache, monkeypatch, tmp_path):
    # Not model_unavailable, which would fail the job for good: TensorFlow may be what is broken.
    from django.test import override_settings

    from workers.pipeline.classify import ModelFault

    monkeypatch.setenv("MODELS_DIR", str(tmp_path))
    _version_reading_nan(tmp_path, even_blank=True)
    with override_settings(MODEL_REGISTRY="files"), pytest.raises(ModelFault):
        fresh_worker_cache.get_classifier()


def test_a_job_that_meets_a_model_answering_nan_is_read_by_another_process(stack, fresh_worker_cache, monkeypatch, tmp_path):
    from workers import tasks
    from workers.pipeline.classify import SymbolClassifier

    broken = SymbolClassifier(_version_reading_nan(tmp_path), models_root=tmp_path, threads=1)
    monkeypatch.setenv("MODEL_VERSION", broken.version)
    monkeypatch.setattr(fresh_worker_cache, "_classifier", broken)  # this process is the broken one
    client = stack.client()
    job = _queued_job(client, "6*7")
    with pytest.raises(SystemExit, match="leaves"):  # the task makes its pool process leave
        tasks.recognize(str(job.id))
    done = client.wait(stack.api(f"jobs/{job.id}/"))  # released and sent again at once, to the stack's healthy workers
    assert done["status"] == "succeeded" and done["result"]["lines"][0]["value"] == 42
    assert done["attempts"] == 2


def _queued_job(client, expression: str, attempts: int = 0):
    """A stored job, queued but not sent: the stack's workers cannot take it before this process does."""
    from django.core.files.base import ContentFile
    from django.utils import timezone

    from webapp.recognition.models import Job

    job = Job(owner=client.user, image_sha256="0" * 64, source_name="line.png", attempts=attempts,
              enqueued_at=timezone.now() + timedelta(hours=1))
    job.image.save(f"jobs/{job.id}/input.png", ContentFile(line_png(expression, 1)), save=False)
    job.save()
    return job


def test_a_worker_with_no_model_gives_the_job_to_one_that_has_it(stack, fresh_worker_cache, monkeypatch):
    # One worker misconfigured (its MODEL_VERSION names no version) must not fail the queue's
    # jobs one after another: it passes each on, and pauses before taking another.
    import time

    from workers import job_runner

    monkeypatch.setenv("MODEL_VERSION", "v9999")
    monkeypatch.setattr(job_runner, "UNAVAILABLE_PAUSE_SECONDS", 0.5)
    client = stack.client()
    job = _queued_job(client, "6*7")
    started = time.monotonic()
    assert job_runner.run_job(str(job.id)) == "released"
    assert time.monotonic() - started >= 0.5
    done = client.wait(stack.api(f"jobs/{job.id}/"))  # sent again at once, to the stack's workers (which have a model)
    assert done["status"] == "succeeded" and done["result"]["lines"][0]["value"] == 42 and done["attempts"] == 2


def test_a_job_whose_time_limit_strikes_while_the_model_loads_is_passed_on(stack, fresh_worker_cache, caplog):
    # A fresh pool process loads its model on a warm-up thread, and a job that arrives meanwhile
    # waits for it. On a busy host the load can outlast the job's soft time limit: that is the
    # process's delay, not the image's, so the job goes back to the queue at once (no pause:
    # its hard limit is near), instead of failing as processing_timeout.
    import logging
    import os
    import signal
    import threading
    import time

    from billiard.pool import soft_timeout_sighandler

    from workers import job_runner

    client = stack.client()
    job = _queued_job(client, "6*7")
    previous = signal.signal(signal.SIGUSR1, soft_timeout_sighandler)  # as in a Celery pool process
    caplog.set_level(logging.INFO, logger="workers.model_cache")
    warm_up = fresh_worker_cache.warm_up_in_background()
    try:
        wait_for_load = time.monotonic() + 30
        while "loading model" not in caplog.text and time.monotonic() < wait_for_load:
            time.sleep(0.01)
        assert "loading model" in caplog.text
        # A load takes seconds; the soft limit strikes (SIGUSR1, as Celery sends it) while the job waits for it.
        threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGUSR1)).start()
        started = time.monotonic()
        assert job_runner.run_job(str(job.id)) == "released"
        assert time.monotonic() - started < job_runner.UNAVAILABLE_PAUSE_SECONDS
        assert "was still loading" in caplog.text
    finally:
        warm_up.join(60)
        signal.signal(signal.SIGUSR1, previous)
    assert fresh_worker_cache.get_classifier() is not None  # the warm-up finished its load all the same
    done = client.wait(stack.api(f"jobs/{job.id}/"))  # sent again at once, to the stack's workers
    assert done["status"] == "succeeded" and done["result"]["lines"][0]["value"] == 42 and done["attempts"] == 2


def test_a_job_that_meets_no_model_on_its_last_attempt_fails_as_model_unavailable(stack, fresh_worker_cache, monkeypatch):
    from django.conf import settings

    from webapp.recognition.models import Job
    from workers import job_runner

    monkeypatch.setenv("MODEL_VERSION", "v9999")
    client = stack.client()
    job = _queued_job(client, "6*7", attempts=settings.JOB_MAX_ATTEMPTS - 1)
    assert job_runner.run_job(str(job.id)) == "failed"
    failed = Job.objects.get(pk=job.id)
    assert (failed.status, failed.error_code, failed.attempts) == ("failed", "model_unavailable", settings.JOB_MAX_ATTEMPTS)
    assert "v9999" in failed.error_message


def test_the_worker_healthcheck_fails_while_its_model_version_does_not_exist(stack, monkeypatch):
    import io

    from django.core.management import CommandError, call_command
    from django.utils import timezone

    from webapp.recognition.models import WorkerHeartbeat

    WorkerHeartbeat.objects.update_or_create(name="worker@healthcheck-test", defaults={"processes": 2, "seen_at": timezone.now()})
    out = io.StringIO()
    call_command("worker_alive", "worker@healthcheck-test", stdout=out)
    assert "alive" in out.getvalue()
    monkeypatch.setenv("MODEL_VERSION", "v9999")
    with pytest.raises(CommandError, match="v9999"):
        call_command("worker_alive", "worker@healthcheck-test")
    WorkerHeartbeat.objects.filter(name="worker@healthcheck-test").delete()
