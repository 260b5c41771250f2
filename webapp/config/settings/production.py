"""Production (Docker on EC2): no secret default, HTTPS-aware, S3 when a bucket is set."""
from django.core.exceptions import ImproperlyConfigured

from .base import *  # noqa: F401,F403
from .base import RECOGNITION_TEST_DELAY_S, env

if RECOGNITION_TEST_DELAY_S:
    raise ImproperlyConfigured("RECOGNITION_TEST_DELAY_S is for fault tests only; unset it in production")

DEBUG = False
SECRET_KEY = env("DJANGO_SECRET_KEY")  # no default: a missing secret stops startup loudly
# It signs sessions and the step picture links: the .env.example placeholder, or anything short
# enough to guess, stops startup too (check --deploy only warns).
SECRET_KEY_FALLBACKS = env.list("DJANGO_SECRET_KEY_FALLBACKS", default=[])  # old keys while rotating: links and sessions still verify


def _guessable(key: str) -> bool:
    return len(key) < 50 or key.startswith(("replace-with", "django-insecure")) or len(set(key)) < 5


if _guessable(SECRET_KEY) or any(_guessable(key) for key in SECRET_KEY_FALLBACKS):  # an old key forges as well as a new one
    raise ImproperlyConfigured(
        "DJANGO_SECRET_KEY (and each of DJANGO_SECRET_KEY_FALLBACKS) must be 50+ random characters: "
        "python -c 'import secrets; print(secrets.token_urlsafe(50))'"
    )
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS")
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")  # the ALB terminates HTTPS
SECURE_SSL_REDIRECT = env.bool("DJANGO_SECURE_SSL_REDIRECT", default=True)
SECURE_HSTS_SECONDS = env.int("DJANGO_SECURE_HSTS_SECONDS", default=60 * 60 * 24 * 30)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", default=True)
SECURE_HSTS_PRELOAD = env.bool("DJANGO_SECURE_HSTS_PRELOAD", default=False)
# Joining the browsers' HSTS preload list is a one-way decision for the domain's owner, not a default.
SILENCED_SYSTEM_CHECKS = [] if SECURE_HSTS_PRELOAD else ["security.W021"]
SESSION_COOKIE_SECURE = env.bool("DJANGO_SECURE_COOKIES", default=True)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SECURE_CONTENT_TYPE_NOSNIFF = True
# Behind one load balancer: throttles key on the address it saw, not on a client-written X-Forwarded-For.
REST_FRAMEWORK["NUM_PROXIES"] = env.int("DJANGO_NUM_PROXIES", default=1)  # noqa: F405
STORAGES["staticfiles"] = {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"}  # noqa: F405
