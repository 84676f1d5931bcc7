"""Copy the small, expensive outputs of an experiment run into `bench/results/<run>/`, to commit.

A run folder (`sense-hub experiment`'s `output_dir`) holds models (never committed) and the files that cost CPU
hours to make: verified strong records, labelled weak samples, pairs, judged predictions. This keeps the latter,
trimmed to what rebuilding and re-judging need (no prompts), so losing the machine costs only training time:

    strong-templates.jsonl, strong-domains.jsonl   verified strong records, as written (teacher-made)
    strong-rejected.json                           rejection counts of template synthesis
    strong-rejected.ids.jsonl                      id, db_id, family, reason of each rejected template candidate
    weak.jsonl                                     question_id, sample_index, sql, status, correct, error
    pairs/<preset>.ids.jsonl                        question_id, chosen, rejected per pair
    <arm>.judged.jsonl                              question_id, db_id, pred, correct, error (one line a question)
    compare.md, compare.json                        `sense-hub compare` over the scored arms
    against.md                                      each arm against base and against the arm it started from
    cards/<arm>.md                                  each trained arm's model card, with its held-out scores
    stages.json                                     each finished step's record (seconds, counts, losses)

Usage:
    python bench/export_results.py --run /work/runs/sense-qwen --to bench/results/sense-qwen

On a new machine, `--restore` goes the other way: after `sense-hub experiment ... --stages split` (seconds), it puts
the committed strong records, weak samples (joined again with their questions), judged predictions and step records
back into the run folder, so the experiment resumes with only training left to redo (never the teacher):

    python bench/export_results.py --restore --run runs/sense-qwen --from bench/results/sense-qwen
    sense-hub experiment --config recipes/experiments/sense-qwen.yaml --stages pairs   # rebuilt from weak.jsonl
"""

from __future__ import annotations

import argparse
import json
import shutil
from collections import Counter
from pathlib import Path


def _rows(path: Path):
    with path.open(encoding="utf-8") as f:
        for line in f:
            if line.strip():
                yield json.loads(line)


def _write(path: Path, rows) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    with path.open("w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
            n += 1
    return n


def export(run: Path, to: Path) -> dict:
    to.mkdir(parents=True, exist_ok=True)
    data = run / "data"
    written = {}
    for name in ("strong-templates.jsonl", "strong-domains.jsonl"):
        if (data / name).is_file():
            shutil.copyfile(data / name, to / name)
            written[name] = sum(1 for _ in _rows(to / name))
    rejected = data / "strong-templates.rejected.jsonl"
    if rejected.is_file():
        counts = Counter(r.get("reason") or r.get("rejected") or r.get("status") or "?" for r in _rows(rejected))
        (to / "strong-rejected.json").write_text(json.dumps(dict(counts.most_common()), indent=2) + "\n")
        # which candidates were asked and rejected: a resumed synthesis (after --restore) does not ask them again
        keys = ("id", "db_id", "family", "reason")
        written["strong-rejected.ids.jsonl"] = _write(
            to / "strong-rejected.ids.jsonl", ({k: r.get(k) for k in keys if k in r} for r in _rows(rejected))
        )
    if (data / "weak.jsonl").is_file():
        keys = (
            "question_id",
            "db_id",
            "sample_index",
            "generator",
            "sql",
            "status",
            "correct",
            "error",
            "gold_suspect",
        )
        written["weak.jsonl"] = _write(
            to / "weak.jsonl", ({k: r.get(k) for k in keys if k in r} for r in _rows(data / "weak.jsonl"))
        )
    for pairs in sorted((data / "pairs").glob("*.jsonl")) if (data / "pairs").is_dir() else []:
        keys = ("question_id", "chosen", "rejected", "chosen_source", "rejected_error")

        def trimmed(rows, keys=keys):
            for r in rows:
                out = {k: r.get(k) for k in keys if k in r}
                for side in ("chosen", "rejected"):  # conversational: keep the SQL of the assistant turn only
                    if isinstance(out.get(side), list):
                        out[side] = out[side][-1].get("content")
                yield out

        written[f"pairs/{pairs.stem}"] = _write(to / "pairs" / f"{pairs.stem}.ids.jsonl", trimmed(_rows(pairs)))
    for judged in sorted((run / "judged").glob("*.jsonl")) if (run / "judged").is_dir() else []:
        keys = ("question_id", "db_id", "pred", "correct", "error")
        written[judged.stem] = _write(
            to / f"{judged.stem}.judged.jsonl", ({k: r.get(k) for k in keys} for r in _rows(judged))
        )
    if (run / "table.md").is_file():
        shutil.copyfile(run / "table.md", to / "compare.md")
    if (run / "results.json").is_file():
        shutil.copyfile(run / "results.json", to / "compare.json")
    if (run / "against.md").is_file():  # each arm against base and against the arm it started from
        shutil.copyfile(run / "against.md", to / "against.md")
    for variant in ("syn", "realistic"):
        if (run / f"table-{variant}.md").is_file():
            shutil.copyfile(run / f"table-{variant}.md", to / f"compare-{variant}.md")
    # each trained arm's card: from its model folder, or (model gone) the one `compare` wrote from its step records
    # (one written from step records never replaces a card already here: that one came from the model itself)
    for card in [*sorted(run.glob("models/*/README.md")), *sorted(run.glob("cards/*/README.md"))]:
        target = to / "cards" / f"{card.parent.name}.md"
        if card.parent.parent.name == "cards" and target.is_file():
            continue
        target.parent.mkdir(exist_ok=True)
        shutil.copyfile(card, target)
        written[f"cards/{target.name}"] = 1
    stages = {}
    for marker in sorted((run / "done").glob("*.json")) if (run / "done").is_dir() else []:
        info = json.loads(marker.read_text())
        if isinstance(info.get("eval"), dict):
            info["eval"] = {k: v for k, v in info["eval"].items() if k != "fingerprints"}
        stages[marker.stem] = info
    (to / "stages.json").write_text(json.dumps(stages, indent=2, default=str) + "\n")
    return written


def restore(results: Path, run: Path) -> dict:
    """Put `export`'s files back into a run folder; files already there are kept (nothing is overwritten)."""
    data = run / "data"
    human = data / "train-human.jsonl"
    if not human.is_file():
        raise SystemExit(f"{human} is missing: run `sense-hub experiment --config EXP.yaml --stages split` first")
    written: dict[str, int] = {}

    def put(path: Path, rows) -> None:
        if path.exists():
            print(f"{path}: kept (already there)")
            return
        written[str(path.relative_to(run))] = _write(path, rows)

    for name in ("strong-templates.jsonl", "strong-domains.jsonl"):
        if (results / name).is_file():
            put(data / name, _rows(results / name))
    if (results / "strong-rejected.ids.jsonl").is_file():  # so a resumed synthesis asks only the candidates left
        put(data / "strong-templates.rejected.jsonl", _rows(results / "strong-rejected.ids.jsonl"))
    stages = json.loads((results / "stages.json").read_text()) if (results / "stages.json").is_file() else {}
    if (results / "weak.jsonl").is_file():  # `sense-hub pairs` reads the question and gold SQL beside each sample
        questions = {r["question_id"]: r for r in _rows(human)}
        generator = stages.get("weak", {}).get("model", "weak model")

        def weak_rows():
            for r in _rows(results / "weak.jsonl"):
                q = questions.get(r["question_id"])
                if q is None:
                    raise SystemExit(f"{results / 'weak.jsonl'}: {r['question_id']} is not in {human}: another split?")
                extra = {"question": q["question"], "evidence": "", "gold_sql": q["sql"], "generator": generator}
                yield {**extra, **r, "db_id": q["db_id"]}

        put(data / "weak.jsonl", weak_rows())
    for judged in sorted(results.glob("*.judged.jsonl")):
        put(run / "judged" / f"{judged.name[: -len('.judged.jsonl')]}.jsonl", _rows(judged))
    for name, info in stages.items():  # a step whose outputs are not back (models, pairs) still runs again
        marker = run / "done" / f"{name}.json"
        if not marker.exists():
            marker.parent.mkdir(parents=True, exist_ok=True)
            marker.write_text(json.dumps({**info, "restored_from": str(results)}, indent=2) + "\n")
            written[f"done/{name}.json"] = 1
    return written


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", type=Path, required=True, help="the experiment's --out folder")
    p.add_argument("--to", type=Path, help="bench/results/<run> (export)")
    p.add_argument("--restore", action="store_true", help="copy bench/results/<run> back into the run folder")
    p.add_argument("--from", dest="source", type=Path, help="bench/results/<run> (with --restore)")
    args = p.parse_args(argv)
    if not args.run.is_dir():
        p.error(f"--run {args.run}: no such folder")
    if args.restore:
        if args.source is None or not args.source.is_dir():
            p.error(f"--restore needs --from bench/results/<run>, an existing folder (got {args.source})")
        written = restore(args.source, args.run)
    elif args.to is None:
        p.error("give --to bench/results/<run> (export) or --restore --from bench/results/<run>")
    else:
        written = export(args.run, args.to)
    for name, n in written.items():
        print(f"{name}: {n} rows")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
