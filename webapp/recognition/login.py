"""The web login page and the admin's, with a limit on failed attempts per address and username.

Without it a password could be guessed at the speed of the server. The count lives in
the shared cache; the address is found the way the API's throttles find it (NUM_PROXIES).
Both login pages use a form with :class:`LockoutMixin`, and the API's token exchange uses
:class:`LoginLockout` directly, so all three share one count: a locked-out pair is refused
before its password is checked, with a 429 and ``Retry-After``.

Should the cache be unreachable (Redis down), logins go on without the count, as uploads
go on without their throttle: the service stays usable, and the outage is logged.
"""
from __future__ import annotations

import logging

from django.conf import settings
from django.contrib import admin
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth.decorators import login_not_required
from django.contrib.auth.forms import AuthenticationForm
from django.contrib.auth.views import LoginView
from django.core.cache import cache
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from rest_framework.throttling import BaseThrottle

log = logging.getLogger(__name__)

LOCKED_OUT = "locked_out"


class LoginLockout:
    """The failed logins of one address and username, counted in the shared cache."""

    def __init__(self, request, username: str):
        address = BaseThrottle().get_ident(request)
        self.key = f"login-failures:{address}:{(username or '').strip().lower()[:150]}"
        try:
            self.failures = cache.get(self.key, 0)
        except Exception:
            log.warning("login lockout cache unavailable; the attempt is not counted", exc_info=True)
            self.failures = 0

    @property
    def locked(self) -> bool:
        return self.failures >= settings.LOGIN_MAX_FAILURES

    def failed(self) -> None:
        # Counted in the cache itself, not as the count read plus one: twenty wrong guesses sent
        # at once must count twenty. The first failure starts the lockout window.
        def count() -> None:
            cache.add(self.key, 0, timeout=settings.LOGIN_LOCKOUT_SECONDS)
            cache.incr(self.key)

        self._write(count)

    def succeeded(self) -> None:
        self._write(cache.delete, self.key)

    @staticmethod
    def _write(operation, *args, **kwargs) -> None:
        try:
            operation(*args, **kwargs)
        except Exception:
            log.warning("login lockout cache unavailable; the attempt is not counted", exc_info=True)


class LockoutMixin:
    """For an AuthenticationForm: counts failed logins, and refuses a locked-out pair without checking its password."""

    def clean(self):
        lockout = LoginLockout(self.request, self.request.POST.get("username"))
        if lockout.locked:
            raise ValidationError("Too many failed attempts. Wait a few minutes, then try again.", code=LOCKED_OUT)
        try:
            cleaned = super().clean()
        except ValidationError:  # a wrong password, or a user who may not log in here
            lockout.failed()
            raise
        if self.user_cache is not None:  # logged in (a blank field checks nothing and counts nothing)
            lockout.succeeded()
        return cleaned


class LockoutAuthenticationForm(LockoutMixin, AuthenticationForm):
    pass


class LockoutAdminAuthenticationForm(LockoutMixin, AdminAuthenticationForm):
    pass


def _locked_out(response, form):
    """The response for a refused pair: 429 with Retry-After (other responses are returned as they are)."""
    if form is not None and form.has_error(NON_FIELD_ERRORS, LOCKED_OUT):
        response.status_code = 429
        response["Retry-After"] = str(settings.LOGIN_LOCKOUT_SECONDS)
    return response


class ThrottledLoginView(LoginView):
    redirect_authenticated_user = True
    authentication_form = LockoutAuthenticationForm

    def form_invalid(self, form):
        locked_out = form.has_error(NON_FIELD_ERRORS, LOCKED_OUT)
        return _locked_out(self.render_to_response(self.get_context_data(form=form, locked_out=locked_out)), form)


class LockoutAdminSite(admin.AdminSite):
    """The default admin site (see apps.LockoutAdminConfig), its login locked out like the web login."""

    login_form = LockoutAdminAuthenticationForm

    @login_not_required
    def login(self, request, extra_context=None):
        response = super().login(request, extra_context)
        return _locked_out(response, (getattr(response, "context_data", None) or {}).get("form"))
