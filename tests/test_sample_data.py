import hashlib
import sqlite3

import pytest

from sense_hub.sample_data import SAMPLE_DB_IDS, build_sample_databases, seed_examples


def test_sample_databases_build_deterministically_with_foreign_keys(tmp_path):
    first = build_sample_databases(tmp_path / "a")
    second = build_sample_databases(tmp_path / "b")
    assert sorted(first) == sorted(SAMPLE_DB_IDS)
    for db_id, path in first.items():
        assert path == tmp_path / "a" / db_id / f"{db_id}.sqlite"
        assert hashlib.sha256(path.read_bytes()).digest() == hashlib.sha256(second[db_id].read_bytes()).digest()
        con = sqlite3.connect(path)
        tables = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        assert any(con.execute(f"PRAGMA foreign_key_list({t})").fetchall() for t in tables)
        assert con.execute("PRAGMA foreign_key_check").fetchall() == []


def test_every_seed_question_executes_to_a_non_empty_result(tmp_path):
    paths = build_sample_databases(tmp_path)
    seeds = seed_examples()
    assert len(seeds) >= 30
    assert len({s["question"] for s in seeds}) == len(seeds)
    for seed in seeds:
        rows = sqlite3.connect(paths[seed["db_id"]]).execute(seed["sql"]).fetchall()
        assert rows and rows != [(None,)], seed


def test_unknown_sample_database_is_named(tmp_path):
    with pytest.raises(ValueError, match="unknown sample database 'nope'"):
        build_sample_databases(tmp_path, db_ids=("nope",))
