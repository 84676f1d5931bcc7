"""`sense-hub quickstart`: the whole SENSE pipeline, offline, on the bundled databases and the embedded model.

Stages, in order (each leaves files behind and is skipped when it already finished, so a killed run resumes):

1. `databases`  build the bundled sample databases into `DIR/databases/<db_id>/<db_id>.sqlite`
2. `strong`     template synthesis (+ strong-LLM synthesis when an endpoint is configured), execution-verified
3. `weak`       the student samples N SQL candidates per training question, labelled by execution
4. `pairs`      preference pairs from the labelled candidates
5. `datasets`   Hub dataset repo layouts in `DIR/datasets/{strong,weak,pairs}` with cards
6. `eval_base`  execution accuracy of the untrained model on the held-out database's questions
7. `sft`        LoRA SFT on the human + strong data (TRL)         -> `DIR/models/sense-sft`
8. `eval_sft`   execution accuracy after SFT
9. `cdpo`       conservative DPO on the pairs, from the SFT model -> `DIR/models/sense-cdpo`
10. `eval_cdpo` execution accuracy after cDPO
11. `report`    `DIR/report.json` (EX with 95% intervals, paired p-values) and the cards' `model-index` results
12. `push`      with `--push-to-hub ORG`: every dataset and model to the Hub
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sense_hub import configs
from sense_hub.configs import check_field_types
from sense_hub.errors import ResumeError, SenseHubError, UsageError
from sense_hub.records import read_jsonl, write_json, write_jsonl

logger = logging.getLogger(__name__)

STAGES = (
    "databases",
    "strong",
    "weak",
    "pairs",
    "datasets",
    "eval_base",
    "sft",
    "eval_sft",
    "cdpo",
    "eval_cdpo",
    "report",
    "push",
)


@dataclass
class QuickstartConfig:
    """Settings of the quickstart; a YAML file given with `--config` sets any of these fields."""

    output_dir: str = field(default="out/quickstart", metadata={"help": "Where every artifact is written."})
    model: str = field(
        default="embedded:qwen2.5-coder-0.5b",
        metadata={
            "help": "The student (base model of training) and the weak sampler: an embedded model or a folder. "
            "Default: Qwen2.5-Coder-0.5B-Instruct, which answers about half of Spider's dev questions untrained."
        },
    )
    db_root: str | None = field(
        default=None,
        metadata={"help": "A Spider-layout database folder to use instead of the bundled sample databases."},
    )
    db_ids: list[str] | None = field(default=None, metadata={"help": "Databases to use (default: all)."})
    eval_db_ids: list[str] | None = field(
        default=None,
        metadata={
            "help": "Held-out databases, whose hand-written questions are scored and never trained on. Default: the "
            "bundled `warehouse_ops` (79 hand-written questions); with `db_root`, the databases the dataset writer "
            "puts in the validation split (split by database, `validation_fraction`)."
        },
    )
    adapt: bool = field(
        default=True,
        metadata={
            "help": "Adapt the student to the held-out databases: the teacher's verified questions over them train "
            "too (`sense-hub adapt`'s recipe), while their hand-written questions are only scored. False: SENSE's "
            "cross-domain split, where the held-out databases are not trained on at all."
        },
    )
    validation_fraction: float = field(default=0.1, metadata={"help": "Share of databases held out."})
    templates_per_database: int = field(default=120, metadata={"help": "Template SQL candidates per database."})
    synthesis_rounds: int = field(
        default=2,
        metadata={"help": "Question rounds of template synthesis (the later ones get the verifier's feedback)."},
    )
    verifier_model: str | None = field(
        default=None,
        metadata={
            "help": "The model that writes template questions (SQL-to-text) and verifies them (its SQL must give the "
            "template SQL's result; SPFT-SQL's verification), e.g. 'embedded:qwen2.5-coder-0.5b' (~6 s a candidate "
            "here, 26% kept on warehouse_ops) or the 1.5B. Default null, to fit the demo's budget: questions are "
            "rule-written from the template and records say 'executed'."
        },
    )
    question_model: str | None = field(
        default=None,
        metadata={
            "help": "A separate SQL-to-text writer of template questions (default: the verifier model). "
            "'embedded:qwen2.5-coder-1.5b' writes better questions (25 vs 16 of 57 verified) at ~3x the cost."
        },
    )
    verifier_backend: str | None = field(default=None, metadata={"help": "Backend of the verifier model."})
    verifier_base_url: str | None = field(default=None, metadata={"help": "Endpoint of the verifier model."})
    strong_model: str | None = field(
        default=None, metadata={"help": "A strong LLM for new domains (skipped when unset)."}
    )
    strong_backend: str = field(default="openai", metadata={"help": "Backend of the strong model."})
    strong_base_url: str | None = field(default=None, metadata={"help": "Endpoint of the strong model."})
    strong_api_key: str | None = field(default=None, metadata={"help": "API key of the strong model endpoint."})
    strong_examples: int = field(default=20, metadata={"help": "How many strong-LLM examples to synthesize."})
    weak_questions: int = field(default=32, metadata={"help": "Questions the weak model samples candidates for."})
    weak_samples: int = field(default=4, metadata={"help": "Candidates per question (SENSE's N)."})
    weak_temperature: float = field(default=0.8, metadata={"help": "Sampling temperature of the weak model."})
    pairs_preset: str = field(default="keep-gold-limit1", metadata={"help": "Pair construction preset."})
    eval_questions: int = field(
        default=80,
        metadata={
            "help": "Held-out questions scored before/after training: the held-out databases' hand-written "
            "questions (the bundled `warehouse_ops` has 79); without `adapt`, then their synthesized ones."
        },
    )
    max_new_tokens: int = field(default=96, metadata={"help": "Generation budget per SQL."})
    sft_steps: int = field(default=16, metadata={"help": "SFT optimizer steps."})
    sft_learning_rate: float = field(default=2e-4, metadata={"help": "SFT learning rate (a LoRA rate)."})
    cdpo_steps: int = field(default=8, metadata={"help": "cDPO optimizer steps."})
    cdpo_learning_rate: float = field(
        default=5e-5, metadata={"help": "cDPO learning rate (a LoRA rate; at 2e-5 six steps left the loss at 0.69)."}
    )
    cdpo_epsilon: float = field(default=0.1, metadata={"help": "cDPO label-noise epsilon (SENSE: 0.1)."})
    cdpo_beta: float = field(default=0.1, metadata={"help": "DPO beta."})
    batch_size: int = field(default=4, metadata={"help": "Training batch size."})
    lora: bool = field(
        default=True, metadata={"help": "Train LoRA adapters (r 16), merged into the weights when saved; false: all."}
    )
    lora_top_layers: int = field(
        default=8,
        metadata={
            "help": "LoRA on the linear layers of the top N transformer blocks only (0: every block). The backward "
            "pass stops at the lowest adapted block: 8 of Qwen 0.5B's 24 gives 1.36x the tokens/s of all blocks."
        },
    )
    generation_batch_size: int = field(
        default=32, metadata={"help": "Sequences generated together by a local model (prompts x samples)."}
    )
    max_length: int = field(
        default=2048,
        metadata={
            "help": "Training sequence length cap (tokens): warehouse_ops prompts with sample values run ~1,400."
        },
    )
    push_to_hub: str | None = field(default=None, metadata={"help": "Hub organisation to publish everything to."})
    private: bool = field(default=False, metadata={"help": "Create private Hub repos."})
    seed: int = field(default=0, metadata={"help": "Seed of every random choice."})

    def __post_init__(self) -> None:
        for name, value in check_field_types(type(self), dataclasses.asdict(self)).items():
            setattr(self, name, value)
        for name in _AT_LEAST_ONE:
            if getattr(self, name) < 1:
                raise UsageError(f"`{name}` must be at least 1, got {getattr(self, name)}")
        if self.lora_top_layers < 0:
            raise UsageError(f"`lora_top_layers` must be 0 (every block) or more, got {self.lora_top_layers}")
        if self.strong_examples < 0:
            raise UsageError(f"`strong_examples` must be 0 or more, got {self.strong_examples}")
        if not 0 <= self.validation_fraction < 1:
            raise UsageError(f"`validation_fraction` must lie in [0, 1), got {self.validation_fraction}")
        for name in ("sft_learning_rate", "cdpo_learning_rate", "cdpo_beta"):
            if not 0 < getattr(self, name) < math.inf:
                raise UsageError(f"`{name}` must be a positive number, got {getattr(self, name)}")
        if not 0 <= self.weak_temperature < math.inf:
            raise UsageError(f"`weak_temperature` must be 0 (greedy) or more, got {self.weak_temperature}")
        if not 0 <= self.cdpo_epsilon < 0.5:
            raise UsageError(f"`cdpo_epsilon` must lie in [0, 0.5), got {self.cdpo_epsilon}")
        if self.eval_db_ids is not None and not self.eval_db_ids:
            raise UsageError("`eval_db_ids` must name at least one held-out database (or be left unset)")
        from sense_hub.pairs import PRESETS

        if self.pairs_preset not in PRESETS:
            raise UsageError(f"unknown `pairs_preset` {self.pairs_preset!r}; choose from {sorted(PRESETS)}")
        from sense_hub.models import get_model, is_embedded

        for name in ("model", "verifier_model", "question_model"):
            if is_embedded(getattr(self, name)):
                try:
                    get_model(getattr(self, name))
                except SenseHubError as err:
                    raise UsageError(f"`{name}`: {err}") from err

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


_AT_LEAST_ONE = (
    "weak_questions",
    "weak_samples",
    "eval_questions",
    "max_new_tokens",
    "sft_steps",
    "cdpo_steps",
    "batch_size",
    "generation_batch_size",
    "max_length",
    "templates_per_database",
    "synthesis_rounds",
)


def load_config(path: str | Path | None, overrides: dict[str, Any]) -> QuickstartConfig:
    """Read a YAML config of `QuickstartConfig` fields (if any) and apply command-line overrides (`configs.load`)."""
    return configs.load(QuickstartConfig, path, overrides)


# ---------------------------------------------------------------------------------------------------------------
# Paths and state
# ---------------------------------------------------------------------------------------------------------------


@dataclass
class Layout:
    root: Path

    @property
    def databases(self) -> Path:
        return self.root / "databases"

    @property
    def work(self) -> Path:
        return self.root / "work"

    def dataset(self, name: str) -> Path:
        return self.root / "datasets" / name

    def model(self, name: str) -> Path:
        return self.root / "models" / name

    @property
    def state_file(self) -> Path:
        return self.work / "state.json"

    @property
    def report(self) -> Path:
        return self.root / "report.json"

    @property
    def log(self) -> Path:
        return self.root / "quickstart.log"

    def judged(self, stage: str) -> Path:
        """One stage's judged held-out predictions (`sense-hub compare` reads them)."""
        return self.work / f"judged-{stage}.jsonl"


class State:
    """Which stages finished (with their summaries), persisted after every stage."""

    def __init__(self, path: Path, config: dict[str, Any]):
        self.path = path
        self.config = config
        self.done: dict[str, dict[str, Any]] = {}
        if path.exists():
            saved = json.loads(path.read_text())
            if saved.get("config") != config:
                changed = sorted(k for k in config if saved.get("config", {}).get(k) != config[k])
                raise ResumeError(
                    f"{path.parent.parent} was made with different settings ({', '.join(changed)}); "
                    "use a new --output-dir, or pass --restart to start over"
                )
            self.done = saved.get("done", {})

    def save(self) -> None:
        write_json(self.path, {"config": self.config, "done": self.done}, sort_keys=True)


# ---------------------------------------------------------------------------------------------------------------
# The stages
# ---------------------------------------------------------------------------------------------------------------


class Pipeline:
    """Runs the stages in order for one output directory, skipping the ones that already finished."""

    def __init__(self, config: QuickstartConfig, *, restart: bool = False):
        self.config = config
        self.layout = Layout(Path(config.output_dir))
        if restart and self.layout.state_file.exists():
            self.layout.state_file.unlink()
        self.state = State(self.layout.state_file, config.to_dict())
        self._generators: dict[str, Any] = {}

    # -- helpers ---------------------------------------------------------------------------------------------

    def generator(self, model: str):
        """One loaded generator per model, kept warm across stages."""
        if model not in self._generators:
            from sense_hub.generation import load_generator

            self._generators[model] = load_generator(model, batch_size=self.config.generation_batch_size)
        return self._generators[model]

    def release(self, model: str) -> None:
        self._generators.pop(model, None)

    def db_paths(self) -> dict[str, Path]:
        from sense_hub.databases import list_databases

        dbs = list_databases(self.layout.databases)
        if self.config.db_ids:
            missing = sorted(set(self.config.db_ids) - set(dbs))
            if missing:
                raise UsageError(f"db_ids {missing} not found under {self.layout.databases}")
            dbs = {k: v for k, v in dbs.items() if k in self.config.db_ids}
        return dbs

    @property
    def eval_db_ids(self) -> list[str]:
        return self.state.done["databases"]["eval_databases"]

    def is_eval_db(self, db_id: str) -> bool:
        return db_id in self.eval_db_ids

    # -- stages ----------------------------------------------------------------------------------------------

    def stage_databases(self) -> dict[str, Any]:
        import shutil

        from sense_hub.databases import list_databases
        from sense_hub.sample_data import (
            ADAPT_DB_ID,
            SAMPLE_DB_IDS,
            build_sample_databases,
            heldout_examples,
            seed_examples,
        )

        if self.config.db_root:
            for db_id, path in list_databases(self.config.db_root).items():
                if self.config.db_ids and db_id not in self.config.db_ids:
                    continue
                target = self.layout.databases / db_id / f"{db_id}.sqlite"
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(path, target)
            seeds: list[dict] = []
        else:
            build_sample_databases(self.layout.databases, db_ids=(*SAMPLE_DB_IDS, ADAPT_DB_ID))
            seeds = seed_examples() + heldout_examples(ADAPT_DB_ID)
        write_jsonl(self.layout.work / "seeds.jsonl", seeds)
        from sense_hub.hub import split_by_database

        dbs = self.db_paths()
        if len(dbs) < 2:
            raise UsageError(f"the quickstart needs at least two databases (one held out), found {sorted(dbs)}")
        if self.config.eval_db_ids is None and not self.config.db_root:
            eval_dbs = [ADAPT_DB_ID]
        elif self.config.eval_db_ids is None:
            split = split_by_database(
                [{"db_id": db_id} for db_id in dbs],
                validation_fraction=max(self.config.validation_fraction, 1e-9),
                seed=self.config.seed,
            )
            eval_dbs = sorted(r["db_id"] for r in split["validation"])
        else:
            eval_dbs = sorted(self.config.eval_db_ids)
            unknown = sorted(set(eval_dbs) - set(dbs))
            if unknown:
                raise UsageError(f"eval_db_ids {unknown} are not among the databases {sorted(dbs)}")
        return {"databases": sorted(dbs), "eval_databases": eval_dbs, "seed_questions": len(seeds)}

    def stage_strong(self) -> dict[str, Any]:
        from sense_hub.synthesis import synthesize_strong, synthesize_templates

        dbs = self.db_paths()
        verifier = None
        if self.config.verifier_model:
            from sense_hub.generation import load_generator

            verifier = load_generator(
                self.config.verifier_model,
                backend=self.config.verifier_backend,
                base_url=self.config.verifier_base_url,
                batch_size=self.config.generation_batch_size,
            )
        writer = verifier
        if verifier is not None and self.config.question_model:
            writer = load_generator(
                self.config.question_model,
                backend=self.config.verifier_backend,
                base_url=self.config.verifier_base_url,
                batch_size=self.config.generation_batch_size,
            )
        records = synthesize_templates(
            sorted(path for db_id, path in dbs.items() if db_id in self.synthesis_db_ids()),
            generator=writer,
            verifier=verifier,
            output=self.layout.work / "strong-templates.jsonl",
            per_database=self.config.templates_per_database,
            rounds=self.config.synthesis_rounds,
            seed=self.config.seed,
        )
        summary: dict[str, Any] = {"templates": len(records)}
        if self.config.strong_model:
            from sense_hub.generation import load_generator

            strong = load_generator(
                self.config.strong_model,
                backend=self.config.strong_backend,
                base_url=self.config.strong_base_url,
                api_key=self.config.strong_api_key,
            )
            llm_records = synthesize_strong(
                strong,
                seeds=read_jsonl(self.layout.work / "seeds.jsonl"),
                output=self.layout.work / "strong-llm.jsonl",
                db_out_root=self.layout.databases,
                n=self.config.strong_examples,
                seed=self.config.seed,
            )
            records = records + llm_records
            summary["strong_llm"] = len(llm_records)
        write_jsonl(self.layout.work / "strong.jsonl", records)
        summary["total"] = len(records)
        return summary

    def synthesis_db_ids(self) -> list[str]:
        """The databases template synthesis covers: the training ones, and the held-out ones only when their
        hand-written questions are fewer than `eval_questions` (their synthesized ones then fill the evaluation)."""
        if self.config.adapt:  # the teacher writes for the databases the student adapts to
            return list(self.eval_db_ids)
        seeds = [r for r in read_jsonl(self.layout.work / "seeds.jsonl") if self.is_eval_db(r["db_id"])]
        training = [db_id for db_id in self.db_paths() if not self.is_eval_db(db_id)]
        return training + (self.eval_db_ids if len(seeds) < self.config.eval_questions else [])

    def _examples(self, records: list[dict], prefix: str):
        from sense_hub.benchmarks import Example

        return [
            Example(
                question_id=r.get("question_id") or r.get("id") or f"{prefix}-{i}",
                db_id=r["db_id"],
                question=r["question"],
                sql=r["sql"],
                evidence=r.get("evidence", ""),
            )
            for i, r in enumerate(records)
        ]

    def training_records(self) -> tuple[list[dict], list[dict]]:
        """(hand-written, strong) records that may train: never a held-out database's hand-written question; with
        `adapt`, the strong records of the held-out databases too (minus any that repeat a held-out question)."""
        seeds = read_jsonl(self.layout.work / "seeds.jsonl")
        held_out = {" ".join(r["question"].lower().split()) for r in seeds if self.is_eval_db(r["db_id"])}
        strong = [
            r
            for r in read_jsonl(self.layout.work / "strong.jsonl")
            if (self.config.adapt or not self.is_eval_db(r["db_id"]))
            and " ".join(r["question"].lower().split()) not in held_out
        ]
        return [r for r in seeds if not self.is_eval_db(r["db_id"])], strong

    def train_examples(self):
        import random

        seeds, strong = self.training_records()
        rng = random.Random(self.config.seed)
        rng.shuffle(strong)
        return (self._examples(seeds, "seed") + self._examples(strong, "strong"))[: self.config.weak_questions]

    def eval_examples(self):
        seeds = [r for r in read_jsonl(self.layout.work / "seeds.jsonl") if self.is_eval_db(r["db_id"])]
        strong = (
            []
            if self.config.adapt
            else [r for r in read_jsonl(self.layout.work / "strong.jsonl") if self.is_eval_db(r["db_id"])]
        )
        return (self._examples(seeds, "seed") + self._examples(strong, "strong"))[: self.config.eval_questions]

    def stage_weak(self) -> dict[str, Any]:
        from sense_hub.sampling import sample_candidates

        records = sample_candidates(
            self.train_examples(),
            self.generator(self.config.model),
            db_root=self.layout.databases,
            n=self.config.weak_samples,
            output=self.layout.work / "weak.jsonl",
            temperature=self.config.weak_temperature,
            max_new_tokens=self.config.max_new_tokens,
            metric="strict",
            seed=self.config.seed,
        )
        correct = sum(r["correct"] for r in records)
        executed = sum(r["status"] == "ok" for r in records)
        return {"candidates": len(records), "correct": correct, "executed": executed}

    def stage_pairs(self) -> dict[str, Any]:
        from sense_hub.pairs import PRESETS, build_pairs

        if self.config.pairs_preset not in PRESETS:
            raise UsageError(f"unknown pairs_preset {self.config.pairs_preset!r}; choose from {sorted(PRESETS)}")
        weak = read_jsonl(self.layout.work / "weak.jsonl")
        pairs, stats = build_pairs(weak, config=PRESETS[self.config.pairs_preset], db_root=self.layout.databases)
        if not pairs:
            raise RuntimeError(f"no preference pairs could be built from {len(weak)} weak samples: {stats}")
        write_jsonl(self.layout.work / "pairs.jsonl", pairs)
        write_json(self.layout.work / "pairs.stats.json", stats)  # every counter of the pair builder
        return {"pairs": len(pairs), "questions_with_pairs": len({p.get("question_id") for p in pairs})}

    def stage_datasets(self) -> dict[str, Any]:
        from sense_hub.hub import write_dataset_repo

        command = "sense-hub quickstart --output-dir " + str(self.layout.root)
        out = {}
        for kind, file, config_name, fraction in (
            ("strong", "strong.jsonl", "default", self.config.validation_fraction),
            ("weak", "weak.jsonl", "default", 0.0),
            ("pairs", "pairs.jsonl", self.config.pairs_preset, 0.0),
        ):
            records = read_jsonl(self.layout.work / file)
            write_dataset_repo(
                records,
                kind=kind,
                out_dir=self.layout.dataset(kind),
                config_name=config_name,
                validation_fraction=fraction,
                seed=self.config.seed,
                card={
                    "command": command,
                    "models": [self.config.model]
                    + [
                        m
                        for m in (self.config.question_model, self.config.verifier_model, self.config.strong_model)
                        if m
                    ],
                    "parameters": self.config.to_dict(),
                },
                db_root=self.layout.databases,
            )
            out[kind] = len(records)
        return out

    def _evaluate(self, model: str, name: str) -> dict[str, Any]:
        """Greedy SQL for the held-out questions, judged; one line per question in `work/judged-<name>.jsonl`."""
        from sense_hub.evaluation import input_fingerprints, score_examples

        examples = self.eval_examples()
        db_paths = self.db_paths()
        rows, summary = score_examples(
            self.generator(model),
            examples,
            db_paths=[db_paths[e.db_id] for e in examples],
            max_new_tokens=self.config.max_new_tokens,
            metric="spider",
            output=self.layout.judged(name),
        )
        return {
            "model": model,
            "questions": len(examples),
            "correct": summary["correct"],
            "execution_accuracy": summary["correct"] / max(1, len(rows)),
            "executable": sum(r["error"] is None for r in rows) / max(1, len(rows)),
            # what the score was computed on, for the model card (`sense-hub eval --expect-fingerprints README.md`)
            "fingerprints": input_fingerprints(
                [{"db_id": e.db_id, "gold": e.sql} for e in examples], db_root=self.layout.databases, predictions=None
            )[0],
        }

    def stage_eval_base(self) -> dict[str, Any]:
        return self._evaluate(self.config.model, "base")

    def _training_args(self, config_cls, *, output_dir: Path, steps: int, learning_rate: float, **extra):
        from sense_hub.generation import cpu_has_native_bf16

        return config_cls(
            output_dir=str(output_dir),
            use_cpu=True,
            bf16=cpu_has_native_bf16(),  # autocast: 1.6x the fp32 tokens/s here, fp32 weights (bench/train_speed.py)
            gradient_checkpointing=False,
            report_to="none",
            logging_steps=1,
            save_strategy="no",
            dataloader_num_workers=0,
            seed=self.config.seed,
            learning_rate=learning_rate,
            lr_scheduler_type="cosine",
            max_steps=steps,
            max_length=self.config.max_length,
            disable_tqdm=False,
            **{"per_device_train_batch_size": self.config.batch_size, **extra},
        )

    def _train(self, stage: str, *, base: str, dataset: Path, output_dir: Path) -> dict[str, Any]:
        from trl import ModelConfig, SFTConfig

        from sense_hub import training

        script = training.SenseScriptArguments(
            dataset_name=str(dataset),
            db_root=str(self.layout.databases),
            merge_lora=self.config.lora,
            hub_repo_id=f"{self.config.push_to_hub or 'sense'}/{output_dir.name}",  # the card's name and usage
        )
        model_args = ModelConfig(model_name_or_path=base, dtype="float32")
        if self.config.lora:
            model_args.use_peft = True
            model_args.lora_r, model_args.lora_alpha, model_args.lora_dropout = (
                16,
                32,
                0.0,
            )  # dropout masks: 11% of a CPU step
            model_args.lora_target_modules = lora_targets(base, self.config.lora_top_layers)
        if stage == "sft":
            args = self._training_args(
                SFTConfig,
                output_dir=output_dir,
                steps=self.config.sft_steps,
                learning_rate=self.config.sft_learning_rate,
                completion_only_loss=True,
            )
            training.run_sft(script, args, model_args)
        else:
            script.dataset_config = self.config.pairs_preset
            args = self._training_args(
                training.CDPOConfig,
                output_dir=output_dir,
                steps=self.config.cdpo_steps,
                learning_rate=self.config.cdpo_learning_rate,
                preference_loss="cdpo",
                cdpo_epsilon=self.config.cdpo_epsilon,
                beta=self.config.cdpo_beta,
                precompute_ref_log_probs=True,
                # two pairs (four sequences) per forward pass, two passes per step: the same batch at about half
                # the peak memory (a chosen+rejected batch's logits over Qwen's 151k-token vocabulary are large)
                per_device_train_batch_size=self.config.batch_size // (2 - self.config.batch_size % 2),
                gradient_accumulation_steps=2 - self.config.batch_size % 2,
            )
            training.run_cdpo(script, args, model_args)
        return {
            "model_dir": str(output_dir),
            "hyperparameters": training.card_hyperparameters(args, model_args),
        }

    def stage_sft(self) -> dict[str, Any]:
        self.release(self.config.model)
        # SENSE's SFT data: the human questions of the training databases and the strong records (with `adapt`, the
        # held-out databases' verified synthetic questions too; their hand-written ones are for evaluation only)
        seeds, strong = self.training_records()
        train = [{"id": f"seed-{i}", **r} for i, r in enumerate(seeds)] + strong
        write_jsonl(self.layout.work / "sft-train.jsonl", train)
        return self._train(
            "sft",
            base=self.config.model,
            dataset=self.layout.work / "sft-train.jsonl",
            output_dir=self.layout.model("sense-sft"),
        )

    def stage_eval_sft(self) -> dict[str, Any]:
        return self._evaluate(str(self.layout.model("sense-sft")), "sft")

    def stage_cdpo(self) -> dict[str, Any]:
        self.release(str(self.layout.model("sense-sft")))
        return self._train(
            "cdpo",
            base=str(self.layout.model("sense-sft")),
            dataset=self.layout.dataset("pairs"),
            output_dir=self.layout.model("sense-cdpo"),
        )

    def stage_eval_cdpo(self) -> dict[str, Any]:
        return self._evaluate(str(self.layout.model("sense-cdpo")), "cdpo")

    def stage_report(self) -> dict[str, Any]:
        from sense_hub.cards import add_results, write_model_card

        done = self.state.done
        report = {
            "eval_set": {
                "databases": self.eval_db_ids,
                "questions": done["eval_base"]["questions"],
                "metric": "execution accuracy (spider semantics)",
                "kind": "hand-written questions, never trained on"
                + (
                    "; the student was adapted to these databases (their verified synthetic questions)"
                    if self.config.adapt
                    else ""
                ),
            },
            "execution_accuracy": {
                "base": done["eval_base"]["execution_accuracy"],
                "sft": done["eval_sft"]["execution_accuracy"],
                "cdpo": done["eval_cdpo"]["execution_accuracy"],
            },
            "executable": {
                "base": done["eval_base"]["executable"],
                "sft": done["eval_sft"]["executable"],
                "cdpo": done["eval_cdpo"]["executable"],
            },
            "data": {
                "strong": done["datasets"]["strong"],
                "weak": done["datasets"]["weak"],
                "pairs": done["datasets"]["pairs"],
            },
            "config": self.config.to_dict(),
        }
        paired = self.paired_results()
        if paired is not None:
            report.update(paired["report"])
            (self.layout.root / "compare.md").write_text(paired["markdown"], encoding="utf-8")
        self.layout.report.write_text(json.dumps(report, indent=2) + "\n")
        org = self.config.push_to_hub or "sense"
        eval_name = f"held-out databases ({', '.join(self.eval_db_ids)})"
        from sense_hub.models import hub_model_id

        base = hub_model_id(self.config.model)
        for name, train_stage, eval_stage, base_model, dataset, recipe in (
            ("sense-sft", "sft", "eval_sft", base, "strong", "sft"),
            ("sense-cdpo", "cdpo", "eval_cdpo", f"{org}/sense-sft", "pairs", "cdpo"),
        ):
            card = self.layout.model(name) / "README.md"
            if not card.is_file():  # training writes it; a folder from an older run may lack one
                write_model_card(
                    card.parent,
                    base_model=base_model,
                    datasets=[f"{org}/{dataset}"],
                    recipe=recipe,
                    hyperparameters=done[train_stage]["hyperparameters"],
                    results=[],
                    model_id=f"{org}/{name}",
                )
            result = {
                "dataset": eval_name,
                "dataset_id": f"{org}/strong",
                "metric": "execution_accuracy",
                "value": done[eval_stage]["execution_accuracy"],
                "fingerprints": done[eval_stage].get("fingerprints"),  # absent in a run from before them
            }
            body = (
                f"`sense-hub compare` over the judged predictions in `work/judged-*.jsonl` ({paired['n']} questions):"
                "\n\n" + paired["markdown"]
                if paired is not None
                else f"Execution accuracy on {eval_name}: {result['value']:.3f}."
            )
            add_results(
                card,
                [result],
                section="Held-out questions, every stage (paired)",
                body=body,
                base_model=base_model,
                datasets=[f"{org}/{dataset}"],
            )
        return dict(report["execution_accuracy"])

    def paired_results(self) -> dict[str, Any] | None:
        """EX with 95% intervals per stage and paired p-values between stages (`sense-hub compare`), and a few
        held-out questions whose answer changed; None for a run scored before judged files were kept."""
        from sense_hub.compare import compare, render_markdown

        stages = ("base", "sft", "cdpo")
        files = [self.layout.judged(s) for s in stages]
        if not all(f.is_file() for f in files):
            return None
        result = compare(files, names=list(stages), seed=self.config.seed)
        pairs = {(p.a, p.b): p for p in result.pairs}
        paired = {}
        for before, after in (("base", "sft"), ("sft", "cdpo"), ("base", "cdpo")):
            p = pairs[(before, after)]
            paired[f"{after}_vs_{before}"] = {
                "delta": -p.delta + 0.0,  # after minus before (+ 0.0: no "-0.0")
                "gained": p.b_only,
                "lost": p.a_only,
                "mcnemar_p": p.mcnemar_p,
            }
        rows = {s: read_jsonl(f) for s, f in zip(stages, files, strict=True)}
        changed = [
            {
                "question": b["question"],
                "base": b["pred"],
                "base_correct": b["correct"],
                "trained": c["pred"],
                "trained_correct": c["correct"],
            }
            for b, c in zip(rows["base"], rows["cdpo"], strict=True)
            if b["pred"].strip() != c["pred"].strip()
        ]
        # both directions, the gains first: up to 4 questions whose verdict changed, then answers that only differ
        changed.sort(key=lambda x: (x["base_correct"] == x["trained_correct"], x["base_correct"]))
        n = result.systems[0].n
        return {
            "report": {
                "ci95": {s.name: [s.ci_low, s.ci_high] for s in result.systems},
                "paired": paired,
                "examples": changed[:4],
            },
            "n": n,
            "markdown": render_markdown(result),
        }

    def stage_push(self) -> dict[str, Any]:
        if not self.config.push_to_hub:
            return {"pushed": False}
        from sense_hub.hub import push_dataset_repo, push_model_folder

        org = self.config.push_to_hub
        urls = {}
        for kind in ("strong", "weak", "pairs"):
            urls[kind] = push_dataset_repo(
                self.layout.dataset(kind), repo_id=f"{org}/{kind}", private=self.config.private
            )
        for name in ("sense-sft", "sense-cdpo"):
            urls[name] = push_model_folder(
                self.layout.model(name), repo_id=f"{org}/{name}", private=self.config.private
            )
        return {"pushed": True, **urls}

    # -- driver ----------------------------------------------------------------------------------------------

    def check_models(self) -> None:
        """Fail before any stage runs when an embedded model that a stage still to run needs is not installed.

        Raises:
            EmbeddedModelError: the model's packages are missing or damaged (the message says what to install).
        """
        from sense_hub.models import get_model, is_embedded, part_paths

        needs = {"strong": (self.config.verifier_model, self.config.question_model), "weak": (self.config.model,)}
        needs.update({"eval_base": (self.config.model,), "sft": (self.config.model,)})
        for stage, models in needs.items():
            if stage not in self.state.done:
                for model in models:
                    if is_embedded(model):
                        part_paths(get_model(model))

    def run(self, *, console=None) -> dict[str, Any]:
        """Run the stages still to do: one line per stage on the terminal (stderr), then the summary table.

        Library warnings, training metrics and the libraries' progress bars go to `DIR/quickstart.log`
        (`terminal.capture_to_log`), whose path is printed after the table.
        """
        from rich.console import Console

        from sense_hub.terminal import capture_to_log

        self.check_models()
        with capture_to_log(self.layout.log) as terminal:
            console = console or Console(file=terminal.stream, highlight=False)
            for index, name in enumerate(STAGES, 1):
                if name in self.state.done:
                    console.print(f"[dim][{index}/{len(STAGES)}] {name}: done earlier, skipped[/dim]")
                    continue
                with terminal.stage(f"[{index}/{len(STAGES)}] {name}"):
                    start = time.perf_counter()
                    stage: Callable[[], dict[str, Any]] = getattr(self, f"stage_{name}")
                    summary = stage()
                    summary["seconds"] = round(time.perf_counter() - start, 1)
                self.state.done[name] = summary
                self.state.save()
            console.print(summary_table(self.state.done))
            if self.layout.report.is_file():
                for table in result_tables(json.loads(self.layout.report.read_text())):
                    console.print(table)
        if self.layout.log.exists():  # a plain line: rich would wrap a long path
            terminal.line(f"Warnings, training logs and progress bars: {self.layout.log}")
        return self.state.done


def lora_targets(model: str, top_layers: int) -> str:
    """peft's `target_modules` for LoRA on the attention and MLP projections of the top `top_layers` blocks.

    A string is a regex peft matches against each module's full name; "all-linear" when `top_layers` is 0 or covers
    every block. Llama-style names (`model.layers.<i>.self_attn.q_proj`, `mlp.gate_proj`): Qwen2, SmolLM2, Llama.
    """
    from transformers import AutoConfig

    from sense_hub.training import resolve_model_name

    layers = getattr(AutoConfig.from_pretrained(resolve_model_name(model)), "num_hidden_layers", 0) or 0
    if top_layers <= 0 or top_layers >= layers:
        return "all-linear"
    blocks = "|".join(str(i) for i in range(layers - top_layers, layers))
    return rf".*\.layers\.({blocks})\.(self_attn\.(q|k|v|o)_proj|mlp\.(gate|up|down)_proj)"


def summary_table(done: dict[str, dict[str, Any]]):
    """A rich table of what each stage produced."""
    from rich.table import Table

    table = Table(title="sense-hub quickstart")
    table.add_column("stage")
    table.add_column("result")
    table.add_column("seconds", justify="right")
    for name in STAGES:
        if name not in done:
            continue
        summary = dict(done[name])
        seconds = summary.pop("seconds", "")
        text = ", ".join(f"{k}={_fmt(v)}" for k, v in summary.items() if not isinstance(v, (dict, list)))
        table.add_row(name, text, str(seconds))
    return table


def result_tables(report: dict[str, Any]) -> list:
    """The held-out scores with 95% intervals and paired p-values, and questions whose answer changed (rich tables);
    none for a report without intervals (a run from before them)."""
    from rich.markup import escape
    from rich.table import Table

    if "ci95" not in report:
        return []
    n = report["eval_set"]["questions"]
    widths = [high - low for low, high in report["ci95"].values()]
    caption = (
        f"n = {n}: each 95% interval is about {50 * max(widths):.0f} points either side, so only a paired change "
        "with p < 0.05 is more than chance; a p above that says the data cannot tell, not that nothing changed."
    )
    scores = Table(
        title=f"held-out execution accuracy ({', '.join(report['eval_set']['databases'])})", caption=caption
    )
    for column in ("stage", "EX", "95% CI", "SQL runs", "vs previous stage (paired)"):
        scores.add_column(column, justify="left" if column in ("stage", "vs previous stage (paired)") else "right")
    previous = {"sft": "sft_vs_base", "cdpo": "cdpo_vs_sft"}
    for stage, ex in report["execution_accuracy"].items():
        low, high = report["ci95"][stage]
        versus = ""
        if stage in previous:
            p = report["paired"][previous[stage]]
            versus = f"{100 * p['delta']:+.1f} pts: {p['gained']} gained, {p['lost']} lost, p = {p['mcnemar_p']:.2g}"
        scores.add_row(
            stage,
            f"{100 * ex:.1f}% ({round(ex * n)}/{n})",
            escape(f"[{100 * low:.1f}, {100 * high:.1f}]"),
            f"{100 * report['executable'][stage]:.0f}%",
            versus,
        )
    tables = [scores]
    if report.get("examples"):
        examples = Table(title="held-out questions whose answer changed (base -> after cDPO)")
        for column in ("question", "base", "after cDPO"):
            examples.add_column(column, overflow="fold")
        for e in report["examples"]:
            mark = {True: "right", False: "wrong"}
            examples.add_row(
                escape(e["question"]),
                escape(f"{e['base']}  ({mark[e['base_correct']]})"),
                escape(f"{e['trained']}  ({mark[e['trained_correct']]})"),
            )
        tables.append(examples)
    return tables


def _fmt(value: Any) -> str:
    return f"{value:.3f}" if isinstance(value, float) else str(value)
