"""Answer the probes (/healthz, /readyz, /metrics) before host validation and the HTTPS redirect.

Load balancers, Docker and Prometheus reach a container by its private IP or localhost
over plain HTTP; that must work without opening ALLOWED_HOSTS or SSL_REDIRECT for
anything else. /metrics, and /readyz's details, are only for private addresses that
did not come through the load balancer (see metrics.from_inside).
"""
from __future__ import annotations

from django.http import JsonResponse

HEALTH_PATH = "/healthz"


class HealthCheckMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.method in ("GET", "HEAD"):
            if request.path == HEALTH_PATH:
                return JsonResponse({"status": "ok"})
            if request.path in ("/readyz", "/metrics"):
                from webapp.recognition import health, metrics

                return health.readyz(request) if request.path == "/readyz" else metrics.metrics_view(request)
        return self.get_response(request)
