"""Watched folders: a document and its JSON sidecar (the API's fields plus
``unique_id``), dropped by a source system's integration engine.

In each source's drop folder::

    letter-123.pdf          the document
    letter-123.json         its sidecar (or any name, with "file": "letter-123.pdf")
    letter-123.ready        optional: taken at once, without waiting for quiet
    processing/<name>/      the pair while it is being taken (renamed in: atomic)
    processed/<name>/       pairs stored (or already stored: a resend)
    rejected/<name>/        refused pairs, each with <name>.problem.json

A pair is taken when its sidecar is complete JSON and neither file has changed for
DOCFLOW_FILE_DROP_STABLE_SECONDS (or a ``.ready`` marker names it), so a file still
being written is never read. The sidecar is moved first, then the document; a pair
left in ``processing/`` by a crash is finished on the next pass, and intake's
idempotency (source + ``unique_id``) makes finishing it twice harmless. Nothing is
deleted unprocessed; files are 0600 and folders 0700.

The scanner (``watch_folders``) may run on every node: each pass takes the lease
``intake.file_drop`` (``docflow.leases``), so one pass runs at a time anywhere and
a pass on another node carries on within a lease of a scanner's death.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

from docflow.api.problems import flatten_errors, problem_body
from docflow.api.serializers import DocumentMetadataSerializer
from docflow.backpressure import intake_backpressure_check
from docflow.errors import IntakeBusy
from docflow.leases import lease_held
from docflow.services import DocumentSubmission
from intake.mdm import FieldProblem
from intake.models import IntakeChannel, SourceSystem
from intake.services import IntakeOutcome, intake_submit

logger = logging.getLogger(__name__)

FILE_DROP_LEASE = "intake.file_drop"
PROCESSING = "processing"
PROCESSED = "processed"
REJECTED = "rejected"
SIDECAR_SUFFIX = ".json"
PROBLEM_SUFFIX = ".problem.json"
READY_SUFFIX = ".ready"
FILE_MODE = 0o600
FOLDER_MODE = 0o700


@dataclass(frozen=True)
class DroppedPair:
    """One sidecar and the document it describes, in the same folder."""

    sidecar: Path
    document: Path | None
    ready_marker: Path | None


def _folder(path: Path) -> Path:
    path.mkdir(mode=FOLDER_MODE, parents=True, exist_ok=True)
    os.chmod(path, FOLDER_MODE)
    return path


def _document_named(sidecar: Path, data: dict | None) -> Path | None:
    if isinstance(data, dict) and isinstance(data.get("file"), str):
        name = Path(data["file"]).name  # never a path out of the folder
        candidate = sidecar.parent / name
        return candidate if candidate.is_file() else None
    stem = sidecar.name[: -len(SIDECAR_SUFFIX)]
    for candidate in sorted(sidecar.parent.glob(f"{stem}.*")):
        if candidate.name in (sidecar.name, f"{stem}{READY_SUFFIX}"):
            continue
        if candidate.is_file() and not candidate.name.endswith(PROBLEM_SUFFIX):
            return candidate
    return None


def _read_json(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def pairs_ready(
    folder: Path, *, now: float, stable_seconds: float
) -> list[DroppedPair]:
    """Pairs in a drop folder that may be taken now (complete and quiet, or marked
    ready); a pair still being written is left for a later pass."""
    ready: list[DroppedPair] = []
    for sidecar in sorted(folder.glob(f"*{SIDECAR_SUFFIX}")):
        if sidecar.name.endswith(PROBLEM_SUFFIX) or not sidecar.is_file():
            continue
        stem = sidecar.name[: -len(SIDECAR_SUFFIX)]
        marker = folder / f"{stem}{READY_SUFFIX}"
        marker = marker if marker.is_file() else None
        data = _read_json(sidecar)
        document = _document_named(sidecar, data)
        if marker is None:
            if document is None or data is None:
                continue  # not all there yet (or a sidecar still being written)
            try:
                newest = max(sidecar.stat().st_mtime, document.stat().st_mtime)
            except FileNotFoundError:
                continue
            if now - newest < stable_seconds:
                continue
        ready.append(
            DroppedPair(sidecar=sidecar, document=document, ready_marker=marker)
        )
    return ready


def _take(pair: DroppedPair, folder: Path) -> Path:
    """Rename the pair into its own working folder: sidecar first, then document."""
    stem = pair.sidecar.name[: -len(SIDECAR_SUFFIX)]
    work = _free_name(folder / PROCESSING, stem)
    _folder(work)
    os.rename(pair.sidecar, work / pair.sidecar.name)
    if pair.document is not None:
        os.rename(pair.document, work / pair.document.name)
    if pair.ready_marker is not None:
        os.rename(pair.ready_marker, work / pair.ready_marker.name)
    for path in work.iterdir():
        os.chmod(path, FILE_MODE)
    return work


def _finish_take(work: Path, folder: Path) -> None:
    """A crash between the renames left the document behind: bring it in too."""
    sidecars = [
        p
        for p in work.glob(f"*{SIDECAR_SUFFIX}")
        if not p.name.endswith(PROBLEM_SUFFIX)
    ]
    if len(sidecars) != 1:
        return
    in_work = _document_named(sidecars[0], _read_json(sidecars[0]))
    if in_work is not None:
        return
    left = _document_named(folder / sidecars[0].name, _read_json(sidecars[0]))
    if left is not None:
        os.rename(left, work / left.name)
        os.chmod(work / left.name, FILE_MODE)


def _free_name(folder: Path, name: str) -> Path:
    target = folder / name
    number = 1
    while target.exists():
        target = folder / f"{number}-{name}"
        number += 1
    return target


def _problem_file(outcome_problems: list[dict], *, status: int, kind: str, title: str):
    return problem_body(
        status_code=status,
        title=title,
        detail="One or more fields are invalid."
        if status == 400
        else "This unique_id was already used for a different document.",
        kind=kind,
        errors=outcome_problems,
    )


def _submit(source: SourceSystem, work: Path) -> tuple[IntakeOutcome, dict | None]:
    """Read a taken pair and submit it; the problem body when refused."""
    sidecars = [
        p
        for p in work.glob(f"*{SIDECAR_SUFFIX}")
        if not p.name.endswith(PROBLEM_SUFFIX)
    ]
    data = _read_json(sidecars[0]) if len(sidecars) == 1 else None
    if data is None:
        problems = [
            FieldProblem("sidecar", "invalid", "The sidecar is not a JSON object.")
        ]
        return IntakeOutcome(False, problems=problems), _problem_file(
            [p.as_problem() for p in problems],
            status=400,
            kind="validation",
            title="Validation failed",
        )
    document = _document_named(sidecars[0], data)
    errors: list[dict] = []
    unique_id = data.get("unique_id")
    if not isinstance(unique_id, str) or not unique_id.strip():
        errors.append(
            {
                "field": "unique_id",
                "code": "required",
                "detail": "The sidecar must name the document's unique_id.",
            }
        )
    if document is None:
        errors.append(
            {
                "field": "file",
                "code": "required",
                "detail": "No document file beside the sidecar.",
            }
        )
    fields = {
        k: v for k, v in data.items() if k not in ("unique_id", "file", "content")
    }
    if document is not None:
        fields.setdefault("file_name", document.name)
    serializer = DocumentMetadataSerializer(data=fields)
    if not serializer.is_valid():
        errors.extend(flatten_errors(serializer.errors))
    if (
        document is not None
        and document.stat().st_size > settings.DOCFLOW_MAX_UPLOAD_BYTES
    ):
        errors.append(
            {
                "field": "file",
                "code": "too_large",
                "detail": "The document exceeds the size ceiling.",
            }
        )
    if errors:
        problems = [FieldProblem(e["field"], e["code"], e["detail"]) for e in errors]
        return IntakeOutcome(False, problems=problems), _problem_file(
            errors, status=400, kind="validation", title="Validation failed"
        )
    attrs = dict(serializer.validated_data)
    file_name = attrs.pop("file_name", "") or document.name
    submission = DocumentSubmission(
        **attrs,
        content=document.read_bytes(),
        declared_extension=file_name.rpartition(".")[2] if "." in file_name else "",
    )
    outcome = intake_submit(
        source=source, unique_id=unique_id.strip(), submission=submission, problems=[]
    )
    if outcome.accepted:
        return outcome, None
    conflict = any(p.code == "idempotency_conflict" for p in outcome.problems)
    return outcome, _problem_file(
        [
            {
                "field": "unique_id" if p.field == "idempotency_key" else p.field,
                "code": p.code,
                "detail": p.detail,
            }
            for p in outcome.problems
        ],
        status=409 if conflict else 400,
        kind="idempotency-conflict" if conflict else "validation",
        title="Idempotency key reused" if conflict else "Validation failed",
    )


def _settle(work: Path, folder: Path, *, accepted: bool, problem: dict | None) -> None:
    """Move a handled pair out of ``processing/`` in one rename of its folder:
    to ``processed/<name>/``, or ``rejected/<name>/`` with its problem file."""
    target = _folder(folder / (PROCESSED if accepted else REJECTED))
    for marker in work.glob(f"*{READY_SUFFIX}"):
        marker.unlink()  # a marker holds no data; it has done its work
    if problem is not None:
        sidecars = [
            p.name
            for p in work.glob(f"*{SIDECAR_SUFFIX}")
            if not p.name.endswith(PROBLEM_SUFFIX)
        ]
        stem = sidecars[0][: -len(SIDECAR_SUFFIX)] if sidecars else work.name
        descriptor = os.open(
            work / f"{stem}{PROBLEM_SUFFIX}",
            os.O_WRONLY | os.O_CREAT | os.O_TRUNC,
            FILE_MODE,
        )
        with os.fdopen(descriptor, "w") as handle:
            json.dump(problem, handle, indent=2)
    os.rename(work, _free_name(target, work.name))


def folder_process(
    source: SourceSystem,
    *,
    now: float | None = None,
    stable_seconds: float | None = None,
) -> dict[str, int]:
    """One pass over a source's drop folder: finish pairs a crash left in
    ``processing/``, then take every ready pair. Returns counts by outcome. While
    intake is busy (backpressure) nothing is taken: the files wait for a later pass.
    """
    folder = _folder(Path(source.drop_folder))
    now = time.time() if now is None else now
    stable = (
        settings.DOCFLOW_FILE_DROP_STABLE_SECONDS
        if stable_seconds is None
        else stable_seconds
    )
    counts = {"processed": 0, "rejected": 0}
    _folder(folder / PROCESSING)
    try:
        intake_backpressure_check()
    except IntakeBusy:
        logger.info("file drop %s: deferred, intake busy", source.code)
        return counts
    # What a crash left half done first, so that no new pair lands beside it.
    leftovers = sorted(p for p in (folder / PROCESSING).iterdir() if p.is_dir())
    for work in leftovers:
        _finish_take(work, folder)
        _work_process(source, work, folder, counts)
    for pair in pairs_ready(folder, now=now, stable_seconds=stable):
        _work_process(source, _take(pair, folder), folder, counts)
    return counts


def _work_process(
    source: SourceSystem, work: Path, folder: Path, counts: dict[str, int]
) -> None:
    if not any(work.iterdir()):
        work.rmdir()  # a crash before the first rename: nothing was taken
        return
    outcome, problem = _submit(source, work)
    _settle(work, folder, accepted=outcome.accepted, problem=problem)
    result = "processed" if outcome.accepted else "rejected"
    counts[result] += 1
    logger.info("file drop %s: %s", source.code, result)


def drop_folders_process(**kwargs) -> dict[str, int]:
    """One pass over every active file-drop source system's folder."""
    totals = {"processed": 0, "rejected": 0}
    sources = SourceSystem.objects.select_related("sending_organisation").filter(
        channel=IntakeChannel.FILE_DROP, is_active=True
    )
    for source in sources.exclude(drop_folder=""):
        for key, value in folder_process(source, **kwargs).items():
            totals[key] += value
    return totals


def drop_folders_scan(*, wait: float = 0.0, **kwargs) -> dict[str, int] | None:
    """One pass over every file-drop folder under the scanner's lease, waiting up
    to ``wait`` seconds for it; None (and nothing read) while a pass on another
    node (or a dead scanner's lease not yet run out) still holds it."""
    with lease_held(name=FILE_DROP_LEASE, wait=wait) as lease:
        if not lease:
            return None
        return drop_folders_process(**kwargs)
