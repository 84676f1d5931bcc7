"""Databases: read-only opening, Spider/BIRD layouts, introspection, tables.json, CSV import."""

from __future__ import annotations

import json
import os
import sqlite3

import pytest
from conftest import make_tiny_db

from sense_hub.databases import (
    DatabaseError,
    connect_readonly,
    database_path,
    import_csv,
    introspect,
    list_databases,
    load_tables_json,
    sibling_databases,
)


def test_connect_readonly_cannot_write(tiny_db):
    con = connect_readonly(tiny_db)
    assert con.execute("SELECT count(*) FROM singer").fetchone() == (5,)
    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        con.execute("DELETE FROM singer")
    con.close()
    assert sorted(os.listdir(tiny_db.parent)) == ["concert_singer.sqlite"]


def test_connect_readonly_odd_path(tmp_path):
    db = make_tiny_db(tmp_path / "a dir?#%" / "x y.sqlite")
    assert connect_readonly(db, immutable=True).execute("SELECT count(*) FROM concert").fetchone() == (5,)


@pytest.mark.parametrize(
    ("content", "match"), [(None, "not found"), (b"", "empty"), (b"hello world" * 10, "not an SQLite")]
)
def test_connect_readonly_bad_files(tmp_path, content, match):
    path = tmp_path / "x.sqlite"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(DatabaseError, match=match) as info:
        connect_readonly(path)
    assert str(path) in str(info.value)


def test_database_path_and_listing(tiny_db):
    root = tiny_db.parent.parent
    assert database_path(root, "concert_singer") == tiny_db
    with pytest.raises(DatabaseError, match=r"wta_1.*wta_1\.sqlite"):
        database_path(root, "wta_1")
    with pytest.raises(DatabaseError, match="invalid db_id"):
        database_path(root, "../concert_singer")
    (root / "empty_folder").mkdir()
    make_tiny_db(root / "b_db" / "b_db.sqlite")
    assert list_databases(root) == {"b_db": root / "b_db" / "b_db.sqlite", "concert_singer": tiny_db}
    with pytest.raises(DatabaseError, match="not a folder"):
        list_databases(root / "nope")


def test_sibling_databases(tiny_db):
    assert sibling_databases(tiny_db) == [tiny_db]
    other = make_tiny_db(tiny_db.parent / "a_variant.sqlite")
    (tiny_db.parent / "schema.sql").write_text("-- not a database")
    assert sibling_databases(tiny_db) == [tiny_db, other]


def test_sibling_that_is_not_a_database_is_named_and_skipped(tiny_db, caplog):
    junk = tiny_db.parent / "old_backup.sqlite"
    junk.write_text("not a database, a stray backup\n" * 10)
    empty = tiny_db.parent / "half_copied.sqlite"
    empty.touch()
    other = make_tiny_db(tiny_db.parent / "concert_singer_2.sqlite")
    with caplog.at_level("WARNING", logger="sense_hub.databases"):
        assert sibling_databases(tiny_db) == [tiny_db, other]
    assert str(junk) in caplog.text and "not an SQLite database" in caplog.text
    assert str(empty) in caplog.text and "empty" in caplog.text


def test_introspect(tiny_db):
    schema = introspect(tiny_db, sample_values=2)
    assert schema.db_id == "concert_singer"
    assert [t.name for t in schema.tables] == ["singer", "concert"]
    singer = schema.table("SINGER")
    assert [(c.name, c.type, c.primary_key) for c in singer.columns] == [
        ("singer_id", "INTEGER", True),
        ("name", "TEXT", False),
        ("country", "TEXT", False),
        ("age", "INTEGER", False),
    ]
    assert singer.row_count == 5
    assert singer.columns[2].samples == ["Netherlands", "United States"]
    concert = schema.table("concert")
    assert [(f.column, f.ref_table, f.ref_column) for f in concert.foreign_keys] == [
        ("singer_id", "singer", "singer_id")
    ]
    assert introspect(tiny_db, sample_values=0).tables[0].columns[1].samples == []
    with pytest.raises(KeyError):
        schema.table("nope")


def test_introspect_bad_file(tmp_path):
    bad = tmp_path / "bad.sqlite"
    bad.write_bytes(b"SQLite format 3\x00" + b"\x00" * 50)  # right header, truncated body
    with pytest.raises(DatabaseError, match="bad.sqlite"):
        introspect(bad)


def test_load_tables_json(tmp_path):
    path = tmp_path / "tables.json"
    path.write_text(json.dumps([{"db_id": "a", "table_names": ["t"]}, {"db_id": "b", "table_names": []}]))
    assert list(load_tables_json(path)) == ["a", "b"]
    path.write_text("{not json")
    with pytest.raises(DatabaseError, match="not valid JSON"):
        load_tables_json(path)
    path.write_text(json.dumps([{"table_names": []}]))
    with pytest.raises(DatabaseError, match="entry 0 has no 'db_id'"):
        load_tables_json(path)
    with pytest.raises(DatabaseError, match="not found"):
        load_tables_json(tmp_path / "missing.json")


def test_import_csv(tmp_path):
    people = tmp_path / "people.csv"
    people.write_text("id,Full Name,score,city,city\n1,Ann,1.5,Paris,x\n2,Bob,,Rome,y\n3,Cy,2,,z\n")
    pets = tmp_path / "pets-2024.csv"
    pets.write_text("owner,kind\n1,cat\n")
    out = import_csv([people, pets], tmp_path / "out" / "db.sqlite")
    schema = introspect(out)
    assert [t.name for t in schema.tables] == ["people", "pets_2024"]
    assert [(c.name, c.type) for c in schema.tables[0].columns] == [
        ("id", "INTEGER"),
        ("Full_Name", "TEXT"),
        ("score", "REAL"),
        ("city", "TEXT"),
        ("city_2", "TEXT"),
    ]
    con = connect_readonly(out)
    assert con.execute("SELECT id, score, city FROM people ORDER BY id").fetchall() == [
        (1, 1.5, "Paris"),
        (2, None, "Rome"),
        (3, 2.0, None),
    ]
    with pytest.raises(DatabaseError, match="already exists"):
        import_csv(people, out)


def test_import_csv_errors(tmp_path):
    ragged = tmp_path / "r.csv"
    ragged.write_text("a,b\n1,2\n3\n")
    with pytest.raises(DatabaseError, match="line 3"):
        import_csv(ragged, tmp_path / "x.sqlite")
    empty = tmp_path / "e.csv"
    empty.write_text("")
    with pytest.raises(DatabaseError, match="empty"):
        import_csv(empty, tmp_path / "y.sqlite")
    with pytest.raises(DatabaseError, match="not found"):
        import_csv(tmp_path / "none.csv", tmp_path / "z.sqlite")
    assert not (tmp_path / "x.sqlite").exists()
