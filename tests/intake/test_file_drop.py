"""Watched folders: pairs taken atomically, processed or rejected with the API's
problem details, never half-written, never lost or doubled."""

from __future__ import annotations

import json
import os
import stat
import time
from pathlib import Path

import pytest

from docflow.models import Document
from intake.file_drop import folder_process
from intake.models import IntakeChannel, SourceSystem
from tests.factories import SendingOrganisationFactory
from tests.samples import INVALID_CHECKSUM_NHS_NUMBER, pdf_bytes

pytestmark = pytest.mark.django_db


def sidecar(**overrides) -> dict:
    body = {
        "unique_id": "LETTER-1",
        "nhs_number": "9990000018",
        "patient_family_name": "Testpatient",
        "patient_birth_date": "1950-03-01",
        "document_type": "clinic_letter",
        "description": "Clinic letter",
        "event_date": "2026-01-15",
        "destination_ods_code": "A81001",
    }
    body.update(overrides)
    return body


@pytest.fixture
def source(tmp_path) -> SourceSystem:
    return SourceSystem.objects.create(
        code="rx1-drop",
        name="RX1 letters folder",
        channel=IntakeChannel.FILE_DROP,
        sending_organisation=SendingOrganisationFactory(ods_code="RX1"),
        drop_folder=str(tmp_path / "drop"),
    )


def drop(source, name: str, content: bytes, meta: dict, *, age: float = 60) -> None:
    folder = source.drop_folder
    os.makedirs(folder, exist_ok=True)
    document = os.path.join(folder, f"{name}.pdf")
    side = os.path.join(folder, f"{name}.json")
    with open(document, "wb") as handle:
        handle.write(content)
    with open(side, "w") as handle:
        json.dump(meta, handle)
    past = time.time() - age
    for path in (document, side):
        os.utime(path, (past, past))


def listing(source, sub: str = "") -> list[str]:
    root = os.path.join(source.drop_folder, sub)
    return sorted(
        os.path.relpath(os.path.join(base, f), root)
        for base, _dirs, files in os.walk(root)
        for f in files
    )


def test_a_valid_pair_is_stored_and_moved_to_processed(source):
    content = pdf_bytes("dropped")
    drop(source, "letter-1", content, sidecar())
    assert folder_process(source) == {"processed": 1, "rejected": 0}
    document = Document.objects.get()
    assert document.source_system == "file_drop:rx1-drop"
    assert document.idempotency_key == "LETTER-1"
    assert document.document_type == "clinic_letter"
    assert listing(source) == [
        "processed/letter-1/letter-1.json",
        "processed/letter-1/letter-1.pdf",
    ]
    folder = os.path.join(source.drop_folder, "processed", "letter-1")
    assert stat.S_IMODE(os.stat(folder).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(os.path.join(folder, "letter-1.pdf")).st_mode) == 0o600


def test_the_same_pair_again_is_processed_without_a_second_document(source):
    drop(source, "letter-1", pdf_bytes("same"), sidecar())
    folder_process(source)
    drop(source, "letter-1", pdf_bytes("same"), sidecar())
    assert folder_process(source) == {"processed": 1, "rejected": 0}
    assert Document.objects.count() == 1
    assert len(listing(source, "processed")) == 4


def test_a_refused_pair_goes_to_rejected_with_the_api_problem_details(
    source, api_client
):
    from tests.samples import intake_json_body

    drop(
        source,
        "bad",
        pdf_bytes(),
        sidecar(nhs_number=INVALID_CHECKSUM_NHS_NUMBER, document_type="nonsense"),
    )
    assert folder_process(source) == {"processed": 0, "rejected": 1}
    assert Document.objects.count() == 0
    assert listing(source) == [
        "rejected/bad/bad.json",
        "rejected/bad/bad.pdf",
        "rejected/bad/bad.problem.json",
    ]
    path = os.path.join(source.drop_folder, "rejected", "bad", "bad.problem.json")
    problem = json.loads(Path(path).read_text())
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    api = api_client.post(
        "/api/v1/documents",
        intake_json_body(
            nhs_number=INVALID_CHECKSUM_NHS_NUMBER, document_type="nonsense"
        ),
        format="json",
        HTTP_IDEMPOTENCY_KEY="k-1",
    ).json()
    assert problem["type"] == api["type"]
    assert problem["status"] == 400
    assert {(e["field"], e["code"]) for e in problem["errors"]} == {
        (e["field"], e["code"]) for e in api["errors"]
    }


def test_unsafe_content_is_rejected_as_the_api_rejects_it(source):
    drop(source, "exe", b"MZ\x90\x00" + b"\x00" * 400, sidecar(unique_id="EXE"))
    folder_process(source)
    problem = json.loads(
        Path(
            os.path.join(source.drop_folder, "rejected", "exe", "exe.problem.json")
        ).read_text()
    )
    assert [e["field"] for e in problem["errors"]] == ["content"]


def test_a_file_still_being_written_is_not_picked_up(source):
    drop(source, "fresh", pdf_bytes(), sidecar(), age=0)
    assert folder_process(source, stable_seconds=30) == {"processed": 0, "rejected": 0}
    assert listing(source) == ["fresh.json", "fresh.pdf"]
    # A sidecar alone (the document not there yet) waits too, however old.
    os.remove(os.path.join(source.drop_folder, "fresh.pdf"))
    assert folder_process(source, stable_seconds=0) == {"processed": 0, "rejected": 0}
    assert listing(source) == ["fresh.json"]
    assert Document.objects.count() == 0


def test_a_ready_marker_takes_the_pair_at_once(source):
    drop(source, "marked", pdf_bytes(), sidecar(), age=0)
    open(os.path.join(source.drop_folder, "marked.ready"), "w").close()
    assert folder_process(source, stable_seconds=30) == {"processed": 1, "rejected": 0}
    assert listing(source) == [
        "processed/marked/marked.json",
        "processed/marked/marked.pdf",
    ]


def test_the_sidecar_may_name_its_document(source):
    drop(source, "doc-77", pdf_bytes(), sidecar(), age=60)
    os.rename(
        os.path.join(source.drop_folder, "doc-77.json"),
        os.path.join(source.drop_folder, "meta-77.json"),
    )
    side = os.path.join(source.drop_folder, "meta-77.json")
    meta = sidecar(file="doc-77.pdf")
    with open(side, "w") as handle:
        json.dump(meta, handle)
    os.utime(side, (time.time() - 60,) * 2)
    assert folder_process(source) == {"processed": 1, "rejected": 0}
    assert listing(source) == [
        "processed/meta-77/doc-77.pdf",
        "processed/meta-77/meta-77.json",
    ]


def test_a_pick_up_cut_between_its_renames_is_finished_once(source):
    drop(source, "cut", pdf_bytes("cut"), sidecar(unique_id="CUT"))
    work = os.path.join(source.drop_folder, "processing", "cut")
    os.makedirs(work)
    # As if killed after the sidecar's rename and before the document's.
    os.rename(
        os.path.join(source.drop_folder, "cut.json"), os.path.join(work, "cut.json")
    )
    assert folder_process(source) == {"processed": 1, "rejected": 0}
    assert folder_process(source) == {"processed": 0, "rejected": 0}
    assert Document.objects.filter(idempotency_key="CUT").count() == 1
    assert listing(source) == ["processed/cut/cut.json", "processed/cut/cut.pdf"]
