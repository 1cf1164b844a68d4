"""Prometheus metrics: domain gauges collected at scrape time into a registry of
our own (never the process-global default registry)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily

from audit.sealing import audit_seal_lag
from casework.models import WorkItemCategory
from docflow.leases import leases_held_by_name
from operations import selectors
from transmissions.models import MeshQuarantineKind


class DomainCollector:
    """Documents by state, the oldest ready age, open incidents, open work items,
    the audit sealer's lag, open halts, MESH answers kept for a person and singleton
    leases, read from the database at each scrape."""

    def collect(self):
        documents = GaugeMetricFamily(
            "docflow_documents", "Documents by lifecycle state.", labels=["state"]
        )
        counts, taken_at = selectors.documents_by_state()
        for state, count in counts.items():
            documents.add_metric([state], count)
        yield documents
        if taken_at is not None:
            yield GaugeMetricFamily(
                "docflow_documents_counted_at_seconds",
                "When docflow_documents was counted (Unix time; the watch recounts "
                "every minute).",
                value=taken_at.timestamp(),
            )

        yield GaugeMetricFamily(
            "docflow_oldest_ready_document_age_seconds",
            "Seconds the longest-waiting ready document has waited.",
            value=selectors.oldest_ready_age_seconds(),
        )

        incidents = GaugeMetricFamily(
            "docflow_incidents_open",
            "Unresolved incidents by kind and severity.",
            labels=["kind", "severity"],
        )
        for (kind, severity), count in selectors.incidents_open_counts().items():
            incidents.add_metric([kind, severity], count)
        yield incidents

        work_items = GaugeMetricFamily(
            "docflow_work_items_open",
            "Open or assigned work items by category.",
            labels=["category"],
        )
        open_items = selectors.work_items_open_by_category()
        for category in WorkItemCategory.values:
            work_items.add_metric([category], open_items.get(category, 0))
        yield work_items

        lag = audit_seal_lag()
        yield GaugeMetricFamily(
            "docflow_audit_unsealed_events",
            "Audit events committed but not yet chained by the sealer.",
            value=lag.pending,
        )
        yield GaugeMetricFamily(
            "docflow_audit_seal_lag_seconds",
            "Seconds the oldest unsealed audit event has waited for the sealer.",
            value=lag.oldest_age_seconds,
        )

        halts = GaugeMetricFamily(
            "docflow_outbound_halts_open",
            "Open outbound halts by kind.",
            labels=["kind"],
        )
        for kind, count in selectors.outbound_halts_open_counts().items():
            halts.add_metric([kind], count)
        yield halts

        kept, oldest_kept = selectors.mesh_answers_kept_open()
        answers = GaugeMetricFamily(
            "docflow_mesh_answers_kept_open",
            "MESH answers kept for a person (unreadable, unmatched, suspicious) and "
            "not yet applied or dismissed, by kind.",
            labels=["kind"],
        )
        for kind in MeshQuarantineKind.values:
            answers.add_metric([kind], kept.get(kind, 0))
        yield answers
        yield GaugeMetricFamily(
            "docflow_mesh_answer_kept_oldest_age_seconds",
            "Seconds the oldest open kept MESH answer has waited for a person.",
            value=oldest_kept,
        )

        leases = GaugeMetricFamily(
            "docflow_lease_held",
            "Whether a live holder has each singleton job's lease (1) or not (0): "
            "the tracker's should stay 1.",
            labels=["name"],
        )
        for name, held in sorted(leases_held_by_name().items()):
            leases.add_metric([name], int(held))
        yield leases


def metrics_text() -> bytes:
    """One scrape in the Prometheus text format."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(DomainCollector())
    return generate_latest(registry)
