"""On an object store the index records which parcels are stored (backend.IndexedParcels):
`missing` is one query; the bucket stays the truth and the record heals from it."""

from __future__ import annotations

import hashlib

import psycopg
import pytest

from bindle_server.backend import IndexedParcels, open_backend
from tests.rgw import S3Server
from tests.storage.contract import chunks_of

pytestmark = pytest.mark.anyio

DATA = [f"parcel {n}".encode() * 1000 for n in range(3)]
SHAS = [hashlib.sha256(data).hexdigest() for data in DATA]


def _recorded(postgres_url: str) -> dict[str, int]:
    with psycopg.connect(postgres_url) as db:
        return dict(db.execute("SELECT sha256, size FROM parcels").fetchall())


async def test_stored_parcels_are_recorded_and_missing_is_answered_from_the_index(
    s3_url: str, postgres_url: str
) -> None:
    async with open_backend(s3_url, postgres_url) as backend:
        parcels = backend.stores.parcels
        assert isinstance(parcels, IndexedParcels)
        assert await parcels.missing(SHAS) == set(SHAS)
        await parcels.write(SHAS[0], len(DATA[0]), chunks_of(DATA[0]))
        assert _recorded(postgres_url) == {SHAS[0]: len(DATA[0])}
        assert await parcels.missing(SHAS) == set(SHAS[1:])
        assert await parcels.stored_sizes(SHAS) == {SHAS[0]: len(DATA[0])}
        await parcels.quarantine(SHAS[0])
        assert _recorded(postgres_url) == {}
        assert await parcels.missing(SHAS[:1]) == {SHAS[0]}


async def test_a_parcel_stored_but_not_recorded_is_recorded_when_asked_about(
    s3_url: str, s3_server: S3Server, s3_bucket: str, postgres_url: str
) -> None:
    # What a node leaves when it dies between the bucket's commit and the index's record.
    client = s3_server.client()
    try:
        client.put_object(
            Bucket=s3_bucket, Key=f"bindle/parcels/{SHAS[1]}/parcel.dat", Body=DATA[1]
        )
    finally:
        client.close()
    async with open_backend(s3_url, postgres_url) as backend:
        parcels = backend.stores.parcels
        # The fresh index was filled from a listing of the bucket at start.
        assert await parcels.missing(SHAS) == {SHAS[0], SHAS[2]}
    with psycopg.connect(postgres_url, autocommit=True) as db:
        db.execute("DELETE FROM parcels")  # the record lost, as after that node's death
    async with open_backend(s3_url, postgres_url) as backend:
        parcels = backend.stores.parcels
        assert SHAS[1] in await parcels.missing(SHAS)
        # A client re-uploading it asks first whether it exists: the store says yes.
        assert await parcels.exists(SHAS[1])
        assert await parcels.missing(SHAS) == {SHAS[0], SHAS[2]}
    assert _recorded(postgres_url) == {SHAS[1]: len(DATA[1])}


async def test_reindex_refills_the_record_from_the_bucket(s3_url: str, postgres_url: str) -> None:
    async with open_backend(s3_url, postgres_url) as backend:
        for sha, data in zip(SHAS, DATA, strict=True):
            await backend.stores.parcels.write(sha, len(data), chunks_of(data))
    with psycopg.connect(postgres_url, autocommit=True) as db:
        db.execute("DELETE FROM parcels")
    async with open_backend(s3_url, postgres_url) as backend:
        assert await backend.refill_parcels() == 3
    assert _recorded(postgres_url) == {sha: len(data) for sha, data in zip(SHAS, DATA, strict=True)}
