"""Pair construction is linear: build pairs from 1,000,000 synthetic labelled candidates (target: < 60 s).

Prints the time for 250k, 500k and 1M candidates side by side (linear time shows as a constant
seconds-per-million column). No database is needed: a prompt function stands in for the schema prompt, built
once per question as in the real path.

Usage:
    .venv/bin/python bench/pairs_speed.py [--candidates 1000000] [--per-question 8]
"""

from __future__ import annotations

import argparse
import random
import time

from sense_hub.pairs import PRESETS, build_pairs

ERRORS = ["wrong_result"] * 5 + ["syntax", "runtime", "timeout"]
TEMPLATES = [
    "SELECT name FROM singer WHERE age > {v}",
    "select  count(*) from concert where year = {v}",
    "SELECT T1.name FROM singer AS T1 JOIN concert AS T2 ON T1.singer_id = T2.singer_id WHERE T2.year = {v}",
    "SELECT country, avg(age) FROM singer GROUP BY country HAVING count(*) > {v} ORDER BY 2 DESC",
    "SELECT name FROM singer WHERE country = 'France {v}'",
]


def synthetic_records(n: int, *, per_question: int, seed: int = 0):
    rng = random.Random(seed)
    for i in range(n):
        q = i // per_question
        correct = rng.random() < 0.2
        yield {
            "question_id": f"synthetic-{q}",
            "db_id": f"db_{q % 50}",
            "question": f"Question number {q}?",
            "evidence": "",
            "gold_sql": f"SELECT name FROM singer WHERE age > {q}",
            "sql": rng.choice(TEMPLATES).format(v=rng.randrange(6)),
            "sample_index": i % per_question,
            "generator": "synthetic",
            "status": "ok",
            "correct": correct,
            "error": None if correct else rng.choice(ERRORS),
        }


def prompt_fn(question: str, db_id: str, evidence: str) -> list:
    return [{"role": "system", "content": f"schema of {db_id}"}, {"role": "user", "content": question}]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--candidates", type=int, default=1_000_000)
    parser.add_argument("--per-question", type=int, default=8)
    parser.add_argument("--preset", default="grouped-any-limit1")
    args = parser.parse_args()
    config = PRESETS[args.preset]
    print(f"preset {args.preset}: {config}")
    print(f"{'candidates':>12} {'generate s':>11} {'pairs s':>9} {'s per 1M':>9} {'pairs':>9}")
    for n in (args.candidates // 4, args.candidates // 2, args.candidates):
        t0 = time.perf_counter()
        records = list(synthetic_records(n, per_question=args.per_question))
        t1 = time.perf_counter()
        pairs, stats = build_pairs(records, config=config, prompt_fn=prompt_fn)
        t2 = time.perf_counter()
        print(f"{n:>12,} {t1 - t0:>11.2f} {t2 - t1:>9.2f} {(t2 - t1) * 1e6 / n:>9.2f} {len(pairs):>9,}")
        del records, pairs
    verdict = "OK" if (t2 - t1) < 60 else "TOO SLOW"
    print(f"{args.candidates:,} candidates -> pairs in {t2 - t1:.1f} s (target < 60 s): {verdict}")
    print("stats of the last run:", stats)


if __name__ == "__main__":
    main()
