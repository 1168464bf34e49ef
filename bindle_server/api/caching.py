"""HTTP caching of invoices and parcels: strong `ETag`s, `If-None-Match` and `Cache-Control`.

What may be cached, and for how long, follows from what can still change:

- A parcel's bytes are named by their digest, so they never change: the digest is the
  `ETag`, and the answer is `immutable` for a year. A yank does not change the bytes; it
  only refuses them without `?yanked=true`, which the invoice (always revalidated) shows.
- A live invoice changes once more if it is yanked (`yanked = true` and a yank signature
  are added), so caches may keep it but must revalidate it on every use (`no-cache`);
  the 304 makes that cheap. A yanked invoice cannot change again: `immutable`.
- The `ETag` of an invoice is the digest of the bytes served, so TOML and JSON (`Vary:
  Accept`) and the invoice before and after its yank have different ones.

`public` is said only when an anonymous caller could read the bindle too; otherwise
`private`, so shared caches never hand one caller's answer to another.
"""

from __future__ import annotations

import re

from fastapi import Request
from starlette.responses import Response

from bindle_server.api.auth import AuthSetup
from bindle_server.auth import ANONYMOUS, Verb
from bindle_server.service.rendered import sha256_hex

# How long an answer that can never change stays fresh: a year, the usual ceiling
# (RFC 9111 section 5.2.2.1 leaves it open; RFC 8246 `immutable` says it will not change).
IMMUTABLE_SECONDS = 365 * 24 * 3600

# One list member of `If-None-Match` (RFC 9110 section 8.8.3): an optional weak prefix
# (`W/`, case-sensitive) and a quoted opaque tag, whose characters exclude `"`, space and
# controls. Header values arrive latin-1 decoded, so obs-text is \x80-\xff.
_ENTITY_TAG = re.compile(r'[ \t]*(?:W/)?("[\x21\x23-\x7e\x80-\xff]*")[ \t]*(?:,|$)')


def strong_tag(sha256: str) -> str:
    """The strong `ETag` of bytes whose SHA-256 (hex) this is."""
    return f'"{sha256}"'


async def entity_tag(body: bytes) -> str:
    """A strong `ETag` for exactly these bytes: their SHA-256, quoted."""
    return strong_tag(await sha256_hex(body))


def none_match(request: Request, etag: str) -> bool:
    """Whether `If-None-Match` names `etag` (or is `*`), so a GET or HEAD gets 304.

    RFC 9110 section 13.1.2 uses the weak comparison: `W/"x"` matches `"x"`. Several
    header lines count as one comma-separated list. A field that does not parse as a
    list of entity tags is ignored: a full 200 is always a correct answer, a wrong 304
    never is.
    """
    lines = request.headers.getlist("if-none-match")
    if not lines:
        return False
    value = ",".join(lines).strip(" \t")
    if value == "*":
        # Only called once the resource is known to exist.
        return True
    return etag in _entity_tags(value)


def _entity_tags(value: str) -> set[str]:
    tags: set[str] = set()
    position = 0
    while position < len(value):
        if value[position] in " \t,":
            # Empty list members are allowed (RFC 9110 section 5.6.1).
            position += 1
            continue
        match = _ENTITY_TAG.match(value, position)
        if match is None:
            return set()
        tags.add(match.group(1))
        position = match.end()
    return tags


def cache_control(*, shared: bool, final: bool) -> str:
    """`Cache-Control` for an answer; `final` when its bytes can never change again."""
    audience = "public" if shared else "private"
    if final:
        return f"{audience}, max-age={IMMUTABLE_SECONDS}, immutable"
    return f"{audience}, no-cache"


def readable_by_anyone(request: Request, name: str) -> bool:
    """Whether an anonymous caller may read bindle `name`, so shared caches may keep it."""
    setup: AuthSetup = request.app.state.auth
    return setup.authorizer.allows(ANONYMOUS, Verb.READ, name)


def not_modified(headers: dict[str, str]) -> Response:
    """A 304 with the validator and caching headers a 200 would carry (RFC 9110 15.4.5)."""
    return Response(status_code=304, headers=headers)
