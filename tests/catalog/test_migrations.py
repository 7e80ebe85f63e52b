"""Catalog migrations: an ordered list, applied atomically, that can change a table."""

from __future__ import annotations

import multiprocessing
import sqlite3

import pytest

from catalog import Catalog
from catalog.errors import CatalogCorrupt, CatalogTooNew
from catalog.migrate import migrate
from catalog.migrations import MIGRATIONS, Migration, v001_baseline
from catalog.migrations.tools import rebuild_table
from catalog.versions import APPLICATION_ID, LEGACY_VERSIONS, SCHEMA_VERSION


def _schema(conn: sqlite3.Connection) -> dict:
    """Tables -> (columns as (name, type, notnull, pk)), plus index -> (table, columns)."""
    out: dict = {}
    for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%'"):
        out[name] = [(r[1], r[2].upper(), r[3], r[5]) for r in conn.execute(f'PRAGMA table_info("{name}")')]
    for name, table in conn.execute("SELECT name, tbl_name FROM sqlite_master WHERE type='index' AND sql IS NOT NULL"):
        out["index:" + name] = (table, [r[2] for r in conn.execute(f'PRAGMA index_info("{name}")')])
    return out


def test_schema_version_is_the_last_migration():
    assert SCHEMA_VERSION == MIGRATIONS[-1].version
    assert [m.version for m in MIGRATIONS] == list(range(1, len(MIGRATIONS) + 1))
    assert SCHEMA_VERSION not in LEGACY_VERSIONS


def test_migrations_produce_the_schema_the_models_declare(tmp_path):
    """The SQLModel classes document the schema; the migrations must build exactly that."""
    from sqlalchemy import create_engine
    from sqlmodel import SQLModel

    import catalog.models  # noqa: F401  (registers every table)

    cat = Catalog(tmp_path / "migrated.db")
    cat.ensure_schema(create=True)
    engine = create_engine(f"sqlite:///{tmp_path / 'models.db'}")
    SQLModel.metadata.create_all(engine)
    engine.dispose()
    assert _schema(cat.conn) == _schema(sqlite3.connect(tmp_path / "models.db"))


def test_new_catalog_is_marked_as_ws(tmp_path):
    cat = Catalog(tmp_path / "c.db")
    cat.ensure_schema(create=True)
    assert cat.query_one("PRAGMA application_id")[0] == APPLICATION_ID
    assert cat.query_one("PRAGMA user_version")[0] == SCHEMA_VERSION


def _legacy_catalog(path) -> None:
    """A catalog as ws wrote it before ordered migrations: baseline tables, user_version 1010102, no app id."""
    conn = sqlite3.connect(path, isolation_level=None)
    v001_baseline.apply(conn)
    conn.execute("INSERT INTO packs(id, size, chunk_count, created_ns) VALUES ('p1', 10, 1, 5)")
    conn.execute("INSERT INTO meta(key, value) VALUES ('HEAD', 'ref:main')")
    conn.execute("PRAGMA user_version=1010102")
    conn.close()


def test_legacy_catalog_is_migrated_and_keeps_rows(tmp_path):
    _legacy_catalog(tmp_path / "c.db")
    cat = Catalog(tmp_path / "c.db")
    cat.ensure_schema()
    assert cat.query_one("PRAGMA user_version")[0] == SCHEMA_VERSION
    assert cat.query_one("PRAGMA application_id")[0] == APPLICATION_ID
    assert cat.query("SELECT id, size FROM packs") == [("p1", 10)]


def _v2_change_packs(conn):
    """A column change ALTER TABLE cannot make: size becomes TEXT-free NOT NULL with a default, plus a new column."""
    rebuild_table(conn, "packs",
                  "CREATE TABLE packs (id VARCHAR NOT NULL, size INTEGER NOT NULL DEFAULT 0, "
                  "chunk_count INTEGER NOT NULL, created_ns INTEGER NOT NULL, origin VARCHAR, PRIMARY KEY (id))",
                  "SELECT id, size, chunk_count, created_ns, 'local' FROM packs",
                  indexes=("CREATE INDEX ix_packs_origin ON packs (origin)",))


def _v3_boom(conn):
    conn.execute("CREATE TABLE half_done (x INTEGER)")
    raise RuntimeError("migration 3 failed halfway")


def test_a_migration_can_change_a_table_and_keeps_its_rows(tmp_path):
    _legacy_catalog(tmp_path / "c.db")
    steps = [*MIGRATIONS, Migration(len(MIGRATIONS) + 1, "packs gain an origin", _v2_change_packs)]
    cat = Catalog(tmp_path / "c.db")
    assert migrate(cat, migrations=steps) == list(range(2, len(MIGRATIONS) + 2))  # 1 is the legacy baseline
    assert cat.query("SELECT id, size, chunk_count, created_ns, origin FROM packs") == [("p1", 10, 1, 5, "local")]
    cols = [r[1] for r in cat.query("PRAGMA table_info(packs)")]
    assert cols == ["id", "size", "chunk_count", "created_ns", "origin"]
    assert cat.query_one("SELECT name FROM sqlite_master WHERE name='ix_packs_origin'")
    assert cat.query_one("PRAGMA user_version")[0] == len(MIGRATIONS) + 1


def test_a_failing_migration_changes_nothing(tmp_path):
    _legacy_catalog(tmp_path / "c.db")
    extra = len(MIGRATIONS)
    steps = [*MIGRATIONS, Migration(extra + 1, "change packs", _v2_change_packs),
             Migration(extra + 2, "boom", _v3_boom)]
    cat = Catalog(tmp_path / "c.db")
    with pytest.raises(RuntimeError, match="halfway"):
        migrate(cat, migrations=steps)
    assert cat.query_one("PRAGMA user_version")[0] == 1010102
    assert [r[1] for r in cat.query("PRAGMA table_info(packs)")] == ["id", "size", "chunk_count", "created_ns"]
    assert cat.query_one("SELECT name FROM sqlite_master WHERE name='half_done'") is None


def _open(path, q):
    try:
        Catalog(path).ensure_schema()
        q.put("ok")
    except Exception as exc:  # reported to the parent, which asserts on it
        q.put(repr(exc))


def test_processes_opening_a_legacy_catalog_at_once_all_succeed(tmp_path):
    _legacy_catalog(tmp_path / "c.db")
    ctx = multiprocessing.get_context("spawn")
    q = ctx.Queue()
    procs = [ctx.Process(target=_open, args=(str(tmp_path / "c.db"), q)) for _ in range(4)]
    for p in procs:
        p.start()
    results = [q.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(60)
    assert results == ["ok"] * 4
    conn = sqlite3.connect(tmp_path / "c.db")
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert conn.execute("SELECT count(*) FROM packs").fetchone()[0] == 1


def test_newer_catalog_is_refused(tmp_path):
    cat = Catalog(tmp_path / "c.db")
    cat.ensure_schema(create=True)
    cat.conn.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    cat.close()
    with pytest.raises(CatalogTooNew):
        Catalog(tmp_path / "c.db").ensure_schema()


@pytest.mark.parametrize("make", ["empty", "foreign", "unmarked"])
def test_damaged_or_foreign_catalogs_are_refused_not_recreated(tmp_path, make):
    path = tmp_path / "c.db"
    if make == "empty":
        path.write_bytes(b"")
    else:
        conn = sqlite3.connect(path)
        conn.execute("CREATE TABLE notes (x TEXT)")
        if make == "unmarked":  # a ws-looking version but no application id: not ours either
            conn.execute("PRAGMA user_version=7")
        conn.commit()
        conn.close()
    before = path.read_bytes()
    with pytest.raises(CatalogCorrupt, match="rebuild-catalog"):
        Catalog(path).ensure_schema()
    assert path.read_bytes() == before
