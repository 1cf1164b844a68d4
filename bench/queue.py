"""Work queue at scale: the queue and work item reads over a million documents.

Builds (once) a PostgreSQL database with ``--documents`` documents, one payload
version each, transmissions for the sent ones and ``--work-items`` active work items
on the documents that need attention, all bulk-loaded with COPY; then a second,
small database the same way. Against each it measures, in-process with Django's test
client as a staff user granted every team and sending organisation, the queue page
(first page in the default order, urgent first, then overdue, then oldest; a bucket;
a page deep into the keyset; the first page of each other order: oldest, newest, due
soonest) and the work item page, or the selectors those pages use when the pages
do not exist yet. Prints p50/p95/p99 server
time and the SQL statements per page for both datasets: the count must not grow with
the data. Run ``python bench/queue.py --help``.
"""

from __future__ import annotations

import sys
from pathlib import Path

# This file shares its name with the standard library's queue module, which psycopg
# and django-q import: keep its folder off the front of the path so they get theirs.
BENCH_DIR = Path(__file__).resolve().parent
sys.path[:] = [entry for entry in sys.path if Path(entry or ".").resolve() != BENCH_DIR]
sys.path.append(str(BENCH_DIR))

import argparse  # noqa: E402
import datetime  # noqa: E402
import importlib.util  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import random  # noqa: E402
import re  # noqa: E402
import secrets  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from collections.abc import Callable, Iterator  # noqa: E402
from dataclasses import dataclass  # noqa: E402

import psycopg  # noqa: E402
from psycopg import sql  # noqa: E402
from tqdm import tqdm  # noqa: E402

# bench/intake.py shares its name with the intake app: load it under another name.
_intake_spec = importlib.util.spec_from_file_location(
    "bench_intake", BENCH_DIR / "intake.py"
)
bench_intake = importlib.util.module_from_spec(_intake_spec)
sys.modules["bench_intake"] = bench_intake
_intake_spec.loader.exec_module(bench_intake)
ROOT = bench_intake.ROOT
ensure_database = bench_intake.ensure_database
log = bench_intake.log
new_payload_key_spec = bench_intake.new_payload_key_spec
percentile = bench_intake.percentile
redact = bench_intake.redact

sys.path.insert(0, str(ROOT))

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/docflow_bench_queue"
DEFAULT_SMALL_DATABASE_URL = (
    "postgres://postgres@127.0.0.1:5432/docflow_bench_queue_small"
)
TARGET_P95_MS = 200.0
SOURCE_SYSTEM = "bench-queue"
BENCH_USER = "bench-queue"
SENDING_ORGANISATIONS = 12
DESTINATIONS = 7000
CHUNK_ROWS = 5000
EPOCH = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
NULL = "\\N"  # COPY text format

# Attention states of the work item documents: (share, document status, category).
ATTENTION_MIX = [
    (0.15, "held", "preflight"),
    (0.20, "held", "send_failed"),
    (0.30, "rejected", "rejection"),
    (0.10, "system_error", "system_error"),
    (0.10, "outcome_unknown", "outcome_unknown"),
    (0.15, "undelivered", "undelivered"),
]
# Everything else: (share, document status). Most documents arrived long ago.
SETTLED_MIX = [
    (0.82, "accepted"),
    (0.09, "delivered"),
    (0.02, "received"),
    (0.03, "rejection_resolved"),
    (0.02, "cancelled"),
    (0.01, "ready"),
    (0.01, "submitted"),
]
# Reason codes the engine and Connect produce, per category (classified below by
# the seeded reference data, like the services do).
REASON_CODES = {
    "preflight": [
        "CONVERSION_FAILED",
        "TYPE_NOT_ALLOWED",
        "TOO_LARGE",
        "PDF_INVALID",
        "DEST_UNKNOWN",
        "DEST_INACTIVE",
        "DEST_NO_PROFILE",
    ],
    "send_failed": ["DC01", "DC02", "DC03", "RETRIES_EXHAUSTED", "AUTH_FAILED"],
    "outcome_unknown": ["TIMEOUT_AFTER_SEND", "TIMEOUT_AFTER_RESEND", "STUCK_SENDING"],
    "rejection": ["REJ01", "REJ02", "REJ03", "REJ04", "REJ05", "REJ06", "REJ07"],
    "system_error": ["5000", "7000"],
    "undelivered": ["NEVER_ACKNOWLEDGED", "NDR", "EXPIRED"],
}
# Connect status code and transmission state by document status; documents not
# listed were never sent (or, held before sending, never reached Connect).
SENT = {
    "received": (4002, "posted"),
    "delivered": (4003, "posted"),
    "accepted": (4010, "final"),
    "rejected": (4005, "final"),
    "rejection_resolved": (6000, "final"),
    "system_error": (5000, "final"),
    "undelivered": (4003, "final"),
    "outcome_unknown": (None, "pending"),
}
FAMILY_NAMES = ["Smith", "Jones", "Taylor", "Brown", "Williams", "Wilson", "Patel"]
GIVEN_NAMES = ["Olivia", "Amelia", "Isla", "Oliver", "George", "Arthur", "Noah"]
DOCUMENT_TYPES = [
    ("discharge_summary", "Discharge summary"),
    ("clinic_letter", "Clinic letter"),
    ("ed_attendance", "Emergency department attendance"),
    ("result", "Result"),
    ("referral", "Referral"),
]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=(
            "Benchmark the work queue and work item pages on PostgreSQL with a "
            f"million documents. Target: p95 < {TARGET_P95_MS:.0f} ms and a query "
            "count that does not grow with the data."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--documents", type=int, default=1_000_000, help="documents in the large set"
    )
    parser.add_argument(
        "--work-items",
        type=int,
        default=100_000,
        help="active work items, one per document in an attention state",
    )
    parser.add_argument(
        "--small-documents", type=int, default=10_000, help="documents in the small set"
    )
    parser.add_argument(
        "--small-work-items",
        type=int,
        default=1_000,
        help="work items in the small set",
    )
    parser.add_argument(
        "--caseworkers",
        type=int,
        default=4,
        help="staff users besides the measuring one, in both datasets (the pages "
        "list who may be given an item); more can be added to a built database",
    )
    parser.add_argument(
        "--requests", type=int, default=200, help="measured requests per page"
    )
    parser.add_argument(
        "--warmup", type=int, default=20, help="unmeasured requests per page first"
    )
    parser.add_argument(
        "--deep-pages",
        type=int,
        default=20,
        help="how many 'next' links to follow for the deep queue page",
    )
    parser.add_argument(
        "--page-size",
        type=int,
        default=50,
        help="rows per queue page when measuring the selectors",
    )
    parser.add_argument(
        "--measure",
        choices=("auto", "pages", "selectors", "both"),
        default="auto",
        help="the pages (casework:queue, casework:item), the selectors they use, "
        "or both; auto: the pages if their URLs exist, else the selectors",
    )
    parser.add_argument(
        "--database-url",
        default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_DATABASE_URL),
        help="the large database (created if missing; env BENCH_DATABASE_URL)",
    )
    parser.add_argument(
        "--small-database-url",
        default=DEFAULT_SMALL_DATABASE_URL,
        help="the small database, for comparing query counts",
    )
    parser.add_argument(
        "--no-small", action="store_true", help="skip the small dataset"
    )
    parser.add_argument(
        "--fresh", action="store_true", help="drop and rebuild both databases first"
    )
    parser.add_argument("--seed", type=int, default=4, help="random seed of the data")
    parser.add_argument(
        "--enforce-target",
        action="store_true",
        help="exit 3 when p95 or the query count target is missed",
    )
    args = parser.parse_args(argv)
    for name in ("documents", "small_documents", "requests", "page_size"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be positive")
    if args.work_items > args.documents or args.small_work_items > args.small_documents:
        parser.error("there cannot be more work items than documents")
    return args


# --- Django in this process ---------------------------------------------------


def configure_django(database_url: str, workdir: Path) -> None:
    """Production settings (DEBUG off, generated secrets) on the given database."""
    os.environ.update(
        DJANGO_SETTINGS_MODULE="docflow.settings",
        DATABASE_URL=database_url,
        DJANGO_DEBUG="0",
        # The bench's patients are of the test range, refused by default in production.
        DOCFLOW_ALLOW_TEST_NHS_NUMBERS="1",
        DJANGO_SECRET_KEY=secrets.token_urlsafe(50),
        DOCFLOW_PAYLOAD_KEYS=new_payload_key_spec(),
        DJANGO_ALLOWED_HOSTS="testserver",
        DOCFLOW_PAYLOAD_DIR=str(workdir / "payloads"),
        DOCFLOW_VAR_DIR=str(workdir),
        CONN_MAX_AGE="600",
        LOG_LEVEL="WARNING",
    )
    os.environ.pop("DJANGO_SECRET_KEY_FILE", None)
    os.environ.pop("DOCFLOW_PAYLOAD_KEYS_FILE", None)
    import django
    from django.conf import settings

    django.setup()
    # No collectstatic here: serve static URLs unhashed so templates render without
    # a manifest. Only URL building changes; nothing static is served or timed.
    settings.STORAGES["staticfiles"]["BACKEND"] = (
        "django.contrib.staticfiles.storage.StaticFilesStorage"
    )


def use_database(database_url: str) -> None:
    """Point Django's default connection at another database, as the test runner
    does when it switches to the test database."""
    import dj_database_url
    from django.contrib.contenttypes.models import ContentType
    from django.core.cache import cache
    from django.db import connection
    from guardian.shortcuts import clear_ct_cache

    connection.close()
    parsed = dj_database_url.parse(database_url)
    for key in ("NAME", "USER", "PASSWORD", "HOST", "PORT"):
        connection.settings_dict[key] = parsed[key]
    # Row ids differ between the databases: forget what was cached from the last
    # one (content types, django-guardian's permission types, its anonymous user).
    ContentType.objects.clear_cache()
    clear_ct_cache()
    cache.clear()


def migrate() -> None:
    from django.core.management import call_command

    call_command("migrate", interactive=False, verbosity=0)


# --- bulk load ----------------------------------------------------------------


def copy_text(value: str) -> str:
    """Escape a value for COPY's text format."""
    return (
        value.replace("\\", "\\\\")
        .replace("\t", "\\t")
        .replace("\n", "\\n")
        .replace("\r", "\\r")
    )


def timestamp(seconds: float) -> str:
    return (EPOCH + datetime.timedelta(seconds=seconds)).isoformat()


def urgent(n: int) -> bool:
    """One document in twenty is urgent (and so is its work item)."""
    return n % 20 == 0


def pick(rng: random.Random, mix: list[tuple]) -> tuple:
    """One entry of a (share, ...) list, by share."""
    point = rng.random()
    for entry in mix:
        point -= entry[0]
        if point < 0:
            return entry
    return mix[-1]


@dataclass(frozen=True)
class Classified:
    bucket_id: int | None
    team_id: int | None
    title: str
    actions_json: str
    is_clinical: bool
    due_hours: int | None


def classifications() -> dict[tuple[str, str], Classified]:
    """Every (category, code) the generator uses, through the real classifier."""
    from casework.classification import work_item_classify

    result = {}
    for category, codes in REASON_CODES.items():
        for code in codes:
            found = work_item_classify(category=category, reason_code=code)
            result[category, code] = Classified(
                bucket_id=found.bucket.pk if found.bucket else None,
                team_id=found.team.pk if found.team else None,
                title=copy_text(found.title),
                actions_json=copy_text(json.dumps(found.suggested_actions)),
                is_clinical=found.is_clinical,
                due_hours=found.bucket.due_within_hours if found.bucket else None,
            )
    return result


def copy_rows(
    conn: psycopg.Connection,
    *,
    table: str,
    columns: list[str],
    rows: Iterator[str],
    total: int,
) -> None:
    """COPY text lines (tab-separated, newline-terminated) into a table."""
    statement = f"COPY {table} ({', '.join(columns)}) FROM STDIN"
    with (
        conn.cursor() as cursor,
        cursor.copy(statement) as copy,
        tqdm(total=total, desc=table, unit="rows", unit_scale=True) as bar,
    ):
        chunk: list[str] = []
        for line in rows:
            chunk.append(line)
            if len(chunk) == CHUNK_ROWS:
                copy.write("".join(chunk))
                bar.update(len(chunk))
                chunk.clear()
        if chunk:
            copy.write("".join(chunk))
            bar.update(len(chunk))


@dataclass
class Plan:
    """The generated dataset: which document gets which status and problem."""

    documents: int
    statuses: list[str]  # index 0 unused; documents are numbered from 1
    categories: dict[int, str]  # document id -> category, for attention documents
    reasons: dict[int, str]
    created: list[float]


def make_plan(*, documents: int, work_items: int, seed: int) -> Plan:
    rng = random.Random(seed)
    span = 365 * 86400.0
    created = [0.0] + [
        span * index / documents + rng.uniform(0, 60) for index in range(1, documents)
    ]
    created.append(span)
    # Problems are recent: attention documents come from the last quarter.
    recent = range(
        max(1, documents + 1 - max(work_items * 4, documents // 4)), documents + 1
    )
    attention = set(rng.sample(recent, work_items))
    statuses = [""]
    categories: dict[int, str] = {}
    reasons: dict[int, str] = {}
    for index in range(1, documents + 1):
        if index in attention:
            _, status, category = pick(rng, ATTENTION_MIX)
            categories[index] = category
            reasons[index] = rng.choice(REASON_CODES[category])
        else:
            _, status = pick(rng, SETTLED_MIX)
        statuses.append(status)
    return Plan(documents, statuses, categories, reasons, created)


def build(conn: psycopg.Connection, *, plan: Plan, seed: int) -> None:
    """Load every table with COPY in one transaction, then fix sequences."""
    from django.contrib.auth import get_user_model

    from casework.models import WorkItemStatus

    rng = random.Random(seed + 1)
    now = time.time() - EPOCH.timestamp()
    classified = classifications()
    caseworkers = list(
        get_user_model()
        .objects.filter(username__startswith=f"{BENCH_USER}-caseworker")
        .values_list("pk", flat=True)
    )

    copy_rows(
        conn,
        table="docflow_sendingorganisation",
        columns=[
            "id",
            "ods_code",
            "name",
            "connect_client_id",
            "connect_secret_ref",
            "is_active",
            "created_at",
        ],
        rows=(
            f"{n}\tRQ{n:03d}\tBench Hospitals NHS Trust {n}\tclient-RQ{n:03d}\t\t"
            f"t\t{timestamp(0)}\n"
            for n in range(1, SENDING_ORGANISATIONS + 1)
        ),
        total=SENDING_ORGANISATIONS,
    )
    copy_rows(
        conn,
        table="docflow_organisation",
        columns=["id", "ods_code", "name", "status", "endpoint_type", "source"],
        rows=(
            f"{n}\tQ{n:05d}\tBench Practice {n}\t"
            f"{'inactive' if n % 50 == 0 else 'active'}\tdocman10\tods_import\n"
            for n in range(1, DESTINATIONS + 1)
        ),
        total=DESTINATIONS,
    )

    # Each document's type, which its transmission copies.
    kinds: list[str] = [""] * (plan.documents + 1)

    def documents() -> Iterator[str]:
        for n in range(1, plan.documents + 1):
            status = plan.statuses[n]
            created = plan.created[n]
            changed = timestamp(min(now, created + rng.uniform(60, 3 * 86400)))
            destination = rng.randint(1, DESTINATIONS)
            kind, description = rng.choice(DOCUMENT_TYPES)
            kinds[n] = kind
            born = datetime.date(1930, 1, 1) + datetime.timedelta(rng.randint(0, 30000))
            event = (EPOCH + datetime.timedelta(seconds=created)).date()
            yield (
                f"{n}\t{uuid.uuid4()}\t{SOURCE_SYSTEM}\tq-{n}\t{n:064x}\t"
                f"REF-{n:08d}\t{9_000_000_000 + n}\t{rng.choice(FAMILY_NAMES)}\t"
                f"{rng.choice(GIVEN_NAMES)}\t{born}\tUnknown\tMRN{n:08d}\t{kind}\t"
                f"{description}\t{event}\t\t\tCardiology\tDr Bench\t"
                f"Q{destination:05d}\t"
                f"{'t' if urgent(n) else 'f'}\tf\tf\t{'t' if n % 5 == 0 else 'f'}\t"
                f"{status}\t{changed}\t"
                f"{plan.reasons.get(n, '')}\t{timestamp(created)}\t{changed}\t"
                f"{destination}\t{1 + n % SENDING_ORGANISATIONS}\n"
            )

    copy_rows(
        conn,
        table="docflow_document",
        columns=[
            "id",
            "public_id",
            "source_system",
            "idempotency_key",
            "fingerprint",
            "source_reference",
            "nhs_number",
            "patient_family_name",
            "patient_given_names",
            "patient_birth_date",
            "patient_gender",
            "mrn",
            "document_type",
            "description",
            "event_date",
            "folder_name",
            "notes",
            "sender_department",
            "sender_person",
            "destination_ods_code",
            "urgent",
            "action_required",
            "medication_changed",
            "inpatient",
            "status",
            "status_changed_at",
            "status_reason",
            "created_at",
            "updated_at",
            "destination_id",
            "sending_organisation_id",
        ],
        rows=documents(),
        total=plan.documents,
    )
    # One original PDF per document; no blobs (the pages show metadata only), but
    # unique storage names as the constraint demands.
    copy_rows(
        conn,
        table="docflow_payloadversion",
        columns=[
            "id",
            "public_id",
            "stage",
            "media_type",
            "file_extension",
            "size_bytes",
            "sha256",
            "page_count",
            "key_id",
            "storage_name",
            "created_at",
            "document_id",
            # Remote resources an HTML conversion refused: none for PDFs.
            "refused_resources",
        ],
        rows=(
            f"{n}\t{uuid.uuid4()}\toriginal\tapplication/pdf\tpdf\t{100_000 + n % 900}"
            f"\t{n:064x}\t2\tbench\tbench-queue/{n:08d}\t{timestamp(plan.created[n])}"
            f"\t{n}\t[]\n"
            for n in range(1, plan.documents + 1)
        ),
        total=plan.documents,
    )

    sent = [
        n
        for n in range(1, plan.documents + 1)
        if plan.statuses[n] in SENT
        or (plan.statuses[n] == "held" and plan.categories.get(n) == "send_failed")
    ]

    def transmissions() -> Iterator[str]:
        for number, n in enumerate(sent, start=1):
            status = plan.statuses[n]
            code, state = SENT.get(status, (None, "abandoned"))
            posted = timestamp(plan.created[n] + 30)
            rejection = plan.reasons.get(n, "") if status == "rejected" else ""
            yield (
                f"{number}\t{uuid.uuid4()}\tconnect\tQ00001\tbench-{n}\t"
                f"{uuid.uuid4() if state != 'abandoned' else ''}\t"
                f"{NULL if code is None else code}\t{rejection}\t1\t{NULL}\t\t"
                f"{posted}\t{posted}\t{n}\t{n}\t{NULL}\t{posted}\t{NULL}\t"
                f"{NULL if state == 'abandoned' else posted}\t"
                f"{1 + n % SENDING_ORGANISATIONS}\t{state}\t\t\t\t\t{kinds[n]}\n"
            )

    copy_rows(
        conn,
        table="transmissions_transmission",
        columns=[
            "id",
            "public_id",
            "channel",
            "destination_ods_code",
            "idempotency_key",
            "external_id",
            "status_code",
            "rejection_code",
            "attempts",
            "next_poll_at",
            "last_error_class",
            "created_at",
            "updated_at",
            "document_id",
            "payload_version_id",
            "resend_of_id",
            "last_status_at",
            "next_attempt_at",
            "posted_at",
            "sending_organisation_id",
            "state",
            # Connect sends: no route reason, and nothing of MESH.
            "route_reason",
            "workflow_id",
            "recipient_mailbox",
            "mesh_status",
            "document_type",
        ],
        rows=transmissions(),
        total=len(sent),
    )

    # Work items, and their simple-history rows: created, and assigned for some.
    items = sorted(plan.categories)
    item_rows: list[str] = []
    history_rows: list[str] = []
    for number, n in enumerate(items, start=1):
        category = plan.categories[n]
        reason = plan.reasons[n]
        found = classified[category, reason]
        opened = min(now, plan.created[n] + rng.uniform(60, 3 * 86400))
        due = (
            timestamp(opened + found.due_hours * 3600)
            if found.due_hours is not None
            else NULL
        )
        assignee = (
            rng.choice(caseworkers) if caseworkers and rng.random() < 0.15 else None
        )
        # The row without its status and assignee, which differ per history row.
        head = f"{uuid.uuid4()}\t{category}\t{reason}\t"
        middle = f"\t{timestamp(opened)}\t{NULL}\t\t{n}\t"
        tail = (
            f"\t{NULL}\t{due}\t{'t' if found.is_clinical else 'f'}\t{found.title}"
            f"\t{{}}\t\t{found.actions_json}\t{found.team_id or NULL}\t"
            f"{found.bucket_id or NULL}\t{1 + n % SENDING_ORGANISATIONS}\t"
            f"{'t' if urgent(n) else 'f'}\t1"
        )
        status = WorkItemStatus.ASSIGNED if assignee else WorkItemStatus.OPEN
        item_rows.append(f"{number}\t{head}{status}{middle}{assignee or NULL}{tail}\n")
        history_rows.append(
            f"{number}\t{head}open{middle}{NULL}{tail}\t{len(history_rows) + 1}\t"
            f"{timestamp(opened)}\t{NULL}\t+\t{NULL}\n"
        )
        if assignee:
            history_rows.append(
                f"{number}\t{head}{status}{middle}{assignee}{tail}\t"
                f"{len(history_rows) + 1}\t{timestamp(min(now, opened + 3600))}\t"
                f"{NULL}\t~\t{assignee}\n"
            )
    item_columns = [
        "id",
        "public_id",
        "category",
        "reason_code",
        "status",
        "opened_at",
        "closed_at",
        "resolution",
        "document_id",
        "assignee_id",
        "closed_by_id",
        "due_at",
        "is_clinical",
        "reason_title",
        "resolution_details",
        "resolution_reason",
        "suggested_actions",
        "team_id",
        "bucket_id",
        # The document's sender and urgent flag, copied as
        # work_item_sync_for_document copies them.
        "sending_organisation_id",
        "urgent",
        # The first version of every item (casework.services.recording bumps it).
        "version",
    ]
    copy_rows(
        conn,
        table="casework_workitem",
        columns=item_columns,
        rows=iter(item_rows),
        total=len(item_rows),
    )
    copy_rows(
        conn,
        table="casework_historicalworkitem",
        columns=[
            *item_columns,
            "history_id",
            "history_date",
            "history_change_reason",
            "history_type",
            "history_user_id",
        ],
        rows=iter(history_rows),
        total=len(history_rows),
    )
    for table, column in [
        ("docflow_sendingorganisation", "id"),
        ("docflow_organisation", "id"),
        ("docflow_document", "id"),
        ("docflow_payloadversion", "id"),
        ("transmissions_transmission", "id"),
        ("casework_workitem", "id"),
        ("casework_historicalworkitem", "history_id"),
    ]:
        conn.execute(
            sql.SQL(
                "SELECT setval(pg_get_serial_sequence({table_name}, {column_name}), "
                "(SELECT max({column}) FROM {table}))"
            ).format(
                table_name=sql.Literal(table),
                column_name=sql.Literal(column),
                column=sql.Identifier(column),
                table=sql.Identifier(table),
            )
        )


def ensure_users(caseworkers: int) -> None:
    """The measuring user and a few caseworkers: Clinical admin, every team and
    sending organisation granted (django-guardian)."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group
    from guardian.shortcuts import assign_perm

    from casework.access import WORK_TEAM_ITEMS
    from casework.models import Team
    from docflow.models import SendingOrganisation
    from docflow.selectors import ACCESS_DOCUMENTS

    group = Group.objects.get(name="Clinical admin")
    teams = list(Team.objects.all())
    organisations = list(SendingOrganisation.objects.all())
    names = [BENCH_USER] + [
        f"{BENCH_USER}-caseworker-{n}" for n in range(1, caseworkers + 1)
    ]
    for name in names:
        user, created = get_user_model().objects.get_or_create(
            username=name, defaults={"is_staff": True, "is_active": True}
        )
        if created:
            user.groups.add(group)
            for team in teams:
                assign_perm(WORK_TEAM_ITEMS, user, team)
            for organisation in organisations:
                assign_perm(ACCESS_DOCUMENTS, user, organisation)


def grant_organisations() -> None:
    """Grant sending organisations loaded after the users were made."""
    from django.contrib.auth import get_user_model
    from guardian.shortcuts import assign_perm

    from docflow.models import SendingOrganisation
    from docflow.selectors import ACCESS_DOCUMENTS

    organisations = list(SendingOrganisation.objects.all())
    for user in get_user_model().objects.filter(username__startswith=BENCH_USER):
        for organisation in organisations:
            assign_perm(ACCESS_DOCUMENTS, user, organisation)


def prepare(
    url: str,
    *,
    documents: int,
    work_items: int,
    caseworkers: int,
    fresh: bool,
    seed: int,
):
    """Create, migrate and (once) load one database; returns its build seconds."""
    description = ensure_database(url, fresh=fresh)
    use_database(url)
    log(f"migrating {redact(url)}")
    migrate()
    with psycopg.connect(url) as conn:
        have_documents, have_items = conn.execute(
            "SELECT (SELECT count(*) FROM docflow_document WHERE source_system = %s),"
            " (SELECT count(*) FROM casework_workitem)",
            (SOURCE_SYSTEM,),
        ).fetchone()
    if (have_documents, have_items) == (documents, work_items):
        log(f"{redact(url)} already holds the dataset; skipping the build")
        ensure_users(caseworkers)
        # A migration may just have rewritten rows (casework.0006 fills in every
        # item's sending organisation): vacuum and analyse as after a build, so
        # index-only scans and plans see what a freshly built database shows.
        log("VACUUM ANALYZE")
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("VACUUM ANALYZE")
        return description, None
    if have_documents or have_items:
        raise SystemExit(
            f"{redact(url)} holds {have_documents} documents and {have_items} work "
            f"items, not {documents} and {work_items}: rerun with --fresh"
        )
    ensure_users(caseworkers)
    started = time.perf_counter()
    log(f"planning {documents} documents and {work_items} work items")
    plan = make_plan(documents=documents, work_items=work_items, seed=seed)
    with psycopg.connect(url) as conn:
        build(conn, plan=plan, seed=seed)
    grant_organisations()
    # COPY saved no item through the model: count the queue's kept counts once, as
    # migration casework.0014 does for the items there already are.
    from casework.counting import work_item_counts_rebuild

    log(f"counted the work items into {work_item_counts_rebuild()} count rows")
    log("ANALYZE")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")
    return description, time.perf_counter() - started


# --- measurement --------------------------------------------------------------


@dataclass
class Figures:
    name: str
    what: str
    times_ms: list[float]
    cpu_ms: list[float]
    queries: int

    def line(self) -> str:
        ordered = sorted(self.times_ms)
        p50, p95, p99 = (percentile(ordered, f) for f in (0.50, 0.95, 0.99))
        cpu = percentile(sorted(self.cpu_ms), 0.50)
        return (
            f"    {self.name:<20} p50 {p50:6.1f}  p95 {p95:6.1f}  p99 {p99:6.1f}  "
            f"max {ordered[-1]:6.1f} ms  cpu p50 {cpu:5.1f} ms  "
            f"queries {self.queries:3d}  ({self.what})"
        )

    @property
    def p95(self) -> float:
        return percentile(sorted(self.times_ms), 0.95)


def timed(
    name: str,
    what: str,
    calls: list[Callable[[], object]],
    *,
    warmup: int,
    requests: int,
) -> Figures:
    """Time ``requests`` calls (cycling through ``calls``) after ``warmup`` ones;
    count the statements of one call separately, so counting costs no time."""
    from django.db import connection, reset_queries
    from django.test.utils import CaptureQueriesContext

    log(f"  {name}: {warmup} warm-up, then {requests} timed")
    for index in range(warmup):
        calls[index % len(calls)]()
    # The log is a bounded deque: once full (migrate fills it), its length stops
    # growing and CaptureQueriesContext would count nothing.
    reset_queries()
    with CaptureQueriesContext(connection) as captured:
        calls[0]()
    # Read now: the next request's request_started signal empties the log.
    queries = len(captured.captured_queries)
    times, cpu = [], []
    for index in range(requests):
        started, started_cpu = time.perf_counter(), time.process_time()
        calls[index % len(calls)]()
        times.append((time.perf_counter() - started) * 1000)
        cpu.append((time.process_time() - started_cpu) * 1000)
    return Figures(name, what, times, cpu, queries)


def pages_exist() -> bool:
    from django.urls import NoReverseMatch, reverse

    try:
        reverse("casework:queue")
        reverse("casework:item", kwargs={"public_id": uuid.uuid4()})
    except NoReverseMatch:
        return False
    return True


NEXT_LINK = re.compile(
    r"""<a\b[^>]*\brel=["']next["'][^>]*\bhref=["']([^"']+)["']"""
    r"""|<a\b[^>]*\bhref=["']([^"']*\b(?:after|cursor)=[^"']+)["']""",
    re.IGNORECASE,
)


def measure_pages(args: argparse.Namespace, user, sample: list) -> list[Figures]:
    """The queue and work item pages through the test client, logged in."""
    import html

    from django.test import Client
    from django.urls import reverse

    client = Client()
    client.force_login(user)
    queue = reverse("casework:queue")

    def get(url: str) -> Callable[[], object]:
        def call():
            # Over HTTPS, as production serves the pages (plain HTTP is redirected).
            response = client.get(url, secure=True)
            if response.status_code != 200:
                raise SystemExit(f"GET {url} answered {response.status_code}")
            return response

        return call

    deep = queue
    followed = 0
    for _ in range(args.deep_pages):
        found = NEXT_LINK.search(get(deep)().content.decode())
        if not found:
            break
        link = html.unescape(found.group(1) or found.group(2))
        deep = link if link.startswith("/") else f"{queue}{link}"
        followed += 1
    common = {"warmup": args.warmup, "requests": args.requests}
    figures = [
        timed("queue page", "first page", [get(queue)], **common),
        timed(
            "queue page, bucket",
            "?bucket=clinical",
            [get(f"{queue}?bucket=clinical")],
            **common,
        ),
        timed(
            "queue page, deep",
            f"after following 'next' {followed} times",
            [get(deep)],
            **common,
        ),
        *[
            timed(
                f"queue page, {sort}",
                f"?sort={sort}",
                [get(f"{queue}?sort={sort}")],
                **common,
            )
            for sort in ("oldest", "newest", "due")
        ],
        timed(
            "work item page",
            f"{len(sample)} items in turn",
            [get(reverse("casework:item", kwargs={"public_id": i})) for i in sample],
            **common,
        ),
    ]
    if followed < args.deep_pages:
        log(f"found only {followed} 'next' links on the queue page")
    return figures


def measure_selectors(args: argparse.Namespace, user, sample: list) -> list[Figures]:
    """What the pages call: one page of items with the counts per bucket
    (``work_queue_page``); one item with its actions, assignees, timeline, events,
    transmissions and history (``work_item_page``)."""
    from casework.selectors import (
        WorkItemFilters,
        work_item_page,
        work_queue_page,
    )

    size = args.page_size

    def queue_call(filters: WorkItemFilters, after=None) -> Callable[[], object]:
        def call():
            return work_queue_page(user=user, filters=filters, size=size, after=after)

        return call

    def item_call(public_id) -> Callable[[], object]:
        def call():
            return work_item_page(user=user, public_id=public_id)

        return call

    deep = None
    for _ in range(args.deep_pages):
        page = work_queue_page(
            user=user, filters=WorkItemFilters(), size=size, after=deep
        )
        if page.next_position is None:
            break
        deep = page.next_position
    common = {"warmup": args.warmup, "requests": args.requests}
    return [
        timed(
            "queue selectors",
            f"first {size}, bucket counts",
            [queue_call(WorkItemFilters())],
            **common,
        ),
        timed(
            "queue sel., bucket",
            "bucket=clinical",
            [queue_call(WorkItemFilters(bucket="clinical"))],
            **common,
        ),
        timed(
            "queue sel., deep",
            f"page {args.deep_pages + 1} by keyset",
            [queue_call(WorkItemFilters(), deep)],
            **common,
        ),
        timed(
            "work item selectors",
            f"item and its lists; {len(sample)} items in turn",
            [item_call(public_id) for public_id in sample],
            **common,
        ),
    ]


def measure(args: argparse.Namespace, url: str, mode: str) -> list[Figures]:
    from django.contrib.auth import get_user_model

    from casework.models import ACTIVE_STATUSES, WorkItem

    use_database(url)
    user = get_user_model().objects.get(username=BENCH_USER)
    ids = list(
        WorkItem.objects.filter(status__in=ACTIVE_STATUSES).values_list(
            "public_id", flat=True
        )
    )
    sample = random.Random(args.seed).sample(ids, min(len(ids), args.requests))
    figures: list[Figures] = []
    if mode in ("pages", "both"):
        log(f"measuring the pages on {redact(url)}")
        figures += measure_pages(args, user, sample)
    if mode in ("selectors", "both"):
        log(f"measuring the selectors on {redact(url)}")
        figures += measure_selectors(args, user, sample)
    return figures


def table_sizes(url: str) -> str:
    with psycopg.connect(url) as conn:
        documents, items, transmissions, history = conn.execute(
            "SELECT (SELECT count(*) FROM docflow_document),"
            " (SELECT count(*) FROM casework_workitem WHERE status IN"
            " ('open', 'assigned')),"
            " (SELECT count(*) FROM transmissions_transmission),"
            " (SELECT count(*) FROM casework_historicalworkitem)"
        ).fetchone()
        size = conn.execute("SELECT pg_database_size(current_database())").fetchone()
    return (
        f"{documents:,} documents, {items:,} active work items, "
        f"{transmissions:,} transmissions, {history:,} item history rows, "
        f"{size[0] / 2**30:.1f} GiB"
    )


# --- main ---------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="docflow-bench-queue-"))
    configure_django(args.database_url, workdir)
    datasets = [("large", args.database_url, args.documents, args.work_items)]
    if not args.no_small:
        datasets.append(
            (
                "small",
                args.small_database_url,
                args.small_documents,
                args.small_work_items,
            )
        )
    built = {}
    for label, url, documents, items in datasets:
        built[label] = prepare(
            url,
            documents=documents,
            work_items=items,
            caseworkers=args.caseworkers,
            fresh=args.fresh,
            seed=args.seed,
        )
    use_database(args.database_url)
    mode = args.measure
    if mode == "auto":
        mode = "pages" if pages_exist() else "selectors"
    elif mode in ("pages", "both") and not pages_exist():
        raise SystemExit("casework:queue or casework:item is not a URL yet")
    load_before = os.getloadavg()[0]
    results = {label: measure(args, url, mode) for label, url, _, _ in datasets}
    load_after = os.getloadavg()[0]

    large = results["large"]
    lines = [
        "docflow work queue benchmark",
        f"  measured       {mode}, Django test client in-process, DEBUG off, "
        f"{args.requests} requests each after {args.warmup} warm-up",
        f"  user           {BENCH_USER}: Clinical admin, every team and sending "
        "organisation granted (not a superuser)",
        f"  machine        {os.cpu_count()} cores, load average {load_before:.1f} "
        f"before and {load_after:.1f} after measuring (cpu: this process only, "
        "PostgreSQL excluded)",
    ]
    for label, url, _, _ in datasets:
        description, seconds = built[label]
        build = "already built" if seconds is None else f"built in {seconds:.0f} s"
        lines += [
            f"  {label:<14} {table_sizes(url)}; {build}",
            f"                 {description}, {redact(url)}",
        ]
        lines += [figures.line() for figures in results[label]]
    met_time = all(figures.p95 < TARGET_P95_MS for figures in large)
    if "small" in results:
        same = all(
            big.queries == small.queries
            for big, small in zip(large, results["small"], strict=True)
        )
        counts = "same on both datasets" if same else "DIFFERENT between datasets"
    else:
        same, counts = True, "not compared (--no-small)"
    lines += [
        f"  query counts   {counts}",
        f"  target         p95 < {TARGET_P95_MS:.0f} ms on the large dataset and "
        "query counts independent of the data: "
        + ("met" if met_time and same else "NOT met"),
    ]
    print("\n".join(lines), flush=True)
    if args.enforce_target and not (met_time and same):
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
