"""The audit log as a PostgreSQL table beside the index, so that every node writes to one
log; an EventSink and an AuditReader."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import psycopg

from bindle_server.errors import StorageUnavailable
from bindle_server.events.audit import AuditQuery
from bindle_server.events.model import Action, Event
from bindle_server.pgpool import Pool

# Applied at open; IF NOT EXISTS and the lock keep it idempotent across nodes starting at once.
# `time` is a timestamptz so that operators can query the table with SQL dates.
_SCHEMA = """
CREATE TABLE IF NOT EXISTS audit (
    id      BIGSERIAL PRIMARY KEY,
    time    TIMESTAMPTZ NOT NULL,
    actor   TEXT NOT NULL,
    address TEXT NOT NULL,
    action  TEXT NOT NULL,
    bindle  TEXT NOT NULL,
    digest  TEXT NOT NULL,
    result  TEXT NOT NULL,
    detail  JSONB NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_by_time ON audit (time);
"""
# Serialises schema creation across nodes (any constant shared by them; "bindle" + "A0D1").
_SCHEMA_LOCK = 0x62696E646C65A0D1
# Rows fetched per query when reading.
_BATCH = 1000


class AuditTable:
    def __init__(self, pool: Pool) -> None:
        self.pool = pool

    @classmethod
    async def open(cls, conninfo: str) -> AuditTable:
        table = cls(Pool(conninfo, size=4))
        try:
            await table.pool.apply_schema(_SCHEMA, _SCHEMA_LOCK)
        except BaseException:
            await table.pool.close()
            raise
        return table

    async def ready(self) -> None:
        # Nothing to check: the table lives in the index's database, which the change
        # writes to as well, so a database that could not take the record fails the
        # change too. `record` failing is the same narrow gap as a disk failing on files.
        return None

    async def record(self, event: Event) -> None:
        try:
            async with self.pool.connection() as db:
                await db.execute(
                    "INSERT INTO audit (time, actor, address, action, bindle, digest, result,"
                    " detail) VALUES (to_timestamp(%s), %s, %s, %s, %s, %s, %s, %s)",
                    (
                        event.time,
                        _text(event.actor),
                        _text(event.address),
                        event.action.value,
                        _text(event.bindle),
                        _text(event.digest),
                        _text(event.result),
                        json.dumps(_json(event.detail)),
                    ),
                )
        except psycopg.OperationalError as exc:
            raise StorageUnavailable(f"the audit log cannot be written: {exc}") from exc

    @property
    def skipped(self) -> int:
        return 0  # every row has every field

    async def entries(self, query: AuditQuery) -> AsyncIterator[Event]:
        where, values = _conditions(query)
        last = 0
        while True:
            async with self.pool.connection() as db:
                cursor = await db.execute(
                    "SELECT id, extract(epoch FROM time), actor, address, action, bindle,"
                    f" digest, result, detail FROM audit WHERE id > %s{where}"
                    " ORDER BY id LIMIT %s",
                    (last, *values, _BATCH),
                )
                rows = await cursor.fetchall()
            for row in rows:
                yield _event(row)
            if len(rows) < _BATCH:
                return
            last = int(rows[-1][0])

    async def close(self) -> None:
        await self.pool.close()


def _conditions(query: AuditQuery) -> tuple[str, list[Any]]:
    """The SQL conditions (each after an AND) and their values."""
    where: list[str] = []
    values: list[Any] = []
    if query.since is not None:
        where.append("time >= to_timestamp(%s)")
        values.append(query.since)
    if query.until is not None:
        where.append("time < to_timestamp(%s)")
        values.append(query.until)
    if query.actor is not None:
        if query.actor.endswith(":"):
            where.append("starts_with(actor, %s)")
        else:
            where.append("actor = %s")
        values.append(query.actor)
    if query.bindle is not None:
        where.append("starts_with(bindle, %s)")
        values.append(query.bindle)
    if query.actions:
        where.append("action = ANY(%s)")
        values.append(sorted(action.value for action in query.actions))
    return "".join(f" AND {condition}" for condition in where), values


def _text(value: str) -> str:
    """`value` as PostgreSQL can store it, whatever a client put into it: text and JSONB
    hold no NUL, nor a lone surrogate (Python can decode one from a JSON escape). Either
    would fail the insert, and with it the request; U+FFFD and '?' stand in for them."""
    if "\x00" in value:
        value = value.replace("\x00", "\ufffd")
    if not value.isascii():
        value = value.encode("utf-8", "replace").decode("utf-8")
    return value


def _json(value: Any) -> Any:
    """A detail value with every string (keys too) made storable by `_text`."""
    if isinstance(value, str):
        return _text(value)
    if isinstance(value, dict):
        return {_text(key) if isinstance(key, str) else key: _json(v) for key, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json(item) for item in value]
    return value


def _event(row: tuple[Any, ...]) -> Event:
    _, unix, actor, address, action, bindle, digest, result, detail = row
    return Event(
        Action(action),
        bindle=bindle,
        digest=digest,
        result=result,
        actor=actor,
        address=address,
        time=float(unix),
        detail=dict(detail or {}),
        id=int(row[0]),
    )
