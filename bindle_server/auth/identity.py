"""Identity: who a request comes from (anonymous, an htpasswd user or a named token)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class IdentityKind(StrEnum):
    ANONYMOUS = "anonymous"
    USER = "user"
    TOKEN = "token"


@dataclass(frozen=True)
class Identity:
    """An authenticated (or anonymous) caller.

    `groups` stays empty for htpasswd users and tokens; it is the seam for identities
    whose provider asserts groups (OIDC, not implemented yet), which policies name as
    `group:NAME`.
    """

    kind: IdentityKind
    name: str = ""
    groups: frozenset[str] = frozenset()

    @property
    def is_anonymous(self) -> bool:
        return self.kind is IdentityKind.ANONYMOUS

    @property
    def subject(self) -> str:
        """How policies and messages name this caller: `user:alice`, `token:ci`, `anonymous`."""
        return "anonymous" if self.is_anonymous else f"{self.kind.value}:{self.name}"

    @property
    def subjects(self) -> frozenset[str]:
        """Every policy subject this caller matches."""
        if self.is_anonymous:
            return frozenset({"anonymous"})
        groups = {f"group:{group}" for group in self.groups}
        return frozenset({self.subject, "authenticated", "anonymous", *groups})


ANONYMOUS = Identity(IdentityKind.ANONYMOUS)


def user(name: str) -> Identity:
    return Identity(IdentityKind.USER, name)


def token(name: str) -> Identity:
    return Identity(IdentityKind.TOKEN, name)
