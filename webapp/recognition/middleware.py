"""A database outage outside the API views (sessions, pages, health) still answers in the error shape."""
from __future__ import annotations

import logging

from django.db import InterfaceError, OperationalError
from django.http import JsonResponse

from webapp.recognition.api.errors import database_unavailable

log = logging.getLogger(__name__)


class DatabaseUnavailableMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        try:
            return self.get_response(request)
        except (OperationalError, InterfaceError) as error:
            return self._unavailable(error)

    def process_exception(self, request, exception):
        if isinstance(exception, (OperationalError, InterfaceError)):
            return self._unavailable(exception)
        return None

    @staticmethod
    def _unavailable(error) -> JsonResponse:
        log.warning("database unavailable: %s", error)
        response = JsonResponse(database_unavailable(), status=503)
        response["Retry-After"] = "5"
        return response
