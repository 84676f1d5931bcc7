"""GRPO with execution rewards (Arctic-Text2SQL-R1 / SQL-R1 style) over TRL's `GRPOTrainer`.

`recipes/grpo.py` parses `(GRPOScriptArguments, trl.GRPOConfig, trl.ModelConfig)` with `trl.TrlParser` and calls
`run_grpo`. The pieces:

- `grpo_records`: any sense-hub source with a question, its database and gold SQL (strong records, weak records,
  a benchmark's JSON/JSONL) -> `{"prompt", "db_id", "gold_sql", "question"}` rows, one per question, with the one
  prompt of `sense_hub.prompts` (schema from `<db_root>/<db_id>/<db_id>.sqlite`, else the record's `schema`).
- `build_grpo_trainer`: the dataset, the reward functions of `sense_hub.rewards` by name, the trainer.
- `run_grpo`: train, save safetensors, measure held-out EX (optional), write the model card with the reward curve
  and the EX in its `model-index`, push when asked.

This module imports `trl` at import time (the script-arguments dataclass extends TRL's); only training code
imports it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trl import GRPOConfig, ModelConfig

from sense_hub.compute import compact_lm_head
from sense_hub.records import load_records
from sense_hub.rewards import REWARDS, ExecutionScorer, get_reward_funcs
from sense_hub.training import (
    SenseScriptArguments,
    TrainingDataError,
    default_db_root,
    load_eval_results,
    model_init_kwargs,
    peft_and_quantization,
    resolve_model_name,
    save_trained_model,
    strong_to_sft,
    train,
    write_training_card,
)

__all__ = [
    "GRPOScriptArguments",
    "build_grpo_dataset",
    "build_grpo_trainer",
    "grpo_records",
    "heldout_execution_accuracy",
    "reward_curve",
    "run_grpo",
]

logger = logging.getLogger(__name__)

RESULTS_FILE = "grpo_results.json"
CURVE_FILE = "reward_curve.png"


@dataclass
class GRPOScriptArguments(SenseScriptArguments):
    """`SenseScriptArguments` plus the execution rewards and the held-out evaluation.

    `dataset_name` holds records with a question, `db_id` and gold SQL: strong records (`sql`), weak records
    (`gold_sql`; one row per question), or a benchmark's JSON/JSONL (`query` / `SQL`).
    """

    reward_funcs: list[str] = field(
        default_factory=lambda: ["arctic"],
        metadata={
            "help": "Reward functions by name (weights: GRPOConfig's `reward_weights`, one per name): "
            + "; ".join(f"{k}: {v}" for k, v in REWARDS.items())
        },
    )
    metric: str = field(
        default="strict",
        metadata={"help": "How results are compared (sense_hub.matching).", "choices": ["spider", "bird", "strict"]},
    )
    keep_distinct: bool = field(default=False, metadata={"help": "Keep DISTINCT under the spider metric."})
    execution_timeout: float = field(default=10.0, metadata={"help": "Seconds per query (gold or completion)."})
    execution_workers: int | None = field(
        default=None,
        metadata={
            "help": "Executor worker processes for the rewards: 0 in the trainer's process, N forked (crash-isolated), "
            "unset: automatic (in-process for GRPO-sized batches; the timeout interrupts runaway queries either way)."
        },
    )
    heldout_samples: int = field(
        default=0,
        metadata={
            "help": "After training, the execution accuracy of greedy SQL on the first N questions of the dataset's "
            "validation split (`dataset_test_split`) goes into grpo_results.json and the card's model-index "
            "(0: off; -1: the whole split)."
        },
    )
    heldout_baseline: bool = field(
        default=False,
        metadata={"help": "Also measure the base model's held-out EX before training (for the before/after)."},
    )
    heldout_max_new_tokens: int = field(default=256, metadata={"help": "Tokens generated per held-out question."})
    heldout_repair_rounds: int = field(
        default=0,
        metadata={
            "help": "Repair held-out answers that do not run before scoring them (budget greedy+repair; 0: plain "
            "greedy, the published budget)."
        },
    )

    def __post_init__(self):
        if hasattr(super(), "__post_init__"):
            super().__post_init__()
        get_reward_funcs(self.reward_funcs, db_root=".", metric=self.metric, timeout=self.execution_timeout)
        if self.execution_workers is not None and self.execution_workers < 0:
            raise ValueError(f"`execution_workers` must be >= 0 or unset, got {self.execution_workers}")
        if self.heldout_samples < -1:
            raise ValueError(f"`heldout_samples` must be -1 (all), 0 (off) or a count, got {self.heldout_samples}")


# ---------------------------------------------------------------------------------------------------------------
# Records -> GRPO rows
# ---------------------------------------------------------------------------------------------------------------

_GOLD_KEYS = ("gold_sql", "sql", "query", "SQL")  # weak records carry the candidate in `sql`: gold_sql first


def _gold_of(record: Mapping[str, Any]) -> str | None:
    for key in _GOLD_KEYS:
        value = record.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return None


def grpo_records(records: Iterable[Mapping[str, Any]], *, db_root: str | Path | None = None) -> list[dict]:
    """Records with a question, `db_id` and gold SQL -> GRPO rows `{"prompt", "db_id", "gold_sql", "question"}`.

    Questions repeated (weak records have one row per sample) are kept once. The prompt is `sense_hub.prompts`'
    one prompt (through `training.strong_to_sft`), so GRPO trains on the prompt SFT, evaluation and the Space use.

    Args:
        records: strong records (`sql`), weak records (`gold_sql`), or benchmark records (`query` / `SQL`).
        db_root: folder with `<db_id>/<db_id>.sqlite` (schema for the prompt); else the record's `schema`.

    Raises:
        TrainingDataError: a record without a question, `db_id` or gold SQL (named by its position), or whose
            schema cannot be found.
    """
    strong, meta, seen = [], [], set()
    for i, record in enumerate(records, 1):
        question, db_id, gold = record.get("question"), record.get("db_id"), _gold_of(record)
        missing = [name for name, value in (("question", question), ("db_id", db_id), ("gold SQL", gold)) if not value]
        if missing:
            raise TrainingDataError(
                f"record {i}: missing {', '.join(missing)}; GRPO needs a question, its db_id and the gold SQL "
                f"(`sql` in strong records, `gold_sql` in weak ones, `query` in Spider files)"
            )
        key = (db_id, question, record.get("evidence") or "")
        if key in seen:
            continue
        seen.add(key)
        strong.append(
            {
                "question": question,
                "sql": gold,
                "db_id": db_id,
                "schema": record.get("schema") or "",
                "evidence": record.get("evidence") or "",
            }
        )
        meta.append((db_id, gold, question))
    rows = strong_to_sft(strong, db_root=db_root)
    return [
        {"prompt": row["prompt"], "db_id": db_id, "gold_sql": gold, "question": question}
        for row, (db_id, gold, question) in zip(rows, meta, strict=True)
    ]


def build_grpo_dataset(script_args: GRPOScriptArguments, *, split: str | None = None, limit: int | None = None):
    """The GRPO `Dataset` of `script_args.dataset_name`'s split (default: the train split); None when empty.

    Args:
        script_args: the source, its config, `db_root` and `max_train_samples` (train split only).
        split: the split to read.
        limit: keep the first N questions.
    """
    from datasets import Dataset

    if not script_args.dataset_name:
        raise TrainingDataError("no training data: pass --dataset_name (JSONL file, dataset folder or Hub id)")
    split = split or script_args.dataset_train_split
    records = load_records(
        script_args.dataset_name, config=script_args.dataset_config, split=split, error=TrainingDataError
    )
    rows = grpo_records(records, db_root=default_db_root(script_args))
    if split == script_args.dataset_train_split and script_args.max_train_samples:
        rows = rows[: script_args.max_train_samples]
    if limit is not None and limit >= 0:
        rows = rows[:limit]
    return Dataset.from_list(rows) if rows else None


# ---------------------------------------------------------------------------------------------------------------
# The trainer
# ---------------------------------------------------------------------------------------------------------------


def _check_reward_weights(script_args: GRPOScriptArguments, training_args: GRPOConfig) -> None:
    weights = training_args.reward_weights
    if weights is not None and len(weights) != len(script_args.reward_funcs):
        raise ValueError(
            f"`reward_weights` has {len(weights)} value(s) for {len(script_args.reward_funcs)} reward function(s) "
            f"{script_args.reward_funcs}: give one weight per name, in the same order"
        )


def build_grpo_trainer(
    script_args: GRPOScriptArguments,
    training_args: GRPOConfig,
    model_args: ModelConfig,
    *,
    train_dataset=None,
    callbacks: list | None = None,
    scorer: ExecutionScorer | None = None,
):
    """A `trl.GRPOTrainer` with the execution rewards `script_args.reward_funcs`.

    Args:
        script_args: dataset, `db_root`, reward names, metric, timeout, workers.
        training_args: the `GRPOConfig` (generations, completion length, `reward_weights`, vLLM, ...).
        model_args: `model_name_or_path` (a Hub id, a folder or an embedded name), dtype, LoRA/QLoRA settings.
        train_dataset: a `Dataset` of GRPO rows (`grpo_records`) instead of reading `dataset_name`.
        callbacks: extra `TrainerCallback`s.
        scorer: the `ExecutionScorer` the rewards share (default: one built from `script_args`).

    Raises:
        TrainingDataError: no training rows.
        ValueError: `reward_weights` whose length differs from `reward_funcs`.
    """
    from trl import GRPOTrainer

    _check_reward_weights(script_args, training_args)
    if train_dataset is None:
        train_dataset = build_grpo_dataset(script_args)
    if train_dataset is None:
        raise TrainingDataError(f"{script_args.dataset_name}: no records in split {script_args.dataset_train_split!r}")
    reward_funcs = get_reward_funcs(
        script_args.reward_funcs,
        db_root=default_db_root(script_args),
        metric=script_args.metric,
        keep_distinct=script_args.keep_distinct,
        timeout=script_args.execution_timeout,
        workers=script_args.execution_workers,
        scorer=scorer,
    )
    training_args.model_init_kwargs = model_init_kwargs(training_args, model_args)
    peft_config, quantization_config = peft_and_quantization(model_args)
    compact_lm_head()
    return GRPOTrainer(
        model=resolve_model_name(model_args.model_name_or_path),
        reward_funcs=reward_funcs,
        args=training_args,
        train_dataset=train_dataset,
        peft_config=peft_config,
        quantization_config=quantization_config,
        callbacks=callbacks,
    )


# ---------------------------------------------------------------------------------------------------------------
# Held-out EX, the reward curve, the card
# ---------------------------------------------------------------------------------------------------------------


def heldout_execution_accuracy(
    model: str, rows: Sequence[Mapping[str, Any]], *, script_args: GRPOScriptArguments, predictions_path: Path | None
) -> dict[str, Any]:
    """The `sense-hub eval`-style summary of greedy SQL from `model` on GRPO rows (prompt, db_id, gold_sql).

    `evaluation.score_examples` (generate, extract, judge under `script_args.metric`): the path every held-out score
    of sense-hub takes; the predictions file has `formats.PREDICTIONS_COLUMNS`.
    """
    from sense_hub.benchmarks import Example
    from sense_hub.evaluation import score_examples
    from sense_hub.generation import load_generator

    db_root = default_db_root(script_args)
    if db_root is None:
        raise TrainingDataError("held-out EX needs --db_root: the folder with <db_id>/<db_id>.sqlite inside")
    examples = [
        Example(str(r.get("question_id") or f"heldout-{i}"), r["db_id"], r.get("question") or "", r["gold_sql"])
        for i, r in enumerate(rows)
    ]
    _, summary = score_examples(
        load_generator(model),
        examples,
        db_paths=[db_root / r["db_id"] / f"{r['db_id']}.sqlite" for r in rows],
        prompts=[list(r["prompt"]) for r in rows],
        max_new_tokens=script_args.heldout_max_new_tokens,
        repair_rounds=script_args.heldout_repair_rounds,
        metric=script_args.metric,
        keep_distinct=script_args.keep_distinct,
        timeout=script_args.execution_timeout,
        workers=script_args.execution_workers,
        output=predictions_path,
    )
    return summary


def reward_curve(log_history: Sequence[Mapping[str, Any]]) -> list[dict[str, float]]:
    """The logged training steps with a mean reward: `[{"step", "reward", "rewards/<name>/mean", ...}]`."""
    curve = []
    for entry in log_history:
        if "reward" in entry and "step" in entry:
            point = {"step": entry["step"], "reward": entry["reward"]}
            point.update({k: v for k, v in entry.items() if k.startswith("rewards/") and k.endswith("/mean")})
            curve.append(point)
    return curve


def reward_summary(curve: Sequence[Mapping[str, float]]) -> dict[str, Any]:
    """Mean reward at the start and at the end of training: each the mean over the first / last `k` logged steps,
    `k = max(1, min(10, len(curve) // 4))`."""
    if not curve:
        return {"steps_logged": 0}
    k = max(1, min(10, len(curve) // 4))
    rewards = [p["reward"] for p in curve]
    return {
        "steps_logged": len(curve),
        "window": k,
        "reward_start": sum(rewards[:k]) / k,
        "reward_end": sum(rewards[-k:]) / k,
    }


def render_reward_curve(curve: Sequence[Mapping[str, float]], *, path: Path, title: str) -> Path:
    """Plot the mean reward (and each reward function's mean) per step as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 3.6))
    steps = [p["step"] for p in curve]
    ax.plot(steps, [p["reward"] for p in curve], marker="o", markersize=3, label="reward (weighted sum)")
    names = sorted({k for p in curve for k in p if k.startswith("rewards/")})
    if len(names) > 1:
        for name in names:
            ax.plot(steps, [p.get(name) for p in curve], linewidth=1, alpha=0.7, label=name.split("/")[1])
    ax.set_xlabel("step")
    ax.set_ylabel("mean reward")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=80, metadata={"Software": None})
    plt.close(fig)
    return path


def _heldout_result(summary: Mapping[str, Any], *, dataset: str, split: str) -> dict[str, Any]:
    """A model-index result for the held-out EX: the dataset's Hub id, or `<folder name>-<split>` for local data."""
    from sense_hub.cards import eval_summary_to_result, is_hub_id

    dataset_id = dataset if is_hub_id(dataset) else f"{Path(dataset).name}-{split}"
    return eval_summary_to_result(summary, dataset_name=f"held-out {split} split", dataset_id=dataset_id)


def _card_section(script_args, training_args, results: Mapping[str, Any], curve_png: Path | None) -> tuple[str, str]:
    """The card's GRPO section: (heading, markdown) with the rewards, settings, reward summary and curve."""
    weights = training_args.reward_weights or [1.0] * len(script_args.reward_funcs)
    lines = [
        f"Rewards (metric `{script_args.metric}`, {script_args.execution_timeout:g} s timeout per query):",
        "",
        "| reward | weight | what it gives |",
        "|---|---|---|",
    ]
    lines += [f"| `{n}` | {w:g} | {REWARDS[n]} |" for n, w in zip(script_args.reward_funcs, weights, strict=True)]
    lines += [
        "",
        f"num_generations {training_args.num_generations}, max_completion_length "
        f"{training_args.max_completion_length}, temperature {training_args.temperature:g}, "
        f"beta {training_args.beta:g}, loss_type `{training_args.loss_type}`, "
        f"scale_rewards `{training_args.scale_rewards}`.",
        "",
    ]
    rewards = results["reward"]
    if rewards.get("steps_logged"):
        lines.append(
            f"Mean reward: {rewards['reward_start']:.3f} at the start, {rewards['reward_end']:.3f} at the end "
            f"(means over the first and last {rewards['window']} of {rewards['steps_logged']} logged steps)."
        )
    for key, label in (("heldout_baseline", "base model"), ("heldout", "trained model")):
        if results.get(key):
            s = results[key]
            lines.append(f"Held-out EX, {label}: {s['execution_accuracy']:.3f} ({s['correct']}/{s['n']}).")
    if curve_png is not None:
        lines += ["", f"![Mean reward per step]({curve_png.name})"]
    return "GRPO with execution rewards", "\n".join(lines) + "\n"


def _heldout_rows(script_args: GRPOScriptArguments) -> list[dict]:
    if script_args.heldout_samples == 0:
        return []
    limit = None if script_args.heldout_samples < 0 else script_args.heldout_samples
    dataset = build_grpo_dataset(script_args, split=script_args.dataset_test_split, limit=limit)
    if dataset is None:
        logger.warning(
            "%s has no %r split: no held-out EX (pass a dataset folder with a validation split)",
            script_args.dataset_name,
            script_args.dataset_test_split,
        )
        return []
    return [dict(r) for r in dataset]


def run_grpo(
    script_args: GRPOScriptArguments, training_args: GRPOConfig, model_args: ModelConfig, *, callbacks=None
) -> Path:
    """Train with GRPO and execution rewards; save the model (safetensors), `grpo_results.json`, the reward curve
    and a model card (held-out EX and `--eval_summary` results in its model-index); push when asked.

    Returns:
        The output folder.
    """
    push = bool(training_args.push_to_hub)
    training_args.push_to_hub = False  # the card is ours; we push the finished folder once
    heldout = _heldout_rows(script_args)
    results: dict[str, Any] = {"reward_funcs": list(script_args.reward_funcs), "metric": script_args.metric}
    output_dir = Path(training_args.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    if heldout and script_args.heldout_baseline:
        results["heldout_baseline"] = heldout_execution_accuracy(
            resolve_model_name(model_args.model_name_or_path),
            heldout,
            script_args=script_args,
            predictions_path=output_dir / "heldout_predictions_base.jsonl",
        )
    scorer = None if script_args.reward_funcs == ["format"] else _scorer(script_args)
    trainer = build_grpo_trainer(script_args, training_args, model_args, callbacks=callbacks, scorer=scorer)
    train(trainer, training_args, script_args.max_train_minutes)
    output_dir = save_trained_model(trainer, training_args.output_dir, merge_lora=script_args.merge_lora)
    if trainer.accelerator.is_main_process:
        trainer.state.save_to_json(str(output_dir / "trainer_state.json"))
        curve = reward_curve(trainer.state.log_history)
        results["steps"] = trainer.state.global_step
        results["reward"] = reward_summary(curve)
        results["reward_curve"] = curve
        if scorer is not None:
            results["execution"] = scorer.stats.as_dict()
        card_results = load_eval_results(script_args.eval_summary)
        if heldout:
            if model_args.use_peft and not script_args.merge_lora:
                logger.warning("held-out EX skipped: a LoRA adapter was saved; set merge_lora: true to measure it")
            else:
                summary = heldout_execution_accuracy(
                    str(output_dir),
                    heldout,
                    script_args=script_args,
                    predictions_path=output_dir / "heldout_predictions.jsonl",
                )
                results["heldout"] = summary
                split = script_args.dataset_test_split
                card_results.append(_heldout_result(summary, dataset=script_args.dataset_name, split=split))
        (output_dir / RESULTS_FILE).write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
        curve_png = None
        if curve:
            curve_png = render_reward_curve(curve, path=output_dir / CURVE_FILE, title=f"GRPO: {output_dir.name}")
        write_training_card(
            output_dir,
            script_args=script_args,
            training_args=training_args,
            model_args=model_args,
            stage="grpo",
            results=card_results,
            sections=dict([_card_section(script_args, training_args, results, curve_png)]),
        )
        if push:
            from sense_hub.hub import push_model_folder

            repo_id = script_args.hub_repo_id or training_args.hub_model_id or output_dir.name
            url = push_model_folder(output_dir, repo_id=repo_id, private=bool(training_args.hub_private_repo))
            logger.info("pushed %s to %s", output_dir, url)
    trainer.accelerator.wait_for_everyone()
    if scorer is not None:
        scorer.close()
    return output_dir


def _scorer(script_args: GRPOScriptArguments) -> ExecutionScorer:
    return ExecutionScorer(
        db_root=default_db_root(script_args),
        metric=script_args.metric,
        keep_distinct=script_args.keep_distinct,
        timeout=script_args.execution_timeout,
        workers=script_args.execution_workers,
    )
