"""Benchmark loaders: Spider, Spider-DK, Spider-Syn, Spider-Realistic and BIRD in their published layouts.

Every loader returns an `ExampleList` (a plain list of `Example`) with stable question ids
`"<benchmark>-<index>"` (the 0-based position in the published file) and a `problems` list: gold queries that
do not parse (Spider-DK #76 lacks a comma) are reported there and logged, never raised, so one bad row cannot
stop a run over a thousand good ones. Such examples stay in the list (ids stay stable) with `Example.problem`
set; `sense-hub sample` skips them because no candidate can be labelled against a broken gold.

Layouts (as published, e.g. under `../shared/data`):

| name | file under `root` | question key | SQL key | databases |
|---|---|---|---|---|
| `spider` | `dev.json` | `question` | `query` | `root/database` |
| `spider-dk` | `Spider-DK.json` | `question` | `query` | `root/database` + Spider's `../spider/database` |
| `spider-syn` | `dev.json` | `SpiderSynQuestion` | `query` | Spider's `../spider/database` |
| `spider-realistic` | `spider-realistic.json` | `question` | `query` | Spider's `../spider/database` |
| `bird` | `dev.json` or `dev/dev.json` | `question` (+ `evidence`) | `SQL` | `dev_databases` |
| `bird-mini-dev` | `mini_dev_sqlite.json` or `mini_dev/mini_dev_sqlite.json` | `question` | `SQL` | `dev_databases` |

Datasets of your own load with `load_examples` (JSON list or JSONL with `question`, `sql`, `db_id`, or strong
records with an `id`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sense_hub.errors import BenchmarkError
from sense_hub.execution import compile_error
from sense_hub.records import iter_jsonl

logger = logging.getLogger(__name__)

BENCHMARKS = ("spider", "spider-dk", "spider-syn", "spider-realistic", "bird", "bird-mini-dev")


@dataclass
class Example:
    """One text-to-SQL question with its gold SQL.

    Args:
        question_id: stable id, `"<benchmark>-<index>"` for benchmarks.
        db_id: the database, found at `<db_root>/<db_id>/<db_id>.sqlite`.
        question: the natural-language question.
        sql: the gold SQL.
        evidence: BIRD-style external knowledge ("" when none).
        difficulty: the benchmark's difficulty label when it has one (BIRD), else "".
        problem: why the gold SQL is unusable ("" when it is fine), e.g. a syntax error in the published file.
    """

    question_id: str
    db_id: str
    question: str
    sql: str
    evidence: str = ""
    difficulty: str = ""
    problem: str = ""


@dataclass
class Problem:
    """A defect found while loading: which example and what is wrong."""

    question_id: str
    db_id: str
    message: str


class ExampleList(list):
    """A list of `Example` that also carries the `problems` found while loading and where its databases are."""

    def __init__(self, examples: Iterable[Example] = (), *, problems=None, db_roots=None) -> None:
        super().__init__(examples)
        self.problems: list[Problem] = list(problems or [])
        self.db_roots: list[Path] = list(db_roots or [])


@dataclass(frozen=True)
class _Layout:
    files: tuple[str, ...]
    question_key: str
    sql_key: str
    db_dirs: tuple[str, ...]


_LAYOUTS: dict[str, _Layout] = {
    "spider": _Layout(("dev.json",), "question", "query", ("database",)),
    "spider-dk": _Layout(("Spider-DK.json",), "question", "query", ("database", "../spider/database")),
    "spider-syn": _Layout(("dev.json",), "SpiderSynQuestion", "query", ("database", "../spider/database")),
    "spider-realistic": _Layout(("spider-realistic.json",), "question", "query", ("database", "../spider/database")),
    "bird": _Layout(("dev.json", "dev/dev.json"), "question", "SQL", ("dev_databases", "dev/dev_databases")),
    "bird-mini-dev": _Layout(
        ("mini_dev_sqlite.json", "mini_dev/mini_dev_sqlite.json"),
        "question",
        "SQL",
        ("dev_databases", "mini_dev/dev_databases", "dev/dev_databases", "../dev/dev_databases"),
    ),
}


def gold_problem(sql: str) -> str:
    """Why a gold query cannot be used ("" when it is valid SQLite), from `execution.compile_error`.

    SQLite compiles the query (nothing runs) under the executor's authorizer; names are not resolved, so only
    syntax errors, several statements and refused statements count. SQLite's own grammar, microseconds per
    query. Every gold query of Spider, Spider-Syn, Spider-Realistic and BIRD dev passes; Spider-DK #76 fails
    (`T1.LName  T1.age`: a missing comma).
    """
    if not sql.strip():
        return "empty gold SQL"
    message = compile_error(sql)
    return f"gold SQL does not parse: {message}" if message else ""


def _finish(name: str, examples: list[Example], *, source: str, db_roots: list[Path]) -> ExampleList:
    problems = []
    for ex in examples:
        if not ex.problem:
            ex.problem = gold_problem(ex.sql)
        if ex.problem:
            problems.append(Problem(ex.question_id, ex.db_id, ex.problem))
            logger.warning(
                "%s: %s (db %s): %s; it is skipped when sampling", source, ex.question_id, ex.db_id, ex.problem
            )
    return ExampleList(examples, problems=problems, db_roots=db_roots)


def as_db_roots(db_root: str | Path | Iterable[str | Path]) -> list[Path]:
    """One database folder or several, as a list of paths."""
    if isinstance(db_root, (str, Path)):
        return [Path(db_root)]
    return [Path(r) for r in db_root]


def resolve_database(db_roots: str | Path | Iterable[str | Path], db_id: str) -> Path:
    """The first `<root>/<db_id>/<db_id>.sqlite` over several database folders (Spider-DK spans two).

    Raises:
        databases.DatabaseError: no folder has it (the message lists the folders searched).
    """
    from sense_hub.databases import DatabaseError, database_path

    roots = as_db_roots(db_roots)
    for root in roots:
        try:
            return database_path(root, db_id)
        except DatabaseError:
            continue
    searched = ", ".join(str(r) for r in roots) or "(no folder given)"
    raise DatabaseError(f"database {db_id!r} not found as <root>/{db_id}/{db_id}.sqlite under {searched}")


def benchmark_db_roots(name: str, *, root: Path) -> list[Path]:
    """The existing database folders of a benchmark (`<dir>/<db_id>/<db_id>.sqlite`), searched in order."""
    layout = _layout(name)
    root = Path(root)
    return [(root / d).resolve() for d in layout.db_dirs if (root / d).is_dir()]


def _layout(name: str) -> _Layout:
    if name not in _LAYOUTS:
        raise BenchmarkError(f"unknown benchmark {name!r}; choose one of {', '.join(BENCHMARKS)}")
    return _LAYOUTS[name]


def load_benchmark(name: str, *, root: Path) -> ExampleList:
    """Load a benchmark's dev questions from its published layout.

    Args:
        name: one of `BENCHMARKS` ("spider", "spider-dk", "spider-syn", "spider-realistic", "bird",
            "bird-mini-dev").
        root: the benchmark's folder, e.g. `../shared/data/spider` (for BIRD, the folder holding `dev.json`
            or its parent holding `dev/dev.json`).

    Returns:
        An `ExampleList` in file order with ids `"<name>-<index>"`, its `problems` (broken gold queries,
        also logged as warnings) and `db_roots` (the database folders found next to it).

    Raises:
        BenchmarkError: unknown name, missing file, or a record without the layout's keys.
    """
    layout = _layout(name)
    root = Path(root)
    path = next((root / f for f in layout.files if (root / f).is_file()), None)
    if path is None:
        wanted = " or ".join(str(root / f) for f in layout.files)
        raise BenchmarkError(f"{name}: no {wanted}; pass --data-root pointing at the {name} folder")
    rows = _read_json_list(path)
    examples = []
    for i, row in enumerate(rows):
        where = f"{path} record {i}"
        question = _field(row, (layout.question_key,), where)
        sql = _field(row, (layout.sql_key,), where)
        db_id = _field(row, ("db_id",), where)
        examples.append(
            Example(
                question_id=f"{name}-{i}",
                db_id=db_id,
                question=question,
                sql=sql,
                evidence=str(row.get("evidence") or ""),
                difficulty=str(row.get("difficulty") or ""),
            )
        )
    return _finish(name, examples, source=str(path), db_roots=benchmark_db_roots(name, root=root))


def load_examples(
    path: str | Path, *, name: str | None = None, config: str | None = None, split: str = "train"
) -> ExampleList:
    """Load questions of your own: a JSON list or JSONL file, a Hub-layout dataset folder or a Hub dataset id.

    Each record needs `question`, `db_id` and the gold SQL as `sql` (or `query` / `SQL`); `evidence` is
    optional. The id is the record's `question_id` or `id` (strong records) when present, else
    `"<name>-<index>"` with `name` defaulting to the file's (or folder's) stem.

    Args:
        path: the `.json` or `.jsonl` file, a dataset folder or `org/name` (read by `records.load_records`).
        name: the id prefix for records without an id.
        config: the dataset config (folders and Hub ids).
        split: the split (folders and Hub ids).

    Raises:
        BenchmarkError: a missing file, a line that is not JSON, a missing field or a repeated id (the message
            names the file, the line and the field).
    """
    source = str(path)
    path = Path(path)
    prefix = name or path.stem
    if path.is_file() and path.suffix == ".json":
        rows = [(f"{path} record {i}", i, row) for i, row in enumerate(_read_json_list(path), 1)]
    elif path.is_file():
        rows = [(f"{path}:{n}", n, row) for n, row in iter_jsonl(path, error=BenchmarkError)]
    elif path.is_dir() or (
        source.count("/") == 1 and not source.startswith((".", "/", "~")) and path.suffix not in (".json", ".jsonl")
    ):
        from sense_hub.records import load_records

        try:
            records = load_records(source, config=config, split=split, error=BenchmarkError)
        except BenchmarkError:
            raise
        except Exception as err:  # a folder or Hub id datasets cannot read
            raise BenchmarkError(f"{source}: cannot read it as a dataset ({err}); pass a JSONL file") from err
        rows = [(f"{source} {split} row {i}", i, row) for i, row in enumerate(records, 1)]
    else:
        raise BenchmarkError(
            f"{path}: no such file; pass a JSON or JSONL file with question, sql and db_id (or a dataset folder)"
        )
    examples, seen = [], {}
    for i, (where, number, row) in enumerate(rows):
        qid = row.get("question_id", row.get("id"))
        qid = f"{prefix}-{i}" if qid is None or qid == "" else str(qid)
        if qid in seen:
            raise BenchmarkError(f"{where}: id {qid!r} repeats line {seen[qid]}; ids must be unique")
        seen[qid] = number
        examples.append(
            Example(
                question_id=qid,
                db_id=_field(row, ("db_id",), where),
                question=_field(row, ("question",), where),
                sql=_field(row, ("sql", "query", "SQL", "gold_sql", "gold"), where),
                evidence=str(row.get("evidence") or ""),
                difficulty=str(row.get("difficulty") or ""),
            )
        )
    return _finish(prefix, examples, source=str(path), db_roots=[])


def find_benchmark_root(name: str, data_root: Path) -> Path:
    """The benchmark's own folder, given either that folder or the folder that holds it (`../shared/data`)."""
    folder = {"bird-mini-dev": "bird"}.get(name, name)
    candidate = Path(data_root) / folder
    return candidate if candidate.is_dir() else Path(data_root)


def _field(row: Mapping[str, Any], keys: tuple[str, ...], where: str) -> str:
    for key in keys:
        if key in row and row[key] is not None:
            if not isinstance(row[key], str):
                raise BenchmarkError(
                    f"{where}: field {key!r} must be a string, got {type(row[key]).__name__} {row[key]!r:.60}; "
                    "quote it in the file"
                )
            return row[key]
    raise BenchmarkError(f"{where}: missing field {' / '.join(map(repr, keys))}")


def _read_json_list(path: Path) -> list[dict]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise BenchmarkError(f"{path}: not valid JSON ({err}); expected a list of records") from err
    if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
        raise BenchmarkError(f"{path}: expected a JSON list of objects")
    return data
