"""The audit log: every event as one JSON line, in append-only files under DIRECTORY/audit/.

Files are numbered (`audit-000001.jsonl`, ...); the highest number is the current one.
Every worker process of a data directory appends to it through its own O_APPEND
descriptor, one `os.write` per line, so lines of different processes never interleave.
A process that sees the current file reach the rotation size starts the next number
with O_EXCL: of several processes doing so at once one creates it, and all move on.

With `--index postgresql://` the log is a table instead (events/audit_postgres.py), so
every node writes to one log. Both are read through `AuditReader` with an `AuditQuery`.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import re
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from bindle_server.errors import StorageUnavailable
from bindle_server.events.model import Action, Event, iso_time
from bindle_server.events.sink import EventSink
from bindle_server.threads import run_sync

_FILE = re.compile(r"^audit-(\d{6,})\.jsonl$")
# Lines parsed per worker-thread hop when reading.
_BATCH = 1000


def audit_entry(event: Event) -> dict[str, Any]:
    """The fields of one audit line: the time both as ISO 8601 (UTC, for people and log
    tools) and as unix seconds (for exact filtering), then who did what to which bindle."""
    entry: dict[str, Any] = {
        "time": iso_time(event.time),
        "unix": round(event.time, 6),
        "actor": event.actor,
        "address": event.address,
        "action": event.action.value,
        "bindle": event.bindle,
        "digest": event.digest,
        "result": event.result,
    }
    if event.detail:
        entry["detail"] = event.detail
    return entry


def event_from_entry(entry: dict[str, Any]) -> Event:
    """An audit line read back as the Event it records."""
    return Event(
        Action(entry["action"]),
        bindle=str(entry.get("bindle", "")),
        digest=str(entry.get("digest", "")),
        result=str(entry.get("result", "")),
        actor=str(entry.get("actor", "")),
        address=str(entry.get("address", "")),
        time=float(entry["unix"]),
        detail=dict(entry.get("detail") or {}),
    )


@dataclass(frozen=True)
class AuditQuery:
    """Which audit records to read; every condition given must hold.

    `actor` matches exactly, or as a prefix when it ends with ':' (`user:` is every user);
    `bindle` is a prefix of the bindle id; `actions` are exact action names.
    """

    since: float | None = None
    until: float | None = None
    actor: str | None = None
    bindle: str | None = None
    actions: frozenset[Action] = frozenset()

    def matches(self, event: Event) -> bool:
        if self.since is not None and event.time < self.since:
            return False
        if self.until is not None and event.time >= self.until:
            return False
        if self.actor is not None and not (
            event.actor == self.actor
            or (self.actor.endswith(":") and event.actor.startswith(self.actor))
        ):
            return False
        if self.bindle is not None and not event.bindle.startswith(self.bindle):
            return False
        return not self.actions or event.action in self.actions


class AuditReader(Protocol):
    def entries(self, query: AuditQuery) -> AsyncIterator[Event]:
        """The records `query` selects, oldest first."""
        ...

    @property
    def skipped(self) -> int:
        """Lines read so far that could not be parsed (a torn write, a hand edit)."""
        ...

    async def close(self) -> None: ...


class AuditFiles:
    """The EventSink that appends each event to the current audit file.

    Each record is one small `os.write` straight from the event loop, with a stat or two to
    notice rotation: measured under 0.1 ms for the whole record on a busy machine (the
    system calls take a few microseconds, JSON encoding most of the rest), less than a hop
    to a worker thread would cost. Only the flush of a full file at rotation takes one.
    """

    def __init__(self, directory: Path, rotate_bytes: int) -> None:
        self.directory = directory
        self.rotate_bytes = rotate_bytes
        self._fd: int | None = None
        self._number = 0
        # The current file and the one after it, as strings: pathlib would cost more than
        # the system calls on this path, which every change takes.
        self._here = self._following = ""

    @property
    def current(self) -> Path:
        return self._path(self._number)

    def _path(self, number: int) -> Path:
        return self.directory / f"audit-{number:06d}.jsonl"

    async def ready(self) -> None:
        self._check()

    async def record(self, event: Event) -> None:
        if self._fd is None:  # else `ready` has just checked it (refusals come without)
            self._check()
        assert self._fd is not None
        line = json.dumps(audit_entry(event), ensure_ascii=False, separators=(",", ":")) + "\n"
        data = line.encode()
        try:
            # No fsync per line: the write is in the kernel once os.write returns, so it
            # survives a crash of this process; only a power loss can drop the latest lines.
            # Flushing the disk for every parcel and invoice would double the flushes of
            # each change (the change itself is fsynced), for that one case.
            written = os.write(self._fd, data)
        except OSError as exc:
            raise _unavailable(self.current, exc) from exc
        if written != len(data):  # only a full disk cuts a write to a regular file short
            self._close()
            raise StorageUnavailable(f"the audit log {self.current} is full")
        if os.fstat(self._fd).st_size >= self.rotate_bytes:
            await self._rotate()

    async def close(self) -> None:
        self._close()

    def _check(self) -> None:
        """Make sure the open descriptor is still the file at the current path (someone
        may have moved or removed it), else (re)open the current file."""
        try:
            if self._fd is not None:
                if self._still_current(self._fd):
                    return
                self._close()
            self._open(max(_numbers(self.directory), default=1))
        except OSError as exc:
            self._close()
            raise _unavailable(self.current if self._number else self.directory, exc) from exc

    def _still_current(self, fd: int) -> bool:
        try:
            here = os.stat(self._here)
        except OSError:  # moved or removed: reopening says why if it cannot
            return False
        mine = os.fstat(fd)
        # Another process may have rotated: follow it, so that lines stay in order across
        # files (a stat of a missing file costs about a microsecond).
        rotated = os.path.exists(self._following)
        return (here.st_ino, here.st_dev) == (mine.st_ino, mine.st_dev) and not rotated

    def _open(self, number: int, *, exclusive: bool = False) -> None:
        self.directory.mkdir(mode=0o750, parents=True, exist_ok=True)
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC
        fd = os.open(self._path(number), flags | (os.O_EXCL if exclusive else 0), 0o640)
        self._close()
        self._fd, self._number = fd, number
        self._here, self._following = str(self._path(number)), str(self._path(number + 1))

    async def _rotate(self) -> None:
        """Move on to the next file, then flush the full one, once, as it is closed."""
        assert self._fd is not None
        full, path = self._fd, self.current
        # Detached first: records made while the flush runs go to the next file.
        self._fd = None
        try:
            # FileExistsError: another process rotated first, and the next record follows.
            with contextlib.suppress(FileExistsError):
                self._open(self._number + 1, exclusive=True)
            # Every process flushes the file it leaves (after the next one exists, so no
            # line of its own comes later), in a worker thread: up to rotate_bytes of it
            # may still be in the page cache, too long a wait for the event loop.
            await run_sync(os.fsync, full)
        except OSError as exc:
            raise _unavailable(path, exc) from exc
        finally:
            os.close(full)

    def _close(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)


class AuditFileReader:
    """Reads the audit files of a directory in order, across rotations."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._skipped = 0

    @property
    def skipped(self) -> int:
        return self._skipped

    async def entries(self, query: AuditQuery) -> AsyncIterator[Event]:
        lines = self._scan(query)
        while batch := await run_sync(lambda: list(itertools.islice(lines, _BATCH))):
            for event in batch:
                yield event

    def _scan(self, query: AuditQuery) -> Iterator[Event]:
        for number in sorted(_numbers(self.directory)):
            path = self.directory / f"audit-{number:06d}.jsonl"
            try:
                # A file last written before `since` holds only older lines.
                if query.since is not None and path.stat().st_mtime < query.since:
                    continue
                with path.open("rb") as lines:
                    for raw in lines:
                        event = self._parse(raw)
                        if event is not None and query.matches(event):
                            yield event
            except FileNotFoundError:  # removed by the operator while we read
                continue

    def _parse(self, raw: bytes) -> Event | None:
        if not raw.strip():
            return None
        try:
            return event_from_entry(json.loads(raw))
        except (ValueError, KeyError, TypeError):
            self._skipped += 1
            return None

    async def close(self) -> None:
        return None


def _numbers(directory: Path) -> list[int]:
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return []
    return [int(match.group(1)) for name in names if (match := _FILE.match(name))]


def _unavailable(path: Path, exc: OSError) -> StorageUnavailable:
    reason = exc.strerror or type(exc).__name__
    return StorageUnavailable(f"the audit log cannot be written ({reason}: {path})")


async def open_audit(index_url: str | None, directory: Path, rotate_bytes: int) -> EventSink:
    """The audit sink: a table beside a PostgreSQL index, else files in DIRECTORY/audit/."""
    if index_url:
        from bindle_server.events.audit_postgres import AuditTable

        return await AuditTable.open(index_url)
    return AuditFiles(directory / "audit", rotate_bytes)


async def open_audit_reader(index_url: str | None, directory: Path) -> AuditReader:
    """A reader of the log `open_audit` writes to with the same settings."""
    if index_url:
        from bindle_server.events.audit_postgres import AuditTable

        return await AuditTable.open(index_url)
    return AuditFileReader(directory / "audit")
