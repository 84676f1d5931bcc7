"""The one prompt: schema serialization, chat messages and SQL extraction."""

from __future__ import annotations

import os
import sqlite3

import pytest

from sense_hub.databases import DatabaseError
from sense_hub.prompts import (
    SYSTEM_PROMPT,
    build_prompt,
    extract_sql,
    prompt_for_database,
    serialize_schema,
)

# ---------------------------------------------------------------------------------------------------------------
# extract_sql
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("SELECT name FROM singer", "SELECT name FROM singer"),
        ("SELECT name FROM singer;", "SELECT name FROM singer"),
        ("SELECT name FROM singer;;  ", "SELECT name FROM singer"),
        ("  \n SELECT count(*) FROM concert \n", "SELECT count(*) FROM concert"),
        ("```sql\nSELECT name FROM singer;\n```", "SELECT name FROM singer"),
        ("```SQL\nSELECT name FROM singer\n```", "SELECT name FROM singer"),
        ("```sqlite\nSELECT name FROM singer\n```", "SELECT name FROM singer"),
        ("```\nSELECT name FROM singer\n```", "SELECT name FROM singer"),
        ("Here is the query:\n```sql\nSELECT name FROM singer\n```\nIt lists names.", "SELECT name FROM singer"),
        ("```sql\nSELECT name\nFROM singer\nWHERE age > 30\n```", "SELECT name\nFROM singer\nWHERE age > 30"),
        # a fence cut off by max_new_tokens
        ("```sql\nSELECT name FROM singer WHERE age > 3", "SELECT name FROM singer WHERE age > 3"),
        # the model echoes the schema in a first fence, then answers in a second one
        (
            "```sql\nCREATE TABLE singer (id INT);\n```\n```sql\nSELECT id FROM singer\n```",
            "SELECT id FROM singer",
        ),
        ("SQL: SELECT name FROM singer", "SELECT name FROM singer"),
        ("SQLite query: SELECT name FROM singer", "SELECT name FROM singer"),
        ("Answer: SELECT name FROM singer", "SELECT name FROM singer"),
        ("The query is SELECT name FROM singer. It returns names.", "SELECT name FROM singer"),
        ("SELECT T1.name FROM singer AS T1", "SELECT T1.name FROM singer AS T1"),
        ("To answer, run:\nSELECT name FROM singer\n\nThis returns every name.", "SELECT name FROM singer"),
        ("The answer is `SELECT name FROM singer` as shown.", "SELECT name FROM singer"),
        ("SELECT a FROM t; SELECT b FROM t;", "SELECT a FROM t"),
        ("SELECT a FROM t;\nDROP TABLE t;", "SELECT a FROM t"),
        ("CREATE TABLE x (a INT);\nSELECT a FROM x", "SELECT a FROM x"),
        # a semicolon or a blank line inside a string literal does not end the statement
        ("SELECT name FROM singer WHERE name = 'a;b'; SELECT 1", "SELECT name FROM singer WHERE name = 'a;b'"),
        ("SELECT 'it''s; fine' FROM t; SELECT 2", "SELECT 'it''s; fine' FROM t"),
        ('SELECT "a;b" FROM t', 'SELECT "a;b" FROM t'),
        ("SELECT x FROM t -- pick x; really\nWHERE y = 1; SELECT 3", "SELECT x FROM t -- pick x; really\nWHERE y = 1"),
        ("SELECT x /* ; */ FROM t; SELECT 3", "SELECT x /* ; */ FROM t"),
        ("select name from singer where age > 30", "select name from singer where age > 30"),
        ("WITH a AS (SELECT 1 AS x) SELECT x FROM a;", "WITH a AS (SELECT 1 AS x) SELECT x FROM a"),
        ("with recursive c(n) as (select 1) select n from c", "with recursive c(n) as (select 1) select n from c"),
        # "select" as an English word before the query
        ("We select the rows with:\nSELECT name FROM singer", "SELECT name FROM singer"),
        (
            "-- the oldest singer\nSELECT name FROM singer ORDER BY age DESC LIMIT 1",
            "SELECT name FROM singer ORDER BY age DESC LIMIT 1",
        ),
        ("", ""),
        ("   \n\t ", ""),
        ("```sql\n```", ""),
        # no query at all: the first statement is returned (it fails to execute, which is its label)
        ("I don't know.", "I don't know."),
        ("DELETE FROM singer; SELECT 1", "SELECT 1"),
        ("UPDATE singer SET age = 1", "UPDATE singer SET age = 1"),
    ],
)
def test_extract_sql(text, expected):
    assert extract_sql(text) == expected


def test_extract_sql_keeps_joins_and_subqueries_whole():
    sql = (
        "SELECT T1.name FROM singer AS T1 JOIN concert AS T2 ON T1.singer_id = T2.singer_id "
        "WHERE T2.year = (SELECT max(year) FROM concert)"
    )
    assert extract_sql(f"```sql\n{sql};\n```") == sql
    assert extract_sql(f"Sure! {sql};") == sql


# ---------------------------------------------------------------------------------------------------------------
# serialize_schema
# ---------------------------------------------------------------------------------------------------------------


def test_serialize_schema_has_keys_and_sample_values(tiny_db):
    text = serialize_schema(tiny_db)
    assert "CREATE TABLE singer (" in text
    assert "CREATE TABLE concert (" in text
    assert "singer_id INTEGER PRIMARY KEY" in text
    assert "FOREIGN KEY (singer_id) REFERENCES singer(singer_id)" in text
    assert "'Netherlands'" in text and "'Joe Sharp'" in text  # sample values as SQL literals
    # every statement is valid DDL once the comments are dropped
    con = sqlite3.connect(":memory:")
    con.executescript(text)
    names = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert names == {"singer", "concert"}


def test_serialize_schema_sample_values_knob(tiny_db):
    assert "'France'" not in serialize_schema(tiny_db, sample_values=0)
    one = serialize_schema(tiny_db, sample_values=1)
    assert "'Netherlands'" in one and "'United States'" not in one


def test_serialize_schema_budget_drops_samples_then_far_columns(tmp_path):
    db = tmp_path / "big.sqlite"
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE singer (singer_id INTEGER PRIMARY KEY, name TEXT, country TEXT)")
    con.execute("INSERT INTO singer VALUES (1, 'Joe Sharp', 'Netherlands')")
    for i in range(30):
        cols = ", ".join(f"attribute_{j} TEXT" for j in range(12))
        con.execute(
            f"CREATE TABLE misc_{i} (misc_id INTEGER PRIMARY KEY, singer_id INTEGER, {cols}, "
            "FOREIGN KEY (singer_id) REFERENCES singer(singer_id))"
        )
        con.execute(f"INSERT INTO misc_{i} VALUES (1, 1, {', '.join(repr('value' + str(j)) for j in range(12))})")
    con.commit()
    con.close()
    full = serialize_schema(db, max_chars=10**6)
    assert "'value3'" in full
    budget = 4000
    trimmed = serialize_schema(db, max_chars=budget, question="Which country is the singer Joe Sharp from?")
    assert len(trimmed) <= budget + 200  # the note naming dropped tables may follow the budgeted text
    assert "'value3'" not in trimmed  # sample values went first
    # the table the question is about keeps all its columns
    assert "CREATE TABLE singer (" in trimmed and "country TEXT" in trimmed
    # far tables lost their non-key columns or were dropped entirely, and the prompt says so
    assert "more columns" in trimmed or "tables not shown" in trimmed


def test_serialize_schema_missing_file(tmp_path):
    with pytest.raises(DatabaseError, match="missing.sqlite"):
        serialize_schema(tmp_path / "missing.sqlite")


def test_serialize_schema_cache_follows_file_changes(tiny_db):
    before = serialize_schema(tiny_db)
    con = sqlite3.connect(tiny_db)
    con.execute("CREATE TABLE stadium (stadium_id INTEGER PRIMARY KEY, location TEXT)")
    con.commit()
    con.close()
    stat = os.stat(tiny_db)
    os.utime(tiny_db, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    after = serialize_schema(tiny_db)
    assert "stadium" not in before and "CREATE TABLE stadium" in after


def test_serialize_schema_quotes_odd_names(tmp_path):
    db = tmp_path / "odd.sqlite"
    con = sqlite3.connect(db)
    con.execute('CREATE TABLE "order items" ("item id" INTEGER PRIMARY KEY, "unit price" REAL)')
    con.execute('INSERT INTO "order items" VALUES (1, 2.5)')
    con.commit()
    con.close()
    text = serialize_schema(db)
    assert 'CREATE TABLE "order items" (' in text and '"unit price" REAL' in text
    sqlite3.connect(":memory:").executescript(text)


# ---------------------------------------------------------------------------------------------------------------
# build_prompt / prompt_for_database
# ---------------------------------------------------------------------------------------------------------------


def test_build_prompt_messages():
    messages = build_prompt("How many singers are there?", "CREATE TABLE singer (id INT);")
    assert [m["role"] for m in messages] == ["system", "user"]
    assert messages[0]["content"] == SYSTEM_PROMPT
    user = messages[1]["content"]
    assert "CREATE TABLE singer (id INT);" in user and "Question: How many singers are there?" in user
    assert "External knowledge" not in user


def test_build_prompt_evidence():
    messages = build_prompt("Eligible schools?", "CREATE TABLE s (x INT);", evidence="eligible means x > 1")
    assert "External knowledge: eligible means x > 1" in messages[1]["content"]


def test_prompt_for_database(tiny_db):
    messages = prompt_for_database("How many singers are there?", tiny_db)
    assert messages == build_prompt("How many singers are there?", serialize_schema(tiny_db))
