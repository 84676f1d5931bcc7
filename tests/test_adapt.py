"""`sense-hub adapt`: bad databases and questions fail in one line naming the file; the experiment it runs is planned
in the right order; a tiny end-to-end run on a bundled database (slow) scores before and after, writes the card and
resumes."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from sense_hub.adapt import AdaptOptions, database_id, experiment_config, load_questions
from sense_hub.cli import main as cli_main
from sense_hub.errors import UsageError
from sense_hub.experiment import Experiment, ExperimentConfig, parse_arms
from sense_hub.sample_data import build_sample_databases


@pytest.fixture
def bookshop(tmp_path) -> Path:
    return build_sample_databases(tmp_path / "dbs", db_ids=("bookshop",))["bookshop"]


def test_help_works(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli_main(["adapt", "--help"])
    assert exit_.value.code == 0
    assert "--questions" in capsys.readouterr().out


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: None, "no such file"),
        (lambda p: p.write_text("name,city\nAna,Lisbon\n"), "not an SQLite database"),
        (lambda p: sqlite3.connect(p).execute("PRAGMA user_version = 1").connection.commit(), "has no tables"),
    ],
    ids=["missing", "csv", "no-tables"],
)
def test_a_bad_database_gets_one_line_naming_the_file(make, message, tmp_path, capsys):
    db = tmp_path / "shop.sqlite"
    make(db)
    code = cli_main(["adapt", "--db", str(db), "--output-dir", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1 and str(db) in err and message in err
    assert not (tmp_path / "out" / "data").exists()


def test_questions_are_checked_by_running_their_gold_sql(tmp_path, bookshop):
    good = {"question": "How many books are there?", "sql": "SELECT count(*) FROM book"}
    path = tmp_path / "q.jsonl"
    path.write_text(json.dumps(good) + "\n" + json.dumps({"question": "x?", "sql": "SELECT nope FROM book"}) + "\n")
    with pytest.raises(UsageError, match=r"q\.jsonl:2: the gold SQL does not run"):
        load_questions(path, "bookshop", bookshop)
    path.write_text(json.dumps(good) + "\nnot json\n")
    with pytest.raises(UsageError, match=r"q\.jsonl:2: not JSON"):
        load_questions(path, "bookshop", bookshop)
    path.write_text(json.dumps({**good, "db_id": "other"}) + "\n")
    with pytest.raises(UsageError, match="not this database"):
        load_questions(path, "bookshop", bookshop)
    path.write_text(json.dumps(good) + "\n")
    assert load_questions(path, "bookshop", bookshop) == [
        {"question_id": "bookshop-1", "db_id": "bookshop", "question": good["question"], "sql": good["sql"]}
    ]


def test_database_ids_are_folder_names():
    assert database_id(Path("My Shop (2024).sqlite")) == "My_Shop_2024"
    assert database_id(Path("---.db")) == "database"


@pytest.mark.parametrize("questions", [True, False], ids=["your-questions", "synthetic-held-out"])
def test_adapt_is_an_experiment_planned_in_order(questions, tmp_path):
    opts = AdaptOptions(db=tmp_path / "shop.sqlite", output_dir=tmp_path / "out")
    settings = experiment_config(opts, "shop", tmp_path / "q.jsonl" if questions else None)
    config = ExperimentConfig(**settings)
    plan = Experiment(config, parse_arms(config)).plan()
    # the base score needs the held-out questions only: yours from the split, or the synthetic ones from `synth`
    first = ["base", "synth"] if questions else ["synth", "base"]
    assert plan == ["split", *first, "sft", "weak", "pairs", "adapted", "compare"]
    assert config.synthesis_databases == ["shop"] and config.weak_questions == "templates"
    assert (config.heldout_share > 0) is not questions
    for arm in settings["arms"][1:]:
        assert Path(arm["config"]).is_file()  # the training YAMLs ship in the package


@pytest.mark.slow  # the trainers and sense-hub commands run as subprocesses that import torch afresh
def test_adapt_runs_end_to_end_on_a_bundled_database_and_resumes(tmp_path, tiny_model_dir, monkeypatch, capsys):
    from sense_hub.sample_data import seed_examples

    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    db = build_sample_databases(tmp_path / "dbs", db_ids=("bookshop",))["bookshop"]
    questions = tmp_path / "mine.jsonl"
    seeds = seed_examples(("bookshop",))[:3]
    questions.write_text("".join(json.dumps({"question": r["question"], "sql": r["sql"]}) + "\n" for r in seeds))
    out = tmp_path / "adapted-run"
    argv = ["adapt", "--db", str(db), "--output-dir", str(out), "--questions", str(questions)]
    argv += ["--student", str(tiny_model_dir), "--teacher", "rules", "--templates", "8", "--sft-epochs", "1"]
    assert cli_main(argv) == 0, capsys.readouterr()
    printed = capsys.readouterr().out
    for arm in ("base", "sft", "adapted"):
        rows = [json.loads(line) for line in (out / "judged" / f"{arm}.jsonl").read_text().splitlines()]
        assert [r["question_id"] for r in rows] == ["bookshop-1", "bookshop-2", "bookshop-3"]
        assert all(isinstance(r["correct"], bool) for r in rows)
    summary = json.loads((out / "adapt.json").read_text())
    assert summary["database"]["sha256"] and summary["counts"]["verified_questions"] > 0
    assert set(summary["scores"]) == {"base", "sft", "adapted"} and summary["held_out"] == "your questions"
    trained = {
        json.loads(line)["question"] for line in (out / "data" / "strong-templates.jsonl").read_text().splitlines()
    }
    assert not trained & {r["question"] for r in seeds}  # the user's questions are never trained on
    card = (out / "models" / "adapted" / "README.md").read_text()
    assert summary["database"]["sha256"] in card and "sense-hub adapt" in card
    assert "| adapted |" in printed and "SENSE_MODEL=" in printed

    assert cli_main(argv) == 0  # the same command resumes: every step is skipped
    again = capsys.readouterr().out
    assert "[train-sft] done before" in again and "] started" not in again


def test_gguf_export_names_what_is_wrong_before_fetching_anything(tmp_path):
    from sense_hub.gguf_export import GGUFExportError, export_gguf

    with pytest.raises(GGUFExportError, match="choose from"):
        export_gguf(tmp_path, "q2_k")
    with pytest.raises(GGUFExportError, match="no saved model"):
        export_gguf(tmp_path, "q8_0")
