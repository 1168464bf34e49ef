"""HTTP `Range` and `If-Range` for downloads (RFC 9110 section 14), single ranges only."""

from __future__ import annotations

import re
from collections.abc import Mapping

from bindle_server.errors import RangeNotSatisfiable

_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The half-open byte range [start, end) that `header` asks for, or None for everything.

    Headers this server does not handle (other units, several ranges, malformed ones) are
    ignored, as RFC 9110 allows, so the client gets the whole parcel with 200.
    """
    if header is None:
        return None
    match = _RANGE.match(header.strip())
    if match is None:
        return None
    first, last = match.groups()
    if not first and not last:
        return None
    if not first:
        # A suffix range: the last N bytes.
        length = int(last)
        if length == 0:
            raise RangeNotSatisfiable(size)
        return max(size - length, 0), size
    start = int(first)
    end = size if not last else min(int(last) + 1, size)
    if last and int(last) < start:
        return None
    if start >= size:
        raise RangeNotSatisfiable(size)
    return start, end


def requested_range(
    request_headers: Mapping[str, str], etag: str, size: int, answer: dict[str, str]
) -> tuple[int, int, int]:
    """(status, start, end) of the answer to a GET of `size` bytes validated by `etag`:
    206 with the range asked for, or 200 with everything. Adds `Content-Range` (on 206)
    and `Content-Length` to the `answer` headers."""
    header = request_headers.get("range")
    if_range = request_headers.get("if-range")
    if if_range is not None and if_range.strip() != etag:
        # If-Range with another validator (or a date): the client's part is stale.
        header = None
    byte_range = parse_range(header, size)
    status, (start, end) = 200, (0, size)
    if byte_range is not None:
        status, (start, end) = 206, byte_range
        answer["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
    answer["Content-Length"] = str(end - start)
    return status, start, end
