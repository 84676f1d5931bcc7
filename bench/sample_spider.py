"""8 weak candidates for each Spider dev question (972 with a database) with the embedded model, resumable.

Runs `sense_hub.sampling.sample_candidates` into OUT/weak.jsonl (restart the same command to continue after an
interruption), then prints this run's throughput (candidates per second, generation + labelling), the label
statistics of everything sampled so far, and what self-consistency makes of the samples: execution accuracy
(Spider metric) of the first sample against the execution majority vote of all N (`sense-hub predict -n N`'s
vote), and the share of questions with any correct sample (pass@N).

Usage:
    nohup .venv/bin/python bench/sample_spider.py --data-root ../shared/data/spider --out /tmp/sample_spider \
        > /tmp/sample_spider/log.txt 2>&1 &
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

from sense_hub.benchmarks import benchmark_db_roots, load_benchmark
from sense_hub.evaluation import evaluate_records, summarize
from sense_hub.execution import Executor
from sense_hub.generation import load_generator
from sense_hub.records import read_complete_jsonl
from sense_hub.sampling import majority_vote, sample_candidates, weak_stats

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "spider"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--data-root", type=Path, default=DEFAULT_DATA, help="The Spider folder (dev.json, database/)."
    )
    parser.add_argument("--out", type=Path, default=Path("/tmp/sample_spider"))
    parser.add_argument("--model", default="embedded")
    parser.add_argument("-n", "--num-samples", type=int, default=8)
    parser.add_argument("--temperature", type=float, default=0.8)
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--chunk-size", type=int, default=8)
    parser.add_argument("--timeout", type=float, default=10.0)
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--stats-only", action="store_true", help="Print the statistics of OUT/weak.jsonl and exit.")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    db_root = args.data_root / "database"
    if args.stats_only:
        records, _ = read_complete_jsonl(args.out / "weak.jsonl")
        print(json.dumps({**weak_stats(records), **self_consistency(records, db_root)}, indent=2))
        return

    examples = load_benchmark("spider", root=args.data_root)
    if args.limit is not None:
        examples = examples[: args.limit]
    output = args.out / "weak.jsonl"
    before, _ = read_complete_jsonl(output)
    t0 = time.perf_counter()
    generator = load_generator(args.model, batch_size=args.batch_size)
    t_load = time.perf_counter() - t0
    t1 = time.perf_counter()
    records = sample_candidates(
        examples,
        generator,
        db_root=benchmark_db_roots("spider", root=args.data_root),
        n=args.num_samples,
        output=output,
        temperature=args.temperature,
        max_new_tokens=args.max_new_tokens,
        chunk_size=args.chunk_size,
        timeout=args.timeout,
    )
    elapsed = time.perf_counter() - t1
    new = len(records) - len(before)
    stats = weak_stats(records)
    summary = {
        "model_load_s": round(t_load, 1),
        "new_candidates_this_run": new,
        "seconds_this_run": round(elapsed, 1),
        "candidates_per_s": round(new / elapsed, 3) if elapsed > 0 else None,
        **stats,
        **self_consistency(records, db_root),
        "output": str(output),
    }
    print(json.dumps(summary, indent=2))


def self_consistency(records: list[dict], db_root: Path) -> dict:
    """EX of the first sample vs the execution majority vote per question, and pass@N, over `records`."""
    by_question: dict[str, list[dict]] = {}
    for record in records:
        by_question.setdefault(record["question_id"], []).append(record)
    groups = [sorted(group, key=lambda r: r["sample_index"]) for group in by_question.values()]
    jobs = [(db_root / r["db_id"] / f"{r['db_id']}.sqlite", r["sql"]) for group in groups for r in group]
    with Executor(timeout=10.0) as executor:
        results = iter(executor.map(jobs))
    first, voted = [], []
    for group in groups:
        chosen, _ = majority_vote([next(results) for _ in group], metric="spider")
        row = {"db_id": group[0]["db_id"], "gold": group[0]["gold_sql"]}
        first.append({**row, "pred": group[0]["sql"]})
        voted.append({**row, "pred": group[chosen]["sql"]})
    accuracy = {}
    for name, rows in (("first_sample", first), ("majority_vote", voted)):
        _, verdicts = evaluate_records(rows, db_root=db_root, metric="spider", timeout=10.0)
        summary = summarize(verdicts, metric="spider")
        executed = sum(v.error in (None, "wrong_result") for v in verdicts)
        accuracy[name] = {"correct": summary["correct"], "ex": summary["execution_accuracy"], "executed": executed}
    n = max((len(g) for g in groups), default=0)
    accuracy[f"pass@{n}_strict"] = sum(any(r["correct"] for r in g) for g in groups)
    return {"self_consistency": accuracy}


if __name__ == "__main__":
    main()
