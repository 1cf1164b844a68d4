"""The rehearsal's figures and checks, as one dictionary (what --json prints) and
as text."""

from __future__ import annotations

import os
from collections import Counter

from operations.rehearsals.cluster.outcome import (
    DatabaseOutcome,
    SimulatorOutcome,
    Verdict,
)
from operations.rehearsals.cluster.traffic import ApiLoad, MllpLoad

# A client error counts as the killed node's doing when it was a 502 from nginx
# answered within this many seconds after the kill: requests in flight on the node
# at that moment, including connections its kernel had accepted for it and reset
# when it died. (nginx's error log must name the killed node for as many.)
IN_FLIGHT_WINDOW_SECONDS = 10.0


def client_errors(api: ApiLoad, *, killed_at: float | None) -> dict:
    """Failed attempts, and whether every one was in flight on the killed web
    node (a 502 from nginx just after the kill) and succeeded when retried."""
    failed = [s for s in api.submissions if s.failures]
    attempts = [a for s in failed for a in s.failures]
    unexplained = [
        a
        for a in attempts
        if killed_at is None
        or a.status != 502
        or not 0 <= a.ended - killed_at <= IN_FLIGHT_WINDOW_SECONDS
    ]
    return {
        "failed_attempts": len(attempts),
        "by_answer": dict(Counter(str(a.status or a.error) for a in attempts)),
        "requests_retried": len(failed),
        "retried_then_succeeded": sum(1 for s in failed if s.succeeded),
        "retried_answers": dict(Counter(str(s.final_status) for s in failed)),
        "not_from_the_killed_node": len(unexplained),
        # Seconds from the kill: when each failed attempt was sent and answered.
        "failed_attempts_timing": [
            {
                "answer": str(a.status or a.error),
                "sent": round(a.at - killed_at, 3) if killed_at else None,
                "answered": round(a.ended - killed_at, 3) if killed_at else None,
            }
            for a in attempts
        ],
    }


def rehearsal_report(
    *,
    documents: int,
    api: ApiLoad,
    mllp: MllpLoad,
    kills: dict[str, float],
    killed_web: str,
    database: DatabaseOutcome,
    simulator: SimulatorOutcome,
    web_answers: dict[str, Counter],
    nginx_answers: Counter,
    nginx_errors: Counter,
    web_addresses: dict[str, str],
    tasks: dict[str, Counter],
    cpu_seconds: dict[str, float],
    load_seconds: float,
    settle_seconds: float,
    machine: dict,
) -> tuple[dict, Verdict]:
    verdict = Verdict()
    references = [s.key for s in api.submissions] + mllp.unique_ids
    lost = [r for r in references if database.by_reference.get(r, 0) == 0]
    duplicated = [r for r in references if database.by_reference.get(r, 0) > 1]
    errors = client_errors(api, killed_at=kills.get(killed_web))
    killed_address = web_addresses[killed_web]
    in_flight = {
        name: nginx_errors.get((address, "in flight"), 0)
        for name, address in web_addresses.items()
    }
    refused = {
        name: nginx_errors.get((address, "refused"), 0)
        for name, address in web_addresses.items()
    }
    mllp_acked = mllp.codes.get("AA", 0)

    verdict.require(not lost, f"{len(lost)} documents lost")
    verdict.require(not duplicated, f"{len(duplicated)} documents stored twice")
    verdict.require(
        simulator.duplicated_keys == 0,
        f"{simulator.duplicated_keys} idempotency keys twice at the simulator",
    )
    verdict.require(
        simulator.documents_posted_twice == 0,
        f"{simulator.documents_posted_twice} documents posted twice to Connect",
    )
    verdict.require(
        database.not_settled == 0,
        f"{database.not_settled} documents neither final nor needing attention",
    )
    verdict.require(
        not database.attention_without_one_item,
        f"{len(database.attention_without_one_item)} documents needing attention "
        "without exactly one work item",
    )
    verdict.require(
        all(s.succeeded for s in api.submissions),
        "API documents that never succeeded",
    )
    verdict.require(
        errors["not_from_the_killed_node"] == 0,
        f"{errors['not_from_the_killed_node']} client errors not in flight on "
        f"{killed_web}",
    )
    other_in_flight = sum(n for name, n in in_flight.items() if name != killed_web)
    verdict.require(
        other_in_flight == 0, f"{other_in_flight} requests failed on surviving nodes"
    )
    verdict.require(
        errors["failed_attempts"] == in_flight[killed_web],
        f"client saw {errors['failed_attempts']} failures, nginx "
        f"{in_flight[killed_web]} in flight on {killed_address}",
    )
    verdict.require(mllp_acked == mllp.count, "MLLP messages never acknowledged")

    cores = os.cpu_count() or 1
    per_node = {}
    for name, answers in web_answers.items():
        served = answers.get("201", 0) + answers.get("200", 0)
        # A killed node's rate is over the time it was alive while documents came.
        alive = min(load_seconds, kills.get(name, api.finished) - api.started)
        per_node[name] = {
            "kind": "web",
            "submissions_answered": served,
            "seconds_serving": round(alive, 1),
            "per_second": round(served / max(alive, 0.001), 1),
            "killed": name in kills,
            "cpu_seconds": round(cpu_seconds.get(name, 0.0), 1),
        }
    for name, counted in tasks.items():
        total = sum(counted.values())
        per_node[name] = {
            "kind": "worker",
            "tasks_processed": total,
            "per_second": round(
                total
                / max(
                    0.001,
                    min(
                        load_seconds + settle_seconds,
                        kills.get(name, api.finished + settle_seconds) - api.started,
                    ),
                ),
                2,
            ),
            "by_task": dict(counted.most_common()),
            "killed": name in kills,
            "cpu_seconds": round(cpu_seconds.get(name, 0.0), 1),
        }
    total_cpu = sum(cpu_seconds.values())
    report = {
        "ok": verdict.ok,
        "failures": verdict.failures,
        "documents": {
            "sent": documents,
            "api": len(api.submissions),
            "mllp": mllp.count,
            "stored": sum(database.states.values()),
            "lost": len(lost),
            "stored_twice": len(duplicated),
            "by_state": dict(database.states.most_common()),
            "attention_without_one_work_item": len(database.attention_without_one_item),
        },
        "seconds": {
            "sending": round(load_seconds, 1),
            "settling_after": round(settle_seconds, 1),
            "documents_per_second_end_to_end": round(
                documents / (load_seconds + settle_seconds), 1
            ),
        },
        "kills": {
            name: round(at - api.started, 1) for name, at in sorted(kills.items())
        },
        "clients": errors,
        "nginx": {
            "answers": {str(k): v for k, v in sorted(nginx_answers.items())},
            "in_flight_on_dying_node": in_flight,
            "refused_then_next_node": refused,
        },
        "mllp": {
            "acknowledged": mllp_acked,
            "answers": mllp.codes,
            "resent": mllp.resent,
        },
        "nodes": per_node,
        "simulator": {
            "documents_per_idempotency_key": {
                str(k): v for k, v in sorted(simulator.per_key.items())
            },
            "keys_seen_twice_or_more": simulator.duplicated_keys,
            "documents_posted_twice": simulator.documents_posted_twice,
        },
        "cpu": {
            "seconds_by_process": {k: round(v, 1) for k, v in cpu_seconds.items()},
            "ms_per_document": round(total_cpu * 1000 / documents, 1),
        },
        "machine": {**machine, "cores": cores},
    }
    return report, verdict


def report_text(report: dict) -> str:
    d = report["documents"]
    s = report["seconds"]
    c = report["clients"]
    lines = [
        "docflow cluster rehearsal",
        f"  documents      {d['sent']} sent ({d['api']} API via nginx+TLS, "
        f"{d['mllp']} MLLP), {d['stored']} stored, {d['lost']} lost, "
        f"{d['stored_twice']} stored twice",
        "  by state       " + ", ".join(f"{k} {v}" for k, v in d["by_state"].items()),
        f"  attention      {d['attention_without_one_work_item']} without exactly one "
        "work item",
        f"  time           sending {s['sending']} s, settling {s['settling_after']} s "
        f"after: {s['documents_per_second_end_to_end']} documents/s end to end",
        "  killed         "
        + ", ".join(f"{k} at {v} s" for k, v in report["kills"].items()),
        f"  clients        {c['failed_attempts']} failed attempts {c['by_answer']} on "
        f"{c['requests_retried']} requests; retried with the same key: "
        f"{c['retried_then_succeeded']} succeeded {c['retried_answers']}; "
        f"{c['not_from_the_killed_node']} not explained by the kill",
        f"  nginx          answers {report['nginx']['answers']}, in flight on a "
        f"dying node {report['nginx']['in_flight_on_dying_node']}, refused and "
        f"passed on {report['nginx']['refused_then_next_node']}",
        f"  MLLP           {report['mllp']['acknowledged']} AA, answers "
        f"{report['mllp']['answers']}, resent {report['mllp']['resent']}",
    ]
    for name, node in report["nodes"].items():
        killed = " (SIGKILLed)" if node["killed"] else ""
        if node["kind"] == "web":
            lines.append(
                f"  {name:14} {node['submissions_answered']} submissions, "
                f"{node['per_second']}/s, CPU {node['cpu_seconds']} s{killed}"
            )
        else:
            lines.append(
                f"  {name:14} {node['tasks_processed']} tasks, {node['per_second']}/s, "
                f"CPU {node['cpu_seconds']} s{killed}"
            )
    sim = report["simulator"]
    lines += [
        f"  simulator      documents per idempotency key "
        f"{sim['documents_per_idempotency_key']}, documents posted twice "
        f"{sim['documents_posted_twice']}",
        f"  CPU            {report['cpu']['ms_per_document']} ms per document "
        f"{report['cpu']['seconds_by_process']}",
        f"  machine        {report['machine']}",
        "  result         "
        + ("OK" if report["ok"] else "FAILED: " + "; ".join(report["failures"])),
    ]
    return "\n".join(lines)
