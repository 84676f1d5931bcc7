"""Strong data: template synthesis with verification rounds, strong-model synthesis against a local
OpenAI-compatible server, resume after interruption, statistics and the CLI."""

from __future__ import annotations

import json
import re
import sqlite3
import threading
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from conftest import make_tiny_db
from test_templates import make_shop_db

from sense_hub import cli
from sense_hub.formats import STRONG_COLUMNS, validate_records
from sense_hub.prompts import SYSTEM_PROMPT
from sense_hub.synthesis import (
    SQL_TO_TEXT_SYSTEM,
    SynthesisStats,
    classify_difficulty,
    materialize_database,
    parse_question,
    parse_strong_output,
    plot_statistics,
    rejected_path,
    split_statements,
    sql_components,
    synthesis_statistics,
    synthesize_strong,
    synthesize_templates,
)


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


# ---------------------------------------------------------------------------------------------------------------
# A deterministic stand-in for the SQL-to-text and text-to-SQL models (the embedded model is used in the slow
# test below). It plays both roles, told apart by the system prompt:
# - SQL-to-text: writes "What does query <k> return?" (k: a checksum of the SQL); when the prompt carries feedback on a previous question,
#   writes "Clearly, what does query <k> return?".
# - text-to-SQL: answers a "Clearly, ..." question with the query it described (so it verifies), anything else
#   with a query that returns a different result.
# ---------------------------------------------------------------------------------------------------------------


class FakeModel:
    def __init__(self, name: str = "fake"):
        self.name = name
        self.sql_by_key: dict[str, str] = {}
        self.prompts: list[list[dict]] = []

    def generate(self, prompts, config):
        out = []
        for messages in prompts:
            self.prompts.append(messages)
            system, user = messages[0]["content"], messages[-1]["content"]
            if system == SQL_TO_TEXT_SYSTEM:
                sql = re.findall(r"^SQL: (.*)$", user, re.M)[-1]
                key = str(zlib.crc32(sql.encode()))
                self.sql_by_key[key] = sql
                clear = "A previous question was" in user
                out.append([f"{'Clearly, what' if clear else 'What'} does query {key} return?"])
            else:
                assert system == SYSTEM_PROMPT
                question = re.search(r"Question: (.*)", user).group(1)
                match = re.match(r"Clearly, what does query (\d+) return\?", question)
                sql = self.sql_by_key[match.group(1)] if match else "SELECT 'not the answer'"
                out.append([f"```sql\n{sql}\n```"])
        return out


def test_template_rounds_feedback_and_records(tmp_path: Path):
    db = make_shop_db(tmp_path / "dbs" / "shop" / "shop.sqlite")
    model = FakeModel()
    stats = SynthesisStats()
    output = tmp_path / "strong.jsonl"
    records = synthesize_templates(
        [db], generator=model, verifier=model, output=output, per_database=10, rounds=2, stats=stats, batch_size=4
    )
    # round 1: model questions fail verification; round 2 re-asks with feedback and they verify
    assert len(records) == 10 and stats.kept == 10
    validate_records("strong", records)
    assert read_jsonl(output) == records
    for r in records:
        assert list(r) == list(STRONG_COLUMNS)
        assert r["question"].startswith("Clearly, what does query")
        assert r["verification"] == "verified:fake"
        assert re.fullmatch(r"templates:[a-z_]+\+fake", r["generator"])
        assert r["db_id"] == r["domain"] == "shop" and "CREATE TABLE purchase" in r["schema"]
        assert r["difficulty"] in ("easy", "medium", "hard")
    feedback = [m[-1]["content"] for m in model.prompts if "A previous question was" in m[-1]["content"]]
    assert len(feedback) == 10 and all("it returns a different result" in f for f in feedback)
    # 10 questions, 10 verifications that fail, 10 rewrites, 10 verifications that pass
    assert stats.calls == 40 and stats.prompt_tokens > 0 and stats.completion_tokens > 0
    assert sum(c["kept"] for c in stats.families.values()) == 10
    assert rejected_path(output).read_text() == ""


def test_unverified_pairs_are_rejected_with_their_reason(tmp_path: Path, tiny_db: Path):
    model = FakeModel()
    stats = SynthesisStats()
    output = tmp_path / "strong.jsonl"
    # one model round, then the rule-based question: the fake verifier answers neither correctly
    records = synthesize_templates(
        [tiny_db], generator=model, verifier=model, output=output, per_database=6, rounds=1, stats=stats,
        rule_fallback=True,
    )  # fmt: skip
    assert records == [] and stats.kept == 0
    rejected = read_jsonl(rejected_path(output))
    assert len(rejected) == 6 and {r["reason"] for r in rejected} == {"verify_mismatch"}
    assert stats.rejected["verify_mismatch"] == 6
    # the last question tried was the rule-based one, rendered from the template
    assert all(r["question"] and "query" not in r["question"] for r in rejected)


def test_model_questions_only_unless_rule_fallback(tmp_path: Path, tiny_db: Path):
    """By default a candidate whose model-written questions all fail is rejected, not given the rule's wording."""
    model = FakeModel()
    output = tmp_path / "strong.jsonl"
    records = synthesize_templates([tiny_db], generator=model, verifier=model, output=output, per_database=6, rounds=1)
    assert records == []
    rejected = read_jsonl(rejected_path(output))
    assert len(rejected) == 6 and all(re.fullmatch(r"What does query \d+ return\?", r["question"]) for r in rejected)
    # a model call per question and per verification, and no third call for a rule question's verification
    assert len(model.prompts) == 12


def test_rule_questions_without_models(tmp_path: Path, tiny_db: Path):
    output = tmp_path / "strong.jsonl"
    stats = SynthesisStats()
    records = synthesize_templates([tiny_db], generator=None, output=output, per_database=8, stats=stats)
    assert len(records) == 8 and stats.calls == 0
    assert {r["verification"] for r in records} == {"executed"}
    assert all(r["generator"].endswith("+rule") for r in records)
    assert len({r["question"] for r in records}) == 8
    # without a verifier, an unchecked model-written question is not trusted: the rule writes it (unless asked)
    model = FakeModel()
    same = synthesize_templates([tiny_db], generator=model, output=tmp_path / "b.jsonl", per_database=8)
    assert [r["question"] for r in same] == [r["question"] for r in records] and model.prompts == []
    by_model = synthesize_templates(
        [tiny_db], generator=model, output=tmp_path / "c.jsonl", per_database=8, question_source="model"
    )
    assert all(r["generator"].endswith("+fake") and r["verification"] == "executed" for r in by_model)
    assert len(model.prompts) == 8
    with pytest.raises(ValueError, match="question_source"):
        synthesize_templates(
            [tiny_db], generator=None, output=tmp_path / "x.jsonl", per_database=1, question_source="x"
        )


def test_template_synthesis_resumes(tmp_path: Path):
    db = make_shop_db(tmp_path / "dbs" / "shop" / "shop.sqlite")
    tiny = make_tiny_db(tmp_path / "dbs" / "concert_singer" / "concert_singer.sqlite")
    output = tmp_path / "strong.jsonl"

    def run(path, n, model, stats=None):
        return synthesize_templates(
            [db, tiny], generator=model, verifier=model, output=path, per_database=n, stats=stats
        )

    full = run(tmp_path / "full.jsonl", 6, FakeModel())
    first = run(output, 3, FakeModel())
    assert len(first) == 6
    # an interrupted write leaves a torn last line: it is dropped and the work redone
    with output.open("a") as f:
        f.write('{"id": "tmpl-shop-0000')
    stats = SynthesisStats()
    model = FakeModel()
    resumed = run(output, 6, model, stats)
    assert stats.resumed == 6 and stats.kept == 6
    assert [r["id"] for r in resumed] == [r["id"] for r in first] + [r["id"] for r in resumed[6:]]
    assert sorted(r["id"] for r in resumed) == sorted(r["id"] for r in full)
    assert {r["sql"] for r in resumed} == {r["sql"] for r in full}
    assert len(read_jsonl(output)) == 12
    # a finished run does nothing the second time
    stats = SynthesisStats()
    again = run(output, 6, FakeModel(), stats)
    assert again == resumed and stats.calls == 0


def test_parse_question():
    assert parse_question("Question: How many singers are there?") == "How many singers are there?"
    assert parse_question('\n"List the names of all stadiums"\n') == "List the names of all stadiums?"
    assert parse_question("SELECT name FROM singer") is None
    assert parse_question("") is None
    assert parse_question("ok") is None


# ---------------------------------------------------------------------------------------------------------------
# Strong synthesis
# ---------------------------------------------------------------------------------------------------------------

GOOD = """Domain: urban beekeeping
Schema:
```sql
CREATE TABLE hive (hive_id INTEGER PRIMARY KEY, rooftop TEXT, colonies INTEGER);
CREATE TABLE harvest (harvest_id INTEGER PRIMARY KEY, hive_id INTEGER, kg REAL,
  FOREIGN KEY (hive_id) REFERENCES hive(hive_id));
```
Rows:
```sql
INSERT INTO hive VALUES (1, 'Dock; Street', 3), (2, 'Mill Road', 5);
INSERT INTO harvest VALUES (1, 1, 12.5), (2, 2, 20.0), (3, 2, 7.5);
```
Question: Which rooftop hives have more than 4 colonies?
SQL:
```sql
SELECT rooftop FROM hive WHERE colonies > 4;
```"""

HARD = """**Domain:** freight rail
### Schema
```sql
CREATE TABLE train (train_id INTEGER PRIMARY KEY, line TEXT);
CREATE TABLE wagon (wagon_id INTEGER PRIMARY KEY, train_id INTEGER REFERENCES train(train_id), tons REAL);
INSERT INTO train VALUES (1, 'North'), (2, 'South'), (3, 'North');
INSERT INTO wagon VALUES (1, 1, 30), (2, 1, 45), (3, 2, 10), (4, 3, 80);
```
**Question:** Which lines carry more than the average tonnage per wagon, counting lines with at least one wagon?
**SQL query:**
```
SELECT T1.line FROM train AS T1 JOIN wagon AS T2 ON T1.train_id = T2.train_id GROUP BY T1.line
HAVING avg(T2.tons) > (SELECT avg(tons) FROM wagon)
```"""

SCRIPT = [
    ("ok", GOOD),
    ("missing_section", "Domain: tea plantations\nQuestion: How many estates are there?\n"),
    (
        "invalid_ddl",
        "Domain: ski resorts\nSchema:\n```sql\nCREATE TABLE lift (id INTEGER PRIMARY KEY, name TEXT,,);\n```\n"
        "Question: List lift names.\nSQL:\n```sql\nSELECT name FROM lift\n```",
    ),
    (
        "sql_exec_error",
        "Domain: ski resorts\nSchema:\n```sql\nCREATE TABLE lift (id INTEGER PRIMARY KEY, name TEXT);\n```\n"
        "Rows:\n```sql\nINSERT INTO lift VALUES (1, 'Blue');\n```\n"
        "Question: What is the height of each lift?\nSQL:\n```sql\nSELECT height FROM lift\n```",
    ),
    ("duplicate_sql", GOOD.replace("urban beekeeping", "city bees").replace("Which rooftop", "What rooftop")),
    (
        "sql_parse_error",
        "Domain: print shops\nSchema:\n```sql\nCREATE TABLE job (id INTEGER PRIMARY KEY, pages INTEGER);\n```\n"
        "Question: How many pages in total?\nSQL:\n```sql\nSELECT sum(pages FROM job WHERE (\n```",
    ),
    ("duplicate_question", GOOD.replace("colonies > 4", "colonies >= 5")),
    (
        "empty_result",
        "Domain: seed banks\nSchema:\n```sql\nCREATE TABLE seed (id INTEGER PRIMARY KEY, species TEXT);\n```\n"
        "Question: Which species are stored?\nSQL:\n```sql\nSELECT species FROM seed\n```",
    ),
    ("ok", HARD),
    (
        "invalid_ddl",
        "Domain: wind farms\nSchema:\n```sql\nCREATE TABLE t (a INT);\nATTACH DATABASE '/tmp/x.db' AS x;\n```\n"
        "Question: Count rows of t.\nSQL:\n```sql\nSELECT count(*) FROM t\n```",
    ),
    ("generation_error", None),  # the server answers 400
    (
        "ok",
        "Domain: bike rental\nSchema:\n```sql\nCREATE TABLE bike (id INTEGER PRIMARY KEY, color TEXT);\n```\n"
        "Rows:\n```sql\nINSERT INTO bike VALUES (1, 'red'), (2, 'blue'), (3, 'red');\n```\n"
        "Question: How many red bikes are there?\nSQL:\n```sql\nSELECT count(*) FROM bike WHERE color = 'red'\n```",
    ),
]


class ScriptedLLM:
    """A local HTTP server standing in for a remote OpenAI-compatible LLM: the i-th request gets SCRIPT[i]."""

    def __init__(self, script):
        self.script = script
        self.requests: list[dict] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                assert self.path == "/v1/chat/completions"
                index = len(owner.requests)
                owner.requests.append(body)
                text = owner.script[index % len(owner.script)][1]
                if text is None:
                    payload, status = {"error": {"message": "context length exceeded"}}, 400
                else:
                    status = 200
                    payload = {
                        "id": f"chatcmpl-{index}",
                        "object": "chat.completion",
                        "model": body["model"],
                        "choices": [
                            {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
                        ],
                        "usage": {"prompt_tokens": 100, "completion_tokens": 100, "total_tokens": 200},
                    }
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


SEEDS = [
    {"db_id": "concert_singer", "question": "How many singers are there?", "sql": "SELECT count(*) FROM singer"},
    {
        "db_id": "concert_singer",
        "question": "Show the name of singers older than 40.",
        "sql": "SELECT name FROM singer WHERE age > 40",
        "schema": "CREATE TABLE singer (singer_id INTEGER PRIMARY KEY, name TEXT, age INTEGER);",
    },
    {"db_id": "pets", "question": "List pet types.", "sql": "SELECT DISTINCT pettype FROM pets"},
]


def _strong_generator(url: str):
    from sense_hub.generation import load_generator

    return load_generator("strong-llm", backend="openai", base_url=url, api_key="test", max_concurrency=1)


def test_strong_synthesis_rejects_each_malformed_reply_with_its_reason(tmp_path: Path):
    output, db_root = tmp_path / "strong.jsonl", tmp_path / "databases"
    stats = SynthesisStats()
    with ScriptedLLM(SCRIPT) as llm:
        records = synthesize_strong(
            _strong_generator(llm.url), seeds=SEEDS, output=output, db_out_root=db_root, n=len(SCRIPT),
            batch_size=1, stats=stats,
        )  # fmt: skip
    validate_records("strong", records)
    assert [r["id"] for r in records] == ["strong-000000", "strong-000008", "strong-000011"]
    rejected = {r["id"]: r["reason"] for r in read_jsonl(rejected_path(output))}
    expected = {f"strong-{i:06d}": reason for i, (reason, _) in enumerate(SCRIPT) if reason != "ok"}
    assert rejected == expected
    assert stats.kept == 3 and sum(stats.rejected.values()) == len(SCRIPT) - 3
    # the prompt: difficulty levels in turn, two seeds as few-shot, over-represented domains steered away from
    prompts = [r["messages"][-1]["content"] for r in llm.requests]
    assert "EASY" in prompts[0] and "MEDIUM" in prompts[1] and "HARD" in prompts[2]
    assert all(sum(s["question"] in p for s in SEEDS) == 2 for p in prompts)
    assert all("education, healthcare, airlines, entertainment" in p for p in prompts)
    # kept records point at real databases with the model's rows; rejected ones leave no database behind
    good, hard, bikes = records
    assert good["domain"] == "urban beekeeping" and good["generator"] == "strong:strong-llm"
    assert good["sql"] == "SELECT rooftop FROM hive WHERE colonies > 4" and good["verification"] == "executed"
    path = db_root / good["db_id"] / f"{good['db_id']}.sqlite"
    with sqlite3.connect(path) as con:
        assert con.execute(good["sql"]).fetchall() == [("Mill Road",)]
        assert con.execute("SELECT rooftop FROM hive WHERE hive_id = 1").fetchone() == ("Dock; Street",)
    assert hard["domain"] == "freight rail" and "HAVING" in hard["sql"] and "CREATE TABLE wagon" in hard["schema"]
    assert sorted(p.name for p in db_root.iterdir()) == sorted(r["db_id"] for r in records)


def test_strong_synthesis_resumes(tmp_path: Path):
    output, db_root = tmp_path / "strong.jsonl", tmp_path / "databases"
    with ScriptedLLM(SCRIPT) as llm:
        generator = _strong_generator(llm.url)
        first = synthesize_strong(generator, seeds=SEEDS, output=output, db_out_root=db_root, n=6, batch_size=1)
        assert len(llm.requests) == 6 and [r["id"] for r in first] == ["strong-000000"]
        stats = SynthesisStats()
        records = synthesize_strong(
            generator, seeds=SEEDS, output=output, db_out_root=db_root, n=len(SCRIPT), batch_size=1, stats=stats
        )
        # only the requests not answered before are made again
        assert len(llm.requests) == len(SCRIPT) and stats.resumed == 1 and stats.kept == 2
    assert [r["id"] for r in records] == ["strong-000000", "strong-000008", "strong-000011"]
    assert len(read_jsonl(rejected_path(output))) == len(SCRIPT) - 3


def test_parse_strong_output_variants():
    sample = parse_strong_output(GOOD)
    assert (sample.domain, sample.question) == ("urban beekeeping", "Which rooftop hives have more than 4 colonies?")
    assert sample.schema.startswith("CREATE TABLE hive") and sample.rows.startswith("INSERT INTO hive")
    assert sample.sql == "SELECT rooftop FROM hive WHERE colonies > 4"
    hard = parse_strong_output(HARD)
    assert hard.domain == "freight rail" and hard.sql.startswith("SELECT T1.line") and "INSERT" in hard.rows
    unlabeled = parse_strong_output(
        "Domain: x\n```sql\nCREATE TABLE a (b INT);\n```\nQuestion: What is b?\n```sql\nSELECT b FROM a\n```"
    )
    assert unlabeled.schema == "CREATE TABLE a (b INT);" and unlabeled.sql == "SELECT b FROM a"
    assert parse_strong_output("no format at all").missing() == ["domain", "schema", "question", "sql"]


def test_split_statements_and_materialize(tmp_path: Path):
    assert split_statements("INSERT INTO t VALUES ('a;b'); -- note\nINSERT INTO t VALUES (2);") == [
        "INSERT INTO t VALUES ('a;b')",
        "-- note\nINSERT INTO t VALUES (2)",
    ]
    path = tmp_path / "x" / "x.sqlite"
    ddl, inserted = materialize_database(
        schema="CREATE TABLE t (a TEXT);", rows="INSERT INTO t VALUES ('x'); INSERT INTO nope VALUES (1);", path=path
    )
    assert ddl == "CREATE TABLE t (a TEXT);" and inserted == 1
    for schema in ("DROP TABLE t;", "CREATE TABLE t (a);\nPRAGMA writable_schema = 1;", "SELECT 1;"):
        with pytest.raises(Exception, match="only CREATE TABLE|no CREATE TABLE") as info:
            materialize_database(schema=schema, rows="", path=path)
        assert info.value.reason == "invalid_ddl"
    with pytest.raises(Exception) as info:
        materialize_database(schema="CREATE TABLE t (a);", rows="INSERT INTO u VALUES (1);", path=path)
    assert info.value.reason == "invalid_rows"


# ---------------------------------------------------------------------------------------------------------------
# Statistics
# ---------------------------------------------------------------------------------------------------------------


def test_sql_components_and_difficulty():
    c = sql_components(
        "SELECT T1.name, count(*) FROM a AS T1 JOIN b AS T2 ON T1.id = T2.aid WHERE T2.x > 1 GROUP BY T1.name "
        "HAVING count(*) > 2 ORDER BY count(*) DESC LIMIT 3"
    )
    assert (c["tables"], c["joins"], c["group_by"], c["having"], c["order_by"], c["limit"]) == (2, 1, 1, 1, 1, 1)
    assert c["aggregates"] == 3 and c["nesting"] == 0 and c["set_ops"] == 0
    assert sql_components("SELECT a FROM t WHERE b IN (SELECT b FROM u)")["nesting"] == 1
    assert sql_components("SELECT a FROM t UNION SELECT a FROM u")["set_ops"] == 1
    assert sql_components("SELECT rank() OVER (ORDER BY a) FROM t")["window"] == 1
    assert sql_components("SELEC nonsense ((")["parsed"] == 0
    assert classify_difficulty("SELECT name FROM singer WHERE age > 30") == "easy"
    assert classify_difficulty("SELECT country, count(*) FROM singer GROUP BY country") == "medium"
    assert classify_difficulty("SELECT a FROM t JOIN u ON t.id = u.id") == "medium"
    assert classify_difficulty("SELECT a FROM t WHERE b > (SELECT avg(b) FROM t)") == "hard"
    assert classify_difficulty("SELECT a FROM t EXCEPT SELECT a FROM u") == "hard"


def test_statistics_and_plot(tmp_path: Path, tiny_db: Path):
    records = synthesize_templates([tiny_db], generator=None, output=tmp_path / "s.jsonl", per_database=20)
    stats = synthesis_statistics(records)
    assert stats["examples"] == 20 and stats["databases"] == 1
    assert sum(stats["difficulty"].values()) == 20 and all(stats["difficulty"][k] > 0 for k in stats["difficulty"])
    assert stats["domains"] == {"concert_singer": 20}
    assert stats["components"]["joins"] > 0 and stats["components"]["nesting"] > 0
    assert sum(stats["families"].values()) == 20 and len(stats["families"]) > 10
    assert sum(stats["tables_per_example"].values()) == 20
    png = plot_statistics(stats, tmp_path / "card" / "stats.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000


# ---------------------------------------------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------------------------------------------


def test_cli_templates_and_strong(tmp_path: Path, tiny_db: Path, capsys):
    output = tmp_path / "t.jsonl"
    code = cli.main(
        ["synthesize", "--strategy", "templates", "--db-root", str(tiny_db.parent.parent), "--db-ids",
         "concert_singer", "--rule-questions-only", "--no-verify", "--per-database", "5", "--output", str(output),
         "--stats-plot", str(tmp_path / "stats.png")]
    )  # fmt: skip
    assert code == 0
    printed = capsys.readouterr().out
    summary = json.loads(printed.strip().splitlines()[-1])
    assert summary["kept"] == 5 and summary["records_in_output"] == 5 and "synthesis (templates)" in printed
    assert (tmp_path / "stats.png").is_file() and len(read_jsonl(output)) == 5

    seeds = tmp_path / "seeds.jsonl"
    seeds.write_text("".join(json.dumps(s) + "\n" for s in SEEDS))
    with ScriptedLLM(SCRIPT) as llm:
        code = cli.main(
            ["synthesize", "--strategy", "strong", "--model", "strong-llm", "--backend", "openai", "--base-url",
             llm.url, "--api-key", "test", "--seeds", str(seeds), "--num-examples", "4", "--db-out-root",
             str(tmp_path / "dbs"), "--output", str(tmp_path / "s.jsonl")]
        )  # fmt: skip
    assert code == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["kept"] == 1 and summary["calls"] == 4
    assert summary["rejected"] == {"missing_section": 1, "invalid_ddl": 1, "sql_exec_error": 1}
    assert cli.main(["synthesize", "--strategy", "templates", "--output", str(output), "--no-verify"]) == 2
    err = capsys.readouterr().err
    assert err == "sense-hub synthesize: --strategy templates needs --db-root (a folder of <db_id>/<db_id>.sqlite)\n"


# ---------------------------------------------------------------------------------------------------------------
# The embedded model end to end (slow)
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_templates_with_the_embedded_model(tmp_path: Path, tiny_db: Path):
    from sense_hub.generation import load_generator

    model = load_generator("embedded", batch_size=8)
    stats = SynthesisStats()
    output = tmp_path / "strong.jsonl"
    records = synthesize_templates(
        [tiny_db], generator=model, verifier=model, output=output, per_database=4, rounds=1, question_source="template",
        stats=stats, max_new_tokens=48,
    )  # fmt: skip
    validate_records("strong", records)
    rejected = read_jsonl(rejected_path(output))
    # every candidate ends up kept (verified by the model) or rejected with a reason; one verify call each
    assert len(records) + len(rejected) == 4 and stats.calls == 4
    assert all(r["verification"] == "verified:embedded" for r in records)
    assert all(r["reason"] in ("verify_mismatch", "verify_error") for r in rejected)


def test_sql_to_text_prompt_gives_examples_as_chat_turns_and_the_query_last():
    from sense_hub.synthesis.templates import SQL_TO_TEXT_EXAMPLES, sql_to_text_prompt

    sql = "SELECT count(*) FROM pets WHERE weight > 10"
    messages = sql_to_text_prompt(sql, tables="pets(pet_id, weight)")
    roles = [m["role"] for m in messages]
    assert roles == ["system"] + ["user", "assistant"] * len(SQL_TO_TEXT_EXAMPLES) + ["user"]
    assert [m["content"] for m in messages[2:-1:2]] == [q for _, _, q in SQL_TO_TEXT_EXAMPLES]
    assert messages[-1]["content"] == f"Tables: pets(pet_id, weight)\nSQL: {sql}"
    retry = sql_to_text_prompt(sql, tables="pets(pet_id, weight)", previous="How many pets?", feedback="too vague")
    assert "A previous question was: How many pets?" in retry[-1]["content"] and "too vague" in retry[-1]["content"]
    assert len(retry) == len(messages)


class DoublingVerifier(FakeModel):
    """Answers every question with the template SQL's rows twice: the same set of rows, a different bag."""

    def generate(self, prompts, config):
        out = []
        for messages in prompts:
            system, user = messages[0]["content"], messages[-1]["content"]
            if system == SQL_TO_TEXT_SYSTEM:
                out.extend(super().generate([messages], config))
                continue
            key = re.search(r"what does query (\d+) return\?", user, re.I).group(1)
            sql = self.sql_by_key[key]
            out.append([f"```sql\nSELECT * FROM ({sql}) UNION ALL SELECT * FROM ({sql})\n```"])
        return out


def test_set_operation_questions_are_checked_by_set_equality(tmp_path: Path):
    """A UNION/INTERSECT/EXCEPT query returns a set: an answer listing each of its rows twice verifies its question;
    the same doubled answer to any other family's question is a different bag of rows, and is rejected."""
    db = make_shop_db(tmp_path / "dbs" / "shop" / "shop.sqlite")
    model = DoublingVerifier()
    output = tmp_path / "strong.jsonl"
    families = ["set_union", "set_intersect", "set_except", "filter_text", "filter_numeric"]
    records = synthesize_templates(
        [db], generator=model, verifier=model, output=output, per_database=15, rounds=1, families=families
    )
    kept = {r["generator"].split(":")[1].split("+")[0] for r in records}
    rejected = read_jsonl(rejected_path(output))
    assert kept and kept <= {"set_union", "set_intersect", "set_except"}
    assert rejected and {r["family"] for r in rejected} <= {"filter_text", "filter_numeric"}
    assert {r["reason"] for r in rejected} == {"verify_mismatch"}
