"""`sense-hub adapt`: a small model for one database, from questions a teacher wrote and verified for it.

Adapt is one use of the experiment engine (`sense_hub.experiment`): it writes an experiment over the one database
and runs it, so it has the same steps, resume markers, judged predictions, `compare` tables and cards.

    split     your held-out questions (`--questions`: gold SQL checked on the database; never trained on)
    synth     template SQL over the database; the teacher writes each question and answers it back, and execution
              keeps the pairs whose answer gives the template's result (without `--questions`, a seeded share of
              them is held out for scoring: synthetic, and said so)
    base      the student (or `--start-from`) scored greedily on the held-out questions
    sft       LoRA SFT on the verified questions, then scored
    weak      the SFT model samples SQL for the verified questions, labelled by execution
    pairs     preference pairs from those samples
    adapted   cDPO from the SFT model on the pairs, then scored
    compare   EX with 95% intervals and paired McNemar p for every stage, into each model's card

The adapted model is `OUT/models/adapted`, with a card naming the database's sha256, the data counts, the scores
and the command; `OUT/adapt.json` holds the same figures. A second run of the same command resumes.
"""

from __future__ import annotations

import hashlib
import json
import re
import shlex
import shutil
import sqlite3
import sys
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from sense_hub.errors import MissingFileError, UsageError
from sense_hub.records import read_jsonl, write_json, write_jsonl

DEFAULT_STUDENT = "embedded:qwen2.5-coder-0.5b"
DEFAULT_TEACHER = "embedded:qwen2.5-coder-1.5b"
ARMS = ("base", "sft", "adapted")


@dataclass
class AdaptOptions:
    """What `sense-hub adapt` was asked for (its flags)."""

    db: Path
    output_dir: Path
    questions: Path | None = None
    student: str = DEFAULT_STUDENT
    teacher: str = DEFAULT_TEACHER
    teacher_base_url: str | None = None
    start_from: str | None = None
    budget_minutes: float | None = None
    gguf: str | None = None
    push_to_hub: str | None = None
    templates: int = 200  # template candidates over the database
    synthesis_rounds: int = 2
    heldout_share: float = 0.2  # without --questions
    sft_epochs: float = 2.0
    cdpo_epochs: float = 1.0
    weak_samples: int = 4
    weak_temperature: float = 0.8
    pairs_preset: str = "keep-gold-limit1"  # the gold SQL chosen where the student has no right answer
    batch_size: int = 8
    max_new_tokens: int = 256
    seed: int = 42
    sft_options: dict[str, Any] = field(default_factory=dict)
    cdpo_options: dict[str, Any] = field(default_factory=dict)
    command: str = ""


def database_id(path: Path) -> str:
    """A db_id from the file name: letters, digits and `_` (`My Shop.sqlite` -> `My_Shop`)."""
    name = re.sub(r"[^A-Za-z0-9_]+", "_", path.stem).strip("_")
    return name or "database"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def check_database(path: Path) -> list[str]:
    """The database's tables; a one-line error naming the file when it is missing, not SQLite, or has no tables."""
    from sense_hub.databases import DatabaseError, connect_readonly

    if not path.is_file():
        raise MissingFileError(f"--db {path}: no such file (give an SQLite database file)")
    try:
        con = connect_readonly(path)
        try:
            tables = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        finally:
            con.close()
    except (DatabaseError, sqlite3.DatabaseError) as err:
        raise UsageError(f"--db {path}: not an SQLite database ({' '.join(str(err).split())})") from err
    tables = [t for t in tables if not t.startswith("sqlite_")]
    if not tables:
        raise UsageError(f"--db {path}: the database has no tables; adapt needs tables to ask questions about")
    return tables


def load_questions(path: Path, db_id: str, db_path: Path) -> list[dict]:
    """The user's held-out questions (`question` and gold `sql` per line), each gold SQL run on the database.

    Raises:
        UsageError: a missing file, a line that is not JSON, a missing field, a `db_id` of another database, or a
            gold SQL that fails (the message names the file and line).
    """
    from sense_hub.execution import execute

    if not path.is_file():
        raise MissingFileError(f"--questions {path}: no such file (JSONL: question, sql per line)")
    rows = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise UsageError(f"{path}:{n}: not JSON ({err.msg})") from err
        if not isinstance(row, dict):
            raise UsageError(f"{path}:{n}: expected an object with question and sql")
        sql = row.get("sql") or row.get("query") or row.get("SQL")
        if not isinstance(row.get("question"), str) or not row["question"].strip() or not isinstance(sql, str):
            raise UsageError(f"{path}:{n}: needs `question` and `sql` (the gold SQL)")
        if row.get("db_id") not in (None, "", db_id):
            raise UsageError(f"{path}:{n}: db_id {row['db_id']!r} is not this database ({db_id}); drop the field")
        result = execute(db_path, sql)
        if not result.ok:
            raise UsageError(
                f"{path}:{n}: the gold SQL does not run on {db_path.name}: {result.error} {result.message}"
            )
        qid = str(row.get("question_id") or row.get("id") or f"{db_id}-{n}")
        rows.append({"question_id": qid, "db_id": db_id, "question": row["question"], "sql": sql})
    if not rows:
        raise UsageError(f"--questions {path}: no questions in the file")
    ids = [r["question_id"] for r in rows]
    if len(set(ids)) != len(ids):
        raise UsageError(f"--questions {path}: question ids repeat; give each line its own question_id or none")
    return rows


def recipe_file(name: str) -> Path:
    """A training YAML shipped in the package (`sense_hub/data/recipes/<name>.yaml`)."""
    return Path(str(resources.files("sense_hub") / "data" / "recipes" / f"{name}.yaml"))


def experiment_config(opts: AdaptOptions, db_id: str, questions: Path | None) -> dict[str, Any]:
    """The experiment adapt runs: its settings and arms (`ExperimentConfig` fields)."""
    start = opts.start_from or "student"
    budget = {"max_train_minutes": opts.budget_minutes / 2} if opts.budget_minutes else {}
    return {
        "output_dir": str(opts.output_dir),
        "student": opts.student,
        "db_root": str(opts.output_dir / "databases"),
        "heldout_questions": str(questions) if questions else None,
        "heldout_share": 0.0 if questions else opts.heldout_share,
        "synthesis_databases": [db_id],
        "writer": opts.teacher,
        "writer_base_url": opts.teacher_base_url,
        "templates_per_database": opts.templates,
        "synthesis_rounds": opts.synthesis_rounds,
        "domain_examples": 0,
        "weak_model": "sft",
        "weak_questions": "templates",
        "weak_samples": opts.weak_samples,
        "weak_temperature": opts.weak_temperature,
        "pairs_preset": opts.pairs_preset,
        "variants": [],
        "robustness": [],
        "seed": opts.seed,
        "save_steps": 10,
        "batch_size": opts.batch_size,
        "max_new_tokens": opts.max_new_tokens,
        "arms": [
            {"name": "base", "start_from": start},
            {
                "name": "sft",
                "recipe": "sft",
                "start_from": start,
                "data": ["templates"],
                "epochs": opts.sft_epochs,
                "config": str(recipe_file("adapt-sft")),
                "options": {**budget, **opts.sft_options},
            },
            {
                "name": "adapted",
                "recipe": "cdpo",
                "start_from": "sft",
                "data": ["pairs"],
                "epochs": opts.cdpo_epochs,
                "config": str(recipe_file("adapt-cdpo")),
                "options": {**budget, **opts.cdpo_options},
            },
        ],
    }


def run_adapt(opts: AdaptOptions) -> dict[str, Any]:
    """Adapt the student to `opts.db`; returns the summary written to `OUT/adapt.json`."""
    from sense_hub.experiment import Experiment, ExperimentConfig, parse_arms

    db = Path(opts.db).resolve()
    tables = check_database(db)
    db_id = database_id(db)
    digest = sha256_of(db)
    out = opts.output_dir = Path(opts.output_dir).resolve()
    target = out / "databases" / db_id / f"{db_id}.sqlite"
    if target.is_file() and sha256_of(target) != digest:
        raise UsageError(
            f"--output-dir {out} holds another version of {db_id} (sha256 differs from {db}); "
            "use a new --output-dir for the changed database"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    if not target.is_file():
        shutil.copyfile(db, target)
    questions = None
    if opts.questions is not None:
        rows = load_questions(Path(opts.questions), db_id, target)
        questions = out / "data" / "questions.jsonl"
        write_jsonl(questions, rows)
    settings = experiment_config(opts, db_id, questions)
    config = ExperimentConfig(**settings)
    experiment = Experiment(config, parse_arms(config))
    experiment.say(
        f"adapt {opts.student if not opts.start_from else opts.start_from} to {db.name} ({len(tables)} tables, "
        f"sha256 {digest[:12]}); teacher {opts.teacher}; held-out: "
        + (
            f"{len(read_jsonl(questions))} of your questions"
            if questions
            else f"{opts.heldout_share:.0%} of the verified questions (synthetic)"
        )
    )
    experiment.run()
    summary = summarize(experiment, opts, db_id=db_id, digest=digest, tables=tables, synthetic=questions is None)
    write_json(out / "adapt.json", summary)
    write_card(experiment, summary)
    if opts.gguf:
        from sense_hub.gguf_export import export_gguf

        summary["gguf"] = str(export_gguf(out / "models" / "adapted", opts.gguf))
        write_json(out / "adapt.json", summary)
    if opts.push_to_hub:
        from sense_hub.hub import push_model_folder

        summary["pushed"] = push_model_folder(out / "models" / "adapted", repo_id=opts.push_to_hub, private=False)
        write_json(out / "adapt.json", summary)
    experiment.say(result_table(summary))
    experiment.say(f"serve it in the Space: SENSE_MODEL={out / 'models' / 'adapted'} python spaces/sense-demo/app.py")
    return summary


def summarize(experiment, opts: AdaptOptions, *, db_id: str, digest: str, tables: list[str], synthetic: bool) -> dict:
    """Counts, scores (EX, 95% CI) per stage, the paired comparisons and the stage times of a finished run."""
    out = experiment.out
    results = json.loads((out / "results.json").read_text()) if (out / "results.json").is_file() else {}
    done = {}
    for marker in sorted((out / "done").glob("*.json")):
        done[marker.stem] = json.loads(marker.read_text())
    timings = json.loads((out / "timings.json").read_text()) if (out / "timings.json").is_file() else {}
    counts = {
        "verified_questions": done.get("synth", {}).get("records"),
        "held_out_questions": len(read_jsonl(out / "data" / "heldout.jsonl")),
        "weak_samples": len(read_jsonl(out / "data" / "weak.jsonl")) if (out / "data" / "weak.jsonl").is_file() else 0,
        "pairs": done.get("pairs", {}).get("pairs_per_preset", {}).get(opts.pairs_preset),
    }
    return {
        "database": {"db_id": db_id, "file": str(Path(opts.db).name), "sha256": digest, "tables": tables},
        "student": opts.start_from or opts.student,
        "teacher": opts.teacher,
        "held_out": "synthetic (verified template questions held out)" if synthetic else "your questions",
        "counts": counts,
        "scores": {s["name"]: s for s in results.get("systems", [])},
        "paired": [p for p in results.get("pairs", []) if "base" in (p["a"], p["b"])],
        "stage_seconds": {k: v["seconds"] for k, v in timings.items()},
        "model": str(out / "models" / "adapted"),
        "command": opts.command,
    }


def result_table(summary: dict) -> str:
    lines = ["| stage | EX [95% CI] | vs base: points, McNemar p |", "|---|---|---|"]
    paired = {(p["a"], p["b"]): p for p in summary["paired"]}
    for name in ARMS:
        s = summary["scores"].get(name)
        if s is None:
            continue
        p = paired.get(("base", name))
        versus = f"{-100 * p['delta']:+.1f}, p = {p['mcnemar_p']:.3g}" if p else ""
        ex = f"{s['correct']}/{s['n']} = {100 * s['ex']:.1f}% [{100 * s['ci_low']:.1f}, {100 * s['ci_high']:.1f}]"
        lines.append(f"| {name} | {ex} | {versus} |")
    return "\n".join(lines)


def write_card(experiment, summary: dict) -> None:
    """The adapted model's card gets the database, the data counts, the scores and the command."""
    from sense_hub.cards import add_results

    card = experiment.out / "models" / "adapted" / "README.md"
    if not card.is_file():
        return
    db = summary["database"]
    counts = summary["counts"]
    body = "\n".join(
        [
            f"Adapted to one database with `sense-hub adapt`: `{db['file']}` (sha256 `{db['sha256']}`, "
            f"{len(db['tables'])} tables: {', '.join(db['tables'])}).",
            "",
            f"- Student: `{summary['student']}`; teacher (writes and verifies the questions): `{summary['teacher']}`.",
            f"- Training data: {counts['verified_questions']} verified questions over this database, "
            f"{counts['weak_samples']} of the SFT model's own samples labelled by execution, {counts['pairs']} "
            "preference pairs.",
            f"- Held-out questions: {counts['held_out_questions']}, {summary['held_out']}; never trained on.",
            "",
            result_table(summary),
            "",
            "```",
            summary["command"],
            "```",
        ]
    )
    add_results(card, [], section="The database it was adapted to", body=body)


def command_line(argv: list[str] | None = None) -> str:
    return "sense-hub adapt " + shlex.join(sys.argv[2:] if argv is None else argv)
