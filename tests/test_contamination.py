"""Contamination checks: synthesized records that restate a benchmark's SQL or question are dropped or flagged."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import make_tiny_db

from sense_hub import builds, cli, hub
from sense_hub.benchmarks import Example
from sense_hub.contamination import BenchmarkIndex, load_benchmark_items, normalize_sql, question_ngrams, report_path
from sense_hub.errors import BenchmarkError
from sense_hub.records import read_jsonl
from sense_hub.synthesis import rejected_path

BENCHMARK = [
    # the SQL of template record 00005 ("SELECT avg(age) FROM singer"), written another way
    {"question": "What is the mean age of all singers?", "query": "select AVG(Age)  from Singer;", "db_id": "concert_singer"},
    # the question of template record 00001, with two more words
    {"question": "For each country, how many singer entries are there in total?", "query": "SELECT country FROM singer",
     "db_id": "concert_singer"},
    # near misses: shares a few n-grams with record 00003, a SQL close to 00005 but not equal
    {"question": "What are the name of the singer entries ordered by age?", "query": "SELECT name FROM singer ORDER BY age",
     "db_id": "concert_singer"},
    {"question": "Average age of French singers?", "query": "SELECT avg(age) FROM singer WHERE country = 'France'",
     "db_id": "concert_singer"},
]  # fmt: skip


@pytest.fixture
def spider_like(tmp_path) -> Path:
    """A benchmark folder in Spider's published layout (dev.json with question / query / db_id)."""
    root = tmp_path / "bench" / "spider"
    root.mkdir(parents=True)
    (root / "dev.json").write_text(json.dumps(BENCHMARK), encoding="utf-8")
    return root


def index(threshold: float = 0.8) -> BenchmarkIndex:
    items = [Example(f"b-{i}", b["db_id"], b["question"], b["query"]) for i, b in enumerate(BENCHMARK)]
    return BenchmarkIndex("bench", items, threshold=threshold)


def test_normalize_sql_ignores_case_spacing_quotes_and_semicolon_but_not_literals():
    assert normalize_sql("select AVG(Age)  from Singer;") == normalize_sql("SELECT avg(age) FROM singer")
    assert normalize_sql('SELECT "name" FROM singer') == normalize_sql("select NAME from SINGER")
    assert normalize_sql("SELECT name FROM singer WHERE country = 'France'") != normalize_sql(
        "SELECT name FROM singer WHERE country = 'france'"
    )
    assert normalize_sql("SELECT avg(age) FROM singer") != normalize_sql("SELECT max(age) FROM singer")
    assert normalize_sql("SELEC broken (") == "selec broken ("  # falls back to the syntactic key


def test_question_ngrams():
    assert question_ngrams("How many singers?", 4) == {("how", "many", "singers")}
    assert len(question_ngrams("What is the mean age of all singers?", 4)) == 5
    assert question_ngrams("?!", 4) == set()


@pytest.mark.parametrize(
    ("question", "sql", "expected"),
    [
        ("Something else entirely?", "SELECT avg(age) FROM singer", ("sql", "b-0")),
        ("For each country, how many singer entries are there?", "SELECT 1", ("question", "b-1")),
        # must not fire: a few shared n-grams (5 of 14), a similar but different SQL, an unrelated record
        ("What are the name of the singer entries that have a concert with concert name equal to Auditions?",
         "SELECT name FROM singer WHERE singer_id IN (SELECT singer_id FROM concert)", None),
        ("Average age of singers from Spain?", "SELECT avg(age) FROM singer WHERE country = 'Spain'", None),
        ("How many concerts are there?", "SELECT count(*) FROM concert", None),
    ],
)  # fmt: skip
def test_check_fires_on_sql_or_question_matches_only(question, sql, expected):
    match = index().check(question, sql)
    assert (match.how, match.item) == expected if expected else match is None


def test_threshold_is_a_parameter():
    question = "What are the name of the singer entries that have a concert with concert name equal to Auditions?"
    assert index(threshold=0.8).check(question, "SELECT 1") is None
    match = index(threshold=0.3).check(question, "SELECT 1")
    assert match.how == "question" and match.item == "b-2" and 0.3 <= match.overlap < 0.8
    with pytest.raises(ValueError, match="threshold"):
        index(threshold=0)


def test_benchmark_paths(tmp_path, spider_like):
    assert [e.question for e in load_benchmark_items(spider_like)] == [b["question"] for b in BENCHMARK]
    assert len(load_benchmark_items(f"spider:{spider_like}")) == 4
    jsonl = tmp_path / "items.jsonl"
    jsonl.write_text("".join(json.dumps({**b, "sql": b["query"]}) + "\n" for b in BENCHMARK), encoding="utf-8")
    assert len(load_benchmark_items(jsonl)) == 4
    with pytest.raises(BenchmarkError, match="no benchmark layout found"):
        load_benchmark_items(tmp_path)
    with pytest.raises(BenchmarkError, match="no such file or folder"):
        load_benchmark_items(tmp_path / "nope")


def synthesize(tmp_path: Path, output: Path, *extra: str) -> dict:
    db_root = tmp_path / "dbs"
    make_tiny_db(db_root / "concert_singer" / "concert_singer.sqlite")
    argv = ["synthesize", "--strategy", "templates", "--db-root", str(db_root), "--rule-questions-only",
            "--no-verify", "--per-database", "8", "--output", str(output), *extra]  # fmt: skip
    return argv


def test_synthesize_drops_contaminated_records_and_resumes(tmp_path, spider_like, capsys):
    output = tmp_path / "strong.jsonl"
    argv = synthesize(tmp_path, output, "--decontaminate", str(spider_like))
    assert cli.main(argv) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    kept = read_jsonl(output)
    assert summary["records_in_output"] == len(kept) == 6
    assert {r["id"] for r in read_jsonl(rejected_path(output))} == {
        "tmpl-concert_singer-00001",
        "tmpl-concert_singer-00005",
    }
    report = json.loads(report_path(output).read_text())
    assert report == summary["contamination"]
    assert (report["checked"], report["sql_matches"], report["question_matches"], report["dropped"]) == (8, 1, 1, 2)
    assert all("contamination" not in r for r in kept)
    # a rerun asks for nothing again (the dropped ids are in the rejected file) and still counts them
    assert cli.main(argv) == 0
    again = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert again["contamination"]["dropped"] == 2 and again["records_in_output"] == 6
    assert read_jsonl(output) == kept

    # the strong dataset's card reports the check
    repo = builds.build_dataset("strong", input_path=output, output_dir=tmp_path / "repo", command="x")
    card = (Path(repo["output_dir"]) / "README.md").read_text()
    assert "Contamination check against `spider` (4 items" in card
    assert "8 records checked, 1 SQL matches, 1 question matches; action `drop`: 2 dropped, 0 flagged" in card


def test_synthesize_flags_contaminated_records(tmp_path, spider_like, capsys):
    output = tmp_path / "strong.jsonl"
    assert (
        cli.main(synthesize(tmp_path, output, "--decontaminate", str(spider_like), "--decontaminate-action", "flag"))
        == 0
    )
    records = read_jsonl(output)
    flags = {r["id"]: r["contamination"] for r in records}
    assert len(records) == 8
    assert flags["tmpl-concert_singer-00005"] == "sql:spider-0"
    assert flags["tmpl-concert_singer-00001"] == "question:spider-1"
    assert sum(bool(v) for v in flags.values()) == 2
    repo = builds.build_dataset("strong", input_path=output, output_dir=tmp_path / "repo", command="x")
    card = (Path(repo["output_dir"]) / "README.md").read_text()
    assert "Contamination: 2 records are flagged as matching a benchmark item (question: 1, sql: 1)" in card
    assert "action `flag`: 0 dropped, 2 flagged" in card
    ds = hub.load_local(repo["output_dir"], "default")
    assert sorted(v for s in ds for v in ds[s]["contamination"] if v) == ["question:spider-1", "sql:spider-0"]


def test_clean_synthesis_card_has_no_contamination_line(tmp_path, capsys):
    output = tmp_path / "strong.jsonl"
    assert cli.main(synthesize(tmp_path, output)) == 0
    assert not report_path(output).exists()
    repo = builds.build_dataset("strong", input_path=output, output_dir=tmp_path / "repo", command="x")
    assert "Contamination" not in (Path(repo["output_dir"]) / "README.md").read_text()


def test_bad_decontaminate_path_is_one_line_before_any_work(tmp_path, capsys):
    output = tmp_path / "strong.jsonl"
    assert cli.main(synthesize(tmp_path, output, "--decontaminate", str(tmp_path / "missing"))) == 2
    err = capsys.readouterr().err
    assert err.startswith("sense-hub synthesize: --decontaminate ") and "no such file or folder" in err
    assert err.count("\n") == 1 and not output.exists()
