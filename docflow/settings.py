"""docflow settings: whatever differs between machines comes from the environment."""

from __future__ import annotations

import os
from pathlib import Path

import dj_database_url

from docflow.configuration import env_bool, env_int, resolve_secrets

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("DOCFLOW_VAR_DIR", BASE_DIR / "var"))

DEBUG = env_bool("DJANGO_DEBUG", default=False)

_secrets = resolve_secrets(
    debug=DEBUG,
    dev_secrets_path=Path(
        os.environ.get("DOCFLOW_DEV_SECRETS_FILE", VAR_DIR / "dev-secrets.json")
    ),
)
SECRET_KEY = _secrets["DJANGO_SECRET_KEY"]
# Key ring for payload encryption at rest: "id:key,id:key", newest (active) first.
DOCFLOW_PAYLOAD_KEYS = _secrets["DOCFLOW_PAYLOAD_KEYS"]

ALLOWED_HOSTS = [
    h.strip()
    for h in os.environ.get(
        "DJANGO_ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]" if DEBUG else ""
    ).split(",")
    if h.strip()
]
CSRF_TRUSTED_ORIGINS = [
    o.strip()
    for o in os.environ.get("DJANGO_CSRF_TRUSTED_ORIGINS", "").split(",")
    if o.strip()
]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework_api_key",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_q",
    "guardian",
    "simple_history",
    "audit.apps.AuditConfig",
    "docflow.apps.DocflowConfig",
    "casework.apps.CaseworkConfig",
    "transmissions.apps.TransmissionsConfig",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "docflow.middleware.RequestSizeLimitMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "simple_history.middleware.HistoryRequestMiddleware",
]

ROOT_URLCONF = "docflow.urls"
WSGI_APPLICATION = "docflow.wsgi.application"

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

# Database: DATABASE_URL, SQLite file by default. Persistent connections always.
CONN_MAX_AGE = env_int("CONN_MAX_AGE", 60)
if CONN_MAX_AGE <= 0:
    from django.core.exceptions import ImproperlyConfigured

    raise ImproperlyConfigured("CONN_MAX_AGE must be > 0 (persistent connections)")
DATABASES = {
    "default": dj_database_url.config(
        default=f"sqlite:///{VAR_DIR / 'docflow.sqlite3'}",
        conn_max_age=CONN_MAX_AGE,
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["OPTIONS"] = {
        # Take the write lock at BEGIN so concurrent writers queue instead of failing.
        "transaction_mode": "IMMEDIATE",
        "timeout": 30,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {
        "NAME": "django.contrib.auth.password_validation."
        "UserAttributeSimilarityValidator"
    },
    {
        "NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
        "OPTIONS": {"min_length": 12},
    },
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "guardian.backends.ObjectPermissionBackend",
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "staff-home"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-gb"
TIME_ZONE = "Europe/London"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"] if (BASE_DIR / "static").exists() else []
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG
        else "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
    # Encrypted payload blobs. File names are random UUIDs, never patient identifiers.
    "payloads": {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {
            "location": os.environ.get(
                "DOCFLOW_PAYLOAD_DIR", str(VAR_DIR / "payloads")
            ),
            "file_permissions_mode": 0o600,
            "directory_permissions_mode": 0o700,
        },
    },
}

# Intake ceiling: bigger bodies are refused with 413 before they are read.
DOCFLOW_MAX_UPLOAD_BYTES = env_int("DOCFLOW_MAX_UPLOAD_BYTES", 20 * 1024 * 1024)
# base64 in JSON inflates by 4/3; leave room for the metadata around it.
DATA_UPLOAD_MAX_MEMORY_SIZE = DOCFLOW_MAX_UPLOAD_BYTES * 4 // 3 + 64 * 1024
FILE_UPLOAD_MAX_MEMORY_SIZE = DOCFLOW_MAX_UPLOAD_BYTES + 64 * 1024

# An API key verified this recently is trusted again without a database look-up, so
# revoking or deactivating one takes effect within this many seconds in every worker
# (0: look every key up on every request). See docflow.api.authentication.
DOCFLOW_API_KEY_CACHE_SECONDS = env_int("DOCFLOW_API_KEY_CACHE_SECONDS", 5)

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "docflow.api.authentication.ApiKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": [
        "rest_framework.parsers.JSONParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "docflow.api.problems.problem_exception_handler",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "docflow API",
    "DESCRIPTION": (
        "Submit clinical documents for delivery to GP practices and follow their "
        "journey. Every write needs an Idempotency-Key; errors are RFC 9457 "
        "problem+json."
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "SCHEMA_PATH_PREFIX": "/api/v1",
    "ENUM_NAME_OVERRIDES": {
        "DocumentStatusEnum": "docflow.models.DocumentStatus",
    },
}

# django-q2: the ORM broker by default, Redis when REDIS_URL is set.
REDIS_URL = os.environ.get("REDIS_URL", "")
Q_CLUSTER = {
    "name": "docflow",
    # One worker is the tracker while documents are on their way (and, for a few
    # seconds a minute, its successor waiting to take over); the rest prepare and
    # send, each waiting on Connect and the database more than on the CPU.
    "workers": env_int("Q_WORKERS", 4),
    "timeout": 120,
    "retry": 180,
    # -1: successful tasks are not stored (the audit chain is the record); failures are.
    "save_limit": env_int("Q_SAVE_LIMIT", -1),
    "catch_up": False,
    "ack_failures": True,
    "max_attempts": 3,
    "label": "Task queue",
}
if REDIS_URL:
    Q_CLUSTER["redis"] = REDIS_URL
else:
    Q_CLUSTER["orm"] = "default"
    Q_CLUSTER["poll"] = 0.2

SIMPLE_HISTORY_HISTORY_CHANGE_REASON_USE_TEXT_FIELD = True

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "redact_nhs_numbers": {"()": "audit.redaction.NhsNumberRedactionFilter"},
    },
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "plain",
            "filters": ["redact_nhs_numbers"],
        },
    },
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
    },
}

# Connect (the real service or the simulator on loopback in development).
DOCFLOW_CONNECT_BASE_URL = os.environ.get(
    "DOCFLOW_CONNECT_BASE_URL", "http://127.0.0.1:8100"
)

# Transmission engine (DESIGN §4): retries, tracking, safe degradation.
# Connect timeouts in seconds: connect, read, write, pool.
DOCFLOW_CONNECT_TIMEOUTS = (
    float(os.environ.get("DOCFLOW_CONNECT_CONNECT_TIMEOUT", "5")),
    float(os.environ.get("DOCFLOW_CONNECT_READ_TIMEOUT", "30")),
    float(os.environ.get("DOCFLOW_CONNECT_WRITE_TIMEOUT", "30")),
    5.0,
)
DOCFLOW_SEND_MAX_ATTEMPTS = env_int("DOCFLOW_SEND_MAX_ATTEMPTS", 8)
DOCFLOW_SEND_RETRY_BASE_SECONDS = env_int("DOCFLOW_SEND_RETRY_BASE_SECONDS", 30)
DOCFLOW_SEND_RETRY_MAX_SECONDS = env_int("DOCFLOW_SEND_RETRY_MAX_SECONDS", 3600)
# A destination's directory entry is trusted this long before it is looked up again.
DOCFLOW_DESTINATION_TTL_SECONDS = env_int("DOCFLOW_DESTINATION_TTL_SECONDS", 900)
DOCFLOW_POLL_FIRST_SECONDS = env_int("DOCFLOW_POLL_FIRST_SECONDS", 30)
# Longer than any POST can take with the timeouts above: then the worker is gone.
DOCFLOW_SENDING_TIMEOUT_SECONDS = env_int("DOCFLOW_SENDING_TIMEOUT_SECONDS", 300)
DOCFLOW_DISPATCH_GRACE_SECONDS = env_int("DOCFLOW_DISPATCH_GRACE_SECONDS", 60)
DOCFLOW_CIRCUIT_FAILURE_THRESHOLD = env_int("DOCFLOW_CIRCUIT_FAILURE_THRESHOLD", 5)
DOCFLOW_CIRCUIT_COOLDOWN_SECONDS = env_int("DOCFLOW_CIRCUIT_COOLDOWN_SECONDS", 60)
DOCFLOW_SURGE_THRESHOLD = env_int("DOCFLOW_SURGE_THRESHOLD", 10)
DOCFLOW_SURGE_WINDOW_SECONDS = env_int("DOCFLOW_SURGE_WINDOW_SECONDS", 600)
DOCFLOW_TRACK_LOOP_SECONDS = env_int("DOCFLOW_TRACK_LOOP_SECONDS", 50)
DOCFLOW_TRACK_ROUND_SECONDS = float(os.environ.get("DOCFLOW_TRACK_ROUND_SECONDS", "1"))
# Queued (by dotted name) when a new document is stored; empty turns it off.
DOCFLOW_PREPARE_TASK = os.environ.get(
    "DOCFLOW_PREPARE_TASK", "transmissions.tasks.prepare_document"
)
