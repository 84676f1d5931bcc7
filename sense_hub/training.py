"""Training: SFT on strong data, conservative DPO (and friends) on execution-labelled pairs, model cards.

The recipes (`recipes/sft.py`, `recipes/cdpo.py`) are thin: they parse
`(SenseScriptArguments, SFTConfig | CDPOConfig, ModelConfig)` with `trl.TrlParser` and call `run_sft` / `run_cdpo`.
Everything else lives here so that other stages (the quickstart, self-play fine-tuning) can build the same trainers:

- `strong_to_sft`, `weak_to_kto`, `pairs_to_preference`: records -> TRL conversational formats, with the one prompt
  of `sense_hub.prompts` (schema read from the record's database, or from its `schema` column).
- `trainer_dataset`: a JSONL file, a local Hub-layout folder or a Hub id (`records.load_records`) -> TRL-ready `Dataset`s.
- `CDPOConfig`: `trl.DPOConfig` plus `cdpo_epsilon` (exact cDPO) and `preference_loss` (cdpo, dpo, ipo, simpo,
  orpo, kto chosen by name).
- `build_sft_trainer`, `build_preference_trainer`: the trainers; `save_trained_model` + `write_training_card`.

This module imports `trl` (and through it `transformers`) at import time because `CDPOConfig` subclasses
`trl.DPOConfig`; only training code imports it.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from transformers import TrainerCallback
from trl import DPOConfig, ModelConfig, ScriptArguments, SFTConfig

from sense_hub.compute import compact_lm_head, configure_threads
from sense_hub.errors import TrainingDataError
from sense_hub.records import load_records

logger = logging.getLogger(__name__)

PREFERENCE_LOSSES: dict[str, str] = {
    "cdpo": "conservative DPO (SENSE): -(1-eps)*logsig(beta*delta) - eps*logsig(-beta*delta), eps = cdpo_epsilon",
    "dpo": "TRL's DPOTrainer with its own `loss_type` (default sigmoid: plain DPO)",
    "ipo": "IPO (DPOTrainer, loss_type='ipo')",
    "simpo": "SimPO, reference-free (TRL's CPOTrainer, loss_type='simpo', cpo_alpha=0)",
    "orpo": "ORPO, reference-free, SFT + odds-ratio term (TRL's ORPOTrainer)",
    "kto": "KTO on unpaired labelled completions (TRL's KTOTrainer): weak records, or pairs split in two",
}


# ---------------------------------------------------------------------------------------------------------------
# Configuration
# ---------------------------------------------------------------------------------------------------------------


@dataclass
class SenseScriptArguments(ScriptArguments):
    """TRL's `ScriptArguments` plus what text-to-SQL training needs.

    `dataset_name` is a JSONL file of records, a local Hub-layout dataset folder, or a Hub dataset id.
    """

    dataset_test_split: str = field(
        default="validation",
        metadata={"help": "Evaluation split (sense-hub datasets have train and validation, split by database)."},
    )

    db_root: str | None = field(
        default=None,
        metadata={
            "help": "Folder with <db_id>/<db_id>.sqlite used to build prompts (schema + sample values). Defaults to "
            "<dataset>/../../databases when that exists (the quickstart layout). Records whose database is absent "
            "use their `schema` column."
        },
    )
    max_train_samples: int | None = field(
        default=None, metadata={"help": "Keep only the first N training records (quick runs)."}
    )
    merge_lora: bool = field(
        default=False,
        metadata={"help": "With use_peft: merge the adapter into the base weights and save a full model."},
    )
    eval_summary: list[str] | None = field(
        default=None,
        metadata={
            "help": "`sense-hub eval` summary JSON file(s) whose execution accuracy goes into the model card's "
            "model-index; `NAME=PATH` names the benchmark."
        },
    )
    hub_repo_id: str | None = field(
        default=None,
        metadata={"help": "Repository for --push_to_hub (defaults to --hub_model_id, then the output folder name)."},
    )
    max_train_minutes: float | None = field(
        default=None,
        metadata={
            "help": "Wall-clock budget of the training loop: stop after the step that passes it (CPU runs; the "
            "learning-rate schedule still follows max_steps). Unset: no budget."
        },
    )

    def __post_init__(self):
        if hasattr(super(), "__post_init__"):
            super().__post_init__()
        budget = self.max_train_minutes
        if budget is not None and not (math.isfinite(budget) and budget > 0):
            raise ValueError(f"`max_train_minutes` must be a positive number of minutes, got {budget}")


def cdpo_loss_settings(epsilon: float) -> tuple[list[str], list[float] | None, float]:
    """TRL `DPOConfig` settings `(loss_type, loss_weights, label_smoothing)` that give exact cDPO.

    Since TRL 0.29 the `sigmoid` loss ignores `label_smoothing`. TRL's `robust` loss is
    `((1-eps)*a - eps*b) / (1-2*eps)` with `a = -logsig(beta*delta)`, `b = -logsig(-beta*delta)`, so
    `2*(1-eps)*a - (1-2*eps)*robust = (1-eps)*a + eps*b`: the conservative DPO loss of Mitchell (2023).

    Args:
        epsilon: the label-noise rate, in [0, 0.5). 0 gives plain DPO (sigmoid).

    Raises:
        ValueError: `epsilon` outside [0, 0.5).
    """
    if not 0.0 <= epsilon < 0.5:
        raise ValueError(
            f"`cdpo_epsilon` must lie in [0, 0.5), got {epsilon}: it is the assumed rate of flipped preference "
            "labels (SENSE uses 0.1; 0 gives plain DPO)."
        )
    if epsilon == 0.0:
        return ["sigmoid"], None, 0.0
    return ["sigmoid", "robust"], [2.0 * (1.0 - epsilon), -(1.0 - 2.0 * epsilon)], epsilon


def cdpo_loss(delta, *, beta: float, epsilon: float):
    """The cDPO loss per pair from the margin `delta` (a tensor of policy-minus-reference log-ratio differences)."""
    import torch.nn.functional as F

    return -(1.0 - epsilon) * F.logsigmoid(beta * delta) - epsilon * F.logsigmoid(-beta * delta)


@dataclass
class CDPOConfig(DPOConfig):
    """`trl.DPOConfig` with exact conservative DPO and a preference loss chosen by name.

    With `preference_loss="cdpo"` (the default) the loss is
    `-(1-eps)*logsigmoid(beta*delta) - eps*logsigmoid(-beta*delta)` with `eps = cdpo_epsilon`, obtained from TRL's
    own losses (see `cdpo_loss_settings`); `loss_type`, `loss_weights` and `label_smoothing` are set from it.
    """

    cdpo_epsilon: float = field(
        default=0.1,
        metadata={"help": "cDPO label-noise rate eps in [0, 0.5) (SENSE: 0.1; 0 = plain DPO). Used by `cdpo`."},
    )
    preference_loss: str = field(
        default="cdpo",
        metadata={"help": "Which preference objective to train.", "choices": list(PREFERENCE_LOSSES)},
    )
    simpo_gamma: float = field(default=0.5, metadata={"help": "SimPO target reward margin (preference_loss=simpo)."})

    def __post_init__(self):
        if self.preference_loss not in PREFERENCE_LOSSES:
            raise ValueError(
                f"`preference_loss` must be one of {list(PREFERENCE_LOSSES)}, got {self.preference_loss!r}."
            )
        if self.preference_loss == "cdpo":
            self.loss_type, self.loss_weights, self.label_smoothing = cdpo_loss_settings(self.cdpo_epsilon)
        elif not 0.0 <= self.cdpo_epsilon < 0.5:
            cdpo_loss_settings(self.cdpo_epsilon)  # same message
        if self.preference_loss == "ipo":
            self.loss_type, self.loss_weights = ["ipo"], None
        super().__post_init__()


# ---------------------------------------------------------------------------------------------------------------
# Records -> TRL formats
# ---------------------------------------------------------------------------------------------------------------


def _prompt_for_record(record: Mapping[str, Any], *, db_root: str | Path | None, where: str) -> list[dict]:
    from sense_hub import prompts
    from sense_hub.databases import DatabaseError, database_path

    question = record.get("question")
    if not isinstance(question, str) or not question:
        raise TrainingDataError(f"{where}: missing field 'question'")
    evidence = record.get("evidence") or ""
    db_id = record.get("db_id") or ""
    if db_root is not None and db_id:
        try:
            db_path = database_path(db_root, db_id)
        except DatabaseError:
            db_path = None
        if db_path is not None:
            return prompts.prompt_for_database(question, db_path, evidence=evidence)
    schema = record.get("schema") or ""
    if not schema:
        raise TrainingDataError(
            f"{where}: database {db_id!r} not found under db_root={db_root!s} and the record has no `schema`; "
            "pass --db_root with <db_id>/<db_id>.sqlite inside"
        )
    return prompts.build_prompt(question, schema, evidence=evidence)


def strong_to_sft(records: Iterable[Mapping[str, Any]], *, db_root: str | Path | None = None) -> list[dict]:
    """Strong records -> TRL conversational prompt-completion records for SFT with completion-only loss.

    Args:
        records: strong records (`question`, `sql`, `db_id`, `schema`, `evidence`, ...; see `sense_hub.formats`).
        db_root: folder with `<db_id>/<db_id>.sqlite`; the prompt's schema comes from the database when it is
            there (`prompts.prompt_for_database`), otherwise from the record's `schema` column.

    Returns:
        `[{"prompt": [chat messages], "completion": [{"role": "assistant", "content": sql}]}, ...]`

    Raises:
        TrainingDataError: a record without question/SQL, or whose schema cannot be found.
    """
    out = []
    for i, record in enumerate(records, 1):
        where = f"strong record {i}"
        sql = record.get("sql")
        if not isinstance(sql, str) or not sql.strip():
            raise TrainingDataError(f"{where}: missing field 'sql'")
        prompt = _prompt_for_record(record, db_root=db_root, where=where)
        out.append({"prompt": prompt, "completion": [{"role": "assistant", "content": sql.strip()}]})
    return out


def weak_to_kto(records: Iterable[Mapping[str, Any]], *, db_root: str | Path | None = None) -> list[dict]:
    """Weak (labelled) records -> TRL unpaired preference records `{"prompt", "completion", "label"}` for KTO.

    Identical (question, SQL) candidates are kept once. `label` is the record's `correct` field.

    Raises:
        TrainingDataError: a record without `sql`/`correct`, or whose schema cannot be found.
    """
    out, seen, prompt_cache = [], set(), {}
    for i, record in enumerate(records, 1):
        where = f"weak record {i}"
        sql, correct = record.get("sql"), record.get("correct")
        if not isinstance(sql, str) or not isinstance(correct, bool):
            raise TrainingDataError(f"{where}: a weak record needs `sql` (str) and `correct` (bool)")
        key = (record.get("db_id"), record.get("question"), record.get("evidence") or "")
        if (key, sql.strip()) in seen or not sql.strip():
            continue
        seen.add((key, sql.strip()))
        if key not in prompt_cache:
            prompt_cache[key] = _prompt_for_record(record, db_root=db_root, where=where)
        out.append(
            {
                "prompt": prompt_cache[key],
                "completion": [{"role": "assistant", "content": sql.strip()}],
                "label": correct,
            }
        )
    return out


def pairs_to_preference(records: Iterable[Mapping[str, Any]]) -> list[dict]:
    """Pairs records -> `{"prompt", "chosen", "rejected"}` (provenance columns dropped)."""
    out = []
    for i, record in enumerate(records, 1):
        missing = [k for k in ("prompt", "chosen", "rejected") if not isinstance(record.get(k), list)]
        if missing:
            raise TrainingDataError(f"pairs record {i}: missing conversational field(s) {missing}")
        out.append({"prompt": record["prompt"], "chosen": record["chosen"], "rejected": record["rejected"]})
    return out


def pairs_to_kto(records: Iterable[Mapping[str, Any]]) -> list[dict]:
    """Pairs -> unpaired KTO records: each chosen completion labelled True, each rejected one False."""
    out = []
    for pair in pairs_to_preference(records):
        out.append({"prompt": pair["prompt"], "completion": pair["chosen"], "label": True})
        out.append({"prompt": pair["prompt"], "completion": pair["rejected"], "label": False})
    return out


def record_kind(columns: Iterable[str]) -> str:
    """Which kind of records a set of columns holds: "pairs", "weak", "strong", "sft" (prompt/completion), "kto".

    Raises:
        TrainingDataError: columns that match no kind.
    """
    cols = set(columns)
    if {"prompt", "chosen", "rejected"} <= cols:
        return "pairs"
    if {"prompt", "completion", "label"} <= cols:
        return "kto"
    if {"prompt", "completion"} <= cols:
        return "sft"
    if {"gold_sql", "sql", "correct"} <= cols:
        return "weak"
    if {"question", "sql"} <= cols:
        return "strong"
    raise TrainingDataError(
        f"cannot tell the record kind from columns {sorted(cols)}: expected strong (question, sql), weak "
        "(question, sql, gold_sql, correct) or pairs (prompt, chosen, rejected) records"
    )


def default_db_root(script_args: SenseScriptArguments) -> Path | None:
    if script_args.db_root:
        return Path(script_args.db_root)
    source = Path(script_args.dataset_name or "")
    base = source.parent if source.is_file() else source
    for candidate in (base.parent / "databases", base.parent.parent / "databases", base / "databases"):
        if candidate.is_dir():
            return candidate
    return None


def trainer_dataset(
    script_args: SenseScriptArguments, *, target: str, split: str | None = None, records: Sequence[dict] | None = None
):
    """Load `script_args.dataset_name` (or `records`) and convert it for a trainer.

    Args:
        script_args: dataset source, config, db_root, max_train_samples.
        target: "sft" (prompt/completion), "preference" (prompt/chosen/rejected) or "kto" (prompt/completion/label).
        split: which split (defaults to `dataset_train_split`); a missing split returns None.
        records: records to use instead of reading `dataset_name`.

    Returns:
        A `datasets.Dataset`, or None when the split is absent or empty.

    Raises:
        TrainingDataError: records of a kind that cannot feed `target` (e.g. weak records for DPO).
    """
    from datasets import Dataset

    split = split or script_args.dataset_train_split
    if records is None:
        if not script_args.dataset_name:
            raise TrainingDataError("no training data: pass --dataset_name (JSONL file, dataset folder or Hub id)")
        records = load_records(
            script_args.dataset_name, config=script_args.dataset_config, split=split, error=TrainingDataError
        )
    if not records:
        return None
    if split == script_args.dataset_train_split and script_args.max_train_samples:
        records = list(records)[: script_args.max_train_samples]
    kind = record_kind(records[0].keys())
    db_root = default_db_root(script_args)
    converters = {
        ("sft", "strong"): lambda r: strong_to_sft(r, db_root=db_root),
        ("sft", "sft"): lambda r: [{"prompt": x["prompt"], "completion": x["completion"]} for x in r],
        ("preference", "pairs"): pairs_to_preference,
        ("kto", "weak"): lambda r: weak_to_kto(r, db_root=db_root),
        ("kto", "pairs"): pairs_to_kto,
        ("kto", "kto"): lambda r: [
            {"prompt": x["prompt"], "completion": x["completion"], "label": x["label"]} for x in r
        ],
    }
    if (target, kind) not in converters:
        hint = " (build pairs first: `sense-hub pairs`)" if kind == "weak" else ""
        raise TrainingDataError(f"{script_args.dataset_name}: {kind} records cannot train {target}{hint}")
    return Dataset.from_list(converters[(target, kind)](records))


# ---------------------------------------------------------------------------------------------------------------
# Trainers
# ---------------------------------------------------------------------------------------------------------------


def resolve_model_name(name: str | None) -> str:
    """`model_name_or_path` as a loadable path or id ("embedded" -> the cached SmolLM2 folder)."""
    if not name:
        raise ValueError("`model_name_or_path` is required (a Hub id, a folder, or `embedded`)")
    from sense_hub.models import resolve_model

    return resolve_model(name)


def model_init_kwargs(training_args, model_args: ModelConfig) -> dict:
    """`from_pretrained` keyword arguments from the recipe's ModelConfig (revision, dtype, attention, remote code)
    and `training_args.model_init_kwargs`; used by SFT, cDPO and SPFT."""
    kwargs = {
        "revision": model_args.model_revision,
        "trust_remote_code": getattr(training_args, "trust_remote_code", False),
        "attn_implementation": model_args.attn_implementation,
        "dtype": model_args.dtype,
    }
    if training_args.model_init_kwargs:
        kwargs.update(training_args.model_init_kwargs)
    return {k: v for k, v in kwargs.items() if v is not None}


def peft_and_quantization(model_args: ModelConfig) -> tuple[Any, Any]:
    """The LoRA config and the bitsandbytes quantization config a ModelConfig asks for (None when it does not)."""
    from trl import get_peft_config, get_quantization_config

    return get_peft_config(model_args), get_quantization_config(model_args)


def _eval_dataset(script_args, training_args, target: str):
    if training_args.eval_strategy == "no":
        return None
    return trainer_dataset(script_args, target=target, split=script_args.dataset_test_split)


def build_sft_trainer(
    script_args: SenseScriptArguments,
    training_args: SFTConfig,
    model_args: ModelConfig,
    *,
    train_dataset=None,
    eval_dataset=None,
    callbacks: list | None = None,
):
    """An `SFTTrainer` for prompt-completion SFT with completion-only loss.

    Args:
        script_args: the dataset (`dataset_name`, `db_root`, ...), read unless `train_dataset` is given.
        training_args: the `SFTConfig`; `completion_only_loss` defaults to True for these records.
        model_args: `model_name_or_path` (a Hub id, a folder or "embedded"), dtype, LoRA/QLoRA settings.
        train_dataset: a prompt/completion `Dataset` to use instead of `dataset_name`.
        eval_dataset: likewise for evaluation.
        callbacks: extra `TrainerCallback`s.
    """
    from trl import SFTTrainer

    compact_lm_head()
    if train_dataset is None:
        train_dataset = trainer_dataset(script_args, target="sft")
        if eval_dataset is None:
            eval_dataset = _eval_dataset(script_args, training_args, "sft")
    if train_dataset is None:
        raise TrainingDataError(f"{script_args.dataset_name}: no records in split {script_args.dataset_train_split!r}")
    training_args.model_init_kwargs = model_init_kwargs(training_args, model_args)
    peft_config, quantization_config = peft_and_quantization(model_args)
    trainer = SFTTrainer(
        model=resolve_model_name(model_args.model_name_or_path),
        args=training_args,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        peft_config=peft_config,
        quantization_config=quantization_config,
        callbacks=callbacks,
    )
    _check_truncation(trainer, train_dataset, eval_dataset, source=script_args.dataset_name)
    return trainer


def _check_truncation(trainer, train_dataset, eval_dataset, *, source) -> None:
    """Say how many examples the trainer dropped for `max_length`; fail clearly when none are left.

    TRL's SFT and DPO trainers drop examples whose prompt alone fills `max_length` (nothing left to learn from);
    with every example dropped, training would otherwise die inside torch's sampler with `num_samples=0`.
    """
    if getattr(trainer.args, "packing", False):
        return  # packing joins examples, so counts say nothing about what was dropped
    max_length = getattr(trainer.args, "max_length", None)
    for split, given, kept in (
        ("train", train_dataset, trainer.train_dataset),
        ("eval", eval_dataset, trainer.eval_dataset),
    ):
        if not hasattr(given, "__len__") or not hasattr(kept, "__len__") or len(kept) == len(given):
            continue
        if len(kept) == 0:
            raise TrainingDataError(
                f"{source or 'the given dataset'}: every one of the {len(given)} {split} examples has a prompt of "
                f"max_length={max_length} tokens or more, so the trainer dropped them all; raise --max_length "
                "(prompts carry the database schema: 1024-2048 suits Spider-sized schemas)"
            )
        logger.warning(
            "%s: dropped %d of %d %s examples whose prompt alone fills max_length=%s tokens",
            source or "the given dataset",
            len(given) - len(kept),
            len(given),
            split,
            max_length,
        )


_DPO_ONLY_FIELDS = {"loss_type", "loss_weights", "label_smoothing", "cdpo_epsilon", "preference_loss"}


def _convert_args(args, target_cls, **overrides):
    """Copy the fields of `args` that differ from their defaults into a `target_cls` config (CPO/ORPO/KTO).

    Fields left at their `CDPOConfig` default keep the target's own default (e.g. KTO's sequential sampling).
    """
    names = {f.name for f in dataclasses.fields(target_cls) if f.init} - _DPO_ONLY_FIELDS
    values = {}
    for f in dataclasses.fields(args):
        if not f.init or f.name not in names:
            continue
        value = getattr(args, f.name)
        default = f.default if f.default is not dataclasses.MISSING else None
        if f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        if f.name == "output_dir" or value != default:
            values[f.name] = value.value if hasattr(value, "value") and isinstance(value, str) else value
    values.update(overrides)
    return target_cls(**values)


def build_preference_trainer(
    script_args: SenseScriptArguments,
    training_args: CDPOConfig,
    model_args: ModelConfig,
    *,
    train_dataset=None,
    eval_dataset=None,
    callbacks: list | None = None,
):
    """The trainer for `training_args.preference_loss`: DPOTrainer (cdpo, dpo, ipo), CPOTrainer (simpo),
    ORPOTrainer (orpo) or KTOTrainer (kto).

    Args:
        script_args: the dataset: pairs records (or weak records for kto), read unless `train_dataset` is given.
        training_args: a `CDPOConfig`.
        model_args: model, dtype, LoRA/QLoRA settings. With LoRA the reference model is the adapter-free base.
        train_dataset: a `Dataset` in the trainer's format instead of `dataset_name`.
        eval_dataset: likewise for evaluation.
        callbacks: extra `TrainerCallback`s.
    """
    target = "kto" if training_args.preference_loss == "kto" else "preference"
    if train_dataset is None:
        train_dataset = trainer_dataset(script_args, target=target)
        if eval_dataset is None:
            eval_dataset = _eval_dataset(script_args, training_args, target)
    if train_dataset is None:
        raise TrainingDataError(f"{script_args.dataset_name}: no records in split {script_args.dataset_train_split!r}")
    trainer = _preference_trainer(training_args, model_args, train_dataset, eval_dataset, callbacks)
    _check_truncation(trainer, train_dataset, eval_dataset, source=script_args.dataset_name)
    return trainer


def _preference_trainer(
    training_args: CDPOConfig, model_args: ModelConfig, train_dataset, eval_dataset, callbacks: list | None
):
    loss = training_args.preference_loss
    compact_lm_head()
    model_name = resolve_model_name(model_args.model_name_or_path)
    training_args.model_init_kwargs = model_init_kwargs(training_args, model_args)
    peft_config, quantization_config = peft_and_quantization(model_args)
    common = {"train_dataset": train_dataset, "eval_dataset": eval_dataset, "callbacks": callbacks}

    if loss in {"cdpo", "dpo", "ipo"}:
        from trl import DPOTrainer

        return DPOTrainer(
            model=model_name,
            args=training_args,
            peft_config=peft_config,
            quantization_config=quantization_config,
            **common,
        )
    if loss == "kto":
        from trl import KTOConfig, KTOTrainer

        args = _convert_args(training_args, KTOConfig)
        return KTOTrainer(
            model=model_name, args=args, peft_config=peft_config, quantization_config=quantization_config, **common
        )

    from transformers import AutoModelForCausalLM, AutoTokenizer

    init_kwargs = dict(training_args.model_init_kwargs)
    if quantization_config is not None:
        init_kwargs["quantization_config"] = quantization_config
    model = AutoModelForCausalLM.from_pretrained(model_name, **init_kwargs)
    tokenizer = AutoTokenizer.from_pretrained(model_name)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if loss == "simpo":
        from trl.experimental.cpo import CPOConfig, CPOTrainer

        args = _convert_args(
            training_args,
            CPOConfig,
            loss_type="simpo",
            cpo_alpha=0.0,
            simpo_gamma=training_args.simpo_gamma,
            model_init_kwargs=None,
        )
        trainer_cls = CPOTrainer
    else:
        from trl.experimental.orpo import ORPOConfig, ORPOTrainer

        args = _convert_args(training_args, ORPOConfig, model_init_kwargs=None)
        trainer_cls = ORPOTrainer
    return trainer_cls(model=model, args=args, processing_class=tokenizer, peft_config=peft_config, **common)


# ---------------------------------------------------------------------------------------------------------------
# Saving, cards, pushing
# ---------------------------------------------------------------------------------------------------------------


def save_trained_model(trainer, output_dir: str | Path, *, merge_lora: bool = False) -> Path:
    """Save the model (safetensors) and its tokenizer; with `merge_lora`, merge a LoRA adapter into the weights."""
    output_dir = Path(output_dir)
    model = trainer.accelerator.unwrap_model(trainer.model)
    if merge_lora and hasattr(model, "merge_and_unload"):
        merged = model.merge_and_unload()
        if trainer.accelerator.is_main_process:
            merged.save_pretrained(output_dir, safe_serialization=True)
            trainer.processing_class.save_pretrained(output_dir)
            for name in ("adapter_model.safetensors", "adapter_config.json"):
                (output_dir / name).unlink(missing_ok=True)
    else:
        trainer.save_model(str(output_dir))
    return output_dir


def load_eval_results(paths: Sequence[str] | None) -> list[dict]:
    """Read `sense-hub eval` summaries into model-card results (`sense_hub.cards.eval_summary_to_result`).

    Each path is `PATH` or `NAME=PATH`; the file holds the JSON summary `sense-hub eval` prints as its last stdout
    line (a whole `sense-hub eval` stdout capture works too). The benchmark is NAME, else the summary's
    `benchmark`/`dataset` field, else the file's stem.

    Raises:
        TrainingDataError: a missing file or a file without a JSON summary with an execution accuracy.
    """
    from sense_hub.cards import eval_summary_to_result

    results = []
    for spec in paths or []:
        name, _, raw = spec.partition("=") if "=" in spec else ("", "", spec)
        path = Path(raw)
        if not path.is_file():
            raise TrainingDataError(f"--eval_summary {path}: no such file (save it with `sense-hub eval ... > FILE`)")
        lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        summary = None
        for candidate in ("\n".join(lines), lines[-1] if lines else ""):
            try:
                summary = json.loads(candidate)
                break
            except json.JSONDecodeError:
                continue
        if not isinstance(summary, dict):
            raise TrainingDataError(f"--eval_summary {path}: expected the JSON summary line `sense-hub eval` prints")
        name = name or str(summary.get("benchmark") or summary.get("dataset") or path.stem)
        try:
            results.append(eval_summary_to_result(summary, dataset_name=name, dataset_id=name))
        except ValueError as err:
            raise TrainingDataError(f"--eval_summary {path}: {err}") from err
    return results


def card_hyperparameters(training_args, model_args: ModelConfig) -> dict[str, Any]:
    """The hyperparameters a model card lists (optimizer, schedule, batch, sequence length, LoRA, loss)."""
    world = max(1, getattr(training_args, "world_size", 1))
    hp = {
        "learning_rate": training_args.learning_rate,
        "lr_scheduler_type": str(getattr(training_args.lr_scheduler_type, "value", training_args.lr_scheduler_type)),
        "warmup_steps": training_args.warmup_steps,
        "num_train_epochs": training_args.num_train_epochs,
        "max_steps": training_args.max_steps,
        "per_device_train_batch_size": training_args.per_device_train_batch_size,
        "gradient_accumulation_steps": training_args.gradient_accumulation_steps,
        "total_train_batch_size": training_args.per_device_train_batch_size
        * training_args.gradient_accumulation_steps
        * world,
        "max_length": getattr(training_args, "max_length", None),
        "seed": training_args.seed,
        "precision": "bf16" if training_args.bf16 else ("fp16" if training_args.fp16 else "fp32"),
        "use_peft": model_args.use_peft,
    }
    if model_args.use_peft:
        hp.update(lora_r=model_args.lora_r, lora_alpha=model_args.lora_alpha, lora_dropout=model_args.lora_dropout)
        hp["load_in_4bit"] = model_args.load_in_4bit
    if isinstance(training_args, CDPOConfig):
        hp.update(
            preference_loss=training_args.preference_loss,
            beta=training_args.beta,
            cdpo_epsilon=training_args.cdpo_epsilon if training_args.preference_loss == "cdpo" else None,
            loss_type=list(training_args.loss_type),
            loss_weights=training_args.loss_weights,
        )
    if isinstance(training_args, SFTConfig):
        # None means "True for prompt-completion data", which is what `strong_to_sft` produces
        hp["completion_only_loss"] = training_args.completion_only_loss is not False
    return {k: v for k, v in hp.items() if v is not None}


def write_training_card(
    output_dir: str | Path,
    *,
    script_args,
    training_args,
    model_args: ModelConfig,
    stage: str,
    results: list[dict] | None = None,
    datasets: list[str] | None = None,
    sections: dict[str, str] | None = None,
    extra_hyperparameters: dict[str, Any] | None = None,
    tags: tuple[str, ...] = (),
    model_name: str | None = None,
) -> Path | None:
    """The card of a model a recipe trained, through `cards.write_model_card` (main process only).

    Args:
        output_dir: the saved model folder.
        script_args: dataset, `eval_summary` (read into results unless `results` is given), `hub_repo_id`.
        training_args: the trainer config (`card_hyperparameters`).
        model_args: the base model and LoRA settings.
        stage: "sft", "cdpo", "grpo", "spft": the card's recipe.
        results: model-index results; defaults to `load_eval_results(script_args.eval_summary)`.
        datasets: the training data (default: `script_args.dataset_name`).
        sections: heading -> markdown, put before the citation (GRPO's rewards, SPFT's rounds).
        extra_hyperparameters: the recipe's own settings, added to the table.
        tags: extra card tags.
        model_name: the card's model name (default: the folder's name, or the Hub repo's).
    """
    from sense_hub.cards import write_model_card
    from sense_hub.models import hub_model_id

    dataset = getattr(script_args, "dataset_name", None)
    model_id = getattr(script_args, "hub_repo_id", None) or getattr(training_args, "hub_model_id", None)
    return write_model_card(
        output_dir,
        base_model=hub_model_id(model_args.model_name_or_path or ""),
        datasets=datasets if datasets is not None else [dataset] if dataset else [],
        recipe=stage,
        hyperparameters={**card_hyperparameters(training_args, model_args), **(extra_hyperparameters or {})},
        results=results if results is not None else load_eval_results(getattr(script_args, "eval_summary", None)),
        sections=sections,
        model_id=model_id,
        model_name=model_name or (model_id.split("/")[-1] if model_id else None),
        tags=tags,
    )


def _finish(trainer, script_args, training_args, model_args, *, stage: str, push: bool) -> Path:
    output_dir = save_trained_model(trainer, training_args.output_dir, merge_lora=script_args.merge_lora)
    if trainer.accelerator.is_main_process:
        trainer.state.save_to_json(str(Path(output_dir) / "trainer_state.json"))  # the log history
        write_training_card(
            output_dir, script_args=script_args, training_args=training_args, model_args=model_args, stage=stage
        )
        if push:
            from sense_hub.hub import push_model_folder

            repo_id = script_args.hub_repo_id or training_args.hub_model_id or Path(output_dir).name
            url = push_model_folder(output_dir, repo_id=repo_id, private=bool(training_args.hub_private_repo))
            logger.info("pushed %s to %s", output_dir, url)
    trainer.accelerator.wait_for_everyone()
    return output_dir


def log_steps_quietly(trainer) -> None:
    """Send the trainer's per-step metric dicts to the `sense_hub.training` logger instead of stdout.

    The training bar stays (one per stage); the dicts that `ProgressCallback` / `PrinterCallback` print under it,
    and the nested evaluation bar, do not reach the terminal: they are log records, which `terminal.capture_to_log`
    writes to the run's log file.
    """
    from transformers.trainer_callback import PrinterCallback, ProgressCallback, TrainerCallback

    class StepLogProgress(ProgressCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            if state.is_world_process_zero and logs:
                logger.info("step %d: %s", state.global_step, json.dumps(logs, default=str))

        def on_prediction_step(self, args, state, control, eval_dataloader=None, **kwargs):
            return None  # no nested evaluation bar

    class StepLog(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            if state.is_world_process_zero and logs:
                logger.info("step %d: %s", state.global_step, json.dumps(logs, default=str))

    if trainer.pop_callback(ProgressCallback) is not None:
        trainer.add_callback(StepLogProgress())
    if trainer.pop_callback(PrinterCallback) is not None:
        trainer.add_callback(StepLog())


class TimeBudgetCallback(TrainerCallback):
    """Stops training after the first optimizer step that ends past `minutes` of wall time (`max_train_minutes`)."""

    def __init__(self, minutes: float) -> None:
        self.seconds = 60.0 * minutes
        self.started: float | None = None
        self.stopped_at: int | None = None

    def on_train_begin(self, args, state, control, **kwargs):
        self.started = time.monotonic()

    def on_step_end(self, args, state, control, **kwargs):
        if self.started is not None and time.monotonic() - self.started >= self.seconds and state.global_step:
            if not control.should_training_stop and self.stopped_at is None:
                self.stopped_at = state.global_step
                logger.warning(
                    "max_train_minutes (%g) reached: stopping after step %d of %d",
                    self.seconds / 60,
                    state.global_step,
                    state.max_steps,
                )
            control.should_training_stop = True
        return control


def train(trainer, training_args, max_train_minutes: float | None = None) -> None:
    configure_threads()
    if max_train_minutes:
        trainer.add_callback(TimeBudgetCallback(max_train_minutes))
    log_steps_quietly(trainer)
    result = trainer.train(resume_from_checkpoint=training_args.resume_from_checkpoint)
    loss = result.training_loss
    if not math.isfinite(loss):
        logger.warning("training loss is not finite (%s): check the learning rate and the data", loss)


def run_sft(
    script_args: SenseScriptArguments, training_args: SFTConfig, model_args: ModelConfig, *, callbacks=None
) -> Path:
    """Train with SFT on strong records; save the model (safetensors) and a model card; push when asked.

    Returns:
        The output folder.
    """
    push = bool(training_args.push_to_hub)
    training_args.push_to_hub = False  # the card is ours; we push the finished folder once
    trainer = build_sft_trainer(script_args, training_args, model_args, callbacks=callbacks)
    train(trainer, training_args, script_args.max_train_minutes)
    return _finish(trainer, script_args, training_args, model_args, stage="sft", push=push)


def run_cdpo(
    script_args: SenseScriptArguments, training_args: CDPOConfig, model_args: ModelConfig, *, callbacks=None
) -> Path:
    """Train with cDPO (or the chosen `preference_loss`) on pairs; save the model and a model card; push when asked.

    Returns:
        The output folder.
    """
    push = bool(training_args.push_to_hub)
    training_args.push_to_hub = False
    trainer = build_preference_trainer(script_args, training_args, model_args, callbacks=callbacks)
    train(trainer, training_args, script_args.max_train_minutes)
    return _finish(trainer, script_args, training_args, model_args, stage=training_args.preference_loss, push=push)
