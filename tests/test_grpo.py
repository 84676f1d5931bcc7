"""GRPO: records -> GRPO rows, argument checks, and the recipe end to end on a tiny model (CPU, 2 steps)."""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path

import pytest
import yaml

from sense_hub.grpo import GRPOScriptArguments, grpo_records, reward_curve, reward_summary
from sense_hub.training import TrainingDataError

REPO = Path(__file__).resolve().parents[1]
CPU = {
    "use_cpu": True,
    "bf16": False,
    "gradient_checkpointing": False,
    "report_to": "none",
    "save_strategy": "no",
    "logging_steps": 1,
    "seed": 0,
}
QUESTIONS = [
    ("How many singers are there?", "SELECT count(*) FROM singer"),
    ("How many concerts are there?", "SELECT count(*) FROM concert"),
    ("How many singers are from France?", "SELECT count(*) FROM singer WHERE country = 'France'"),
    ("How many concerts were in 2014?", "SELECT count(*) FROM concert WHERE year = 2014"),
]


def strong_records(db_id: str = "concert_singer") -> list[dict]:
    return [
        {
            "id": f"{db_id}-{i}",
            "domain": "music",
            "difficulty": "easy",
            "db_id": db_id,
            "schema": "",
            "question": q,
            "sql": sql,
            "evidence": "",
            "generator": "test",
            "verification": "executed",
        }
        for i, (q, sql) in enumerate(QUESTIONS)
    ]


def test_grpo_records_from_strong_weak_and_benchmark_records(tiny_db):
    from sense_hub.prompts import prompt_for_database

    db_root = tiny_db.parent.parent
    strong = grpo_records(strong_records(), db_root=db_root)
    assert [r["gold_sql"] for r in strong] == [sql for _, sql in QUESTIONS]
    assert strong[0]["prompt"] == prompt_for_database(QUESTIONS[0][0], tiny_db)
    assert set(strong[0]) == {"prompt", "db_id", "gold_sql", "question"}
    base = {"question_id": "q0", "db_id": "concert_singer", "question": QUESTIONS[0][0], "evidence": ""}
    weak = [
        {**base, "gold_sql": QUESTIONS[0][1], "sql": "SELECT 1", "correct": False},
        {**base, "gold_sql": QUESTIONS[0][1], "sql": QUESTIONS[0][1], "correct": True},  # same question again
    ]
    (row,) = grpo_records(weak, db_root=db_root)
    assert row["gold_sql"] == QUESTIONS[0][1]  # the gold, not the weak candidate
    spider = [{"db_id": "concert_singer", "question": QUESTIONS[1][0], "query": QUESTIONS[1][1]}]
    assert grpo_records(spider, db_root=db_root)[0]["gold_sql"] == QUESTIONS[1][1]


def test_grpo_records_name_the_missing_field(tiny_db):
    with pytest.raises(TrainingDataError, match=r"record 2: missing gold SQL"):
        grpo_records(
            [strong_records()[0], {"question": "q", "db_id": "concert_singer"}], db_root=tiny_db.parent.parent
        )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"reward_funcs": ["accuracy"]}, r"unknown reward\(s\) \['accuracy'\]"),
        ({"metric": "exact"}, "`metric` must be one of"),
        ({"execution_timeout": 0.0}, "`execution_timeout` must be positive"),
        ({"execution_workers": -1}, "`execution_workers` must be >= 0"),
        ({"heldout_samples": -2}, "`heldout_samples` must be"),
        ({"max_train_minutes": 0.0}, "`max_train_minutes` must be a positive number"),
        ({"max_train_minutes": float("nan")}, "`max_train_minutes` must be a positive number"),
    ],
)
def test_script_arguments_say_the_fix(kwargs, message):
    with pytest.raises(ValueError, match=message):
        GRPOScriptArguments(**kwargs)


def test_reward_curve_and_summary():
    history = [
        {"step": 1, "reward": 0.0, "rewards/arctic/mean": 0.0, "loss": 0.1},
        {"step": 2, "reward": 0.5, "rewards/arctic/mean": 0.5},
        {"train_runtime": 3.0, "step": 2},
    ]
    curve = reward_curve(history)
    assert curve == [
        {"step": 1, "reward": 0.0, "rewards/arctic/mean": 0.0},
        {"step": 2, "reward": 0.5, "rewards/arctic/mean": 0.5},
    ]
    assert reward_summary(curve) == {"steps_logged": 2, "window": 1, "reward_start": 0.0, "reward_end": 0.5}
    assert reward_summary([]) == {"steps_logged": 0}


# ---------------------------------------------------------------------------------------------------------------
# The recipe, in-process, on a tiny model taught a little SQL first (a random model's rewards are all 0: no signal)
# ---------------------------------------------------------------------------------------------------------------


def load_recipe(name: str):
    spec = importlib.util.spec_from_file_location(f"recipe_{name}", REPO / "recipes" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def sql_speaking_model(tmp_path_factory):
    """The tiny test model after a few SFT steps on the questions: its samples are SQL-like, some right, some not."""
    from conftest import build_tiny_model, make_tiny_db
    from trl import ModelConfig, SFTConfig

    from sense_hub.training import SenseScriptArguments, build_sft_trainer, strong_to_sft

    root = tmp_path_factory.mktemp("grpo-model")
    base = build_tiny_model(root / "base")
    db = make_tiny_db(root / "dbs" / "concert_singer" / "concert_singer.sqlite")
    make_tiny_db(root / "dbs" / "concert_singer_b" / "concert_singer_b.sqlite")  # a second one for validation
    from datasets import Dataset

    short = [{**r, "db_id": "", "schema": "CREATE TABLE singer (name TEXT, age INT)"} for r in strong_records()]
    data = Dataset.from_list(strong_to_sft(short * 2))  # short prompts: the SQL is what it has to pick up
    args = SFTConfig(
        output_dir=str(root / "sft"),
        max_steps=10,
        per_device_train_batch_size=4,
        learning_rate=1e-2,
        lr_scheduler_type="constant",
        max_length=256,
        **{**CPU, "logging_steps": 40},
    )
    trainer = build_sft_trainer(
        SenseScriptArguments(), args, ModelConfig(model_name_or_path=str(base)), train_dataset=data
    )
    trainer.train()
    trainer.save_model(str(root / "warm"))
    return root / "warm", db


def test_grpo_recipe_two_steps_changes_weights_and_writes_the_card(tmp_path, sql_speaking_model, monkeypatch):
    from huggingface_hub import ModelCard
    from safetensors.torch import load_file

    from sense_hub.hub import write_dataset_repo

    model_dir, db = sql_speaking_model
    records = strong_records("concert_singer") + strong_records("concert_singer_b")
    dataset = write_dataset_repo(records, kind="strong", out_dir=tmp_path / "datasets" / "strong")
    summary = tmp_path / "spider.json"
    summary.write_text(json.dumps({"n": 4, "correct": 1, "execution_accuracy": 0.25}))
    config = {
        "model_name_or_path": str(model_dir),
        "dataset_name": str(dataset),
        "db_root": str(db.parent.parent),
        "output_dir": str(tmp_path / "grpo"),
        "reward_funcs": ["arctic", "format"],
        "reward_weights": [1.0, 0.5],
        "max_steps": 2,
        "per_device_train_batch_size": 8,
        "num_generations": 4,
        "max_completion_length": 16,
        "temperature": 1.5,
        "learning_rate": 1e-2,
        "heldout_samples": -1,
        "heldout_max_new_tokens": 16,
        **CPU,
    }
    path = tmp_path / "grpo.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    recipe = load_recipe("grpo")
    argv = ["recipes/grpo.py", "--config", str(path), "--eval_summary", f"spider-dev={summary}"]
    monkeypatch.setattr(sys, "argv", argv)
    recipe.main(*recipe.make_parser().parse_args_and_config(argv[1:]))

    out = tmp_path / "grpo"
    before, after = load_file(str(model_dir / "model.safetensors")), load_file(str(out / "model.safetensors"))
    assert any((before[n] - after[n]).abs().max() > 0 for n in before)
    results = json.loads((out / "grpo_results.json").read_text())
    assert results["reward"]["steps_logged"] == 2
    assert all(math.isfinite(p["reward"]) and "rewards/arctic/mean" in p for p in results["reward_curve"])
    assert results["execution"]["gold_executions"] == 4  # 2 steps x 2 questions, each gold run once
    assert results["execution"]["completions_scored"] == 2 * 8 * 1  # arctic only: format needs no execution
    assert results["heldout"]["n"] >= 1 and (out / "heldout_predictions.jsonl").is_file()
    assert (out / "reward_curve.png").read_bytes()[:4] == b"\x89PNG"
    card = ModelCard((out / "README.md").read_text())
    assert "grpo" in card.data.tags
    names = {ev.dataset_name: ev.metric_value for ev in card.data.eval_results}
    assert names["spider-dev"] == 0.25 and "held-out validation split" in names
    assert "![Mean reward per step](reward_curve.png)" in card.text and "| `arctic` | 1 |" in card.text
    assert "recipes/grpo.py" in card.text
    assert card.text.index("## GRPO with execution rewards") < card.text.index("## Citation")
    heldout = next(ev for ev in card.data.eval_results if ev.dataset_name == "held-out validation split")
    assert heldout.dataset_type == "strong-validation"  # a local folder's name, not its path


def test_reward_weights_must_match_the_names(tmp_path):
    from trl import GRPOConfig, ModelConfig

    from sense_hub.grpo import build_grpo_trainer

    args = GRPOConfig(output_dir=str(tmp_path), reward_weights=[1.0, 0.5], **CPU)
    script_args = GRPOScriptArguments(reward_funcs=["arctic"], dataset_name=str(tmp_path / "none.jsonl"))
    with pytest.raises(ValueError, match=r"`reward_weights` has 2 value\(s\) for 1 reward function\(s\)"):
        build_grpo_trainer(script_args, args, ModelConfig(model_name_or_path="unused"))
