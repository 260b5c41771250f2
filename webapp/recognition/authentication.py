"""API token authentication with the token's user kept in the cache for a short while.

DRF's TokenAuthentication reads the token and its user from the database on every
request; for a client that submits a job, waits for it and fetches a picture, that is a
third of the web's database work. The user is kept in the cache (Redis when deployed)
under a hash of the token for AUTH_TOKEN_CACHE_SECONDS, and dropped at once when the
token is deleted or replaced or its user is saved (deactivated, password changed), so a
revoked token stops working on the next request, not a minute later. The cached user row
holds the password hash: the cache must be as private as the database.

Dropping the entry is not enough: a request that read the token from the database just
before the revocation would write it back just after. So a revocation *replaces* the entry
with a "revoked" marker for REVOKED_MARKER_SECONDS, and a request fills the cache only with
``cache.add``, which does nothing while any entry (the marker included) is there. While the
marker lives, the token is checked against the database on every request.

The cache is an optimisation, so an outage of it (Redis down) must not stop the API: every
request then reads the database. A revocation that cannot reach the cache is logged; the
entry it could not replace lives at most AUTH_TOKEN_CACHE_SECONDS, and only if the cache
comes back with its data (a restarted Redis keeps none).
"""
from __future__ import annotations

import hashlib
import logging

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver
from rest_framework.authentication import TokenAuthentication
from rest_framework.authtoken.models import Token


log = logging.getLogger(__name__)

REVOKED = "revoked"
REVOKED_MARKER_SECONDS = 120
"""How long a revocation keeps the token out of the cache: far longer than a request can take
from its database read to its cache fill (gunicorn's timeout ends it sooner)."""


def _cache_key(token_key: str) -> str:
    return "auth-token:" + hashlib.sha256(token_key.encode()).hexdigest()


class CachedTokenAuthentication(TokenAuthentication):
    def authenticate_credentials(self, key):
        try:
            cached = cache.get(_cache_key(key))
        except Exception:
            log.warning("token cache unavailable; checking the token in the database", exc_info=True)
            return super().authenticate_credentials(key)
        if isinstance(cached, tuple):
            return cached
        user, token = super().authenticate_credentials(key)  # raises for a wrong key or an inactive user
        if cached is None:  # not after a revocation; and add, not set: a revocation since the read wins
            try:
                cache.add(_cache_key(key), (user, token), settings.AUTH_TOKEN_CACHE_SECONDS)
            except Exception:
                log.warning("token cache unavailable; the token was checked in the database", exc_info=True)
        return user, token


def _revoke(token_key: str) -> None:
    # Set before the revoking transaction commits (the signals run inside it), so a request that
    # still reads the old row from the database cannot cache it either.
    try:
        cache.set(_cache_key(token_key), REVOKED, REVOKED_MARKER_SECONDS)
    except Exception:
        log.error("token cache unavailable: a revoked token's cache entry, if any, lives out its %s s",
                  settings.AUTH_TOKEN_CACHE_SECONDS, exc_info=True)


@receiver(post_save, sender=Token)
@receiver(post_delete, sender=Token)
def _token_changed(sender, instance: Token, created: bool = False, **kwargs) -> None:
    if not created:  # a new key was never cached
        _revoke(instance.key)


@receiver(post_save, sender=get_user_model())
def _user_changed(sender, instance, update_fields=None, **kwargs) -> None:
    if update_fields is not None and set(update_fields) <= {"last_login"}:
        return  # a login: nothing a token is trusted on changed, so its cache entry stays
    for key in Token.objects.filter(user=instance).values_list("key", flat=True):
        _revoke(key)
