import os

from hypothesis import settings

# A bounded profile for CI; `HYPOTHESIS_PROFILE=dev` explores more locally.
settings.register_profile("ci", max_examples=60, deadline=None, derandomize=True)
settings.register_profile("dev", max_examples=500, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


import pytest  # noqa: E402


@pytest.fixture(scope="session")
def stack(tmp_path_factory):
    """The whole service, started once per session: gunicorn, a worker and beat on PostgreSQL and Redis.

    The test process talks to it over HTTP, and uses the ORM on the same database
    only to arrange what a test cannot reach through the API (an old job, an expired lease).
    """
    from tests.stack import Stack

    global _STACK_FAILURE
    if _STACK_FAILURE:  # pytest retries a failed session fixture for every test: fail fast instead
        pytest.fail(f"the stack did not start: {_STACK_FAILURE}")
    try:
        started = Stack.start(tmp_path_factory.mktemp("stack"))
    except BaseException as error:
        _STACK_FAILURE = f"{type(error).__name__}: {error}"
        raise
    # Django reads its settings from the environment once, at setup; the environment is then put
    # back, so that no other test (or subprocess) inherits the stack's settings by accident.
    saved = dict(os.environ)
    os.environ.update({k: v for k, v in started.env.items() if k in _DJANGO_ENV})
    import django

    django.setup()
    os.environ.clear()
    os.environ.update(saved)
    # Playwright's sync API runs an event loop in this thread; the ORM calls made here
    # to arrange tests are still plain synchronous code.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        yield started
    finally:
        try:
            from django.db import connections

            connections.close_all()
        finally:
            started.stop()


_STACK_FAILURE = ""

_DJANGO_ENV = {
    "DJANGO_SETTINGS_MODULE", "DATABASE_URL", "CELERY_BROKER_URL", "CELERY_BROKER_KEY_PREFIX", "CACHE_URL", "CACHE_KEY_PREFIX", "VAR_DIR", "MEDIA_ROOT", "STATIC_ROOT",
    "MODEL_REGISTRY", "JOB_SWEEP_INTERVAL", "JOB_REQUEUE_AFTER", "JOB_SOFT_TIME_LIMIT", "JOB_TIME_LIMIT", "JOB_LEASE_SECONDS", "JOB_MAX_ATTEMPTS",
}
