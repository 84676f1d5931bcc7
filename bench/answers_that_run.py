"""Answers that run: greedy, greedy+repair, greedy+constrained and greedy+constrained+repair, side by side.

One model is loaded once and answers every question of a benchmark four ways (`sense-hub predict`'s budgets):

    greedy                      plain greedy decoding (the published figure)
    greedy+fix                  greedy, then only repair's name and join fixes (`repair(None, ...)`): no model call
    greedy+repair               greedy, then `sense_hub.repair` on the answers that do not run (1 round default)
    greedy+constrained          schema-aware decoding (`sense_hub.constrained`: only the database's names)
    greedy+constrained+repair   both

Repair only touches answers that fail, so `greedy+repair` starts from the greedy answers (no second greedy
pass): its seconds are greedy's plus repair's. For each budget the table gives EX with a 95% Wilson interval, the
share of SQL that runs, the share failing on an unknown table or column, model calls and seconds per question;
then `sense-hub compare` pairs greedy with each other budget (McNemar, paired bootstrap). Every file lands in
`--out` and each step is skipped when its file exists, so a rerun resumes.

Usage (time it with nothing else running):
    .venv/bin/python bench/answers_that_run.py --out runs/answers --model embedded:qwen2.5-coder-0.5b
    .venv/bin/python bench/answers_that_run.py --out runs/answers-heldout --input HELDOUT.jsonl \
        --reuse-greedy runs/sense-qwen/preds/base.jsonl          # greedy answers already made, same model
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SPIDER = REPO.parent / "shared" / "data" / "spider"
BUDGETS = ("greedy", "greedy+fix", "greedy+repair", "greedy+constrained", "greedy+constrained+repair")


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    if not n:
        return 0.0, 0.0
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def _read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _write(path: Path, rows: list[dict]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(json.dumps(r) + "\n" for r in rows))
    tmp.replace(path)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--model", default="embedded:qwen2.5-coder-0.5b")
    p.add_argument("--spider", type=Path, default=SPIDER, help="Spider folder (dev.json, database/)")
    p.add_argument("--input", type=Path, default=None, help="questions JSONL (default: all of Spider dev)")
    p.add_argument("--limit", type=int, default=None)
    p.add_argument("--reuse-greedy", type=Path, default=None, help="greedy predictions of the same model to reuse")
    p.add_argument("--repair-rounds", type=int, default=1)
    p.add_argument("--repair-style", default="restate", choices=("restate", "conversation"))
    p.add_argument("--repair-samples", type=int, default=4)
    p.add_argument("--budgets", default=",".join(BUDGETS), help="comma list of: " + ", ".join(BUDGETS))
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--max-new-tokens", type=int, default=256)
    p.add_argument(
        "--from-judged",
        type=Path,
        default=None,
        help="a folder of committed `<budget>.judged.jsonl` files (bench/results/answers-that-run/...): their "
        "answers become this run's predictions (gold from --spider), so budgets without the model (greedy+fix) "
        "and the table are rebuilt with no model",
    )
    p.add_argument(
        "--merge",
        type=Path,
        nargs="+",
        default=None,
        help="out folders of earlier runs on disjoint question sets: their files are joined into --out (seconds "
        "added up) and judged together; --input then names all their questions",
    )
    args = p.parse_args(argv)
    wanted = [b for b in BUDGETS if b in args.budgets.split(",")]
    if not (args.spider / "dev.json").is_file():
        print(f"Spider dev not found under {args.spider}; pass --spider", file=sys.stderr)
        return 2

    from sense_hub.benchmarks import load_benchmark, load_examples
    from sense_hub.execution import Executor
    from sense_hub.generation import GenerationConfig, load_generator
    from sense_hub.repair import repair
    from sense_hub.sampling import example_prompts, predict, usable_examples

    db_root = args.spider / "database"
    examples = load_examples(args.input) if args.input else load_benchmark("spider", root=args.spider)
    items = usable_examples(examples, db_root, skip_problems=False)
    if args.limit:
        items = items[: args.limit]
    examples = [ex for ex, _ in items]
    args.out.mkdir(parents=True, exist_ok=True)
    seconds_path = args.out / "seconds.json"
    if args.merge:
        merged: dict[str, float] = {}
        for name in wanted:
            rows = []
            for folder in args.merge:
                rows += _read(folder / f"{name}.jsonl")
            order = {ex.question_id: i for i, ex in enumerate(examples)}
            if sorted(order.get(r["question_id"], -1) for r in rows) != list(range(len(examples))):
                p.error(f"--merge: the {name} files do not hold exactly the --input questions")
            _write(args.out / f"{name}.jsonl", sorted(rows, key=lambda r: order[r["question_id"]]))
        for folder in args.merge:
            for key, value in json.loads((folder / "seconds.json").read_text()).items():
                merged[key] = round(merged.get(key, 0.0) + (value or 0.0), 1)
        seconds_path.write_text(json.dumps(merged, indent=2))
    if args.from_judged:
        gold = {ex.question_id: ex for ex in examples}
        for name in wanted:
            source = args.from_judged / f"{name}.judged.jsonl"
            if not source.is_file():
                continue
            rows = [
                {**r, "question": gold[r["question_id"]].question, "gold": gold[r["question_id"]].sql}
                for r in _read(source)
                if r["question_id"] in gold
            ]
            rows = [{k: v for k, v in r.items() if k not in ("correct", "error")} for r in rows]
            _write(args.out / f"{name}.jsonl", rows)
        if (args.from_judged / "seconds.json").is_file() and not seconds_path.is_file():
            seconds_path.write_text((args.from_judged / "seconds.json").read_text())
    seconds = json.loads(seconds_path.read_text()) if seconds_path.is_file() else {}
    generator = None

    def gen():
        nonlocal generator
        if generator is None:
            generator = load_generator(args.model, batch_size=args.batch_size)
        return generator

    def predicted(name: str, constrained: bool) -> list[dict]:
        path = args.out / f"{name}.jsonl"
        done = path.is_file() and len(_read(path)) == len(examples) and name in seconds
        if not done and name == "greedy" and args.reuse_greedy:
            by_id = {r["question_id"]: r for r in _read(args.reuse_greedy)}
            rows = [by_id[ex.question_id] for ex in examples if ex.question_id in by_id]
            if len(rows) == len(examples):
                _write(path, rows)
                timings = Path(str(args.reuse_greedy) + ".timings.json")
                chunks = json.loads(timings.read_text())["chunks"] if timings.is_file() else {}
                spent = sum(c.get("samples", 0) for c in chunks.values())  # of the whole reused file
                seconds[name] = round(spent * len(rows) / len(by_id), 1) or None
                seconds_path.write_text(json.dumps(seconds, indent=2))
                done = True
        if not done:
            print(f"[{name}] predicting {len(examples)} questions", flush=True)
            start = time.perf_counter()
            predict(
                examples,
                gen(),
                db_root=db_root,
                output=args.out / f"{name}.raw.jsonl",
                max_new_tokens=args.max_new_tokens,
                constrained=constrained,
                progress=False,
            )
            rows = _read(args.out / f"{name}.raw.jsonl")
            _write(path, rows)
            seconds[name] = round(time.perf_counter() - start, 1)
            seconds_path.write_text(json.dumps(seconds, indent=2))
        return _read(path)

    def repaired(name: str, source: list[dict], constrained: bool, *, model: bool = True) -> None:
        path = args.out / f"{name}.jsonl"
        if path.is_file() and name in seconds:
            return
        print(f"[{name}] repairing the answers of {name.rsplit('+', 1)[0]} that do not run", flush=True)
        from sense_hub.constrained import grammar_for_database

        paths = [db for _, db in items]
        grammars = [grammar_for_database(db) for db in paths] if constrained else None
        start = time.perf_counter()
        fixed = repair(
            gen() if model else None,
            example_prompts(items),
            [r["pred"] for r in source],
            paths,
            rounds=args.repair_rounds,
            config=GenerationConfig(max_new_tokens=args.max_new_tokens),
            style=args.repair_style,
            grammars=grammars,
            samples=args.repair_samples,
        )
        spent = time.perf_counter() - start
        rows = []
        for r, one in zip(source, fixed, strict=True):
            rows.append(
                {
                    **r,
                    "first_pred": r["pred"],
                    "pred": one.sql,
                    "repair": {"model_calls": one.model_calls, "name_fixes": one.name_fixes, "errors": one.errors},
                }
            )
        _write(path, rows)
        base = seconds.get(name.rsplit("+", 1)[0])
        seconds[name] = round((base or 0) + spent, 1)
        seconds[name + ":repair_only"] = round(spent, 1)
        seconds_path.write_text(json.dumps(seconds, indent=2))

    if {"greedy", "greedy+fix", "greedy+repair"} & set(wanted):
        greedy = predicted("greedy", False)
        if "greedy+fix" in wanted:
            repaired("greedy+fix", greedy, False, model=False)
        if "greedy+repair" in wanted:
            repaired("greedy+repair", greedy, False)
    if {"greedy+constrained", "greedy+constrained+repair"} & set(wanted):
        constrained = predicted("greedy+constrained", True)
        if "greedy+constrained+repair" in wanted:
            repaired("greedy+constrained+repair", constrained, True)

    # judge every budget with `sense-hub eval`, count what runs and what fails on a name
    table = []
    cli = [sys.executable, "-m", "sense_hub.cli"]
    for name in wanted:
        preds, judged = args.out / f"{name}.jsonl", args.out / f"{name}.judged.jsonl"
        subprocess.run(
            [*cli, "eval", "--predictions", preds, "--db-root", db_root, "--metric", "spider", "--output", judged],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        rows, verdicts = _read(preds), _read(judged)
        with Executor(timeout=30) as ex:
            results = ex.map([(str(db_root / r["db_id"] / f"{r['db_id']}.sqlite"), r["pred"]) for r in rows])
        n = len(rows)
        correct = sum(v["correct"] for v in verdicts)
        runs = sum(r.ok for r in results)
        unknown = sum((not r.ok) and "no such " in (r.message or "") for r in results)
        calls = sum(1 + (r.get("repair") or {}).get("model_calls", 0) for r in rows) / n
        lo, hi = wilson(correct, n)
        table.append(
            {
                "budget": name,
                "n": n,
                "correct": correct,
                "ex": correct / n,
                "ci": [lo, hi],
                "runs": runs / n,
                "unknown_name": unknown / n,
                "model_calls_per_question": calls,
                "seconds_per_question": (seconds.get(name) or float("nan")) / n,
                "fixed_by_name": sum((r.get("repair") or {}).get("name_fixes", 0) for r in rows),
            }
        )
    (args.out / "summary.json").write_text(json.dumps(table, indent=2))
    print(f"\n{args.model} on {len(examples)} Spider dev questions (spider metric; 95% Wilson CI)\n")
    print("| budget | EX | SQL runs | unknown table/column | model calls / question | s / question |")
    print("|---|---|---:|---:|---:|---:|")
    for t in table:
        print(
            f"| {t['budget']} | {t['correct']}/{t['n']} = {100 * t['ex']:.1f}% [{100 * t['ci'][0]:.1f}, "
            f"{100 * t['ci'][1]:.1f}] | {100 * t['runs']:.1f}% | {100 * t['unknown_name']:.1f}% | "
            f"{t['model_calls_per_question']:.2f} | {t['seconds_per_question']:.2f} |"
        )
    judged = [args.out / f"{name}.judged.jsonl" for name in wanted]
    if len(judged) > 1:
        compare = [
            *cli,
            "compare",
            *map(str, judged),
            "--names",
            ",".join(wanted),
            "--output",
            args.out / "compare.md",
        ]
        subprocess.run(compare, check=True, stdout=subprocess.DEVNULL)
        print("\n" + (args.out / "compare.md").read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
