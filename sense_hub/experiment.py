"""`sense-hub experiment`: a controlled comparison of training arms, declared in YAML, resumable, paired at the end.

An experiment trains one student several ways (its *arms*) and scores every arm greedily on the same held-out
questions, so the arms differ only in what the YAML says. Each arm names a recipe (`sft`, `cdpo`, `spft`, `grpo`,
or none: score a model as it is), the model it starts from (the student, another arm, or a model id), its data and
its budget (epochs, steps or minutes); the rest comes from the recipe's YAML:

    output_dir: runs/sense
    student: embedded:qwen2.5-coder-0.5b
    benchmark_root: ../shared/data          # a Spider split: the first `train_dbs` dev databases train, the rest
    train_dbs: 10                           #   are held out (or: train_questions / heldout_questions / db_root)
    recipe_dir: recipes/qwen2.5-coder-0.5b  # <recipe>.yaml per arm unless the arm names its `config`
    writer: embedded:qwen2.5-coder-1.5b     # strong data: template questions (`templates`), new domains (`domains`)
    weak_model: sft-strong                  # weak data: an arm's model samples the training questions (`pairs`)
    arms:
      - {name: base}
      - {name: sft-human, recipe: sft, data: [human], epochs: 1}
      - {name: sft-strong, recipe: sft, data: [human, templates, domains], epochs: 1}
      - {name: sft-strong+cdpo, recipe: cdpo, start_from: sft-strong, data: [pairs], epochs: 1}

Steps, run in an order that satisfies what each needs (`--stages` picks some; `--dry-run` prints the plan):

    split       the training and held-out questions (+ Spider-Syn / -Realistic versions of the held-out ones)
    synth       `templates`: template SQL over the training databases; the writer writes the question, the
                verifier answers it, execution checks it (`sense-hub synthesize --strategy templates`)
    domains     `domains`: new domains from the writer, seeded with the training questions (`--strategy strong`)
    weak        the weak model samples N SQL per training question, labelled by execution (`sense-hub sample`)
    pairs       preference pairs from the weak samples for every preset, with the counts (`sense-hub pairs`)
    <arm>       train the arm (`recipes/<recipe>.py`, checkpointed and resumed), then score it (`predict` + `eval`)
    robustness  the listed arms on the Spider-Syn / Spider-Realistic held-out questions, compared paired
    compare     `sense-hub compare` over every scored arm: EX with 95% CIs, McNemar p and paired-bootstrap deltas,
                each arm against base and against the arm it started from; written into each arm's model card

A step whose marker `OUT/done/<step>.json` and outputs exist is skipped, so the same command resumes after a kill;
training arms save a checkpoint every `save_steps` steps and go on from the newest; `predict`, `sample` and
`synthesize` resume inside a step. Every command's output goes to `OUT/logs/<step>.log`, wall times to
`OUT/timings.json`. Judged predictions stay in `OUT/judged/<arm>.jsonl` (one line a question), the tables in
`OUT/table.md` and `OUT/results.json`.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sense_hub import configs
from sense_hub.errors import MissingFileError, SenseHubError, UsageError
from sense_hub.records import read_jsonl, write_json, write_jsonl

PACKAGE_ROOT = Path(__file__).resolve().parents[1]
RECIPES = ("sft", "cdpo", "spft", "grpo")
# data an arm can train on -> the file under OUT/data (the pairs file is the `pairs_preset`'s)
SOURCES = {"human": "train-human.jsonl", "templates": "strong-templates.jsonl", "domains": "strong-domains.jsonl"}
DATA_STAGES = ("split", "synth", "domains", "weak", "pairs")
VARIANTS = {"syn": "spider-syn", "realistic": "spider-realistic"}
SFT_KEYS = ("id", "db_id", "question", "sql", "schema", "evidence")


class StageError(SenseHubError, RuntimeError):
    """A step failed or its inputs are missing; the message says which and what to run."""


@dataclass
class ArmConfig:
    """One arm: how a model is made (recipe, start, data, budget) before it is scored on the held-out questions."""

    name: str
    recipe: str | None = None  # sft | cdpo | spft | grpo; None: score `start_from` as it is
    start_from: str = "student"  # "student", an earlier arm's name, or a model id / folder
    data: list[str] = field(default_factory=list)  # human, templates, domains, pairs, or JSONL files
    config: str | None = None  # the recipe YAML (default: RECIPE_DIR/<recipe>.yaml)
    epochs: float | None = None  # whole epochs over the arm's own data ...
    steps: int | None = None  # ... or optimizer steps
    minutes: float | None = None  # GRPO: a training time budget (max_train_minutes)
    options: dict[str, Any] = field(default_factory=dict)  # more recipe options, e.g. {cdpo_epsilon: 0.0}
    against: str | None = None  # compared with this arm besides base (default: the arm it starts from)


@dataclass
class ExperimentConfig:
    """Settings of `sense-hub experiment`; the YAML given with `--config` sets these fields (see the module doc)."""

    output_dir: str
    arms: list[dict[str, Any]]
    student: str = "embedded"
    # the questions: a Spider split, or your own files
    benchmark_root: str | None = None  # folder holding spider/ (and spider-syn/, spider-realistic/)
    train_dbs: int = 10
    variants: list[str] = field(default_factory=lambda: ["syn", "realistic"])
    train_questions: str | None = None  # JSONL with db_id, question, sql
    heldout_questions: str | None = None
    heldout_share: float = 0.0  # no held-out questions: hold out this share of the verified template questions
    db_root: str | None = None  # folder with <db_id>/<db_id>.sqlite (a Spider split: BENCHMARK_ROOT/spider/database)
    limit_train: int | None = None  # the first N questions only (a quick check)
    limit_heldout: int | None = None
    # strong data
    writer: str = "embedded:qwen2.5-coder-0.5b"  # or "rules": template-worded questions, no model
    writer_base_url: str | None = None  # an OpenAI-compatible endpoint (vLLM, SGLang, llama.cpp) serving `writer`
    verifier: str | None = None  # default: the writer
    templates_per_database: int = 60
    synthesis_databases: list[str] | None = None  # what `synth` covers (default: the training questions' databases)
    synthesis_rounds: int = 2
    synthesis_dbs: int | None = None  # the first N training databases only
    synthesis_time_budget: float | None = None
    domain_examples: int = 32
    domain_max_new_tokens: int = 1500
    # weak data
    weak_model: str = "student"  # "student", an arm's name (SENSE: the student after SFT), or a model id
    weak_questions: str = "human"  # what the weak model answers: "human" (training questions) or "templates"
    weak_samples: int = 8
    weak_temperature: float = 1.0
    pairs_preset: str = "grouped-any-limit1"
    # training
    recipe_dir: str = "recipes/smollm2-135m"
    recipes_root: str | None = None  # a folder of sft.py, cdpo.py, ... scripts (default: the `sense-hub` trainers)
    seed: int = 42
    save_steps: int = 10  # checkpoint SFT and preference arms every N steps (0: off)
    train_extra: list[str] = field(default_factory=list)  # options for every training run, e.g. [--bf16, "true"]
    # scoring
    metric: str = "spider"
    max_new_tokens: int = 256
    batch_size: int = 8
    repair_rounds: int = 0  # 0: plain greedy, the budget published figures use
    bootstrap: int = 10_000
    robustness: list[str] = field(default_factory=lambda: ["base", "best"])  # "best": the best trained arm

    def __post_init__(self) -> None:
        for name in ("train_dbs", "weak_samples", "max_new_tokens", "batch_size", "bootstrap", "synthesis_rounds"):
            if getattr(self, name) < 1:
                raise UsageError(f"`{name}` must be at least 1, got {getattr(self, name)}")
        for name in ("save_steps", "repair_rounds", "domain_examples", "templates_per_database"):
            if getattr(self, name) < 0:
                raise UsageError(f"`{name}` must be 0 or more, got {getattr(self, name)}")
        own = [self.train_questions or self.synthesis_databases, self.heldout_questions or self.heldout_share]
        if self.benchmark_root is None and not (all(own) and self.db_root):
            raise UsageError(
                "set `benchmark_root` (a folder holding spider/) or `db_root` with the questions: "
                "`train_questions` (or `synthesis_databases`) and `heldout_questions` (or `heldout_share`)"
            )
        if not 0 <= self.heldout_share < 1:
            raise UsageError(f"`heldout_share` must lie in [0, 1), got {self.heldout_share}")
        if self.heldout_share and self.heldout_questions:
            raise UsageError(
                "`heldout_share` holds out template questions: leave it 0 when `heldout_questions` is set"
            )
        if self.weak_questions not in ("human", "templates"):
            raise UsageError(f"`weak_questions` must be human or templates, got {self.weak_questions!r}")
        if self.benchmark_root is not None and (self.train_questions or self.heldout_questions):
            raise UsageError("`benchmark_root` makes the questions: leave `train_questions`/`heldout_questions` unset")
        unknown = sorted(set(self.variants) - set(VARIANTS))
        if unknown:
            raise UsageError(f"`variants`: unknown {unknown}; choose from {sorted(VARIANTS)}")
        if self.metric not in ("spider", "bird", "strict"):
            raise UsageError(f"`metric` must be spider, bird or strict, got {self.metric!r}")
        from sense_hub.pairs import PRESETS

        if self.pairs_preset not in PRESETS:
            raise UsageError(f"unknown `pairs_preset` {self.pairs_preset!r}; choose from {sorted(PRESETS)}")


def parse_arms(config: ExperimentConfig, places: dict[str, str] | None = None) -> list[ArmConfig]:
    """The arms of a config, checked: known keys and types, unique names, known recipes, data and starts, no loop."""
    places = places or {}
    arms: list[ArmConfig] = []
    for i, raw in enumerate(config.arms):
        where = places.get(f"arms[{i}]", "arms") + f": arms[{i}]"
        if not isinstance(raw, dict) or "name" not in raw:
            raise UsageError(f"{where}: an arm is a mapping with at least `name`, got {raw!r}")
        configs.check_keys(ArmConfig, raw, where)
        arm = ArmConfig(**configs.check_field_types(ArmConfig, raw, where=dict.fromkeys(raw, where)))
        names = [a.name for a in arms]
        if arm.name in names or arm.name in (*DATA_STAGES, "robustness", "compare", "student"):
            raise UsageError(f"{where}: arm name {arm.name!r} is taken; give each arm its own name")
        if any(c in arm.name for c in "/@ ,"):
            raise UsageError(f"{where}: arm name {arm.name!r} may not hold '/', '@', ',' or spaces")
        if arm.recipe is not None and arm.recipe not in RECIPES:
            raise UsageError(f"{where}: unknown recipe {arm.recipe!r}; choose from {', '.join(RECIPES)}")
        if arm.recipe is None and (arm.data or arm.epochs or arm.steps or arm.minutes or arm.options):
            raise UsageError(f"{where}: `data`, budgets and `options` need a `recipe`; arm {arm.name!r} has none")
        if arm.recipe is not None and not arm.data:
            raise UsageError(f"{where}: arm {arm.name!r} trains with `{arm.recipe}` on no data; set `data`")
        if arm.recipe is not None and sum(x is not None for x in (arm.epochs, arm.steps, arm.minutes)) != 1:
            raise UsageError(f"{where}: give arm {arm.name!r} one budget: `epochs`, `steps` or (GRPO) `minutes`")
        if arm.minutes is not None and arm.recipe != "grpo":
            raise UsageError(f"{where}: `minutes` is a GRPO budget; use `epochs` or `steps` for `{arm.recipe}`")
        for source in arm.data:
            if source not in (*SOURCES, "pairs") and not Path(source).is_file():
                raise UsageError(
                    f"{where}: data {source!r} is neither {', '.join([*SOURCES, 'pairs'])} nor an existing file"
                )
        if arm.start_from not in names and arm.start_from in (
            a.get("name") for a in config.arms if isinstance(a, dict)
        ):
            raise UsageError(f"{where}: arm {arm.name!r} starts from {arm.start_from!r}, which is declared after it")
        if arm.against is not None and arm.against not in (*names, arm.name) and arm.against != "base":
            raise UsageError(f"{where}: `against` names {arm.against!r}, not an arm declared before {arm.name!r}")
        arms.append(arm)
    if not arms:
        raise UsageError("`arms` is empty: declare at least one arm (e.g. `- {name: base}`)")
    names = {a.name for a in arms}
    for name in config.robustness:
        if name != "best" and name not in names:
            raise UsageError(f"`robustness` names {name!r}, which is not an arm; arms: {sorted(names)}")
    return arms


def load_config(path: str | Path, overrides: dict[str, Any]) -> tuple[ExperimentConfig, list[ArmConfig]]:
    """Read and check an experiment YAML (and command-line overrides) before any work starts."""
    places: dict[str, str] = {}
    config = configs.load(ExperimentConfig, path, overrides, places=places)
    return config, parse_arms(config, places)


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _count_lines(path: Path) -> int:
    return sum(1 for line in path.read_text().splitlines() if line.strip()) if path.is_file() else 0


def _options(options: dict, sep: str) -> list[str]:
    """`{"db_root": x, "no_progress": True, "skip": None}` -> `["--db-root", "x", "--no-progress"]` (sep "-")."""
    out = []
    for key, value in options.items():
        if value is None or value is False:
            continue
        flag = "--" + key.replace("_", sep)
        out += [flag] if value is True else [flag, str(value)]
    return out


class Experiment:
    """The steps of one experiment over one output folder; `run(stages)` runs (or skips) them in plan order."""

    def __init__(self, config: ExperimentConfig, arms: list[ArmConfig], *, config_path: str | None = None) -> None:
        self.config = config
        self.arms = {a.name: a for a in arms}
        self.config_path = config_path
        self.out = Path(config.output_dir).resolve()
        self.data = self.out / "data"
        self.models = self.out / "models"
        if config.benchmark_root is not None:
            self.spider = Path(config.benchmark_root).resolve() / "spider"
            self.db_root = Path(config.db_root).resolve() if config.db_root else self.spider / "database"
        else:
            self.spider = None
            self.db_root = Path(config.db_root).resolve()
        self.recipes_root = Path(config.recipes_root).resolve() if config.recipes_root else None
        self.env = dict(os.environ)
        self.env["PYTHONPATH"] = os.pathsep.join(x for x in (str(PACKAGE_ROOT), self.env.get("PYTHONPATH", "")) if x)

    def say(self, text: str = "") -> None:
        """One line of progress on stdout (each command's own output goes to its log)."""
        sys.stdout.write(text + "\n")
        sys.stdout.flush()

    # ----- the plan -----------------------------------------------------------------------------------------------

    def plan(self) -> list[str]:
        """Every step in an order that runs each after what it needs; data steps only when some arm uses them (or, for
        the weak samples and pairs, when `weak_model` is an arm: measuring a weak model is then the point)."""
        order: list[str] = []
        visiting: set[str] = set()

        def visit(stage: str, chain: tuple[str, ...]) -> None:
            if stage in order:
                return
            if stage in visiting:
                raise UsageError(f"the arms and weak_model need each other in a loop: {' -> '.join((*chain, stage))}")
            visiting.add(stage)
            for need in self._needs(stage):
                visit(need, (*chain, stage))
            visiting.discard(stage)
            order.append(stage)

        visit("split", ())
        for name in self.arms:
            visit(name, ())
        if self.config.weak_model in self.arms:  # a weak model trained here: its samples and pairs are wanted
            visit("pairs", ())
        if self.spider is not None and self.config.variants:
            order.append("robustness")
        order.append("compare")
        return order

    def describe(self, stage: str) -> str:
        """One line saying what a step of the plan does (for `--dry-run`)."""
        c = self.config
        if stage == "split":
            if self.spider is not None:
                return f"Spider dev under {self.spider}: the first {c.train_dbs} databases train, the rest held out"
            return f"training questions {c.train_questions}, held-out questions {c.heldout_questions}"
        if stage == "synth":
            return f"template questions: {c.writer} writes, {c.verifier or c.writer} verifies"
        if stage == "domains":
            return f"{c.domain_examples} new-domain requests to {c.writer}"
        if stage == "weak":
            return f"{c.weak_model} samples {c.weak_samples} SQL per training question at temperature {c.weak_temperature}"
        if stage == "pairs":
            return f"preference pairs for every preset; arms train on {c.pairs_preset}"
        if stage == "robustness":
            return f"{', '.join(c.robustness)} on the reworded held-out questions ({', '.join(c.variants)})"
        if stage == "compare":
            return "sense-hub compare over every scored arm; tables and model cards"
        arm = self.arms[stage]
        if arm.recipe is None:
            return f"score {arm.start_from} as it is"
        budget = (
            f"{arm.epochs:g} epoch(s)"
            if arm.epochs is not None
            else f"{arm.steps} steps"
            if arm.steps is not None
            else f"{arm.minutes:g} minutes"
        )
        extra = f", {arm.options}" if arm.options else ""
        return f"{arm.recipe} from {arm.start_from} on {' + '.join(arm.data)}, {budget}{extra}; then score"

    def _needs(self, stage: str) -> list[str]:
        if stage == "split":
            return []
        if stage in ("synth", "domains"):
            return ["split"]
        if stage == "weak":
            out = ["split", *(["synth"] if self.config.weak_questions == "templates" else [])]
            return out + ([self.config.weak_model] if self.config.weak_model in self.arms else [])
        if stage == "pairs":
            return ["weak"]
        arm = self.arms[stage]
        out = ["split", *(["synth"] if self.config.heldout_share else [])]  # the held-out questions come from it
        for source in arm.data:
            out += {"templates": ["synth"], "domains": ["domains"], "pairs": ["pairs"]}.get(source, [])
        if arm.start_from in self.arms:
            out.append(arm.start_from)
        return out

    # ----- bookkeeping --------------------------------------------------------------------------------------------

    def check_settings(self) -> None:
        """Keep the first run's settings in `OUT/experiment.json`; say which ones a resumed run changed."""
        path = self.out / "experiment.json"
        settings = dataclasses.asdict(self.config)
        if path.is_file():
            old = json.loads(path.read_text())
            changed = sorted(k for k in settings if old.get(k) != settings[k])
            if changed:
                self.say(f"note: settings differ from the run's first ones in {changed}; finished steps are kept")
        else:
            write_json(path, settings)

    def step(self, name: str, outputs: list[Path], fn) -> dict:
        """Run `fn` unless `OUT/done/<name>.json` and every output exist; record its wall time."""
        marker = self.out / "done" / f"{name}.json"
        if marker.is_file() and all(p.exists() for p in outputs):
            info = json.loads(marker.read_text())
            self.say(f"[{name}] done before ({info.get('seconds', '?')} s), skipped")
            return info
        self.say(f"[{name}] started {_now()}")
        started = time.perf_counter()
        info = dict(fn() or {})
        info.update(step=name, seconds=round(time.perf_counter() - started, 1), finished=_now())
        missing = [str(p) for p in outputs if not p.exists()]
        if missing:
            raise StageError(f"{name}: finished without writing {missing}; see {self.out / 'logs' / name}.log")
        write_json(marker, info)
        timings_path = self.out / "timings.json"
        timings = json.loads(timings_path.read_text()) if timings_path.is_file() else {}
        timings[name] = {"seconds": info["seconds"], "finished": info["finished"]}
        write_json(timings_path, timings)
        self.say(f"[{name}] finished in {info['seconds']} s")
        return info

    def run_command(self, name: str, cmd: list[str]) -> dict | None:
        """Run a command with its output appended to OUT/logs/<name>.log; return its last stdout line as JSON."""
        log = self.out / "logs" / f"{name}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        cmd = [str(c) for c in cmd]
        self.say(f"[{name}] $ {shlex.join(cmd)}")
        with log.open("a") as f:
            f.write(f"\n[{_now()}] $ {shlex.join(cmd)}\n")
            f.flush()
            start = f.tell()
            proc = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, env=self.env, check=False)
        text = log.read_text(errors="replace")[start:]
        if proc.returncode != 0:
            tail = "\n".join(text.splitlines()[-25:])
            raise StageError(f"{name}: exit {proc.returncode}; the end of {log}:\n{tail}")
        for line in reversed(text.splitlines()):
            if line.startswith("{"):
                try:
                    return json.loads(line)
                except json.JSONDecodeError:
                    return None
        return None

    def cli(self, command: str, *positional, **options) -> list[str]:
        """`python -m sense_hub.cli COMMAND ...`; `db_root=x` becomes `--db-root x`, `True` a bare flag."""
        return [sys.executable, "-m", "sense_hub.cli", command, *map(str, positional), *_options(options, "-")]

    def recipe(self, arm: ArmConfig, **options) -> list[str]:
        """`sense-hub <recipe> --config YAML ...` (TRL-style `--field_name value`), then `train_extra`; with
        `recipes_root`, that folder's `<recipe>.py` script instead."""
        if self.recipes_root is not None:
            script = self.recipes_root / f"{arm.recipe}.py"
            if not script.is_file():
                raise StageError(f"{script} does not exist: fix `recipes_root` (or leave it unset)")
            trainer = [sys.executable, str(script)]
        else:
            trainer = [sys.executable, "-m", "sense_hub.cli", str(arm.recipe)]
        yaml_path = Path(arm.config) if arm.config else Path(self.config.recipe_dir) / f"{arm.recipe}.yaml"
        if not yaml_path.is_file():
            raise StageError(f"arm {arm.name}: recipe config {yaml_path} does not exist; set the arm's `config`")
        options = {**options, **arm.options}
        return [*trainer, "--config", str(yaml_path.resolve()), *_options(options, "_"), *self.config.train_extra]

    def need(self, path: Path, stage: str) -> Path:
        if not path.exists():
            raise StageError(f"{path} is missing: run --stages {stage} first")
        return path

    # ----- data ---------------------------------------------------------------------------------------------------

    def split(self) -> dict:
        c = self.config
        if self.spider is None:
            rows = {f: read_jsonl(f) if f else [] for f in (c.train_questions, c.heldout_questions)}
            train = [self._question(r, i, "train") for i, r in enumerate(rows[c.train_questions])]
            held = [self._question(r, i, "heldout") for i, r in enumerate(rows[c.heldout_questions])]
            info = {
                "train_dbs": sorted({r["db_id"] for r in train}),
                "held_out_dbs": sorted({r["db_id"] for r in held}),
            }
            overlap = sorted(set(info["train_dbs"]) & set(info["held_out_dbs"]))
            if overlap:
                self.say(f"[split] note: databases in both training and held-out questions: {', '.join(overlap)}")
        else:
            train, held, info = self._spider_split()
        train, held = train[: c.limit_train], held[: c.limit_heldout]
        info.update(train_questions=len(train), held_out_questions=len(held))
        write_jsonl(self.data / "train-human.jsonl", train)
        write_jsonl(self.data / "heldout.jsonl", held)
        write_jsonl(self.data / "seeds.jsonl", self._seeds(train))
        return info

    @staticmethod
    def _question(row: dict, i: int, kind: str) -> dict:
        missing = [k for k in ("db_id", "question", "sql") if not row.get(k)]
        if missing:
            raise StageError(f"{kind} question {i + 1}: missing {missing}; each line needs db_id, question and sql")
        qid = str(row.get("question_id") or row.get("id") or f"{kind}-{i}")
        return {"question_id": qid, "db_id": row["db_id"], "question": row["question"], "sql": row["sql"]}

    def _spider_split(self) -> tuple[list[dict], list[dict], dict]:
        from sense_hub.benchmarks import BenchmarkError, load_benchmark
        from sense_hub.databases import list_databases

        if not (self.spider / "dev.json").is_file():
            raise MissingFileError(f"Spider dev not found: {self.spider / 'dev.json'}; fix `benchmark_root`")
        names = sorted(list_databases(self.db_root))
        if self.config.train_dbs >= len(names):
            raise StageError(f"`train_dbs` {self.config.train_dbs}: only {len(names)} databases; leave some held out")
        train_dbs, held_dbs = names[: self.config.train_dbs], names[self.config.train_dbs :]
        dev = load_benchmark("spider", root=self.spider)

        def rows(examples, dbs):
            return [
                {"question_id": e.question_id, "db_id": e.db_id, "question": e.question, "sql": e.sql}
                for e in examples
                if e.db_id in dbs
            ]

        info: dict[str, Any] = {"train_dbs": train_dbs, "held_out_dbs": held_dbs}
        for short in self.config.variants:
            bench = VARIANTS[short]
            try:
                variant = rows(load_benchmark(bench, root=self.spider.parent / bench), set(held_dbs))
            except BenchmarkError as e:  # a missing variant only leaves it out of the robustness step
                self.say(f"[split] {bench}: not available ({e}); robustness skips it")
                continue
            info[f"held_out_{short}"] = len(variant)
            write_jsonl(self.data / f"heldout-{short}.jsonl", variant[: self.config.limit_heldout])
        return rows(dev, set(train_dbs)), rows(dev, set(held_dbs)), info

    def _seeds(self, train: list[dict]) -> list[dict]:
        """Seed examples for new-domain synthesis: the training questions with their database's DDL."""
        from sense_hub.databases import connect_readonly, database_path

        ddl: dict[str, str] = {}
        out = []
        for row in train:
            if row["db_id"] not in ddl:
                con = connect_readonly(database_path(self.db_root, row["db_id"]))
                try:
                    statements = con.execute("SELECT sql FROM sqlite_master WHERE type = 'table' AND sql IS NOT NULL")
                    ddl[row["db_id"]] = ";\n".join(s for (s,) in statements) + ";"
                finally:
                    con.close()
            out.append(
                {"question": row["question"], "sql": row["sql"], "domain": row["db_id"], "schema": ddl[row["db_id"]]}
            )
        return out

    def print_split(self, info: dict) -> None:
        self.say(f"training databases ({len(info['train_dbs'])}): {', '.join(info['train_dbs'])}")
        self.say(f"held-out databases ({len(info['held_out_dbs'])}): {', '.join(info['held_out_dbs'])}")
        variants = ", ".join(
            f"Spider-{k.title()} {info[f'held_out_{k}']}" for k in VARIANTS if f"held_out_{k}" in info
        )
        self.say(
            f"held-out questions: {info['held_out_questions']}{f' ({variants})' if variants else ''}; "
            f"training questions: {info['train_questions']}"
        )

    def synth(self) -> dict:
        c = self.config
        split = json.loads((self.out / "done" / "split.json").read_text())
        output = self.data / "strong-templates.jsonl"
        cmd = self.cli(
            "synthesize",
            strategy="templates",
            db_root=self.db_root,
            db_ids=",".join((c.synthesis_databases or split["train_dbs"])[: c.synthesis_dbs]),
            model=c.writer if c.writer != "rules" else None,
            backend="openai" if c.writer_base_url else None,
            base_url=c.writer_base_url,
            # "rules": template-worded questions kept when their SQL runs (no model; a quick or offline check)
            rule_questions_only=c.writer == "rules",
            no_verify=c.writer == "rules",
            # the same name: one model loaded for both roles
            verifier_model=c.verifier if c.verifier not in (None, c.writer) else None,
            per_database=c.templates_per_database,
            rounds=c.synthesis_rounds,
            batch_size=c.batch_size,
            seed=c.seed,
            time_budget=c.synthesis_time_budget,
            output=output,
        )
        summary = self.run_command("synth", cmd) or {}
        info = {"records": _count_lines(output), "writer": c.writer, "verifier": c.verifier, "summary": summary}
        if c.heldout_share:
            info["held_out_templates"] = self.hold_out_templates(output)
        return info

    def hold_out_templates(self, templates: Path) -> int:
        """No held-out questions were given: a seeded `heldout_share` of the verified template questions becomes the
        held-out set (synthetic, and marked so); the rest train."""
        import random

        rows = read_jsonl(templates)
        order = list(range(len(rows)))
        random.Random(self.config.seed).shuffle(order)
        n = max(1, round(self.config.heldout_share * len(rows))) if len(rows) > 1 else 0
        held = sorted(order[:n])
        write_jsonl(
            self.data / "heldout.jsonl",
            [{**self._question(rows[i], i, "template"), "synthetic": True} for i in held],
        )
        write_jsonl(self.data / "strong-templates-train.jsonl", [rows[i] for i in sorted(order[n:])])
        self.say(f"[synth] held out {n} of {len(rows)} verified template questions (synthetic) for scoring")
        return n

    def domains(self) -> dict:
        c = self.config
        output = self.data / "strong-domains.jsonl"
        if c.domain_examples <= 0:
            write_jsonl(output, [])
            return {"records": 0, "note": "domain_examples: 0"}
        cmd = self.cli(
            "synthesize",
            strategy="strong",
            model=c.writer,
            seeds=self.need(self.data / "seeds.jsonl", "split"),
            num_examples=c.domain_examples,
            db_out_root=self.data / "strong_dbs",
            batch_size=c.batch_size,
            seed=c.seed,
            max_new_tokens=c.domain_max_new_tokens,
            output=output,
        )
        summary = self.run_command("domains", cmd) or {}
        return {"records": _count_lines(output), "model": c.writer, "summary": summary}

    def weak(self) -> dict:
        c = self.config
        model = self.model_of(c.weak_model) if c.weak_model in self.arms else self._model_id(c.weak_model)
        questions = (
            self.source_file("templates") if c.weak_questions == "templates" else self.data / "train-human.jsonl"
        )
        cmd = self.cli(
            "sample",
            input=self.need(questions, "split"),
            db_root=self.db_root,
            num_samples=c.weak_samples,
            temperature=c.weak_temperature,
            model=model,
            max_new_tokens=c.max_new_tokens,
            batch_size=c.batch_size,
            seed=c.seed,
            no_progress=True,
            output=self.data / "weak.jsonl",
        )
        summary = self.run_command("weak", cmd)
        return {
            "model": model,
            "samples_per_question": c.weak_samples,
            "temperature": c.weak_temperature,
            **({"summary": summary} if summary else {}),
        }

    def pairs(self) -> dict:
        from sense_hub.pairs import PRESETS

        weak = self.need(self.data / "weak.jsonl", "weak")
        counts = {}
        for preset in sorted(PRESETS):
            out = self.data / "pairs" / f"{preset}.jsonl"
            stats = out.with_suffix(".stats.json")
            cmd = self.cli("pairs", weak=weak, db_root=self.db_root, preset=preset, output=out, stats=stats)
            self.run_command("pairs", cmd)
            counts[preset] = _count_lines(out)
        self.say("pairs per preset: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
        return {"pairs_per_preset": counts, "trained_on": self.config.pairs_preset}

    def source_file(self, source: str) -> Path:
        if source == "pairs":
            return self.need(self.data / "pairs" / f"{self.config.pairs_preset}.jsonl", "pairs")
        if source == "templates" and self.config.heldout_share:  # the part not held out
            return self.need(self.data / "strong-templates-train.jsonl", "synth")
        if source in SOURCES:
            stage = {"human": "split", "templates": "synth", "domains": "domains"}[source]
            return self.need(self.data / SOURCES[source], stage)
        return Path(source).resolve()

    def arm_data(self, arm: ArmConfig) -> Path:
        """The arm's training file: its one source, or its sources joined into OUT/data/<arm>.jsonl."""
        files = [self.source_file(s) for s in arm.data]
        if len(files) == 1 and arm.recipe != "sft":
            return files[0]
        path = self.data / f"{arm.name}.jsonl"
        rows = []
        for source in files:
            for r in read_jsonl(source):
                if arm.recipe == "sft":  # one shape for human and strong records: what SFT reads
                    row = {k: r.get(k) or "" for k in SFT_KEYS}
                    row["id"] = str(r.get("id") or r.get("question_id") or f"{source.stem}-{len(rows)}")
                    row["source"] = source.stem
                    rows.append(row)
                else:
                    rows.append(r)
        write_jsonl(path, rows)
        return path

    # ----- arms ---------------------------------------------------------------------------------------------------

    def _model_id(self, name: str) -> str:
        return self.config.student if name == "student" else name

    def model_of(self, arm: str) -> str:
        """The model an arm is scored with: its trained folder, SPFT's best round, or (no recipe) its start."""
        spec = self.arms[arm]
        if spec.recipe is None:
            return self.model_of(spec.start_from) if spec.start_from in self.arms else self._model_id(spec.start_from)
        if spec.recipe == "spft":
            results = self.need(self.models / arm / "spft_results.json", arm)
            return json.loads(results.read_text())["best"]["path"]
        return str(self.need(self.models / arm, arm))

    def start_model(self, arm: ArmConfig) -> str:
        return self.model_of(arm.start_from) if arm.start_from in self.arms else self._model_id(arm.start_from)

    def train(self, arm: ArmConfig) -> dict:
        c = self.config
        out = self.models / arm.name
        options: dict[str, Any] = {"model_name_or_path": self.start_model(arm), "output_dir": out, "seed": c.seed}
        data = self.arm_data(arm)
        if arm.recipe in ("sft", "cdpo"):
            options.update(_checkpointing(out, c.save_steps))
        if arm.recipe == "spft":
            options.update(dataset_name=data, db_root=self.db_root)
        else:
            options["dataset_name"] = data
            if arm.recipe != "cdpo":
                options["db_root"] = self.db_root
        if arm.epochs is not None:
            options.update(num_train_epochs=arm.epochs, max_steps=-1)
        elif arm.steps is not None:
            options["max_steps"] = arm.steps
        else:
            options["max_train_minutes"] = arm.minutes
        self.run_command(f"train-{arm.name}", self.recipe(arm, **options))
        info = {"recipe": arm.recipe, "start_from": arm.start_from, "data": arm.data, "records": _count_lines(data)}
        info.update(epochs=arm.epochs, steps=arm.steps, minutes=arm.minutes, options=arm.options)
        for name in ("spft_results.json", "grpo_results.json"):
            if (out / name).is_file():
                info[name.split("_")[0]] = json.loads((out / name).read_text())
        return {**info, **_losses(out)}

    def score(self, arm: str, variant: str = "") -> dict:
        """Greedy predictions of the arm's model on the held-out questions (`sense-hub predict`), judged by `eval`."""
        suffix = f"@{variant}" if variant else ""
        questions = self.need(self.data / f"heldout{'-' + variant if variant else ''}.jsonl", "split")
        preds = self.out / "preds" / f"{arm}{suffix}.jsonl"
        judged = self.out / "judged" / f"{arm}{suffix}.jsonl"
        name = f"score-{arm}{suffix}"
        model = self.model_of(arm)
        c = self.config
        self.run_command(
            name,
            self.cli(
                "predict",
                input=questions,
                db_root=self.db_root,
                model=model,
                max_new_tokens=c.max_new_tokens,
                batch_size=c.batch_size,
                repair_rounds=c.repair_rounds or None,
                no_progress=True,
                output=preds,
            ),
        )
        summary = self.run_command(
            name, self.cli("eval", predictions=preds, db_root=self.db_root, metric=c.metric, output=judged)
        )
        return {"model": model, "eval": summary}

    def arm(self, name: str) -> None:
        spec = self.arms[name]
        if spec.recipe is not None:
            done = "spft_results.json" if spec.recipe == "spft" else "config.json"
            self.step(f"train-{name}", [self.models / name / done], lambda: self.train(spec))
        self.step(f"score-{name}", [self.out / "judged" / f"{name}.jsonl"], lambda: self.score(name))

    # ----- comparisons --------------------------------------------------------------------------------------------

    def against(self, arm: str) -> str | None:
        spec = self.arms.get(arm)
        if spec is None:
            return None
        if spec.against is not None:
            return spec.against
        return spec.start_from if spec.start_from in self.arms else None

    def compare(self, arms: list[str], *, suffix: str = "", table: Path) -> dict:
        """`sense-hub compare`'s comparison of the arms' judged files, in this process; the markdown goes to
        `table`, the summary (its JSON line) is returned."""
        from sense_hub import compare

        files = [self.out / "judged" / f"{arm}{suffix}.jsonl" for arm in arms]
        try:
            result = compare.compare(files, names=list(arms), n_resamples=self.config.bootstrap, seed=0)
        except ValueError as err:
            raise StageError(f"compare: {err}") from err
        table.write_text(compare.render_markdown(result), encoding="utf-8")
        return compare.summary(result)

    def scored(self, suffix: str = "") -> list[str]:
        return [a for a in self.arms if (self.out / "judged" / f"{a}{suffix}.jsonl").is_file()]

    def robustness(self) -> None:
        scored = self.scored()
        trained = [a for a in scored if self.arms[a].recipe is not None]
        best = max(trained, key=lambda a: _ex(self.out / "judged" / f"{a}.jsonl"), default=None)
        arms = list(dict.fromkeys(best if a == "best" else a for a in self.config.robustness))
        arms = [a for a in arms if a is not None and a in scored]
        if not arms:
            self.say("[robustness] skipped: none of its arms is scored yet")
            return
        self.say(f"[robustness] {', '.join(arms)} on the reworded held-out questions")
        for variant in self.config.variants:
            if not (self.data / f"heldout-{variant}.jsonl").is_file():
                continue
            for arm in arms:
                self.step(
                    f"score-{arm}@{variant}",
                    [self.out / "judged" / f"{arm}@{variant}.jsonl"],
                    lambda arm=arm, variant=variant: self.score(arm, variant),
                )
            if len(arms) < 2:
                continue
            data = self.compare(arms, suffix=f"@{variant}", table=self.out / f"table-{variant}.md")
            self.say(f"\n## {VARIANTS[variant]} (held-out databases)\n")
            self.say((self.out / f"table-{variant}.md").read_text())
            write_json(self.out / f"results-{variant}.json", data)

    def final_compare(self) -> None:
        arms = self.scored()
        if len(arms) < 2:
            self.say(f"[compare] {len(arms)} arm(s) scored: nothing to compare yet")
            return
        data = self.compare(arms, table=self.out / "table.md")
        write_json(self.out / "results.json", data)
        against = against_table(data, {a: self.against(a) for a in arms})
        (self.out / "against.md").write_text(against)
        self.say("\n## Held-out questions\n")
        self.say((self.out / "table.md").read_text())
        self.say(against)
        self.write_cards(arms, data, against)

    def write_cards(self, arms: list[str], data: dict, against: str) -> None:
        """Each trained arm's model card gets its held-out score (`model-index`, with fingerprints) and the tables."""
        from sense_hub.cards import add_results, eval_summary_to_result

        n = next((s["n"] for s in data["systems"]), 0)
        held = json.loads((self.out / "done" / "split.json").read_text()).get("held_out_dbs", [])
        if self.spider is not None:
            dataset, dataset_id = f"Spider dev, {len(held)} held-out databases ({n} questions)", "spider"
        else:
            dataset, dataset_id = f"{Path(self.config.heldout_questions).name} ({n} questions)", "custom"
        table = (self.out / "table.md").read_text()
        updated, gone = [], []
        for arm in arms:
            marker = self.out / "done" / f"score-{arm}.json"
            if self.arms[arm].recipe is None or not marker.is_file():
                continue
            result = eval_summary_to_result(
                json.loads(marker.read_text())["eval"], dataset_name=dataset, dataset_id=dataset_id
            )
            try:
                card = Path(self.model_of(arm)) / "README.md"
            except StageError:  # scored earlier, its model folder since deleted (or restored onto a new machine)
                card = self.card_without_model(arm, result)
                gone.append(arm)
            if not card.is_file():
                continue
            system = next(s for s in data["systems"] if s["name"] == arm)
            command = (
                f"sense-hub experiment --config {self.config_path}" if self.config_path else "sense-hub experiment"
            )
            body = (
                f"Arm `{arm}` of a controlled experiment (`{command}`): greedy execution accuracy on {dataset}, "
                f"{self.config.metric} metric: **{100 * system['ex']:.1f}% [{100 * system['ci_low']:.1f}, "
                f"{100 * system['ci_high']:.1f}]** ({system['correct']}/{system['n']}; 95% percentile bootstrap). "
                "All arms, paired (`sense-hub compare`):\n\n" + table + "\n" + against
            )
            add_results(card, [result], section="Controlled experiment: held-out results", body=body)
            if arm not in gone:
                updated.append(arm)
        if updated:
            self.say(f"[compare] model cards updated: {', '.join(updated)}")
        if gone:
            self.say(
                f"[compare] no model folder; cards written from the step records instead: "
                f"{', '.join(str(self.out / 'cards' / a / 'README.md') for a in gone)}"
            )

    def card_without_model(self, arm: str, result: dict) -> Path:
        """The card of an arm scored earlier whose model folder is gone: OUT/cards/<arm>/README.md, written from its
        training step's record (data, budget, steps, losses, time), so its scores still get a card."""
        from sense_hub.cards import write_model_card
        from sense_hub.models import hub_model_id

        spec = self.arms[arm]
        marker = self.out / "done" / f"train-{arm}.json"
        trained = json.loads(marker.read_text()) if marker.is_file() else {}
        keys = ("records", "pairs", "preset", "epsilon", "epochs", "global_step", "first_loss", "last_loss", "seconds")
        hyper = {"start_from": spec.start_from, **{k: trained[k] for k in keys if trained.get(k) is not None}}
        hyper.update(trained.get("options") or spec.options)
        root = spec.start_from
        while root in self.arms:  # the model at the bottom of the chain of arms
            root = self.arms[root].start_from
        command = f"sense-hub experiment --config {self.config_path or 'EXP.yaml'} --stages {arm}"
        out = self.out / "cards" / arm
        note = (
            f"The weights of this arm were not kept (its folder `{self.models / arm}` was gone when `compare` ran, "
            "e.g. on a replaced machine): this card records how it was trained (from "
            f"`{marker.name}`) and how it scored. `{command}` trains it again from the same data and seed."
        )
        return (
            write_model_card(
                out,
                base_model=hub_model_id(self._model_id(root)),
                datasets=list(spec.data),
                recipe=spec.recipe or "",
                hyperparameters=hyper,
                results=[result],
                command=command,
                sections={"Model weights": note},
                model_name=arm,
            )
            or out / "README.md"
        )

    # ----- main ---------------------------------------------------------------------------------------------------

    def run(self, stages: list[str] | None = None) -> dict:
        """Run the plan's steps (all, or those named), skipping finished ones; return the compare JSON if made."""
        plan = self.plan()
        chosen = plan if not stages else [s for s in plan if s in stages]
        self.out.mkdir(parents=True, exist_ok=True)
        self.check_settings()
        outputs = {
            "split": [self.data / "train-human.jsonl", self.data / "heldout.jsonl", self.data / "seeds.jsonl"],
            "synth": [self.data / "strong-templates.jsonl"]
            + ([self.data / "strong-templates-train.jsonl"] if self.config.heldout_share else []),
            "domains": [self.data / "strong-domains.jsonl"],
            "weak": [self.data / "weak.jsonl"],
            "pairs": [self.data / "pairs" / f"{self.config.pairs_preset}.jsonl"],
        }
        # the split is cheap and every step needs it: always made (or read) and printed first
        self.print_split(self.step("split", outputs["split"], self.split))
        for stage in chosen:
            if stage in ("synth", "domains", "weak", "pairs"):
                self.step(stage, outputs[stage], getattr(self, stage))
            elif stage in self.arms:
                self.arm(stage)
            elif stage == "robustness":
                self.robustness()
            elif stage == "compare":
                self.final_compare()
        results = self.out / "results.json"
        return json.loads(results.read_text()) if results.is_file() else {}


def _checkpointing(output_dir: Path, every: int) -> dict:
    """Recipe options that save a checkpoint every `every` steps (the last one kept) and resume from the newest, so
    a training arm killed mid-run (a session's end, a lost machine) goes on from there; 0 turns it off."""
    if every <= 0:
        return {}
    options: dict[str, Any] = {"save_strategy": "steps", "save_steps": every, "save_total_limit": 1}
    done = sorted(
        output_dir.glob("checkpoint-*"),
        key=lambda p: int(p.name.split("-")[-1]) if p.name.split("-")[-1].isdigit() else -1,
    )
    if done:
        options["resume_from_checkpoint"] = done[-1]
    return options


def _losses(out: Path) -> dict:
    path = out / "trainer_state.json"
    if not path.is_file():
        return {}
    state = json.loads(path.read_text())
    losses = [h["loss"] for h in state.get("log_history", []) if "loss" in h]
    info = {"global_step": state.get("global_step"), "epoch": state.get("epoch")}
    return {**info, "first_loss": losses[0], "last_loss": losses[-1]} if losses else info


def _ex(judged: Path) -> float:
    rows = read_jsonl(judged)
    return sum(bool(r["correct"]) for r in rows) / len(rows) if rows else 0.0


def against_table(data: dict, previous: dict[str, str | None]) -> str:
    """Each arm against `base` and against the arm it was trained from: gain in points, CI, McNemar p."""
    systems = {s["name"]: s for s in data["systems"]}
    pairs = {(p["a"], p["b"]): p for p in data["pairs"]}

    def gain(arm: str, other: str | None) -> str:
        if other is None or other not in systems or arm == other:
            return ""
        p = pairs.get((other, arm))
        if p is not None:  # compare's delta is EX(a) - EX(b): flip to arm - other
            d, lo, hi = -p["delta"] + 0.0, -p["delta_ci_high"] + 0.0, -p["delta_ci_low"] + 0.0  # no "-0.0"
        else:
            p = pairs[(arm, other)]
            d, lo, hi = p["delta"], p["delta_ci_low"], p["delta_ci_high"]
        return f"{100 * d:+.1f} [{100 * lo:+.1f}, {100 * hi:+.1f}], p={p['mcnemar_p']:.3g}"

    lines = [
        "| arm | EX % [95% CI] | vs base: points [CI], McNemar p | vs the arm it started from |",
        "|---|---|---|---|",
    ]
    for name, s in systems.items():
        prev = previous.get(name)
        versus = gain(name, prev)
        lines.append(
            f"| {name} | {100 * s['ex']:.1f} [{100 * s['ci_low']:.1f}, {100 * s['ci_high']:.1f}] "
            f"| {gain(name, 'base')} | {f'{prev}: {versus}' if versus else ''} |"
        )
    return "\n".join(lines) + "\n"
