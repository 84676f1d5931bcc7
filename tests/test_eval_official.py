"""`--metric spider` reproduces the official Spider test-suite evaluator on published predictions (../shared/data).

The expected figures come from running the official test-suite exec semantics (taoyds/test-suite-sql-eval
`exec_eval.py` with its `sqlparse`-based DISTINCT removal) on the 972 Spider dev questions that have a database:
the number of correct predictions, and a fingerprint of which ones (sha256 of the 0/1 string in dev order), so a
single flipped item fails the test. The published totals are in ../shared/data/README.md.
"""

from __future__ import annotations

import csv
import hashlib
import json
import sqlite3
from pathlib import Path

import pytest

from sense_hub.cli import main
from sense_hub.evaluation import judge

pytestmark = pytest.mark.data

# system: (file under predictions/spider_dev, published EX, official correct count, fingerprint)
SYSTEMS = {
    "C3SQL": ("c3sql_gpt35/predicted_sql.txt", 0.827, 804, "afeb143da27decdf"),
    "DAIL-SQL": ("dail_sql/DAIL-SQL+GPT-4.txt", 0.832, 809, "d0d5e11aaff233a7"),
    "CodeS-1B": ("codes/pred_sqls-codes-1b-spider.txt", 0.784, 762, "1f68f2ce1ae1ac66"),
    "CodeS-15B": ("codes/pred_sqls-codes-15b-spider.txt", 0.849, 825, "e739c950c9c0cebf"),
    "DB-GPT-Hub": ("dbgpt_hub/predict_lora_32_lr_2e4_drop1e1.sql", 0.603, 586, "18583b2d70b32ce7"),
    "DIN-SQL": ("din_sql/DIN-SQL.csv", 0.832, 809, "5587b17512b7621d"),
    "TA-SQL": ("ta_sql_gpt4/spider_predict_dev.sql", 0.852, 828, "f9d243b7d74e482f"),
    "Graphix": ("dail_sql/graphix_result.txt", 0.810, 787, "7e329d5674af1dff"),
}


def _predictions(path: Path, n: int) -> list[str]:
    if path.suffix == ".csv":
        with path.open(newline="") as f:
            return [row["PREDICTED SQL"].strip() for row in csv.DictReader(f)]
    return [line.strip().split("\t")[0] for line in path.read_text().split("\n")[:n]]


@pytest.fixture
def spider(shared_data):
    db_root = shared_data / "spider" / "database"
    gold = [line.split("\t") for line in (shared_data / "spider" / "dev_gold.sql").read_text().splitlines()]
    keep = [i for i, (_, db) in enumerate(gold) if (db_root / db / f"{db}.sqlite").is_file()]
    assert len(keep) == 972
    return db_root, gold, keep


def test_all_published_systems_item_by_item(shared_data, spider):
    db_root, gold, keep = spider
    items, spans = [], {}
    for name, (rel, *_rest) in SYSTEMS.items():
        preds = _predictions(shared_data / "predictions" / "spider_dev" / rel, len(gold))
        assert len(preds) == len(gold), name
        start = len(items)
        items += [(db_root / gold[i][1] / f"{gold[i][1]}.sqlite", gold[i][0], preds[i]) for i in keep]
        spans[name] = (start, len(items))
    verdicts = judge(items, metric="spider")
    for name, (_rel, published, count, fingerprint) in SYSTEMS.items():
        start, end = spans[name]
        bits = "".join("1" if v.correct else "0" for v in verdicts[start:end])
        assert bits.count("1") == count, name
        assert round(count / 972, 3) == published, name
        assert hashlib.sha256(bits.encode()).hexdigest()[:16] == fingerprint, name
        assert not any(v.error in ("gold_error", "crash", "timeout") for v in verdicts[start:end])


@pytest.mark.parametrize(
    ("pred", "gold", "correct"),
    [
        # TA-SQL: `SQL<TAB>db_id` predictions with the Spider gold file
        ("ta_sql_gpt4/spider_predict_dev.sql", "../../spider/dev_gold.sql", 828),
        # PTD-SQL: reordered, paired with its own gold file (checked against the official evaluator too)
        ("ptd_sql/deepseek_ptd-sql/predicted_sql.txt", "ptd_sql/deepseek_ptd-sql/dev_gold.txt", 724),
        # the official repository's own example files
        ("spider_official_examples/pred_example.txt", "spider_official_examples/gold_example.txt", 442),
    ],
)
def test_cli_text_files(shared_data, capsys, pred, gold, correct):
    base = shared_data / "predictions" / "spider_dev"
    args = ["eval", "--predictions", str(base / pred), "--gold", str(base / gold)]
    assert main([*args, "--db-root", str(shared_data / "spider" / "database")]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["n"] == 1034 and summary["n_existing_db"] == 972
    assert summary["errors"]["missing_db"] == 62
    assert summary["correct"] == correct


def test_bird_rule_item_by_item(shared_data, spider):
    """`--metric bird` equals BIRD's evaluator: raw SQL, `set(pred) == set(gold)`, a failing prediction is wrong."""
    db_root, gold, keep = spider
    preds = _predictions(shared_data / "predictions" / "spider_dev" / SYSTEMS["DB-GPT-Hub"][0], len(gold))
    keep = keep[::3]
    expected = []
    for i in keep:
        con = sqlite3.connect(db_root / gold[i][1] / f"{gold[i][1]}.sqlite")
        con.text_factory = lambda b: b.decode(errors="ignore")
        try:
            pred_rows = con.execute(preds[i]).fetchall()
            gold_rows = con.execute(gold[i][0]).fetchall()
            expected.append(set(pred_rows) == set(gold_rows))
        except (sqlite3.Error, ValueError):
            expected.append(False)
        finally:
            con.close()
    items = [(db_root / gold[i][1] / f"{gold[i][1]}.sqlite", gold[i][0], preds[i]) for i in keep]
    got = [v.correct for v in judge(items, metric="bird", workers=0)]
    assert got == expected
    assert 0.4 < sum(got) / len(got) < 0.9
