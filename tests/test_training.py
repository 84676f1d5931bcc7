"""Training: record conversion, exact cDPO, the SFT/cDPO recipes end to end on a tiny model (CPU, a few steps)."""

from __future__ import annotations

import importlib.util
import json
import math
import re
import sys
from pathlib import Path

import pytest
import yaml

from sense_hub.errors import RecordError
from sense_hub.records import load_records
from sense_hub.training import (
    CDPOConfig,
    SenseScriptArguments,
    TrainingDataError,
    build_preference_trainer,
    cdpo_loss,
    cdpo_loss_settings,
    load_eval_results,
    pairs_to_kto,
    record_kind,
    strong_to_sft,
    weak_to_kto,
)

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
    ("List the names of all singers.", "SELECT name FROM singer"),
    ("Which singers are from France?", "SELECT name FROM singer WHERE country = 'France'"),
    ("How many concerts are there?", "SELECT count(*) FROM concert"),
]


def load_recipe(name: str):
    spec = importlib.util.spec_from_file_location(f"recipe_{name}", REPO / "recipes" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def strong_records(db_id: str = "concert_singer") -> list[dict]:
    return [
        {
            "id": f"s{i}",
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


def pairs_records(db_path: Path) -> list[dict]:
    from sense_hub.prompts import prompt_for_database

    return [
        {
            "prompt": prompt_for_database(q, db_path),
            "chosen": [{"role": "assistant", "content": sql}],
            "rejected": [{"role": "assistant", "content": "SELECT age FROM singer WHERE name = 'x'"}],
            "db_id": "concert_singer",
            "question_id": f"q{i}",
            "question": q,
            "chosen_source": "gold",
            "rejected_error": "wrong_result",
        }
        for i, (q, sql) in enumerate(QUESTIONS)
    ]


def write_jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def read_weights(folder: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(folder / "model.safetensors"))


# ---------------------------------------------------------------------------------------------------------------
# Records -> TRL formats
# ---------------------------------------------------------------------------------------------------------------


def test_strong_to_sft_uses_the_database_schema(tiny_db):
    from sense_hub.prompts import prompt_for_database

    rows = strong_to_sft(strong_records(), db_root=tiny_db.parent.parent)
    assert len(rows) == len(QUESTIONS)
    assert rows[0]["prompt"] == prompt_for_database(QUESTIONS[0][0], tiny_db)
    assert rows[0]["completion"] == [{"role": "assistant", "content": QUESTIONS[0][1]}]


def test_strong_to_sft_falls_back_to_the_schema_column(tmp_path):
    from sense_hub.prompts import build_prompt

    record = {**strong_records("gone")[0], "schema": "CREATE TABLE t (a INTEGER)", "evidence": "a is age"}
    (row,) = strong_to_sft([record], db_root=tmp_path)
    assert row["prompt"] == build_prompt(record["question"], record["schema"], evidence="a is age")


def test_strong_to_sft_without_database_or_schema_names_the_record(tmp_path):
    with pytest.raises(TrainingDataError, match=r"strong record 1: database 'gone' not found.*--db_root"):
        strong_to_sft(strong_records("gone")[:1], db_root=tmp_path)


def test_weak_to_kto_labels_and_dedups(tiny_db):
    base = {"question_id": "q0", "db_id": "concert_singer", "question": QUESTIONS[0][0], "evidence": ""}
    weak = [
        {**base, "gold_sql": QUESTIONS[0][1], "sql": QUESTIONS[0][1], "correct": True},
        {**base, "gold_sql": QUESTIONS[0][1], "sql": "SELECT 1", "correct": False},
        {**base, "gold_sql": QUESTIONS[0][1], "sql": "SELECT 1 ", "correct": False},  # a duplicate
    ]
    rows = weak_to_kto(weak, db_root=tiny_db.parent.parent)
    assert [(r["completion"][0]["content"], r["label"]) for r in rows] == [
        (QUESTIONS[0][1], True),
        ("SELECT 1", False),
    ]
    from sense_hub.prompts import prompt_for_database

    expected = prompt_for_database(QUESTIONS[0][0], tiny_db)  # the one prompt, with the database's schema
    assert rows[0]["prompt"] == rows[1]["prompt"] == expected


def test_pairs_to_kto_splits_each_pair(tiny_db):
    rows = pairs_to_kto(pairs_records(tiny_db)[:2])
    assert [r["label"] for r in rows] == [True, False, True, False]
    assert rows[1]["completion"][0]["content"].startswith("SELECT age")


@pytest.mark.parametrize(
    ("columns", "kind"),
    [
        (["prompt", "chosen", "rejected", "db_id"], "pairs"),
        (["question", "sql", "gold_sql", "correct"], "weak"),
        (["question", "sql", "db_id"], "strong"),
        (["prompt", "completion"], "sft"),
        (["prompt", "completion", "label"], "kto"),
    ],
)
def test_record_kind(columns, kind):
    assert record_kind(columns) == kind


def test_record_kind_unknown_columns():
    with pytest.raises(TrainingDataError, match="cannot tell the record kind"):
        record_kind(["text"])


def test_load_records_names_the_bad_line(tmp_path):
    path = tmp_path / "strong.jsonl"
    path.write_text('{"question": "q", "sql": "SELECT 1"}\n{oops\n', encoding="utf-8")
    with pytest.raises(RecordError, match=r"strong.jsonl:2: not valid JSON"):
        load_records(path)
    with pytest.raises(TrainingDataError, match=r"strong.jsonl:2: not valid JSON"):
        load_records(path, error=TrainingDataError)  # what training raises for its data


def test_load_records_reads_a_hub_layout_folder(tmp_path, tiny_db):
    from sense_hub.hub import write_dataset_repo

    out = write_dataset_repo(pairs_records(tiny_db) * 3, kind="pairs", out_dir=tmp_path / "pairs")
    rows = load_records(out) + load_records(out, split="validation")
    assert len(rows) == 12 and record_kind(rows[0]) == "pairs"


def test_weak_records_cannot_train_dpo(tmp_path, tiny_db):
    weak = [{"question": "q", "sql": "SELECT 1", "gold_sql": "SELECT 1", "correct": True, "db_id": "x"}]
    script_args = SenseScriptArguments(dataset_name=str(write_jsonl(tmp_path / "weak.jsonl", weak)))
    from sense_hub.training import trainer_dataset

    with pytest.raises(TrainingDataError, match="sense-hub pairs"):
        trainer_dataset(script_args, target="preference")


# ---------------------------------------------------------------------------------------------------------------
# Eval summaries -> model-index results
# ---------------------------------------------------------------------------------------------------------------


def test_load_eval_results_reads_the_last_summary_line(tmp_path):
    capture = tmp_path / "eval.out"
    capture.write_text('progress...\n{"total": 200, "correct": 30, "execution_accuracy": 0.15, "metric": "spider"}\n')
    bare = tmp_path / "bird-dev.json"
    bare.write_text(json.dumps({"execution_accuracy": 42.0}))
    results = load_eval_results([f"spider-dev={capture}", str(bare)])
    assert [(r["dataset"], r["metric"], r["value"]) for r in results] == [
        ("spider-dev", "execution_accuracy", 0.15),
        ("bird-dev", "execution_accuracy", 0.42),
    ]


def test_load_eval_results_errors_name_the_file(tmp_path):
    with pytest.raises(TrainingDataError, match="no such file"):
        load_eval_results([str(tmp_path / "missing.json")])
    bad = tmp_path / "bad.json"
    bad.write_text('{"total": 3}')
    with pytest.raises(TrainingDataError, match=r"bad.json.*execution accuracy"):
        load_eval_results([str(bad)])


# ---------------------------------------------------------------------------------------------------------------
# Exact cDPO
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("epsilon", [0.7, 0.5, -0.1])
def test_cdpo_epsilon_out_of_range_says_the_fix(epsilon, tmp_path):
    with pytest.raises(ValueError, match=r"`cdpo_epsilon` must lie in \[0, 0.5\), got"):
        CDPOConfig(output_dir=str(tmp_path), cdpo_epsilon=epsilon, **CPU)


def test_cdpo_config_sets_trl_losses(tmp_path):
    config = CDPOConfig(output_dir=str(tmp_path), cdpo_epsilon=0.1, **CPU)
    assert config.loss_type == ["sigmoid", "robust"]
    assert config.loss_weights == pytest.approx([1.8, -0.8])
    assert config.label_smoothing == 0.1
    plain = CDPOConfig(output_dir=str(tmp_path), cdpo_epsilon=0.0, **CPU)
    assert (plain.loss_type, plain.loss_weights) == (["sigmoid"], None)
    ipo = CDPOConfig(output_dir=str(tmp_path), preference_loss="ipo", **CPU)
    assert ipo.loss_type == ["ipo"]
    with pytest.raises(ValueError, match="`preference_loss` must be one of"):
        CDPOConfig(output_dir=str(tmp_path), preference_loss="rlhf", **CPU)


def test_cdpo_settings_combine_to_the_cdpo_formula():
    """TRL's robust loss, as documented, weighted as in `cdpo_loss_settings`, is the cDPO loss."""
    import torch
    import torch.nn.functional as F

    delta = torch.linspace(-6, 6, 25)
    beta, eps = 0.5, 0.2
    _, weights, smoothing = cdpo_loss_settings(eps)
    sigmoid = -F.logsigmoid(beta * delta)
    robust = ((1 - smoothing) * sigmoid - smoothing * -F.logsigmoid(-beta * delta)) / (1 - 2 * smoothing)
    combined = weights[0] * sigmoid + weights[1] * robust
    torch.testing.assert_close(combined, cdpo_loss(delta, beta=beta, epsilon=eps))


def _completion_logps(model, batch):
    import torch

    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[:, :-1]
    logps = torch.log_softmax(logits.float(), dim=-1)
    targets = batch["input_ids"][:, 1:]
    token_logps = logps.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    return (token_logps * batch["completion_mask"][:, 1:]).sum(dim=1)


@pytest.mark.parametrize("epsilon", [0.0, 0.3])
def test_cdpo_loss_through_the_trainer_matches_the_formula(epsilon, tmp_path, tiny_db, tiny_model_dir):
    """The loss DPOTrainer computes on real log-probabilities equals -(1-e)logsig(b*d) - e*logsig(-b*d)."""
    import torch
    from datasets import Dataset
    from trl import ModelConfig

    beta = 0.5
    args = CDPOConfig(
        output_dir=str(tmp_path / "out"), cdpo_epsilon=epsilon, beta=beta, per_device_train_batch_size=4, **CPU
    )
    trainer = build_preference_trainer(
        SenseScriptArguments(),
        args,
        ModelConfig(model_name_or_path=str(tiny_model_dir)),
        train_dataset=Dataset.from_list(
            [{k: r[k] for k in ("prompt", "chosen", "rejected")} for r in pairs_records(tiny_db)]
        ),
    )
    model = trainer.model
    torch.manual_seed(1)
    with torch.no_grad():  # move the policy away from the reference so that the margins are not 0
        for param in model.parameters():
            param.add_(0.05 * torch.randn_like(param))
    model.eval()
    batch = next(iter(trainer.get_train_dataloader()))
    with torch.no_grad():
        loss = trainer.compute_loss(model, batch)
        policy = _completion_logps(model, batch)
        reference = _completion_logps(trainer.ref_model, batch)
    chosen, rejected = (policy - reference).chunk(2)
    delta = chosen - rejected
    assert delta.abs().min() > 1e-3  # a real margin, not the trivial policy == reference point
    expected = cdpo_loss(delta, beta=beta, epsilon=epsilon).mean()
    torch.testing.assert_close(loss, expected, rtol=1e-4, atol=1e-5)
    if epsilon:
        assert not torch.isclose(expected, cdpo_loss(delta, beta=beta, epsilon=0.0).mean(), rtol=1e-3)


def test_epsilon_changes_training(tmp_path, tiny_db, tiny_model_dir):
    """Same data, seed and steps: eps = 0 and eps = 0.3 give different losses and different weights."""
    from datasets import Dataset
    from trl import ModelConfig

    data = Dataset.from_list([{k: r[k] for k in ("prompt", "chosen", "rejected")} for r in pairs_records(tiny_db)])
    runs = {}
    for eps in (0.0, 0.3):
        args = CDPOConfig(
            output_dir=str(tmp_path / f"eps{eps}"),
            cdpo_epsilon=eps,
            beta=1.0,
            learning_rate=0.5,
            optim="sgd",
            lr_scheduler_type="constant",
            max_steps=2,
            per_device_train_batch_size=2,
            **CPU,
        )
        trainer = build_preference_trainer(
            SenseScriptArguments(), args, ModelConfig(model_name_or_path=str(tiny_model_dir)), train_dataset=data
        )
        trainer.train()
        losses = [log["loss"] for log in trainer.state.log_history if "loss" in log]
        weights = {n: p.detach().clone() for n, p in trainer.model.named_parameters()}
        runs[eps] = (losses, weights)
    (loss0, w0), (loss3, w3) = runs[0.0], runs[0.3]
    assert len(loss0) == len(loss3) == 2 and all(math.isfinite(x) for x in loss0 + loss3)
    assert loss0[0] == pytest.approx(math.log(2), abs=1e-4) == loss3[0]  # policy == reference at step 1
    assert loss0[1:] != pytest.approx(loss3[1:], abs=1e-5)
    assert max((w0[n] - w3[n]).abs().max().item() for n in w0) > 1e-5


@pytest.mark.parametrize("loss", ["ipo", "simpo", "orpo", "kto"])
def test_other_preference_losses_train(loss, tmp_path, tiny_db, tiny_model_dir):
    from trl import ModelConfig

    pairs = write_jsonl(tmp_path / "pairs.jsonl", pairs_records(tiny_db))
    args = CDPOConfig(
        output_dir=str(tmp_path / "out"), preference_loss=loss, max_steps=1, per_device_train_batch_size=2, **CPU
    )
    trainer = build_preference_trainer(
        SenseScriptArguments(dataset_name=str(pairs)), args, ModelConfig(model_name_or_path=str(tiny_model_dir))
    )
    expected = {"ipo": "DPOTrainer", "simpo": "CPOTrainer", "orpo": "ORPOTrainer", "kto": "KTOTrainer"}[loss]
    assert type(trainer).__name__ == expected
    assert math.isfinite(trainer.train().training_loss)


# ---------------------------------------------------------------------------------------------------------------
# The recipes, in-process, 2 steps on CPU
# ---------------------------------------------------------------------------------------------------------------


def run_recipe(name: str, config: dict, tmp_path: Path, monkeypatch, *extra: str) -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    recipe = load_recipe(name)
    argv = [f"recipes/{name}.py", "--config", str(path), *extra]
    monkeypatch.setattr(sys, "argv", argv)
    recipe.main(*recipe.make_parser().parse_args_and_config(argv[1:]))
    return Path(config["output_dir"])


def check_trained(out: Path, base: Path, *, stage: str) -> dict:
    assert (out / "model.safetensors").is_file()
    history = json.loads((out / "trainer_state.json").read_text())["log_history"]
    losses = [log["loss"] for log in history if "loss" in log]
    assert len(losses) == 2 and all(math.isfinite(x) for x in losses)
    before, after = read_weights(base), read_weights(out)
    assert any((before[n] - after[n]).abs().max() > 0 for n in before)
    card = (out / "README.md").read_text()
    assert str(base) in card  # a local base model is named in the text (the YAML `base_model` takes Hub ids only)
    assert f"recipes/{stage}.py" in card
    from huggingface_hub import ModelCard

    return {"card": ModelCard(card), "losses": losses}


def sft_config(tmp_path, tiny_db, tiny_model_dir, name: str, **overrides) -> dict:
    """A two-step CPU SFT config on strong records over the tiny database; `overrides` replace or add keys."""
    strong = write_jsonl(tmp_path / "strong.jsonl", strong_records())
    config = {
        "model_name_or_path": str(tiny_model_dir),
        "dataset_name": str(strong),
        "db_root": str(tiny_db.parent.parent),
        "output_dir": str(tmp_path / name),
        "max_steps": 2,
        "per_device_train_batch_size": 2,
        "max_length": 512,
        **CPU,
    }
    return {**config, **overrides}


def test_sft_recipe_two_steps(tmp_path, tiny_db, tiny_model_dir, monkeypatch):
    summary = tmp_path / "spider.json"
    summary.write_text(json.dumps({"total": 4, "correct": 1, "execution_accuracy": 0.25}))
    config = sft_config(tmp_path, tiny_db, tiny_model_dir, "sft", learning_rate=1e-3)
    out = run_recipe("sft", config, tmp_path, monkeypatch, "--eval_summary", f"spider-dev={summary}")
    result = check_trained(out, tiny_model_dir, stage="sft")
    card = result["card"]
    assert "sft" in card.data.tags
    (ev,) = card.data.eval_results
    assert (ev.dataset_name, ev.metric_type, ev.metric_value) == ("spider-dev", "execution_accuracy", 0.25)
    assert "learning_rate" in card.text and "0.001" in card.text


def test_max_train_minutes_stops_after_the_step_that_passes_it(tmp_path, tiny_db, tiny_model_dir, monkeypatch):
    config = sft_config(tmp_path, tiny_db, tiny_model_dir, "sft", max_steps=5, max_train_minutes=1e-6)
    out = run_recipe("sft", config, tmp_path, monkeypatch)
    assert (out / "model.safetensors").is_file()
    state = json.loads((out / "trainer_state.json").read_text())
    assert state["global_step"] == 1 and state["max_steps"] == 5


def test_cdpo_recipe_two_steps_and_push_to_hub(tmp_path, tiny_db, tiny_model_dir, monkeypatch):
    from hub_server import HubServer

    pairs = write_jsonl(tmp_path / "pairs.jsonl", pairs_records(tiny_db))
    config = {
        "model_name_or_path": str(tiny_model_dir),
        "dataset_name": str(pairs),
        "output_dir": str(tmp_path / "cdpo"),
        "max_steps": 2,
        "per_device_train_batch_size": 2,
        "learning_rate": 1e-3,
        "cdpo_epsilon": 0.1,
        **CPU,
    }
    extra = ["--precompute_ref_log_probs", "true", "--push_to_hub", "--hub_model_id", "sense/sense-cdpo-tiny"]
    with HubServer() as hub:
        hub.patch_client(monkeypatch, cache_dir=tmp_path / "hf-cache")
        out = run_recipe("cdpo", config, tmp_path, monkeypatch, *extra)
        files = hub.files("sense/sense-cdpo-tiny", repo_type="model")
    card = check_trained(out, tiny_model_dir, stage="cdpo")["card"]
    assert "cdpo" in card.data.tags
    assert "cdpo_epsilon" in card.text and "robust" in card.text
    assert {"README.md", "model.safetensors", "config.json", "tokenizer.json"} <= set(files)
    assert files["README.md"].decode() == (out / "README.md").read_text()


def lora_sft_config(tmp_path, tiny_db, tiny_model_dir) -> dict:
    """A 2-step LoRA SFT recipe config on the tiny model (merged after training)."""
    strong = write_jsonl(tmp_path / "strong.jsonl", strong_records())
    return {
        **CPU,
        "model_name_or_path": str(tiny_model_dir),
        "dataset_name": str(strong),
        "db_root": str(tiny_db.parent.parent),
        "output_dir": str(tmp_path / "lora"),
        "max_steps": 2,
        "per_device_train_batch_size": 2,
        "learning_rate": 1e-2,
        "use_peft": True,
        "lora_r": 4,
        "lora_alpha": 8,
        "lora_target_modules": "all-linear",
        "merge_lora": True,
    }


def test_sft_recipe_with_lora_merges_into_a_plain_model(tmp_path, tiny_db, tiny_model_dir, monkeypatch):
    config = lora_sft_config(tmp_path, tiny_db, tiny_model_dir)
    out = run_recipe("sft", config, tmp_path, monkeypatch)
    check_trained(out, tiny_model_dir, stage="sft")
    assert not (out / "adapter_config.json").exists()
    from transformers import AutoModelForCausalLM

    assert (
        AutoModelForCausalLM.from_pretrained(out).num_parameters()
        == AutoModelForCausalLM.from_pretrained(tiny_model_dir).num_parameters()
    )


@pytest.mark.parametrize("recipe", ["sft", "cdpo"])
def test_prompts_longer_than_max_length_fail_clearly(recipe, tmp_path, tiny_db, tiny_model_dir, monkeypatch):
    """TRL drops examples whose prompt fills max_length; with none left the error names the fix, not torch's."""
    records = strong_records() if recipe == "sft" else pairs_records(tiny_db)
    data = write_jsonl(tmp_path / "data.jsonl", records)
    config = {
        "model_name_or_path": str(tiny_model_dir),
        "dataset_name": str(data),
        "db_root": str(tiny_db.parent.parent),
        "output_dir": str(tmp_path / recipe),
        "max_steps": 1,
        "max_length": 16,
        **CPU,
    }
    with pytest.raises(TrainingDataError, match=r"data\.jsonl: every one of the 4 train examples .*max_length=16"):
        run_recipe(recipe, config, tmp_path, monkeypatch)
    assert not (tmp_path / recipe / "model.safetensors").exists()


def test_a_lora_sft_run_resumes_from_its_last_checkpoint(tmp_path, tiny_db, tiny_model_dir, monkeypatch, caplog):
    """A long CPU run (the SENSE experiment's arms) checkpoints every N steps; a rerun with
    `resume_from_checkpoint` goes on from the checkpoint's step instead of starting over."""
    config = {**lora_sft_config(tmp_path, tiny_db, tiny_model_dir), "save_strategy": "steps", "save_steps": 2}
    out = run_recipe("sft", config, tmp_path, monkeypatch)
    assert (out / "checkpoint-2").is_dir()
    config.update(max_steps=4, resume_from_checkpoint=str(out / "checkpoint-2"))
    caplog.clear()
    with caplog.at_level("INFO", logger="sense_hub.training"):
        out = run_recipe("sft", config, tmp_path, monkeypatch)
    trained = sorted(
        {int(m.group(1)) for r in caplog.records if (m := re.match(r'step (\d+): \{"loss"', r.getMessage()))}
    )
    assert trained == [3, 4]  # steps 1-2 came from the checkpoint, not trained again
    assert json.loads((out / "trainer_state.json").read_text())["global_step"] == 4
    assert (out / "model.safetensors").is_file() and (out / "README.md").is_file()


def test_questions_load_from_a_dataset_folder_like_every_stage_s_data(tmp_path, tiny_db):
    """`benchmarks.load_examples` (SPFT's questions, `predict --input`) reads what SFT reads: a Hub-layout folder."""
    from sense_hub.benchmarks import load_examples
    from sense_hub.hub import write_dataset_repo

    strong = [
        {
            "id": f"s{i}",
            "domain": "music",
            "difficulty": "easy",
            "db_id": "concert_singer",
            "schema": "",
            "question": f"How many singers? {i}",
            "sql": "SELECT count(*) FROM singer",
            "evidence": "",
            "generator": "human",
            "verification": "none",
        }
        for i in range(4)
    ]
    out = write_dataset_repo(strong, kind="strong", out_dir=tmp_path / "strong")
    examples = list(load_examples(out)) + list(load_examples(out, split="validation"))
    assert sorted(e.question_id for e in examples) == ["s0", "s1", "s2", "s3"]
    assert {e.sql for e in examples} == {"SELECT count(*) FROM singer"}
