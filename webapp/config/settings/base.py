"""Settings shared by every environment, read from the environment with django-environ.

Every host, secret and deadline comes from the environment; the defaults here are
the embedded ones `make run` uses on a machine with no servers (SQLite, a
filesystem Celery broker and a file cache under ``var/``).
"""
from __future__ import annotations

from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

REPO_DIR = Path(__file__).resolve().parents[3]
env = environ.Env()

VAR_DIR = Path(env("VAR_DIR", default=str(REPO_DIR / "var")))

DEBUG = env.bool("DJANGO_DEBUG", default=False)
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=[])
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "webapp.recognition.apps.LockoutAdminConfig",  # django.contrib.admin, its login locked out like the web login
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_prometheus",
    "webapp.recognition",
]

MIDDLEWARE = [
    "webapp.recognition.health_middleware.HealthCheckMiddleware",  # first: before host checks and HTTPS redirects
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "webapp.recognition.step_links.SignedMediaMiddleware",  # step pictures: no session, token or database
    "webapp.recognition.middleware.DatabaseUnavailableMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_prometheus.middleware.PrometheusAfterMiddleware",
]

ROOT_URLCONF = "webapp.config.urls"
WSGI_APPLICATION = "webapp.config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database: PostgreSQL when DATABASE_URL is set, else embedded SQLite.
DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'db.sqlite3'}")}
DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # The embedded stack has a web, a worker and beat on one file: WAL lets reads run beside a write,
    # IMMEDIATE transactions queue writers instead of failing them, and a writer waits up to 20 s.
    DATABASES["default"]["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
    }
if DATABASES["default"]["ENGINE"].endswith("postgresql"):
    # A database that is down must turn into a quick 503, not a hung request.
    DATABASES["default"].setdefault("OPTIONS", {})["connect_timeout"] = env.int("DATABASE_CONNECT_TIMEOUT", default=3)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Cache: the upload throttle counts here, so it must be shared by every web process.
CACHES = {"default": env.cache("CACHE_URL", default=f"filecache://{VAR_DIR / 'cache'}")}
CACHES["default"]["KEY_PREFIX"] = env("CACHE_KEY_PREFIX", default="")
if CACHES["default"]["BACKEND"] == "django.core.cache.backends.redis.RedisCache":
    CACHES["default"]["BACKEND"] = "webapp.recognition.redis_cache.SharedClientRedisCache"  # one client per pool, not per call

# --- Storage: input and step images go through Django's storage API (S3 when configured).
MEDIA_ROOT = Path(env("MEDIA_ROOT", default=str(VAR_DIR / "media")))
MEDIA_URL = "/media/"  # answered only for signed links (step_links.SignedMediaMiddleware)
STEP_LINK_SECONDS = env.int("STEP_LINK_SECONDS", default=3600)  # how long a result's picture links work, at least
if not 60 <= STEP_LINK_SECONDS <= 7 * 24 * 3600:  # S3 presigns for a week at most
    raise ImproperlyConfigured("STEP_LINK_SECONDS must be between 60 and 604800 (a week, S3's longest presigned link)")
STATIC_ROOT = Path(env("STATIC_ROOT", default=str(VAR_DIR / "static")))
STATIC_URL = "/static/"
AWS_STORAGE_BUCKET_NAME = env("AWS_STORAGE_BUCKET_NAME", default="")
if AWS_STORAGE_BUCKET_NAME:
    _default_storage = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": AWS_STORAGE_BUCKET_NAME,
            "region_name": env("AWS_S3_REGION_NAME", default=None),
            "endpoint_url": env("AWS_S3_ENDPOINT_URL", default=None),
            "location": env("AWS_S3_LOCATION", default="media"),
            "default_acl": None,
            "file_overwrite": False,
            "querystring_auth": True,  # step links are presigned (step_links.py)
            "querystring_expire": STEP_LINK_SECONDS,
        },
    }
else:
    _default_storage = {"BACKEND": "django.core.files.storage.FileSystemStorage"}
STORAGES = {
    "default": _default_storage,
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}

# --- Auth
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
LOGIN_URL = "/accounts/login/"
AUTH_TOKEN_CACHE_SECONDS = env.int("AUTH_TOKEN_CACHE_SECONDS", default=60)  # dropped at once when the token or user changes
LOGIN_MAX_FAILURES = env.int("LOGIN_MAX_FAILURES", default=10)  # per address and username, then a lockout
LOGIN_LOCKOUT_SECONDS = env.int("LOGIN_LOCKOUT_SECONDS", default=900)
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

# --- Upload limits. Each is named in the error a request over it gets.
MAX_IMAGE_BYTES = env.int("MAX_IMAGE_BYTES", default=15 * 1024 * 1024)
MAX_IMAGE_PIXELS = env.int("MAX_IMAGE_PIXELS", default=40_000_000)
MAX_IMAGE_SIDE = env.int("MAX_IMAGE_SIDE", default=40_000)  # a 40,000,000×1 strip cost the pipeline 87 s
MIN_IMAGE_SIDE = env.int("MIN_IMAGE_SIDE", default=8)
MAX_PDF_BYTES = env.int("MAX_PDF_BYTES", default=50 * 1024 * 1024)
MAX_PAGES_PER_BATCH = env.int("MAX_PAGES_PER_BATCH", default=50)
MAX_REQUEST_BYTES = env.int("MAX_REQUEST_BYTES", default=100 * 1024 * 1024)
PDF_RENDER_DPI = env.int("PDF_RENDER_DPI", default=200)
# A page is rendered in the web request: a few-KB PDF can declare pages of 5 m a side, and at
# MAX_IMAGE_PIXELS each would cost the web process half a second. A4 at 300 dpi is 8.7 MP.
PDF_MAX_PAGE_PIXELS = env.int("PDF_MAX_PAGE_PIXELS", default=12_000_000)
# A base64 canvas in a JSON body is read into memory: allow one image plus base64 overhead.
DATA_UPLOAD_MAX_MEMORY_SIZE = MAX_IMAGE_BYTES * 4 // 3 + 64 * 1024
FILE_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024
DATA_UPLOAD_MAX_NUMBER_FILES = MAX_PAGES_PER_BATCH

# --- Jobs: every deadline comes from the environment (seconds unless named otherwise).
JOB_LEASE_SECONDS = env.int("JOB_LEASE_SECONDS", default=180)
JOB_MAX_ATTEMPTS = env.int("JOB_MAX_ATTEMPTS", default=3)
JOB_MAX_RETRIES = env.int("JOB_MAX_RETRIES", default=2)  # transient errors (database, storage), with backoff
JOB_SOFT_TIME_LIMIT = env.int("JOB_SOFT_TIME_LIMIT", default=60)
JOB_TIME_LIMIT = env.int("JOB_TIME_LIMIT", default=90)
JOB_SWEEP_INTERVAL = env.float("JOB_SWEEP_INTERVAL", default=30.0)
JOB_REQUEUE_AFTER = env.int("JOB_REQUEUE_AFTER", default=120)
JOB_RETENTION_DAYS = env.int("JOB_RETENTION_DAYS", default=30)
JOB_PURGE_INTERVAL = env.float("JOB_PURGE_INTERVAL", default=3600.0)
IDEMPOTENCY_WINDOW_HOURS = 24
JOB_WAIT_MAX_S = env.float("JOB_WAIT_MAX_S", default=30.0)  # the longest ?wait= a client may ask for
JOB_WAIT_MAX_WAITERS = env.int("JOB_WAIT_MAX_WAITERS", default=12)  # per web process; keep below its threads
# Test-only: sleep this long in every job, so that fault tests can kill a worker mid-job or
# exceed a time limit. Production settings refuse to start with it set.
RECOGNITION_TEST_DELAY_S = env.float("RECOGNITION_TEST_DELAY_S", default=0.0)
MODEL_VERSION = env("MODEL_VERSION", default="")  # pin the workers to one version; empty = ACTIVE
# "files": models/ACTIVE on this machine. "database": a pointer table, model files in shared storage (several hosts).
MODEL_REGISTRY = env("MODEL_REGISTRY", default="files")

if JOB_LEASE_SECONDS <= JOB_TIME_LIMIT:
    raise ImproperlyConfigured("JOB_LEASE_SECONDS must exceed JOB_TIME_LIMIT, or a live job could be claimed twice")
if JOB_MAX_RETRIES >= JOB_MAX_ATTEMPTS:
    raise ImproperlyConfigured("JOB_MAX_RETRIES must be below JOB_MAX_ATTEMPTS: every retry claims the job again")
if JOB_SOFT_TIME_LIMIT >= JOB_TIME_LIMIT:
    raise ImproperlyConfigured("JOB_SOFT_TIME_LIMIT must be below JOB_TIME_LIMIT")

# --- Celery (read by workers.celery_app under the CELERY_ namespace).
CELERY_BROKER_URL = env("CELERY_BROKER_URL", default="filesystem://")
if CELERY_BROKER_URL.startswith("filesystem"):
    # The embedded broker: real message files under var/, polled often, for `make run` with no servers.
    _broker_dir = VAR_DIR / "broker"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "messages"),
        "data_folder_out": str(_broker_dir / "messages"),
        "control_folder": str(_broker_dir / "control"),
        "processed_folder": str(_broker_dir / "processed"),
        "store_processed": False,
        "polling_interval": 0.1,
    }
    CELERY_WORKER_ENABLE_REMOTE_CONTROL = False  # the filesystem transport has no fanout exchange
else:
    CELERY_BROKER_VISIBILITY_TIMEOUT = env.int("CELERY_VISIBILITY_TIMEOUT", default=3600)
    if CELERY_BROKER_VISIBILITY_TIMEOUT <= JOB_TIME_LIMIT:
        raise ImproperlyConfigured("CELERY_VISIBILITY_TIMEOUT must exceed JOB_TIME_LIMIT")
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "visibility_timeout": CELERY_BROKER_VISIBILITY_TIMEOUT,
        "socket_connect_timeout": 2,
        "socket_timeout": 5,
        # Deployments (or test runs) sharing one Redis keep their queues apart by prefix.
        "global_keyprefix": env("CELERY_BROKER_KEY_PREFIX", default=""),
    }
# Finished jobs are announced here to the web threads that wait for them (webapp.recognition.job_events).
JOB_EVENTS_REDIS_URL = env("JOB_EVENTS_REDIS_URL", default=CELERY_BROKER_URL if CELERY_BROKER_URL.startswith("redis") else "")
# Announcement channels start with the broker's key prefix: Redis channels ignore database
# numbers, so deployments (or test stacks) sharing one Redis would otherwise hear each other.
JOB_EVENTS_PREFIX = env("CELERY_BROKER_KEY_PREFIX", default="")
CELERY_BROKER_CONNECTION_TIMEOUT = 2
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_PUBLISH_RETRY = False  # a submit never waits on a broker that is down; the sweep enqueues later
CELERY_TASK_IGNORE_RESULT = True  # job state lives in the database
# Celery's Django fixup would close the database connection around every task: a new
# PostgreSQL connection per job. Workers instead keep it as web requests do, under
# CONN_MAX_AGE and CONN_HEALTH_CHECKS (workers.tasks closes old or broken ones).
CELERY_DB_REUSE_MAX = 1_000_000
CELERY_RESULT_BACKEND = None
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SOFT_TIME_LIMIT = JOB_SOFT_TIME_LIMIT
CELERY_TASK_TIME_LIMIT = JOB_TIME_LIMIT
CELERY_TASK_DEFAULT_QUEUE = "maintenance"
CELERY_TASK_ROUTES = {
    "recognition.recognize": {"queue": "inference"},
    "recognition.sweep": {"queue": "maintenance"},
    "recognition.purge_expired": {"queue": "maintenance"},
}
CELERY_BEAT_SCHEDULE = {
    "sweep-jobs": {"task": "recognition.sweep", "schedule": JOB_SWEEP_INTERVAL, "options": {"expires": JOB_SWEEP_INTERVAL}},
    "purge-expired-jobs": {"task": "recognition.purge_expired", "schedule": JOB_PURGE_INTERVAL},
}
CELERY_WORKER_HIJACK_ROOT_LOGGER = False

# --- REST framework and the OpenAPI schema
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "webapp.recognition.authentication.CachedTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "webapp.recognition.api.errors.exception_handler",
    "DEFAULT_THROTTLE_RATES": {
        "uploads": env("UPLOAD_THROTTLE_RATE", default="60/min"),
        "auth": env("AUTH_THROTTLE_RATE", default="20/min"),
    },
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Handwritten arithmetic API",
    "DESCRIPTION": (
        "Submit images of handwritten arithmetic as jobs, poll for the reading, its value and the step pictures. "
        "A finished job's `steps` are signed links that expire after STEP_LINK_SECONDS: fetch them without an "
        "Authorization header. A link that was altered answers 403 `invalid_link`, an old one 403 `link_expired`, "
        "one whose job was deleted 404 `step_not_found` (on S3 storage they are S3 presigned URLs, with S3's errors)."
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "ENUM_NAME_OVERRIDES": {"ErrorCodeEnum": "webapp.recognition.errors.ErrorCode"},
    "COMPONENT_SPLIT_REQUEST": True,
}

# Logs: one JSON object per line (LOG_FORMAT=json, the default) with the job ID when there is one.
LOG_FORMAT = env("LOG_FORMAT", default="json")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "job_id": {"()": "webapp.recognition.log_context.JobIdFilter"},
        "request_path_only": {"()": "webapp.recognition.log_context.RequestPathOnlyFilter"},
    },
    "formatters": {
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "format": "%(asctime)s %(levelname)s %(name)s %(message)s %(job_id)s %(process)d",
            "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
        },
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s [job %(job_id)s] %(message)s"},
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT, "filters": ["job_id", "request_path_only"]}},
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", default="INFO")},
    # Celery's "Task … received" and "… succeeded in" lines repeat the job runner's own "job
    # claimed" / "job succeeded" (which carry the job ID): two JSON lines a job fewer. Failures
    # are still logged (at ERROR); CELERY_TASK_LOG_LEVEL=INFO brings the lines back.
    "loggers": {
        name: {"level": env("CELERY_TASK_LOG_LEVEL", default="WARNING")} for name in ("celery.worker.strategy", "celery.app.trace")
    },
}
