"""Prometheus metrics at /metrics.

Request latency comes from django-prometheus' middleware (in multiprocess mode, so
every gunicorn worker counts). Job figures come from the database at scrape time,
so they cover every worker on every host: jobs by status, time in queue and
processing time of recently finished jobs, and the active model version.
"""
from __future__ import annotations

import ipaddress
import os
from datetime import timedelta

from django.db import DatabaseError
from django.db.models import Count, DurationField, ExpressionWrapper, F
from django.http import HttpResponse, JsonResponse
from django.utils import timezone
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest, multiprocess
from prometheus_client import REGISTRY
from prometheus_client.core import GaugeMetricFamily

from webapp.recognition import model_store
from webapp.recognition.errors import ErrorCode, error_body
from webapp.recognition.models import Job

RECENT = timedelta(minutes=5)
QUANTILES = (0.5, 0.95, 0.99)


def _quantiles(values: list[float]) -> dict[float, float]:
    ordered = sorted(values)
    return {q: ordered[min(len(ordered) - 1, int(q * len(ordered)))] for q in QUANTILES} if ordered else {}


class JobCollector:
    def collect(self):
        try:
            yield from list(self._families())
        except DatabaseError:  # no database right now: the request metrics still answer
            return

    def _families(self):
        counts = GaugeMetricFamily("arith_jobs", "Jobs by status", labels=["status"])
        found = dict(Job.objects.values_list("status").annotate(n=Count("id")).values_list("status", "n"))
        for status in Job.Status.values:
            counts.add_metric([status], found.get(status, 0))
        yield counts

        since = timezone.now() - RECENT
        recent = Job.objects.filter(finished_at__gte=since, started_at__isnull=False).annotate(
            waited=ExpressionWrapper(F("started_at") - F("queued_at"), output_field=DurationField())
        ).values_list("waited", "processing_ms")[:5000]
        waits = [w.total_seconds() for w, _ in recent if w is not None]
        work = [ms / 1000 for _, ms in recent if ms is not None]
        for name, title, values in (
            ("arith_job_queue_seconds", "Time from submit to a worker starting it (jobs finished in the last 5 min)", waits),
            ("arith_job_processing_seconds", "Recognition time (jobs finished in the last 5 min)", work),
        ):
            family = GaugeMetricFamily(name, title, labels=["quantile"])
            for q, value in _quantiles(values).items():
                family.add_metric([str(q)], value)
            yield family

        model = GaugeMetricFamily("arith_active_model", "The model version that new jobs are read with", labels=["version"])
        try:
            model.add_metric([model_store.active_version()], 1)
        except Exception:  # no active model: the family stays empty, /readyz says why
            pass
        yield model


def from_inside(request) -> bool:
    """Scrapes come from inside the network; anything through the load balancer (X-Forwarded-For) is refused."""
    if request.META.get("HTTP_X_FORWARDED_FOR"):
        return False
    try:
        return ipaddress.ip_address(request.META.get("REMOTE_ADDR", "")).is_private
    except ValueError:
        return False


def metrics_view(request):
    if not from_inside(request):
        return JsonResponse(error_body(ErrorCode.NOT_FOUND, "not found"), status=404)
    if "PROMETHEUS_MULTIPROC_DIR" in os.environ:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:
        registry = CollectorRegistry()
        for collector in list(REGISTRY._collector_to_names):  # this process's django-prometheus metrics
            registry.register(collector)
    registry.register(JobCollector())
    return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)
