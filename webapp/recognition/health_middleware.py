"""Answer /healthz before host validation and the HTTPS redirect.

Load balancers and Docker probe a container by its private IP or localhost over
plain HTTP; that must say "alive" without opening ALLOWED_HOSTS or SSL_REDIRECT
for anything else.
"""
from __future__ import annotations

from django.http import JsonResponse

HEALTH_PATH = "/healthz"


class HealthCheckMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.path == HEALTH_PATH and request.method in ("GET", "HEAD"):
            return JsonResponse({"status": "ok"})
        return self.get_response(request)
