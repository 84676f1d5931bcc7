"""`judge` and the `sense-hub eval` command on the tiny database."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from conftest import make_tiny_db

from sense_hub.cli import main
from sense_hub.evaluation import (
    InputError,
    Verdict,
    execution_accuracy,
    judge,
    read_predictions,
    summarize,
)
from sense_hub.execution import Executor

ENDLESS = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c"
GOLD = "SELECT name FROM singer WHERE age > 40 ORDER BY age"


def test_judge_verdicts(tiny_db):
    missing = tiny_db.parent.parent / "nope" / "nope.sqlite"
    items = [
        (tiny_db, GOLD, "SELECT name FROM singer WHERE age > 40 ORDER BY age"),
        (tiny_db, GOLD, "SELECT name FROM singer WHERE age > 40 ORDER BY age DESC"),  # order matters
        (tiny_db, "SELECT count(*) FROM singer", "SELECT count(*) FROM singer;"),
        (tiny_db, GOLD, "SELEC name"),
        (tiny_db, GOLD, ""),
        (tiny_db, "SELECT nope FROM singer", "SELECT 1"),
        (missing, "SELECT 1", "SELECT 1"),
        (tiny_db, GOLD, "DROP TABLE singer"),
    ]
    verdicts = judge(items, metric="strict", workers=0)
    assert [(v.correct, v.error) for v in verdicts] == [
        (True, None),
        (False, None),
        (True, None),
        (False, "syntax"),
        (False, "empty"),
        (False, "gold_error"),
        (False, "missing_db"),
        (False, "refused"),
    ]
    assert verdicts[0].pred.rows == (("Rose White",), ("John Nizinik",), ("Joe Sharp",))
    assert "gold query failed" in verdicts[5].message
    assert execution_accuracy(verdicts) == pytest.approx(2 / 8)
    assert execution_accuracy([]) == 0.0


@pytest.mark.parametrize(
    ("gold", "pred", "spider", "bird", "strict"),
    [
        ("SELECT name, age FROM singer", "SELECT age, name FROM singer", True, False, False),
        ("SELECT DISTINCT country FROM singer", "SELECT country FROM singer", True, True, False),
        ("SELECT DISTINCT country FROM singer", "SELECT country, age FROM singer", False, False, False),
        ("SELECT country FROM singer", "SELECT DISTINCT country FROM singer", True, True, False),
        ("SELECT name FROM singer ORDER BY age", "SELECT name FROM singer", False, True, False),
        ("SELECT age FROM singer WHERE age > = 40", "SELECT age FROM singer WHERE age >= 40", True, False, False),
    ],
)
def test_metrics_differ(tiny_db, gold, pred, spider, bird, strict):
    for metric, expected in (("spider", spider), ("bird", bird), ("strict", strict)):
        (v,) = judge([(tiny_db, gold, pred)], metric=metric, workers=0)
        assert v.correct is expected, metric


def test_keep_distinct(tiny_db):
    item = [(tiny_db, "SELECT DISTINCT country FROM singer", "SELECT country FROM singer")]
    assert judge(item, metric="spider", workers=0)[0].correct
    assert not judge(item, metric="spider", keep_distinct=True, workers=0)[0].correct


def test_gold_runs_once_and_duplicates_once(tiny_db):
    preds = [
        "SELECT count(*) FROM singer",
        "SELECT count(*) FROM concert WHERE year = 2014",
        "SELECT count(*) FROM singer",
    ] * 10
    with Executor(workers=0) as executor:
        items = [(tiny_db, "SELECT count(*) FROM singer", p) for p in preds]
        verdicts = judge(items, metric="strict", executor=executor)
        assert executor.executed == 2  # the gold (also a prediction) and the other prediction, once each
    assert [v.correct for v in verdicts] == [True, False, True] * 10


def test_test_suite_databases(tiny_db):
    """Every *.sqlite beside the gold database is checked: correct only if it matches on all of them."""
    variant = make_tiny_db(tiny_db.parent / "variant.sqlite")
    import sqlite3

    con = sqlite3.connect(variant)
    con.execute("UPDATE singer SET age = 60 WHERE name = 'Timbaland'")
    con.commit()
    con.close()
    gold = "SELECT name FROM singer WHERE age > 40"
    items = [
        (tiny_db, gold, "SELECT name FROM singer WHERE age > 40"),
        (tiny_db, gold, "SELECT name FROM singer WHERE age > 40 AND name != 'Timbaland'"),  # same on the gold db only
    ]
    for metric in ("spider", "strict"):
        assert [v.correct for v in judge(items, metric=metric, workers=0)] == [True, False]


def test_timeout_item_and_others_judged(tiny_db):
    items = [(tiny_db, "SELECT 1", "SELECT 1"), (tiny_db, "SELECT 1", ENDLESS), (tiny_db, "SELECT 2", "SELECT 2")]
    verdicts = judge(items, metric="spider", timeout=0.3, workers=2)
    assert [(v.correct, v.error) for v in verdicts] == [(True, None), (False, "timeout"), (True, None)]
    assert verdicts[1].pred.elapsed < 0.3 + 0.5


def test_summarize():
    verdicts = [Verdict(True, None), Verdict(False, None), Verdict(False, "missing_db"), Verdict(False, "syntax")]
    assert summarize(verdicts, metric="bird") == {
        "metric": "bird",
        "n": 4,
        "correct": 1,
        "execution_accuracy": 0.25,
        "n_existing_db": 3,
        "execution_accuracy_existing_db": 0.3333,
        "errors": {"missing_db": 1, "syntax": 1},
    }


# --- input files -------------------------------------------------------------------------------------------------


def test_read_predictions_bad_lines(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_bytes(
        b'{"db_id": "concert_singer", "gold": "SELECT 1", "pred": "SELECT 1", "id": 7}\n'
        b"{not json\n"
        b"\n"
        b'{"db_id": "concert_singer", "gold": "SELECT 1"}\n'
        b"[1, 2]\n"
        b'{"db_id": "concert_singer", "gold": "SELECT 1", "pred": "SELECT \'caf\xe9\'"}\n'
    )
    records = read_predictions(path)
    assert len(records) == 5  # the blank line is skipped
    assert records[0]["id"] == 7 and "error" not in records[0]
    assert records[1]["error"] == "bad_input" and "line 2" in records[1]["message"]
    assert records[2]["error"] == "bad_input" and "line 4" in records[2]["message"] and "pred" in records[2]["message"]
    assert records[3]["error"] == "bad_input" and "line 5" in records[3]["message"]
    assert records[4]["pred"] == "SELECT 'caf\ufffd'"  # undecodable bytes replaced, and a warning names the line


def test_read_predictions_text_needs_gold(tmp_path):
    pred = tmp_path / "pred.txt"
    pred.write_text("SELECT 1\nSELECT 2\n")
    with pytest.raises(InputError, match="--gold"):
        read_predictions(pred)
    gold = tmp_path / "gold.sql"
    gold.write_text("SELECT 1\tconcert_singer\n")
    with pytest.raises(InputError, match="2 lines but .* has 1"):
        read_predictions(pred, gold=gold)
    gold.write_text("SELECT 1\tconcert_singer\nSELECT 2 no tab\n")
    records = read_predictions(pred, gold=gold)
    assert records[0] == {"db_id": "concert_singer", "gold": "SELECT 1", "pred": "SELECT 1"}
    assert records[1]["error"] == "bad_input" and "line 2" in records[1]["message"]


# --- CLI ---------------------------------------------------------------------------------------------------------


def _summary(capsys) -> dict:
    out = capsys.readouterr().out.strip().splitlines()
    return json.loads(out[-1])


def test_cli_jsonl(tiny_db, tmp_path, capsys):
    root = tiny_db.parent.parent
    lines = [
        {
            "id": "a",
            "db_id": "concert_singer",
            "gold": "SELECT count(*) FROM singer",
            "pred": "SELECT COUNT(*) FROM singer",
        },
        {"id": "b", "db_id": "concert_singer", "gold": GOLD, "pred": "SELECT name FROM singer"},
        "this line is not json",
        {"id": "d", "db_id": "wta_1", "gold": "SELECT 1", "pred": "SELECT 1"},
        {"id": "e", "db_id": "concert_singer", "gold": "SELECT 1", "pred": ENDLESS},
        {"id": "f", "db_id": "concert_singer", "gold": "SELECT 1", "pred": ""},
        {"id": "g", "db_id": "concert_singer", "gold": "SELECT nope", "pred": "SELECT 1"},
        {"id": "h", "db_id": "concert_singer", "gold": "SELECT 1", "pred": "DELETE FROM singer"},
        {"id": "i", "db_id": "concert_singer", "gold": "SELECT 1", "pred": "SELECT '\udc80'"},
    ]
    pred = tmp_path / "preds.jsonl"
    pred.write_text("".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines))
    out = tmp_path / "out" / "judged.jsonl"
    code = main(["eval", "--predictions", str(pred), "--db-root", str(root), "--timeout", "0.5", "--output", str(out)])
    assert code == 0
    summary = _summary(capsys)
    assert summary["n"] == 9 and summary["correct"] == 1 and summary["metric"] == "spider"
    assert summary["errors"] == {
        "bad_input": 1,
        "empty": 1,
        "gold_error": 1,
        "missing_db": 1,
        "refused": 1,
        "runtime": 1,
        "timeout": 1,
    }
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r.get("id") for r in rows] == ["a", "b", None, "d", "e", "f", "g", "h", "i"]
    errors = [None, None, "bad_input", "missing_db", "timeout", "empty", "gold_error", "refused", "runtime"]
    assert [r["error"] for r in rows] == errors
    assert [r["correct"] for r in rows] == [True] + [False] * 8
    assert rows[8]["pred"] == "SELECT '\udc80'"  # written back escaped, still valid JSON
    assert rows[0]["pred"] == "SELECT COUNT(*) FROM singer"  # input fields carried through unchanged
    assert rows[2]["line"] == 3 and "line 3" in rows[2]["message"]


def test_cli_text_format(tiny_db, tmp_path, capsys):
    root = tiny_db.parent.parent
    gold = tmp_path / "gold.sql"
    gold.write_text("SELECT count(*) FROM singer\tconcert_singer\nSELECT name FROM singer\tconcert_singer\n")
    pred = tmp_path / "pred.txt"
    pred.write_text("SELECT count(*) FROM singer\textra ignored\nSELECT DISTINCT name FROM singer\n")
    assert (
        main(["eval", "--predictions", str(pred), "--gold", str(gold), "--db-root", str(root), "--workers", "0"]) == 0
    )
    assert _summary(capsys)["correct"] == 2
    args = ["eval", "--predictions", str(pred), "--gold", str(gold), "--db-root", str(root), "--keep-distinct"]
    assert main([*args, "--metric", "spider"]) == 0
    assert _summary(capsys)["correct"] == 2  # names are distinct anyway
    assert main([*args, "--metric", "bird"]) == 0
    assert _summary(capsys)["correct"] == 2


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        ("missing_predictions", "predictions file not found"),
        ("missing_gold", "gold file not found"),
        ("missing_root", "--db-root is not a folder"),
        ("text_without_gold", "--gold"),
        ("line_counts", "must pair up"),
        ("bad_timeout", "--timeout must be positive"),
    ],
)
def test_cli_errors_exit_2(tiny_db, tmp_path, capsys, setup, message):
    root = tiny_db.parent.parent
    pred = tmp_path / "pred.txt"
    pred.write_text("SELECT 1\n")
    gold = tmp_path / "gold.sql"
    gold.write_text("SELECT 1\tconcert_singer\n")
    args = ["eval", "--predictions", str(pred), "--gold", str(gold), "--db-root", str(root)]
    if setup == "missing_predictions":
        args[2] = str(tmp_path / "nope.jsonl")
    elif setup == "missing_gold":
        args[4] = str(tmp_path / "nope.sql")
    elif setup == "missing_root":
        args[6] = str(tmp_path / "nope")
    elif setup == "text_without_gold":
        args = args[:3] + args[5:]
    elif setup == "line_counts":
        gold.write_text("SELECT 1\tconcert_singer\nSELECT 2\tconcert_singer\n")
    elif setup == "bad_timeout":
        args += ["--timeout", "0"]
    assert main(args) == 2
    assert message in capsys.readouterr().err


def test_cli_bad_metric_is_an_argparse_error(tiny_db, tmp_path):
    with pytest.raises(SystemExit) as info:
        main(["eval", "--predictions", "x", "--db-root", str(tmp_path), "--metric", "exact"])
    assert info.value.code == 2


def test_eval_does_not_import_torch(tiny_db, tmp_path):
    pred = tmp_path / "p.jsonl"
    pred.write_text(json.dumps({"db_id": "concert_singer", "gold": "SELECT 1", "pred": "SELECT 1"}) + "\n")
    code = (
        "import sys, json\n"
        "from sense_hub.cli import main\n"
        f"rc = main(['eval', '--predictions', {str(pred)!r}, '--db-root', {str(tiny_db.parent.parent)!r}])\n"
        "heavy = sorted(m for m in ('torch', 'transformers', 'trl', 'datasets', 'gradio') if m in sys.modules)\n"
        "print(json.dumps({'rc': rc, 'heavy': heavy}))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    lines = proc.stdout.strip().splitlines()
    assert json.loads(lines[-2])["correct"] == 1  # the summary line of the eval
    assert json.loads(lines[-1]) == {"rc": 0, "heavy": []}


def test_too_large_results(tiny_db):
    big = "SELECT a.name FROM singer a, singer b, singer c"  # 125 rows
    items = [(tiny_db, "SELECT 1", big), (tiny_db, big, "SELECT 1"), (tiny_db, big, big)]
    verdicts = judge(items, metric="bird", workers=0, max_rows=100)
    assert [(v.correct, v.error) for v in verdicts] == [
        (False, "too_large"),
        (False, "gold_error"),
        (False, "gold_error"),
    ]
    assert all(v.correct for v in judge(items[2:], metric="bird", workers=0))


def test_ctrl_c_stops_a_running_query(tiny_db, tmp_path):
    """SIGINT while SQLite runs a query stops the evaluation (it is not swallowed and counted as a timeout)."""
    import os
    import signal
    import time

    pred = tmp_path / "p.jsonl"
    pred.write_text(json.dumps({"db_id": "concert_singer", "gold": "SELECT 1", "pred": ENDLESS}) + "\n")
    code = (
        "import signal, sys\n"
        "signal.signal(signal.SIGINT, signal.default_int_handler)\n"
        "from sense_hub.cli import main\n"
        f"sys.exit(main(['eval', '--predictions', {str(pred)!r}, '--db-root', {str(tiny_db.parent.parent)!r},"
        " '--timeout', '20', '--workers', '0']))\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        seen = b""
        while b"executing" not in seen:  # the progress bar is up: the query is running
            chunk = os.read(proc.stderr.fileno(), 1024)
            assert chunk, "the evaluation ended before it was interrupted"
            seen += chunk
        time.sleep(0.5)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert b"interrupted" in err and b"Traceback" not in err
    assert proc.returncode == 130
    assert b'"metric"' not in out  # no summary: the run stopped


class _Canned:
    name = "canned"

    def __init__(self, texts: list[list[str]]):
        self.texts = texts

    def generate(self, prompts, config):
        return self.texts[: len(prompts)]


def test_evaluate_generator_generates_extracts_and_judges(tiny_db):
    from sense_hub.errors import GenerationError
    from sense_hub.evaluation import evaluate_generator
    from sense_hub.generation import GenerationConfig

    texts = [["```sql\nSELECT count(*) FROM singer\n```", "SELECT 1;"], ["SELEC nope"]]
    gen = _Canned(texts)
    prompts = [[{"role": "user", "content": "how many singers?"}], [{"role": "user", "content": "?"}]]
    with pytest.raises(GenerationError, match=r"returned \[2, 1\] completions for 2 prompts; expected 2 each"):
        evaluate_generator(gen, prompts, config=GenerationConfig(n=2))
    gen.texts = [texts[0]]
    (only,) = evaluate_generator(gen, prompts[:1], config=GenerationConfig(n=2))
    assert only.texts == texts[0] and only.sqls == ["SELECT count(*) FROM singer", "SELECT 1"]
    assert only.verdicts is None  # no gold: nothing runs
    (judged,) = evaluate_generator(
        gen, prompts[:1], config=GenerationConfig(n=2), db_paths=[tiny_db], gold=["SELECT count(*) FROM singer"]
    )
    assert [v.correct for v in judged.verdicts] == [True, False]


def _eval_one(tmp_path, root, capsys, sql="SELECT count(*) FROM singer"):
    pred = tmp_path / "pred.jsonl"
    pred.write_text(json.dumps({"db_id": "concert_singer", "gold": sql, "pred": sql}) + "\n")
    out = tmp_path / "out.jsonl"
    code = main(["eval", "--predictions", str(pred), "--db-root", str(root), "--output", str(out), "--workers", "0"])
    captured = capsys.readouterr()
    rows = [json.loads(line) for line in out.read_text().splitlines()] if code == 0 else []
    return code, rows, captured.err


def test_eval_skips_a_stray_file_among_the_databases_and_names_it(tiny_db, tmp_path, capsys, caplog):
    junk = tiny_db.parent / "old_backup.sqlite"
    junk.write_text("a stray backup, not SQLite\n" * 10)
    with caplog.at_level("WARNING"):
        code, rows, _ = _eval_one(tmp_path, tiny_db.parent.parent, capsys)
    assert code == 0 and rows[0]["correct"] is True and rows[0]["error"] is None  # was missing_db
    assert str(junk) in caplog.text and "skipping" in caplog.text


def test_eval_names_an_empty_database_file(tmp_path, capsys):
    db = tmp_path / "dbs" / "concert_singer" / "concert_singer.sqlite"
    db.parent.mkdir(parents=True)
    db.touch()
    code, rows, _ = _eval_one(tmp_path, tmp_path / "dbs", capsys)
    assert code == 0 and rows[0]["error"] == "missing_db"
    assert "empty" in rows[0]["message"] and str(db) in rows[0]["message"]


def test_eval_on_a_db_root_without_databases_exits_2_with_one_line(tmp_path, capsys):
    (tmp_path / "dbs" / "concert_singer").mkdir(parents=True)  # a folder, but no concert_singer.sqlite in it
    code, _, err = _eval_one(tmp_path, tmp_path / "dbs", capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "no databases under" in err and str(tmp_path / "dbs") in err and "Traceback" not in err


def test_score_examples_is_the_one_scoring_path(tiny_db, tmp_path):
    """Greedy SQL -> extract -> judge, rows in the predictions columns (what `compare` reads) and eval's summary."""
    from sense_hub.benchmarks import Example
    from sense_hub.evaluation import score_examples
    from sense_hub.formats import PREDICTIONS_COLUMNS

    class Scripted:
        name = "scripted"

        def generate(self, prompts, config):
            assert config.temperature == 0.0 and config.n == 1
            answers = ["```sql\nSELECT count(*) FROM singer\n```", "SELECT nope FROM singer"]
            return [[answers[i % 2]] for i in range(len(prompts))]

    examples = [
        Example(f"q-{i}", "concert_singer", "How many singers?", "SELECT count(*) FROM singer") for i in (0, 1)
    ]
    rows, summary = score_examples(
        Scripted(), examples, db_paths=[tiny_db, tiny_db], metric="spider", output=tmp_path / "judged.jsonl"
    )
    assert [list(r) for r in rows] == [list(PREDICTIONS_COLUMNS)] * 2
    assert [(r["pred"], r["correct"], r["error"]) for r in rows] == [
        ("SELECT count(*) FROM singer", True, None),
        ("SELECT nope FROM singer", False, "runtime"),
    ]
    assert summary["n"] == 2 and summary["correct"] == 1 and summary["errors"] == {"runtime": 1}
    assert len((tmp_path / "judged.jsonl").read_text().splitlines()) == 2


def test_score_examples_repairs_only_when_asked_and_says_so(tiny_db):
    from sense_hub.benchmarks import Example
    from sense_hub.evaluation import score_examples

    class FixesAfterTheError:
        name = "scripted"

        def generate(self, prompts, config):
            shown = ["SQLite could not run that query" in p[-1]["content"] for p in prompts]
            return [["SELECT count(*) FROM singer" if s else "SELECT nope FROM singer"] * config.n for s in shown]

    examples = [Example("q-0", "concert_singer", "How many singers?", "SELECT count(*) FROM singer")]
    rows, summary = score_examples(FixesAfterTheError(), examples, db_paths=[tiny_db])
    assert not rows[0]["correct"] and summary["budget"] == "greedy" and "first_pred" not in rows[0]
    rows, summary = score_examples(FixesAfterTheError(), examples, db_paths=[tiny_db], repair_rounds=1)
    assert rows[0]["correct"] and summary["budget"] == "greedy+repair" and summary["correct"] == 1
    assert rows[0]["first_pred"] == "SELECT nope FROM singer"
