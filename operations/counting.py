"""Documents by state and destination, kept in step with the documents instead of
counted from them on every watch run.

A trigger on ``docflow_document`` appends, in the transaction of the change, a -1 row
for the key (state, destination id, destination ODS code) a document leaves and a +1
row for the key it enters, whatever wrote it: the lifecycle services, a bulk
``QuerySet.update``, a COPY, a retention purge. On PostgreSQL it is one trigger per
statement over its transition tables (a batch of a thousand edges appends one row per
key it touched, not two per document); on SQLite a trigger per row. Rows are only
appended, so two writers never wait on one counter. Beside the per-destination
rows, each change appends to its state's total (destination id -1), so the counts
by state read a few rows whatever the number of destinations.
``document_counts_fold`` (run by the operations watch under its lease) folds the
rows appended since the last fold into one row per key: its cost follows what
changed, not the number of documents.

The watch reads these counts for the totals by state, and by state and destination,
and subtracts the documents that entered a state after its threshold's cut (a range
of the (status, status_changed_at) index, as long as the threshold): what is left is
the number over the threshold, read without touching the old documents.
"""

from __future__ import annotations

from collections import defaultdict

from django.db import connection, transaction
from django.db.models import QuerySet, Sum

from operations.models import DocumentCount

KEY = ("status", "destination_id", "destination_ods_code")

# destination_id -1 marks a state's total (every destination), kept beside the
# per-destination rows so the counts by state read a few rows.
STATE_TOTAL = -1
_PG_MOVES_INSERT = """
        INSERT INTO operations_documentcount
            (status, destination_id, destination_ods_code, delta, folded)
        SELECT status, coalesce(destination_id, -1),
               coalesce(destination_ods_code, ''), sum(delta), false
        FROM moves
        GROUP BY GROUPING SETS ((status, destination_id, destination_ods_code),
                                (status))
        HAVING sum(delta) <> 0;
"""
_PG_FUNCTION = """
CREATE OR REPLACE FUNCTION operations_document_count() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        WITH moves AS (
            SELECT status, coalesce(destination_id, 0) AS destination_id,
                   destination_ods_code, 1 AS delta FROM new_rows
        ) MOVES_INSERT
    ELSIF TG_OP = 'DELETE' THEN
        WITH moves AS (
            SELECT status, coalesce(destination_id, 0) AS destination_id,
                   destination_ods_code, -1 AS delta FROM old_rows
        ) MOVES_INSERT
    ELSE
        -- Rows whose key did not change cancel out: only moves are appended.
        WITH moves AS (
            SELECT status, coalesce(destination_id, 0) AS destination_id,
                   destination_ods_code, -1 AS delta FROM old_rows
            UNION ALL
            SELECT status, coalesce(destination_id, 0), destination_ods_code, 1
            FROM new_rows
        ) MOVES_INSERT
    END IF;
    RETURN NULL;
END $$;
""".replace("MOVES_INSERT", _PG_MOVES_INSERT.strip())
_PG_TRIGGERS = [
    _PG_FUNCTION,
    "CREATE TRIGGER operations_document_count_insert AFTER INSERT ON docflow_document"
    " REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT"
    " EXECUTE FUNCTION operations_document_count()",
    "CREATE TRIGGER operations_document_count_update AFTER UPDATE ON docflow_document"
    " REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT"
    " EXECUTE FUNCTION operations_document_count()",
    "CREATE TRIGGER operations_document_count_delete AFTER DELETE ON docflow_document"
    " REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT"
    " EXECUTE FUNCTION operations_document_count()",
]
_PG_DROP = [
    "DROP TRIGGER IF EXISTS operations_document_count_insert ON docflow_document",
    "DROP TRIGGER IF EXISTS operations_document_count_update ON docflow_document",
    "DROP TRIGGER IF EXISTS operations_document_count_delete ON docflow_document",
    "DROP FUNCTION IF EXISTS operations_document_count()",
]


_SQLITE_INSERT_NEW = (
    "INSERT INTO operations_documentcount (status, destination_id,"
    " destination_ods_code, delta, folded) VALUES (NEW.status,"
    " coalesce(NEW.destination_id, 0), NEW.destination_ods_code, 1, 0);"
)
_SQLITE_INSERT_OLD = (
    "INSERT INTO operations_documentcount (status, destination_id,"
    " destination_ods_code, delta, folded) VALUES (OLD.status,"
    " coalesce(OLD.destination_id, 0), OLD.destination_ods_code, -1, 0);"
)
_SQLITE_TOTAL_NEW = (
    "INSERT INTO operations_documentcount (status, destination_id,"
    " destination_ods_code, delta, folded) VALUES (NEW.status, -1, '', 1, 0);"
)
_SQLITE_TOTAL_OLD = (
    "INSERT INTO operations_documentcount (status, destination_id,"
    " destination_ods_code, delta, folded) VALUES (OLD.status, -1, '', -1, 0);"
)
_SQLITE_TRIGGERS = [
    "CREATE TRIGGER operations_document_count_insert AFTER INSERT ON docflow_document"
    f" BEGIN {_SQLITE_INSERT_NEW} {_SQLITE_TOTAL_NEW} END",
    "CREATE TRIGGER operations_document_count_update AFTER UPDATE OF status,"
    " destination_id, destination_ods_code ON docflow_document"
    " WHEN OLD.status IS NOT NEW.status OR OLD.destination_id IS NOT"
    " NEW.destination_id OR OLD.destination_ods_code IS NOT NEW.destination_ods_code"
    f" BEGIN {_SQLITE_INSERT_OLD} {_SQLITE_INSERT_NEW}"
    f" {_SQLITE_TOTAL_OLD} {_SQLITE_TOTAL_NEW} END",
    "CREATE TRIGGER operations_document_count_delete AFTER DELETE ON docflow_document"
    f" BEGIN {_SQLITE_INSERT_OLD} {_SQLITE_TOTAL_OLD} END",
]
_SQLITE_DROP = [
    "DROP TRIGGER IF EXISTS operations_document_count_insert",
    "DROP TRIGGER IF EXISTS operations_document_count_update",
    "DROP TRIGGER IF EXISTS operations_document_count_delete",
]


def trigger_statements(vendor: str) -> list[str]:
    """The statements that create the counting triggers on this database."""
    return _PG_TRIGGERS if vendor == "postgresql" else _SQLITE_TRIGGERS


def trigger_drop_statements(vendor: str) -> list[str]:
    return _PG_DROP if vendor == "postgresql" else _SQLITE_DROP


def document_counts_rebuild(*, using=None) -> int:
    """Count every document once into one folded row per key (after a restore, or
    to check the kept counts); returns the number of keys. Locks the counts table
    for the transaction so no change is counted twice or lost."""
    db = connection if using is None else using
    with transaction.atomic(), db.cursor() as cursor:
        if db.vendor == "postgresql":
            cursor.execute("LOCK TABLE operations_documentcount IN EXCLUSIVE MODE")
            # Documents may move meanwhile: share mode waits for writers in flight
            # and holds new ones until this commits.
            cursor.execute("LOCK TABLE docflow_document IN SHARE MODE")
        cursor.execute("DELETE FROM operations_documentcount")
        cursor.execute(
            "INSERT INTO operations_documentcount (status, destination_id,"
            " destination_ods_code, delta, folded)"
            " SELECT status, coalesce(destination_id, 0),"
            " destination_ods_code, count(*), %s FROM docflow_document"
            " GROUP BY 1, 2, 3",
            [True],
        )
        keys = cursor.rowcount
        cursor.execute(
            "INSERT INTO operations_documentcount (status, destination_id,"
            " destination_ods_code, delta, folded)"
            " SELECT status, %s, '', count(*), %s FROM docflow_document"
            " GROUP BY 1",
            [STATE_TOTAL, True],
        )
        return keys


def document_counts_fold() -> int:
    """Fold the rows appended since the last fold into one row per key (keys that
    sum to zero disappear); returns the number of rows read. Reads only the keys
    touched since then (the unfolded rows' partial index). Run by one process at a
    time (the watch, under its lease)."""
    with transaction.atomic():
        touched = set(
            DocumentCount.objects.filter(folded=False)
            .values_list(*KEY)
            .distinct()
            .order_by()
        )
        if not touched:
            return 0
        totals: dict[tuple, int] = defaultdict(int)
        ids = []
        statuses = {key[0] for key in touched}
        for row in (
            DocumentCount.objects.select_for_update()
            .filter(status__in=statuses)
            .filter(
                destination_id__in={key[1] for key in touched},
                destination_ods_code__in={key[2] for key in touched},
            )
            .values_list("id", *KEY, "delta")
        ):
            pk, *key, delta = row
            if tuple(key) in touched:
                ids.append(pk)
                totals[tuple(key)] += delta
        DocumentCount.objects.filter(id__in=ids).delete()
        DocumentCount.objects.bulk_create(
            [
                DocumentCount(
                    status=status,
                    destination_id=destination_id,
                    destination_ods_code=code,
                    delta=total,
                    folded=True,
                )
                for (status, destination_id, code), total in totals.items()
                if total
            ],
            batch_size=1000,
        )
        return len(ids)


def documents_by_state_kept() -> dict[str, int]:
    """Documents per state, from the kept counts (states without any left out):
    the states' total rows, a few per state."""
    return {
        status: total
        for status, total in DocumentCount.objects.filter(destination_id=STATE_TOTAL)
        .order_by()
        .values_list("status")
        .annotate(total=Sum("delta"))
        .values_list("status", "total")
        if total
    }


def documents_by_destination_kept(
    states,
) -> dict[tuple[str, int, str], int]:
    """Documents per (state, destination id, destination ODS code) in ``states``."""
    return {
        (status, destination_id, code): total
        for status, destination_id, code, total in DocumentCount.objects.filter(
            status__in=list(states), destination_id__gte=0
        )
        .order_by()
        .values_list(*KEY)
        .annotate(total=Sum("delta"))
        .values_list(*KEY, "total")
        if total
    }


def kept_destination_ids(states) -> QuerySet:
    """The resolved destinations with kept counts in ``states``, as a query to
    filter the directory by in the database (no id list sent)."""
    return DocumentCount.objects.filter(
        status__in=list(states), destination_id__gt=0
    ).values("destination_id")


def kept_unresolved_codes(states) -> QuerySet:
    """The destination ODS codes of kept counts in ``states`` without a resolved
    destination, as a query to filter the directory by in the database."""
    return DocumentCount.objects.filter(
        status__in=list(states), destination_id=0
    ).values("destination_ods_code")
