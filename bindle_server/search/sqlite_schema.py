"""The embedded index's tables (search/sqlite.py): a schema of another version is dropped
and rebuilt, since the index is derived from the stores."""

SCHEMA_VERSION = 8
TABLES = (
    "name_trigrams",
    "invoices",
    "pending",
    "parcels",
    "filled",
    "refs",
    "awaiting",
    "condemned",
    "leases",
)
SCHEMA = """
CREATE TABLE IF NOT EXISTS invoices (
    -- An INTEGER PRIMARY KEY, which VACUUM keeps: name_trigrams refers to rows by it.
    id        INTEGER PRIMARY KEY,
    key       TEXT NOT NULL UNIQUE,
    bindle_id TEXT NOT NULL,  -- NAME/VERSION: results come in its byte order
    name      TEXT NOT NULL,
    yanked    INTEGER NOT NULL,
    vkey      TEXT NOT NULL,  -- Version.ordinal: SemVer precedence as string order
    vcore     TEXT NOT NULL,  -- MAJOR.MINOR.PATCH
    vpre      INTEGER NOT NULL,
    vbuild    TEXT NOT NULL,
    document  TEXT NOT NULL,  -- JSON, as a page lists it
    toml_entry TEXT NOT NULL, -- TOML, as a page lists it
    state     TEXT NOT NULL,  -- committed, pending or removing (InvoiceState)
    created   REAL NOT NULL,  -- unix seconds of the host signature
    yanked_at REAL,
    touched   REAL NOT NULL   -- last activity of its push (pending expiry)
);
-- Covers every filter and the ordering, so queries scan this narrow index rather than
-- the table rows with their documents.
CREATE INDEX IF NOT EXISTS invoices_by_id
    ON invoices (bindle_id, state, yanked, name, vkey, vcore, vpre, vbuild);
CREATE TABLE IF NOT EXISTS pending (
    token TEXT PRIMARY KEY,
    key   TEXT NOT NULL,
    since REAL NOT NULL,
    owner TEXT NOT NULL     -- host:pid:start-time of the process doing the write
);
-- Which parcels the store holds, with their sizes: on a remote store `missing` is one
-- query, not a request per parcel (backend.IndexedParcels). On every store, the stored
-- parcels and bytes metrics are one query, not a walk of the disk (backend.RecordedParcels).
CREATE TABLE IF NOT EXISTS parcels (
    sha256 TEXT PRIMARY KEY,
    size   INTEGER NOT NULL
);
-- Which parts ("invoices", "parcels") were filled from the store by a rebuild that ran to
-- its end: an index missing one is rebuilt at start-up, even after a crash mid-rebuild.
CREATE TABLE IF NOT EXISTS filled (
    part TEXT PRIMARY KEY
);
CREATE TABLE IF NOT EXISTS refs (
    key    TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    PRIMARY KEY (key, sha256)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS refs_by_parcel ON refs (sha256);
CREATE TABLE IF NOT EXISTS awaiting (
    key    TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    PRIMARY KEY (key, sha256)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS awaiting_by_parcel ON awaiting (sha256);
CREATE TABLE IF NOT EXISTS condemned (
    sha256 TEXT PRIMARY KEY,
    since  REAL NOT NULL,
    owner  TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS leases (
    name  TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    since REAL NOT NULL
);
"""

# Substring search over names (search/trigrams.py), kept in step with `invoices` by
# triggers. Statements of their own (a trigger holds semicolons), and optional: a SQLite
# built without FTS5 or its trigram tokenizer (before 3.34) scans instead.
TRIGRAM_SCHEMA = (
    "CREATE VIRTUAL TABLE IF NOT EXISTS name_trigrams USING fts5(name, content='invoices', "
    "content_rowid='id', tokenize='trigram case_sensitive 1', detail='none')",
    "CREATE TRIGGER IF NOT EXISTS name_trigrams_added AFTER INSERT ON invoices BEGIN "
    "INSERT INTO name_trigrams (rowid, name) VALUES (new.id, new.name); END",
    "CREATE TRIGGER IF NOT EXISTS name_trigrams_removed AFTER DELETE ON invoices BEGIN "
    "INSERT INTO name_trigrams (name_trigrams, rowid, name) "
    "VALUES ('delete', old.id, old.name); END",
    # A name never changes under its key today; should one ever, the table follows.
    "CREATE TRIGGER IF NOT EXISTS name_trigrams_renamed AFTER UPDATE OF name ON invoices BEGIN "
    "INSERT INTO name_trigrams (name_trigrams, rowid, name) "
    "VALUES ('delete', old.id, old.name); "
    "INSERT INTO name_trigrams (rowid, name) VALUES (new.id, new.name); END",
)
TRIGRAM_TRIGGERS = ("name_trigrams_added", "name_trigrams_removed", "name_trigrams_renamed")
# Reads the table: fails where this SQLite lacks FTS5 or its trigram tokenizer, even for
# a table that one which had them created.
TRIGRAM_CHECK = "SELECT rowid FROM name_trigrams WHERE name_trigrams MATCH '\"abc\"' LIMIT 1"
# Fills name_trigrams from `invoices`, for a table that is not known to be in step with
# it: new, or left without its triggers by a SQLite that could not use it.
TRIGRAM_REBUILD = "INSERT INTO name_trigrams (name_trigrams) VALUES ('rebuild')"
