"""Template synthesis on the Spider dev databases: yield and time per template family.

Two rows side by side, on the same databases and seed:

1. candidates: SQL filled from the templates and kept by execution alone (executes, non-empty, non-trivial,
   deduplicated), each with its rule-based question. No model; this is what `--no-verify` keeps.
2. verified: the same candidates with the question written by a SQL-to-text model and checked by a text-to-SQL
   model (default: the embedded Qwen2.5-Coder-0.5B-Instruct for both) through `prompts.prompt_for_database`:
   kept only when the verifier's SQL gives the same result; a failed question is re-asked with the verifier's
   answer as feedback (`--rounds`).

Usage:
    .venv/bin/python bench/template_synthesis.py [--db-root ../shared/data/spider/database] [--per-database 60]
        [--model embedded:qwen2.5-coder-0.5b] [--rounds 2] [--time-budget 1800] [--out-dir DIR]

The run is resumable (same --out-dir): a second call continues where the time budget stopped the first.
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time
from collections import Counter
from pathlib import Path

from sense_hub.databases import list_databases
from sense_hub.records import read_complete_jsonl
from sense_hub.synthesis import SynthesisStats, rejected_path, synthesize_templates
from sense_hub.synthesis.template_sql import FAMILIES, generate_candidates, profile_database

DEFAULT_ROOT = Path(__file__).resolve().parents[2] / "shared" / "data" / "spider" / "database"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db-root", type=Path, default=DEFAULT_ROOT)
    parser.add_argument("--per-database", type=int, default=60)
    parser.add_argument("--model", default="embedded:qwen2.5-coder-0.5b", help="the SQL-to-text writer")
    parser.add_argument("--verifier-model", default=None, help="the text-to-SQL verifier (default: --model)")
    parser.add_argument("--question-source", choices=("model", "template"), default="model")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--rule-fallback", action="store_true", help="try the rule question when the model's fail")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-new-tokens", type=int, default=64, help="verifier answer budget (template SQL fits)")
    parser.add_argument("--chunk-size", type=int, default=32)
    parser.add_argument("--schema-chars", type=int, default=2000, help="verifier prompt schema budget")
    parser.add_argument("--time-budget", type=float, default=1800.0, help="seconds for the verified row")
    parser.add_argument("--out-dir", type=Path, default=Path(tempfile.gettempdir()) / "sense-hub-bench" / "templates")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    databases = list_databases(args.db_root)
    if not databases:
        raise SystemExit(f"no databases under {args.db_root}")
    paths = [databases[d] for d in sorted(databases)]
    print(f"{len(paths)} databases under {args.db_root}, {args.per_database} candidates each, seed 0")

    # row 1: execution-checked candidates, no model
    t0 = time.perf_counter()
    candidates: Counter = Counter()
    rejected: Counter = Counter()
    for path in paths:
        found, why = generate_candidates(profile_database(path), n=args.per_database, seed=0)
        candidates.update(c.family for c in found)
        rejected.update(why)
    candidate_seconds = time.perf_counter() - t0
    print(
        f"candidates: {sum(candidates.values())} executable, non-trivial, distinct SQL in {candidate_seconds:.1f} s "
        f"(dropped while filling: {dict(rejected.most_common())})"
    )

    # row 2: model-verified
    from sense_hub.generation import load_generator

    t0 = time.perf_counter()
    cpu0 = time.process_time()
    model = load_generator(args.model, batch_size=args.batch_size)
    verifier = load_generator(args.verifier_model, batch_size=args.batch_size) if args.verifier_model else model
    load_seconds = time.perf_counter() - t0
    args.out_dir.mkdir(parents=True, exist_ok=True)
    output = args.out_dir / "strong.jsonl"
    stats = SynthesisStats()
    records = synthesize_templates(
        paths,
        generator=model,
        verifier=verifier,
        output=output,
        per_database=args.per_database,
        rounds=args.rounds,
        question_source=args.question_source,
        rule_fallback=args.rule_fallback,
        batch_size=args.batch_size,
        max_new_tokens=args.max_new_tokens,
        time_budget=args.time_budget,
        chunk_size=args.chunk_size,
        schema_chars=args.schema_chars,
        stats=stats,
    )
    cpu_seconds = time.process_time() - cpu0
    verified = Counter(
        r["generator"].split(":", 1)[1].split("+", 1)[0] for r in records if r["verification"].startswith("verified")
    )
    seconds = stats.elapsed
    calls = max(stats.calls, 1)
    print(
        f"model {args.model} loaded in {load_seconds:.1f} s; verification run {seconds:.1f} s "
        f"({stats.calls} calls, {seconds / calls:.2f} s per call, ~{stats.prompt_tokens} prompt tokens); process CPU "
        f"time {cpu_seconds:.0f} s ({cpu_seconds / calls:.2f} CPU s per call: the machine is shared, wall/CPU shows it)"
    )
    print()
    writers = Counter(r["generator"].rsplit("+", 1)[1] for r in records)
    print(f"kept records by question writer: {dict(writers.most_common())} (rule = the template's own wording)")
    print(f"{'family':<20}{'candidates':>11}{'processed':>10}{'verified':>9}{'yield':>8}{'~model s':>10}")
    total_processed = 0
    # processed = kept + rejected over every run into this --out-dir (a resumed run adds to the earlier ones)
    done = Counter(r["generator"].split(":", 1)[1].split("+", 1)[0] for r in records)
    done.update(r["family"] for r in read_complete_jsonl(rejected_path(output))[0])
    for family in FAMILIES:
        c = stats.families.get(family, Counter())
        processed = done[family]
        total_processed += processed
        share = c.get("calls", 0) / calls * seconds
        rate = f"{verified[family] / processed:.1%}" if processed else "-"
        print(f"{family:<20}{candidates[family]:>11}{processed:>10}{verified[family]:>9}{rate:>8}{share:>10.0f}")
    total_verified = sum(verified.values())
    print(
        f"{'total':<20}{sum(candidates.values()):>11}{total_processed:>10}{total_verified:>9}"
        f"{(total_verified / total_processed if total_processed else 0):>8.1%}{seconds:>10.0f}"
    )
    print()
    print(f"rejected by reason (this run): {dict(stats.rejected.most_common())}")
    every = Counter(r["reason"] for r in read_complete_jsonl(rejected_path(output))[0])
    print(f"rejected by reason (every run into {args.out_dir}): {dict(every.most_common())}")
    # each run appends its cost to legs.jsonl beside the output, so a resumed run can report the wall time of all of them
    legs_path = args.out_dir / "legs.jsonl"
    with legs_path.open("a") as f:
        leg = {"seconds": round(seconds, 1), "kept": stats.kept, "calls": stats.calls, "model": args.model}
        f.write(json.dumps(leg) + "\n")
    legs = read_complete_jsonl(legs_path)[0]
    print(
        f"wall time: this run {seconds:.0f} s ({stats.kept} verified); all {len(legs)} runs into {args.out_dir}: "
        f"{sum(leg['seconds'] for leg in legs):.0f} s; model-written verified records in the output: {len(records)}"
    )
    if stats.unfinished:
        print(f"time budget reached: {stats.unfinished} candidates not processed (rerun to resume)")
    rate = stats.kept / seconds * 1800 if seconds else 0.0
    print(
        f"verified per 30 min at this rate: ~{rate:.0f}; executable candidates per 30 min without a model: "
        f"~{sum(candidates.values()) / max(candidate_seconds, 1e-9) * 1800:.0f}"
    )
    print(
        json.dumps(
            {
                "candidates": sum(candidates.values()),
                "candidate_seconds": round(candidate_seconds, 1),
                "processed": total_processed,
                "verified": total_verified,
                "verify_seconds": round(seconds, 1),
                "calls": stats.calls,
                "records_in_output": len(records),
                "cpu_seconds": round(cpu_seconds, 1),
            }
        )
    )


if __name__ == "__main__":
    main()
