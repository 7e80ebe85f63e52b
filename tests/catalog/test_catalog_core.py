"""The catalog: schema creation, WAL, nested transactions, concurrent writers, corrupt files."""

from __future__ import annotations

import multiprocessing
import sqlite3

import pytest

from catalog import Catalog, history
from catalog.errors import CatalogCorrupt, CatalogTooNew
from catalog.versions import SCHEMA_VERSION


def test_schema_and_wal(tmp_path):
    cat = Catalog(tmp_path / "c.db")
    cat.ensure_schema(create=True)
    assert cat.query_one("PRAGMA user_version")[0] == SCHEMA_VERSION
    assert cat.query_one("PRAGMA journal_mode")[0] == "wal"
    tables = {r[0] for r in cat.query("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"commits", "trees", "files", "chunks", "packs", "refs", "stat_cache", "head_manifest"} <= tables


def test_rollback_on_error_and_nesting(tmp_path):
    cat = Catalog(tmp_path / "c.db")
    cat.ensure_schema(create=True)
    with pytest.raises(RuntimeError):
        with cat.write():
            history.set_meta(cat, "k", "v")  # nested write joins the outer transaction
            raise RuntimeError
    assert history.get_meta(cat, "k") is None


def test_newer_schema_refused(tmp_path):
    cat = Catalog(tmp_path / "c.db")
    cat.ensure_schema(create=True)
    cat.conn.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    with pytest.raises(CatalogTooNew):
        Catalog(tmp_path / "c.db").ensure_schema()


def test_corrupt_file(tmp_path):
    (tmp_path / "c.db").write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(CatalogCorrupt):
        Catalog(tmp_path / "c.db").ensure_schema()


def _writer(path, n, tag):
    cat = Catalog(path)
    for i in range(n):
        with cat.write():
            history.set_meta(cat, f"{tag}-{i}", "x")


def test_many_processes_write_without_lost_rows(tmp_path):
    path = tmp_path / "c.db"
    Catalog(path).ensure_schema(create=True)
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(str(path), 100, t)) for t in "abcd"]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0, 0, 0, 0]
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT count(*) FROM meta WHERE key LIKE '_-%'").fetchone()[0] == 400
