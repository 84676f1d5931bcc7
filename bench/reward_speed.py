"""How fast are the GRPO execution rewards? `sense_hub.rewards` side by side with a naive per-completion executor.

Workload: a GRPO-shaped batch on one Spider dev database (from ../shared/data, never copied): 8 questions x 8
completions = 64 conversational completions, drawn per question from its gold SQL (plain, fenced, re-spelled), the
published systems' predictions for it, another question's gold (wrong) and broken SQL: many duplicates, as a
sampling policy produces. Each step draws a new batch from the same pools (GRPO revisits questions and repeats
itself), scored with the `arctic` reward.

- naive: for every completion, extract the SQL, open the database, run the gold, run the prediction, compare
  (the same `prompts.extract_sql`, `matching.prepare_sql` and `result_rows_match` as the rewards; no timeout).
- rewards: `get_reward_funcs(["arctic"], ...)`: gold results cached across steps, each distinct SQL executed once
  per batch, verdicts remembered; in-process (`workers=0`) and with 2 worker processes.

Printed: rewards per second for the first batch (cold caches) and over the following steps, and the ratios.

Usage:
    python bench/reward_speed.py [--data ../shared/data] [--db concert_singer] [--steps 20] [--seed 0]
"""

from __future__ import annotations

import argparse
import csv
import random
import sqlite3
import sys
import time
from pathlib import Path

from sense_hub.matching import prepare_sql, result_rows_match, spider_order_matters
from sense_hub.prompts import extract_sql
from sense_hub.rewards import completion_text, get_reward_funcs

PREDICTIONS = {
    "C3SQL": "c3sql_gpt35/predicted_sql.txt",
    "DAIL-SQL": "dail_sql/DAIL-SQL+GPT-4.txt",
    "CodeS-1B": "codes/pred_sqls-codes-1b-spider.txt",
    "DB-GPT-Hub": "dbgpt_hub/predict_lora_32_lr_2e4_drop1e1.sql",
    "DIN-SQL": "din_sql/DIN-SQL.csv",
    "Graphix": "dail_sql/graphix_result.txt",
}
QUESTIONS = 8
GENERATIONS = 8


def load(data: Path, db_id: str) -> list[tuple[str, list[str]]]:
    """(gold SQL, candidate pool) for the first QUESTIONS questions of `db_id` in Spider dev."""
    gold = [line.split("\t") for line in (data / "spider" / "dev_gold.sql").read_text().splitlines()]
    preds: dict[str, list[str]] = {}
    for name, rel in PREDICTIONS.items():
        path = data / "predictions" / "spider_dev" / rel
        if not path.is_file():
            continue
        if path.suffix == ".csv":
            with path.open(newline="") as f:
                preds[name] = [r["PREDICTED SQL"].strip() for r in csv.DictReader(f)]
        else:
            preds[name] = [line.strip().split("\t")[0] for line in path.read_text().split("\n")[: len(gold)]]
    indices = [i for i, (_, db) in enumerate(gold) if db == db_id][:QUESTIONS]
    out = []
    for k, i in enumerate(indices):
        g = gold[i][0]
        other = gold[indices[(k + 1) % len(indices)]][0]
        pool = [g, g, g.lower(), f"```sql\n{g};\n```", f"The query is:\n{g}", other, "SELECT * FROM nowhere", "SELEC"]
        pool += [p[i] for p in preds.values() if i < len(p)]
        out.append((g, pool))
    return out


def batch(questions, rng: random.Random) -> tuple[list, list[str]]:
    completions, golds = [], []
    for g, pool in questions:
        for _ in range(GENERATIONS):
            completions.append([{"role": "assistant", "content": rng.choice(pool)}])
            golds.append(g)
    return completions, golds


def naive_arctic(db_path: Path, completions, golds) -> list[float]:
    """Open the database, run gold and prediction, compare: per completion."""
    out = []
    for completion, gold in zip(completions, golds, strict=True):
        pred = prepare_sql(extract_sql(completion_text(completion)), metric="spider", role="pred")
        gold_sql = prepare_sql(gold, metric="spider", role="gold")
        con = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
        try:
            gold_rows = con.execute(gold_sql).fetchall()
            try:
                pred_rows = con.execute(pred).fetchall()
            except (sqlite3.Error, ValueError):
                out.append(0.0)
                continue
        finally:
            con.close()
        correct = result_rows_match(gold_rows, pred_rows, metric="spider", order_matters=spider_order_matters(gold))
        out.append(1.0 if correct else 0.1)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    parser.add_argument("--db", default="concert_singer")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    db_path = args.data / "spider" / "database" / args.db / f"{args.db}.sqlite"
    if not db_path.is_file():
        print(f"skipped: {db_path} not found (Spider dev data lives in ../shared/data; see its README)")
        return 0
    questions = load(args.data, args.db)
    rng = random.Random(args.seed)
    batches = [batch(questions, rng) for _ in range(args.steps)]
    n = len(batches[0][0])
    distinct = len({(g, extract_sql(completion_text(c))) for c, g in zip(*batches[0], strict=True)})
    print(f"{args.db}: {len(questions)} questions x {GENERATIONS} completions = {n} per batch, {distinct} distinct")
    print(f"(question, SQL) pairs in the first batch; {args.steps} batches\n")

    def run(name, score):
        t0 = time.perf_counter()
        first = score(*batches[0])
        t1 = time.perf_counter()
        rest = [score(*b) for b in batches[1:]]
        t2 = time.perf_counter()
        return name, [first, *rest], n / (t1 - t0), n * (len(batches) - 1) / max(t2 - t1, 1e-9)

    columns = [run("naive (per completion)", lambda c, g: naive_arctic(db_path, c, g))]
    for label, workers in (("rewards, in-process", 0), ("rewards, 2 workers", 2)):
        (arctic,) = get_reward_funcs(["arctic"], db_root=db_path.parent.parent, metric="spider", workers=workers)
        columns.append(
            run(label, lambda c, g, f=arctic: f(prompts=None, completions=c, gold_sql=g, db_id=[args.db] * len(g)))
        )
        stats = arctic.scorer.stats.as_dict()
        arctic.scorer.close()
    reference = columns[0][1]
    for name, values, *_ in columns[1:]:
        if values != reference:
            print(f"MISMATCH: {name} gives other rewards than the naive loop")
            return 1
    print(f"{'':26} {'first batch':>14} {'later batches':>15}")
    for name, _, cold, warm in columns:
        print(f"{name:26} {cold:10.0f} r/s {warm:11.0f} r/s")
    for name, _, cold, warm in columns[1:]:
        print(f"ratio {name:20} {cold / columns[0][2]:12.1f}x {warm / columns[0][3]:13.1f}x")
    print(f"\nlast scorer's work: {stats}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
