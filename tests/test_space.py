"""The Space's logic (`sense_hub.space`) called directly, and its API through `gradio_client` on a launched app."""

import hashlib
import os
import sqlite3
import time
from pathlib import Path

import pytest
from conftest import make_tiny_db

from sense_hub.execution import ERROR_KINDS, ExecutionResult, execute
from sense_hub.prompts import prompt_for_database
from sense_hub.space import (
    HUB_MODEL,
    SessionStore,
    SpaceConfig,
    SQLAssistant,
    UploadError,
    describe_error,
    prepare_database,
    preview_rows,
    result_table,
    schema_markdown,
    transpile_sql,
    vote,
)

HOSTILE_SQL = [
    "DROP TABLE singer",
    "DELETE FROM singer",
    "UPDATE singer SET age = 0",
    "INSERT INTO singer VALUES (9, 'X', 'Y', 1)",
    "CREATE TABLE t (x)",
    "CREATE TEMP TABLE t (x)",
    "ALTER TABLE singer ADD COLUMN x",
    "PRAGMA writable_schema = 1",
    "PRAGMA journal_mode = WAL",
    "VACUUM",
    "VACUUM INTO '/tmp/sense-space-copy.sqlite'",
    "ATTACH DATABASE '/tmp/sense-space-evil.sqlite' AS evil",
    "SELECT load_extension('x')",
    "SELECT 1; DROP TABLE singer",
    "BEGIN; DELETE FROM singer; COMMIT",
    "REINDEX",
]
RUNAWAY_SQL = "WITH RECURSIVE r(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM r) SELECT count(*) FROM r"


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def sqlite_rows(db: Path, sql: str) -> tuple[list[str], list[list]]:
    con = sqlite3.connect(db)
    try:
        cur = con.execute(sql)
        return [d[0] for d in cur.description], [list(r) for r in cur.fetchall()]
    finally:
        con.close()


class CannedGenerator:
    """A stand-in model: answers known questions with fixed text (in a code fence, as chat models do)."""

    name = "canned"

    def __init__(self, answers: dict[str, list[str]]):
        self.answers = answers
        self.prompts: list[list[dict]] = []

    def generate(self, prompts, config):
        self.prompts.extend(prompts)
        out = []
        for messages in prompts:
            question = next(q for q in self.answers if q in messages[-1]["content"])
            texts = self.answers[question]
            out.append([f"```sql\n{texts[i % len(texts)]}\n```" for i in range(config.n)])
        return out


# ----------------------------------------------------------------------------------------------- uploads


def test_prepare_database_makes_a_private_read_only_copy(tiny_db, tmp_path):
    before = sha256(tiny_db)
    copy = prepare_database([tiny_db], workdir=tmp_path / "visitor")
    assert copy.parent.parent == tmp_path / "visitor"
    assert copy.name == "concert_singer.sqlite"
    assert sha256(copy) == before
    assert not os.access(copy, os.W_OK) or os.geteuid() == 0  # root ignores modes; the connection is read-only
    assert copy.stat().st_mode & 0o222 == 0
    assert prepare_database(str(tiny_db), workdir=tmp_path / "visitor") == copy  # same upload, same copy
    assert sha256(tiny_db) == before


def test_prepare_database_reads_a_wal_mode_database(tmp_path):
    db = tmp_path / "wal.db"
    con = sqlite3.connect(db)
    con.execute("PRAGMA journal_mode = WAL")
    con.execute("CREATE TABLE t (x INTEGER)")
    con.execute("INSERT INTO t VALUES (1), (2)")
    con.commit()
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.close()
    before = sha256(db)
    copy = prepare_database(db, workdir=tmp_path / "w")
    result = execute(copy, "SELECT x FROM t ORDER BY x")
    assert result.ok, result.message
    assert result.rows == ((1,), (2,))
    assert sha256(db) == before


def test_csv_files_become_tables(tmp_path):
    (tmp_path / "people.csv").write_text("id,name,age\n1,Ada,36\n2,Linus,\n")
    (tmp_path / "pets.csv").write_text("pet_id,owner_id,kind\n1,1,cat\n2,1,dog\n3,2,fish\n")
    db = prepare_database([tmp_path / "people.csv", tmp_path / "pets.csv"], workdir=tmp_path / "w")
    assert execute(db, "SELECT name, age FROM people ORDER BY id").rows == (("Ada", 36), ("Linus", None))
    assert execute(db, "SELECT count(*) FROM pets").rows == ((3,),)
    assert "people" in schema_markdown(db) and "pets" in schema_markdown(db)


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("fake.sqlite", b"this is not a database at all", "not an SQLite database"),
        ("notes.txt", b"hello", "neither an SQLite database nor a .csv file"),
        ("empty.db", b"", "is empty"),
        ("ragged.csv", b"a,b\n1,2\n3\n", "ragged.csv line 3"),
        ("corrupt.db", b"SQLite format 3\x00" + b"\xff" * 200, "cannot be read"),
    ],
)
def test_bad_uploads_get_a_human_message(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(UploadError, match=message) as info:
        prepare_database([path], workdir=tmp_path / "w")
    assert str(tmp_path) not in str(info.value)  # no server paths in what the visitor reads


def test_upload_size_cap_and_combinations(tiny_db, tmp_path):
    with pytest.raises(UploadError, match="accepts files up to"):
        prepare_database([tiny_db], workdir=tmp_path / "w", max_bytes=1024)
    other = make_tiny_db(tmp_path / "other.sqlite")
    with pytest.raises(UploadError, match="one SQLite database at a time"):
        prepare_database([tiny_db, other], workdir=tmp_path / "w")
    (tmp_path / "t.csv").write_text("a\n1\n")
    with pytest.raises(UploadError, match="not both"):
        prepare_database([tiny_db, tmp_path / "t.csv"], workdir=tmp_path / "w")
    with pytest.raises(UploadError, match="Upload a database first"):
        prepare_database([], workdir=tmp_path / "w")


def test_sessions_are_isolated_and_expire(tiny_db, tmp_path):
    store = SessionStore(tmp_path / "sessions", max_age_s=60)
    a, b = store.workdir("visitor-a"), store.workdir("visitor-b")
    assert a != b and a.is_dir() and b.is_dir()
    copy_a = prepare_database([tiny_db], workdir=a)
    copy_b = prepare_database([tiny_db], workdir=b)
    assert copy_a != copy_b
    store.drop("visitor-a")
    assert not a.exists() and copy_b.exists()
    old = time.time() - 120
    os.utime(b, (old, old))
    store.workdir("visitor-c")  # a new visitor clears folders idle past max_age_s
    assert not b.exists()


# ----------------------------------------------------------------------------------------------- display


def test_schema_markdown_shows_tables_keys_and_counts(tiny_db):
    text = schema_markdown(tiny_db)
    assert "**singer** (5 rows)" in text
    assert "**concert** (5 rows)" in text
    assert "- `singer_id` INTEGER · primary key · e.g. 1, 2, 3" in text
    assert "→ singer.singer_id" in text
    assert "Joe Sharp" in text


def test_preview_rows(tiny_db):
    table = preview_rows(tiny_db, "singer", limit=2)
    assert table["headers"] == ["singer_id", "name", "country", "age"]
    assert table["data"] == [[1, "Joe Sharp", "Netherlands", 52], [2, "Timbaland", "United States", 32]]
    assert preview_rows(tiny_db, "no_such_table") == {"headers": [], "data": []}


def test_result_table_is_exactly_sqlite_rows(tmp_path):
    db = tmp_path / "types.sqlite"
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE t (i INTEGER, r REAL, s TEXT, n, b BLOB)")
    con.execute("INSERT INTO t VALUES (?, ?, ?, ?, ?)", (2**62, 0.1, "ünï | code", None, b"\x00\xff"))
    con.commit()
    con.close()
    table = result_table(execute(db, "SELECT i, r, s, n, b, i AS i FROM t"))
    assert table == {
        "headers": ["i", "r", "s", "n", "b", "i"],
        "data": [[2**62, 0.1, "ünï | code", None, "0x00ff", 2**62]],
    }


def test_transpile_sql():
    assert " ".join(transpile_sql("SELECT name FROM singer LIMIT 3", dialect="tsql").split()) == (
        "SELECT TOP 3 name FROM singer"
    )
    assert "`singer`" in transpile_sql('SELECT "name" FROM "singer"', dialect="mysql")
    with pytest.raises(ValueError, match="unknown dialect 'cobol'"):
        transpile_sql("SELECT 1", dialect="cobol")
    with pytest.raises(ValueError, match="could not translate this SQL to postgres"):
        transpile_sql("SELECT FROM WHERE (", dialect="postgres")


def ok(*rows) -> ExecutionResult:
    return ExecutionResult(ok=True, rows=tuple(rows), columns=("x",))


FAIL = ExecutionResult(ok=False, error="syntax", message="near x")


def test_vote_picks_the_most_shared_result():
    assert vote([ok((1,)), ok((2,)), ok((2,)), FAIL]) == (1, [1, 2, 2, 0])
    assert vote([ok((1,), (2,)), ok((2,), (1,))]) == (0, [2, 2])  # row order ignored, tie -> earliest
    assert vote([FAIL, ok((1,)), ok((2,))]) == (1, [0, 1, 1])
    assert vote([FAIL, FAIL]) == (0, [0, 0])
    with pytest.raises(ValueError):
        vote([])


def test_describe_error_is_human():
    assert "time limit" in describe_error(ExecutionResult(ok=False, error="timeout"), timeout=2)
    assert describe_error(ExecutionResult(ok=False, error="refused", message="not authorized")).startswith("Refused")


def test_config_from_env(monkeypatch):
    for name in ("SENSE_MODEL", "SENSE_BACKEND", "SENSE_BASE_URL", "SENSE_API_KEY", "SPACE_ID", "SENSE_TIMEOUT"):
        monkeypatch.delenv(name, raising=False)
    assert SpaceConfig.from_env().model == "embedded:qwen2.5-coder-0.5b"
    monkeypatch.setenv("SPACE_ID", "sense/sense-demo")  # the chunk wheels install on a Space: no Hub download
    assert SpaceConfig.from_env().model == "embedded:qwen2.5-coder-0.5b"
    assert HUB_MODEL == "Qwen/Qwen2.5-Coder-0.5B-Instruct"
    monkeypatch.setenv("SENSE_MODEL", "my-model")
    monkeypatch.setenv("SENSE_BACKEND", "openai")
    monkeypatch.setenv("SENSE_BASE_URL", "http://127.0.0.1:8000/v1")
    monkeypatch.setenv("SENSE_TIMEOUT", "2.5")
    config = SpaceConfig.from_env()
    assert (config.model, config.backend, config.base_url, config.timeout) == (
        "my-model",
        "openai",
        "http://127.0.0.1:8000/v1",
        2.5,
    )
    monkeypatch.setenv("SENSE_TIMEOUT", "soon")
    with pytest.raises(ValueError, match="SENSE_TIMEOUT must be a number"):
        SpaceConfig.from_env()


# ----------------------------------------------------------------------------------------------- answering


def test_answer_uses_the_one_prompt_and_votes(tiny_db):
    question = "Which singers are from France?"
    generator = CannedGenerator(
        {
            question: [
                "SELECT name FROM singer WHERE country = 'France'",
                "SELECT nme FROM singer",
                "SELECT name FROM singer WHERE country = 'France' ORDER BY age",
                "SELECT name FROM singer",
            ]
        }
    )
    assistant = SQLAssistant(SpaceConfig(), generator=generator)
    answer = assistant.answer(question, tiny_db, n=4)
    assert generator.prompts == [prompt_for_database(question, tiny_db)]
    assert answer.sql == "SELECT name FROM singer WHERE country = 'France'"
    assert sorted(answer.result.rows) == [("John Nizinik",), ("Justin Brown",), ("Rose White",)]
    assert [c.votes for c in answer.candidates] == [2, 0, 2, 1]
    assert answer.candidates[1].result.error == "runtime"


def test_answer_rejects_bad_requests(tiny_db):
    assistant = SQLAssistant(SpaceConfig(max_candidates=4), generator=CannedGenerator({}))
    with pytest.raises(ValueError, match="Type a question"):
        assistant.answer("   ", tiny_db)
    with pytest.raises(ValueError, match="between 1 and 4"):
        assistant.answer("How many?", tiny_db, n=5)


def test_answer_with_a_real_model_never_raises_for_bad_sql(tiny_db, tiny_model_dir):
    assistant = SQLAssistant(SpaceConfig(model=str(tiny_model_dir), max_new_tokens=16))
    answer = assistant.answer("How many singers are there?", tiny_db, n=2)
    assert len(answer.candidates) == 2
    # whatever the random model wrote, each candidate's result is what the executor gives for its SQL (data,
    # not an exception), and the answer is the candidate with the most votes
    for candidate in answer.candidates:
        again = execute(tiny_db, candidate.sql, timeout=10.0)
        assert (candidate.result.ok, candidate.result.rows, candidate.result.error) == (
            again.ok,
            again.rows,
            again.error,
        )
        assert candidate.result.error in (None, *ERROR_KINDS)
    chosen = next(c for c in answer.candidates if c.sql == answer.sql)
    assert chosen.result == answer.result and chosen.votes == max(c.votes for c in answer.candidates)


def test_model_that_cannot_load_gives_a_message(tiny_db, tmp_path):
    from sense_hub.space import ModelError

    assistant = SQLAssistant(SpaceConfig(model=str(tmp_path / "no-such-model")))
    with pytest.raises(ModelError, match="could not be loaded.*SENSE_MODEL"):
        assistant.answer("How many singers are there?", tiny_db)


def test_hostile_sql_changes_nothing(tiny_db, tmp_path):
    copy = prepare_database([tiny_db], workdir=tmp_path / "w")
    before = sha256(tiny_db)
    assistant = SQLAssistant(SpaceConfig(timeout=1.0), generator=CannedGenerator({}))
    for sql in HOSTILE_SQL:
        result = assistant.run_sql(sql, copy)
        assert not result.ok, sql
        assert result.error in ("refused", "syntax", "runtime"), (sql, result)
    assert sha256(tiny_db) == before
    assert sha256(copy) == before
    assert sorted(p.name for p in copy.parent.iterdir()) == [copy.name]  # no journal, WAL or extra files
    assert not Path("/tmp/sense-space-copy.sqlite").exists()


def test_runaway_query_is_stopped(tiny_db):
    assistant = SQLAssistant(SpaceConfig(timeout=0.5), generator=CannedGenerator({}))
    start = time.perf_counter()
    result = assistant.run_sql(RUNAWAY_SQL, tiny_db)
    assert result.error == "timeout"
    assert time.perf_counter() - start < 30  # generous: the point is that it returns at all
    assert "time limit" in describe_error(result, timeout=0.5)


# ----------------------------------------------------------------------------------------------- the API


@pytest.fixture(scope="module")
def app(tiny_model_dir, tmp_path_factory):
    """The Space launched on 127.0.0.1 with the tiny model; yields (url, assistant)."""
    from sense_hub.space import build_demo, launch_options

    config = SpaceConfig(model=str(tiny_model_dir), max_new_tokens=16, timeout=1.0)
    assistant = SQLAssistant(config)
    root = tmp_path_factory.mktemp("space")
    demo = build_demo(config, assistant=assistant, examples_root=root / "examples")
    _, url, _ = demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", quiet=True, **launch_options(config))
    yield url, assistant
    demo.close()


@pytest.fixture(scope="module")
def client(app):
    from gradio_client import Client

    return Client(app[0], verbose=False)


def test_api_lists_exactly_the_two_endpoints(client):
    info = client.view_api(print_info=False, return_format="dict")
    assert sorted(info["named_endpoints"]) == ["/answer", "/run_sql"]
    assert [p["parameter_name"] for p in info["named_endpoints"]["/answer"]["parameters"]] == ["db_file", "question"]
    assert [p["parameter_name"] for p in info["named_endpoints"]["/run_sql"]["parameters"]] == ["db_file", "sql"]


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT * FROM singer",
        "SELECT name, age / 3.0, NULL FROM singer ORDER BY age DESC",
        "SELECT country, count(*), avg(age) FROM singer GROUP BY country",
        "SELECT T1.name, T2.concert_name FROM singer AS T1 JOIN concert AS T2 ON T1.singer_id = T2.singer_id",
        "SELECT name FROM singer WHERE age > 100",
    ],
)
def test_api_run_sql_returns_exactly_sqlite_rows(client, tiny_db, sql):
    from gradio_client import handle_file

    table = client.predict(handle_file(str(tiny_db)), sql, api_name="/run_sql")
    headers, rows = sqlite_rows(tiny_db, sql)
    assert table["headers"] == headers
    assert table["data"] == rows


def test_api_run_sql_refuses_writes_and_leaves_the_file_byte_identical(client, tiny_db):
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError

    before = sha256(tiny_db)
    for sql in ["DROP TABLE singer", "DELETE FROM concert", "ATTACH DATABASE '/tmp/x.sqlite' AS x", "VACUUM"]:
        with pytest.raises(AppError, match="Refused"):
            client.predict(handle_file(str(tiny_db)), sql, api_name="/run_sql")
    assert sha256(tiny_db) == before
    table = client.predict(handle_file(str(tiny_db)), "SELECT count(*) FROM singer", api_name="/run_sql")
    assert table["data"] == [[5]]


def test_api_run_sql_errors_are_messages(client, tiny_db, tmp_path):
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match="time limit"):
        client.predict(handle_file(str(tiny_db)), RUNAWAY_SQL, api_name="/run_sql")
    with pytest.raises(AppError, match="could not parse"):
        client.predict(handle_file(str(tiny_db)), "SELEC name FROM singer", api_name="/run_sql")
    fake = tmp_path / "fake.sqlite"
    fake.write_text("hello")
    with pytest.raises(AppError, match="not an SQLite database"):
        client.predict(handle_file(str(fake)), "SELECT 1", api_name="/run_sql")


def test_api_answer_matches_the_library(app, client, tiny_db):
    from gradio_client import handle_file

    _, assistant = app
    question = "How many singers are there?"
    sql, table = client.predict(handle_file(str(tiny_db)), question, api_name="/answer")
    expected = assistant.answer(question, tiny_db)
    assert sql == expected.sql
    if expected.result.ok:
        assert table["data"] == [list(r) for r in expected.result.rows]
    else:
        assert table["headers"] == ["error"]
        assert table["data"] == [[describe_error(expected.result, timeout=1.0)]]


def test_api_answer_needs_a_question(client, tiny_db):
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match="Type a question"):
        client.predict(handle_file(str(tiny_db)), "  ", api_name="/answer")


def test_latest_upload_keeps_what_the_visitor_added_last(tiny_db, tmp_path):
    from sense_hub.space import latest_upload

    other = str(make_tiny_db(tmp_path / "other.sqlite"))
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    a.write_text("x\n1\n")
    b.write_text("y\n2\n")
    db = str(tiny_db)
    assert latest_upload([db]) == [db]
    assert latest_upload([db, other]) == [other]
    assert latest_upload([str(a), str(b)]) == [str(a), str(b)]
    assert latest_upload([db, str(a), str(b)]) == [str(a), str(b)]
    assert latest_upload([str(a), other]) == [other]


def test_api_answer_returns_the_sql_and_exactly_its_rows(tiny_db, tmp_path):
    from gradio_client import Client, handle_file

    from sense_hub.space import build_demo, launch_options

    question = "What are the names and ages of singers from France?"
    gold = "SELECT name, age FROM singer WHERE country = 'France'"
    config = SpaceConfig(timeout=1.0)
    assistant = SQLAssistant(config, generator=CannedGenerator({question: [gold + ";"]}))
    demo = build_demo(config, assistant=assistant, examples_root=tmp_path / "examples")
    _, url, _ = demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", quiet=True, **launch_options(config))
    try:
        sql, table = Client(url, verbose=False).predict(handle_file(str(tiny_db)), question, api_name="/answer")
    finally:
        demo.close()
    assert sql == gold
    headers, rows = sqlite_rows(tiny_db, gold)
    assert table["headers"] == headers and table["data"] == rows


@pytest.mark.parametrize(
    "text, complete",
    [
        ("SELECT count(*) FROM singer", False),
        ("SELECT count(*) FROM singer;", True),
        ("```sql\nSELECT name FROM singer\n```", True),
        ("```sql\nSELECT name FROM singer", False),
        ("SELECT name FROM singer WHERE country = 'Fra", False),
        ("SELECT name FROM singer\n\n", True),
        ("Here is the query:", False),
        ("", False),
    ],
)
def test_statement_complete(text, complete):
    from sense_hub.prompts import statement_complete

    assert statement_complete(text) is complete


def test_greedy_prefix_cache_reuses_the_schema_and_keeps_the_answer(tiny_db, tiny_model_dir):
    from sense_hub.generation import GenerationConfig, GreedyPrefixCache, load_generator
    from sense_hub.prompts import extract_sql

    generator = load_generator(str(tiny_model_dir))
    fast = GreedyPrefixCache(generator)
    for i, question in enumerate(["How many singers are there?", "List the names of concerts held in 2014."]):
        messages = prompt_for_database(question, tiny_db)
        full = generator.generate([messages], GenerationConfig(max_new_tokens=24))[0][0]
        text = fast.generate(messages, max_new_tokens=24)
        assert full.startswith(text)  # the same greedy tokens, possibly stopped earlier
        assert extract_sql(text) == extract_sql(full)
        assert (fast.last_shared > 100) is (i == 1)  # the second question reuses the schema's cache
