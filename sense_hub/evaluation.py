"""Execution accuracy: judge predicted SQL against gold SQL (the `sense-hub eval` command is `commands.eval`).

    sense-hub eval --predictions PRED [--gold GOLD] --db-root DIR [--metric spider|bird|strict]
                   [--keep-distinct] [--timeout SECONDS] [--workers N] [--output OUT.jsonl]

PRED is JSONL (`db_id`, `gold`, `pred` per line; other fields are carried through to OUT.jsonl) or a text file
of one predicted SQL per line (Spider style; only the part before a tab is used) with `--gold` holding
`SQL<TAB>db_id` per line. Each database is `<db-root>/<db_id>/<db_id>.sqlite`, and every other `*.sqlite` file
in that folder is checked too (test-suite style: a prediction is correct only if it matches on all of them).
The last line on stdout is a JSON summary.
"""

from __future__ import annotations

import json
import logging
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sense_hub.databases import list_databases, sibling_databases
from sense_hub.errors import DatabaseError, GenerationError, InputError
from sense_hub.execution import ExecutionResult, Executor
from sense_hub.matching import METRICS, has_order_by, prepare_sql, results_match, spider_order_matters
from sense_hub.records import loads

if TYPE_CHECKING:
    from sense_hub.generation import GenerationConfig, Generator

__all__ = [
    "GeneratedSQL",
    "InputError",
    "Verdict",
    "database_files",
    "evaluate_generator",
    "evaluate_records",
    "execution_accuracy",
    "input_fingerprints",
    "judge",
    "read_predictions",
    "summarize",
]

logger = logging.getLogger(__name__)


@dataclass
class Verdict:
    """Whether one prediction is correct.

    `error` is None when both queries executed (whether the prediction is right or wrong); otherwise the
    prediction's execution error kind (`timeout`, `syntax`, `runtime`, `refused`, `missing_db`, `empty`,
    `too_large`, `crash`), or `gold_error` when the gold query fails.
    """

    correct: bool
    error: str | None
    pred: ExecutionResult | None = None
    message: str = ""


def order_matters(gold_sql: str, metric: str) -> bool:
    """Whether row order counts when results are compared: Spider's rule under `spider`, else an ORDER BY."""
    return spider_order_matters(gold_sql) if metric == "spider" else has_order_by(gold_sql)


def judge(
    items: Sequence[tuple[str | Path, str, str]],
    *,
    metric: str = "strict",
    keep_distinct: bool = False,
    timeout: float = 30.0,
    workers: int | None = None,
    progress: bool = False,
    max_rows: int = 1_000_000,
    executor: Executor | None = None,
) -> list[Verdict]:
    """Judge `(db_path, gold_sql, pred_sql)` items by execution.

    Each gold query runs once per database however many predictions share it, and identical predictions run
    once. A prediction is correct when its result matches the gold result under `metric` on `db_path` and on
    every other `*.sqlite` file in the same folder.

    Args:
        items: `(db_path, gold_sql, pred_sql)`; `db_path` is the `.sqlite` file.
        metric: "spider", "bird" or "strict" (see `sense_hub.matching`).
        keep_distinct: keep DISTINCT in `spider` mode (the other metrics always keep it).
        timeout: seconds per query.
        workers: worker processes (`0`: in this process; `None`: automatic).
        progress: show a tqdm progress bar on stderr.
        max_rows: a result with more rows counts as `too_large` (for the gold: `gold_error`). BIRD's evaluator
            has no cap, and a few of its gold queries return tens of thousands of rows.
        executor: run the queries on this `Executor` (it stays open; its `executed` counts them) instead of a new
            one made from `workers`, `timeout` and `max_rows`.

    Returns:
        One `Verdict` per item, in order.

    Raises:
        ValueError: an unknown metric.
    """
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; choose one of {', '.join(METRICS)}")
    cache: dict[tuple[str, str], str] = {}

    def prepare(sql: str, role: str) -> str:
        key = (sql, role)
        out = cache.get(key)
        if out is None:
            out = cache[key] = prepare_sql(sql, metric=metric, role=role, keep_distinct=keep_distinct)
        return out

    prepared = [(str(d), prepare(gold or "", "gold"), prepare(pred or "", "pred")) for d, gold, pred in items]
    compare = Comparator(metric)
    verdicts: list[Verdict | None] = [None] * len(prepared)
    siblings: dict[str, list[Path]] = {}

    bar = None
    if progress:
        from tqdm import tqdm

        class _Bar(tqdm):
            monitor_interval = 0  # no monitor thread: worker processes can then be forked safely

        n_queries = len({(d, s) for d, g, p in prepared for s in (g, p)})
        bar = _Bar(total=n_queries, desc="executing", unit="query", file=sys.stderr, dynamic_ncols=True)
    try:
        own = executor is None
        if own:
            executor = Executor(workers=workers, timeout=timeout, max_rows=max_rows)
        try:
            # phase 1: every item on its own database
            flat = [(d, s) for d, g, p in prepared for s in (g, p)]
            results = executor.map(flat, progress=bar.update if bar is not None else None)
            multi = []
            for i, (d, g, _p) in enumerate(prepared):
                verdicts[i] = compare(results[2 * i], results[2 * i + 1], g)
                if verdicts[i].correct:
                    if d not in siblings:
                        siblings[d] = sibling_databases(d)[1:]
                    if siblings[d]:
                        multi.append(i)
            # phase 2 (test-suite style): the items still correct, on the other databases of their folder
            if multi:
                flat = [(str(other), s) for i in multi for other in siblings[prepared[i][0]] for s in prepared[i][1:]]
                results = iter(executor.map(flat))
                for i in multi:
                    for _other in siblings[prepared[i][0]]:
                        v = compare(next(results), next(results), prepared[i][1])
                        if not v.correct and verdicts[i].correct:
                            verdicts[i] = Verdict(correct=False, error=v.error, pred=v.pred, message=v.message)
        finally:
            if own:
                executor.close()
    finally:
        if bar is not None:
            bar.close()
    return verdicts  # type: ignore[return-value]


class Comparator:
    """Verdicts from execution results; each (gold result, pred result, order rule) is compared once.

    The one comparison of sense-hub: `judge` (eval, predict, every held-out score) and the GRPO execution reward
    (`rewards.ExecutionScorer`) both decide "correct" here. Short-lived: it keeps the results it compared.
    """

    def __init__(self, metric: str) -> None:
        self.metric = metric
        self._memo: dict[tuple[int, int, bool], bool] = {}
        self._keep: list[ExecutionResult] = []  # keeps compared results alive so their ids stay unique

    def __call__(self, gold: ExecutionResult, pred: ExecutionResult, gold_sql: str) -> Verdict:
        if pred.error == "missing_db":
            return Verdict(correct=False, error=pred.error, pred=pred, message=pred.message)
        if not gold.ok:
            return Verdict(correct=False, error="gold_error", pred=pred, message=f"gold query failed: {gold.message}")
        if not pred.ok:
            return Verdict(correct=False, error=pred.error, pred=pred, message=pred.message)
        order = order_matters(gold_sql, self.metric)
        key = (id(gold), id(pred), order)
        correct = self._memo.get(key)
        if correct is None:
            correct = results_match(gold, pred, metric=self.metric, order_matters=order)
            self._memo[key] = correct
            self._keep += (gold, pred)
        return Verdict(correct=correct, error=None, pred=pred)


@dataclass
class GeneratedSQL:
    """What a model wrote for one prompt: its completions, the SQL in each (`prompts.extract_sql`), and each SQL's
    verdict against the gold (None when no gold was given)."""

    texts: list[str]
    sqls: list[str]
    verdicts: list[Verdict] | None = None


def evaluate_generator(
    generator: Generator,
    prompts: Sequence[list[dict]],
    *,
    config: GenerationConfig,
    db_paths: Sequence[str | Path] | None = None,
    gold: Sequence[str] | None = None,
    metric: str = "strict",
    timeout: float = 30.0,
    workers: int | None = None,
    executor: Executor | None = None,
    keep_distinct: bool = False,
) -> list[GeneratedSQL]:
    """The one generate -> extract_sql -> judge path: `config.n` SQL candidates per prompt, judged by execution.

    Sampling and prediction (`sampling`), SPFT rounds, the quickstart's evaluation, the verification of template
    synthesis and the Space all write SQL through this function.

    Args:
        generator: a `generation.Generator`.
        prompts: chat prompts (`prompts.prompt_for_database`), one per question.
        config: how to sample (`n` completions per prompt).
        db_paths: the database of each prompt (needed with `gold`).
        gold: the gold SQL of each prompt; without it nothing is executed and `verdicts` is None.
        metric, timeout, workers, executor, keep_distinct: as in `judge`.

    Returns:
        One `GeneratedSQL` per prompt, in order.

    Raises:
        GenerationError: the generator returned another number of completions than `config.n` per prompt.
    """
    from sense_hub.prompts import extract_sql

    if not prompts:
        return []
    completions = generator.generate(list(prompts), config)
    if len(completions) != len(prompts) or any(len(c) != config.n for c in completions):
        raise GenerationError(
            f"generator {getattr(generator, 'name', generator)!r} returned {[len(c) for c in completions]} "
            f"completions for {len(prompts)} prompts; expected {config.n} each"
        )
    out = [GeneratedSQL(texts=list(texts), sqls=[extract_sql(t) for t in texts]) for texts in completions]
    if gold is not None:
        if db_paths is None or not len(db_paths) == len(gold) == len(prompts):
            raise ValueError("evaluate_generator needs one database path and one gold SQL per prompt")
        items = [(d, g, sql) for d, g, one in zip(db_paths, gold, out, strict=True) for sql in one.sqls]
        verdicts = iter(
            judge(
                items, metric=metric, keep_distinct=keep_distinct, timeout=timeout, workers=workers, executor=executor
            )
        )
        for one in out:
            one.verdicts = [next(verdicts) for _ in one.sqls]
    return out


def score_examples(
    generator: Generator,
    examples: Sequence,
    *,
    db_paths: Sequence[str | Path],
    prompts: Sequence[list[dict]] | None = None,
    max_new_tokens: int = 256,
    metric: str = "spider",
    keep_distinct: bool = False,
    timeout: float = 30.0,
    workers: int | None = None,
    output: str | Path | None = None,
    repair_rounds: int = 0,
) -> tuple[list[dict], dict]:
    """The one way sense-hub scores a model on held-out questions: one greedy SQL per question, judged.

    Generate -> `prompts.extract_sql` -> `judge` (`evaluate_generator`), one row per question in
    `formats.PREDICTIONS_COLUMNS` order (what `sense-hub eval --output` writes and `sense-hub compare` reads), and
    `summarize`'s summary. The quickstart, SPFT's round selection and GRPO's held-out score all call this.

    Args:
        generator: a `generation.Generator`.
        examples: the questions (`question_id`, `db_id`, `question`, `sql`, optional `evidence`).
        db_paths: each question's database.
        prompts: the chat prompts (default: `prompts.prompt_for_database` of each question and database).
        max_new_tokens: the generation budget per SQL.
        metric, keep_distinct, timeout, workers: as in `judge`.
        output: a JSONL file the rows are written to (optional).
        repair_rounds: repair each answer that does not run first (`sense_hub.repair`; budget `greedy+repair`,
            not greedy: the summary says so in `budget`); its row keeps the answer before repair in `first_pred`.

    Returns:
        `(rows, summary)`.
    """
    from sense_hub.generation import GenerationConfig
    from sense_hub.prompts import prompt_for_database

    if repair_rounds < 0:
        raise ValueError(f"`repair_rounds` must be 0 or more, got {repair_rounds}")
    if prompts is None:
        prompts = [
            prompt_for_database(e.question, path, evidence=getattr(e, "evidence", "") or "")
            for e, path in zip(examples, db_paths, strict=True)
        ]
    generated = evaluate_generator(
        generator,
        prompts,
        config=GenerationConfig(n=1, temperature=0.0, max_new_tokens=max_new_tokens),
        db_paths=db_paths,
        gold=[e.sql for e in examples],
        metric=metric,
        keep_distinct=keep_distinct,
        timeout=timeout,
        workers=workers,
    )
    first = [g.sqls[0] for g in generated]
    if repair_rounds:
        from sense_hub.repair import repair

        fixed = repair(generator, prompts, first, db_paths, rounds=repair_rounds, timeout=timeout)
        changed = [i for i, one in enumerate(fixed) if one.changed]
        verdicts = judge(
            [(db_paths[i], examples[i].sql, fixed[i].sql) for i in changed],
            metric=metric,
            keep_distinct=keep_distinct,
            timeout=timeout,
            workers=workers,
        )
        for i, verdict in zip(changed, verdicts, strict=True):
            generated[i].sqls[0], generated[i].verdicts[0] = fixed[i].sql, verdict
    rows = [
        {
            "question_id": str(e.question_id),
            "db_id": e.db_id,
            "question": e.question,
            "gold": e.sql,
            "pred": g.sqls[0],
            "correct": bool(g.verdicts[0].correct),
            "error": g.verdicts[0].error,
            **({"first_pred": f} if repair_rounds else {}),
        }
        for e, g, f in zip(examples, generated, first, strict=True)
    ]
    if output is not None:
        from sense_hub.records import write_jsonl

        write_jsonl(Path(output), rows)
    summary = summarize([g.verdicts[0] for g in generated], metric=metric)
    summary["budget"] = "greedy+repair" if repair_rounds else "greedy"
    return rows, summary


def execution_accuracy(verdicts: Sequence[Verdict]) -> float:
    """The fraction of correct verdicts (0.0 for none)."""
    return sum(v.correct for v in verdicts) / len(verdicts) if verdicts else 0.0


def summarize(verdicts: Sequence[Verdict], *, metric: str) -> dict:
    """The JSON summary `sense-hub eval` prints: counts, accuracy and error kinds.

    `execution_accuracy_existing_db` leaves out the items whose database is missing (e.g. Spider dev's
    `wta_1`), which is how published Spider numbers are usually counted on partial downloads.
    """
    n = len(verdicts)
    correct = sum(v.correct for v in verdicts)
    errors = Counter(v.error for v in verdicts if v.error is not None)
    with_db = n - errors.get("missing_db", 0)
    return {
        "metric": metric,
        "n": n,
        "correct": correct,
        "execution_accuracy": round(correct / n, 4) if n else 0.0,
        "n_existing_db": with_db,
        "execution_accuracy_existing_db": round(correct / with_db, 4) if with_db else 0.0,
        "errors": dict(sorted(errors.items())),
    }


# ---------------------------------------------------------------------------------------------------------------
# Input files
# ---------------------------------------------------------------------------------------------------------------


def _decode_lines(path: Path) -> list[str]:
    try:
        data = path.read_bytes()
    except FileNotFoundError as e:
        raise InputError(f"file not found: {path}") from e
    except OSError as e:
        raise InputError(f"cannot read {path}: {e}") from e
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    out = []
    for n, raw in enumerate(lines, 1):
        raw = raw.removesuffix(b"\r")
        try:
            out.append(raw.decode("utf-8"))
        except UnicodeDecodeError as e:
            logger.warning("%s line %d is not valid UTF-8 (%s); undecodable bytes replaced with U+FFFD", path, n, e)
            out.append(raw.decode("utf-8", errors="replace"))
    return out


def _looks_like_jsonl(path: Path, lines: list[str]) -> bool:
    if path.suffix.lower() in (".jsonl", ".json", ".ndjson"):
        return True
    for line in lines:
        if line.strip():
            return line.lstrip().startswith("{")
    return False


def read_predictions(predictions: str | Path, *, gold: str | Path | None = None) -> list[dict]:
    """Read a predictions file into records with `db_id`, `gold`, `pred` (JSONL fields carried through).

    A line that cannot be used becomes a record with `"error": "bad_input"`, its `line` number and a
    `message`; it is reported, not fatal.

    Args:
        predictions: JSONL with `db_id`, `gold`, `pred`, or a text file with one predicted SQL per line.
        gold: for a text predictions file, the gold file (`SQL<TAB>db_id` per line).

    Raises:
        InputError: a file is missing, or a text predictions file comes without `gold` or has another line count.
    """
    path = Path(predictions)
    lines = _decode_lines(path)
    if _looks_like_jsonl(path, lines):
        if gold is not None:
            logger.warning("%s is JSONL: its own `gold` fields are used and the --gold file is ignored", path)
        records = []
        for n, line in enumerate(lines, 1):
            if not line.strip():
                continue
            where = f"{path} line {n}"
            try:
                record = loads(line)
            except json.JSONDecodeError as e:
                records.append(_bad(n, f"{where}: not valid JSON ({e})"))
                continue
            if not isinstance(record, dict):
                records.append(_bad(n, f"{where}: expected a JSON object, got {type(record).__name__}"))
                continue
            missing = [k for k in ("db_id", "gold", "pred") if not isinstance(record.get(k), str)]
            if missing:
                record.update(_bad(n, f"{where}: field(s) {missing} missing or not a string (need db_id, gold, pred)"))
            records.append(record)
        return records
    if gold is None:
        raise InputError(
            f"{path} is a text predictions file (one SQL per line): pass --gold with `SQL<TAB>db_id` per line, "
            "or give JSONL with db_id, gold and pred fields"
        )
    gold_path = Path(gold)
    gold_lines = _decode_lines(gold_path)
    if len(gold_lines) != len(lines):
        raise InputError(
            f"{path} has {len(lines)} lines but {gold_path} has {len(gold_lines)}: they must pair up line by line"
        )
    records = []
    for n, (pred_line, gold_line) in enumerate(zip(lines, gold_lines, strict=True), 1):
        pred_sql = pred_line.strip().split("\t")[0]
        fields = gold_line.strip().split("\t")
        if len(fields) < 2 or not fields[-1].strip():
            record = {"db_id": "", "gold": gold_line.strip(), "pred": pred_sql}
            record.update(_bad(n, f"{gold_path} line {n}: expected `SQL<TAB>db_id`"))
            records.append(record)
            continue
        records.append({"db_id": fields[-1].strip(), "gold": fields[0], "pred": pred_sql})
    return records


def _db_file(root: Path, db_id: str) -> str:
    if not db_id or "/" in db_id or "\\" in db_id or db_id in (".", ".."):
        return f"{root}/<invalid db_id {db_id!r}>"  # reported as missing_db
    return f"{root}/{db_id}/{db_id}.sqlite"


def _bad(line: int, message: str) -> dict:
    logger.warning(message)
    return {"line": line, "error": "bad_input", "message": message}


def evaluate_records(
    records: list[dict],
    *,
    db_root: str | Path,
    metric: str = "spider",
    keep_distinct: bool = False,
    timeout: float = 30.0,
    workers: int | None = None,
    progress: bool = False,
) -> tuple[list[dict], list[Verdict]]:
    """Judge records from `read_predictions` and return them with `correct` and `error` set, plus the verdicts.

    Records marked `bad_input` are not executed; their verdict is `error="bad_input"`.

    Raises:
        DatabaseError: `db_root` holds no database at all (no `<db_id>/<db_id>.sqlite`), so every item would be
            `missing_db`.
    """
    root = Path(db_root)
    if records and not list_databases(root):
        raise DatabaseError(
            f"no databases under {root}: --db-root must hold <db_id>/<db_id>.sqlite folders "
            "(Spider: spider/database, BIRD: dev_databases)"
        )
    todo = [i for i, r in enumerate(records) if r.get("error") != "bad_input" or "message" not in r]
    items = [(_db_file(root, records[i]["db_id"]), records[i]["gold"], records[i]["pred"]) for i in todo]
    judged = judge(
        items, metric=metric, keep_distinct=keep_distinct, timeout=timeout, workers=workers, progress=progress
    )
    verdicts = [Verdict(correct=False, error="bad_input", message=r.get("message", "")) for r in records]
    for i, v in zip(todo, judged, strict=True):
        verdicts[i] = v
    out = []
    for record, v in zip(records, verdicts, strict=True):
        row = dict(record)
        row["correct"] = v.correct
        row["error"] = v.error
        if v.error is not None and v.message:
            row["message"] = v.message
        out.append(row)
    return out, verdicts


# ---------------------------------------------------------------------------------------------------------------
# Fingerprints of what a score was computed on (`sense_hub.fingerprints`)
# ---------------------------------------------------------------------------------------------------------------


def database_files(records: Sequence[dict], *, db_root: str | Path) -> tuple[list[Path], list[str]]:
    """The database files scoring `records` can execute on, and the names (relative to `db_root`) they refer to.

    The files are each record's `<db_id>/<db_id>.sqlite` that exists plus every other `*.sqlite` in its folder
    (the test-suite databases `judge` also checks); the names include the missing ones.
    """
    root = Path(db_root)
    files: set[Path] = set()
    referenced: set[str] = set()
    for db_id in sorted({r.get("db_id") for r in records if isinstance(r.get("db_id"), str)}):
        path = Path(_db_file(root, db_id))
        if "<invalid" in path.name:
            continue
        referenced.add(path.relative_to(root).as_posix())
        if path.is_file():
            files.update(sibling_databases(path))
    return sorted(files), sorted(referenced)


def input_fingerprints(
    records: Sequence[dict],
    *,
    db_root: str | Path,
    predictions: str | Path | None,
    cache=None,
) -> tuple[dict, list[str]]:
    """The `fingerprints` block of the eval summary, and the database names the records refer to.

    Args:
        records: from `read_predictions` (`db_id` and `gold` are read), or the questions a score was computed on.
        db_root: the `--db-root` folder.
        predictions: the predictions file (its bytes are hashed); None for a score computed in-process (the
            quickstart's and SPFT's held-out scores): the block then has no `predictions` entry.
        cache: a `fingerprints.FingerprintCache` (default: the on-disk cache).

    Returns:
        `({"algorithm", "databases", "databases_combined", "predictions", "gold"}, referenced names)`.
    """
    from sense_hub import fingerprints

    cache = cache if cache is not None else fingerprints.FingerprintCache()
    files, referenced = database_files(records, db_root=db_root)
    databases = fingerprints.database_fingerprints(files, root=db_root, cache=cache)
    block = {
        "algorithm": fingerprints.ALGORITHM,
        "databases": databases,
        "databases_combined": fingerprints.combined_digest(databases),
        **({"predictions": cache.sha256(predictions)} if predictions is not None else {}),
        "gold": fingerprints.gold_digest((str(r.get("db_id", "")), str(r.get("gold", ""))) for r in records),
    }
    cache.save()
    return block, referenced
