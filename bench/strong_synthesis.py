"""Strong synthesis (SENSE's new domains) with a local embedded model and no endpoint: what survives, and why not.

Seeds are Spider dev questions with their database's schema (two per request as few-shot, as
`sense-hub synthesize --strategy strong` does). Each of the N requests asks the model for a new domain: schema,
rows, a question and its SQL at a difficulty level; `synthesize_strong` keeps a reply when its schema materializes
in SQLite, its SQL parses and executes with a non-empty result, and it is no duplicate. Printed side by side per
difficulty: requests, replies with every section, a valid schema (DDL + rows), executable non-empty SQL, kept;
then rejections by reason, wall time and tokens per second. Resumable: the same --out continues.

Usage:
    .venv/bin/python bench/strong_synthesis.py --model embedded:qwen2.5-coder-0.5b --requests 50 --out /tmp/strong50
"""

from __future__ import annotations

import argparse
import json
import random
import time
from collections import Counter
from pathlib import Path

from sense_hub.generation import load_generator
from sense_hub.synthesis import SynthesisStats, rejected_path, synthesize_strong

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "spider"


def _ddl(path: Path) -> str:
    import sqlite3

    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
        rows = conn.execute("SELECT sql FROM sqlite_master WHERE type = 'table' AND sql IS NOT NULL").fetchall()
    return ";\n".join(r[0].strip() for r in rows) + ";"


def spider_seeds(data_root: Path, k: int, seed: int) -> list[dict]:
    from sense_hub.databases import list_databases

    questions = json.loads((data_root / "dev.json").read_text())
    databases = list_databases(data_root / "database")
    rng = random.Random(seed)
    rng.shuffle(questions)
    seeds, ddl_cache = [], {}
    for q in questions:
        if q["db_id"] not in databases:
            continue
        if q["db_id"] not in ddl_cache:
            ddl_cache[q["db_id"]] = _ddl(databases[q["db_id"]])
        if len(ddl_cache[q["db_id"]]) > 1500:  # few-shot schemas short enough for a small model's prompt
            continue
        seeds.append({"domain": q["db_id"].replace("_", " "), "schema": ddl_cache[q["db_id"]], "question": q["question"],
                      "sql": q["query"]})  # fmt: skip
        if len(seeds) == k:
            break
    return seeds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", type=Path, default=DEFAULT_DATA, help="Spider folder (dev.json, database/).")
    parser.add_argument("--model", default="embedded:qwen2.5-coder-0.5b")
    parser.add_argument("--requests", type=int, default=50)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=900)
    parser.add_argument("--temperature", type=float, default=0.7)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("/tmp/sense-hub-bench/strong"))
    args = parser.parse_args()
    if not (args.data_root / "dev.json").exists():
        print(f"no Spider dev at {args.data_root}: nothing to measure (see ../shared/data/README.md)")
        return
    args.out.mkdir(parents=True, exist_ok=True)
    output = args.out / "strong.jsonl"
    generator = load_generator(args.model, batch_size=args.batch_size)
    stats = SynthesisStats()
    start = time.perf_counter()
    synthesize_strong(
        generator, seeds=spider_seeds(args.data_root, 40, args.seed), output=output, db_out_root=args.out / "databases",
        n=args.requests, seed=args.seed, temperature=args.temperature, max_new_tokens=args.max_new_tokens,
        batch_size=args.batch_size, stats=stats,
    )  # fmt: skip
    elapsed = time.perf_counter() - start
    kept = [json.loads(line) for line in output.read_text().splitlines() if line.strip()] if output.exists() else []
    rejected = [json.loads(line) for line in rejected_path(output).read_text().splitlines() if line.strip()]
    rejected = [r for r in rejected if r.get("id", "").startswith("strong-")]
    reasons = Counter(r["reason"] for r in rejected)
    requests = len(kept) + len(rejected)
    # `_check_strong` checks in this order: sections -> SQL parses -> duplicates -> schema + rows -> SQL executes
    sections = requests - reasons["generation_error"] - reasons["missing_section"]
    schema_ok = len(kept) + reasons["sql_exec_error"] + reasons["empty_result"]
    print(f"model {args.model}: {requests} requests answered in all ({stats.calls} this run, {elapsed:.0f} s)")
    print("| requests | every section (incl. a question) | valid schema + rows | SQL executes, non-empty | kept |")
    print("|---|---|---|---|---|")
    print(f"| {requests} | {sections} | {schema_ok} | {len(kept)} | {len(kept)} |")
    print("rejections by reason:", json.dumps(dict(reasons.most_common())))
    print("kept by difficulty:", json.dumps(dict(Counter(r["difficulty"] for r in kept))))
    if stats.calls:
        print(f"this run: {stats.calls} replies, ~{stats.completion_tokens / max(elapsed, 1e-9):.1f} output tokens/s, "
              f"{elapsed / stats.calls:.1f} s per request")  # fmt: skip
    for record in kept[:5]:
        print(f"  e.g. [{record['domain']}] {record['question']}  ->  {record['sql'][:120]}")


if __name__ == "__main__":
    main()
