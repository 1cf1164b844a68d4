"""What the rehearsal sends: documents to the API through nginx (TLS, verified
against the test CA), each with its own Idempotency-Key and retried with the same
key when it fails in flight, and MDM^T02 messages to the MLLP listener.

Every attempt is recorded (when, what came back), so the report can say which
requests failed and that each failed one succeeded when retried."""

from __future__ import annotations

import base64
import json
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from hl7.client import MLLPClient

from docflow.sample_pdf import text_pdf
from intake.mdm_samples import mdm_message

# Fictitious patient, NHS number of the never-issued 999 range.
NHS_NUMBER = "9990000018"
DESTINATION = "A81001"
# Answers worth retrying with the same key: the request may or may not have been
# taken (5xx from the proxy) or was refused for now (429, 503 with Retry-After).
RETRY_STATUSES = frozenset({429, 502, 503, 504})
MAX_ATTEMPTS = 12


@dataclass
class Attempt:
    at: float  # sent
    status: int | None  # None: no HTTP answer at all
    error: str = ""
    ended: float = 0.0  # answered, or failed


@dataclass
class Submission:
    key: str
    attempts: list[Attempt] = field(default_factory=list)

    @property
    def final_status(self) -> int | None:
        return self.attempts[-1].status if self.attempts else None

    @property
    def succeeded(self) -> bool:
        return self.final_status in (200, 201)

    @property
    def failures(self) -> list[Attempt]:
        return [a for a in self.attempts if a.status not in (200, 201)]


def document_body(reference: str, content: bytes) -> bytes:
    return json.dumps(
        {
            "nhs_number": NHS_NUMBER,
            "patient_family_name": "Rehearsal",
            "patient_given_names": "Alex",
            "patient_birth_date": "1950-03-01",
            "document_type": "discharge_summary",
            "description": "Discharge summary",
            "event_date": "2024-01-15",
            "destination_ods_code": DESTINATION,
            "source_reference": reference,
            "file_name": "summary.pdf",
            "content": base64.b64encode(content).decode("ascii"),
        }
    ).encode()


def rehearsal_pdf() -> bytes:
    return text_pdf(["Discharge summary", "Cluster rehearsal"])


class ApiLoad:
    """``count`` documents from ``concurrency`` threads sharing one TLS client."""

    def __init__(
        self,
        *,
        base_url: str,
        ca_path: Path,
        api_key: str,
        run_id: str,
        count: int,
        concurrency: int,
    ) -> None:
        self.submissions = [Submission(f"{run_id}-api-{i:06d}") for i in range(count)]
        self.concurrency = concurrency
        self.client = httpx.Client(
            base_url=base_url,
            verify=str(ca_path),
            timeout=httpx.Timeout(60, connect=5),
            limits=httpx.Limits(max_connections=concurrency * 2),
            headers={
                "Authorization": f"Api-Key {api_key}",
                "Content-Type": "application/json",
            },
        )
        self.content = rehearsal_pdf()
        self._next = 0
        self._lock = threading.Lock()
        self.done = 0
        self.started = self.finished = 0.0
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        self.started = time.monotonic()
        self._threads = [
            threading.Thread(target=self._lane, daemon=True)
            for _ in range(self.concurrency)
        ]
        for thread in self._threads:
            thread.start()

    def running(self) -> bool:
        return any(thread.is_alive() for thread in self._threads)

    def join(self) -> None:
        for thread in self._threads:
            thread.join()
        self.finished = time.monotonic()
        self.client.close()

    def _take(self) -> Submission | None:
        with self._lock:
            if self._next >= len(self.submissions):
                return None
            submission = self.submissions[self._next]
            self._next += 1
            return submission

    def _lane(self) -> None:
        while (submission := self._take()) is not None:
            self.submit(submission)
            with self._lock:
                self.done += 1

    def submit(self, submission: Submission) -> None:
        body = document_body(submission.key, self.content)
        for attempt in range(MAX_ATTEMPTS):
            at = time.monotonic()
            try:
                answer = self.client.post(
                    "/api/v1/documents",
                    content=body,
                    headers={"Idempotency-Key": submission.key},
                )
            except httpx.HTTPError as exc:
                submission.attempts.append(
                    Attempt(at, None, type(exc).__name__, time.monotonic())
                )
                time.sleep(0.2 * (attempt + 1))
                continue
            submission.attempts.append(
                Attempt(at, answer.status_code, ended=time.monotonic())
            )
            if answer.status_code not in RETRY_STATUSES:
                return
            pause = answer.headers.get("Retry-After", "")
            time.sleep(float(pause) if pause.isdigit() else 0.2 * (attempt + 1))


@dataclass
class MllpLoad:
    """``count`` MDM^T02 messages over ``connections`` connections, each message
    sent again (same TXA-12) until it is acknowledged AA."""

    port: int
    facility: str
    application: str
    run_id: str
    count: int
    connections: int = 2
    codes: dict[str, int] = field(default_factory=dict)
    resent: int = 0
    unique_ids: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.unique_ids = [f"{self.run_id}-mllp-{i:06d}" for i in range(self.count)]
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self.content = rehearsal_pdf()

    def start(self) -> None:
        lanes = [
            self.unique_ids[i :: self.connections] for i in range(self.connections)
        ]
        self._threads = [
            threading.Thread(target=self._lane, args=(lane,), daemon=True)
            for lane in lanes
        ]
        for thread in self._threads:
            thread.start()

    def join(self) -> None:
        for thread in self._threads:
            thread.join()

    def _lane(self, unique_ids: list[str]) -> None:
        for unique_id in unique_ids:
            message = mdm_message(
                unique_id=unique_id,
                content=self.content,
                facility=self.facility,
                application=self.application,
                practice=DESTINATION,
            )
            for attempt in range(MAX_ATTEMPTS):
                code = self._send(message)
                with self._lock:
                    self.codes[code] = self.codes.get(code, 0) + 1
                    if attempt:
                        self.resent += 1
                if code == "AA":
                    break
                time.sleep(0.2 * (attempt + 1))

    def _send(self, message: str) -> str:
        try:
            with MLLPClient("127.0.0.1", self.port) as client:
                answer = client.send_message(message)
        except OSError as exc:
            return type(exc).__name__
        for segment in answer.decode(errors="replace").strip("\x0b\x1c\r").split("\r"):
            if segment.startswith("MSA|"):
                return segment.split("|")[1]
        return "(no MSA)"
