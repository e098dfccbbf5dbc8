"""ML Router settings, read from the environment in this one place.

Defaults make `make run` work on a bare machine (SQLite, local-memory cache, eager Celery);
production sets DATABASE_URL, REDIS_URL, SECRET_KEY and the security flags (platform/env.example).
"""

from __future__ import annotations

import os
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import django_stubs_ext
import environ

# Lets admin and other generic classes be subscripted at run time (ModelAdmin[Account]).
django_stubs_ext.monkeypatch()

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()

DEBUG = env.bool("DEBUG", default=False)
SECRET_KEY = env.str("SECRET_KEY", default="django-insecure-mlrouter-development-key-change-me")
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "corsheaders",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_celery_beat",
    "django_celery_results",
    "core",
    "accounts",
    "billing",
    "completions",
    "analytics",
    "bot",
    "docs",
    "emulator",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "mlrouter.middleware.SiteLocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

# /v1/ is served with these only (mlrouter/handlers.py): an API client has no session, CSRF token or
# language to negotiate (the API speaks English), and the hot path should not pay for them. CORS is
# here and nowhere in MIDDLEWARE: the admin, the docs and the bot's webhook never answer other origins.
API_MIDDLEWARE = [
    "mlrouter.middleware.RequestIdMiddleware",
    "mlrouter.middleware.ApiHostMiddleware",
    "mlrouter.middleware.ApiCorsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "mlrouter.middleware.ApiLanguageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

# CORS on /v1 (mlrouter.middleware.ApiCorsMiddleware): browser apps may call the API. Keys are bearer
# tokens and no cookie is ever read, so every origin is allowed unless API_CORS_ALLOWED_ORIGINS (comma-
# separated, e.g. https://app.example.com) narrows it.
API_CORS_ALLOWED_ORIGINS = env.list("API_CORS_ALLOWED_ORIGINS", default=[])
CORS_ALLOW_ALL_ORIGINS = not API_CORS_ALLOWED_ORIGINS
CORS_ALLOWED_ORIGINS = API_CORS_ALLOWED_ORIGINS
CORS_URLS_REGEX = r"^/v1/"
CORS_ALLOW_CREDENTIALS = False
CORS_ALLOW_METHODS = ("GET", "POST", "OPTIONS")
CORS_ALLOW_HEADERS = (
    "accept",
    "authorization",
    "content-type",
    "x-api-key",
    "anthropic-version",
    "anthropic-beta",
    "anthropic-dangerous-direct-browser-access",
    "openai-organization",
    "openai-project",
    "openai-beta",
    "http-referer",
    "x-title",
    "x-request-id",
    "idempotency-key",
    # What the OpenAI and Anthropic SDKs send; ApiCorsMiddleware allows any other x-stainless-* asked for.
    "x-stainless-arch",
    "x-stainless-async",
    "x-stainless-custom-poll-interval",
    "x-stainless-helper",
    "x-stainless-helper-method",
    "x-stainless-lang",
    "x-stainless-os",
    "x-stainless-package-version",
    "x-stainless-poll-helper",
    "x-stainless-raw-response",
    "x-stainless-read-timeout",
    "x-stainless-retry-count",
    "x-stainless-runtime",
    "x-stainless-runtime-version",
    "x-stainless-stream-helper",
    "x-stainless-timeout",
)
CORS_EXPOSE_HEADERS = (
    "x-request-id",
    "X-Generation-Id",
    "x-should-retry",
    "Retry-After",
    "X-RateLimit-Limit",
    "X-RateLimit-Remaining",
    "X-RateLimit-Reset",
    "x-ratelimit-limit-requests",
    "x-ratelimit-remaining-requests",
    "x-ratelimit-reset-requests",
)
# Browsers cap it (Chromium at 2 hours).
CORS_PREFLIGHT_MAX_AGE = 86400

ROOT_URLCONF = "mlrouter.urls"
WSGI_APPLICATION = "mlrouter.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
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

# Database: SQLite for the demo, PostgreSQL (with a small connection pool per process) in production
# and in tests. A pool is mandatory on the request path: a new connection per checkout costs ~10 ms.
DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # Statements bound server-side (the hold and the charge, billing/services.py) are prepared after this
    # many runs on a connection, so PostgreSQL stops parsing and planning them per request. Django's own
    # queries bind client-side and are unaffected. Empty: never prepare (a transaction-pooling PgBouncer
    # before 1.21 cannot carry prepared statements).
    _prepare = env.str("DB_PREPARE_THRESHOLD", default="5")
    DATABASES["default"].setdefault("OPTIONS", {})["prepare_threshold"] = int(_prepare) if _prepare else None
    _pool_max = env.int("DB_POOL_MAX_SIZE", default=8)
    if _pool_max > 0:
        DATABASES["default"]["CONN_MAX_AGE"] = 0
        DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
            "min_size": env.int("DB_POOL_MIN_SIZE", default=1),
            "max_size": _pool_max,
            # A request waits at most this long for a connection: with PostgreSQL down it is answered
            # 503 at once (completions/pipeline.py) rather than after a long wait.
            "timeout": env.float("DB_POOL_TIMEOUT_S", default=0.5),
        }
    # libpq's smallest connect timeout: a host that does not answer costs at most this per attempt.
    DATABASES["default"]["OPTIONS"].setdefault("connect_timeout", env.int("DB_CONNECT_TIMEOUT_S", default=2))
else:
    DATABASES["default"].setdefault("OPTIONS", {}).setdefault("timeout", 20)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Redis: cache, rate limits and the Celery broker. Unset: local memory and eager tasks.
REDIS_URL = env.str("REDIS_URL", default="")
_test_worker = os.environ.get("PYTEST_XDIST_WORKER", "").removeprefix("gw")
if REDIS_URL and _test_worker.isdigit() and not os.environ.get("REDIS_DB_PER_TEST_WORKER"):
    # Parallel test workers each get their own PostgreSQL database from pytest-django; give each its own
    # Redis database too (counting down from the configured one), so rate-limit windows never mix. The
    # servers a test starts inherit the environment: they take the URL as it is, already moved.
    _redis = urlsplit(REDIS_URL)
    _redis_db = (int(_redis.path.strip("/") or 0) - int(_test_worker)) % 16
    REDIS_URL = urlunsplit(_redis._replace(path=f"/{_redis_db}"))
    os.environ.update(REDIS_URL=REDIS_URL, REDIS_DB_PER_TEST_WORKER="1")
# Every Redis call on the request path gives up after this long: a frozen Redis must not stall requests
# (the rate limit then counts in the process, completions/ratelimit.py).
REDIS_TIMEOUT_S = env.float("REDIS_TIMEOUT_S", default=0.1)
# After a failed Redis call, the rate limit counts in the process for this long before trying Redis again.
REDIS_RETRY_AFTER_S = env.float("REDIS_RETRY_AFTER_S", default=2.0)
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "OPTIONS": {"socket_timeout": REDIS_TIMEOUT_S, "socket_connect_timeout": REDIS_TIMEOUT_S},
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

CELERY_BROKER_URL = REDIS_URL or "memory://"
CELERY_TASK_ALWAYS_EAGER = not REDIS_URL
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_IGNORE_RESULT = True
# Tasks that opt in (the scheduled ones) record each run and its outcome, listed in admin.
CELERY_RESULT_BACKEND = "django-db"
CELERY_RESULT_EXTENDED = True
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_TIMEZONE = "UTC"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "ru"
LANGUAGES = [("ru", "Русский"), ("en", "English")]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"

# Security: production turns these on through the environment (platform/env.example).
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if env.bool("BEHIND_TLS_PROXY", False) else None
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=False)
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = SECURE_HSTS_SECONDS > 0
SECURE_HSTS_PRELOAD = SECURE_HSTS_SECONDS > 0
SESSION_COOKIE_SECURE = env.bool("SECURE_COOKIES", default=False)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["accounts.authentication.ApiKeyAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.AllowAny"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": None,
    "EXCEPTION_HANDLER": "completions.errors.api_exception_handler",
}

SPECTACULAR_SETTINGS = {
    "TITLE": "ML Router API",
    "DESCRIPTION": "OpenAI-compatible LLM API billed against a prepaid USD balance.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SCHEMA_PATH_PREFIX": "/v1",
    "REDOC_DIST": "SIDECAR",
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "completions.schema.add_surfaces",
    ],
}

# `plain` text lines, or `json`: one object per line (core/jsonlog.py) for log pipelines.
LOG_FORMAT = env.str("LOG_FORMAT", default="plain")
if LOG_FORMAT not in ("plain", "json"):
    raise ValueError(f"LOG_FORMAT must be plain or json, not {LOG_FORMAT!r}")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    # Each line names the API request it was written for (core/request_ids.py), "-" outside one.
    "filters": {"request_id": {"()": "core.request_ids.RequestIdLogFilter"}},
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"},
        "json": {"()": "core.jsonlog.JsonFormatter"},
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT, "filters": ["request_id"]}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}

EMAIL_BACKEND = env.str("EMAIL_BACKEND", default="django.core.mail.backends.console.EmailBackend")
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="ML Router <noreply@localhost>")

# --- ML Router ---
# Requests are refused with 402 when the available balance (balance - open holds) is below this.
MIN_BALANCE_USD = Decimal(env.str("MIN_BALANCE_USD", default="0.10"))
# A new key's requests-per-minute cap unless the operator sets another.
DEFAULT_KEY_RPM = env.int("DEFAULT_KEY_RPM", default=60)
# Requests per minute of one account, all its keys together; 0: no account-wide cap.
ACCOUNT_RPM = env.int("ACCOUNT_RPM", default=0)
# How long a process trusts what it cached about a key: bounds how long a revoked key or a suspended
# account keeps working on other processes.
AUTH_CACHE_SECONDS = env.float("AUTH_CACHE_SECONDS", default=5.0)
# A hold that is neither settled nor released by then belongs to a request whose worker died.
HOLD_TTL_SECONDS = env.int("HOLD_TTL_SECONDS", default=3600)
# How long a stored Responses answer (`store`, the default) is kept for `previous_response_id` and GET.
RESPONSES_RETENTION_DAYS = env.int("RESPONSES_RETENTION_DAYS", default=30)
# Reconciliation runs check what changed since the last completed run (billing/reconciliation.py); a full
# audit runs on its own daily schedule and, when this is above 0, as every this-many-th run too.
RECONCILE_FULL_EVERY_RUNS = env.int("RECONCILE_FULL_EVERY_RUNS", default=0)
# How old a ledger entry must be before a checkpoint covers it: longer than any money transaction lasts.
RECONCILE_CHECKPOINT_LAG_SECONDS = env.int("RECONCILE_CHECKPOINT_LAG_SECONDS", default=60)
# New accounts are warned when their available balance drops below this.
LOW_BALANCE_THRESHOLD_USD = Decimal(env.str("LOW_BALANCE_THRESHOLD_USD", default="1.00"))
# Largest accepted request body on /v1; larger gets 413.
MAX_REQUEST_BYTES = env.int("MAX_REQUEST_BYTES", default=4 * 1024 * 1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = MAX_REQUEST_BYTES
# A /v1 request body not received in full within this many seconds gets 408 (under gevent, as in
# production): a client that stalls mid-body would otherwise hold its connection with no answer.
REQUEST_BODY_TIMEOUT_SECONDS = env.float("REQUEST_BODY_TIMEOUT_SECONDS", default=10.0)

# Analytics rollups: an hour's figures may still change this long after it ended (late upstream costs
# are looked up for a day), so it is recomputed until then; the last 3 hours are recomputed on every
# refresh, older open hours at most this many per refresh (newest first).
ANALYTICS_SETTLE_HOURS = env.int("ANALYTICS_SETTLE_HOURS", default=26)
ANALYTICS_HOURS_PER_RUN = env.int("ANALYTICS_HOURS_PER_RUN", default=48)

TELEGRAM_BOT_TOKEN = env.str("TELEGRAM_BOT_TOKEN", default="")
TELEGRAM_WEBHOOK_SECRET = env.str("TELEGRAM_WEBHOOK_SECRET", default="")
TELEGRAM_API_URL = env.str("TELEGRAM_API_URL", default="https://api.telegram.org")
TELEGRAM_BOT_USERNAME = env.str("TELEGRAM_BOT_USERNAME", default="ML_Router_bot")
# Set: /topup invoices in a currency through this payment provider; unset: Telegram Stars.
TELEGRAM_PAYMENT_PROVIDER_TOKEN = env.str("TELEGRAM_PAYMENT_PROVIDER_TOKEN", default="")
# The public address of the service, shown by the bot (e.g. https://api.example.com); unset: not shown.
PUBLIC_BASE_URL = env.str("PUBLIC_BASE_URL", default="")

# Where the demo provider (the built-in upstream emulator) answers; `make run` mounts it at /emulator/.
DEMO_UPSTREAM_URL = env.str("DEMO_UPSTREAM_URL", default="http://127.0.0.1:8000/emulator/v1")
# The emulator is test tooling: /emulator/ is routed only with DEBUG or EMULATOR_ENABLED, and outside
# DEBUG it answers only `Authorization: Bearer <EMULATOR_API_KEY>` (no key: every request is refused).
EMULATOR_ENABLED = env.bool("EMULATOR_ENABLED", default=False)
EMULATOR_API_KEY = env.str("EMULATOR_API_KEY", default="")
# How long a process trusts its cached view of a model, its routes and prices.
CATALOG_CACHE_SECONDS = env.float("CATALOG_CACHE_SECONDS", default=5.0)
# Streams: a keepalive comment after this much upstream silence; after a client disconnects, keep
# reading the upstream at most this long to learn the real usage before charging an estimate.
STREAM_KEEPALIVE_SECONDS = env.float("STREAM_KEEPALIVE_SECONDS", default=15.0)
STREAM_DRAIN_SECONDS = env.float("STREAM_DRAIN_SECONDS", default=30.0)
# Under gevent, a stream's middle chunks are relayed by one green thread per process that wakes this
# often and relays every stream whose provider sent something (completions/pump.py): a chunk waits at most
# this much longer, and streams share the wakes. 0: each stream's own green thread relays all of it.
STREAM_PUMP_TICK_MS = env.float("STREAM_PUMP_TICK_MS", default=1.0)

# Monitoring (README, "Monitoring"). GET /metrics answers only `Authorization: Bearer <METRICS_TOKEN>` or a
# peer address in METRICS_ALLOWED_IPS (comma-separated addresses or networks, e.g. 10.0.0.0/8); unset: 403.
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")
METRICS_ALLOWED_IPS = env.list("METRICS_ALLOWED_IPS", default=[])
# How many processes serve the API on this host (gunicorn's workers): while Redis is unreachable each
# process allows a key its RPM divided by this (completions/ratelimit.py).
WEB_CONCURRENCY = env.int("WEB_CONCURRENCY", default=1)
# Settlements that could not be written because PostgreSQL was unreachable wait here, one append-only
# file per process, until the database answers again (completions/spool.py). Reconciliation must see
# the same folder: on several hosts, a shared volume.
SETTLEMENT_SPOOL_DIR = env.str("SETTLEMENT_SPOOL_DIR", default=str(BASE_DIR / "var" / "settlement-spool"))
