"""Demo intake: an MLLP source and a file-drop source for RX1, one letter sent
over MLLP (through the real listener) and one dropped in the watched folder.
Idempotent; run after ``seed_demo``."""

from __future__ import annotations

import asyncio
import json
import os
import threading
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from hl7.client import MLLPClient

from docflow.models import Document, SendingOrganisation
from docflow.sample_pdf import text_pdf
from intake.mdm_samples import mdm_message
from intake.mllp import ListenerLimits, MllpListener
from intake.models import IntakeChannel, SourceSystem
from intake.services import source_system_save

MLLP_LETTER_ID = "DEMO-MLLP-1"
DROPPED_LETTER_ID = "DEMO-DROP-1"


def demo_drop_folder() -> Path:
    return Path(settings.VAR_DIR) / "drop" / "rx1-letters"


class Command(BaseCommand):
    help = "Seed the intake demo: MLLP and file-drop sources, one letter by each."

    def handle(self, *args, **options) -> None:
        if not settings.DEBUG:
            raise CommandError("seed_intake_demo runs only with DJANGO_DEBUG=1.")
        organisation = SendingOrganisation.objects.filter(ods_code="RX1").first()
        if organisation is None:
            raise CommandError("Run seed_demo first (it creates RX1).")
        mllp = self._source(
            code="rx1-engine",
            name="Northshire integration engine (MLLP)",
            channel=IntakeChannel.MLLP,
            organisation=organisation,
            sending_facility="RX1",
            sending_application="EPR",
        )
        drop = self._source(
            code="rx1-letters",
            name="Northshire letters folder (file drop)",
            channel=IntakeChannel.FILE_DROP,
            organisation=organisation,
            drop_folder=str(demo_drop_folder()),
        )
        self._send_over_mllp(mllp)
        self._drop_letter(drop)

    def _source(self, *, code: str, organisation, **fields) -> SourceSystem:
        existing = SourceSystem.objects.filter(code=code).first()
        if existing is not None:
            return existing
        source = SourceSystem(code=code, sending_organisation=organisation, **fields)
        source_system_save(source_system=source, actor=None)
        self.stdout.write(f"created source system {code}")
        return source

    def _send_over_mllp(self, source: SourceSystem) -> None:
        """Through the listener's own code on a free loopback port, with
        python-hl7's client: exactly what an integration engine does."""
        listener = MllpListener(
            limits=ListenerLimits(
                max_message_bytes=settings.DOCFLOW_MLLP_MAX_MESSAGE_BYTES,
                read_timeout_seconds=30,
                idle_seconds=30,
                workers=1,
            )
        )
        loop = asyncio.new_event_loop()
        started = threading.Event()
        port: list[int] = []

        def run() -> None:
            asyncio.set_event_loop(loop)
            port.append(
                loop.run_until_complete(listener.start(host="127.0.0.1", port=0))
            )
            started.set()
            loop.run_forever()

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        started.wait(10)
        try:
            message = mdm_message(
                unique_id=MLLP_LETTER_ID,
                content=text_pdf(["Discharge letter", "Sent over MLLP (demo)"]),
                given_name="Morgan",
                family_name="Mllpdemo",
                event_time="20261101100000",
            )
            with MLLPClient("127.0.0.1", port[0]) as client:
                answer = client.send_message(message).decode(errors="replace")
        finally:
            asyncio.run_coroutine_threadsafe(listener.stop(), loop).result(30)
            loop.call_soon_threadsafe(loop.stop)
            thread.join(10)
        code = next(
            (s.split("|")[1] for s in answer.split("\r") if s.startswith("MSA|")), "?"
        )
        self.stdout.write(f"MLLP demo letter {MLLP_LETTER_ID}: ACK {code}")

    def _drop_letter(self, source: SourceSystem) -> None:
        if Document.objects.filter(
            source_system=source.document_source, idempotency_key=DROPPED_LETTER_ID
        ).exists():
            return
        folder = Path(source.drop_folder)
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(folder, 0o700)
        name = "clinic-letter-demo"
        if (folder / f"{name}.json").exists():
            return  # dropped already, not yet taken
        self._write(folder / f"{name}.pdf", text_pdf(["Clinic letter", "Dropped"]))
        sidecar = {
            "unique_id": DROPPED_LETTER_ID,
            "nhs_number": "9990000018",
            "patient_family_name": "Dropdemo",
            "patient_given_names": "Robin",
            "patient_birth_date": "1961-04-12",
            "document_type": "clinic_letter",
            "description": "Clinic letter (file drop demo)",
            "event_date": "2026-11-02",
            "destination_ods_code": "A81001",
            "sender_department": "Cardiology",
        }
        self._write(folder / f"{name}.json", json.dumps(sidecar, indent=2).encode())
        self._write(folder / f"{name}.ready", b"")
        self.stdout.write(f"dropped {name}.pdf and its sidecar in {folder}")

    @staticmethod
    def _write(path: Path, data: bytes) -> None:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
