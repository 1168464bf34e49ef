"""Webhooks: which endpoints hear of which invoice events, and what each request carries.

A webhook comes from `--webhook URL` (every public event, signed with `--webhook-secret`)
or from a `[[webhook]]` entry of `--webhooks-file`, which may narrow it to some events
and to bindle names under some prefixes. Each event becomes one JSON body, signed with
an HMAC-SHA256 of its exact bytes so that the receiver can tell it came from us.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import tomllib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from bindle_server.events.model import PUBLIC, Action, Event, iso_time

SIGNATURE_HEADER = "X-Bindle-Signature"
DELIVERY_HEADER = "X-Bindle-Delivery"
EVENT_HEADER = "X-Bindle-Event"

_ENTRY_KEYS = {"url", "name", "secret", "events", "prefixes"}


class InvalidWebhookConfig(ValueError):
    """A `--webhook` URL or a `[[webhook]]` entry the server cannot use."""


@dataclass(frozen=True)
class Webhook:
    """One endpoint. `name` keys its queue and cursor, so it must stay the same across
    restarts for nothing to be lost or sent twice. It is stored, listed and logged, so
    it defaults to the URL's scheme and host and a hash of the whole URL: a token in its
    user, path or query (as Slack's and Discord's carry) is not shown."""

    url: str
    name: str
    secret: str | None = None
    events: frozenset[Action] = PUBLIC
    prefixes: tuple[str, ...] = ()

    def wants(self, event: Event) -> bool:
        """Whether this webhook is told about `event`."""
        if event.action not in self.events:
            return False
        return not self.prefixes or event.name.startswith(self.prefixes)

    def signature(self, body: bytes) -> str | None:
        """The `X-Bindle-Signature` value for `body` (None without a secret)."""
        return sign(self.secret, body) if self.secret else None


def sign(secret: str, body: bytes) -> str:
    """`sha256=` and the hex HMAC-SHA256 of `body` keyed with `secret`."""
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def payload(event: Event) -> bytes:
    """The JSON body of a delivery: the journaled event, as a receiver needs it."""
    body = {**event.public_fields(), "time": iso_time(event.time), "actor": event.actor}
    if event.detail:
        body["detail"] = event.detail
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()


def load_webhooks(urls: Sequence[str], secret: str | None, file: Path | None) -> list[Webhook]:
    """The webhooks of `--webhook` (all signed with `secret`) and of the `[[webhook]]`
    entries in `file`; InvalidWebhookConfig names the first one that is not usable."""
    hooks = [Webhook(_checked_url(url, "--webhook"), _public_name(url), secret) for url in urls]
    if file is not None:
        hooks.extend(_read_file(file, secret))
    names = [hook.name for hook in hooks]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise InvalidWebhookConfig(
            f"webhook {duplicates[0]} is configured twice; give the entries distinct `name`s"
        )
    return hooks


def _read_file(path: Path, secret: str | None) -> list[Webhook]:
    try:
        document = tomllib.loads(path.read_text())
    except OSError as exc:
        raise InvalidWebhookConfig(f"cannot read webhooks file {path}: {exc.strerror}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise InvalidWebhookConfig(f"webhooks file {path} is not valid TOML: {exc}") from None
    extra = set(document) - {"webhook"}
    entries = document.get("webhook", [])
    if extra or not isinstance(entries, list):
        raise InvalidWebhookConfig(f"webhooks file {path} holds only [[webhook]] entries")
    return [
        _entry(item, f"{path}: webhook {number}", secret) for number, item in enumerate(entries, 1)
    ]


def _entry(item: object, where: str, secret: str | None) -> Webhook:
    if not isinstance(item, dict):
        raise InvalidWebhookConfig(f"{where} is not a table")
    unknown = sorted(set(item) - _ENTRY_KEYS)
    if unknown:
        raise InvalidWebhookConfig(f"{where}: unknown key {unknown[0]!r}")
    url = _checked_url(_text(item.get("url"), f"{where}: url"), f"{where}: url")
    name = _text(item.get("name", _public_name(url)), f"{where}: name")
    own_secret = item.get("secret", secret)
    if own_secret is not None:
        own_secret = _text(own_secret, f"{where}: secret")
    events = frozenset(_actions(_texts(item.get("events"), f"{where}: events"), where))
    prefixes = tuple(_texts(item.get("prefixes"), f"{where}: prefixes"))
    return Webhook(url, name, own_secret, events or PUBLIC, prefixes)


def _actions(names: Iterable[str], where: str) -> list[Action]:
    allowed = sorted(action.value for action in PUBLIC)
    actions = []
    for name in names:
        if name not in allowed:
            raise InvalidWebhookConfig(
                f"{where}: unknown event {name!r}; expected some of {', '.join(allowed)}"
            )
        actions.append(Action(name))
    return actions


def _text(value: object, what: str) -> str:
    if not isinstance(value, str) or not value:
        raise InvalidWebhookConfig(f"{what} must be a non-empty string")
    return value


def _texts(value: object, what: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise InvalidWebhookConfig(f"{what} must be a list of strings")
    return [_text(item, what) for item in value]


def _checked_url(url: str, what: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidWebhookConfig(f"{what}: {url!r} is not an http:// or https:// URL")
    return url


def _public_name(url: str) -> str:
    """`https://hooks.example.com/…#3f2a9c41`: what of `url` can be shown (its scheme,
    host and port) and a stable hash that tells webhooks on one host apart."""
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    digest = hashlib.sha256(url.encode()).hexdigest()[:8]
    return f"{parts.scheme}://{host}/…#{digest}"
