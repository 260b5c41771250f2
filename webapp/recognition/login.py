"""The web login page, with a limit on failed attempts per address and username.

Without it a password could be guessed at the speed of the server. The count lives in
the shared cache; the address is found the way the API's throttles find it (NUM_PROXIES).
"""
from __future__ import annotations

from django.conf import settings
from django.contrib.auth.views import LoginView
from django.core.cache import cache
from rest_framework.throttling import BaseThrottle


def _key(request) -> str:
    address = BaseThrottle().get_ident(request)
    username = (request.POST.get("username") or "").strip().lower()[:150]
    return f"login-failures:{address}:{username}"


class ThrottledLoginView(LoginView):
    redirect_authenticated_user = True

    def post(self, request, *args, **kwargs):
        key = _key(request)
        failures = cache.get(key, 0)
        if failures >= settings.LOGIN_MAX_FAILURES:
            response = self.render_to_response(self.get_context_data(form=self.get_form(), locked_out=True), status=429)
            response["Retry-After"] = str(settings.LOGIN_LOCKOUT_SECONDS)
            return response
        response = super().post(request, *args, **kwargs)
        if response.status_code == 302:
            cache.delete(key)
        else:
            cache.set(key, failures + 1, timeout=settings.LOGIN_LOCKOUT_SECONDS)
        return response
