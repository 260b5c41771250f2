"""The web login page and the admin's, with a limit on failed attempts per address and username.

Without it a password could be guessed at the speed of the server. The count lives in
the shared cache; the address is found the way the API's throttles find it (NUM_PROXIES).
Both login pages use a form with :class:`LockoutMixin`, so both share one count: a locked-out
pair is refused before its password is checked, with a 429 and ``Retry-After``.
"""
from __future__ import annotations

from django.conf import settings
from django.contrib import admin
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth.decorators import login_not_required
from django.contrib.auth.forms import AuthenticationForm
from django.contrib.auth.views import LoginView
from django.core.cache import cache
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from rest_framework.throttling import BaseThrottle

LOCKED_OUT = "locked_out"


def _key(request) -> str:
    address = BaseThrottle().get_ident(request)
    username = (request.POST.get("username") or "").strip().lower()[:150]
    return f"login-failures:{address}:{username}"


class LockoutMixin:
    """For an AuthenticationForm: counts failed logins, and refuses a locked-out pair without checking its password."""

    def clean(self):
        key = _key(self.request)
        failures = cache.get(key, 0)
        if failures >= settings.LOGIN_MAX_FAILURES:
            raise ValidationError("Too many failed attempts. Wait a few minutes, then try again.", code=LOCKED_OUT)
        try:
            cleaned = super().clean()
        except ValidationError:  # a wrong password, or a user who may not log in here
            cache.set(key, failures + 1, timeout=settings.LOGIN_LOCKOUT_SECONDS)
            raise
        if self.user_cache is not None:  # logged in (a blank field checks nothing and counts nothing)
            cache.delete(key)
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
