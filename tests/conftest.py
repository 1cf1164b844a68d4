"""Suite-wide fixtures: payload storage in a temp dir, API clients, DB vendor checks."""

from __future__ import annotations

import pytest
from django.db import connection
from rest_framework.test import APIClient

from tests.factories import SendingOrganisationFactory, make_api_key

pytest_plugins = ["tests.nhs_number_log_guard", "tests.pds_simulator"]

# Data migrations whose rows a transactional test's flush removes, in order.
SEEDING_MIGRATIONS = (
    ("audit.migrations.0002_chain_head_and_append_only_triggers", "seed_head"),
    ("docflow.migrations.0002_destination_profiles_and_roles", "seed"),
    ("docflow.migrations.0003_security_roles", "seed"),
    ("docflow.migrations.0006_patient_identity_and_clinical_admin_content", "seed"),
    ("casework.migrations.0003_seed_classification_and_roles", "seed"),
    ("casework.migrations.0008_mesh_reasons", "seed"),
    ("casework.migrations.0009_conversion_reasons", "seed"),
    ("casework.migrations.0010_patient_trace", "seed"),
    ("casework.migrations.0012_reason_action_class_and_connect_reasons", "seed"),
    ("operations.migrations.0002_operations_permissions", "seed"),
    ("intake.migrations.0002_intake_permissions", "seed"),
    ("transmissions.migrations.0010_quarantined_answer_view_permission", "seed"),
    ("transmissions.migrations.0011_quarantined_answer_resolve_permission", "seed"),
)


def reference_data_seed() -> None:
    """Apply every seeding migration's function again (each is idempotent)."""
    import importlib

    from django.apps import apps
    from django.contrib.contenttypes.models import ContentType
    from guardian.shortcuts import clear_ct_cache

    # A flush renumbers content types: forget the ids cached before it (Django's
    # and django-guardian's own cache), or permission checks look up stale ones.
    ContentType.objects.clear_cache()
    clear_ct_cache()
    for module_name, function_name in SEEDING_MIGRATIONS:
        module = importlib.import_module(module_name)
        getattr(module, function_name)(apps, None)


@pytest.fixture
def reference_data(transactional_db):
    """Destination profiles, role groups, casework buckets and reasons, and the audit
    chain head, as the migrations seeded them. Transactional tests start after other
    transactional tests have flushed the database, so they ask for this."""
    reference_data_seed()


@pytest.fixture(autouse=True)
def _audit_sealed_inline(settings):
    """Audit events are chained as they are written, so a test reads an event's
    sequence at once; the sealer's own tests (tests/audit/test_sealing.py) and the
    tamper suite's deferred runs set ``AUDIT_SEALING = "deferred"``."""
    settings.AUDIT_SEALING = "inline"


@pytest.fixture(autouse=True)
def _audit_checkpoints_in_tmp(settings, tmp_path, monkeypatch):
    """Each test publishes signed audit checkpoints into its own directory, and signs
    with no key unless it sets one."""
    settings.AUDIT_CHECKPOINT_SINK = "directory"
    settings.AUDIT_CHECKPOINT_DIR = tmp_path / "audit-checkpoints"
    for name in (
        "DOCFLOW_AUDIT_SIGNING_KEY",
        "DOCFLOW_AUDIT_SIGNING_KEY_FILE",
        "DOCFLOW_AUDIT_TRUSTED_PUBLIC_KEYS",
    ):
        monkeypatch.delenv(name, raising=False)
    return settings.AUDIT_CHECKPOINT_DIR


@pytest.fixture(autouse=True)
def _payloads_in_tmp(settings, tmp_path):
    """Each test writes encrypted payloads into its own directory."""
    storages = dict(settings.STORAGES)
    storages["payloads"] = {
        **storages["payloads"],
        "OPTIONS": {
            **storages["payloads"]["OPTIONS"],
            "location": str(tmp_path / "payloads"),
        },
    }
    settings.STORAGES = storages
    from django.core.files.storage import storages as storage_handler

    storage_handler._storages = {}
    storage_handler.backends = storages
    yield tmp_path / "payloads"
    storage_handler._storages = {}


@pytest.fixture
def filesystem_payload_store(settings, _payloads_in_tmp):
    """Payload blobs as files (the SQLite default) whatever the database: for tests
    that look at the files themselves. Returns their directory."""
    settings.DOCFLOW_PAYLOAD_STORE = "filesystem"
    return _payloads_in_tmp


@pytest.fixture
def database_payload_store(settings):
    """Payload blobs as database rows (the PostgreSQL default) whatever the database."""
    settings.DOCFLOW_PAYLOAD_STORE = "database"


@pytest.fixture(autouse=True)
def _rate_limit_windows_fresh():
    """Each test starts with empty rate-limit windows (ids repeat between tests).
    Only the in-process cache is cleared: a Redis cache may be shared."""
    from django.core.cache import caches
    from django.core.cache.backends.locmem import LocMemCache

    if isinstance(caches["default"], LocMemCache):
        caches["default"].clear()


@pytest.fixture
def sending_organisation(db):
    return SendingOrganisationFactory(
        ods_code="RX1", name="Example Hospitals NHS Trust"
    )


@pytest.fixture
def api_key(sending_organisation):
    return make_api_key(sending_organisation=sending_organisation)


@pytest.fixture
def api_client(api_key):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {api_key[1]}")
    return client


def pytest_collection_modifyitems(config, items):
    """Tests marked ``postgres`` run only when DATABASE_URL points at PostgreSQL."""
    from django.conf import settings

    engine = settings.DATABASES["default"]["ENGINE"]
    if "postgresql" in engine:
        return
    skip = pytest.mark.skip(reason="needs PostgreSQL (set DATABASE_URL)")
    for item in items:
        if "postgres" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def on_postgres() -> bool:
    return connection.vendor == "postgresql"


@pytest.fixture(scope="session", autouse=True)
def _test_flush_gets_past_the_audit_truncate_guard():
    """Transactional tests end with a flush (TRUNCATE of every table). On PostgreSQL
    the audit tables refuse TRUNCATE unless the owner's own transaction says it is a
    maintenance flush; the test database is the owner's, so its flush says so."""
    from django.db.backends.postgresql.operations import DatabaseOperations

    original = DatabaseOperations.sql_flush

    def sql_flush(self, style, tables, *, reset_sequences=False, allow_cascade=False):
        statements = original(
            self,
            style,
            tables,
            reset_sequences=reset_sequences,
            allow_cascade=allow_cascade,
        )
        if not statements:
            return statements
        return ["SET LOCAL docflow.audit_truncate_allowed = 'on'", *statements]

    DatabaseOperations.sql_flush = sql_flush
    yield
    DatabaseOperations.sql_flush = original
