"""Rebuild this folder: each arm's greedy held-out answers after repair's model-free name and join fixes.

`repair.repair(None, ...)` makes no model call, so only the committed judged answers and the Spider databases are
needed. Run from the repository root:

    .venv/bin/python bench/results/sense-qwen/greedy+fix/fix_arms.py [--spider ../shared/data/spider]
"""

import argparse
import json
from pathlib import Path

from sense_hub.evaluation import judge
from sense_hub.repair import repair

HERE = Path(__file__).resolve().parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spider", type=Path, default=HERE.parents[3].parent / "shared" / "data" / "spider")
    args = parser.parse_args()
    dev = json.loads((args.spider / "dev.json").read_text())
    for arm in ("base", "sft-strong"):
        rows = [json.loads(line) for line in (HERE.parent / f"{arm}.judged.jsonl").read_text().splitlines()]
        paths = [args.spider / "database" / r["db_id"] / f"{r['db_id']}.sqlite" for r in rows]
        prompts = [[{"role": "user", "content": ""}]] * len(rows)  # unused: no model is asked
        fixed = repair(None, prompts, [r["pred"] for r in rows], paths, rounds=1)
        gold = [dev[int(r["question_id"].split("-")[1])]["query"] for r in rows]
        verdicts = judge(list(zip(paths, gold, [f.sql for f in fixed], strict=True)), metric="spider")
        with (HERE / f"{arm}.judged.jsonl").open("w") as out:
            for r, one, v in zip(rows, fixed, verdicts, strict=True):
                line = {"question_id": r["question_id"], "db_id": r["db_id"], "pred": one.sql}
                out.write(json.dumps({**line, "correct": v.correct, "error": v.error}) + "\n")
        print(f"{arm}: {sum(r['correct'] for r in rows)} -> {sum(v.correct for v in verdicts)} of {len(rows)}")


if __name__ == "__main__":
    main()
