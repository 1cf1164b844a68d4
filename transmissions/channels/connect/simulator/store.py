"""The simulator's state in its own SQLite file, so it survives a restart.

Status changes are materialised lazily: before answering any request the store
applies every transition whose time has come, appending to the change feed in order.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from transmissions.channels.connect.simulator.behaviours import (
    REJECTION_REASONS,
    Behaviour,
)

STATUS_DESCRIPTIONS = {
    4002: "Received by Connect",
    4003: "Delivered",
    4010: "Accepted",
    4005: "Rejected",
    6000: "Rejection Resolved",
    5000: "System Error",
    7000: "System Error - On Hold",
}
RESENDABLE = {4005, 5000, 7000}

SCHEMA = """
CREATE TABLE IF NOT EXISTS documents (
    guid TEXT PRIMARY KEY,
    idempotency_key TEXT NOT NULL,
    client_id TEXT NOT NULL,
    body_hash TEXT NOT NULL,
    recipient TEXT NOT NULL,
    behaviour TEXT NOT NULL,
    status_code INTEGER NOT NULL,
    status_updated TEXT NOT NULL,
    pending TEXT NOT NULL,
    next_at TEXT,
    rejection_code TEXT,
    rejected_at TEXT,
    resend_of TEXT,
    created_at TEXT NOT NULL,
    UNIQUE (client_id, idempotency_key)
);
CREATE INDEX IF NOT EXISTS documents_next_at ON documents (next_at);
CREATE TABLE IF NOT EXISTS changes (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    guid TEXT NOT NULL,
    status_code INTEGER NOT NULL,
    at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS tokens (
    token TEXT PRIMARY KEY,
    client_id TEXT NOT NULL,
    expires_at TEXT NOT NULL
);
"""


def _now() -> datetime:
    return datetime.now(UTC)


def _iso(moment: datetime) -> str:
    return (
        moment.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
    )


def _parse(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@dataclass(frozen=True)
class Timings:
    """Simulated seconds between lifecycle steps; divided by the time multiplier."""

    receive_to_deliver: float = 60.0
    deliver_to_final: float = 600.0
    multiplier: float = 1.0

    def delay(self, step: int) -> timedelta:
        seconds = self.receive_to_deliver if step == 0 else self.deliver_to_final
        return timedelta(seconds=seconds / max(self.multiplier, 1e-9))


class SimulatorStore:
    """All reads and writes of simulator state; one lock, one connection."""

    def __init__(self, path: Path | str, timings: Timings) -> None:
        self.timings = timings
        self._lock = threading.RLock()
        self._db = sqlite3.connect(
            str(path), check_same_thread=False, isolation_level=None
        )
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(SCHEMA)

    # tokens

    def token_issue(self, *, client_id: str, lifetime_seconds: int) -> str:
        token = uuid.uuid4().hex + uuid.uuid4().hex
        with self._lock:
            self._db.execute(
                "INSERT INTO tokens (token, client_id, expires_at) VALUES (?, ?, ?)",
                (token, client_id, _iso(_now() + timedelta(seconds=lifetime_seconds))),
            )
        return token

    def token_client(self, token: str) -> str | None:
        with self._lock:
            row = self._db.execute(
                "SELECT client_id, expires_at FROM tokens WHERE token = ?", (token,)
            ).fetchone()
        if row is None or _parse(row["expires_at"]) <= _now():
            return None
        return row["client_id"]

    def tokens_revoke(self, *, client_id: str | None = None) -> int:
        with self._lock:
            if client_id is None:
                return self._db.execute("DELETE FROM tokens").rowcount
            return self._db.execute(
                "DELETE FROM tokens WHERE client_id = ?", (client_id,)
            ).rowcount

    # documents

    def _append_change(self, guid: str, code: int, at: datetime) -> None:
        self._db.execute(
            "INSERT INTO changes (guid, status_code, at) VALUES (?, ?, ?)",
            (guid, code, _iso(at)),
        )

    def document_find_by_key(self, *, client_id: str, key: str) -> dict | None:
        with self._lock:
            self.advance()
            row = self._db.execute(
                "SELECT * FROM documents WHERE client_id = ? AND idempotency_key = ?",
                (client_id, key),
            ).fetchone()
        return dict(row) if row else None

    def document_get(self, guid: str) -> dict | None:
        with self._lock:
            self.advance()
            row = self._db.execute(
                "SELECT * FROM documents WHERE guid = ?", (guid,)
            ).fetchone()
        return dict(row) if row else None

    def document_create(
        self,
        *,
        client_id: str,
        key: str,
        body_hash: str,
        recipient: str,
        behaviour: Behaviour,
        behaviour_spec: str,
        resend_of: str | None = None,
    ) -> tuple[dict, bool]:
        """Create a document (4002) or return the existing one for this key.

        Returns ``(row, created)``; raises KeyError("conflict") when the key was used
        with another body.
        """
        with self._lock:
            self.advance()
            existing = self._db.execute(
                "SELECT * FROM documents WHERE client_id = ? AND idempotency_key = ?",
                (client_id, key),
            ).fetchone()
            if existing is not None:
                if existing["body_hash"] != body_hash:
                    raise KeyError("conflict")
                return dict(existing), False
            now = _now()
            guid = str(uuid.uuid4())
            pending = behaviour.lifecycle()
            next_at = _iso(now + self.timings.delay(0)) if pending else None
            self._db.execute(
                "INSERT INTO documents (guid, idempotency_key, client_id, body_hash, "
                "recipient, behaviour, status_code, status_updated, pending, next_at, "
                "rejection_code, rejected_at, resend_of, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?, 4002, ?, ?, ?, NULL, NULL, ?, ?)",
                (
                    guid,
                    key,
                    client_id,
                    body_hash,
                    recipient,
                    behaviour_spec,
                    _iso(now),
                    json.dumps(pending),
                    next_at,
                    resend_of,
                    _iso(now),
                ),
            )
            self._append_change(guid, 4002, now)
            row = self._db.execute(
                "SELECT * FROM documents WHERE guid = ?", (guid,)
            ).fetchone()
        return dict(row), True

    def document_resolve(self, guid: str) -> dict:
        """4005 -> 6000; raises LookupError if absent, ValueError if not rejected."""
        with self._lock:
            self.advance()
            row = self._db.execute(
                "SELECT * FROM documents WHERE guid = ?", (guid,)
            ).fetchone()
            if row is None:
                raise LookupError(guid)
            if row["status_code"] != 4005:
                raise ValueError("not rejected")
            now = _now()
            self._db.execute(
                "UPDATE documents SET status_code = 6000, status_updated = ?, "
                "pending = '[]', next_at = NULL WHERE guid = ?",
                (_iso(now), guid),
            )
            self._append_change(guid, 6000, now)
            return dict(
                self._db.execute(
                    "SELECT * FROM documents WHERE guid = ?", (guid,)
                ).fetchone()
            )

    def advance(self, *, now: datetime | None = None) -> int:
        """Apply every lifecycle step that is due; returns how many were applied."""
        now = now or _now()
        applied = 0
        with self._lock:
            while True:
                due = self._db.execute(
                    "SELECT * FROM documents "
                    "WHERE next_at IS NOT NULL AND next_at <= ? "
                    "ORDER BY next_at LIMIT 500",
                    (_iso(now),),
                ).fetchall()
                if not due:
                    return applied
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    for row in due:
                        self._step(row, now)
                        applied += 1
                    self._db.execute("COMMIT")
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise

    def _step(self, row: sqlite3.Row, now: datetime) -> None:
        pending: list[int] = json.loads(row["pending"])
        code = pending.pop(0)
        at = _parse(row["next_at"])
        step_index = 1  # every step after the first uses deliver_to_final
        next_at = _iso(at + self.timings.delay(step_index)) if pending else None
        rejection_code = row["rejection_code"]
        rejected_at = row["rejected_at"]
        if code == 4005:
            rejection_code = Behaviour.parse(row["behaviour"]).rejection_code or "REJ99"
            rejected_at = _iso(at)
        self._db.execute(
            "UPDATE documents SET status_code = ?, status_updated = ?, pending = ?, "
            "next_at = ?, rejection_code = ?, rejected_at = ? WHERE guid = ?",
            (
                code,
                _iso(at),
                json.dumps(pending),
                next_at,
                rejection_code,
                rejected_at,
                row["guid"],
            ),
        )
        self._append_change(row["guid"], code, at)

    def changes_since(self, *, cursor: int, limit: int) -> tuple[list[dict], int]:
        """Changes after ``cursor``, oldest first, with each document as it was then."""
        with self._lock:
            self.advance()
            rows = self._db.execute(
                "SELECT c.seq, c.status_code AS change_code, c.at, d.* FROM changes c "
                "JOIN documents d ON d.guid = c.guid WHERE c.seq > ? "
                "ORDER BY c.seq LIMIT ?",
                (cursor, limit),
            ).fetchall()
        result = []
        for row in rows:
            data = dict(row)
            data["status_code"] = data.pop("change_code")
            data["status_updated"] = data.pop("at")
            if data["status_code"] != 4005:
                data["rejection_code"] = None
                data["rejected_at"] = None
            result.append(data)
        return result, (rows[-1]["seq"] if rows else cursor)

    def document_count(self) -> dict[str, Any]:
        with self._lock:
            self.advance()
            total = self._db.execute("SELECT COUNT(*) FROM documents").fetchone()[0]
            keys = self._db.execute(
                "SELECT COUNT(DISTINCT client_id || ':' || idempotency_key) "
                "FROM documents"
            ).fetchone()[0]
            by_status = dict(
                self._db.execute(
                    "SELECT status_code, COUNT(*) FROM documents GROUP BY status_code"
                ).fetchall()
            )
        return {"documents": total, "distinct_keys": keys, "by_status": by_status}

    def reset(self) -> None:
        with self._lock:
            self._db.executescript("DELETE FROM documents; DELETE FROM changes;")


def status_body(row: dict) -> dict[str, Any]:
    """The contract's DocumentStatus for one stored row."""
    code = row["status_code"]
    rejection = None
    if code in (4005, 6000) and row.get("rejection_code"):
        rejection = {
            "Code": row["rejection_code"],
            "Reason": REJECTION_REASONS.get(row["rejection_code"], "Other."),
            "RejectedAt": row["rejected_at"],
        }
    return {
        "DocumentGuid": row["guid"],
        "RecipientOdsCode": row["recipient"],
        "StatusCode": code,
        "StatusDescription": STATUS_DESCRIPTIONS[code],
        "StatusUpdated": row["status_updated"],
        "Rejection": rejection,
        "ResendOf": row["resend_of"],
        "IdempotencyKey": row["idempotency_key"],
    }
