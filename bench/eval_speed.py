"""How fast is `sense-hub eval`? Side by side with a naive sequential loop, on real Spider dev predictions.

Workloads (from ../shared/data, never copied):
  * published: the 8 published systems' predictions on the 972 Spider dev questions that have a database
    (7,776 pairs);
  * sampling: 16 candidates per question drawn from those systems' predictions (15,552 pairs, many duplicates),
    the shape of weak-sample labelling.

The naive loop is the straightforward evaluator: for every pair, open a connection, run the gold, open another,
run the prediction, compare (same SQL normalization and matching as `--metric spider`). It is timed inside this
process (no interpreter start-up), while `sense-hub eval` is timed as a whole process (start-up, reading the
JSONL, writing the output included), so the ratio is conservative. CPU seconds are printed next to wall
seconds because a shared machine's load moves wall times; `sense-hub eval`'s CPU includes its workers.

Usage:
    python bench/eval_speed.py [--data ../shared/data] [--repeat 3] [--workers N]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import resource
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sense_hub.matching import prepare_sql, result_rows_match, spider_order_matters

SYSTEMS = {
    "C3SQL": "c3sql_gpt35/predicted_sql.txt",
    "DAIL-SQL": "dail_sql/DAIL-SQL+GPT-4.txt",
    "CodeS-1B": "codes/pred_sqls-codes-1b-spider.txt",
    "CodeS-15B": "codes/pred_sqls-codes-15b-spider.txt",
    "DB-GPT-Hub": "dbgpt_hub/predict_lora_32_lr_2e4_drop1e1.sql",
    "DIN-SQL": "din_sql/DIN-SQL.csv",
    "TA-SQL": "ta_sql_gpt4/spider_predict_dev.sql",
    "Graphix": "dail_sql/graphix_result.txt",
}


def load_predictions(data: Path) -> tuple[list[tuple[str, str]], dict[str, list[str]]]:
    gold = [line.split("\t") for line in (data / "spider" / "dev_gold.sql").read_text().splitlines()]
    preds = {}
    for name, rel in SYSTEMS.items():
        path = data / "predictions" / "spider_dev" / rel
        if path.suffix == ".csv":
            with path.open(newline="") as f:
                preds[name] = [r["PREDICTED SQL"].strip() for r in csv.DictReader(f)]
        else:
            preds[name] = [line.strip().split("\t")[0] for line in path.read_text().split("\n")[: len(gold)]]
    return [(g, db) for g, db in gold], preds


def naive_loop(records: list[dict], db_root: Path) -> tuple[float, float, int]:
    start, cpu = time.perf_counter(), time.process_time()
    correct = 0
    for r in records:
        path = db_root / r["db_id"] / f"{r['db_id']}.sqlite"
        gold = prepare_sql(r["gold"], metric="spider", role="gold")
        pred = prepare_sql(r["pred"], metric="spider", role="pred")
        con = sqlite3.connect(path)
        con.text_factory = lambda b: b.decode(errors="ignore")
        gold_rows = con.execute(gold).fetchall()
        con.close()
        con = sqlite3.connect(path)
        con.text_factory = lambda b: b.decode(errors="ignore")
        try:
            pred_rows = con.execute(pred).fetchall()
        except (sqlite3.Error, ValueError):
            pred_rows = None
        con.close()
        if pred_rows is not None:
            correct += result_rows_match(
                gold_rows, pred_rows, metric="spider", order_matters=spider_order_matters(gold)
            )
    return time.perf_counter() - start, time.process_time() - cpu, correct


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def sense_hub_eval(records_path: Path, db_root: Path, out: Path, workers: int | None) -> tuple[float, float, dict]:
    cmd = [
        sys.executable,
        "-m",
        "sense_hub.cli",
        "eval",
        "--predictions",
        str(records_path),
        "--db-root",
        str(db_root),
        "--metric",
        "spider",
        "--output",
        str(out),
    ]
    if workers is not None:
        cmd += ["--workers", str(workers)]
    start, cpu = time.perf_counter(), _children_cpu()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
    elapsed = time.perf_counter() - start
    return elapsed, _children_cpu() - cpu, json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each; the best time is reported")
    parser.add_argument(
        "--workers", type=int, default=None, help="time only `sense-hub eval --workers N` (default: default and 2)"
    )
    args = parser.parse_args()
    db_root = args.data / "spider" / "database"
    gold, preds = load_predictions(args.data)
    keep = [i for i, (_, db) in enumerate(gold) if (db_root / db).is_dir()]
    published = [
        {"system": name, "index": i, "db_id": gold[i][1], "gold": gold[i][0], "pred": preds[name][i]}
        for name in SYSTEMS
        for i in keep
    ]
    rng = random.Random(0)
    names = list(SYSTEMS)
    sampling = [
        {"index": i, "sample": k, "db_id": gold[i][1], "gold": gold[i][0], "pred": preds[rng.choice(names)][i]}
        for i in keep
        for k in range(16)
    ]
    print(
        f"machine: {sys.platform}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}, python "
        f"{sys.version.split()[0]}, sqlite {sqlite3.sqlite_version}"
    )
    variants = {"sense-hub eval": args.workers, "sense-hub eval --workers 2": 2}
    if args.workers is not None:
        variants = {f"sense-hub eval --workers {args.workers}": args.workers}
    with tempfile.TemporaryDirectory() as tmp:
        for name, records in (("published (8 systems x 972)", published), ("sampling (16 per question)", sampling)):
            path = Path(tmp) / "records.jsonl"
            path.write_text("".join(json.dumps(r) + "\n" for r in records))
            distinct = len({(r["db_id"], r["pred"]) for r in records})
            runs: dict[str, list[tuple[float, float]]] = {"naive": [], **{v: [] for v in variants}}
            for _ in range(args.repeat):  # interleaved, so load on the machine hits all alike
                wall, cpu, naive_correct = naive_loop(records, db_root)
                runs["naive"].append((wall, cpu))
                for variant, workers in variants.items():
                    wall, cpu, summary = sense_hub_eval(path, db_root, Path(tmp) / "out.jsonl", workers)
                    assert summary["correct"] == naive_correct, (variant, summary, naive_correct)
                    runs[variant].append((wall, cpu))
            naive_wall, naive_cpu = min(runs["naive"])
            print(
                f"\n{name}: {len(records)} pairs, {distinct} distinct predictions, {naive_correct} correct "
                f"(best of {args.repeat})"
            )
            print(f"  {'':38s}  wall s   CPU s   speed-up wall / CPU")
            print(f"  {'naive sequential loop (in-process)':38s} {naive_wall:7.3f} {naive_cpu:7.3f}")
            for variant in variants:
                wall, cpu = min(runs[variant])
                print(
                    f"  {variant + ' (whole process)':38s} {wall:7.3f} {cpu:7.3f}   "
                    f"{naive_wall / wall:5.2f}x / {naive_cpu / cpu:5.2f}x"
                )


if __name__ == "__main__":
    main()
