"""What happened, read after the run from the database, the simulator's own state
file, and the nodes' logs; and the acceptance checks on it.

Read with psycopg and sqlite3, not the ORM: this module runs in the orchestrating
process, which never configures Django (every node is a process of its own)."""

from __future__ import annotations

import re
import sqlite3
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

# docflow.models.FINAL_STATES and ATTENTION_STATES (a test keeps them equal).
FINAL_STATES = frozenset({"accepted", "rejection_resolved", "cancelled"})
ATTENTION_STATES = frozenset(
    {"held", "outcome_unknown", "rejected", "system_error", "undelivered"}
)
ACTIVE_WORK_ITEM_STATUSES = ("open", "assigned")


@dataclass
class DatabaseOutcome:
    states: Counter
    # source_reference -> documents with it (the rehearsal's references are unique).
    by_reference: Counter
    # Documents in an attention state whose count of active work items is not 1.
    attention_without_one_item: list[int]
    # Connect idempotency key -> docflow document id, for every transmission.
    transmission_documents: dict[str, int]

    @property
    def not_settled(self) -> int:
        return sum(
            n
            for state, n in self.states.items()
            if state not in FINAL_STATES | ATTENTION_STATES
        )


def settled_count(database_url: str) -> tuple[int, int]:
    """(documents final or in an attention state, all documents)."""
    settled = tuple(FINAL_STATES | ATTENTION_STATES)
    with psycopg.connect(database_url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FILTER (WHERE status = ANY(%s)), count(*) "
            "FROM docflow_document",
            (list(settled),),
        ).fetchone()
    return row[0], row[1]


def database_outcome(database_url: str) -> DatabaseOutcome:
    with psycopg.connect(database_url, autocommit=True) as conn:
        states = Counter(
            dict(
                conn.execute(
                    "SELECT status, count(*) FROM docflow_document GROUP BY status"
                ).fetchall()
            )
        )
        by_reference = Counter(
            dict(
                conn.execute(
                    "SELECT source_reference, count(*) FROM docflow_document "
                    "GROUP BY source_reference"
                ).fetchall()
            )
        )
        lacking = [
            row[0]
            for row in conn.execute(
                "SELECT d.id FROM docflow_document d LEFT JOIN casework_workitem w "
                "ON w.document_id = d.id AND w.status = ANY(%s) "
                "WHERE d.status = ANY(%s) GROUP BY d.id HAVING count(w.id) <> 1",
                (list(ACTIVE_WORK_ITEM_STATUSES), list(ATTENTION_STATES)),
            ).fetchall()
        ]
        transmissions = dict(
            conn.execute(
                "SELECT idempotency_key, document_id FROM transmissions_transmission"
            ).fetchall()
        )
    return DatabaseOutcome(states, by_reference, lacking, transmissions)


@dataclass
class SimulatorOutcome:
    # How many idempotency keys the simulator saw once, twice...
    per_key: Counter
    # docflow documents the simulator holds more than one document for.
    documents_posted_twice: int

    @property
    def duplicated_keys(self) -> int:
        return sum(n for times, n in self.per_key.items() if times > 1)


def simulator_outcome(state_path: Path, database: DatabaseOutcome) -> SimulatorOutcome:
    """Read the simulator's state file (after the simulator has stopped)."""
    conn = sqlite3.connect(state_path)
    try:
        rows = conn.execute(
            "SELECT idempotency_key, count(*) FROM documents GROUP BY idempotency_key"
        ).fetchall()
    finally:
        conn.close()
    per_key = Counter(count for _key, count in rows)
    per_document = Counter()
    for key, count in rows:
        document = database.transmission_documents.get(key)
        per_document[document if document is not None else f"?{key}"] += count
    return SimulatorOutcome(
        per_key=per_key,
        documents_posted_twice=sum(1 for n in per_document.values() if n > 1),
    )


ACCESS_LINE = re.compile(
    r'"(?P<method>[A-Z]+) (?P<path>[^ "?]*)[^"]*" (?P<status>\d{3}) '
)
UPSTREAM = re.compile(r'upstream: "http://(?P<address>[^/"]+)/')


def nginx_statuses(access_log: Path, *, path: str) -> Counter:
    """nginx's answers to POST ``path``, by status (the combined access log)."""
    counts: Counter = Counter()
    for line in access_log.read_text(errors="replace").splitlines():
        match = ACCESS_LINE.search(line)
        if match and match["method"] == "POST" and match["path"] == path:
            counts[int(match["status"])] += 1
    return counts


def nginx_upstream_errors(error_log: Path) -> Counter:
    """nginx's errors talking to a web node, by (node address, kind): "refused"
    (nothing was sent; nginx tried the next node) or "in flight" (the node died
    with the request; the client got 502)."""
    counts: Counter = Counter()
    for line in error_log.read_text(errors="replace").splitlines():
        match = UPSTREAM.search(line)
        if not match or " [error] " not in line:
            continue
        kind = "refused" if "connect() failed" in line else "in flight"
        counts[(match["address"], kind)] += 1
    return counts


def gunicorn_counts(access_log: Path) -> Counter:
    """Answers to document submissions, by status, from a web node's access log."""
    counts: Counter = Counter()
    if not access_log.exists():
        return counts
    for line in access_log.read_text(errors="replace").splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[0] == "POST" and parts[1] == "/api/v1/documents":
            counts[parts[2]] += 1
    return counts


def tasks_processed(worker_log: Path) -> Counter:
    """Tasks a worker node finished, by function, from django-q's INFO lines."""
    counts: Counter = Counter()
    for line in worker_log.read_text(errors="replace").splitlines():
        if "Processed '" in line:
            name = line.split("Processed '", 1)[1].split("'", 1)[0]
            counts[name] += 1
    return counts


@dataclass
class Verdict:
    failures: list[str] = field(default_factory=list)

    def require(self, condition: bool, message: str) -> None:
        if not condition:
            self.failures.append(message)

    @property
    def ok(self) -> bool:
        return not self.failures
