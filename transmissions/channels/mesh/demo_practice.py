"""The demo's GP practice on the MESH sandbox: it reads what arrives in its mailbox
and answers each message with ITK3 acknowledgements, as a practice system would.

Run beside ``scripts/run-mesh-sandbox``::

    .venv/bin/python -m transmissions.channels.mesh.demo_practice

It needs no Django; it speaks MESH only through our client. The answer is 20013
then 30001 (filed, patient known) unless ``DOCFLOW_MESH_DEMO_ANSWER`` names another
business code (30002 or 30003) to show a rejection.
"""

from __future__ import annotations

import logging
import os
import time

from transmissions.channels.mesh import itk3
from transmissions.channels.mesh.client import MeshConnection, MeshMailboxClient
from transmissions.channels.mesh.errors import MeshChannelError

logger = logging.getLogger("docflow.mesh.demo_practice")


def answer_waiting(client: MeshMailboxClient, *, business_code: str) -> int:
    """Answer every message waiting in the practice's inbox; returns how many."""
    answered = 0
    for message_id in client.inbox():
        message = client.retrieve(message_id)
        if message.is_report or message.workflow_id.upper().endswith("_ACK"):
            client.acknowledge(message_id)
            continue
        response_to = itk3.message_header_id(message.content)
        for code in (itk3.INFRASTRUCTURE_OK, business_code):
            client.send(
                recipient=message.sender,
                content=itk3.response_message(
                    response_to=response_to,
                    code=code,
                    sender_mailbox=client.mailbox_id,
                ),
                workflow_id=f"{message.workflow_id}_ACK",
                local_id=f"{message_id}-{code}",
                filename="response.json",
                content_type="application/fhir+json",
            )
        client.acknowledge(message_id)
        answered += 1
    return answered


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    port = os.environ.get("DOCFLOW_MESH_SANDBOX_PORT", "8700")
    directory = os.environ.get("DOCFLOW_MESH_SANDBOX_DIR", "var/mesh-sandbox")
    connection = MeshConnection(
        url=os.environ.get("DOCFLOW_MESH_BASE_URL", f"https://127.0.0.1:{port}"),
        mailbox_id=os.environ.get("DOCFLOW_MESH_DEMO_PRACTICE_MAILBOX", "X26ABC2"),
        password=os.environ.get("DOCFLOW_MESH_DEMO_PRACTICE_PASSWORD", "password"),
        shared_key=os.environ.get("MESH_SANDBOX_SHARED_KEY", "TestKey"),
        ca_cert=os.environ.get("DOCFLOW_MESH_CA_CERT", f"{directory}/ca.pem"),
        max_retries=0,
    )
    business_code = os.environ.get("DOCFLOW_MESH_DEMO_ANSWER", itk3.PATIENT_KNOWN)
    interval = float(os.environ.get("DOCFLOW_MESH_DEMO_POLL_SECONDS", "5"))
    logger.info("Demo practice %s answering on MESH", connection.mailbox_id)
    while True:
        try:
            with MeshMailboxClient(connection) as client:
                answered = answer_waiting(client, business_code=business_code)
            if answered:
                logger.info("Answered %d message(s)", answered)
        except (MeshChannelError, OSError) as exc:
            logger.info("MESH sandbox not answering yet (%s)", type(exc).__name__)
        time.sleep(interval)


if __name__ == "__main__":
    main()
