"""A fresh worker process that cannot load a model: a passing database outage is retried, a missing model is a clear failure."""
import socket

import pytest


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
