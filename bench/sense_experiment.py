"""The SENSE experiment at CPU scale: base, SFT, cDPO, DPO, SPFT and GRPO arms on one student, with paired statistics.

A bench, not a test: it trains models on CPU for hours and prints the figures, whichever way they go.

Split: the Spider dev databases present under `<data-root>/spider/database`, sorted by db_id; the first
`--train-dbs` (10) are training databases, the rest (9) are held out. Every arm is scored greedily on every
held-out question (431), so held-out databases are never seen in training.

Stages (`--stages`, comma-separated, default all, in this order):

    split       training questions (human, training databases), held-out questions (+ Spider-Syn / -Realistic)
    synth       strong data: template SQL over the training databases; the writer model writes the question,
                the verifier model answers it and execution checks it (`sense-hub synthesize --strategy templates`)
    domains     strong data: new domains (schema + rows + question + SQL) from the writer model, seeded with the
                training questions (`sense-hub synthesize --strategy strong`)
    weak        the weak model samples N SQL per training question, labelled by execution (`sense-hub sample`)
    pairs       preference pairs from the weak samples for every preset; the counts per preset (`sense-hub pairs`)
    base        score the untrained student
    sft-human   SFT on the training databases' human questions, then score
    sft-strong  SFT on human + template + new-domain strong data (same steps and seed), then score
    sft-strong+cdpo   cDPO (eps = 0.1) from sft-strong on the pairs of `--pairs-preset`, then score
    sft-strong+dpo    the same with eps = 0 (plain DPO), then score
    spft        SPFT-SQL self-play rounds from sft-strong on the training questions, then score the best round
    grpo        GRPO with execution rewards from sft-strong (only when recipes/grpo.py exists), then score
    robustness  base and the best arm on the Spider-Syn and Spider-Realistic versions of the held-out questions
    compare     `sense-hub compare` over every scored arm: EX with CIs, McNemar p and paired-bootstrap deltas

Every step calls the library's entry points (`sense-hub ...` and `recipes/*.py`, as subprocesses with this
checkout first on PYTHONPATH) and leaves its files under `--out`. A step whose outputs exist and whose marker
`OUT/done/<step>.json` exists is skipped, so rerunning the same command resumes; `sense-hub predict/sample/
synthesize` also resume inside a step. Wall times go to `OUT/timings.json`, each command's output to
`OUT/logs/<step>.log`. `compare` and the robustness comparison rerun every time (they take a second).

Usage:
    .venv/bin/python bench/sense_experiment.py --out runs/sense                          # everything
    .venv/bin/python bench/sense_experiment.py --out runs/sense --stages split,synth     # one stage at a time
    .venv/bin/python bench/sense_experiment.py --out /tmp/sense-quick --quick            # tiny end-to-end check
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data"

ARMS = ("base", "sft-human", "sft-strong", "sft-strong+cdpo", "sft-strong+dpo", "spft", "grpo")
STAGES = ("split", "synth", "domains", "weak", "pairs", *ARMS, "robustness", "compare")
PREVIOUS = {
    "sft-human": "base",
    "sft-strong": "sft-human",
    "sft-strong+cdpo": "sft-strong",
    "sft-strong+dpo": "sft-strong",
    "spft": "sft-strong",
    "grpo": "sft-strong",
}
VARIANTS = {"syn": "spider-syn", "realistic": "spider-realistic"}


class StageError(RuntimeError):
    """A step failed or its inputs are missing; the message says which and what to run."""


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--out", type=Path, required=True, help="run folder (resumed when it exists)")
    p.add_argument("--data-root", type=Path, default=DEFAULT_DATA, help="folder holding spider/ (../shared/data)")
    p.add_argument("--stages", default="all", help=f"comma list of: {', '.join(STAGES)} (default: all)")
    p.add_argument("--quick", action="store_true", help="tiny sizes: a few questions, 2 training steps")
    m = p.add_argument_group("models")
    m.add_argument("--student", default="embedded", help="the model trained in every arm (default: embedded)")
    m.add_argument("--weak-model", default="embedded", help="samples the weak data (default: embedded)")
    m.add_argument("--writer", default="embedded:qwen2.5-coder-0.5b", help="writes template questions and domains")
    m.add_argument("--verifier", default="embedded:qwen2.5-coder-0.5b", help="verifies template questions")
    m.add_argument("--recipe-dir", type=Path, default=REPO / "recipes" / "smollm2-135m", help="YAMLs per stage")
    m.add_argument("--sft-config", type=Path, default=None, help="default: RECIPE_DIR/sft.yaml")
    m.add_argument("--cdpo-config", type=Path, default=None, help="default: RECIPE_DIR/cdpo.yaml")
    m.add_argument("--spft-config", type=Path, default=None, help="default: RECIPE_DIR/spft.yaml")
    m.add_argument("--grpo-config", type=Path, default=None, help="default: RECIPE_DIR/grpo.yaml")
    m.add_argument("--train-extra", default="", help="extra recipe options for every training run, e.g. '--bf16 true'")
    d = p.add_argument_group("data")
    d.add_argument("--train-dbs", type=int, default=10, help="first N sorted Spider dev databases train (default 10)")
    d.add_argument("--per-database", type=int, default=60, help="template candidates per training database")
    d.add_argument("--synth-rounds", type=int, default=2, help="question rounds per template candidate")
    d.add_argument("--synth-time-budget", type=float, default=None, help="seconds; stop synthesis early (resumable)")
    d.add_argument("--domain-examples", type=int, default=32, help="new-domain requests to the writer (0: none)")
    d.add_argument("--weak-samples", type=int, default=8, help="weak SQL samples per training question")
    d.add_argument("--weak-temperature", type=float, default=1.0, help="sampling temperature of the weak model")
    d.add_argument("--pairs-preset", default="keep-gold-limit1", help="pairs preset that cDPO/DPO train on")
    t = p.add_argument_group("training (the same seed and step budget for every arm of a kind)")
    t.add_argument("--sft-steps", type=int, default=150, help="optimizer steps of each SFT arm")
    t.add_argument("--pref-steps", type=int, default=60, help="optimizer steps of cDPO and DPO")
    t.add_argument(
        "--sft-epochs",
        type=float,
        default=None,
        help="whole epochs per SFT arm over its own data (replaces --sft-steps)",
    )
    t.add_argument("--pref-epochs", type=float, default=None, help="epochs over the pairs (replaces --pref-steps)")
    t.add_argument("--spft-rounds", type=int, default=2)
    t.add_argument("--spft-steps", type=int, default=20, help="optimizer steps per SPFT round")
    t.add_argument("--spft-eval-size", type=int, default=40, help="training questions SPFT holds out to pick a round")
    t.add_argument("--grpo-steps", type=int, default=60, help="GRPO optimizer steps at most")
    t.add_argument("--grpo-minutes", type=float, default=30.0, help="GRPO training budget (max_train_minutes)")
    t.add_argument("--epsilon", type=float, default=0.1, help="cDPO label-noise epsilon")
    t.add_argument("--seed", type=int, default=42)
    t.add_argument("--save-steps", type=int, default=10, help="checkpoint SFT/preference arms every N steps (0: off)")
    s = p.add_argument_group("scoring")
    s.add_argument("--max-new-tokens", type=int, default=256, help="greedy prediction budget")
    s.add_argument("--batch-size", type=int, default=8, help="generation batch size")
    s.add_argument("--bootstrap", type=int, default=10_000, help="bootstrap resamples for `sense-hub compare`")
    s.add_argument("--best-arm", default=None, help="arm scored on Spider-Syn/-Realistic (default: best held-out EX)")
    args = p.parse_args(argv)
    stages = STAGES if args.stages == "all" else tuple(x.strip() for x in args.stages.split(",") if x.strip())
    unknown = [x for x in stages if x not in STAGES]
    if unknown:
        p.error(f"--stages: unknown {unknown}; choose from {', '.join(STAGES)}")
    args.stage_list = [x for x in STAGES if x in stages]
    for name in ("sft", "cdpo", "spft", "grpo"):
        if getattr(args, f"{name}_config") is None:
            setattr(args, f"{name}_config", args.recipe_dir / f"{name}.yaml")
    if args.quick:
        args.sizes = {"heldout": 4, "train": 8, "synth_dbs": 2, "variant": 4}
        args.per_database, args.synth_rounds, args.domain_examples, args.weak_samples = 1, 1, 1, 2
        args.sft_steps = args.pref_steps = args.spft_steps = args.grpo_steps = 2
        args.spft_rounds, args.spft_eval_size, args.max_new_tokens, args.bootstrap = 1, 2, 64, 1000
    else:
        args.sizes = {}
    return args


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _write_json(path: Path, data) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str) + "\n")
    tmp.replace(path)


def _read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _write_jsonl(path: Path, rows) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    n = 0
    with tmp.open("w") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")
            n += 1
    tmp.replace(path)
    return n


def _count_lines(path: Path) -> int:
    return sum(1 for line in path.read_text().splitlines() if line.strip()) if path.is_file() else 0


class Experiment:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.out = args.out
        self.spider = args.data_root / "spider"
        self.db_root = self.spider / "database"
        self.data = self.out / "data"
        self.models = self.out / "models"
        self.env = dict(os.environ)
        self.env["PYTHONPATH"] = os.pathsep.join(x for x in (str(REPO), self.env.get("PYTHONPATH", "")) if x)

    # ----- bookkeeping --------------------------------------------------------------------------------------------

    def check_settings(self) -> None:
        path = self.out / "settings.json"
        settings = {k: str(v) if isinstance(v, Path) else v for k, v in vars(self.args).items() if k != "stage_list"}
        if path.is_file():
            old = json.loads(path.read_text())
            if old.get("quick") != settings["quick"]:
                raise StageError(
                    f"{self.out} was made {'with' if old.get('quick') else 'without'} --quick; use another --out"
                )
            changed = sorted(k for k in settings if k not in ("stages",) and old.get(k) != settings[k])
            if changed:
                print(f"note: settings differ from the run's first ones in {changed}; finished steps are kept")
        else:
            _write_json(path, settings)

    def step(self, name: str, outputs: list[Path], fn) -> dict:
        """Run `fn` unless `OUT/done/<name>.json` and every output exist; record its wall time."""
        marker = self.out / "done" / f"{name}.json"
        if marker.is_file() and all(p.exists() for p in outputs):
            info = json.loads(marker.read_text())
            print(f"[{name}] done before ({info.get('seconds', '?')} s), skipped")
            return info
        print(f"[{name}] started {_now()}", flush=True)
        started = time.perf_counter()
        info = dict(fn() or {})
        info.update(step=name, seconds=round(time.perf_counter() - started, 1), finished=_now())
        missing = [str(p) for p in outputs if not p.exists()]
        if missing:
            raise StageError(f"{name}: finished without writing {missing}; see {self.out / 'logs' / name}.log")
        _write_json(marker, info)
        timings_path = self.out / "timings.json"
        timings = json.loads(timings_path.read_text()) if timings_path.is_file() else {}
        timings[name] = {"seconds": info["seconds"], "finished": info["finished"]}
        _write_json(timings_path, timings)
        print(f"[{name}] finished in {info['seconds']} s", flush=True)
        return info

    def run(self, name: str, cmd: list[str]) -> dict | None:
        """Run a command with its output appended to OUT/logs/<name>.log; return its last stdout line as JSON."""
        log = self.out / "logs" / f"{name}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        cmd = [str(c) for c in cmd]
        print(f"[{name}] $ {shlex.join(cmd)}", flush=True)
        with log.open("a") as f:
            f.write(f"\n[{_now()}] $ {shlex.join(cmd)}\n")
            f.flush()
            start = f.tell()
            proc = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, env=self.env, cwd=REPO, check=False)
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

    def recipe(self, name: str, config: Path, **options) -> list[str]:
        """`python recipes/NAME.py --config CONFIG ...` (TRL-style `--field_name value`) + `--train-extra`."""
        script = REPO / "recipes" / f"{name}.py"
        extra = shlex.split(self.args.train_extra)
        return [sys.executable, str(script), "--config", str(config), *_options(options, "_"), *extra]

    def need(self, path: Path, stage: str) -> Path:
        if not path.exists():
            raise StageError(f"{path} is missing: run --stages {stage} first")
        return path

    # ----- split --------------------------------------------------------------------------------------------------

    def split(self) -> dict:
        from sense_hub.benchmarks import BenchmarkError, load_benchmark
        from sense_hub.databases import list_databases

        names = sorted(list_databases(self.db_root))
        if self.args.train_dbs >= len(names):
            raise StageError(f"--train-dbs {self.args.train_dbs}: only {len(names)} databases; leave some held out")
        train_dbs, held_dbs = names[: self.args.train_dbs], names[self.args.train_dbs :]
        dev = load_benchmark("spider", root=self.spider)

        def rows(examples, dbs):
            return [
                {"question_id": e.question_id, "db_id": e.db_id, "question": e.question, "sql": e.sql}
                for e in examples
                if e.db_id in dbs
            ]

        train, held = rows(dev, set(train_dbs)), rows(dev, set(held_dbs))
        info = {
            "train_dbs": train_dbs,
            "held_out_dbs": held_dbs,
            "train_questions": len(train),
            "held_out_questions": len(held),
        }
        limit = self.args.sizes
        _write_jsonl(self.data / "train-human.jsonl", train[: limit.get("train")])
        _write_jsonl(self.data / "heldout.jsonl", held[: limit.get("heldout")])
        for short, bench in VARIANTS.items():
            folder = self.args.data_root / bench
            try:
                variant = rows(load_benchmark(bench, root=folder), set(held_dbs))
            except BenchmarkError as e:  # a missing variant only leaves it out of the robustness stage
                print(f"[split] {bench}: not available ({e}); robustness skips it")
                continue
            info[f"held_out_{short}"] = len(variant)
            _write_jsonl(self.data / f"heldout-{short}.jsonl", variant[: limit.get("variant")])
        _write_jsonl(self.data / "seeds.jsonl", self._seeds(train[: limit.get("train")]))
        return info

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
        print(f"training databases ({len(info['train_dbs'])}): {', '.join(info['train_dbs'])}")
        print(f"held-out databases ({len(info['held_out_dbs'])}): {', '.join(info['held_out_dbs'])}")
        variants = ", ".join(
            f"Spider-{k.title()} {info[f'held_out_{k}']}" for k in VARIANTS if f"held_out_{k}" in info
        )
        print(
            f"held-out questions: {info['held_out_questions']} ({variants}); training questions: "
            f"{info['train_questions']}"
        )
        if self.args.quick:
            print(
                f"--quick: scoring {_count_lines(self.data / 'heldout.jsonl')} held-out questions, training on "
                f"{_count_lines(self.data / 'train-human.jsonl')} human questions"
            )

    # ----- data ---------------------------------------------------------------------------------------------------

    def synth(self) -> dict:
        a = self.args
        split = json.loads((self.out / "done" / "split.json").read_text())
        output = self.data / "strong-templates.jsonl"
        cmd = self.cli(
            "synthesize",
            strategy="templates",
            db_root=self.db_root,
            db_ids=",".join(split["train_dbs"][: a.sizes.get("synth_dbs")]),
            model=a.writer,
            # the same name: one model loaded for both roles
            verifier_model=a.verifier if a.verifier != a.writer else None,
            per_database=a.per_database,
            rounds=a.synth_rounds,
            batch_size=a.batch_size,
            seed=a.seed,
            time_budget=a.synth_time_budget,
            output=output,
        )
        summary = self.run("synth", cmd) or {}
        return {"records": _count_lines(output), "writer": a.writer, "verifier": a.verifier, "summary": summary}

    def domains(self) -> dict:
        a = self.args
        output = self.data / "strong-domains.jsonl"
        if a.domain_examples <= 0:
            _write_jsonl(output, [])
            return {"records": 0, "note": "--domain-examples 0"}
        cmd = self.cli(
            "synthesize",
            strategy="strong",
            model=a.writer,
            seeds=self.need(self.data / "seeds.jsonl", "split"),
            num_examples=a.domain_examples,
            db_out_root=self.data / "strong_dbs",
            batch_size=a.batch_size,
            seed=a.seed,
            max_new_tokens=300 if a.quick else 1500,
            output=output,
        )
        summary = self.run("domains", cmd) or {}
        return {"records": _count_lines(output), "model": a.writer, "summary": summary}

    def weak(self) -> dict:
        a = self.args
        cmd = self.cli(
            "sample",
            input=self.need(self.data / "train-human.jsonl", "split"),
            db_root=self.db_root,
            num_samples=a.weak_samples,
            temperature=a.weak_temperature,
            model=a.weak_model,
            max_new_tokens=a.max_new_tokens,
            batch_size=a.batch_size,
            seed=a.seed,
            no_progress=True,
            output=self.data / "weak.jsonl",
        )
        summary = self.run("weak", cmd)
        return {
            "model": a.weak_model,
            "samples_per_question": a.weak_samples,
            "temperature": a.weak_temperature,
            "summary": summary,
        }

    def pairs(self) -> dict:
        from sense_hub.pairs import PRESETS

        weak = self.need(self.data / "weak.jsonl", "weak")
        counts = {}
        for preset in sorted(PRESETS):
            out = self.data / "pairs" / f"{preset}.jsonl"
            stats = out.with_suffix(".stats.json")
            self.run(
                "pairs", self.cli("pairs", weak=weak, db_root=self.db_root, preset=preset, output=out, stats=stats)
            )
            counts[preset] = _count_lines(out)
        print("pairs per preset: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
        return {"pairs_per_preset": counts, "trained_on": self.args.pairs_preset}

    def sft_strong_data(self) -> Path:
        path = self.data / "sft-strong.jsonl"
        sources = [
            self.need(self.data / "train-human.jsonl", "split"),
            self.need(self.data / "strong-templates.jsonl", "synth"),
            self.need(self.data / "strong-domains.jsonl", "domains"),
        ]
        keys = ("id", "db_id", "question", "sql", "schema", "evidence")
        rows = []
        for source in sources:
            for r in _read_jsonl(source):
                row = {k: r.get(k) or "" for k in keys}
                row["id"] = str(r.get("id") or r.get("question_id") or f"{source.stem}-{len(rows)}")
                row["source"] = source.stem
                rows.append(row)
        _write_jsonl(path, rows)
        return path

    # ----- arms ---------------------------------------------------------------------------------------------------

    def model_of(self, arm: str) -> str:
        if arm == "base":
            return self.args.student
        if arm == "spft":
            results = self.need(self.models / "spft" / "spft_results.json", "spft")
            return json.loads(results.read_text())["best"]["path"]
        return str(self.need(self.models / arm, arm))

    def train(self, arm: str) -> dict | None:
        a = self.args
        common = {"output_dir": self.models / arm, "seed": a.seed}
        if arm in ("sft-human", "sft-strong", "sft-strong+cdpo", "sft-strong+dpo"):
            common.update(_checkpointing(self.models / arm, a.save_steps))
        human = self.data / "train-human.jsonl"
        if arm in ("sft-human", "sft-strong"):
            data = self.need(human, "split") if arm == "sft-human" else self.sft_strong_data()
            self.run(
                arm,
                self.recipe(
                    "sft",
                    a.sft_config,
                    model_name_or_path=a.student,
                    dataset_name=data,
                    db_root=self.db_root,
                    **_budget(a.sft_steps, a.sft_epochs),
                    **common,
                ),
            )
            info = {"records": _count_lines(data), "steps": a.sft_steps, "epochs": a.sft_epochs}
            return {**info, **_losses(self.models / arm)}
        if arm in ("sft-strong+cdpo", "sft-strong+dpo"):
            pairs = self.need(self.data / "pairs" / f"{a.pairs_preset}.jsonl", "pairs")
            eps = a.epsilon if arm.endswith("cdpo") else 0.0
            self.run(
                arm,
                self.recipe(
                    "cdpo",
                    a.cdpo_config,
                    model_name_or_path=self.model_of("sft-strong"),
                    dataset_name=pairs,
                    cdpo_epsilon=eps,
                    **_budget(a.pref_steps, a.pref_epochs),
                    **common,
                ),
            )
            info = {"pairs": _count_lines(pairs), "preset": a.pairs_preset, "epsilon": eps, "epochs": a.pref_epochs}
            return {**info, **_losses(self.models / arm)}
        if arm == "spft":
            self.run(
                arm,
                self.recipe(
                    "spft",
                    a.spft_config,
                    model_name_or_path=self.model_of("sft-strong"),
                    train_file=self.need(human, "split"),
                    db_root=self.db_root,
                    eval_size=a.spft_eval_size,
                    rounds=a.spft_rounds,
                    max_steps=a.spft_steps,
                    **common,
                ),
            )
            results = json.loads((self.models / arm / "spft_results.json").read_text())
            return {"rounds": a.spft_rounds, "steps_per_round": a.spft_steps, "best": results["best"]}
        if arm == "grpo":
            self.run(
                arm,
                self.recipe(
                    "grpo",
                    a.grpo_config,
                    model_name_or_path=self.model_of("sft-strong"),
                    dataset_name=self.need(human, "split"),
                    db_root=self.db_root,
                    max_steps=a.grpo_steps,
                    max_train_minutes=a.grpo_minutes,
                    **common,
                ),
            )
            results = json.loads((self.models / arm / "grpo_results.json").read_text())
            return {
                "max_steps": a.grpo_steps,
                "minutes": a.grpo_minutes,
                "steps": results.get("steps"),
                "reward": results.get("reward"),
                **_losses(self.models / arm),
            }
        return None

    def score(self, arm: str, variant: str = "") -> dict:
        """Greedy predictions of the arm's model on the held-out questions (`sense-hub predict`), judged by `eval`."""
        suffix = f"@{variant}" if variant else ""
        questions = self.need(self.data / f"heldout{'-' + variant if variant else ''}.jsonl", "split")
        preds = self.out / "preds" / f"{arm}{suffix}.jsonl"
        judged = self.out / "judged" / f"{arm}{suffix}.jsonl"
        name = f"score-{arm}{suffix}"
        model = self.model_of(arm)
        self.run(
            name,
            self.cli(
                "predict",
                input=questions,
                db_root=self.db_root,
                model=model,
                max_new_tokens=self.args.max_new_tokens,
                batch_size=self.args.batch_size,
                no_progress=True,
                output=preds,
            ),
        )
        summary = self.run(
            name, self.cli("eval", predictions=preds, db_root=self.db_root, metric="spider", output=judged)
        )
        return {"model": model, "eval": summary}

    def arm(self, arm: str) -> None:
        if arm == "grpo" and not (REPO / "recipes" / "grpo.py").is_file():
            print("[grpo] skipped: recipes/grpo.py does not exist yet")
            return
        if arm == "grpo" and not self.args.grpo_config.is_file():
            print(f"[grpo] skipped: no {self.args.grpo_config} (pass --grpo-config)")
            return
        if arm != "base":
            outputs = [self.models / arm / ("spft_results.json" if arm == "spft" else "config.json")]
            self.step(f"train-{arm}", outputs, lambda: self.train(arm))
        self.step(f"score-{arm}", [self.out / "judged" / f"{arm}.jsonl"], lambda: self.score(arm))

    # ----- comparisons --------------------------------------------------------------------------------------------

    def compare(self, arms: list[str], *, suffix: str = "", table: Path) -> dict:
        """`sense-hub compare` over the arms' judged files; the markdown goes to `table`, the JSON is returned."""
        files = [self.out / "judged" / f"{arm}{suffix}.jsonl" for arm in arms]
        cmd = self.cli("compare", *files, names=",".join(arms), bootstrap=self.args.bootstrap, output=table)
        data = self.run("compare", cmd)
        if not data:
            raise StageError(f"compare: no JSON summary; see {self.out / 'logs' / 'compare.log'}")
        return data

    def robustness(self) -> None:
        scored = self._scored()
        best = self.args.best_arm or max(
            (a for a in scored if a != "base"), key=lambda a: _ex(self.out / "judged" / f"{a}.jsonl"), default=None
        )
        if best is None:
            print("[robustness] skipped: no trained arm is scored yet")
            return
        print(f"[robustness] base and {best} on the Spider-Syn / Spider-Realistic held-out questions")
        for variant in VARIANTS:
            if not (self.data / f"heldout-{variant}.jsonl").is_file():
                continue
            for arm in ("base", best):
                self.step(
                    f"score-{arm}@{variant}",
                    [self.out / "judged" / f"{arm}@{variant}.jsonl"],
                    lambda arm=arm, variant=variant: self.score(arm, variant),
                )
            data = self.compare(["base", best], suffix=f"@{variant}", table=self.out / f"table-{variant}.md")
            print(f"\n## {VARIANTS[variant]} (held-out databases)\n")
            print((self.out / f"table-{variant}.md").read_text())
            _write_json(self.out / f"results-{variant}.json", data)

    def _scored(self) -> list[str]:
        return [a for a in ARMS if (self.out / "judged" / f"{a}.jsonl").is_file()]

    def final_compare(self) -> None:
        arms = self._scored()
        if not arms:
            print("[compare] nothing scored yet")
            return
        data = self.compare(arms, table=self.out / "table.md")
        _write_json(self.out / "results.json", data)
        print("\n## Spider dev, held-out databases\n")
        print((self.out / "table.md").read_text())
        print(_against_table(data))
        self.write_cards(arms, data)
        print(json.dumps(data))

    def write_cards(self, arms: list[str], data: dict) -> None:
        """Each trained arm's model card gets its held-out score (`model-index`, with fingerprints) and the table."""
        from sense_hub.cards import add_results, eval_summary_to_result

        n = next((s["n"] for s in data["systems"]), 0)
        held = json.loads((self.out / "done" / "split.json").read_text()).get("held_out_dbs", [])
        dataset = f"Spider dev, {len(held)} held-out databases ({n} questions)"
        table = (self.out / "table.md").read_text()
        for arm in arms:
            marker = self.out / "done" / f"score-{arm}.json"
            card = Path(self.model_of(arm)) / "README.md" if arm != "base" else None
            if card is None or not card.is_file() or not marker.is_file():
                continue
            result = eval_summary_to_result(
                json.loads(marker.read_text())["eval"], dataset_name=dataset, dataset_id="spider"
            )
            system = next(s for s in data["systems"] if s["name"] == arm)
            body = (
                f"Arm `{arm}` of the SENSE experiment (`bench/sense_experiment.py`): greedy execution accuracy on "
                f"{dataset}, Spider metric: **{100 * system['ex']:.1f}% [{100 * system['ci_low']:.1f}, "
                f"{100 * system['ci_high']:.1f}]** ({system['correct']}/{system['n']}; 95% percentile bootstrap). "
                "All arms, paired (`sense-hub compare`):\n\n" + table + "\n" + _against_table(data)
            )
            add_results(card, [result], section="SENSE experiment: held-out results", body=body)
        print(f"[compare] model cards updated: {', '.join(a for a in arms if a != 'base')}")

    # ----- main ---------------------------------------------------------------------------------------------------

    def main(self) -> int:
        if not (self.spider / "dev.json").is_file():
            print(f"Spider dev not found under {self.args.data_root}; pass --data-root", file=sys.stderr)
            return 2
        self.out.mkdir(parents=True, exist_ok=True)
        self.check_settings()
        outputs = {
            "split": [self.data / "train-human.jsonl", self.data / "heldout.jsonl", self.data / "seeds.jsonl"],
            "synth": [self.data / "strong-templates.jsonl"],
            "domains": [self.data / "strong-domains.jsonl"],
            "weak": [self.data / "weak.jsonl"],
            "pairs": [self.data / "pairs" / f"{self.args.pairs_preset}.jsonl"],
        }
        # the split is cheap and every stage needs it: always made (or read) and printed first
        self.print_split(self.step("split", outputs["split"], self.split))
        for stage in self.args.stage_list:
            if stage in ("synth", "domains", "weak", "pairs"):
                self.step(stage, outputs[stage], getattr(self, stage))
            elif stage in ARMS:
                self.arm(stage)
            elif stage == "robustness":
                self.robustness()
            elif stage == "compare":
                self.final_compare()
        return 0


def _options(options: dict, sep: str) -> list[str]:
    """`{"db_root": x, "no_progress": True, "skip": None}` -> `["--db-root", "x", "--no-progress"]` (sep "-")."""
    out = []
    for key, value in options.items():
        if value is None or value is False:
            continue
        flag = "--" + key.replace("_", sep)
        out += [flag] if value is True else [flag, str(value)]
    return out


def _checkpointing(output_dir: Path, every: int) -> dict:
    """Recipe options that save a checkpoint every `every` steps (the last one kept) and resume from the newest, so
    a training arm killed mid-run (a session's end, a lost machine) goes on from there; 0 turns it off."""
    if every <= 0:
        return {}
    options = {"save_strategy": "steps", "save_steps": every, "save_total_limit": 1}
    done = sorted(
        output_dir.glob("checkpoint-*"),
        key=lambda p: int(p.name.split("-")[-1]) if p.name.split("-")[-1].isdigit() else -1,
    )
    if done:
        options["resume_from_checkpoint"] = done[-1]
    return options


def _budget(steps: int, epochs: float | None) -> dict:
    """Recipe options for a step budget, or for whole epochs over the arm's own data when `epochs` is set."""
    return {"max_steps": steps} if epochs is None else {"num_train_epochs": epochs, "max_steps": -1}


def _losses(out: Path) -> dict:
    path = out / "trainer_state.json"
    if not path.is_file():
        return {}
    state = json.loads(path.read_text())
    losses = [h["loss"] for h in state.get("log_history", []) if "loss" in h]
    info = {"global_step": state.get("global_step"), "epoch": state.get("epoch")}
    return {**info, "first_loss": losses[0], "last_loss": losses[-1]} if losses else info


def _ex(judged: Path) -> float:
    rows = _read_jsonl(judged)
    return sum(r["correct"] for r in rows) / len(rows) if rows else 0.0


def _against_table(data: dict) -> str:
    """Each arm against `base` and against the arm it was trained from: gain in points, CI, McNemar p."""
    systems = {s["name"]: s for s in data["systems"]}
    pairs = {(p["a"], p["b"]): p for p in data["pairs"]}

    def gain(arm: str, other: str) -> str:
        if other not in systems or arm == other:
            return ""
        p = pairs.get((other, arm))
        if p is not None:  # compare's delta is EX(a) - EX(b): flip to arm - other
            d, lo, hi = -p["delta"] + 0.0, -p["delta_ci_high"] + 0.0, -p["delta_ci_low"] + 0.0  # no "-0.0"
        else:
            p = pairs[(arm, other)]
            d, lo, hi = p["delta"], p["delta_ci_low"], p["delta_ci_high"]
        return f"{100 * d:+.1f} [{100 * lo:+.1f}, {100 * hi:+.1f}], p={p['mcnemar_p']:.3g}"

    lines = ["| arm | EX % [95% CI] | vs base: points [CI], McNemar p | vs previous arm |", "|---|---|---|---|"]
    for name, s in systems.items():
        prev = PREVIOUS.get(name, "")
        lines.append(
            f"| {name} | {100 * s['ex']:.1f} [{100 * s['ci_low']:.1f}, {100 * s['ci_high']:.1f}] "
            f"| {gain(name, 'base')} | {f'{prev}: ' + gain(name, prev) if gain(name, prev) else ''} |"
        )
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        return Experiment(args).main()
    except StageError as e:
        print(f"sense_experiment: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
