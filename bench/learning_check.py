"""Learning check: does SFT on template-synthesized data raise execution accuracy, and what does cDPO add?

A bench, not a test: it trains the embedded SmolLM2-135M on CPU and prints the figures, whichever way they go.

1. Spider dev databases are split by db_id: the first `--train-dbs` (sorted) are training databases, the rest are
   held out. Template-synthesized strong records (`sense_hub.synthesis.synthesize_templates`, rule-based questions,
   execution-checked) are made over the training databases.
2. The untrained embedded model answers `--eval-questions` Spider dev questions of the held-out databases (greedy);
   `sense_hub.evaluation.judge` scores them (metric `spider`).
3. SFT (`sense_hub.training.run_sft`) on the strong records; the SFT model answers the same questions.
4. The SFT model samples `--samples` SQL per training question; execution labels them; `sense_hub.pairs.build_pairs`
   (grouped-any-limit1) makes pairs; cDPO (`run_cdpo`, eps = `--epsilon`) from the SFT model; it answers the same
   questions.

Every stage leaves its files in `--work` and is skipped when they are there (rerun to resume).

Usage:
    .venv/bin/python bench/learning_check.py --work /tmp/learning-check                       # defaults
    .venv/bin/python bench/learning_check.py --eval-questions 40 --sft-steps 20 --cdpo-steps 10  # smaller
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data"


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-root", type=Path, default=DEFAULT_DATA, help="folder holding spider/ (../shared/data)")
    p.add_argument("--work", type=Path, default=Path("/tmp/sense-learning-check"))
    p.add_argument("--train-dbs", type=int, default=10, help="Spider dev databases used for synthesis")
    p.add_argument("--per-database", type=int, default=60, help="template candidates per training database")
    p.add_argument("--eval-questions", type=int, default=80, help="held-out questions scored per model")
    p.add_argument("--sft-steps", type=int, default=60)
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--grad-accum", type=int, default=2)
    p.add_argument("--sft-lr", type=float, default=1e-4)
    p.add_argument("--lora", action="store_true", help="LoRA (r=16, merged) instead of full fine-tuning")
    p.add_argument("--max-length", type=int, default=1024)
    p.add_argument("--pair-questions", type=int, default=80, help="training questions sampled for pairs")
    p.add_argument("--samples", type=int, default=4, help="SQL samples per question for pairs")
    p.add_argument("--cdpo-steps", type=int, default=20)
    p.add_argument("--cdpo-lr", type=float, default=5e-6)
    p.add_argument("--epsilon", type=float, default=0.1)
    p.add_argument("--beta", type=float, default=0.1)
    p.add_argument("--max-new-tokens", type=int, default=160)
    p.add_argument("--stages", default="base,sft,cdpo", help="comma list of base, sft, cdpo")
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args(argv)


def spider_split(spider: Path, train_dbs: int) -> tuple[list[Path], list[str]]:
    from sense_hub.databases import list_databases

    dbs = list_databases(spider / "database")
    names = sorted(dbs)
    if train_dbs >= len(names):
        raise SystemExit(f"--train-dbs {train_dbs}: only {len(names)} Spider dev databases; leave some held out")
    return [dbs[n] for n in names[:train_dbs]], names[train_dbs:]


def eval_examples(spider: Path, held_out: list[str], n: int, seed: int):
    from sense_hub.benchmarks import load_benchmark

    examples = [e for e in load_benchmark("spider", root=spider) if e.db_id in set(held_out)]
    random.Random(seed).shuffle(examples)
    return examples[:n]


def score(predictions: list[dict], db_root: Path) -> dict:
    from sense_hub.evaluation import execution_accuracy, judge

    items = [(db_root / p["db_id"] / f"{p['db_id']}.sqlite", p["gold"], p["pred"]) for p in predictions]
    verdicts = judge(items, metric="spider")
    executed = sum(1 for v in verdicts if v.error is None)
    return {
        "n": len(verdicts),
        "execution_accuracy": execution_accuracy(verdicts),
        "correct": sum(v.correct for v in verdicts),
        "executes": executed / max(1, len(verdicts)),
    }


def evaluate_model(model: str, name: str, examples, db_root: Path, work: Path, args) -> dict:
    from sense_hub.generation import load_generator
    from sense_hub.sampling import predict

    started = time.perf_counter()
    generator = load_generator(model, batch_size=8)
    rows = predict(
        examples, generator, db_root=db_root, output=work / f"pred-{name}.jsonl", max_new_tokens=args.max_new_tokens
    )
    result = {**score(rows, db_root), "seconds": round(time.perf_counter() - started, 1)}
    logging.info("%s: %s", name, result)
    return result


def cpu_args(**kwargs) -> dict:
    return {
        "use_cpu": True,
        "bf16": False,
        "gradient_checkpointing": False,
        "report_to": "none",
        "save_strategy": "no",
        "logging_steps": 5,
        "dataloader_num_workers": 0,
        **kwargs,
    }


def model_config(name: str, args):
    from trl import ModelConfig

    if args.lora:
        return ModelConfig(
            model_name_or_path=name, use_peft=True, lora_r=16, lora_alpha=32, lora_target_modules=["all-linear"]
        )
    return ModelConfig(model_name_or_path=name)


def train_sft(strong: Path, db_root: Path, out: Path, args) -> dict:
    from trl import SFTConfig

    from sense_hub.training import SenseScriptArguments, run_sft

    started = time.perf_counter()
    script_args = SenseScriptArguments(dataset_name=str(strong), db_root=str(db_root), merge_lora=args.lora)
    training_args = SFTConfig(
        output_dir=str(out),
        max_steps=args.sft_steps,
        per_device_train_batch_size=args.batch_size,
        gradient_accumulation_steps=args.grad_accum,
        learning_rate=args.sft_lr * (5 if args.lora else 1),
        lr_scheduler_type="cosine",
        warmup_steps=0.05,
        max_length=args.max_length,
        seed=args.seed,
        **cpu_args(),
    )
    run_sft(script_args, training_args, model_config("embedded", args))
    return {"seconds": round(time.perf_counter() - started, 1), **final_loss(out)}


def final_loss(out: Path) -> dict:
    history = json.loads((out / "trainer_state.json").read_text())["log_history"]
    losses = [h["loss"] for h in history if "loss" in h]
    return {"first_loss": losses[0] if losses else None, "last_loss": losses[-1] if losses else None}


def make_pairs(sft_model: Path, strong: Path, db_root: Path, work: Path, args) -> tuple[Path, dict]:
    from sense_hub.benchmarks import load_strong_records
    from sense_hub.generation import load_generator
    from sense_hub.pairs import PRESETS, build_pairs, write_pairs
    from sense_hub.sampling import sample_candidates

    pairs_path = work / "pairs.jsonl"
    stats_path = work / "pairs-stats.json"
    if pairs_path.is_file() and stats_path.is_file():
        return pairs_path, json.loads(stats_path.read_text())
    examples = list(load_strong_records(strong))
    random.Random(args.seed + 1).shuffle(examples)
    examples = examples[: args.pair_questions]
    started = time.perf_counter()
    weak = sample_candidates(
        examples,
        load_generator(str(sft_model), batch_size=8),
        db_root=db_root,
        n=args.samples,
        output=work / "weak.jsonl",
        temperature=0.8,
        max_new_tokens=args.max_new_tokens,
        seed=args.seed,
    )
    pairs, stats = build_pairs(weak, config=PRESETS["grouped-any-limit1"], db_root=db_root)
    stats = {
        **stats,
        "samples": len(weak),
        "samples_correct": sum(r["correct"] for r in weak),
        "sampling_seconds": round(time.perf_counter() - started, 1),
    }
    write_pairs(pairs, pairs_path)
    stats_path.write_text(json.dumps(stats, indent=2, default=str))
    return pairs_path, stats


def train_cdpo(sft_model: Path, pairs: Path, out: Path, args) -> dict:
    from sense_hub.training import CDPOConfig, SenseScriptArguments, run_cdpo

    started = time.perf_counter()
    training_args = CDPOConfig(
        output_dir=str(out),
        cdpo_epsilon=args.epsilon,
        beta=args.beta,
        precompute_ref_log_probs=True,
        max_steps=args.cdpo_steps,
        per_device_train_batch_size=args.batch_size,
        gradient_accumulation_steps=args.grad_accum,
        learning_rate=args.cdpo_lr,
        lr_scheduler_type="cosine",
        warmup_steps=0.05,
        max_length=args.max_length,
        seed=args.seed,
        **cpu_args(),
    )
    run_cdpo(SenseScriptArguments(dataset_name=str(pairs)), training_args, model_config(str(sft_model), args))
    return {"seconds": round(time.perf_counter() - started, 1), **final_loss(out)}


def main(argv=None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    args = parse_args(argv)
    spider = args.data_root / "spider"
    if not (spider / "dev.json").is_file():
        print(f"Spider dev not found under {args.data_root}; pass --data-root", file=sys.stderr)
        return 2
    db_root = spider / "database"
    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    report_path = work / "report.json"
    report = json.loads(report_path.read_text()) if report_path.is_file() else {}
    report["settings"] = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
    stages = set(args.stages.split(","))

    def save():
        report_path.write_text(json.dumps(report, indent=2))

    train_paths, held_out = spider_split(spider, args.train_dbs)
    examples = eval_examples(spider, held_out, args.eval_questions, args.seed)
    report["split"] = {"train_dbs": [p.stem for p in train_paths], "held_out_dbs": held_out, "eval": len(examples)}

    strong = work / "strong.jsonl"
    if "synthesis" not in report:
        from sense_hub.synthesis import synthesize_templates

        started = time.perf_counter()
        records = synthesize_templates(
            train_paths,
            generator=None,
            output=strong,
            per_database=args.per_database,
            question_source="template",
            rounds=1,
            seed=args.seed,
        )
        report["synthesis"] = {"records": len(records), "seconds": round(time.perf_counter() - started, 1)}
        save()

    if "base" in stages and "base" not in report:
        report["base"] = evaluate_model("embedded", "base", examples, db_root, work, args)
        save()
    sft_model = work / "sense-sft"
    if "sft" in stages or "cdpo" in stages:
        if "sft_training" not in report:
            report["sft_training"] = train_sft(strong, db_root, sft_model, args)
            save()
        if "sft" not in report:
            report["sft"] = evaluate_model(str(sft_model), "sft", examples, db_root, work, args)
            save()
    if "cdpo" in stages:
        pairs, pair_stats = make_pairs(sft_model, strong, db_root, work, args)
        report["pairs"] = pair_stats
        save()
        cdpo_model = work / "sense-cdpo"
        if "cdpo_training" not in report:
            report["cdpo_training"] = train_cdpo(sft_model, pairs, cdpo_model, args)
            save()
        if "cdpo" not in report:
            report["cdpo"] = evaluate_model(str(cdpo_model), "cdpo", examples, db_root, work, args)
            save()

    print(f"held-out Spider dev questions: {len(examples)} on {len(held_out)} databases never trained on")
    print(f"training data: {report['synthesis']['records']} template records on {len(train_paths)} databases")
    print(f"{'model':<10} {'EX':>7} {'correct':>8} {'executes':>9} {'eval s':>8}")
    for name in ("base", "sft", "cdpo"):
        if name in report:
            r = report[name]
            print(
                f"{name:<10} {r['execution_accuracy']:>7.3f} {r['correct']:>8} {r['executes']:>9.2f} {r['seconds']:>8}"
            )
    for name in ("base", "sft"):
        for other in ("sft", "cdpo"):
            if name != other and name in report and other in report:
                delta = report[other]["execution_accuracy"] - report[name]["execution_accuracy"]
                print(f"{other} - {name}: {delta:+.3f}")
    print(json.dumps({k: report[k] for k in report if k not in {"settings", "split"}}, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
