import hashlib
import re
import sqlite3

import pytest

from sense_hub.sample_data import (
    _SEEDS,
    ADAPT_DB_ID,
    SAMPLE_DB_IDS,
    build_sample_databases,
    heldout_examples,
    seed_examples,
)


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


def _table_contents(path):
    con = sqlite3.connect(path)
    try:
        tables = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
        return {t: con.execute(f"SELECT * FROM {t}").fetchall() for t in tables}
    finally:
        con.close()


def test_adapt_database_builds_deterministically_with_foreign_keys(tmp_path):
    assert ADAPT_DB_ID not in SAMPLE_DB_IDS
    first = build_sample_databases(tmp_path / "a", db_ids=(ADAPT_DB_ID,))
    second = build_sample_databases(tmp_path / "b", db_ids=(ADAPT_DB_ID,))
    path = first[ADAPT_DB_ID]
    assert path == tmp_path / "a" / ADAPT_DB_ID / f"{ADAPT_DB_ID}.sqlite"
    assert hashlib.sha256(path.read_bytes()).digest() == hashlib.sha256(second[ADAPT_DB_ID].read_bytes()).digest()
    contents = _table_contents(path)
    assert contents == _table_contents(second[ADAPT_DB_ID])
    assert 5 <= len(contents) <= 7
    assert max(len(rows) for rows in contents.values()) >= 200
    con = sqlite3.connect(path)
    assert con.execute("PRAGMA foreign_key_check").fetchall() == []
    assert sum(bool(con.execute(f"PRAGMA foreign_key_list({t})").fetchall()) for t in contents) >= 4
    assert con.execute("SELECT count(*) FROM inv_item WHERE pref_supp_id IS NULL").fetchone()[0] > 0
    assert {r[0] for r in con.execute("SELECT DISTINCT sts FROM po_hdr")} == {"OPN", "CLS", "CXL"}
    # money is held in quarter dollars, so float sums are exact whatever order a query adds them in
    for table, column in (("inv_item", "unit_cost_usd"), ("po_line", "unit_price_usd")):
        assert all(v * 4 == int(v * 4) for (v,) in con.execute(f"SELECT {column} FROM {table}"))


def test_heldout_questions_are_many_unique_and_unseen_in_training_seeds():
    heldout = heldout_examples()
    assert heldout == heldout_examples(ADAPT_DB_ID)
    assert len(heldout) >= 70
    assert {h["db_id"] for h in heldout} == {ADAPT_DB_ID}
    assert set(heldout[0]) == {"db_id", "question", "sql", "question_id"}
    assert heldout[0]["question_id"] == f"{ADAPT_DB_ID}-001"
    assert len({h["question_id"] for h in heldout}) == len(heldout)
    assert len({h["question"] for h in heldout}) == len(heldout)
    seen = {s["question"].strip().lower() for s in seed_examples(tuple(_SEEDS))}
    assert not seen & {h["question"].strip().lower() for h in heldout}
    assert ADAPT_DB_ID not in _SEEDS
    with pytest.raises(ValueError, match="no held-out questions for 'bookshop'"):
        heldout_examples("bookshop")


def test_every_heldout_gold_query_returns_rows_and_has_no_tie_at_limit_1(tmp_path):
    path = build_sample_databases(tmp_path, db_ids=(ADAPT_DB_ID,))[ADAPT_DB_ID]
    con = sqlite3.connect(path)
    for h in heldout_examples():
        rows = con.execute(h["sql"]).fetchall()
        assert rows and rows != [(None,)], h
        order = re.search(r"ORDER BY (.+?) (?:DESC|ASC) LIMIT 1$", h["sql"])
        if order:  # the top answer must be unique: the first two values of the sort key differ
            top2 = h["sql"].replace("SELECT ", f"SELECT {order.group(1)}, ", 1).replace("LIMIT 1", "LIMIT 2")
            (first, *_), (second, *_) = con.execute(top2).fetchall()
            assert first != second, h
