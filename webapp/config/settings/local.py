"""`make run` on a laptop: DEBUG on, a fixed development secret, localhost only."""
from .base import *  # noqa: F401,F403
from .base import LOGGING, env

DEBUG = env.bool("DJANGO_DEBUG", default=True)
SECRET_KEY = env("DJANGO_SECRET_KEY", default="local-development-only-not-secret")
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
LOG_FORMAT = env("LOG_FORMAT", default="plain")
LOGGING["handlers"]["console"]["formatter"] = LOG_FORMAT  # noqa: F405
