"""`sense-hub experiment`: the YAML is checked before any work, the plan orders steps by what they need, and a tiny
experiment (base, SFT, cDPO from the SFT arm on the weak samples of the student) runs end to end and resumes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from sense_hub.cli import main as cli_main
from sense_hub.errors import UsageError
from sense_hub.experiment import Experiment, load_config

REPO = Path(__file__).resolve().parents[1]


def _questions(path: Path, n: int, start: int = 0) -> Path:
    sqls = [
        ("How many singers are there?", "SELECT count(*) FROM singer"),
        ("List the names of all singers.", "SELECT name FROM singer"),
        ("What is the average age of singers?", "SELECT avg(age) FROM singer"),
        ("How many concerts are there?", "SELECT count(*) FROM concert"),
        ("Which singers are from France?", "SELECT name FROM singer WHERE country = 'France'"),
        ("What is the oldest singer's age?", "SELECT max(age) FROM singer"),
    ]
    rows = [
        {"question_id": f"q{start + i}", "db_id": "concert_singer", "question": q, "sql": s}
        for i, (q, s) in enumerate(sqls[start : start + n])
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _config(tmp_path: Path, tiny_db: Path, student: str, **changes) -> Path:
    config = {
        "output_dir": str(tmp_path / "run"),
        "student": student,
        "train_questions": str(_questions(tmp_path / "train.jsonl", 4)),
        "heldout_questions": str(_questions(tmp_path / "heldout.jsonl", 2, start=4)),
        "db_root": str(tiny_db.parent.parent),
        "recipe_dir": str(REPO / "recipes" / "smollm2-135m"),
        "weak_model": "sft",
        "weak_samples": 2,
        "pairs_preset": "keep-gold-limit1",
        "max_new_tokens": 24,
        "batch_size": 4,
        "bootstrap": 200,
        "save_steps": 0,
        "train_extra": ["--per_device_train_batch_size", "2", "--gradient_accumulation_steps", "1"],
        "arms": [
            {"name": "base"},
            {"name": "sft", "recipe": "sft", "data": ["human"], "steps": 1},
            {"name": "sft+cdpo", "recipe": "cdpo", "start_from": "sft", "data": ["pairs"], "steps": 1},
        ],
    }
    config.update(changes)
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def test_plan_puts_each_step_after_what_it_needs(tmp_path, tiny_db):
    config, arms = load_config(_config(tmp_path, tiny_db, "embedded"), {})
    plan = Experiment(config, arms).plan()
    # the weak model is the SFT arm, so its samples (and the pairs) come after it and before cDPO
    assert plan == ["split", "base", "sft", "weak", "pairs", "sft+cdpo", "compare"]


def test_an_arm_named_as_weak_model_brings_its_samples_into_the_plan(tmp_path, tiny_db):
    sft = {"name": "sft", "recipe": "sft", "data": ["human"], "steps": 1}
    config, arms = load_config(_config(tmp_path, tiny_db, "embedded", arms=[sft], robustness=[]), {})
    assert Experiment(config, arms).plan() == ["split", "sft", "weak", "pairs", "compare"]
    config, arms = load_config(
        _config(tmp_path, tiny_db, "embedded", arms=[sft], weak_model="student", robustness=[]), {}
    )
    assert Experiment(config, arms).plan() == ["split", "sft", "compare"]


def test_the_shipped_experiment_parses_and_plans():
    config, arms = load_config(REPO / "recipes" / "experiments" / "sense-qwen.yaml", {})
    plan = Experiment(config, arms).plan()
    assert plan.index("sft-strong") < plan.index("weak") < plan.index("pairs") < plan.index("sft-strong+cdpo")
    assert plan[-2:] == ["robustness", "compare"] and {"synth", "domains", "sft-human", "sft-strong+dpo"} <= set(plan)
    assert Experiment(config, arms).against("sft-strong") == "sft-human"
    config, arms = load_config(REPO / "recipes" / "experiments" / "sense-qwen-weak-smollm2.yaml", {})
    assert Experiment(config, arms).plan() == ["split", "sft-strong", "weak", "pairs", "compare"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"arms": [{"name": "base"}, {"name": "base"}]}, "is taken"),
        ({"arms": [{"name": "a", "recipe": "sfft", "data": ["human"], "steps": 1}]}, "unknown recipe 'sfft'"),
        ({"arms": [{"name": "a", "recipe": "sft", "data": ["humans"], "steps": 1}]}, "data 'humans'"),
        ({"arms": [{"name": "a", "recipe": "sft", "data": ["human"]}]}, "one budget"),
        (
            {"arms": [{"name": "a", "recipe": "sft", "data": ["human"], "steps": 1, "lr": 1}]},
            r"unknown key\(s\) \['lr'\]",
        ),
        ({"arms": [{"name": "a", "recipe": "sft", "data": ["human"], "steps": "two"}]}, "`steps` must be"),
        (
            {
                "arms": [
                    {"name": "a", "recipe": "cdpo", "start_from": "b", "data": ["pairs"], "steps": 1},
                    {"name": "b"},
                ]
            },
            "declared after",
        ),
        ({"arms": []}, "empty"),
        ({"weak_samples": 0}, "`weak_samples` must be at least 1"),
        ({"pairs_preset": "best"}, "unknown `pairs_preset`"),
        ({"robustness": ["nope"]}, "not an arm"),
        ({"learning_rate": 1e-4}, r"unknown key\(s\) \['learning_rate'\]"),
    ],
)
def test_bad_configs_fail_before_any_work_naming_the_field(tmp_path, tiny_db, change, message):
    path = _config(tmp_path, tiny_db, "embedded", **change)
    with pytest.raises(UsageError, match=message):
        load_config(path, {})
    assert not (tmp_path / "run").exists()


def test_an_arm_error_names_the_file_and_line(tmp_path, tiny_db):
    path = _config(tmp_path, tiny_db, "embedded", arms=[{"name": "base"}, {"name": "x", "recipe": "sfft"}])
    with pytest.raises(UsageError, match=r"exp\.yaml:\d+: arms\[1\]"):
        load_config(path, {})


def test_the_command_reports_a_bad_config_in_one_line(tmp_path, tiny_db, capsys):
    path = _config(tmp_path, tiny_db, "embedded", arms=[{"name": "x", "recipe": "sfft"}])
    assert cli_main(["experiment", "--config", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("sense-hub experiment:") and "unknown recipe" in err and "\n" not in err
    assert cli_main(["experiment", "--config", str(path.with_name("missing.yaml"))]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_dry_run_prints_the_plan_and_does_nothing(tmp_path, tiny_db, capsys):
    path = _config(tmp_path, tiny_db, "embedded")
    assert cli_main(["experiment", "--config", str(path), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert " 4. weak" in out and "sft samples 2 SQL" in out and "cdpo from sft on pairs, 1 steps" in out
    assert not (tmp_path / "run").exists()
    assert cli_main(["experiment", "--config", str(path), "--stages", "sft,nope"]) == 2
    assert "['nope'] not in this experiment's plan" in capsys.readouterr().err


@pytest.mark.slow  # recipes and sense-hub commands run as subprocesses that import torch/transformers/trl afresh
def test_compare_of_arms_restored_without_their_models_writes_the_tables(tmp_path, tiny_db, capsys):
    """Arms scored earlier whose model folders are gone (a new machine, judged files restored): compare still
    writes the tables and a card for each such arm from its training step's record, instead of failing."""
    config, arms = load_config(_config(tmp_path, tiny_db, "embedded", bootstrap=100), {})
    experiment = Experiment(config, arms)
    out = experiment.out
    (out / "done").mkdir(parents=True)
    (out / "done" / "split.json").write_text(json.dumps({"held_out_dbs": ["concert_singer"]}))
    summary = {"metric": "spider", "n": 2, "correct": 1, "execution_accuracy": 0.5}
    (out / "done" / "score-sft.json").write_text(json.dumps({"eval": summary}))
    trained = {"records": 8, "epochs": 1.0, "global_step": 2, "first_loss": 1.5, "last_loss": 0.9, "seconds": 12.0}
    (out / "done" / "train-sft.json").write_text(json.dumps(trained))
    (out / "judged").mkdir()
    for arm, correct in (("base", [False, False]), ("sft", [True, False])):
        rows = [
            {"question_id": f"q{i}", "db_id": "concert_singer", "pred": "SELECT 1", "correct": c, "error": None}
            for i, c in enumerate(correct)
        ]
        (out / "judged" / f"{arm}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    experiment.final_compare()
    assert "no model folder; cards written from the step records instead" in capsys.readouterr().out
    card = (out / "cards" / "sft" / "README.md").read_text()
    assert "were not kept" in card and "Controlled experiment: held-out results" in card
    assert "50.0%" in card and "0.9" in card  # its score and its last loss
    from huggingface_hub import ModelCard

    assert ModelCard.load(out / "cards" / "sft" / "README.md").data.eval_results[0].metric_value == 0.5
    assert json.loads((out / "results.json").read_text())["systems"][1]["correct"] == 1
    assert "| sft | 50.0" in (out / "against.md").read_text()


def test_a_tiny_experiment_runs_end_to_end_and_resumes(tmp_path, tiny_db, tiny_model_dir, monkeypatch, capsys):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    path = _config(tmp_path, tiny_db, str(tiny_model_dir))
    assert cli_main(["experiment", "--config", str(path)]) == 0, capsys.readouterr()
    out = capsys.readouterr().out
    run = tmp_path / "run"
    for arm in ("base", "sft", "sft+cdpo"):
        rows = [json.loads(line) for line in (run / "judged" / f"{arm}.jsonl").read_text().splitlines()]
        assert [r["question_id"] for r in rows] == ["q4", "q5"]
        assert all(isinstance(r["correct"], bool) for r in rows)
    weak = (run / "data" / "weak.jsonl").read_text().splitlines()
    assert len(weak) == 4 * 2  # 4 training questions x 2 samples, from the SFT arm's model
    assert json.loads((run / "done" / "weak.json").read_text())["model"] == str(run / "models" / "sft")
    results = json.loads((run / "results.json").read_text())
    assert [s["name"] for s in results["systems"]] == ["base", "sft", "sft+cdpo"]
    against = (run / "against.md").read_text()
    assert "| sft+cdpo |" in against and "sft: " in against  # cDPO against the arm it started from
    card = (run / "models" / "sft+cdpo" / "README.md").read_text()
    assert "Controlled experiment: held-out results" in card and "execution_accuracy" in card
    assert json.loads(out.strip().splitlines()[-1])["systems"][0]["name"] == "base"
    timings = json.loads((run / "timings.json").read_text())
    assert {"split", "score-base", "train-sft", "weak", "pairs", "train-sft+cdpo", "score-sft+cdpo"} <= set(timings)

    # the same command again: every step is skipped, the comparison is made again
    assert cli_main(["experiment", "--config", str(path)]) == 0
    again = capsys.readouterr().out
    assert "[train-sft] done before" in again and "[weak] done before" in again and "] started" not in again
    assert "| sft+cdpo |" in (run / "table.md").read_text()
