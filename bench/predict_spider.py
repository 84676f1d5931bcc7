"""Greedy `sense-hub predict` on every Spider dev question that has a database, for each embedded model; resumable.

For each model it runs `sense-hub predict --benchmark spider` (greedy, one SQL per question) into
OUT/<model>/pred.jsonl, scores it with `sense-hub eval --metric spider`, and prints, side by side: EX (with a 95%
Wilson interval), the share of predictions that execute, and seconds per question (generation + writing; summed
over every leg of a resumed run, from OUT/<model>/timing.json). Kill it at any time: the same command resumes
each model where its predictions stop (`sense-hub predict` appends durably and checks its manifest).

Usage:
    nohup .venv/bin/python bench/predict_spider.py --out /tmp/predict_spider > /tmp/predict_spider.log 2>&1 &
    .venv/bin/python bench/predict_spider.py --out /tmp/predict_spider --report-only   # the table so far
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
MODELS = ("embedded:qwen2.5-coder-0.5b", "embedded:smollm2-135m", "embedded:qwen2.5-coder-1.5b")


def _lines(path: Path) -> int:
    if not path.exists():
        return 0
    with open(path, "rb") as handle:
        return sum(1 for line in handle if line.endswith(b"\n"))


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    if n == 0:
        return 0.0, 0.0
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre - half, centre + half


def sense_hub() -> list[str]:
    return [sys.executable, "-m", "sense_hub.cli"]


def run_model(model: str, *, out: Path, data_root: Path, batch_size: int, max_new_tokens: int, limit: int | None):
    folder = out / model.replace(":", "_")
    folder.mkdir(parents=True, exist_ok=True)
    pred, timing_path = folder / "pred.jsonl", folder / "timing.json"
    timing = json.loads(timing_path.read_text()) if timing_path.exists() else {"seconds": 0.0, "questions": 0}
    before = _lines(pred)
    cmd = [
        *sense_hub(), "predict", "--benchmark", "spider", "--data-root", str(data_root), "--model", model,
        "--batch-size", str(batch_size), "--chunk-size", str(2 * batch_size), "--max-new-tokens", str(max_new_tokens),
        "--output", str(pred), "--no-progress",
    ]  # fmt: skip
    if limit:
        cmd += ["--limit", str(limit)]
    start = time.perf_counter()
    print(f"[{model}] predicting (resuming at {before} questions) ...", flush=True)
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True)
    elapsed = time.perf_counter() - start
    done = _lines(pred) - before
    if done:  # the leg's time counts only when it predicted something (a finished run costs its model load alone)
        timing = {"seconds": timing["seconds"] + elapsed, "questions": timing["questions"] + done}
        timing_path.write_text(json.dumps(timing) + "\n")
    if proc.returncode != 0:
        raise SystemExit(f"[{model}] sense-hub predict exited {proc.returncode}")
    judged = folder / "judged.jsonl"
    cmd = [
        *sense_hub(), "eval", "--predictions", str(pred), "--db-root", str(data_root / "spider" / "database"),
        "--metric", "spider", "--output", str(judged),
    ]  # fmt: skip
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)


def report(out: Path, models: list[str]) -> str:
    rows = [
        "| model | questions | EX (spider) | 95% CI | executes | s / question |",
        "|---|---|---|---|---|---|",
    ]
    for model in models:
        folder = out / model.replace(":", "_")
        judged = folder / "judged.jsonl"
        if not judged.exists():
            rows.append(f"| {model} | (not run yet) | | | | |")
            continue
        items = [json.loads(line) for line in judged.read_text().splitlines() if line.strip()]
        n = len(items)
        correct = sum(bool(item["correct"]) for item in items)
        executes = sum(item.get("error") in (None, "wrong_result") for item in items)
        low, high = wilson(correct, n)
        timing = json.loads((folder / "timing.json").read_text()) if (folder / "timing.json").exists() else {}
        per_q = timing.get("seconds", 0) / max(timing.get("questions", 0), 1)
        rows.append(
            f"| {model} | {n} | {correct} = {correct / max(n, 1):.1%} | [{low:.1%}, {high:.1%}] "
            f"| {executes / max(n, 1):.1%} | {per_q:.2f} |"
        )
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", type=Path, default=DEFAULT_DATA, help="The folder holding spider/.")
    parser.add_argument("--out", type=Path, default=Path("/tmp/predict_spider"))
    parser.add_argument("--models", default=",".join(MODELS), help="Comma-separated, run in this order.")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=160)
    parser.add_argument("--limit", type=int, default=None, help="Only the first N questions (a quick look).")
    parser.add_argument("--report-only", action="store_true", help="Print the table of what is done and exit.")
    args = parser.parse_args()
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    if not (args.data_root / "spider" / "dev.json").exists():
        print(f"no Spider dev at {args.data_root}/spider: nothing to measure (see ../shared/data/README.md)")
        return
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if not args.report_only:
        for model in models:
            run_model(
                model,
                out=args.out,
                data_root=args.data_root,
                batch_size=args.batch_size,
                max_new_tokens=args.max_new_tokens,
                limit=args.limit,
            )
            print(report(args.out, models), flush=True)
    print(report(args.out, models))


if __name__ == "__main__":
    main()
