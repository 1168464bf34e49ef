"""PostgreSQL schema: `bindle-server migrate`, and migration 5, after which a node still on
the code before it (rolling upgrades) that updates a document alone leaves no stale TOML
page entry served."""

from __future__ import annotations

import json

import psycopg
import pytest

from bindle_server.search import IndexEntry, Query
from bindle_server.search.postgres import PostgresIndex
from bindle_server.search.postgres_schema import MIGRATIONS
from tests.servers import run_command

pytestmark = pytest.mark.anyio

# The upsert of the code before migration 5, which knows no toml_entry.
_BEFORE = (
    "INSERT INTO invoices (key, bindle_id, name, yanked, vkey, vcore, vpre, vbuild, document, "
    "state, created, yanked_at, touched) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, "
    "'committed', 0, NULL, 0) ON CONFLICT (key) DO UPDATE SET yanked = excluded.yanked, "
    "document = excluded.document"
)


def _entry(yanked: bool) -> IndexEntry:
    document = json.dumps({"bindle": {"name": "app", "version": "1.0.0"}, "yanked": yanked})
    toml = f"[[invoices]]\nyanked = {str(yanked).lower()}"
    return IndexEntry("key:app", "app", "1.0.0", yanked, document, toml_entry=toml)


async def test_an_update_by_an_older_node_drops_the_stale_entry(postgres_url: str) -> None:
    index = await PostgresIndex.open(postgres_url)
    try:
        await index.put(_entry(yanked=False))
        assert (await index.query(Query(yanked=True))).toml_entries == [
            "[[invoices]]\nyanked = false"
        ]
        await index.put(_entry(yanked=True))  # this code: both change together
        assert (await index.query(Query(yanked=True))).toml_entries == [
            "[[invoices]]\nyanked = true"
        ]
        yanked_again = json.dumps({"bindle": {"name": "app"}, "yanked": True, "by": "old"})
        with psycopg.connect(postgres_url, autocommit=True) as db:
            db.execute(
                _BEFORE, ("key:app", "app/1.0.0", "app", 1, "k", "1.0.0", 0, "", yanked_again)
            )
        page = await index.query(Query(yanked=True))
        assert page.documents == [yanked_again]
        assert page.toml_entries == [""]  # rendered from the document instead
    finally:
        await index.close()


def test_migrate_applies_every_migration_once(postgres_url: str) -> None:
    """`bindle-server migrate` brings a new database to the newest schema, then finds it
    up to date."""
    latest = len(MIGRATIONS)
    first = run_command("migrate", "--index", postgres_url)
    assert first.returncode == 0, first.stderr
    applied = ", ".join(str(version) for version in range(1, latest + 1))
    assert (
        first.stdout.strip() == f"index schema at version {latest}: applied migration(s) {applied}"
    )
    again = run_command("migrate", "--index", postgres_url)
    assert again.stdout.strip() == f"index schema at version {latest}: up to date"
