"""How the library reports progress: two small protocols a front end implements.

The library never prints. The `bindle` CLI draws rich progress bars from these calls;
a script may pass nothing (silence) or its own implementation.
"""

from __future__ import annotations

from typing import Protocol


class Transfer(Protocol):
    """One parcel going up or down."""

    def advance(self, amount: int) -> None:
        """`amount` more bytes have passed."""

    def restart(self) -> None:
        """The transfer starts again from its first byte (a retry)."""

    def close(self) -> None:
        """The transfer is over, successful or not."""


class Progress(Protocol):
    """Receives the events of a multi-parcel operation (push, get, pull)."""

    def transfer(self, description: str, total: int) -> Transfer:
        """A transfer of `total` bytes begins."""

    def note(self, message: str) -> None:
        """Something the user should know (a parcel skipped, a partial bindle)."""


class _SilentTransfer:
    def advance(self, amount: int) -> None:
        pass

    def restart(self) -> None:
        pass

    def close(self) -> None:
        pass


class Silent:
    """Reports nothing."""

    def transfer(self, description: str, total: int) -> Transfer:
        return _SilentTransfer()

    def note(self, message: str) -> None:
        pass


SILENT_TRANSFER: Transfer = _SilentTransfer()
