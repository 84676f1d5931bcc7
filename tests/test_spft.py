"""SPFT-SQL: the error-driven loss, the trainer, the model base and the round driver."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from sense_hub.evaluation import judge
from sense_hub.formats import PAIRS_COLUMNS, validate_record
from sense_hub.spft import (
    REWARD_COLUMN,
    RoundModel,
    SPFTConfig,
    SPFTTrainer,
    build_round_records,
    execution_reward,
    load_round_state,
    rounds_table,
    select_models,
    spft_loss,
)

RECIPES = Path(__file__).resolve().parents[1] / "recipes"

# ---------------------------------------------------------------------------------------------------------------
# The loss on known log-probabilities
# ---------------------------------------------------------------------------------------------------------------

# Sample A: policy log-ratio on gold = -10 - (-12) = 2, on the opponent SQL = -8 - (-7) = -1, so the margin is 3.
# With beta = 0.1: loss = log(1 + exp(-0.3)) = 0.5543552444685271,
#                  d loss / d chosen_logps = -beta * sigmoid(-0.3) = -0.0425557483188341 (and + for rejected).
LOSS_A = 0.5543552444685271
GRAD_A = -0.0425557483188341


def _logps(*values: float) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float64, requires_grad=True)


def _loss(rewards, *, beta=0.1):
    chosen, rejected = _logps(-10.0, -10.0), _logps(-8.0, -8.0)
    losses = spft_loss(
        chosen_logps=chosen,
        rejected_logps=rejected,
        ref_chosen_logps=torch.tensor([-12.0, -12.0], dtype=torch.float64),
        ref_rejected_logps=torch.tensor([-7.0, -7.0], dtype=torch.float64),
        rewards=torch.tensor(rewards, dtype=torch.float64),
        beta=beta,
    )
    losses.sum().backward()
    return losses.detach(), chosen.grad, rejected.grad


def test_spft_loss_matches_hand_computed_spin_loss_for_wrong_opponent_sql():
    losses, chosen_grad, rejected_grad = _loss([1.0, 1.0])
    assert losses.tolist() == pytest.approx([LOSS_A, LOSS_A], abs=1e-12)
    assert chosen_grad.tolist() == pytest.approx([GRAD_A, GRAD_A], abs=1e-12)
    assert rejected_grad.tolist() == pytest.approx([-GRAD_A, -GRAD_A], abs=1e-12)


def test_correct_opponent_sql_gets_zero_loss_and_zero_gradient():
    # Same two samples; the second opponent SQL returns the gold result (reward 0). Plain SPIN would charge it
    # LOSS_A and push its log-prob down; the error-driven loss leaves it alone.
    losses, chosen_grad, rejected_grad = _loss([1.0, 0.0])
    assert losses.tolist() == pytest.approx([LOSS_A, 0.0], abs=1e-12)
    assert chosen_grad.tolist() == pytest.approx([GRAD_A, 0.0], abs=1e-12)
    assert rejected_grad.tolist() == pytest.approx([-GRAD_A, 0.0], abs=1e-12)
    spin_losses, _, spin_rejected_grad = _loss([1.0, 1.0])
    assert spin_losses[1].item() == pytest.approx(LOSS_A) and spin_rejected_grad[1].item() > 0


def test_spft_loss_negative_margin_and_beta():
    # margin = (-5 - -4) - (-3 - -6) = -4; beta = 0.5: loss = log(1 + exp(2)) = 2.1269280110429727.
    losses = spft_loss(
        chosen_logps=torch.tensor([-5.0]),
        rejected_logps=torch.tensor([-3.0]),
        ref_chosen_logps=torch.tensor([-4.0]),
        ref_rejected_logps=torch.tensor([-6.0]),
        rewards=torch.tensor([1.0]),
        beta=0.5,
    )
    assert losses.item() == pytest.approx(math.log1p(math.exp(2.0)), rel=1e-6)
    assert losses.item() == pytest.approx(2.1269280110429727, rel=1e-6)


def test_execution_reward():
    assert execution_reward(correct=True) == 0.0
    assert execution_reward(correct=False) == 1.0
    assert execution_reward(correct=True, error_driven=False) == 1.0  # plain SPIN


# ---------------------------------------------------------------------------------------------------------------
# Model base
# ---------------------------------------------------------------------------------------------------------------


def test_select_models_best_is_main_weakest_is_opponent():
    base = [RoundModel(0, "m0", 0.10), RoundModel(1, "m1", 0.30), RoundModel(2, "m2", 0.05)]
    main, opponent = select_models(base)
    assert (main.iteration, opponent.iteration) == (1, 2)


def test_select_models_single_model_plays_itself_and_ties():
    main, opponent = select_models([RoundModel(0, "m0", 0.0)])
    assert main.iteration == opponent.iteration == 0
    main, opponent = select_models([RoundModel(0, "m0", 0.2), RoundModel(1, "m1", 0.2)])
    assert (main.iteration, opponent.iteration) == (1, 0)
    with pytest.raises(ValueError, match="empty"):
        select_models([])


# ---------------------------------------------------------------------------------------------------------------
# Round data: labelled by real execution
# ---------------------------------------------------------------------------------------------------------------


class _Ex:
    def __init__(self, qid, sql):
        self.question_id, self.db_id, self.question, self.sql, self.evidence = qid, "concert_singer", "q?", sql, ""


def test_build_round_records_weights_by_execution(tiny_db):
    examples = [
        _Ex("q0", "SELECT count(*) FROM singer"),
        _Ex("q1", "SELECT name FROM singer WHERE age > 40"),
        _Ex("q2", "SELECT nope FROM singer"),  # gold fails: left out
        _Ex("q3", "SELECT count(*) FROM concert"),
    ]
    opponent = [
        "SELECT count(singer_id) FROM singer",  # same result: correct
        "SELECT name FROM singer WHERE age > 30",  # wrong result
        "SELECT 1",
        "SELEC count(*) FROM concert",  # syntax error
    ]
    verdicts = judge([(tiny_db, e.sql, p) for e, p in zip(examples, opponent, strict=True)], workers=0)
    prompts = [[{"role": "user", "content": e.question_id}] for e in examples]
    rows, stats = build_round_records(examples, prompts=prompts, opponent_sql=opponent, verdicts=verdicts)
    assert stats == {"examples": 3, "opponent_correct": 1, "opponent_wrong": 2, "gold_error": 1}
    assert [r["question_id"] for r in rows] == ["q0", "q1", "q3"]
    assert [r[REWARD_COLUMN] for r in rows] == [0.0, 1.0, 1.0]
    assert [r["rejected_error"] for r in rows] == ["", "wrong_result", "syntax"]
    assert rows[1]["chosen"] == [{"role": "assistant", "content": examples[1].sql}]
    assert rows[1]["rejected"] == [{"role": "assistant", "content": opponent[1]}]
    for row in rows:
        validate_record("pairs", row)
        assert list(row) == [*PAIRS_COLUMNS, REWARD_COLUMN]
    spin_rows, _ = build_round_records(
        examples, prompts=prompts, opponent_sql=opponent, verdicts=verdicts, error_driven=False
    )
    assert [r[REWARD_COLUMN] for r in spin_rows] == [1.0, 1.0, 1.0]


def test_rounds_table():
    table = rounds_table(
        [
            {"round": 0, "main": None, "opponent": None, "opponent_wrong": None, "accuracy": 0.125},
            {"round": 1, "main": 0, "opponent": 0, "opponent_wrong": 7, "opponent_correct": 1, "accuracy": 0.25},
        ]
    )
    assert "| 0 | – | – | – | 12.5 |" in table
    assert "| 1 | 0 | 0 | 7 / 1 | 25.0 |" in table


# ---------------------------------------------------------------------------------------------------------------
# The trainer: a real TRL training loop on the tiny model
# ---------------------------------------------------------------------------------------------------------------


def _trainer(tiny_model_dir, tmp_path, rewards, **overrides):
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer

    prompt = [{"role": "user", "content": "How many singers are there?"}]
    rows = [
        {
            "prompt": prompt,
            "chosen": [{"role": "assistant", "content": "SELECT count(*) FROM singer"}],
            "rejected": [{"role": "assistant", "content": f"SELECT name FROM singer WHERE age > {30 + i}"}],
            REWARD_COLUMN: reward,
        }
        for i, reward in enumerate(rewards)
    ]
    args = SPFTConfig(
        output_dir=str(tmp_path / "out"),
        max_steps=2,
        per_device_train_batch_size=2,
        learning_rate=1e-2,
        use_cpu=True,
        bf16=False,
        gradient_checkpointing=False,
        report_to="none",
        logging_steps=1,
        save_strategy="no",
        **overrides,
    )
    return SPFTTrainer(
        model=AutoModelForCausalLM.from_pretrained(tiny_model_dir),
        ref_model=AutoModelForCausalLM.from_pretrained(tiny_model_dir),
        args=args,
        train_dataset=Dataset.from_list(rows),
        processing_class=AutoTokenizer.from_pretrained(tiny_model_dir),
    )


def _params(model):
    return {n: p.detach().clone() for n, p in model.named_parameters()}


@pytest.mark.parametrize("precompute", [False, True])
def test_trainer_wrong_opponent_sql_trains(tiny_model_dir, tmp_path, precompute):
    trainer = _trainer(tiny_model_dir, tmp_path, [1.0, 1.0, 1.0, 1.0], precompute_ref_log_probs=precompute)
    before = _params(trainer.model)
    trainer.train()
    logs = [h for h in trainer.state.log_history if "loss" in h]
    assert logs and all(math.isfinite(h["loss"]) and h["loss"] > 0 for h in logs)
    assert logs[0]["spft/execution_reward"] == 1.0
    # step 1: policy == reference, so the margin is 0 and the loss is log 2
    assert logs[0]["loss"] == pytest.approx(math.log(2), rel=1e-3)
    after = _params(trainer.model)
    assert any(not torch.equal(before[n], after[n]) for n in before)


def test_trainer_correct_opponent_sql_leaves_model_unchanged(tiny_model_dir, tmp_path):
    # Every opponent sample is correct (reward 0): the error-driven loss is 0 with 0 gradient, so the weights
    # stay exactly as they were. Plain SPIN (the test above) moves them on the same data.
    trainer = _trainer(tiny_model_dir, tmp_path, [0.0, 0.0, 0.0, 0.0])
    before = _params(trainer.model)
    trainer.train()
    logs = [h for h in trainer.state.log_history if "loss" in h]
    assert logs and all(h["loss"] == 0.0 for h in logs)
    after = _params(trainer.model)
    assert all(torch.equal(before[n], after[n]) for n in before)


def test_spft_config_validation(tmp_path):
    with pytest.raises(ValueError, match="rounds"):
        SPFTConfig(output_dir=str(tmp_path), rounds=0, use_cpu=True, report_to="none")
    with pytest.raises(ValueError, match="metric"):
        SPFTConfig(output_dir=str(tmp_path), metric="exact", use_cpu=True, report_to="none")


# ---------------------------------------------------------------------------------------------------------------
# The driver: two rounds on the tiny model from the command line, then resume
# ---------------------------------------------------------------------------------------------------------------


def _questions(path: Path, n: int) -> Path:
    base = [
        ("How many singers are there?", "SELECT count(*) FROM singer"),
        ("How many concerts are there?", "SELECT count(*) FROM concert"),
        ("List the names of singers from France.", "SELECT name FROM singer WHERE country = 'France'"),
        ("What is the average age of singers?", "SELECT avg(age) FROM singer"),
        ("Which concerts were held in 2014?", "SELECT concert_name FROM concert WHERE year = 2014"),
        ("What is the name of the oldest singer?", "SELECT name FROM singer ORDER BY age DESC LIMIT 1"),
    ]
    with path.open("w") as fh:
        for i in range(n):
            q, sql = base[i % len(base)]
            fh.write(json.dumps({"question_id": f"t-{i}", "db_id": "concert_singer", "question": q, "sql": sql}))
            fh.write("\n")
    return path


def _config_yaml(path: Path, model: Path, out: Path) -> Path:
    path.write_text(
        f"model_name_or_path: {model}\n"
        f"output_dir: {out}\n"
        "rounds: 2\n"
        "max_steps: 2\n"
        "per_device_train_batch_size: 2\n"
        "learning_rate: 1.0e-3\n"
        "max_new_tokens: 8\n"
        "generation_batch_size: 8\n"
        "execution_workers: 0\n"
        "use_cpu: true\n"
        "bf16: false\n"
        "gradient_checkpointing: false\n"
        "report_to: none\n"
        "save_strategy: 'no'\n"
        "logging_steps: 1\n"
    )
    return path


def test_two_rounds_from_the_command_line_then_resume(tiny_model_dir, tiny_db, tmp_path, capsys):
    from sense_hub.cli import main

    train = _questions(tmp_path / "train.jsonl", 4)
    held_out = _questions(tmp_path / "heldout.jsonl", 2)
    out = tmp_path / "run"
    config = _config_yaml(tmp_path / "spft.yaml", tiny_model_dir, out)
    argv = ["spft", "--config", str(config), "--dataset_name", str(train), "--eval_dataset_name", str(held_out)]
    argv += ["--db_root", str(tiny_db.parent.parent), "--rounds", "1"]
    assert main(argv) == 0

    state1 = load_round_state(out, 1)
    assert set(state1["stages"]) == {"select", "generate", "train", "evaluate"}
    assert state1["stages"]["select"]["main"]["iteration"] == state1["stages"]["select"]["opponent"]["iteration"] == 0
    assert state1["stages"]["generate"]["examples"] == 4
    rows = [json.loads(line) for line in (out / "round_01" / "data.jsonl").open()]
    assert len(rows) == 4 and {r[REWARD_COLUMN] for r in rows} <= {0.0, 1.0}
    assert (out / "round_01" / "model" / "config.json").is_file()

    # Resume with two rounds: rounds 0 and 1 are done and must not run again (none of their files is rewritten).
    def snapshot() -> dict[str, int]:
        return {
            str(p.relative_to(out)): p.stat().st_mtime_ns
            for r in ("round_00", "round_01")
            for p in sorted((out / r).rglob("*"))
            if p.is_file()
        }

    before = snapshot()
    argv[-1] = "2"
    assert main(argv) == 0
    assert snapshot() == before
    state2 = load_round_state(out, 2)
    assert set(state2["stages"]) == {"select", "generate", "train", "evaluate"}

    results = json.loads((out / "spft_results.json").read_text())
    accuracies = [r["accuracy"] for r in results["rounds"]]
    # each round's accuracy is the one its evaluation stage recorded, over the 2 held-out questions
    recorded = [load_round_state(out, r)["stages"]["evaluate"]["accuracy"] for r in range(3)]
    assert accuracies == recorded and all(a * 2 in (0, 1, 2) for a in accuracies)
    assert results["best"]["accuracy"] == max(accuracies)
    stdout = capsys.readouterr().out
    assert "| round |" in stdout and json.loads(stdout.strip().splitlines()[-1])["best"]
    card_dir = Path(results["best"]["path"]) if results["best"]["iteration"] > 0 else out
    card = (card_dir / "README.md").read_text()
    assert "model-index" in card and "SPFT-SQL self-play rounds" in card
    from huggingface_hub import ModelCard

    from sense_hub.fingerprints import read_expected_fingerprints

    # the held-out score says what it ran on, as `sense-hub eval --expect-fingerprints README.md` reads it
    assert read_expected_fingerprints(card_dir / "README.md")["databases"]
    block = ModelCard(card).data.eval_results[0].dataset_args["fingerprints"]
    assert set(block) == {"algorithm", "databases", "databases_combined", "gold"}  # no predictions file: in-process


@pytest.mark.parametrize("name", ["smollm2-135m", "qwen2.5-coder-7b"])
def test_recipe_yaml_parses(name, tmp_path):
    import yaml

    from sense_hub.commands.spft import make_parser

    values = yaml.safe_load((RECIPES / name / "spft.yaml").read_text())
    values.update(output_dir=str(tmp_path), use_cpu=True, bf16=False, report_to="none")
    values.pop("deepspeed", None)
    script_args, training_args, model_args = make_parser().parse_dict(values)
    assert isinstance(training_args, SPFTConfig)
    assert training_args.rounds >= 2 and training_args.error_driven
    assert model_args.model_name_or_path


def _run_with_fixed_opponent(tiny_model_dir, tiny_db, tmp_path, monkeypatch, **config):
    """One round where every SQL the models write is `SELECT count(*) FROM singer` (right for every question)."""
    from trl import ModelConfig

    from sense_hub import spft

    tmp_path.mkdir(parents=True, exist_ok=True)
    questions = tmp_path / "q.jsonl"
    questions.write_text(
        "".join(
            json.dumps(
                {
                    "db_id": "concert_singer",
                    "question": f"How many singers? ({i})",
                    "sql": "SELECT count(*) FROM singer",
                }
            )
            + "\n"
            for i in range(4)
        )
    )
    monkeypatch.setattr(
        spft, "generate_sql", lambda path, prompts, **k: ["SELECT count(*) FROM singer"] * len(prompts)
    )

    class Fixed:  # the held-out score loads its generator (`evaluation.score_examples`): the same fixed answer
        name = "fixed"

        def generate(self, prompts, config):
            return [["SELECT count(*) FROM singer"] * config.n for _ in prompts]

    monkeypatch.setattr("sense_hub.generation.load_generator", lambda *a, **k: Fixed())
    script_args = spft.SPFTScriptArguments(
        dataset_name=str(questions), db_root=str(tiny_db.parent.parent), eval_size=1
    )
    training_args = SPFTConfig(
        output_dir=str(tmp_path / "out"),
        rounds=1,
        max_steps=2,
        per_device_train_batch_size=2,
        learning_rate=1e-2,
        use_cpu=True,
        bf16=False,
        gradient_checkpointing=False,
        report_to="none",
        save_strategy="no",
        execution_workers=0,
        **config,
    )
    spft.run_spft(script_args, training_args, ModelConfig(model_name_or_path=str(tiny_model_dir)))
    return load_round_state(tmp_path / "out", 1)["stages"]


def _same_weights(a: Path, b: Path) -> bool:
    from safetensors.torch import load_file

    wa, wb = load_file(a / "model.safetensors"), load_file(b / "model.safetensors")
    return wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


def test_round_with_only_correct_opponent_sql_leaves_the_model_as_it_was(
    tiny_model_dir, tiny_db, tmp_path, monkeypatch
):
    # Labels come from execution, go through data.jsonl into the trainer: all rewards 0, so the trained model has
    # exactly the starting weights (plain SPIN moves them on the same rows: see the trainer tests above).
    stages = _run_with_fixed_opponent(tiny_model_dir, tiny_db, tmp_path, monkeypatch)
    assert stages["generate"]["opponent_correct"] == 3 and stages["generate"]["opponent_wrong"] == 0
    assert stages["train"]["rows"] == 3
    assert _same_weights(Path(stages["train"]["model"]), tiny_model_dir)


def test_round_skips_training_when_every_opponent_sql_is_correct(tiny_model_dir, tiny_db, tmp_path, monkeypatch):
    stages = _run_with_fixed_opponent(
        tiny_model_dir, tiny_db, tmp_path, monkeypatch, skip_correct_opponent_samples=True
    )
    assert stages["train"] == {"model": str(tiny_model_dir), "rows": 0}
    assert stages["evaluate"]["accuracy"] == 1.0


def test_train_round_with_lora_saves_a_merged_model(tiny_model_dir, tmp_path):
    from transformers import AutoModelForCausalLM
    from trl import ModelConfig

    from sense_hub.spft import train_round

    rows = [
        {
            "prompt": [{"role": "user", "content": "How many singers are there?"}],
            "chosen": [{"role": "assistant", "content": "SELECT count(*) FROM singer"}],
            "rejected": [{"role": "assistant", "content": "SELECT name FROM singer"}],
            REWARD_COLUMN: 1.0,
        }
    ] * 2
    args = SPFTConfig(
        output_dir=str(tmp_path / "unused"),
        max_steps=2,
        per_device_train_batch_size=2,
        learning_rate=5e-2,
        use_cpu=True,
        bf16=False,
        gradient_checkpointing=False,
        report_to="none",
        save_strategy="no",
    )
    model_args = ModelConfig(
        model_name_or_path=str(tiny_model_dir), use_peft=True, lora_r=4, lora_alpha=8,
        lora_target_modules=["q_proj", "v_proj"],
    )  # fmt: skip
    model_dir = train_round(
        main_path=str(tiny_model_dir), opponent_path=str(tiny_model_dir), rows=rows,
        out_dir=tmp_path / "round_01", training_args=args, model_args=model_args,
    )  # fmt: skip
    assert not (model_dir / "adapter_config.json").exists()
    merged = AutoModelForCausalLM.from_pretrained(model_dir)
    assert not _same_weights(model_dir, tiny_model_dir)
    assert merged.config.num_hidden_layers == 2


def test_the_private_trl_methods_spft_overrides_are_still_there():
    """`SPFTTrainer` overrides private `DPOTrainer` methods (pyproject bounds `trl` below its next minor version);
    a TRL that renames one would silently train with plain DPO, so this fails loudly instead."""
    import inspect

    import trl
    from trl import DPOTrainer

    expected = {
        "_compute_loss": ["self", "model", "inputs", "return_outputs"],
        "_set_signature_columns_if_needed": ["self"],
        "compute_ref_log_probs": ["self", "model", "inputs"],
    }
    for name, parameters in expected.items():
        method = getattr(DPOTrainer, name, None)
        assert method is not None, f"trl {trl.__version__}: DPOTrainer.{name} is gone; sense_hub/spft.py overrides it"
        assert list(inspect.signature(method).parameters) == parameters, f"trl {trl.__version__}: {name} changed"
    assert "self._compute_loss(" in inspect.getsource(DPOTrainer.compute_loss), "compute_loss no longer calls it"
    assert SPFTTrainer._compute_loss is not DPOTrainer._compute_loss
