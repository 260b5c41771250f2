"""Readiness for load balancers and `docker compose` (liveness, /healthz, is answered by HealthCheckMiddleware)."""
from __future__ import annotations

from django.db import connection
from django.http import JsonResponse
from django.views.decorators.http import require_GET

from webapp.recognition import model_store


def _database() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return "ok"


def _broker() -> str:
    from workers.celery_app import app

    with app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, timeout=2)
    return "ok"


def _model() -> str:
    return model_store.active_version()


@require_GET
def readyz(request):
    """Ready to take jobs: the database, the broker and an active model are all there."""
    checks, ready = {}, True
    for name, check in (("database", _database), ("broker", _broker), ("model", _model)):
        try:
            checks[name] = check()
        except Exception as error:  # any failure means "not ready", with its reason
            checks[name] = f"error: {type(error).__name__}: {error}"[:300]
            ready = False
    from webapp.recognition.metrics import from_inside

    body = {"status": "ok" if ready else "unavailable"}
    if from_inside(request):  # the reasons name hosts and errors: not for the internet
        body["checks"] = checks
    return JsonResponse(body, status=200 if ready else 503)
