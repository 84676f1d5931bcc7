"""The main job end to end with the tiny model: the output contract of ARCHITECTURE.md, resume, config errors."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from sense_hub.cli import main
from sense_hub.fingerprints import database_fingerprints, read_expected_fingerprints
from sense_hub.quickstart import STAGES, QuickstartConfig, load_config

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def quickstart_run(tmp_path_factory, tiny_model_dir):
    out = tmp_path_factory.mktemp("qs") / "out"
    config = tmp_path_factory.mktemp("cfg") / "quick.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "model": str(tiny_model_dir),
                "templates_per_database": 3,
                "verifier_model": None,  # rule-written questions: the tiny random model cannot verify any
                "weak_questions": 3,
                "weak_samples": 2,
                "eval_questions": 2,
                "max_new_tokens": 8,
                "sft_steps": 1,
                "cdpo_steps": 1,
                "batch_size": 2,
                "max_length": 4096,
            }
        )
    )
    # the real command in a fresh interpreter, as `make demo` runs it: its terminal output is checked below
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run(
        [sys.executable, "-m", "sense_hub.cli", "quickstart", "--output-dir", str(out), "--config", str(config)],
        capture_output=True,
        text=True,
        env=env,
        timeout=1800,
    )
    assert proc.returncode == 0, proc.stderr[-5000:]
    (out.parent / "terminal.txt").write_text(proc.stdout + "\n----\n" + proc.stderr, encoding="utf-8")
    return out, config


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_quickstart_writes_the_contracted_layout(quickstart_run, tmp_path):
    from datasets import load_dataset
    from huggingface_hub import ModelCard
    from transformers import AutoModelForCausalLM

    out, _ = quickstart_run
    # datasets 5.2 caches a local folder by its name ("strong"), so other tests' folders would be served: own cache
    cache = str(tmp_path / "hf-datasets-cache")
    strong = load_dataset(str(out / "datasets" / "strong"), cache_dir=cache)
    assert {"question", "sql", "db_id"} <= set(strong["train"].column_names)
    weak = load_dataset(str(out / "datasets" / "weak"), cache_dir=cache)
    assert {"question", "sql", "correct", "gold_sql"} <= set(weak["train"].column_names)
    pairs = load_dataset(str(out / "datasets" / "pairs"), cache_dir=cache)
    row = pairs["train"][0]
    assert row["prompt"][-1]["role"] == "user" and row["chosen"][0]["role"] == "assistant"
    assert row["rejected"][0]["content"] != row["chosen"][0]["content"]

    # every record refers to a database that is in DIR/databases
    for split in (strong["train"], weak["train"], pairs["train"]):
        for db_id in set(split["db_id"]):
            assert (out / "databases" / db_id / f"{db_id}.sqlite").is_file()

    report = json.loads((out / "report.json").read_text())
    assert set(report["execution_accuracy"]) == {"base", "sft", "cdpo"}
    # every stage's score carries its 95% interval, and the stages are compared paired, question by question
    assert set(report["ci95"]) == {"base", "sft", "cdpo"}
    for stage, (low, high) in report["ci95"].items():
        assert 0 <= low <= report["execution_accuracy"][stage] <= high <= 1
    assert set(report["paired"]) == {"sft_vs_base", "cdpo_vs_sft", "cdpo_vs_base"}
    assert all(0 <= p["mcnemar_p"] <= 1 for p in report["paired"].values())
    judged = [json.loads(line) for line in (out / "work" / "judged-base.jsonl").read_text().splitlines()]
    assert len(judged) == report["eval_set"]["questions"] and {"question_id", "pred", "correct"} <= set(judged[0])
    assert "| base |" in (out / "compare.md").read_text()
    held_out = set(report["eval_set"]["databases"])
    assert held_out == {"warehouse_ops"}  # the student is adapted to it: its verified synthetic questions train
    asked = {r["question"] for r in judged}
    for split in (strong["train"], weak["train"]):  # but its hand-written questions are only ever scored
        assert not asked & set(split["question"])
    assert not asked & {p[-1]["content"].split("Question: ")[-1].split("\n")[0] for p in pairs["train"]["prompt"]}
    for name in ("sense-sft", "sense-cdpo"):
        folder = out / "models" / name
        assert list(folder.glob("*.safetensors"))
        card = ModelCard.load(folder / "README.md")
        assert card.data.eval_results[0].metric_type == "execution_accuracy"
        # the score carries what it was computed on: the held-out databases, as `eval --expect-fingerprints` reads it
        recorded = read_expected_fingerprints(folder / "README.md")
        assert sorted(recorded["databases"]) == [f"{d}/{d}.sqlite" for d in sorted(held_out)]
        assert recorded["databases"] == database_fingerprints(
            [out / "databases" / d / f"{d}.sqlite" for d in held_out], root=out / "databases"
        )
        AutoModelForCausalLM.from_pretrained(folder)


def test_quickstart_terminal_shows_stage_lines_and_the_table_and_logs_the_rest(quickstart_run):
    """Library warnings, nested tqdm bars and TRL's per-step dicts go to DIR/quickstart.log, not the terminal."""
    out, _ = quickstart_run
    stdout, stderr = (out.parent / "terminal.txt").read_text(encoding="utf-8").split("\n----\n")
    assert json.loads(stdout.strip().splitlines()[-1])["output_dir"] == str(out)
    assert stdout.count("\n") == 1, stdout  # the result line only: no {'loss': ...} dicts
    lines = stderr.splitlines()
    assert [line for line in lines if line.startswith("[")] == [
        f"[{i}/{len(STAGES)}] {n}" for i, n in enumerate(STAGES, 1)
    ]
    assert "sense-hub quickstart" in stderr and "eval_cdpo" in stderr  # the final table still prints
    assert "held-out execution accuracy" in stderr and "95% CI" in stderr
    assert lines[-1] == f"Warnings, training logs and progress bars: {out / 'quickstart.log'}"
    shown = "\n".join(lines[:-1])  # all but the line naming the log
    for noise in ("Warning", "%|", "it/s", "examples/s", "'loss'", '"loss"', "Traceback"):
        assert noise not in shown, noise
    log = (out / "quickstart.log").read_text(encoding="utf-8")
    assert "sense_hub.training: step 1: {" in log and '"loss"' in log  # TRL's per-step metrics
    assert "Tokenizing train dataset" in log and "%|" in log  # the libraries' bars
    assert "FutureWarning" in log  # transformers' deprecation warnings


def test_quickstart_rerun_resumes_without_redoing_stages(quickstart_run, capsys):
    out, config = quickstart_run
    state = json.loads((out / "work" / "state.json").read_text())
    assert set(state["done"]) == set(STAGES)
    before = (out / "report.json").stat().st_mtime_ns
    assert main(["quickstart", "--output-dir", str(out), "--config", str(config)]) == 0
    assert (out / "report.json").stat().st_mtime_ns == before
    assert "done earlier, skipped" in capsys.readouterr().err


def test_quickstart_refuses_changed_settings_in_the_same_directory(quickstart_run, capsys):
    out, config = quickstart_run
    assert main(["quickstart", "--output-dir", str(out), "--config", str(config), "--model", "other"]) == 2
    assert "different settings (model)" in capsys.readouterr().err


def test_config_errors_name_the_key_and_the_fix(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("weak_sample: 4\n")
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['weak_sample'\]"):
        load_config(bad, {})
    with pytest.raises(ValueError, match=r"cdpo_epsilon.*\[0, 0.5\)"):
        QuickstartConfig(cdpo_epsilon=0.7)
    with pytest.raises(FileNotFoundError, match="missing.yaml"):
        load_config(tmp_path / "missing.yaml", {})


@pytest.mark.parametrize(
    ("yaml_text", "message"),
    [
        ('weak_samples: "four"\n', r"bad\.yaml:1: `weak_samples` must be an integer, got 'four'"),
        (
            "seed: 0\ndb_ids: concert_singer\n",
            r"bad\.yaml:2: `db_ids` must be a list of strings or null \(a YAML list",
        ),
        ("sft_steps: many\n", r"bad\.yaml:1: `sft_steps` must be an integer, got 'many'"),
        ("sft_steps: 2.5\n", r"`sft_steps` must be an integer, got 2\.5"),
        ("private: 1\n", r"`private` must be true or false, got 1"),
        ("weak_temperature: .inf\n", r"`weak_temperature` must be a number, got inf"),
        ("eval_db_ids: [a, 3]\n", r"`eval_db_ids` must be a list of strings or null, got \['a', 3\]"),
        ("validation_fraction: 1.0\n", r"bad\.yaml:1: `validation_fraction` must lie in \[0, 1\)"),
        ("weak_questions: 0\n", r"`weak_questions` must be at least 1, got 0"),
        ("model: [embedded\n", r"bad\.yaml:2:1: not valid YAML"),
        ("- a\n- b\n", r"expected a mapping of QuickstartConfig fields, got list"),
    ],
)
def test_config_values_are_checked_before_any_work(tmp_path, yaml_text, message):
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml_text)
    with pytest.raises(ValueError, match=message):
        load_config(bad, {"output_dir": str(tmp_path / "out")})
    assert not (tmp_path / "out").exists()


def test_config_values_take_the_field_types(tmp_path):
    good = tmp_path / "good.yaml"
    good.write_text("sft_learning_rate: 1e-4\ncdpo_beta: 1\ndb_ids: [a, b]\neval_db_ids: [b]\nverifier_model: null\n")
    config = load_config(good, {"model": "other"})
    assert config.sft_learning_rate == 1e-4 and isinstance(config.cdpo_beta, float)  # YAML 1.1 reads 1e-4 as text
    assert config.db_ids == ["a", "b"] and config.verifier_model is None and config.model == "other"
    with pytest.raises(ValueError, match=r"`weak_samples` must be an integer, got '4'"):
        QuickstartConfig(weak_samples="4")


def test_a_missing_embedded_model_fails_before_the_first_stage(tmp_path, capsys, monkeypatch):
    """The verifier is needed by the second stage: a missing package is named before the first one starts."""
    import dataclasses

    from sense_hub import models

    qwen = models.REGISTRY["qwen2.5-coder-1.5b"]
    first = dataclasses.replace(qwen.parts[0], package="sense-absent-part1", module="sense_absent_part1")
    monkeypatch.setitem(
        models.REGISTRY, "qwen2.5-coder-1.5b", dataclasses.replace(qwen, parts=(first, *qwen.parts[1:]))
    )
    out = tmp_path / "out"
    config = tmp_path / "q.yaml"
    config.write_text("verifier_model: embedded:qwen2.5-coder-1.5b\n")
    assert main(["quickstart", "--output-dir", str(out), "--config", str(config)]) == 2
    err = capsys.readouterr().err
    # where no part is installed (a bare CI machine) the message says "needs its packages"; the command names them
    assert "qwen2.5-coder-1.5b needs" in err and "not installed" in err and err.count("\n") == 1, err
    assert "pip install sense-absent-part1 " in err, err
    assert not (out / "databases").exists()
