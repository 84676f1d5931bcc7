"""SPFT-SQL: self-play fine-tuning for text-to-SQL with an error-driven loss.

SPFT-SQL (Zhang et al., Findings of EMNLP 2025, arXiv:2509.03937) adapts SPIN (Chen et al., 2024) to text-to-SQL.
Each round, the *main* model (the best of the model base by execution accuracy on a held-out split) is trained
against the *opponent* (the weakest model of the base): the opponent writes SQL for every training question, the
executor labels it against the gold result, and the main model learns to prefer the gold SQL over the opponent's
SQL with a SPIN-style logistic loss weighted by the opponent sample's execution reward.

The loss implemented here (`spft_loss`), for a prompt x, gold SQL y and opponent SQL y':

    m(x, y, y') = [log pi_theta(y|x) - log pi_ref(y|x)] - [log pi_theta(y'|x) - log pi_ref(y'|x)]
    loss       = w(y') * log(1 + exp(-beta * m))

with pi_ref the opponent model (as in SPIN, where the previous iterate is both the opponent and the reference) and
the execution reward w(y') = 1 when the opponent's result differs from the gold result (a real error, including SQL
that does not execute) and w(y') = 0 when it matches: a correct opponent sample is never pushed down. Plain SPIN is
the same loss with w = 1 for every sample (`SPFTConfig.error_driven=False`). The paper's own equation could not be
consulted offline; this is the formulation its abstract describes (an error-driven loss that only penalises
incorrect opponent SQL), written as SPIN's logistic loss with a per-sample {0, 1} weight.

Run layout under `output_dir` (every stage leaves a file, so a run restarts where it stopped):

    round_00/state.json               the starting model's held-out accuracy
    round_00/heldout_predictions.jsonl
    round_NN/state.json               stages done: select (main/opponent), generate, train, evaluate
    round_NN/data.jsonl               prompt/chosen (gold)/rejected (opponent SQL) + `reward`
    round_NN/model/                   the trained main model (+ README.md model card for the best one)
    round_NN/heldout_predictions.jsonl
    spft_results.json                 per-round accuracies and the best model

This module imports `trl` (and through it `torch` and `transformers`) at import time because `SPFTConfig` and
`SPFTTrainer` subclass TRL's classes; only the `spft` command and training code import it.
"""

from __future__ import annotations

import copy
import gc
import json
import logging
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from trl import DPOConfig, DPOTrainer, ModelConfig

from sense_hub.compute import compact_lm_head, configure_threads
from sense_hub.errors import UsageError
from sense_hub.formats import PAIRS_COLUMNS, REWARD_COLUMN
from sense_hub.matching import METRICS
from sense_hub.records import read_jsonl, write_json, write_jsonl

logger = logging.getLogger(__name__)

STAGES = ("select", "generate", "train", "evaluate")
_NON_MODEL_KEYS = {"completion_mask", "ref_chosen_logps", "ref_rejected_logps", REWARD_COLUMN}


# ---------------------------------------------------------------------------------------------------------------
# The loss
# ---------------------------------------------------------------------------------------------------------------


def spft_loss(
    *,
    chosen_logps: torch.Tensor,
    rejected_logps: torch.Tensor,
    ref_chosen_logps: torch.Tensor,
    ref_rejected_logps: torch.Tensor,
    rewards: torch.Tensor,
    beta: float,
) -> torch.Tensor:
    """Per-sample error-driven self-play loss `w * log(1 + exp(-beta * margin))`.

    Args:
        chosen_logps: log pi_theta(gold | x), summed over the completion tokens, shape (batch,).
        rejected_logps: log pi_theta(opponent SQL | x), shape (batch,).
        ref_chosen_logps: log pi_ref(gold | x) under the opponent (reference) model, shape (batch,).
        ref_rejected_logps: log pi_ref(opponent SQL | x), shape (batch,).
        rewards: execution reward w of the opponent sample: 1 for a wrong result, 0 for a correct one (any
            non-negative weight is accepted), shape (batch,).
        beta: the inverse temperature of the logistic loss (SPIN's lambda).

    Returns:
        The per-sample losses, shape (batch,); zero (with zero gradient) wherever the reward is zero.
    """
    margin = (chosen_logps - ref_chosen_logps) - (rejected_logps - ref_rejected_logps)
    return rewards.to(margin.dtype) * F.softplus(-beta * margin)


def execution_reward(*, correct: bool, error_driven: bool = True) -> float:
    """The weight of an opponent sample: 0 when its execution result matches gold (error-driven), else 1.

    Args:
        correct: whether the opponent SQL's execution result equals the gold result.
        error_driven: False gives plain SPIN (every opponent sample weighs 1).
    """
    return 0.0 if (error_driven and correct) else 1.0


# ---------------------------------------------------------------------------------------------------------------
# Configuration
# ---------------------------------------------------------------------------------------------------------------


@dataclass
class SPFTScriptArguments:
    """Data for the self-play rounds.

    Args:
        dataset_name: the training questions, read like every stage's data (`records.load_records`): a JSON/JSONL
            file, a Hub-layout dataset folder or a Hub id, with `question`, `sql` (gold) and `db_id` (+ optional
            `evidence`, `question_id`).
        dataset_config: the dataset config (folders and Hub ids).
        eval_dataset_name: the held-out questions used to pick the best model (the same kinds of source); when
            absent, `eval_size` questions are held out of `dataset_name`.
        db_root: folder holding `<db_id>/<db_id>.sqlite`.
        eval_size: how many questions to hold out of `dataset_name` when there is no `eval_dataset_name`.
        max_train_examples: use at most this many training questions (0 = all).
    """

    dataset_name: str | None = field(
        default=None, metadata={"help": "Training questions: JSON/JSONL file, dataset folder or Hub id."}
    )
    dataset_config: str | None = field(default=None, metadata={"help": "Dataset config (folders and Hub ids)."})
    eval_dataset_name: str | None = field(
        default=None, metadata={"help": "Held-out questions (picks the best model); same kinds as dataset_name."}
    )
    db_root: str | None = field(default=None, metadata={"help": "Folder with <db_id>/<db_id>.sqlite."})
    eval_size: int = field(default=8, metadata={"help": "Questions held out of dataset_name when no eval data."})
    max_train_examples: int = field(default=0, metadata={"help": "At most this many training questions (0 = all)."})
    train_file: str | None = field(default=None, metadata={"help": "Renamed: use dataset_name."})
    eval_file: str | None = field(default=None, metadata={"help": "Renamed: use eval_dataset_name."})

    def __post_init__(self) -> None:
        for old, new in (("train_file", "dataset_name"), ("eval_file", "eval_dataset_name")):
            if getattr(self, old) is not None:
                raise ValueError(
                    f"`{old}` is now `{new}` (a JSON/JSONL file, a dataset folder or a Hub id, as for every stage): "
                    f"rename it"
                )
        if self.eval_size < 0:
            raise ValueError(f"`eval_size` must be >= 0, got {self.eval_size}")
        if self.max_train_examples < 0:
            raise ValueError(f"`max_train_examples` must be >= 0, got {self.max_train_examples}")


@dataclass
class SPFTConfig(DPOConfig):
    r"""[`trl.DPOConfig`] for SPFT-SQL self-play rounds; `max_steps`/`num_train_epochs` apply to each round.

    The DPO loss fields (`loss_type`, `loss_weights`, `label_smoothing`) are not used: the loss is
    `sense_hub.spft.spft_loss`. `beta` is SPIN's lambda.

    Args:
        rounds: number of self-play rounds R.
        error_driven: weight opponent samples by their execution reward (SPFT-SQL); False gives plain SPIN.
        skip_correct_opponent_samples: drop the zero-weight rows before training (same gradient direction,
            less compute; the batch mean then runs over wrong samples only).
        opponent_temperature: sampling temperature of the opponent (0 = greedy).
        opponent_top_p: nucleus sampling of the opponent.
        max_new_tokens: generation budget per SQL (opponent and held-out evaluation).
        generation_backend: `sense_hub.generation` backend for the local checkpoints ("transformers").
        generation_batch_size: prompts per generation batch.
        metric: execution-match semantics for labels and accuracy ("strict", "spider", "bird").
        execution_timeout: seconds per query.
        execution_workers: executor processes (None = default).
    """

    rounds: int = field(default=2, metadata={"help": "Number of self-play rounds."})
    error_driven: bool = field(
        default=True, metadata={"help": "Weight opponent SQL by execution reward (False = plain SPIN)."}
    )
    skip_correct_opponent_samples: bool = field(
        default=False, metadata={"help": "Drop zero-reward rows (correct opponent SQL) before training."}
    )
    opponent_temperature: float = field(default=0.0, metadata={"help": "Opponent temperature (0 = greedy)."})
    opponent_top_p: float = field(default=1.0, metadata={"help": "Opponent nucleus sampling top_p."})
    max_new_tokens: int = field(default=256, metadata={"help": "Generation budget per SQL."})
    eval_repair_rounds: int = field(
        default=0,
        metadata={
            "help": "Repair held-out answers that do not run before scoring a round's model (budget "
            "greedy+repair; 0: plain greedy)."
        },
    )
    generation_backend: str = field(default="transformers", metadata={"help": "Generation backend."})
    generation_batch_size: int = field(default=8, metadata={"help": "Prompts per generation batch."})
    metric: str = field(default="strict", metadata={"help": "strict | spider | bird."})
    execution_timeout: float = field(default=30.0, metadata={"help": "Seconds per query."})
    execution_workers: int | None = field(default=None, metadata={"help": "Executor processes."})

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.rounds < 1:
            raise ValueError(f"`rounds` must be >= 1, got {self.rounds}")
        if self.metric not in METRICS:
            raise ValueError(f"`metric` must be one of {', '.join(METRICS)}, got {self.metric!r}")
        if self.opponent_temperature < 0:
            raise ValueError(f"`opponent_temperature` must be >= 0, got {self.opponent_temperature}")
        if self.max_new_tokens < 1:
            raise ValueError(f"`max_new_tokens` must be >= 1, got {self.max_new_tokens}")
        if self.beta <= 0:
            raise ValueError(f"`beta` must be > 0, got {self.beta}")
        if self.use_weighting or self.ld_alpha is not None:
            raise ValueError("`use_weighting` and `ld_alpha` are not supported by the SPFT loss; unset them")


# ---------------------------------------------------------------------------------------------------------------
# The trainer
# ---------------------------------------------------------------------------------------------------------------


class _RewardCollator:
    """Wrap TRL's preference collator: also batch the `reward` column as a float tensor."""

    def __init__(self, inner) -> None:
        self.inner = inner

    def __call__(self, examples: list[dict[str, Any]]) -> dict[str, Any]:
        batch = self.inner(examples)
        if REWARD_COLUMN in examples[0]:
            batch[REWARD_COLUMN] = torch.tensor([float(e[REWARD_COLUMN]) for e in examples], dtype=torch.float32)
        return batch


class SPFTTrainer(DPOTrainer):
    """`trl.DPOTrainer` whose loss is the error-driven self-play loss (`spft_loss`).

    The training dataset carries a `reward` column (the opponent sample's execution reward w); rows without it
    weigh 1 (plain SPIN). Pass the opponent as `ref_model`. Everything else (tokenization, the reference
    log-prob precomputation, PEFT, distributed training) is TRL's.
    """

    _tag_names = ["trl", "dpo", "spft-sql", "sense-hub"]

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.data_collator = _RewardCollator(self.data_collator)
        if self.precompute_ref_logps and self.ref_model is not None and not self.is_deepspeed_enabled:
            # The reference log-probs are in the dataset now; free the opponent's weights.
            self.ref_model = None
            _free_memory()

    def _set_signature_columns_if_needed(self) -> None:
        super()._set_signature_columns_if_needed()
        if REWARD_COLUMN not in self._signature_columns:
            self._signature_columns = [*self._signature_columns, REWARD_COLUMN]

    def _compute_loss(self, model, inputs, return_outputs):
        mode = "train" if self.model.training else "eval"
        inputs = dict(inputs)
        rewards = inputs.pop(REWARD_COLUMN, None)
        completion_mask = inputs["completion_mask"]
        shift_completion_mask = completion_mask[..., 1:]
        seq_len = shift_completion_mask.size(1)
        model_kwargs = {k: v for k, v in inputs.items() if k not in _NON_MODEL_KEYS}
        model_kwargs["use_cache"] = False
        labels = inputs["input_ids"].masked_fill(completion_mask == 0, -100)
        outputs = model(**model_kwargs, labels=labels, fused_lm_head=True)
        logps = outputs.log_probs[:, -seq_len:].sum(dim=1)
        chosen_logps, rejected_logps = logps.chunk(2, dim=0)  # the batch is [chosen..., rejected...]

        if self.precompute_ref_logps:
            ref_chosen_logps, ref_rejected_logps = inputs["ref_chosen_logps"], inputs["ref_rejected_logps"]
        else:
            ref_chosen_logps, ref_rejected_logps = self.compute_ref_log_probs(self.ref_model or self.model, inputs)
        if rewards is None:
            rewards = torch.ones_like(chosen_logps)
        rewards = rewards.to(chosen_logps.device)
        losses = spft_loss(
            chosen_logps=chosen_logps,
            rejected_logps=rejected_logps,
            ref_chosen_logps=ref_chosen_logps.to(chosen_logps.device),
            ref_rejected_logps=ref_rejected_logps.to(chosen_logps.device),
            rewards=rewards,
            beta=self.beta,
        )
        loss = losses.mean()

        chosen_rewards = self.beta * (chosen_logps - ref_chosen_logps.to(chosen_logps.device)).detach()
        rejected_rewards = self.beta * (rejected_logps - ref_rejected_logps.to(chosen_logps.device)).detach()
        gather = self.accelerator.gather_for_metrics
        metrics = self._metrics[mode]
        metrics["rewards/chosen"].append(gather(chosen_rewards).mean().item())
        metrics["rewards/rejected"].append(gather(rejected_rewards).mean().item())
        metrics["rewards/margins"].append(gather(chosen_rewards - rejected_rewards).mean().item())
        metrics["rewards/accuracies"].append(gather((chosen_rewards > rejected_rewards).float()).mean().item())
        metrics["logps/chosen"].append(gather(chosen_logps.detach()).mean().item())
        metrics["logps/rejected"].append(gather(rejected_logps.detach()).mean().item())
        metrics["spft/execution_reward"].append(gather(rewards.float()).mean().item())
        if return_outputs:
            with torch.no_grad():
                outputs = model(**model_kwargs)
            return loss, outputs
        return loss


# ---------------------------------------------------------------------------------------------------------------
# Model base: which model is main and which is the opponent
# ---------------------------------------------------------------------------------------------------------------


@dataclass
class RoundModel:
    """A model of the base: the iteration that made it, where it is, and its held-out execution accuracy."""

    iteration: int
    path: str
    accuracy: float


def select_models(base: Sequence[RoundModel]) -> tuple[RoundModel, RoundModel]:
    """Pick (main, opponent): the best model by held-out accuracy and the weakest one.

    Ties go to the latest iteration for the main model and to the earliest for the opponent, so with a single model
    (round 1) main and opponent are that model, as in SPIN's first iteration.

    Raises:
        ValueError: an empty model base.
    """
    if not base:
        raise ValueError("the model base is empty: evaluate the starting model first")
    main = max(base, key=lambda c: (c.accuracy, c.iteration))
    opponent = min(base, key=lambda c: (c.accuracy, c.iteration))
    return main, opponent


# ---------------------------------------------------------------------------------------------------------------
# Round data
# ---------------------------------------------------------------------------------------------------------------


def build_round_records(
    examples: Sequence[Any],
    *,
    prompts: Sequence[list[dict]],
    opponent_sql: Sequence[str],
    verdicts: Sequence[Any],
    error_driven: bool = True,
) -> tuple[list[dict], dict[str, int]]:
    """Turn the opponent's labelled SQL into the round's training rows.

    Each row is a TRL conversational preference record (`formats.PAIRS_COLUMNS`): the gold SQL is chosen, the
    opponent's SQL rejected, plus `reward` (`REWARD_COLUMN`), the opponent sample's execution reward w.
    Questions whose gold SQL fails to execute are left out.

    Args:
        examples: `benchmarks.Example`-like objects (question_id, db_id, question, sql).
        prompts: the chat prompt of each example.
        opponent_sql: the opponent's SQL for each example.
        verdicts: `evaluation.Verdict` of each opponent SQL against the gold SQL.
        error_driven: weight correct opponent SQL 0 (SPFT-SQL) or 1 (plain SPIN).

    Returns:
        (rows, stats) with stats counting `examples`, `opponent_correct`, `opponent_wrong`, `gold_error`.
    """
    rows: list[dict] = []
    stats = {"examples": 0, "opponent_correct": 0, "opponent_wrong": 0, "gold_error": 0}
    for example, prompt, sql, verdict in zip(examples, prompts, opponent_sql, verdicts, strict=True):
        if verdict.error == "gold_error":
            stats["gold_error"] += 1
            continue
        stats["examples"] += 1
        stats["opponent_correct" if verdict.correct else "opponent_wrong"] += 1
        row = {
            "prompt": list(prompt),
            "chosen": [{"role": "assistant", "content": example.sql}],
            "rejected": [{"role": "assistant", "content": sql}],
            "db_id": example.db_id,
            "question_id": example.question_id,
            "question": example.question,
            "chosen_source": "gold",
            "rejected_error": "" if verdict.correct else (verdict.error or "wrong_result"),
            REWARD_COLUMN: execution_reward(correct=verdict.correct, error_driven=error_driven),
        }
        rows.append({name: row[name] for name in (*PAIRS_COLUMNS, REWARD_COLUMN)})
    return rows, stats


# ---------------------------------------------------------------------------------------------------------------
# State files
# ---------------------------------------------------------------------------------------------------------------


def _round_dir(output_dir: Path, r: int) -> Path:
    return output_dir / f"round_{r:02d}"


def load_round_state(output_dir: str | Path, r: int) -> dict[str, Any]:
    """The state of round `r` (`{"round": r, "stages": {...}}`; empty stages when the round has not started)."""
    path = _round_dir(Path(output_dir), r) / "state.json"
    if path.is_file():
        return json.loads(path.read_text(encoding="utf-8"))
    return {"round": r, "stages": {}}


def _save_round_state(output_dir: Path, state: Mapping[str, Any]) -> None:
    write_json(_round_dir(output_dir, state["round"]) / "state.json", state)


# ---------------------------------------------------------------------------------------------------------------
# Generation and evaluation
# ---------------------------------------------------------------------------------------------------------------


def _free_memory() -> None:
    # Only worth a full collection (seconds with transformers loaded) when GPU memory must come back now.
    if torch.cuda.is_available():
        gc.collect()
        torch.cuda.empty_cache()


def _prompts(examples: Sequence[Any], *, db_root: Path) -> list[list[dict]]:
    from sense_hub.databases import database_path
    from sense_hub.prompts import prompt_for_database

    return [prompt_for_database(e.question, database_path(db_root, e.db_id), evidence=e.evidence) for e in examples]


def generate_sql(
    model_path: str,
    prompts: Sequence[list[dict]],
    *,
    config: Any,
    temperature: float,
    seed: int = 0,
) -> list[str]:
    """One SQL per prompt from a local checkpoint (`sense_hub.generation`), extracted from the model's text.

    Args:
        model_path: a model folder (or "embedded").
        prompts: chat prompts.
        config: an `SPFTConfig` (backend, batch size, max_new_tokens, top_p).
        temperature: 0 for greedy decoding.
        seed: sampling seed.
    """
    from sense_hub.evaluation import evaluate_generator
    from sense_hub.generation import GenerationConfig, load_generator

    if not prompts:
        return []
    generator = load_generator(model_path, backend=config.generation_backend, batch_size=config.generation_batch_size)
    gen_config = GenerationConfig(
        n=1,
        temperature=temperature,
        top_p=config.opponent_top_p if temperature > 0 else 1.0,
        max_new_tokens=config.max_new_tokens,
        seed=seed,
    )
    generated = evaluate_generator(generator, prompts, config=gen_config)
    del generator
    _free_memory()
    return [g.sqls[0] for g in generated]


def _judge(examples: Sequence[Any], sqls: Sequence[str], *, db_root: Path, config: Any) -> list[Any]:
    from sense_hub.databases import database_path
    from sense_hub.evaluation import judge

    items = [(database_path(db_root, e.db_id), e.sql, sql) for e, sql in zip(examples, sqls, strict=True)]
    return judge(items, metric=config.metric, timeout=config.execution_timeout, workers=config.execution_workers)


def evaluate_model(
    model_path: str,
    examples: Sequence[Any],
    *,
    db_root: Path,
    config: Any,
    predictions_path: Path | None = None,
) -> float:
    """Execution accuracy of greedy SQL from `model_path` on `examples`; predictions go to `predictions_path`.

    Questions whose gold SQL fails count as wrong (the accuracy is over all held-out questions).
    """
    from sense_hub.databases import database_path
    from sense_hub.evaluation import score_examples
    from sense_hub.generation import load_generator

    if not examples:
        return 0.0
    generator = load_generator(model_path, backend=config.generation_backend, batch_size=config.generation_batch_size)
    rows, summary = score_examples(
        generator,
        examples,
        db_paths=[database_path(db_root, e.db_id) for e in examples],
        max_new_tokens=config.max_new_tokens,
        metric=config.metric,
        timeout=config.execution_timeout,
        workers=config.execution_workers,
        output=predictions_path,
        repair_rounds=config.eval_repair_rounds,
    )
    del generator
    _free_memory()
    return summary["correct"] / len(rows)


# ---------------------------------------------------------------------------------------------------------------
# Training one round
# ---------------------------------------------------------------------------------------------------------------


def train_round(
    *,
    main_path: str,
    opponent_path: str,
    rows: Sequence[Mapping[str, Any]],
    out_dir: Path,
    training_args: Any,
    model_args: Any = None,
) -> Path:
    """Train the main model on one round's rows with `SPFTTrainer` (opponent = reference); save to `out_dir/model`.

    Args:
        main_path: the main model's folder.
        opponent_path: the opponent's folder (the reference model pi_ref).
        rows: the round's records (`PAIRS_COLUMNS` + `reward`).
        out_dir: the round folder; checkpoints go to `out_dir/checkpoints`, the model to `out_dir/model`.
        training_args: an `SPFTConfig`; its `output_dir` is replaced by the round's checkpoint folder.
        model_args: a `trl.ModelConfig` (dtype, attention, LoRA settings) or None.

    Returns:
        The saved model folder. A LoRA adapter is merged into the weights so the next round loads a plain model.
    """
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.trainer_utils import get_last_checkpoint

    from sense_hub.training import model_init_kwargs, peft_and_quantization, save_trained_model

    args = copy.deepcopy(training_args)
    args.output_dir = str(out_dir / "checkpoints")
    args.push_to_hub = False  # rounds stay local; `run_spft` pushes the best model once, with its card
    if args.run_name in (None, training_args.output_dir):
        args.run_name = out_dir.name
    model_args = model_args if model_args is not None else ModelConfig(model_name_or_path=main_path)
    init_kwargs = model_init_kwargs(training_args, model_args)
    peft_config, quantization_config = peft_and_quantization(model_args)
    if quantization_config is not None:
        init_kwargs["quantization_config"] = quantization_config
    tokenizer = AutoTokenizer.from_pretrained(main_path)
    model = AutoModelForCausalLM.from_pretrained(main_path, **init_kwargs)
    ref_model = AutoModelForCausalLM.from_pretrained(opponent_path, **init_kwargs)
    columns = ["prompt", "chosen", "rejected", REWARD_COLUMN]
    compact_lm_head()
    configure_threads()
    dataset = Dataset.from_list([{c: row[c] for c in columns} for row in rows])
    trainer = SPFTTrainer(
        model=model,
        ref_model=ref_model,
        args=args,
        train_dataset=dataset,
        processing_class=tokenizer,
        peft_config=peft_config,
    )
    checkpoint = get_last_checkpoint(args.output_dir) if Path(args.output_dir).is_dir() else None
    from sense_hub.training import log_steps_quietly

    log_steps_quietly(trainer)  # per-step metric dicts go to the log, not under the bar
    trainer.train(resume_from_checkpoint=checkpoint)
    model_dir = save_trained_model(trainer, out_dir / "model", merge_lora=peft_config is not None)
    if trainer.accelerator.is_main_process:
        tokenizer.save_pretrained(model_dir)
    trainer.accelerator.wait_for_everyone()
    del trainer, model, ref_model
    _free_memory()
    return model_dir


# ---------------------------------------------------------------------------------------------------------------
# The driver
# ---------------------------------------------------------------------------------------------------------------


def _split_examples(script_args: SPFTScriptArguments, *, seed: int) -> tuple[list[Any], list[Any]]:
    from sense_hub.benchmarks import load_examples

    if not script_args.dataset_name:
        raise UsageError(
            "`dataset_name` is required: a JSON/JSONL file, dataset folder or Hub id of question, sql, db_id"
        )
    config = script_args.dataset_config
    train = list(load_examples(script_args.dataset_name, config=config))
    if script_args.eval_dataset_name:
        held_out = list(load_examples(script_args.eval_dataset_name, config=config))
    else:
        if script_args.eval_size >= len(train):
            raise UsageError(
                f"`eval_size` ({script_args.eval_size}) must be smaller than the {len(train)} questions of "
                f"{script_args.dataset_name}; lower it or pass `eval_dataset_name`"
            )
        order = list(range(len(train)))
        random.Random(seed).shuffle(order)
        held = set(order[: script_args.eval_size])
        held_out = [e for i, e in enumerate(train) if i in held]
        train = [e for i, e in enumerate(train) if i not in held]
    if script_args.max_train_examples:
        train = train[: script_args.max_train_examples]
    if not held_out:
        raise UsageError("the held-out split is empty: pass `eval_dataset_name` or set `eval_size` > 0")
    return train, held_out


class _Process:
    """Who does the single-process stages (generation, execution, state files) under `accelerate launch`."""

    def __init__(self) -> None:
        from accelerate import PartialState

        self.state = PartialState()

    @property
    def is_main(self) -> bool:
        return self.state.is_main_process

    def barrier(self) -> None:
        self.state.wait_for_everyone()


def _base_from_states(output_dir: Path, upto: int) -> list[RoundModel]:
    base = []
    for r in range(upto):
        state = load_round_state(output_dir, r)
        evaluated = state["stages"].get("evaluate")
        if evaluated is None:
            raise RuntimeError(f"round {r} of {output_dir} has no evaluation; rerun to finish it")
        base.append(RoundModel(iteration=r, path=evaluated["model"], accuracy=evaluated["accuracy"]))
    return base


def run_spft(script_args: SPFTScriptArguments, training_args: Any, model_args: Any) -> Path:
    """Run SPFT-SQL self-play rounds; return the folder of the best model by held-out execution accuracy.

    Round 0 evaluates the starting model (`model_args.model_name_or_path`, "embedded" allowed). Each round
    r = 1..R: select main (best so far) and opponent (weakest so far), let the opponent write SQL for every training
    question, label it by execution, train main with the error-driven loss against the opponent as reference,
    evaluate the new model on the held-out split and add it to the model base. Finished stages are skipped when
    the run restarts with the same `output_dir`.

    Args:
        script_args: the data (`SPFTScriptArguments`).
        training_args: an `SPFTConfig`.
        model_args: a `trl.ModelConfig`.

    Raises:
        ValueError: missing or inconsistent inputs, naming the field to fix.
    """
    from sense_hub.models import resolve_model

    if not script_args.db_root:
        raise UsageError("`db_root` is required: the folder with <db_id>/<db_id>.sqlite")
    if model_args is None or not model_args.model_name_or_path:
        raise UsageError("`model_name_or_path` is required (a model folder, Hub id or 'embedded')")
    db_root = Path(script_args.db_root)
    output_dir = Path(training_args.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    process = _Process()
    train, held_out = _split_examples(script_args, seed=training_args.seed)
    logger.info("SPFT: %d training questions, %d held out, %d rounds", len(train), len(held_out), training_args.rounds)

    # Round 0: the starting model's held-out accuracy.
    state0 = load_round_state(output_dir, 0)
    if "evaluate" not in state0["stages"]:
        if process.is_main:
            start = resolve_model(model_args.model_name_or_path)
            accuracy = evaluate_model(
                start,
                held_out,
                db_root=db_root,
                config=training_args,
                predictions_path=_round_dir(output_dir, 0) / "heldout_predictions.jsonl",
            )
            state0["stages"]["evaluate"] = {"model": start, "accuracy": accuracy, "examples": len(held_out)}
            _save_round_state(output_dir, state0)
            logger.info("round 0: %s held-out EX %.4f", start, accuracy)
        process.barrier()

    for r in range(1, training_args.rounds + 1):
        round_dir = _round_dir(output_dir, r)
        state = load_round_state(output_dir, r)
        stages = state["stages"]
        if "select" not in stages:
            if process.is_main:
                main, opponent = select_models(_base_from_states(output_dir, r))
                stages["select"] = {"main": vars(main), "opponent": vars(opponent)}
                _save_round_state(output_dir, state)
                logger.info(
                    "round %d: main = iteration %d (EX %.4f), opponent = iteration %d (EX %.4f)",
                    r, main.iteration, main.accuracy, opponent.iteration, opponent.accuracy,
                )  # fmt: skip
            process.barrier()
            state = load_round_state(output_dir, r)
            stages = state["stages"]
        main, opponent = RoundModel(**stages["select"]["main"]), RoundModel(**stages["select"]["opponent"])

        data_path = round_dir / "data.jsonl"
        if "generate" not in stages:
            if process.is_main:
                prompts = _prompts(train, db_root=db_root)
                sqls = generate_sql(
                    opponent.path,
                    prompts,
                    config=training_args,
                    temperature=training_args.opponent_temperature,
                    seed=training_args.seed + r,
                )
                verdicts = _judge(train, sqls, db_root=db_root, config=training_args)
                rows, stats = build_round_records(
                    train, prompts=prompts, opponent_sql=sqls, verdicts=verdicts,
                    error_driven=training_args.error_driven,
                )  # fmt: skip
                write_jsonl(data_path, rows)
                stages["generate"] = {"data": str(data_path), **stats}
                _save_round_state(output_dir, state)
                logger.info("round %d: opponent data %s", r, stats)
            process.barrier()
            state = load_round_state(output_dir, r)
            stages = state["stages"]

        if "train" not in stages:
            rows = read_jsonl(data_path)
            if training_args.skip_correct_opponent_samples:
                rows = [row for row in rows if row[REWARD_COLUMN] > 0]
            if rows:
                model_dir = train_round(
                    main_path=main.path,
                    opponent_path=opponent.path,
                    rows=rows,
                    out_dir=round_dir,
                    training_args=training_args,
                    model_args=model_args,
                )
                trained = {"model": str(model_dir), "rows": len(rows)}
            else:
                logger.warning("round %d: no training rows (the opponent answered every question right)", r)
                trained = {"model": main.path, "rows": 0}
            if process.is_main:
                stages["train"] = trained
                _save_round_state(output_dir, state)
            process.barrier()
            state = load_round_state(output_dir, r)
            stages = state["stages"]

        if "evaluate" not in stages:
            if process.is_main:
                model_path = stages["train"]["model"]
                accuracy = evaluate_model(
                    model_path,
                    held_out,
                    db_root=db_root,
                    config=training_args,
                    predictions_path=round_dir / "heldout_predictions.jsonl",
                )
                stages["evaluate"] = {"model": model_path, "accuracy": accuracy, "examples": len(held_out)}
                _save_round_state(output_dir, state)
                logger.info("round %d: held-out EX %.4f", r, accuracy)
            process.barrier()

    base = _base_from_states(output_dir, training_args.rounds + 1)
    best, _ = select_models(base)
    if process.is_main:
        _finish(
            output_dir=output_dir,
            base=base,
            best=best,
            script_args=script_args,
            training_args=training_args,
            model_args=model_args,
            held_out=held_out,
        )
    process.barrier()
    return Path(best.path)


def round_results(output_dir: str | Path, *, rounds: int) -> list[dict[str, Any]]:
    """Per-round summary rows: round, main, opponent, opponent errors, training rows, held-out accuracy."""
    output_dir = Path(output_dir)
    rows = []
    for r in range(rounds + 1):
        stages = load_round_state(output_dir, r)["stages"]
        select, generate, evaluated = stages.get("select", {}), stages.get("generate", {}), stages.get("evaluate", {})
        rows.append(
            {
                "round": r,
                "main": select.get("main", {}).get("iteration"),
                "opponent": select.get("opponent", {}).get("iteration"),
                "opponent_wrong": generate.get("opponent_wrong"),
                "opponent_correct": generate.get("opponent_correct"),
                "train_rows": stages.get("train", {}).get("rows"),
                "model": evaluated.get("model"),
                "accuracy": evaluated.get("accuracy"),
            }
        )
    return rows


def rounds_table(rows: Sequence[Mapping[str, Any]]) -> str:
    """Markdown table of `round_results` rows for the model card."""

    def cell(value: Any) -> str:
        if value is None:
            return "–"
        return f"{100 * value:.1f}" if isinstance(value, float) else str(value)

    lines = [
        "| round | main (iteration) | opponent (iteration) | opponent SQL wrong / right | held-out EX (%) |",
        "|---|---|---|---|---|",
    ]
    for row in rows:
        counts = (
            f"{row['opponent_wrong']} / {row['opponent_correct']}" if row.get("opponent_wrong") is not None else "–"
        )
        lines.append(
            f"| {row['round']} | {cell(row['main'])} | {cell(row['opponent'])} | {counts} | {cell(row['accuracy'])} |"
        )
    return "\n".join(lines)


def _finish(
    *,
    output_dir: Path,
    base: Sequence[RoundModel],
    best: RoundModel,
    script_args: SPFTScriptArguments,
    training_args: Any,
    model_args: Any,
    held_out: Sequence[Any],
) -> None:
    held_out_size = len(held_out)
    rows = round_results(output_dir, rounds=training_args.rounds)
    write_json(
        output_dir / "spft_results.json",
        {"rounds": rows, "best": vars(best), "held_out_examples": held_out_size},
    )
    logger.info("SPFT best model: iteration %d, held-out EX %.4f, %s", best.iteration, best.accuracy, best.path)
    card_dir = Path(best.path) if best.iteration > 0 else output_dir
    _write_card(
        card_dir,
        rows=rows,
        best=best,
        script_args=script_args,
        training_args=training_args,
        model_args=model_args,
        held_out=held_out,
    )
    if training_args.push_to_hub and training_args.hub_model_id:
        from sense_hub.hub import push_model_folder

        push_model_folder(best.path, repo_id=training_args.hub_model_id, private=bool(training_args.hub_private_repo))


# SPFT's own settings, added to the card's hyperparameter table (`training.card_hyperparameters`)
_SPFT_HYPERPARAMETERS = (
    "rounds",
    "error_driven",
    "skip_correct_opponent_samples",
    "beta",
    "opponent_temperature",
    "max_new_tokens",
    "metric",
)


def _write_card(
    card_dir: Path,
    *,
    rows: Sequence[Mapping[str, Any]],
    best: RoundModel,
    script_args: SPFTScriptArguments,
    training_args: Any,
    model_args: Any,
    held_out: Sequence[Any],
) -> None:
    """The best round's model card, through the one card writer, with the rounds table as its own section."""
    from sense_hub.evaluation import input_fingerprints
    from sense_hub.training import write_training_card

    held_out_size = len(held_out)
    held_out_name = (
        script_args.eval_dataset_name or f"{held_out_size} questions held out of {script_args.dataset_name}"
    )
    results = [
        {
            "dataset": f"held-out ({held_out_name})",
            "dataset_id": script_args.eval_dataset_name or str(script_args.dataset_name),
            "metric": "execution_accuracy",
            "value": best.accuracy,
            "fingerprints": input_fingerprints(
                [{"db_id": e.db_id, "gold": e.sql} for e in held_out], db_root=script_args.db_root, predictions=None
            )[0],
        }
    ]
    rounds = (
        "Trained with SPFT-SQL self-play fine-tuning (Zhang et al., 2025): each round the main model learns to "
        "prefer the gold SQL over the opponent's SQL with SPIN's logistic loss, weighted by the opponent SQL's "
        "execution reward (1 when its result differs from gold, 0 when it matches: correct SQL is never pushed "
        "down). Main = the best model of the base by held-out execution accuracy, opponent = the weakest (also the "
        "reference model of the loss). Round 0 is the starting model. This card belongs to iteration "
        f"{best.iteration}.\n\n" + rounds_table(rows) + "\n"
    )
    write_training_card(
        card_dir,
        script_args=script_args,
        training_args=training_args,
        model_args=model_args,
        stage="spft",
        results=results,
        datasets=[str(script_args.dataset_name)],
        sections={"SPFT-SQL self-play rounds": rounds},
        extra_hyperparameters={name: getattr(training_args, name) for name in _SPFT_HYPERPARAMETERS},
        tags=("spft-sql", "self-play"),
        model_name=Path(training_args.output_dir).name if not training_args.hub_model_id else None,
    )


# ---------------------------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------------------------
