"""A collector killed with SIGKILL at any point leaves a consistent store; the next run
finishes the job."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from bindle_server.api.app import create_app
from bindle_server.config import Settings
from bindle_server.model import BindleId
from bindle_server.service import BindleService
from tests.factories import make_invoice, parcel
from tests.lifecycle.conftest import push
from tests.servers import run_command

pytestmark = pytest.mark.slow
KILLS = 8


def test_gc_killed_again_and_again_leaves_a_sound_store_that_the_next_run_finishes(
    data_dir: Path,
) -> None:
    kept = make_invoice("kept", parcels=[parcel(f"kept {n}") for n in range(5)])
    with TestClient(create_app(Settings(directory=data_dir)), base_url="http://t/v1") as api:
        push(api, kept)
        service = api.app.state.service  # type: ignore[attr-defined]
        assert isinstance(service, BindleService) and api.portal is not None
        for n in range(30):
            garbage = make_invoice(f"garbage/{n}", parcels=[parcel(f"g{n}.{m}") for m in range(10)])
            push(api, garbage)
            api.portal.call(service.purge, BindleId.parse(garbage.bindle_id))
    time.sleep(1.1)  # older than the one-second grace below

    rng = random.Random(11)
    command = [sys.executable, "-m", "bindle_server", "gc", "--gc-grace", "1s", "-d", str(data_dir)]
    total = _parcel_count(data_dir)
    killed_mid_sweep = 0
    for _ in range(KILLS):
        before = _parcel_count(data_dir)
        collector = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        # Kill it once it has removed a few parcels: in the middle of its sweep, at a
        # different point each time.
        target = before - rng.randint(1, 25)
        deadline = time.monotonic() + 60
        while collector.poll() is None and _parcel_count(data_dir) > target:
            assert time.monotonic() < deadline, "the collector made no progress"
            time.sleep(0.005)
        collector.send_signal(signal.SIGKILL)
        collector.wait(15)
        killed_mid_sweep += len(kept.parcels) < _parcel_count(data_dir) < before
    assert killed_mid_sweep >= KILLS // 2, (total, killed_mid_sweep)

    # A run killed between a parcel's unlink and its directory's rmdir leaves the
    # directory, whose time the unlink just set: it is as young as a writer's about to
    # publish, so collections within the grace rightly keep it. Let the grace pass.
    time.sleep(1.1)
    finished = run_command("gc", "--gc-grace", "1s", "--format", "json", "-d", str(data_dir))
    assert finished.returncode == 0, finished.stderr
    stored = {p.name for p in (data_dir / "parcels").iterdir()}
    assert stored == {p.sha256 for p in kept.parcels}
    check = run_command("fsck", "-d", str(data_dir))
    assert check.returncode == 0, check.stdout + check.stderr
    with TestClient(create_app(Settings(directory=data_dir)), base_url="http://t/v1") as api:
        for p in kept.parcels:
            assert api.get(f"/_i/{kept.bindle_id}@{p.sha256}").content == p.data


def _parcel_count(data_dir: Path) -> int:
    return sum(1 for _ in (data_dir / "parcels").iterdir())
