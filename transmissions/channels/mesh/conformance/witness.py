"""The sequence NHS England's MESH onboarding witnesses, against one mailbox.

Handshake, endpoint lookup, send, chunked send, check inbox, download,
acknowledge, tracking: each step through the same client the channel uses, each
with its result, so a trust can rehearse onboarding against mesh-sandbox and run
the same command on its live mailbox. The messages go to the mailbox itself
(or another the operator names), carry no patient data, and have local ids that
start ``witness-``; what the witness sent is taken from the inbox and
acknowledged by the witness itself.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from audit.services import audit_record
from transmissions.channels.mesh.client import MeshMailboxClient
from transmissions.channels.mesh.connections import mesh_connection_for
from transmissions.channels.mesh.errors import MeshChannelError, MeshConfigurationError
from transmissions.models import MeshMailbox

STEPS = (
    "handshake",
    "endpoint lookup",
    "send",
    "chunked send",
    "check inbox",
    "download",
    "acknowledge",
    "tracking",
)


@dataclass(frozen=True)
class WitnessStep:
    """One step of the witnessed sequence and what happened."""

    name: str
    passed: bool
    detail: str


@dataclass
class _Sent:
    message_id: str
    local_id: str
    sha256: str


def _step(steps: list[WitnessStep], name: str, run: Callable[[], str]) -> bool:
    try:
        detail = run()
    except (MeshChannelError, MeshConfigurationError, AssertionError) as exc:
        steps.append(WitnessStep(name, False, f"{type(exc).__name__}: {exc}"))
        return False
    steps.append(WitnessStep(name, True, detail))
    return True


def mesh_witness_run(
    *,
    mailbox: MeshMailbox,
    recipient: str = "",
    workflow_id: str = "",
    lookup_ods_code: str = "",
    chunk_size: int = 1024 * 1024,
    wait_seconds: float = 30.0,
    actor: Any = None,
) -> list[WitnessStep]:
    """Run every witnessed step once against ``mailbox``; a step that fails
    stops the steps that need it. Audited with the results (no content)."""
    recipient = (recipient or mailbox.mailbox_id).upper()
    workflow_id = workflow_id or mailbox.default_workflow_id
    lookup_ods_code = lookup_ods_code or mailbox.sending_organisation.ods_code
    steps: list[WitnessStep] = []
    run_id = uuid.uuid4().hex[:12]
    sent: list[_Sent] = []
    connection = mesh_connection_for(mailbox)
    chunked = dataclasses.replace(connection, chunk_size=chunk_size)
    with MeshMailboxClient(connection) as client, MeshMailboxClient(chunked) as big:

        def handshake() -> str:
            client.handshake()
            return f"mailbox {client.mailbox_id} validated"

        def lookup() -> str:
            found = client.lookup(ods_code=lookup_ods_code, workflow_id=workflow_id)
            names = ", ".join(e.mailbox_id for e in found) or "no mailbox"
            return f"{lookup_ods_code}/{workflow_id}: {names}"

        def send(name: str, use: MeshMailboxClient, content: bytes) -> str:
            local_id = f"witness-{run_id}-{name}"
            message_id = use.send(
                recipient=recipient,
                content=content,
                workflow_id=workflow_id,
                local_id=local_id,
                filename=f"{local_id}.dat",
                subject="docflow MESH witness test",
                checksum=f"SHA256:{hashlib.sha256(content).hexdigest()}",
            )
            sent.append(
                _Sent(message_id, local_id, hashlib.sha256(content).hexdigest())
            )
            return f"message {message_id} ({len(content)} bytes)"

        if not _step(steps, "handshake", handshake):
            return _finish(mailbox, steps, actor)
        _step(steps, "endpoint lookup", lookup)
        small = f"docflow witness {run_id}".encode()
        large = os.urandom(int(chunk_size * 2.5))
        _step(steps, "send", lambda: send("single", client, small))
        _step(
            steps,
            "chunked send",
            lambda: (
                send("chunked", big, large)
                + f" in {-(-len(large) // chunk_size)} chunks"
            ),
        )
        if recipient != client.mailbox_id:
            steps.append(
                WitnessStep(
                    "check inbox",
                    True,
                    f"sent to {recipient}: its owner checks, downloads and "
                    "acknowledges; tracking follows",
                )
            )
        else:
            _inbox_steps(steps, client, sent, wait_seconds)

        def track() -> str:
            assert sent, "nothing was sent to track"
            statuses = []
            for message in sent:
                tracking = client.track(message.message_id)
                statuses.append(f"{message.message_id}: {tracking.status}")
                if recipient == client.mailbox_id:
                    assert tracking.status == "acknowledged", (
                        f"{message.message_id} is {tracking.status}"
                    )
            return "; ".join(statuses)

        _step(steps, "tracking", track)
    return _finish(mailbox, steps, actor)


def _inbox_steps(
    steps: list[WitnessStep],
    client: MeshMailboxClient,
    sent: list[_Sent],
    wait_seconds: float,
) -> None:
    waiting: list[str] = []

    def check() -> str:
        assert sent, "nothing was sent to look for"
        expected = {message.message_id for message in sent}
        deadline = time.monotonic() + wait_seconds
        while True:
            found, link = [], None
            while True:
                ids, link = client.inbox_page(next_link=link)
                found.extend(ids)
                if not link:
                    break
            waiting[:] = [i for i in found if i in expected]
            if set(waiting) == expected or time.monotonic() > deadline:
                break
            time.sleep(1)
        assert set(waiting) == expected, (
            f"{len(waiting)} of {len(expected)} witness messages in the inbox"
        )
        return f"{len(found)} waiting, the {len(expected)} witness messages among them"

    def download() -> str:
        assert waiting, "no witness message in the inbox"
        for message in sent:
            got = client.retrieve(message.message_id)
            assert got.local_id == message.local_id, "local id changed on the way"
            assert hashlib.sha256(got.content).hexdigest() == message.sha256, (
                f"{message.message_id} arrived altered"
            )
        return f"{len(sent)} downloaded whole (SHA-256 matches)"

    def acknowledge() -> str:
        for message in sent:
            client.acknowledge(message.message_id)
        left = set(client.inbox()) & {message.message_id for message in sent}
        assert not left, f"{len(left)} still in the inbox after acknowledging"
        return f"{len(sent)} acknowledged and gone from the inbox"

    if _step(steps, "check inbox", check) and _step(steps, "download", download):
        _step(steps, "acknowledge", acknowledge)


def _finish(mailbox: MeshMailbox, steps: list[WitnessStep], actor: Any):
    audit_record(
        action="mesh.witness_test",
        target_type="mesh_mailbox",
        target_id=mailbox.mailbox_id,
        data={
            "passed": all(step.passed for step in steps)
            and {step.name for step in steps} == set(STEPS),
            "steps": {step.name: step.passed for step in steps},
        },
        actor=actor,
    )
    return steps
