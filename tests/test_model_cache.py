"""A fresh worker process that cannot load a model: a passing database outage is retried, a missing model is a clear failure, a time limit stays a time limit."""
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


# A strike that lands in a weakref callback is ignored by the interpreter itself (and reported as
# "unraisable"): then the load simply goes on, which the test allows.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_the_soft_time_limit_striking_during_a_model_load_is_a_timeout_not_model_unavailable(fresh_worker_cache, monkeypatch, caplog):
    """Celery raises SoftTimeLimitExceeded from a signal handler, wherever the job is: here, inside
    TensorFlow's, Keras's and LiteRT's loading code. Keras re-raises what it meets as its own error
    (that was model_unavailable, ending the job for good), and the LiteRT step took any error for
    "cannot compile" (the job ran on past its limit, and the process served the slower graph).
    Either way it must stay the job's time limit: processing_timeout, from the job runner."""
    import logging
    import signal

    from celery.exceptions import SoftTimeLimitExceeded

    from models import registry

    monkeypatch.setenv("MODEL_VERSION", registry.active_version())
    # TensorFlow imported first, as a pool process does on its warm-up thread, outside any job:
    # a strike inside TensorFlow's own first import would leave it half-imported for good.
    fresh_worker_cache.get_classifier()

    def strike(signum, frame):
        raise SoftTimeLimitExceeded()

    previous = signal.signal(signal.SIGALRM, strike)
    outcomes = []
    try:
        with caplog.at_level(logging.WARNING, logger="workers.pipeline.classify"):
            for step in range(20):  # strikes spread over the load, which takes a few tenths of a second
                monkeypatch.setattr(fresh_worker_cache, "_classifier", None)
                monkeypatch.setattr(fresh_worker_cache, "_failed", {})
                try:
                    signal.setitimer(signal.ITIMER_REAL, 0.002 + step * 0.015)
                    try:
                        fresh_worker_cache.get_classifier()
                        outcomes.append("loaded")  # struck after the load, or where TensorFlow itself swallows it
                    finally:
                        signal.setitimer(signal.ITIMER_REAL, 0)
                except SoftTimeLimitExceeded:
                    outcomes.append("timeout")  # (a ModelUnavailable would escape and fail the test)
    finally:
        signal.signal(signal.SIGALRM, previous)
    assert "timeout" in outcomes, outcomes
    assert not [r for r in caplog.records if "SoftTimeLimitExceeded" in r.getMessage()]  # never taken for a LiteRT failure
