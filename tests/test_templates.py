"""SQL templates: database profiles, filled families, and the execution checks that keep only useful SQL."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from conftest import make_tiny_db

from sense_hub.execution import dedup_key, execute
from sense_hub.synthesis.template_sql import (
    FAMILIES,
    TemplateCandidate,
    check_candidate,
    generate_candidates,
    humanize,
    literal,
    profile_database,
    quote,
)


def make_shop_db(path: Path) -> Path:
    """Three tables with foreign keys, repeated categories and numbers: every template family fits."""
    path.parent.mkdir(parents=True, exist_ok=True)
    con = sqlite3.connect(path)
    con.executescript(
        """
        CREATE TABLE customer (customer_id INTEGER PRIMARY KEY, name TEXT, city TEXT, age INTEGER);
        CREATE TABLE product (product_id INTEGER PRIMARY KEY, title TEXT, category TEXT, price REAL);
        CREATE TABLE purchase (
            purchase_id INTEGER PRIMARY KEY, customer_id INTEGER, product_id INTEGER, quantity INTEGER,
            FOREIGN KEY (customer_id) REFERENCES customer(customer_id),
            FOREIGN KEY (product_id) REFERENCES product(product_id)
        );
        """
    )
    cities = ["Lyon", "Oslo", "Lima", "Oslo", "Lyon", "Kyoto", "Lima", "Oslo"]
    names = ["Ada Stone", "Bo Lind", "Cy Park", "Di Moss", "Ed Fox", "Flo Hart", "Gus Reed", "Hal Ware"]
    for i in range(8):
        con.execute("INSERT INTO customer VALUES (?, ?, ?, ?)", (i + 1, names[i], cities[i], 20 + 7 * i))
    categories = ["garden", "kitchen", "garden", "toys", "kitchen", "garden"]
    titles = ["Green Hose", "Steel Pan", "Rake Deluxe", "Toy Train", "Bread Knife", "Seed Box"]
    for i in range(6):
        con.execute("INSERT INTO product VALUES (?, ?, ?, ?)", (i + 1, titles[i], categories[i], 5.5 + 3 * i))
    for i in range(14):
        con.execute("INSERT INTO purchase VALUES (?, ?, ?, ?)", (i + 1, i % 6 + 1, i % 5 + 1, i % 4 + 1))
    con.commit()
    con.close()
    return path


@pytest.fixture
def shop_db(tmp_path: Path) -> Path:
    return make_shop_db(tmp_path / "dbs" / "shop" / "shop.sqlite")


def test_quote_literal_humanize():
    assert quote("age") == "age"
    assert quote("order") == '"order"'
    assert quote("Song Name") == '"Song Name"'
    assert quote('a"b') == '"a""b"'
    assert literal("O'Hara") == "'O''Hara'"
    assert literal(3) == "3"
    assert humanize("Singer_ID") == "singer id"
    assert humanize("HomeTown") == "home town"


def test_dedup_key_ignores_case_and_spacing():
    assert dedup_key("select  name from singer where age>30;") == dedup_key("SELECT name\nFROM singer WHERE age > 30")
    assert dedup_key("SELECT name FROM singer") != dedup_key("SELECT age FROM singer")


def test_profile_reads_kinds_keys_and_joins(tiny_db: Path):
    db = profile_database(tiny_db)
    assert db.db_id == "concert_singer"
    singer = db.tables["singer"]
    kinds = {c.name: c.kind for c in singer.columns}
    assert kinds == {"singer_id": "number", "name": "text", "country": "text", "age": "number"}
    assert [c.name for c in singer.columns if c.is_key] == ["singer_id"]
    country = next(c for c in singer.columns if c.name == "country")
    assert country.categorical and country.values == ["France", "Netherlands", "United States"]
    assert [(j.child, j.child_column, j.parent, j.parent_column) for j in db.joins] == [
        ("concert", "singer_id", "singer", "singer_id")
    ]
    assert "CREATE TABLE singer" in db.ddl


def test_candidates_execute_are_distinct_and_deterministic(shop_db: Path):
    db = profile_database(shop_db)
    first, rejected = generate_candidates(db, n=60, seed=3)
    again, _ = generate_candidates(db, n=60, seed=3)
    other, _ = generate_candidates(db, n=60, seed=4)
    assert [c.sql for c in first] == [c.sql for c in again]
    assert [c.sql for c in first] != [c.sql for c in other]
    assert len(first) == 60
    assert len({dedup_key(c.sql) for c in first}) == 60
    for candidate in first:
        result = execute(shop_db, candidate.sql)
        assert result.ok and result.rows, candidate.sql
        assert not all(v is None for row in result.rows for v in row)
        assert candidate.question.endswith(("?", ".")) and candidate.question[0].isupper()
    # every family fits this database, and round robin gives each of them a turn
    assert {c.family for c in first} == set(FAMILIES)
    assert all(isinstance(v, int) and v > 0 for v in rejected.values())


def test_join_and_nesting_families_follow_foreign_keys(shop_db: Path):
    db = profile_database(shop_db)
    candidates, _ = generate_candidates(db, n=40, seed=0, families=["join_filter", "nested_in", "nested_not_in"])
    assert candidates
    for c in candidates:
        if c.family == "join_filter":
            assert "JOIN" in c.sql and (
                "T1.customer_id = T2.customer_id" in c.sql or "T1.product_id = T2.product_id" in c.sql
            )
        else:
            assert "IN (SELECT" in c.sql


def test_families_that_do_not_fit_drop_out(tmp_path: Path):
    path = tmp_path / "one" / "one.sqlite"
    path.parent.mkdir(parents=True)
    con = sqlite3.connect(path)
    con.executescript(
        "CREATE TABLE t (id INTEGER PRIMARY KEY, kind TEXT, size INTEGER);"
        "INSERT INTO t VALUES (1, 'a', 3), (2, 'b', 5), (3, 'a', 9), (4, 'c', 11);"
    )
    con.close()
    db = profile_database(path)
    candidates, _ = generate_candidates(db, n=30, seed=0)
    families = {c.family for c in candidates}
    assert not families & {"join_project", "join_filter", "join_group", "nested_in", "nested_not_in"}
    assert {"count_filter", "group_count", "nested_avg"} <= families
    with pytest.raises(ValueError, match="unknown template families"):
        generate_candidates(db, n=1, families=["no_such_family"])


def test_check_candidate_rejects_trivial_sql(tiny_db: Path):
    db = profile_database(tiny_db)

    def reason(sql, baselines=(), different=()):
        return check_candidate(db, TemplateCandidate("x", sql, "q?", ["singer"], list(baselines), list(different)))[0]

    assert reason("SELECT name FROM singer WHERE age > 40") is None
    assert reason("SELECT name FROM singer WHERE age > 100") == "empty_result"
    assert reason("SELECT nme FROM singer") == "exec_error"
    assert reason("SELECT NULL FROM singer") == "null_result"
    assert reason("SELECT count(*) FROM singer WHERE age > 100") == "zero_result"
    # a filter that keeps the whole table is no filter
    assert reason("SELECT name FROM singer WHERE age > 1", ["SELECT name FROM singer"]) == "same_as_baseline"
    # two groups tied for first place make LIMIT 1 arbitrary
    tie = ("SELECT count(*) FROM concert GROUP BY year ORDER BY count(*) LIMIT 1",) * 2
    assert reason("SELECT year FROM concert GROUP BY year ORDER BY count(*) LIMIT 1", different=[tie]) == "tie"


def test_spider_dev_databases_fill_every_family(shared_data: Path):
    from sense_hub.databases import list_databases

    databases = list_databases(shared_data / "spider" / "database")
    families: set[str] = set()
    total = 0
    for path in databases.values():
        candidates, _ = generate_candidates(profile_database(path), n=25, seed=0)
        families |= {c.family for c in candidates}
        total += len(candidates)
    assert families == set(FAMILIES)
    assert total >= 25 * len(databases) * 0.9


def test_make_tiny_db_is_usable_by_profiles(tmp_path: Path):
    path = make_tiny_db(tmp_path / "a" / "a.sqlite")
    assert profile_database(path).tables["concert"].row_count == 5
