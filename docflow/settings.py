"""docflow settings: whatever differs between machines comes from the environment.

Over 500 lines because Django reads one settings module: each feature's block is
short, commented and contiguous, and splitting it would hide the order they apply in.
"""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import os
from pathlib import Path

import dj_database_url
from csp.constants import NONE, SELF

from docflow.configuration import env_bool, env_int, read_secret, resolve_secrets
from docflow.state_files import private_directory_ensure

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
# Earlier secret keys, still accepted for signatures made before a rotation (sessions,
# password reset links), comma-separated; from DJANGO_SECRET_KEY_FALLBACKS or _FILE.
SECRET_KEY_FALLBACKS = [
    key.strip()
    for key in (read_secret("DJANGO_SECRET_KEY_FALLBACKS") or "").split(",")
    if key.strip()
]
# The key of the keyed hash standing for an NHS number in the audit trail
# (audit.pseudonyms); empty: SECRET_KEY. Set it (to the current SECRET_KEY, before
# the first rotation) so that rotating SECRET_KEY leaves those hashes unchanged.
DOCFLOW_IG_SUBJECT_KEY = read_secret("DOCFLOW_IG_SUBJECT_KEY") or ""
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
    "csp",
    "axes",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "audit.apps.AuditConfig",
    "docflow.apps.DocflowConfig",
    "casework.apps.CaseworkConfig",
    "transmissions.apps.TransmissionsConfig",
    "operations.apps.OperationsConfig",
    # Governance: IG timeline, subject access, retention; last, above every app.
    "governance.apps.GovernanceConfig",
]

MIDDLEWARE = [
    # First: whatever answers an /api/ request with an error answers problem+json.
    "docflow.middleware.ApiProblemMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "docflow.middleware.RequestSizeLimitMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # request.user.is_verified(): the admin asks for it when MFA is required.
    "django_otp.middleware.OTPMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "simple_history.middleware.HistoryRequestMiddleware",
    # Last, as django-axes asks: turns a locked-out sign-in into the lockout page.
    "axes.middleware.AxesMiddleware",
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
# Where encrypted payload blobs live: "database" (a table of their own, written in
# the transaction that records each payload version; no shared disk between nodes;
# backed up by pg_dump) or "filesystem" (DOCFLOW_PAYLOAD_DIR, fsynced before the row
# commits; for SQLite development). Default: "database" on PostgreSQL. A blob not in
# this store is read from the other, so ``manage.py payloads_move`` runs online.
DOCFLOW_PAYLOAD_STORE = os.environ.get(
    "DOCFLOW_PAYLOAD_STORE",
    "database"
    if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql"
    else "filesystem",
)
if DOCFLOW_PAYLOAD_STORE not in ("database", "filesystem"):
    from django.core.exceptions import ImproperlyConfigured

    raise ImproperlyConfigured(
        'DOCFLOW_PAYLOAD_STORE must be "database" or "filesystem"'
    )

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
    # First: refuses a locked-out username and address before a password is checked.
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
    "guardian.backends.ObjectPermissionBackend",
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "staff-home"
LOGOUT_REDIRECT_URL = "login"

# Hardening (DESIGN §6). Production (DJANGO_DEBUG off) is secure by default and
# `manage.py check --deploy --fail-level WARNING` passes; each switch can be turned
# off by environment for a plain-HTTP setting (development, a loopback benchmark).
# Behind a TLS-terminating proxy set DOCFLOW_PROXY_SSL_HEADER (e.g.
# HTTP_X_FORWARDED_PROTO) so requests it forwarded over HTTPS count as secure.
_proxy_ssl_header = os.environ.get("DOCFLOW_PROXY_SSL_HEADER", "").strip()
if _proxy_ssl_header:
    SECURE_PROXY_SSL_HEADER = (_proxy_ssl_header, "https")
SECURE_SSL_REDIRECT = env_bool("DOCFLOW_SSL_REDIRECT", default=not DEBUG)
# Health checks and metrics scrapes come from the load balancer and the monitoring
# on the internal network, over plain HTTP.
SECURE_REDIRECT_EXEMPT = [r"^healthz/?$", r"^metrics/?$"]
SECURE_HSTS_SECONDS = env_int("DOCFLOW_HSTS_SECONDS", 0 if DEBUG else 31_536_000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
# Preloading commits the whole parent domain to HTTPS for browsers everywhere; that
# is the domain owner's decision, not this service's, so it is off unless asked for.
SECURE_HSTS_PRELOAD = env_bool("DOCFLOW_HSTS_PRELOAD", default=False)
if not SECURE_HSTS_PRELOAD:
    SILENCED_SYSTEM_CHECKS = ["security.W021"]  # "not in the preload list": on purpose
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"

# Cookies: HTTPS only in production (with the __Host- prefix, which browsers accept
# only from a secure origin, for the whole host, on path /), never readable by
# script, not sent on cross-site subrequests.
_secure_cookies = env_bool("DOCFLOW_SECURE_COOKIES", default=not DEBUG)
_cookie_prefix = "__Host-" if _secure_cookies else ""
SESSION_COOKIE_NAME = f"{_cookie_prefix}docflow_session"
SESSION_COOKIE_SECURE = _secure_cookies
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_NAME = f"{_cookie_prefix}docflow_csrftoken"
CSRF_COOKIE_SECURE = _secure_cookies
# No page reads the token from the cookie: forms carry it ({% csrf_token %}).
CSRF_COOKIE_HTTPONLY = True
CSRF_COOKIE_SAMESITE = "Strict"
# Idle timeout: each request pushes the expiry on, so a session ends after this long
# without activity (server-side too); it also ends when the browser closes.
SESSION_COOKIE_AGE = env_int("DOCFLOW_SESSION_IDLE_SECONDS", 30 * 60)
SESSION_SAVE_EVERY_REQUEST = True
SESSION_EXPIRE_AT_BROWSER_CLOSE = True

# Content Security Policy (django-csp 4): only this origin's scripts, styles, images
# and XHR; no inline script or style, no eval, no framing, no plugins. Staff pages
# load the vendored NHS.UK frontend and htmx from static files.
CONTENT_SECURITY_POLICY = {
    # The API's Swagger page renders its set-up script inline (drf-spectacular's
    # SpectacularSwaggerView); it shows no data of its own.
    "EXCLUDE_URL_PREFIXES": ["/api/v1/docs/"],
    "DIRECTIVES": {
        "default-src": [NONE],
        "script-src": [SELF],
        "style-src": [SELF],
        "img-src": [SELF, "data:"],
        "font-src": [SELF],
        "connect-src": [SELF],
        "manifest-src": [SELF],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
        "base-uri": [NONE],
        "object-src": [NONE],
    },
}

# Sign-in throttling (django-axes), on the staff sign-in page and the admin's: after
# DOCFLOW_LOGIN_FAILURE_LIMIT failures for one username from one address, that pair
# is locked out for DOCFLOW_LOGIN_LOCKOUT_MINUTES and shown docflow/locked_out.html
# (HTTP 429). A success clears the count. Unlock early: `manage.py axes_reset_username`.
AXES_ENABLED = env_bool("DOCFLOW_LOGIN_THROTTLING", default=True)
AXES_FAILURE_LIMIT = env_int("DOCFLOW_LOGIN_FAILURE_LIMIT", 5)
AXES_COOLOFF_TIME = datetime.timedelta(
    minutes=env_int("DOCFLOW_LOGIN_LOCKOUT_MINUTES", 15)
)
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
# Behind nginx the address is nginx's X-Real-IP, believed only from these proxies
# (comma-separated addresses or networks; empty: REMOTE_ADDR as it arrives).
DOCFLOW_TRUSTED_PROXIES = [
    str(ipaddress.ip_network(item.strip(), strict=False))  # a typo fails at start
    for item in os.environ.get("DOCFLOW_TRUSTED_PROXIES", "").split(",")
    if item.strip()
]
AXES_CLIENT_IP_CALLABLE = "docflow.client_address.client_address"
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "docflow/locked_out.html"

# Two-factor sign-in for the admin (django-otp, TOTP devices). On by default in
# production: the admin then asks for a code from an authenticator app and lets in
# only people verified by a confirmed device (docflow.urls swaps the admin site's
# class). The first device is made with `manage.py shell` or by a verified admin in
# Admin > TOTP devices; with DOCFLOW_ADMIN_REQUIRE_MFA=0 the admin asks for none.
DOCFLOW_ADMIN_REQUIRE_MFA = env_bool("DOCFLOW_ADMIN_REQUIRE_MFA", default=not DEBUG)
OTP_TOTP_ISSUER = "docflow"
# A device's secret key is shown once, when it is added; never again in the admin.
OTP_ADMIN_HIDE_SENSITIVE_DATA = True

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
# Every process checks the shared revocation stamp (docflow.Stamp "api_keys", bumped
# by any change to a key, service account or organisation) at most this often and
# forgets its verified keys when it moved: a revoked key is refused on every node
# within this many seconds, whatever DOCFLOW_API_KEY_CACHE_SECONDS is.
DOCFLOW_API_KEY_STAMP_SECONDS = float(
    os.environ.get("DOCFLOW_API_KEY_STAMP_SECONDS", "1")
)

# Hostile input at the API and intake (docflow.api.parsers, docflow.validation):
# JSON nested deeper than this is refused with 400 before it is parsed; NHS numbers
# of the never-issued test range (900 000 0000 - 999 999 9999, which the demo data
# and the tests use) are accepted as patients' only while this is on (DEBUG).
DOCFLOW_JSON_MAX_DEPTH = env_int("DOCFLOW_JSON_MAX_DEPTH", 64)
DOCFLOW_ALLOW_TEST_NHS_NUMBERS = env_bool(
    "DOCFLOW_ALLOW_TEST_NHS_NUMBERS", default=DEBUG
)

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "docflow.api.authentication.ApiKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": [
        "docflow.api.parsers.BoundedJSONParser",
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
    # Tasks taken from the queue per poll: one round of queries for several tasks.
    "bulk": env_int("Q_BULK", 10),
    # A worker is replaced after this many tasks, or sooner if it grows past max_rss
    # (KiB): a new worker costs a second or more of CPU to import everything, which
    # at django-q's default of 500 tasks came to a tenth of the cluster's work.
    "recycle": env_int("Q_RECYCLE", 5000),
    "max_rss": env_int("Q_MAX_RSS_KB", 512 * 1024),
    # Tasks taken ahead of the workers: few, so a task waits in the database (where
    # another cluster may take it) rather than behind a busy worker.
    "queue_limit": env_int("Q_QUEUE_LIMIT", env_int("Q_WORKERS", 4)),
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
        # WeasyPrint reports every page it lays out at INFO, and fontTools every
        # font it subsets: warnings and errors only.
        "weasyprint": {"level": "WARNING"},
        "fontTools": {"level": "WARNING"},
    },
}

# Connect (the real service or the simulator on loopback in development).
DOCFLOW_CONNECT_BASE_URL = os.environ.get(
    "DOCFLOW_CONNECT_BASE_URL", "http://127.0.0.1:8100"
)
# How docflow asks Connect for a token (an assumption: the real flow is not
# published): "client_credentials" at /oauth2/token (client id and secret), or
# "password" at /token (the client id as username, the secret as password).
DOCFLOW_CONNECT_TOKEN_GRANT = os.environ.get(
    "DOCFLOW_CONNECT_TOKEN_GRANT", "client_credentials"
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
# Last backstop only (claims are settled when their lease expires): a document in
# sending this long lost its worker.
DOCFLOW_SENDING_TIMEOUT_SECONDS = env_int("DOCFLOW_SENDING_TIMEOUT_SECONDS", 300)
DOCFLOW_DISPATCH_GRACE_SECONDS = env_int("DOCFLOW_DISPATCH_GRACE_SECONDS", 60)
# A prepare task takes its own document and up to this many in all that are
# waiting, prepares them in one transaction and sends them together.
DOCFLOW_PREPARE_BATCH = env_int("DOCFLOW_PREPARE_BATCH", 25)
# ... after lingering this long when fewer than a batch are waiting, so that
# documents arriving together are prepared and sent together.
DOCFLOW_PREPARE_LINGER_SECONDS = env_int("DOCFLOW_PREPARE_LINGER_MS", 200) / 1000.0
DOCFLOW_CIRCUIT_FAILURE_THRESHOLD = env_int("DOCFLOW_CIRCUIT_FAILURE_THRESHOLD", 5)
DOCFLOW_CIRCUIT_COOLDOWN_SECONDS = env_int("DOCFLOW_CIRCUIT_COOLDOWN_SECONDS", 60)
DOCFLOW_SURGE_THRESHOLD = env_int("DOCFLOW_SURGE_THRESHOLD", 10)
DOCFLOW_SURGE_WINDOW_SECONDS = env_int("DOCFLOW_SURGE_WINDOW_SECONDS", 600)
DOCFLOW_TRACK_LOOP_SECONDS = env_int("DOCFLOW_TRACK_LOOP_SECONDS", 50)
# A scheduled tracker run that finds another at work stands by this long for its
# lease (a standby always waits, so a dead tracker is replaced within a lease); the
# loop and the standby together stay inside the task timeout. The standby spends
# one worker of some cluster (0: none, and a dead tracker is replaced by the next
# minute's run instead).
DOCFLOW_TRACK_STANDBY_SECONDS = env_int("DOCFLOW_TRACK_STANDBY_SECONDS", 50)
DOCFLOW_TRACK_ROUND_SECONDS = float(os.environ.get("DOCFLOW_TRACK_ROUND_SECONDS", "1"))
# Queued (by dotted name) when a new document is stored; empty turns it off.
DOCFLOW_PREPARE_TASK = os.environ.get(
    "DOCFLOW_PREPARE_TASK", "transmissions.tasks.prepare_document"
)

# Operations (issue 6): incidents, alerts, watchdog, surges, health and metrics.
# Alerts go to these addresses (comma-separated; empty: no email) and, as JSON, to
# this webhook (empty: none). Metadata only, never patient data.
DOCFLOW_OPS_ALERT_EMAILS = [
    a.strip()
    for a in os.environ.get("DOCFLOW_OPS_ALERT_EMAILS", "").split(",")
    if a.strip()
]
DOCFLOW_OPS_ALERT_FROM = os.environ.get("DOCFLOW_OPS_ALERT_FROM", "docflow@localhost")
DOCFLOW_OPS_WEBHOOK_URL = os.environ.get("DOCFLOW_OPS_WEBHOOK_URL", "")
DOCFLOW_OPS_WEBHOOK_TIMEOUT_SECONDS = float(
    os.environ.get("DOCFLOW_OPS_WEBHOOK_TIMEOUT_SECONDS", "5")
)
# An open (unacknowledged) incident still seen is reminded about at most this often.
DOCFLOW_OPS_REMINDER_SECONDS = env_int("DOCFLOW_OPS_REMINDER_SECONDS", 3600)
# Watchdog thresholds where a destination profile names none for a state.
DOCFLOW_OPS_DEFAULT_SECONDS_IN_STATE = {
    "ready": env_int("DOCFLOW_OPS_READY_SECONDS", 3600),
    "sending": env_int("DOCFLOW_OPS_SENDING_SECONDS", 300),
    "received": env_int("DOCFLOW_OPS_RECEIVED_SECONDS", 4 * 3600),
    "delivered": env_int("DOCFLOW_OPS_DELIVERED_SECONDS", 3 * 24 * 3600),
}
# Surges, over DOCFLOW_SURGE_WINDOW_SECONDS: at least MIN statuses of a kind making
# up at least RATE of all statuses seen in the window (per destination or type).
DOCFLOW_OPS_SYSTEM_ERROR_SURGE_MIN = env_int("DOCFLOW_OPS_SYSTEM_ERROR_SURGE_MIN", 10)
DOCFLOW_OPS_SYSTEM_ERROR_SURGE_RATE = float(
    os.environ.get("DOCFLOW_OPS_SYSTEM_ERROR_SURGE_RATE", "0.2")
)
DOCFLOW_OPS_REJECTION_SURGE_MIN = env_int("DOCFLOW_OPS_REJECTION_SURGE_MIN", 5)
DOCFLOW_OPS_REJECTION_SURGE_RATE = float(
    os.environ.get("DOCFLOW_OPS_REJECTION_SURGE_RATE", "0.5")
)
# Destination health over this window; a destination with this many documents
# unacknowledged past their profile's threshold is paused (when enabled).
DOCFLOW_OPS_HEALTH_WINDOW_SECONDS = env_int(
    "DOCFLOW_OPS_HEALTH_WINDOW_SECONDS", 7 * 24 * 3600
)
DOCFLOW_OPS_UNACKNOWLEDGED_PAUSE_THRESHOLD = env_int(
    "DOCFLOW_OPS_UNACKNOWLEDGED_PAUSE_THRESHOLD", 3
)
DOCFLOW_OPS_AUTO_PAUSE_DESTINATIONS = env_bool(
    "DOCFLOW_OPS_AUTO_PAUSE_DESTINATIONS", default=True
)
# /metrics: a bearer token (a secret: NAME or NAME_FILE) or, without one, loopback only.
DOCFLOW_METRICS_TOKEN = read_secret("DOCFLOW_METRICS_TOKEN") or ""
# /healthz/ready: queued work older than this is reported as a warning.
DOCFLOW_HEALTH_MAX_QUEUE_AGE_SECONDS = env_int(
    "DOCFLOW_HEALTH_MAX_QUEUE_AGE_SECONDS", 600
)

# --- Issue 5: retention and upload inspection (read with the same defaults in
# governance.retention and docflow.uploads.media; audit and access logs are kept, see
# governance.retention for the IG archive procedure) ---
DOCFLOW_RETENTION_INTERMEDIATE_DAYS = env_int("DOCFLOW_RETENTION_INTERMEDIATE_DAYS", 30)
DOCFLOW_RETENTION_FINISHED_DAYS = env_int("DOCFLOW_RETENTION_FINISHED_DAYS", 90)
DOCFLOW_RETENTION_AUDIT_DAYS = env_int("DOCFLOW_RETENTION_AUDIT_DAYS", 2922)
DOCFLOW_RETENTION_ACCESS_LOG_DAYS = env_int("DOCFLOW_RETENTION_ACCESS_LOG_DAYS", 2922)
DOCFLOW_UPLOAD_INSPECTION_SECONDS = float(
    os.environ.get("DOCFLOW_UPLOAD_INSPECTION_SECONDS", "10")
)
# --- end issue 5 ---

# --- Issue 13: nothing waits unseen (the watch of submitted documents and of failing
# tasks, liveness and readiness probes) and private local state files ---
# The application's state directory is created 0700 before anything writes there; the
# SQLite backend creates its database 0600 (its WAL, shared-memory and journal files
# take that mode). See docflow.state_files for why this is not a umask.
# A read-only tree in production, with state elsewhere, cannot have it: whatever
# writes under VAR_DIR then fails with its own error.
with contextlib.suppress(OSError):
    private_directory_ensure(VAR_DIR)
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["ENGINE"] = "docflow.sqlite_backend"
# A document still `submitted` (not prepared) after this long raises an incident (a
# destination profile's expected_seconds_in_state["submitted"] overrides it).
DOCFLOW_OPS_SUBMITTED_SECONDS = env_int("DOCFLOW_OPS_SUBMITTED_SECONDS", 300)
DOCFLOW_OPS_DEFAULT_SECONDS_IN_STATE["submitted"] = DOCFLOW_OPS_SUBMITTED_SECONDS
# Failed django-q tasks over this window: one incident per task function when one
# timed out, or when at least THRESHOLD of them failed; resolved once the window holds
# no failure of that function.
DOCFLOW_OPS_TASK_FAILURE_WINDOW_SECONDS = env_int(
    "DOCFLOW_OPS_TASK_FAILURE_WINDOW_SECONDS", 900
)
DOCFLOW_OPS_TASK_FAILURE_THRESHOLD = env_int("DOCFLOW_OPS_TASK_FAILURE_THRESHOLD", 3)
# Failed task rows (django-q2's, with their tracebacks) are pruned after this long.
DOCFLOW_OPS_TASK_FAILURE_KEEP_DAYS = env_int("DOCFLOW_OPS_TASK_FAILURE_KEEP_DAYS", 30)
# Connect's changes feed failing to read for this long raises an incident per
# sending organisation (documents are polled one by one meanwhile).
DOCFLOW_OPS_FEED_FAILING_SECONDS = env_int("DOCFLOW_OPS_FEED_FAILING_SECONDS", 300)
# A task running longer than this is stopped by django-q and recorded as failed.
Q_CLUSTER["timeout"] = env_int("Q_TIMEOUT", Q_CLUSTER["timeout"])
# django-q hands a task to another worker after `retry` s: never while it may run.
Q_CLUSTER["retry"] = max(Q_CLUSTER["retry"], Q_CLUSTER["timeout"] + 60)
# /healthz/ready's Connect probe: a TCP connection given this long (a warning only).
DOCFLOW_HEALTH_CONNECT_TIMEOUT_SECONDS = float(
    os.environ.get("DOCFLOW_HEALTH_CONNECT_TIMEOUT_SECONDS", "0.5")
)
# Probes come from the load balancer over plain HTTP, like /healthz.
SECURE_REDIRECT_EXEMPT = [*SECURE_REDIRECT_EXEMPT, r"^healthz/(live|ready)/?$"]
# --- end issue 13 (watch and state files) ---

# --- Issue 13: retries on time, a circuit per destination, claims under a lease
# (read in transmissions.pipeline.clock, engine.controls, engine.leases) ---
# The clock (a round of the tracker's loop) queues due retries, due circuit trials
# and expired claims this often; a retry it queued and nobody took is queued
# again after DOCFLOW_CLOCK_REQUEUE_SECONDS.
DOCFLOW_CLOCK_ROUND_SECONDS = float(os.environ.get("DOCFLOW_CLOCK_ROUND_SECONDS", "1"))
DOCFLOW_CLOCK_REQUEUE_SECONDS = env_int("DOCFLOW_CLOCK_REQUEUE_SECONDS", 30)
# A claim (a document in sending) is its worker's for this long, renewed every
# third of it while the worker lives; then the clock settles it by key.
DOCFLOW_SEND_LEASE_SECONDS = env_int("DOCFLOW_SEND_LEASE_SECONDS", 15)
# Singleton jobs (the tracker, the MESH inbox poll and handshake, the operations
# watch, the file-drop scanner...) run under a lease of this many seconds, renewed
# every third of it while the job runs: a dead holder's lease runs out within this
# long, and a waiting run (polling every DOCFLOW_LEASE_POLL_SECONDS) takes it over.
# Keep it well under 30 s: a standby takes over within a lease and a poll.
DOCFLOW_LEASE_SECONDS = float(os.environ.get("DOCFLOW_LEASE_SECONDS", "15"))
DOCFLOW_LEASE_POLL_SECONDS = float(os.environ.get("DOCFLOW_LEASE_POLL_SECONDS", "0.5"))
# This node's name on the leases it holds (default: the host's name); nodes that
# share a host (a rehearsal) set their own.
DOCFLOW_NODE_NAME = os.environ.get("DOCFLOW_NODE_NAME", "")
# This many destinations of one sending organisation with their circuit open at
# once open the circuit for its whole Connect endpoint.
DOCFLOW_CIRCUIT_ENDPOINT_DESTINATIONS = env_int(
    "DOCFLOW_CIRCUIT_ENDPOINT_DESTINATIONS", 3
)
# --- end issue 13 (sending) ---

# --- Bounded conversion and HTML intake checks (issue 13): HTML and images are
# converted outside the preparation batch, in a child process with the destination
# profile's limits, in at most DOCFLOW_CONVERSION_SLOTS places at once (fewer than
# the workers, across every cluster); intake refuses HTML past these bounds. ---
# Default: half the workers (2 of 4), so others are always free for PDFs.
DOCFLOW_CONVERSION_SLOTS = max(
    1, env_int("DOCFLOW_CONVERSION_SLOTS", max(1, Q_CLUSTER["workers"] // 2))
)
# Conversions started (a child or worker that died counts) before the document
# is held (CONVERSION_LIMIT, "attempts").
DOCFLOW_CONVERSION_MAX_ATTEMPTS = env_int("DOCFLOW_CONVERSION_MAX_ATTEMPTS", 2)
# A claimed conversion's lease: past the task timeout, its worker is gone.
DOCFLOW_CONVERSION_LEASE_SECONDS = env_int(
    "DOCFLOW_CONVERSION_LEASE_SECONDS", Q_CLUSTER["timeout"] + 10
)
# Scheduling priority given up by the conversion child (os.nice).
DOCFLOW_CONVERSION_NICE = env_int("DOCFLOW_CONVERSION_NICE", 10)
DOCFLOW_UPLOAD_HTML_MAX_BYTES = env_int("DOCFLOW_UPLOAD_HTML_MAX_BYTES", 2 * 2**20)
DOCFLOW_UPLOAD_HTML_MAX_ELEMENTS = env_int("DOCFLOW_UPLOAD_HTML_MAX_ELEMENTS", 10_000)
DOCFLOW_UPLOAD_HTML_MAX_DEPTH = env_int("DOCFLOW_UPLOAD_HTML_MAX_DEPTH", 100)
DOCFLOW_UPLOAD_HTML_MAX_TABLE_CELLS = env_int(
    "DOCFLOW_UPLOAD_HTML_MAX_TABLE_CELLS", 5_000
)
# Elements a forced page break could apply to (rules with break-before/after or
# page-break-before/after naming a page, counted over the elements they select).
DOCFLOW_UPLOAD_HTML_MAX_PAGE_BREAKS = env_int(
    "DOCFLOW_UPLOAD_HTML_MAX_PAGE_BREAKS", 500
)
DOCFLOW_UPLOAD_MAX_IMAGE_PIXELS = env_int(
    "DOCFLOW_UPLOAD_MAX_IMAGE_PIXELS", 100_000_000
)
# --- end bounded conversion ---

# --- PDS re-trace (issue 14): NHS England's Personal Demographics Service FHIR R4
# API, GET /Patient/{id} only (transmissions.pds). The real service is
# https://api.service.nhs.uk/personal-demographics/FHIR/R4 (https only); in
# development the PDS simulator on loopback (`manage.py pds_simulator`, started by
# scripts/run-dev). The access token is assumed ready-made (see
# transmissions.pds.client.PdsCredentials); none is sent when it is empty, as the
# sandbox and the simulator accept. A look-up waits at most DOCFLOW_PDS_TIMEOUT s.
DOCFLOW_PDS_BASE_URL = os.environ.get("DOCFLOW_PDS_BASE_URL", "http://127.0.0.1:8200")
DOCFLOW_PDS_TIMEOUT = float(os.environ.get("DOCFLOW_PDS_TIMEOUT", "10"))
DOCFLOW_PDS_ACCESS_TOKEN = read_secret("DOCFLOW_PDS_ACCESS_TOKEN") or ""
DOCFLOW_PDS_END_USER_ODS_CODE = os.environ.get("DOCFLOW_PDS_END_USER_ODS_CODE", "")
# --- end PDS re-trace ---

# Expected refusals (issue 14): Django logs every PermissionDenied on django.request
# with its traceback; the warning line is kept and the traceback dropped (only for
# 403s raised as PermissionDenied; errors keep theirs).
LOGGING["filters"]["expected_refusals"] = {
    "()": "docflow.refusal_logging.ExpectedRefusalFilter"
}
LOGGING["loggers"]["django.request"] = {"filters": ["expected_refusals"]}

# --- Work queue (issue 14): signing in lands on the work queue, the page staff work
# from, unless the sign-in link named another page (?next=).
LOGIN_REDIRECT_URL = "casework:queue"

# --- HL7 v2 MDM over MLLP and file drops (intake app): one source system per
# integration engine, configured in the admin (Intake channels). The listener
# (`manage.py mllp_listener`) takes plain MLLP on loopback only, and MLLP over TLS
# on DOCFLOW_MLLP_TLS_PORT when a certificate is given (client certificates checked
# against DOCFLOW_MLLP_TLS_CLIENT_CA; each source may require its own). A message
# is at most DOCFLOW_MLLP_MAX_MESSAGE_BYTES (the upload ceiling in base64, plus
# headers) and must arrive within DOCFLOW_MLLP_READ_TIMEOUT_SECONDS of its first
# byte; a connection idle for DOCFLOW_MLLP_IDLE_SECONDS is closed. Messages are
# handled by DOCFLOW_MLLP_PROCESSES single-threaded worker processes (0: by
# DOCFLOW_MLLP_WORKERS threads in the listener itself).
# `manage.py watch_folders` polls every source's drop folder.
INSTALLED_APPS += ["intake.apps.IntakeConfig"]
DOCFLOW_MLLP_HOST = os.environ.get("DOCFLOW_MLLP_HOST", "127.0.0.1")
DOCFLOW_MLLP_PORT = env_int("DOCFLOW_MLLP_PORT", 2575)
DOCFLOW_MLLP_TLS_HOST = os.environ.get("DOCFLOW_MLLP_TLS_HOST", "0.0.0.0")  # noqa: S104
DOCFLOW_MLLP_TLS_PORT = env_int("DOCFLOW_MLLP_TLS_PORT", 2576)
DOCFLOW_MLLP_TLS_CERT = os.environ.get("DOCFLOW_MLLP_TLS_CERT", "")
DOCFLOW_MLLP_TLS_KEY = os.environ.get("DOCFLOW_MLLP_TLS_KEY", "")
DOCFLOW_MLLP_TLS_CLIENT_CA = os.environ.get("DOCFLOW_MLLP_TLS_CLIENT_CA", "")
DOCFLOW_MLLP_MAX_MESSAGE_BYTES = env_int(
    "DOCFLOW_MLLP_MAX_MESSAGE_BYTES", DOCFLOW_MAX_UPLOAD_BYTES * 4 // 3 + 64 * 1024
)
DOCFLOW_MLLP_READ_TIMEOUT_SECONDS = float(
    os.environ.get("DOCFLOW_MLLP_READ_TIMEOUT_SECONDS", "30")
)
DOCFLOW_MLLP_IDLE_SECONDS = float(os.environ.get("DOCFLOW_MLLP_IDLE_SECONDS", "300"))
DOCFLOW_MLLP_WORKERS = env_int("DOCFLOW_MLLP_WORKERS", 8)
DOCFLOW_MLLP_PROCESSES = env_int("DOCFLOW_MLLP_PROCESSES", 4)
DOCFLOW_FILE_DROP_POLL_SECONDS = float(
    os.environ.get("DOCFLOW_FILE_DROP_POLL_SECONDS", "2")
)
# A file is taken only once its size has not changed for this long (or a .ready
# marker names it).
DOCFLOW_FILE_DROP_STABLE_SECONDS = float(
    os.environ.get("DOCFLOW_FILE_DROP_STABLE_SECONDS", "2")
)
# --- end HL7 v2 MDM over MLLP and file drops ---
# --- MESH as NHS England specifies it: GP Connect Send Document, a complete inbox,
# answers only from the right mailbox. A send is complete when both the
# infrastructure (20013) and the business acknowledgement have come; without them
# within DOCFLOW_MESH_ANSWER_DEADLINE_DAYS it is undelivered. Messages in our inbox
# that are not ours are recorded and then acknowledged ("acknowledge") or left for
# their owner ("keep"); a poll pages through the whole inbox, for at most
# DOCFLOW_MESH_POLL_BUDGET_SECONDS. Answers we cannot apply are kept (encrypted)
# for DOCFLOW_MESH_QUARANTINE_RETENTION_DAYS.
DOCFLOW_MESH_ANSWER_DEADLINE_DAYS = float(
    os.environ.get("DOCFLOW_MESH_ANSWER_DEADLINE_DAYS", "20")
)
DOCFLOW_MESH_NOT_OURS = os.environ.get("DOCFLOW_MESH_NOT_OURS", "acknowledge")
DOCFLOW_MESH_POLL_BUDGET_SECONDS = float(
    os.environ.get("DOCFLOW_MESH_POLL_BUDGET_SECONDS", "240")
)
DOCFLOW_MESH_QUARANTINE_RETENTION_DAYS = int(
    os.environ.get("DOCFLOW_MESH_QUARANTINE_RETENTION_DAYS", "2190")
)
# --- end MESH as specified ---
# --- Accessibility statement (/accessibility/): who runs the service and how to
# reach them, and the axe results the statement reports (the browser suite's last
# full run, committed; tests/e2e/test_accessibility.py with
# DOCFLOW_AXE_RESULTS_UPDATE=1 rewrites it).
DOCFLOW_SERVICE_OPERATOR = os.environ.get(
    "DOCFLOW_SERVICE_OPERATOR", "the NHS organisation that runs this service"
)
DOCFLOW_ACCESSIBILITY_CONTACT = os.environ.get(
    "DOCFLOW_ACCESSIBILITY_CONTACT", "your organisation's IT service desk"
)
DOCFLOW_ACCESSIBILITY_RESULTS = os.environ.get(
    "DOCFLOW_ACCESSIBILITY_RESULTS",
    str(BASE_DIR / "docflow" / "assurance" / "axe-results.json"),
)
# --- end accessibility statement ---
# --- Tamper-evident audit trail: signed checkpoints outside the database, and the
# migration owner apart from the application role. The checkpoint signing key is
# never a setting: DOCFLOW_AUDIT_SIGNING_KEY or DOCFLOW_AUDIT_SIGNING_KEY_FILE (see
# audit.signing); older public keys in DOCFLOW_AUDIT_TRUSTED_PUBLIC_KEYS.
# Audited writes: "deferred" inserts events unsealed (no chain lock) and the sealer
# (``manage.py audit_sealer``) chains them within seconds; "inline" chains each one
# under the head lock. Empty: deferred on PostgreSQL, inline on SQLite.
AUDIT_SEALING = os.environ.get("DOCFLOW_AUDIT_SEALING", "")
# An event unsealed for longer fails audit_verify and warns in readiness.
AUDIT_SEAL_MAX_LAG_SECONDS = env_int("DOCFLOW_AUDIT_SEAL_MAX_LAG_SECONDS", 60)
AUDIT_CHECKPOINT_SINK = os.environ.get("DOCFLOW_AUDIT_CHECKPOINT_SINK", "directory")
AUDIT_CHECKPOINT_DIR = Path(
    os.environ.get("DOCFLOW_AUDIT_CHECKPOINT_DIR", VAR_DIR / "audit-checkpoints")
)
AUDIT_CHECKPOINT_SYSLOG_ADDRESS = os.environ.get(
    "DOCFLOW_AUDIT_CHECKPOINT_SYSLOG_ADDRESS", "/dev/log"
)
# PostgreSQL: migrations run as this owner role (audit/management/commands/migrate.py)
# while DATABASE_URL names the application role, which owns nothing.
DATABASE_MIGRATION_URL = os.environ.get("DATABASE_MIGRATION_URL", "")
# --- end tamper-evident audit trail ---
# --- Protection at the door: rate limits and intake backpressure ---
# The shared cache: Redis when REDIS_URL is set (DOCFLOW_CACHE_REDIS_URL to use
# another database), so every web node counts against the same rate-limit window;
# else each process's own memory (development, one process).
DOCFLOW_CACHE_REDIS_URL = os.environ.get("DOCFLOW_CACHE_REDIS_URL", REDIS_URL)
if DOCFLOW_CACHE_REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": DOCFLOW_CACHE_REDIS_URL,
            "KEY_PREFIX": os.environ.get("DOCFLOW_CACHE_PREFIX", "docflow"),
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
# Requests per window ("600/min", "20/s", "10000/hour"; empty: no limit) for each
# API key, and for all the keys of one sending organisation together, on the REST
# API and FHIR; over it: 429 with Retry-After. See docflow.api.throttles.
DOCFLOW_API_RATE_PER_KEY = os.environ.get("DOCFLOW_API_RATE_PER_KEY", "600/min")
DOCFLOW_API_RATE_PER_SOURCE = os.environ.get("DOCFLOW_API_RATE_PER_SOURCE", "1200/min")
REST_FRAMEWORK["DEFAULT_THROTTLE_CLASSES"] = [
    "docflow.api.throttles.ApiKeyRateThrottle",
    "docflow.api.throttles.SourceRateThrottle",
]
# With this many documents (or more) submitted and waiting for preparation, intake
# (API, FHIR, MLLP, file drop) stores nothing new: the API answers 503 with
# Retry-After of DOCFLOW_INTAKE_BACKPRESSURE_RETRY_SECONDS, MLLP an AR to resend,
# the file drop leaves its files for a later pass. 0: never. See docflow.backpressure.
DOCFLOW_INTAKE_BACKPRESSURE_DEPTH = env_int("DOCFLOW_INTAKE_BACKPRESSURE_DEPTH", 5000)
DOCFLOW_INTAKE_BACKPRESSURE_RETRY_SECONDS = env_int(
    "DOCFLOW_INTAKE_BACKPRESSURE_RETRY_SECONDS", 30
)
# --- end protection at the door ---
