"""Safe execution: read-only, refused statements, real timeouts, result caps, crash isolation, dedup."""

from __future__ import annotations

import hashlib
import os
import sqlite3
from pathlib import Path

import pytest

from sense_hub import execution
from sense_hub.execution import ERROR_KINDS, ExecutionResult, Executor, canonical_sql, execute

CARTESIAN = "SELECT count(*) FROM singer a, singer b, singer c, singer d, singer e, singer f, singer g, singer h, singer i, singer j, singer k, singer l, singer m"  # noqa: E501
ENDLESS = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c"

HOSTILE = [
    "INSERT INTO singer VALUES (9, 'X', 'Y', 1)",
    "UPDATE singer SET age = 0",
    "DELETE FROM singer",
    "DROP TABLE singer",
    "CREATE TABLE t (x)",
    "CREATE TEMP TABLE t (x)",
    "CREATE VIEW v AS SELECT 1",
    "CREATE INDEX i ON singer (age)",
    "ATTACH DATABASE '{dir}/new.sqlite' AS n",
    "VACUUM INTO '{dir}/copy.sqlite'",
    "VACUUM",
    "REINDEX",
    "ANALYZE",
    "PRAGMA journal_mode=WAL",
    "PRAGMA user_version=7",
    "PRAGMA writable_schema=ON",
    "SELECT load_extension('{dir}/evil')",
    "BEGIN",
    "SAVEPOINT s",
    "DETACH main",
    "SELECT 1; DROP TABLE singer",
    "SELECT 1; ATTACH '{dir}/x.sqlite' AS x",
    "SELECT * FROM singer; INSERT INTO singer VALUES (10, 'A', 'B', 2)",
]


def snapshot(db: Path) -> tuple[str, list[str]]:
    return hashlib.sha256(db.read_bytes()).hexdigest(), sorted(os.listdir(db.parent))


def test_select(tiny_db):
    r = execute(tiny_db, "SELECT name, age FROM singer WHERE country = 'France' ORDER BY age")
    assert r.ok and r.error is None
    assert r.columns == ("name", "age")
    assert r.rows == (("Justin Brown", 29), ("Rose White", 41), ("John Nizinik", 43))
    assert execute(tiny_db, "SELECT count(*) FROM singer;").rows == ((5,),)  # a trailing ; is fine
    assert execute(tiny_db, "/* hi */ WITH x AS (SELECT 1) SELECT * FROM x").rows == ((1,),)


@pytest.mark.parametrize(
    ("sql", "kind"),
    [
        ("SELEC name FROM singer", "syntax"),
        ("SELECT name FROM singer WHERE", "syntax"),
        ("SELECT nope FROM singer", "runtime"),
        ("SELECT * FROM nope", "runtime"),
        ("", "empty"),
        ("   \n ", "empty"),
        ("DROP TABLE singer", "refused"),
        ("REINDEX", "refused"),
        ("WITH x AS (SELECT 1) DELETE FROM singer", "refused"),
        ("SELECT 1; SELECT 2", "refused"),
        ("SELECT 'nul\x00'", "runtime"),
        ("SELECT '\udc80'", "runtime"),
    ],
)
def test_error_kinds(tiny_db, sql, kind):
    r = execute(tiny_db, sql)
    assert not r.ok and r.error == kind and r.rows == ()
    assert r.error in ERROR_KINDS and r.message


def test_missing_and_bad_database(tmp_path):
    r = execute(tmp_path / "nope.sqlite", "SELECT 1")
    assert r.error == "missing_db" and "nope.sqlite" in r.message
    junk = tmp_path / "junk.sqlite"
    junk.write_text("not a database at all, just text " * 100)
    r = execute(junk, "SELECT 1 FROM sqlite_master")
    assert not r.ok and r.error == "missing_db" and "not a database" in r.message


def test_hostile_sql_changes_nothing(tiny_db):
    before = snapshot(tiny_db)
    for template in HOSTILE:
        r = execute(tiny_db, template.format(dir=tiny_db.parent))
        assert not r.ok and r.error == "refused", (template, r)
    assert execute(tiny_db, "SELECT count(*) FROM singer").rows == ((5,),)
    assert snapshot(tiny_db) == before


def test_wal_database_gets_no_side_files(tmp_path):
    db = tmp_path / "w" / "w.sqlite"
    db.parent.mkdir()
    con = sqlite3.connect(db)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("CREATE TABLE t (x)")
    con.execute("INSERT INTO t VALUES (1)")
    con.commit()
    con.close()
    assert sorted(os.listdir(db.parent)) == ["w.sqlite"]  # checkpointed and cleaned up on close
    before = snapshot(db)
    assert execute(db, "SELECT x FROM t").rows == ((1,),)
    for template in HOSTILE:
        execute(db, template.format(dir=db.parent).replace("singer", "t"))
    with Executor(workers=1) as ex:
        assert ex.map([(db, "SELECT x FROM t")])[0].rows == ((1,),)
    assert snapshot(db) == before


def test_read_pragmas_allowed(tiny_db):
    r = execute(tiny_db, "PRAGMA table_info(singer)")
    assert r.ok and [row[1] for row in r.rows] == ["singer_id", "name", "country", "age"]


def test_timeout_interrupts_a_running_query(tiny_db):
    for sql in (CARTESIAN, ENDLESS):
        r = execute(tiny_db, sql, timeout=0.5)
        assert r.error == "timeout" and not r.ok
        assert r.elapsed < 0.5 + 0.5  # the deadline really interrupts (the spec: within 0.5 s of the timeout)


def test_row_and_byte_caps(tiny_db):
    r = execute(tiny_db, "SELECT a.name FROM singer a, singer b", max_rows=10)
    assert not r.ok and r.error == "too_large" and r.truncated and len(r.rows) == 10
    r = execute(tiny_db, "SELECT a.name FROM singer a, singer b", max_rows=25)
    assert r.ok and len(r.rows) == 25 and not r.truncated
    r = execute(tiny_db, "SELECT name FROM singer", max_bytes=20)
    assert r.error == "too_large"
    r = execute(tiny_db, "SELECT zeroblob(1000000000)")
    assert r.error == "too_large"


def test_invalid_utf8_text_is_decoded_leniently(tmp_path):
    db = tmp_path / "bad" / "bad.sqlite"
    db.parent.mkdir()
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE t (name TEXT)")
    con.execute("INSERT INTO t VALUES (CAST(X'4A6FFF65' AS TEXT))")  # 'Jo\xffe'
    con.commit()
    con.close()
    r = execute(db, "SELECT name FROM t")
    assert r.ok and r.rows == (("Joe",),)  # like the official evaluator: errors="ignore"


def test_canonical_sql():
    assert (
        canonical_sql("SELECT  Name\nFROM singer -- c\n WHERE x = 'A  B'")
        == "select name from singer where x = 'A  B'"
    )
    assert canonical_sql('SELECT "Name", [My Col], `Q` FROM t /* x */;') == 'select "Name", [My Col], `Q` from t ;'
    assert canonical_sql("SELECT Ä FROM t") == "select Ä from t"  # SQLite folds ASCII only


def test_executor_order_and_dedup(tiny_db):
    items = [
        (tiny_db, "SELECT count(*) FROM singer"),
        (tiny_db, "SELECT name FROM singer WHERE age > 40 ORDER BY name"),
        (str(tiny_db), "select COUNT(*)   from SINGER"),  # same query, other spelling
        (tiny_db, "SELECT count(*) FROM singer"),
        (tiny_db, "SELEC"),
    ]
    with Executor(workers=0) as ex:
        results = ex.map(items)
        assert ex.executed == 3  # the two spellings of count(*) run once
        ex.map(items[:1])
        assert ex.executed == 4  # a later call runs its queries again
    assert [r.rows for r in results] == [
        ((5,),),
        (("Joe Sharp",), ("John Nizinik",), ("Rose White",)),
        ((5,),),
        ((5,),),
        (),
    ]
    assert results[4].error == "syntax"
    assert results[0] is results[3]


def test_executor_processes_match_in_process(tiny_db):
    items = [(tiny_db, f"SELECT name FROM singer WHERE age > {age} ORDER BY age") for age in range(20, 60)]
    items += [(tiny_db, "SELECT nope"), (tiny_db, ENDLESS), (tiny_db.parent / "missing.sqlite", "SELECT 1")]
    with Executor(workers=0, timeout=0.5) as ex:
        expected = ex.map(items)
    strip = [(r.ok, r.rows, r.columns, r.error) for r in expected]
    with Executor(workers=3, timeout=0.5) as ex:
        got = ex.map(items)
    with Executor(workers=2, timeout=0.5, start_method="spawn") as ex:
        assert [(r.ok, r.rows, r.columns, r.error) for r in ex.map(items)] == strip
    assert [(r.ok, r.rows, r.columns, r.error) for r in got] == strip
    assert got[-2].error == "timeout" and got[-1].error == "missing_db"


def test_crashing_worker_marks_its_item(tiny_db, monkeypatch):
    original = execution._execute_in_session

    def crashy(session, db_path, sql, **options):
        if "'exit'" in sql:
            os._exit(3)
        if "'segfault'" in sql:
            import ctypes
            import faulthandler

            faulthandler.disable()  # keep pytest's traceback dump out of the log

            ctypes.string_at(0)  # SIGSEGV
        return original(session, db_path, sql, **options)

    monkeypatch.setattr(execution, "_execute_in_session", crashy)
    items = [(tiny_db, f"SELECT {i}") for i in range(5)]
    items[1] = (tiny_db, "SELECT 'exit'")
    items[3] = (tiny_db, "SELECT 'segfault'")
    with Executor(workers=1, start_method="fork") as ex:  # fork: the child sees the patched function
        results = ex.map(items)
    assert [r.error for r in results] == [None, "crash", None, "crash", None]
    assert [r.rows for r in results if r.ok] == [((0,),), ((2,),), ((4,),)]
    assert "exit code 3" in results[1].message and "signal" in results[3].message


def test_stuck_worker_is_killed(tiny_db, monkeypatch):
    import time

    original = execution._execute_in_session

    def stuck(session, db_path, sql, **options):
        if "'stuck'" in sql:
            time.sleep(60)  # not interruptible by the progress handler
        return original(session, db_path, sql, **options)

    monkeypatch.setattr(execution, "_execute_in_session", stuck)
    with Executor(workers=1, timeout=0.2, start_method="fork") as ex:
        results = ex.map([(tiny_db, "SELECT 'stuck'"), (tiny_db, "SELECT 2")])
    assert results[0].error == "timeout" and "killed" in results[0].message
    assert results[1].rows == ((2,),)


def test_executor_rejects_bad_arguments():
    with pytest.raises(ValueError, match="workers"):
        Executor(workers=-1)
    with pytest.raises(ValueError, match="timeout"):
        Executor(timeout=0)


def test_result_is_frozen():
    r = ExecutionResult(ok=True, rows=((1,),))
    with pytest.raises(AttributeError):
        r.ok = False  # type: ignore[misc]


def test_crash_in_a_long_batch(tiny_db, monkeypatch):
    """Results a worker finished but had not sent yet when it died are recomputed, not lost."""
    original = execution._execute_in_session

    def crashy(session, db_path, sql, **options):
        if sql == "SELECT 150":
            os._exit(9)
        return original(session, db_path, sql, **options)

    monkeypatch.setattr(execution, "_execute_in_session", crashy)
    items = [(tiny_db, f"SELECT {i}") for i in range(300)]
    with Executor(workers=2, start_method="fork") as ex:
        results = ex.map(items)
    assert [r.error for r in results].count("crash") == 1 and results[150].error == "crash"
    assert all(r.rows == ((i,),) for i, r in enumerate(results) if i != 150)


def test_memory_error_in_worker_is_data(tiny_db, monkeypatch):
    monkeypatch.setattr(execution, "WORKER_HEAP_LIMIT", 8 * 2**20)
    sql = "SELECT length(hex(zeroblob(10000000)))"  # a 20 MB string: fine in-process, over the worker heap limit
    assert execute(tiny_db, sql).rows == ((20000000,),)
    with Executor(workers=1, start_method="fork") as ex:
        big, small = ex.map([(tiny_db, sql), (tiny_db, "SELECT 1")])
    assert big.error == "too_large" and small.rows == ((1,),)


# One SQLite step per row that takes ~0.1-0.5 s (a 10 MB blob made and hex-encoded): the progress handler, which
# looks at the clock every PROGRESS_STEPS steps, alone would let this 1296-row query run for ~15 s on a quiet CPU
# (the 216-row version took 2.5 s: under the Space's 3 s limit on a fast machine).
HEAVY_ROWS = "SELECT sum(length(hex(zeroblob(10000000 + a.x + b.x + c.x + d.x)))) FROM six a, six b, six c, six d"


@pytest.fixture
def six_db(tmp_path):
    db = tmp_path / "six" / "six.sqlite"
    db.parent.mkdir()
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE six (x INTEGER)")
    con.executemany("INSERT INTO six VALUES (?)", [(i,) for i in range(6)])
    con.commit()
    con.close()
    return db


def test_timeout_holds_when_each_row_is_expensive(six_db):
    r = execute(six_db, HEAVY_ROWS, timeout=1.0)
    assert r.error == "timeout" and "interrupted" in r.message
    assert r.elapsed < 1.0 + 2.0  # the watchdog interrupts within a step; without it this runs for ~15 s


def test_timeout_holds_in_worker_processes(six_db):
    execute(six_db, "SELECT 1")  # the parent's watchdog thread runs: forking must still be safe
    with Executor(workers=2, timeout=1.0, start_method="fork") as ex:
        heavy, small = ex.map([(six_db, HEAVY_ROWS), (six_db, "SELECT count(*) FROM six")])
    # stopped by the worker itself (SQLite's "interrupted"), not by the parent killing a stuck worker at 3 s
    assert heavy.error == "timeout" and "interrupted" in heavy.message and heavy.elapsed < 1.0 + 2.0
    assert small.rows == ((6,),)


def test_fork_is_chosen_while_only_the_watchdog_thread_runs(six_db):
    import threading

    execute(six_db, "SELECT 1")
    if threading.active_count() - 1 != 1:
        pytest.skip("another thread runs in this test process")
    assert execution._context(None).get_start_method() == "fork"


@pytest.mark.parametrize("bad", [float("nan"), 0, -1, float("inf"), "soon"])
def test_timeouts_that_are_no_limit_are_refused(tiny_db, bad):
    with pytest.raises(ValueError, match="timeout must be"):
        execute(tiny_db, "SELECT 1", timeout=bad)
    with pytest.raises(ValueError, match="timeout"):
        Executor(timeout=bad)


@pytest.mark.parametrize("bad", ["nan", "0", "-1", "inf"])
def test_eval_refuses_a_timeout_that_is_no_limit(tiny_db, tmp_path, capsys, bad):
    from sense_hub.cli import main

    pred = tmp_path / "pred.jsonl"
    pred.write_text('{"db_id": "concert_singer", "gold": "SELECT 1", "pred": "SELECT 1"}\n')
    code = main(["eval", "--predictions", str(pred), "--db-root", str(tiny_db.parent.parent), "--timeout", bad])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "--timeout" in err and "Traceback" not in err


def test_in_process_sqlite_heap_is_capped(tiny_db, monkeypatch):
    sql = "SELECT length(hex(zeroblob(30000000)))"  # ~90 MB of SQLite heap (the blob and its hex text)
    assert execute(tiny_db, sql).rows == ((60000000,),)
    original = execution.HEAP_LIMIT
    monkeypatch.setattr(execution, "HEAP_LIMIT", 64 * 2**20)
    monkeypatch.setattr(execution, "_heap_limit_pid", -1)
    try:
        r = execute(tiny_db, sql)
        assert r.error == "too_large" and "memory" in r.message.lower()
        assert execute(tiny_db, "SELECT count(*) FROM singer").rows == ((5,),)  # the process is fine
    finally:
        con = sqlite3.connect(":memory:")
        con.execute(f"PRAGMA hard_heap_limit = {original}")
        con.close()


def test_huge_rows_stop_at_the_byte_cap_before_they_load(six_db):
    sql = "SELECT hex(zeroblob(4000000)) FROM six a, six b, six c"  # 216 rows of 8 MB = 1.7 GB if all loaded
    r = execute(six_db, sql, max_bytes=20 * 2**20)
    assert r.error == "too_large" and r.truncated
    assert 1 <= len(r.rows) <= 2 and sum(len(row[0]) for row in r.rows) <= 20 * 2**20


def test_empty_database_file_is_named(tmp_path):
    empty = tmp_path / "e" / "e.sqlite"
    empty.parent.mkdir()
    empty.touch()
    r = execute(empty, "SELECT * FROM singer")
    assert r.error == "missing_db" and "empty" in r.message and str(empty) in r.message


def test_pragmas_follow_one_rule_in_both_forms(tiny_db):
    statement = execute(tiny_db, "PRAGMA table_info(singer)")
    function = execute(tiny_db, "SELECT * FROM pragma_table_info('singer')")
    assert statement.ok and function.ok and statement.rows == function.rows
    assert [row[1] for row in function.rows] == ["singer_id", "name", "country", "age"]
    for sql in (
        "PRAGMA database_list",
        "SELECT file FROM pragma_database_list",
        "SELECT * FROM pragma_writable_schema",
    ):
        r = execute(tiny_db, sql)
        assert r.error == "refused", sql  # database_list would show the server's file path
    r = execute(tiny_db, "WITH x AS (SELECT 1) UPDATE sqlite_master SET sql = 'x'")
    assert r.error == "refused"
