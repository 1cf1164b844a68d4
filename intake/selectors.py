"""Intake's reads: the source system an MDM message names.

The source system is read afresh for every message, but the ORM's query with its
sending organisation costs more CPU to build than the database takes to answer
(about 2 ms a message on the bench machine). So each process keeps the instances it
loaded, with the raw row they were loaded from; every message reads that row again
with one plain query (every column of the source system and of its sending
organisation) and reuses the instances only when the row is the same, column for
column. A change in the admin (deactivated, another certificate, another mapping)
is seen by the very next message.
"""

from __future__ import annotations

import threading

from django.db import connection

from docflow.models import SendingOrganisation
from intake.models import IntakeChannel, SourceSystem


class _Loaded:
    """One source system as loaded, and the row it was loaded from."""

    __slots__ = ("row", "source")

    def __init__(self, row: tuple, source: SourceSystem) -> None:
        self.row = row
        self.source = source


_cache = threading.local()


def _row_sql() -> str:
    """The row query. Only names from the models' own metadata go into the text;
    every value is a parameter."""
    quote = connection.ops.quote_name
    source, organisation = SourceSystem._meta, SendingOrganisation._meta
    columns = ", ".join(
        [f"s.{quote(f.column)}" for f in source.concrete_fields]
        + [f"o.{quote(f.column)}" for f in organisation.concrete_fields]
    )
    join = (
        f"o.{quote(organisation.pk.column)} = "
        f"s.{quote(source.get_field('sending_organisation').column)}"
    )
    where = " AND ".join(
        f"s.{quote(source.get_field(name).column)} = %s"
        for name in ("channel", "is_active", "sending_facility", "sending_application")
    )
    return (
        f"SELECT {columns} FROM {quote(source.db_table)} s "  # noqa: S608
        f"JOIN {quote(organisation.db_table)} o ON {join} WHERE {where} "
        f"ORDER BY s.{quote(source.pk.column)} LIMIT 1"
    )


def mllp_source_system(*, facility: str, application: str) -> SourceSystem | None:
    """The active MLLP source system with this MSH-4 and MSH-3, as it is now, with
    its sending organisation; None when there is none."""
    with connection.cursor() as cursor:
        cursor.execute(_row_sql(), [IntakeChannel.MLLP, True, facility, application])
        row = cursor.fetchone()
    if row is None:
        return None
    loaded: dict[tuple[str, str, str], _Loaded] = getattr(_cache, "loaded", None)
    if loaded is None:
        loaded = _cache.loaded = {}
    # Per database alias too: tests switch databases under one process.
    key = (connection.alias, facility, application)
    entry = loaded.get(key)
    if entry is not None and entry.row == tuple(row):
        return entry.source
    source = (
        SourceSystem.objects.select_related("sending_organisation")
        .filter(
            channel=IntakeChannel.MLLP,
            is_active=True,
            sending_facility=facility,
            sending_application=application,
        )
        .order_by("pk")
        .first()
    )
    if source is None:  # changed between the two reads: nothing kept
        loaded.pop(key, None)
        return None
    # Loaded after the row was read, so at least as new: if the row has changed
    # meanwhile, the next message's row differs and the source is loaded again.
    loaded[key] = _Loaded(tuple(row), source)
    return source
