"""Request ids made by the server: unique across requests and across forked workers."""

from __future__ import annotations

import os
import re

from bindle_server.api.requestid import new_request_id


def test_ids_are_32_hex_digits_and_never_repeat() -> None:
    ids = [new_request_id() for _ in range(10_000)]
    assert all(re.fullmatch(r"[0-9a-f]{32}", made) for made in ids)
    assert len(set(ids)) == len(ids)


def test_a_forked_worker_makes_ids_of_its_own() -> None:
    parent = new_request_id()
    reader, writer = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: one id, then out without running any of pytest's teardown
        os.write(writer, new_request_id().encode())
        os._exit(0)
    os.close(writer)
    child = os.read(reader, 64).decode()
    os.close(reader)
    os.waitpid(pid, 0)
    # The same counter position in both: only a fresh random part tells them apart.
    assert child[:16] != parent[:16]
    assert child != new_request_id()
