"""The PostgreSQL index's schema (search/postgres.py), as numbered migrations.

Start-up applies those a database lacks, in order, each once: a migration is never edited
after it has shipped, only followed by another. Every compared or ordered text column is
`COLLATE "C"`: results and SemVer bounds need byte order, not the database's locale.
"""

MIGRATIONS: tuple[str, ...] = (
    # 1: the invoices and the pending marks, as in the SQLite index.
    """
    CREATE TABLE invoices (
        key       TEXT COLLATE "C" PRIMARY KEY,
        bindle_id TEXT COLLATE "C" NOT NULL,
        name      TEXT COLLATE "C" NOT NULL,
        yanked    INTEGER NOT NULL,
        vkey      TEXT COLLATE "C" NOT NULL,
        vcore     TEXT COLLATE "C" NOT NULL,
        vpre      INTEGER NOT NULL,
        vbuild    TEXT COLLATE "C" NOT NULL,
        document  TEXT NOT NULL
    );
    CREATE INDEX invoices_by_id
        ON invoices (bindle_id, yanked, name, vkey, vcore, vpre, vbuild);
    CREATE TABLE pending (
        token TEXT PRIMARY KEY,
        key   TEXT COLLATE "C" NOT NULL,
        since DOUBLE PRECISION NOT NULL,  -- the database's clock, shared by every node
        owner TEXT NOT NULL
    );
    """,
    # 2: which parcels the (remote) store holds: `missing` is one query (backend.py).
    """
    CREATE TABLE parcels (
        sha256 TEXT COLLATE "C" PRIMARY KEY,
        size   BIGINT NOT NULL
    );
    """,
    # 3: which parts a rebuild filled to its end (see index.py): rebuilt at start otherwise.
    """
    CREATE TABLE filled (
        part TEXT PRIMARY KEY
    );
    """,
    # 4: the lifecycle (see index.py): invoice states and times, parcel references, what
    # pending invoices await, condemned parcels and the collector's lease. Entries indexed
    # before have no references yet: the index is refilled at the next start.
    """
    ALTER TABLE invoices
        ADD COLUMN state TEXT COLLATE "C" NOT NULL DEFAULT 'committed',
        ADD COLUMN created DOUBLE PRECISION NOT NULL DEFAULT 0,
        ADD COLUMN yanked_at DOUBLE PRECISION,
        ADD COLUMN touched DOUBLE PRECISION NOT NULL DEFAULT 0;
    DROP INDEX invoices_by_id;
    CREATE INDEX invoices_by_id
        ON invoices (bindle_id, state, yanked, name, vkey, vcore, vpre, vbuild);
    CREATE TABLE refs (
        key    TEXT COLLATE "C" NOT NULL,
        sha256 TEXT COLLATE "C" NOT NULL,
        PRIMARY KEY (key, sha256)
    );
    CREATE INDEX refs_by_parcel ON refs (sha256);
    CREATE TABLE awaiting (
        key    TEXT COLLATE "C" NOT NULL,
        sha256 TEXT COLLATE "C" NOT NULL,
        PRIMARY KEY (key, sha256)
    );
    CREATE INDEX awaiting_by_parcel ON awaiting (sha256);
    CREATE TABLE condemned (
        sha256 TEXT COLLATE "C" PRIMARY KEY,
        since  DOUBLE PRECISION NOT NULL,
        owner  TEXT NOT NULL
    );
    CREATE TABLE leases (
        name  TEXT PRIMARY KEY,
        owner TEXT NOT NULL,
        since DOUBLE PRECISION NOT NULL
    );
    DELETE FROM filled WHERE part = 'invoices';
    """,
    # 5: each invoice as a TOML page entry, and its JSON document as a page lists it (with
    # nulls): pages are written from stored bytes. Refilled at the next start; until then
    # a row without an entry is rendered from its document. A node still on the code
    # before this updates the document alone (a yank): the trigger then drops the entry,
    # which has gone stale, rather than list the invoice unyanked.
    """
    ALTER TABLE invoices ADD COLUMN toml_entry TEXT NOT NULL DEFAULT '';
    CREATE FUNCTION invoices_entry_follows_document() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF NEW.document IS DISTINCT FROM OLD.document
                AND NEW.toml_entry = OLD.toml_entry THEN
            NEW.toml_entry := '';
        END IF;
        RETURN NEW;
    END $$;
    CREATE TRIGGER invoices_entry_follows_document BEFORE UPDATE ON invoices
        FOR EACH ROW EXECUTE FUNCTION invoices_entry_follows_document();
    DELETE FROM filled WHERE part = 'invoices';
    """,
)
