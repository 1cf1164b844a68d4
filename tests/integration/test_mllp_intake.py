"""MLLP and file-drop intake as separate processes on PostgreSQL: a T02 sent on
through the Connect simulator, and SIGKILL while messages and files are in flight."""

from __future__ import annotations

import json
import os
import random
import socket
import threading
import time

import psutil
import pytest
from hl7.client import MLLPClient

from docflow.models import Document, DocumentStatus
from intake.mdm_samples import mdm_message
from intake.models import IntakeChannel, SourceSystem
from tests.integration.conftest import Process, free_port, wait_for
from tests.samples import pdf_bytes

pytestmark = [
    pytest.mark.integration,
    pytest.mark.postgres,
    pytest.mark.django_db(transaction=True),
]


def _listener(
    engine, port: int, name: str = "mllp", *, processes: int | None = None
) -> Process:
    extra = [] if processes is None else ["--processes", str(processes)]
    process = Process(
        name,
        ["manage.py", "mllp_listener", "--port", str(port), "--certfile", "", *extra],
        env=engine.env,
        log_path=engine.tmp_path / f"{name}.log",
    )
    wait_for(
        lambda: _accepts(port),
        timeout=60,
        message="the MLLP listener to listen",
        details=process.log_tail,
    )
    return process


def _accepts(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


def _ack_code(raw: bytes) -> str:
    text = raw.decode(errors="replace").strip("\x0b\x1c\r")
    for segment in text.split("\r"):
        if segment.startswith("MSA|"):
            return segment.split("|")[1]
    return ""


@pytest.fixture
def mllp_source(engine) -> SourceSystem:
    return SourceSystem.objects.create(
        code="rx1-engine",
        name="RX1 integration engine",
        channel=IntakeChannel.MLLP,
        sending_organisation=engine.organisation,
        sending_facility="RX1",
        sending_application="EPR",
    )


def test_a_t02_is_acknowledged_and_sent_through_the_simulator(engine, mllp_source):
    port = free_port()
    listener = _listener(engine, port)
    engine.start_cluster()
    try:
        with MLLPClient("127.0.0.1", port) as client:
            ack = client.send_message(mdm_message(unique_id="SENT-1"))
        assert _ack_code(ack) == "AA"
        document = Document.objects.get(idempotency_key="SENT-1")
        engine.wait_for(
            lambda: (
                Document.objects.get(pk=document.pk).status == DocumentStatus.ACCEPTED
            ),
            timeout=90,
            message="the MLLP document to be accepted by the simulator",
        )
    finally:
        listener.kill()


def test_sigkill_in_flight_loses_no_acked_message_and_resends_make_no_duplicate(
    engine, mllp_source
):
    port = free_port()
    listener = _listener(engine, port)
    content = {n: pdf_bytes(f"letter {n}", pad_to=20_000) for n in range(200)}
    acked: set[str] = set()
    unacked: set[str] = set()
    lock = threading.Lock()
    stop = threading.Event()

    def sender(lane: int) -> None:
        numbers = list(range(lane, 200, 4))
        client = None
        for number in numbers:
            unique_id = f"KILL-{number}"
            if stop.is_set() or client is False:
                with lock:
                    unacked.add(unique_id)
                continue
            try:
                if client is None:
                    client = MLLPClient("127.0.0.1", port)
                answer = client.send_message(
                    mdm_message(unique_id=unique_id, content=content[number])
                )
            except OSError:
                answer = b""
            with lock:
                (acked if _ack_code(answer) == "AA" else unacked).add(unique_id)
            if _ack_code(answer) != "AA":
                client = False  # the listener is gone: this lane stops
        if client:
            client.close()

    lanes = [threading.Thread(target=sender, args=(lane,)) for lane in range(4)]
    for lane in lanes:
        lane.start()
    wait_for(
        lambda: len(acked) >= 20 + random.randint(0, 15),
        timeout=120,
        message="some messages to be acknowledged",
        details=listener.log_tail,
    )
    listener.kill()  # SIGKILL, messages in flight on every lane
    stop.set()
    for lane in lanes:
        lane.join(60)
    assert unacked, "the kill came after every message was acknowledged"
    assert acked.isdisjoint(unacked)

    for unique_id in acked:
        assert Document.objects.filter(idempotency_key=unique_id).count() == 1

    listener = _listener(engine, port, name="mllp-restarted")
    try:
        with MLLPClient("127.0.0.1", port) as client:
            for unique_id in sorted(unacked):
                number = int(unique_id.split("-")[1])
                answer = client.send_message(
                    mdm_message(unique_id=unique_id, content=content[number])
                )
                assert _ack_code(answer) == "AA"
    finally:
        listener.kill()
    keys = list(
        Document.objects.filter(idempotency_key__startswith="KILL-").values_list(
            "idempotency_key", flat=True
        )
    )
    assert len(keys) == len(set(keys)) == 200


def _workers(listener: Process, count: int) -> list[psutil.Process]:
    """The listener's worker processes, once ``count`` of them are running."""

    def found() -> list[psutil.Process]:
        children = psutil.Process(listener.popen.pid).children()
        return [
            child
            for child in children
            if "spawn_main" in " ".join(child.cmdline())
            and child.status() != psutil.STATUS_ZOMBIE
        ]

    wait_for(
        lambda: len(found()) == count,
        timeout=60,
        message=f"{count} worker processes",
        details=listener.log_tail,
    )
    return found()


def _gone(process: psutil.Process) -> bool:
    try:
        return process.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_a_dead_worker_costs_its_message_an_ack_is_replaced_and_the_resend_is_stored(
    engine, mllp_source
):
    port = free_port()
    listener = _listener(engine, port, processes=2)
    try:
        first = _workers(listener, 2)
        with MLLPClient("127.0.0.1", port) as client:
            answer = client.send_message(mdm_message(unique_id="WORKER-0"))
        assert _ack_code(answer) == "AA"
        for worker in first:
            worker.kill()
        wait_for(
            lambda: all(_gone(worker) for worker in first),
            timeout=10,
            message="the workers to die",
        )
        message = mdm_message(unique_id="WORKER-1", content=pdf_bytes("after"))
        answers = []
        for _attempt in range(4):
            try:
                with MLLPClient("127.0.0.1", port) as client:
                    answers.append(_ack_code(client.send_message(message)))
            except OSError:
                answers.append("")
            if answers[-1] == "AA":
                break
        # A message handed to a dead worker is answered by nothing (the connection
        # closes); the resend reaches a worker started in its place.
        assert answers[0] == ""
        assert answers[-1] == "AA"
        assert set(answers[:-1]) <= {""}
        assert listener.alive
        replaced = _workers(listener, 2)
        assert not {w.pid for w in replaced} & {w.pid for w in first}
        assert Document.objects.filter(idempotency_key="WORKER-1").count() == 1
    finally:
        listener.kill()


def test_a_listener_killed_alone_leaves_no_worker_behind(engine, mllp_source):
    port = free_port()
    listener = _listener(engine, port, processes=2)
    try:
        workers = _workers(listener, 2)
        with MLLPClient("127.0.0.1", port) as client:
            answer = client.send_message(mdm_message(unique_id="ORPHAN-0"))
        assert _ack_code(answer) == "AA"
        listener.popen.kill()  # SIGKILL to the listener only, not its group
        listener.popen.wait(10)
        # Each worker sees its pipe close and exits (its database session with it).
        wait_for(
            lambda: all(_gone(worker) for worker in workers),
            timeout=30,
            message="the workers to exit",
        )
    finally:
        listener.kill()


@pytest.fixture
def drop_source(engine, tmp_path) -> SourceSystem:
    return SourceSystem.objects.create(
        code="rx1-drop",
        name="RX1 letters folder",
        channel=IntakeChannel.FILE_DROP,
        sending_organisation=engine.organisation,
        drop_folder=str(tmp_path / "drop"),
    )


def test_sigkill_mid_pick_up_neither_loses_nor_duplicates_a_file(engine, drop_source):
    folder = drop_source.drop_folder
    os.makedirs(folder, mode=0o700)
    past = time.time() - 60
    for number in range(60):
        name = os.path.join(folder, f"letter-{number}")
        with open(f"{name}.pdf", "wb") as handle:
            handle.write(pdf_bytes(f"dropped {number}"))
        with open(f"{name}.json", "w") as handle:
            json.dump(
                {
                    "unique_id": f"DROP-{number}",
                    "nhs_number": "9990000018",
                    "patient_family_name": "Testpatient",
                    "patient_birth_date": "1950-03-01",
                    "document_type": "clinic_letter",
                    "description": "Clinic letter",
                    "event_date": "2026-01-15",
                    "destination_ods_code": "A81001",
                },
                handle,
            )
        for path in (f"{name}.pdf", f"{name}.json"):
            os.utime(path, (past, past))
    watcher = Process(
        "watch",
        ["manage.py", "watch_folders", "--every", "0.1"],
        env=engine.env,
        log_path=engine.tmp_path / "watch.log",
    )
    wait_for(
        lambda: (
            Document.objects.filter(idempotency_key__startswith="DROP-").count() >= 10
        ),
        timeout=120,
        message="some files to be taken",
        details=watcher.log_tail,
    )
    watcher.kill()
    taken_before = Document.objects.count()
    assert taken_before < 60, "the kill came after every file was taken"
    again = Process(
        "watch-once",
        ["manage.py", "watch_folders", "--once"],
        env=engine.env,
        log_path=engine.tmp_path / "watch-once.log",
    )
    assert again.popen.wait(timeout=300) == 0, again.log_tail()
    keys = list(Document.objects.values_list("idempotency_key", flat=True))
    assert sorted(keys) == sorted(f"DROP-{n}" for n in range(60))
    leftovers = [
        f
        for base, _dirs, files in os.walk(folder)
        for f in files
        if not base.startswith(os.path.join(folder, "processed"))
    ]
    assert leftovers == []
    processed = os.listdir(os.path.join(folder, "processed"))
    assert len(processed) == 60
