"""Strong synthesis (SENSE): a strong model invents a new domain, its schema and rows, a question and its SQL at a
difficulty level; the schema is materialized in a new SQLite database (only CREATE TABLE / INDEX and INSERT are
allowed), and the reply is kept when its SQL parses and executes with a non-empty result."""

from __future__ import annotations

import logging
import random
import re
import shutil
import sqlite3
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sense_hub.errors import MissingFileError, RecordError, UsageError
from sense_hub.execution import dedup_key
from sense_hub.formats import validate_record
from sense_hub.records import read_jsonl
from sense_hub.synthesis.output import normalize_question, open_appenders, resume_output
from sense_hub.synthesis.statistics import DIFFICULTIES, SynthesisStats

if TYPE_CHECKING:
    from sense_hub.generation import Generator

__all__ = [
    "DIFFICULTY_GUIDE",
    "DOMAIN_HINTS",
    "OVER_REPRESENTED_DOMAINS",
    "StrongSample",
    "materialize_database",
    "parse_strong_output",
    "split_statements",
    "strong_prompt",
    "synthesize_strong",
]

logger = logging.getLogger(__name__)

DIFFICULTY_GUIDE = {
    "easy": "EASY: the SQL reads one table, with at most a simple WHERE filter, ORDER BY or a single aggregate.",
    "medium": "MEDIUM: the SQL joins two or more tables, or uses GROUP BY with aggregation.",
    "hard": (
        "HARD: the SQL combines several advanced features: nested subqueries, set operations "
        "(UNION / INTERSECT / EXCEPT), GROUP BY with HAVING, window functions, or multi-table joins with aggregation."
    ),
}

OVER_REPRESENTED_DOMAINS = ("education", "healthcare", "airlines", "entertainment")

DOMAIN_HINTS = (
    "urban beekeeping", "freight rail logistics", "municipal water utilities", "semiconductor fabrication",
    "wildlife conservation", "vineyard management", "maritime shipping", "public library lending",
    "renewable energy plants", "esports tournaments", "coffee roasting", "archaeological excavations",
    "space satellite operations", "ride sharing", "insurance claims", "community gardens", "bike rental",
    "textile manufacturing", "volcano monitoring", "pharmacy inventory", "real estate auctions",
    "fisheries", "theater costume rentals", "software bug tracking", "recycling centers", "weather stations",
    "museum conservation labs", "craft breweries", "marathon events", "car repair shops", "food trucks",
    "seed banks", "elevator maintenance", "podcast networks", "mountain rescue", "tea plantations",
    "cargo drones", "parking enforcement", "bakery chains", "ocean research vessels", "wind farms",
    "pet adoption", "chess clubs", "print shops", "ski resorts", "organic farming co-ops", "data centers",
    "court case scheduling", "toy manufacturing", "perfume making", "tax filing", "bridge inspections",
)  # fmt: skip

_LABELS = {
    "domain": "domain",
    "schema": "schema",
    "ddl": "schema",
    "rows": "rows",
    "data": "rows",
    "insert": "rows",
    "inserts": "rows",
    "question": "question",
    "sql": "sql",
    "query": "sql",
}
_LABEL_RE = re.compile(
    r"^[ \t>#*_-]*(domain|schema|ddl|rows|data|inserts?|question|sql|query)\b[^:\n]{0,24}?[*_ ]*:[*_ ]*",
    re.IGNORECASE | re.MULTILINE,
)
_FENCE_RE = re.compile(r"```[^\n]*\n(.*?)(?:```|\Z)", re.DOTALL)
_ALL_FENCES_RE = re.compile(r"```[^\n]*\n(.*?)```", re.DOTALL)


STRONG_SYSTEM = (
    "You are an expert database designer and SQL writer. You invent realistic SQLite databases for new "
    "domains, together with a question a user would ask and the SQLite query that answers it."
)

STRONG_FORMAT = """Answer in exactly this format:

Domain: <the domain in two to four words>
Schema:
```sql
CREATE TABLE ... ;  -- two to five tables with PRIMARY KEY and FOREIGN KEY constraints
```
Rows:
```sql
INSERT INTO ... VALUES ... ;  -- a few rows per table, so the query below returns a non-empty result
```
Question: <one natural-language question>
SQL:
```sql
<one SQLite query that answers the question>
```"""


def _seed_block(seed_example: dict) -> str:
    parts = []
    if seed_example.get("domain"):
        parts.append(f"Domain: {seed_example['domain']}")
    if seed_example.get("schema"):
        parts.append(f"Schema:\n```sql\n{seed_example['schema'].strip()}\n```")
    parts.append(f"Question: {seed_example['question'].strip()}")
    parts.append(f"SQL:\n```sql\n{seed_example['sql'].strip()}\n```")
    return "\n".join(parts)


def strong_prompt(*, difficulty: str, seed_examples: Sequence[dict], domain_hint: str | None = None) -> list[dict]:
    """The prompt asking a strong model for ONE new example at `difficulty`, with seed examples as few-shot.

    Args:
        difficulty: "easy", "medium" or "hard" (see `DIFFICULTY_GUIDE`).
        seed_examples: examples to imitate (`question`, `sql`, and `schema`/`domain` when known).
        domain_hint: a suggested domain, to spread the data over many domains.

    Raises:
        ValueError: an unknown difficulty.
    """
    if difficulty not in DIFFICULTY_GUIDE:
        raise ValueError(f"unknown difficulty {difficulty!r}; choose one of {list(DIFFICULTY_GUIDE)}")
    shots = "\n\n".join(f"Example {i}:\n{_seed_block(s)}" for i, s in enumerate(seed_examples, 1))
    avoid = ", ".join(OVER_REPRESENTED_DOMAINS)
    hint = f" For example: {domain_hint}." if domain_hint else ""
    user = (
        f"Here are examples of text-to-SQL data:\n\n{shots}\n\n"
        f"Create ONE new example in a different domain. Avoid the over-represented domains ({avoid}); "
        f"pick something less common.{hint}\n"
        f"Difficulty: {DIFFICULTY_GUIDE[difficulty]}\n\n{STRONG_FORMAT}"
    )
    return [{"role": "system", "content": STRONG_SYSTEM}, {"role": "user", "content": user}]


@dataclass
class StrongSample:
    """The sections of a strong model's reply (missing ones are "")."""

    domain: str = ""
    schema: str = ""
    rows: str = ""
    question: str = ""
    sql: str = ""

    def missing(self) -> list[str]:
        return [name for name in ("domain", "schema", "question", "sql") if not getattr(self, name).strip()]


def _section_body(text: str) -> str:
    fence = _FENCE_RE.search(text)
    body = fence.group(1) if fence else text
    return body.strip()


def parse_strong_output(text: str) -> StrongSample:
    """Split a strong model's reply into domain, schema DDL, rows, question and SQL.

    Labels may be decorated (`**Domain:**`, `### SQL query:`), sections may or may not be fenced; when labels
    are missing, fenced blocks are recognised by content (CREATE TABLE, INSERT, SELECT).
    """
    sample = StrongSample()
    marks = [(m.start(), m.end(), _LABELS[m.group(1).lower()]) for m in _LABEL_RE.finditer(text)]
    for k, (_start, end, name) in enumerate(marks):
        stop = marks[k + 1][0] if k + 1 < len(marks) else len(text)
        body = text[end:stop]
        if getattr(sample, name):
            continue  # the first occurrence wins
        if name in ("domain", "question"):
            line = next((ln.strip() for ln in body.strip().splitlines() if ln.strip()), "")
            setattr(sample, name, line.strip("*_` \"'"))
        else:
            setattr(sample, name, _section_body(body))
    if not (sample.schema and sample.sql):  # unlabeled fences: recognise them by what they hold
        for block in _ALL_FENCES_RE.findall(text):
            head = block.lstrip().upper()
            if head.startswith("CREATE") and not sample.schema:
                sample.schema = block.strip()
            elif head.startswith("INSERT") and not sample.rows:
                sample.rows = block.strip()
            elif head.startswith(("SELECT", "WITH")):
                sample.sql = sample.sql or block.strip()
    if sample.schema and not sample.rows and re.search(r"^\s*INSERT\b", sample.schema, re.I | re.M):
        sample.rows = sample.schema  # rows inside the schema block: materialize splits them by statement
    sample.sql = sample.sql.strip().rstrip(";").strip()
    return sample


def split_statements(script: str) -> list[str]:
    """Split SQL text into complete statements (quotes and comments respected via `sqlite3.complete_statement`)."""
    statements, buffer = [], ""
    for piece in script.split(";"):
        buffer += piece + ";"
        if sqlite3.complete_statement(buffer):
            statement = buffer.strip().rstrip(";").strip()
            if re.sub(r"--[^\n]*|/\*.*?\*/", "", statement, flags=re.S).strip():
                statements.append(statement)
            buffer = ""
    tail = buffer.rstrip(";").strip()
    if re.sub(r"--[^\n]*|/\*.*?\*/", "", tail, flags=re.S).strip():
        statements.append(tail)
    return statements


_DDL_ACTIONS = {
    sqlite3.SQLITE_CREATE_TABLE,
    sqlite3.SQLITE_CREATE_INDEX,
    sqlite3.SQLITE_INSERT,
    sqlite3.SQLITE_UPDATE,  # sqlite_master bookkeeping during CREATE
    sqlite3.SQLITE_READ,
    sqlite3.SQLITE_SELECT,
    sqlite3.SQLITE_TRANSACTION,
    sqlite3.SQLITE_REINDEX,
}


def _ddl_authorizer(action: int, arg1, arg2, db_name, trigger) -> int:
    if action == sqlite3.SQLITE_FUNCTION:
        return sqlite3.SQLITE_DENY if (arg2 or "").lower() == "load_extension" else sqlite3.SQLITE_OK
    return sqlite3.SQLITE_OK if action in _DDL_ACTIONS else sqlite3.SQLITE_DENY


class _Rejected(Exception):
    def __init__(self, reason: str, message: str = ""):
        super().__init__(message)
        self.reason, self.message = reason, message


def materialize_database(*, schema: str, rows: str, path: Path, timeout: float = 10.0) -> tuple[str, int]:
    """Create a SQLite database from model-written DDL and INSERTs (untrusted: only CREATE TABLE/INDEX and INSERT).

    Args:
        schema: CREATE TABLE (and CREATE INDEX) statements.
        rows: INSERT statements ("" for none); an INSERT that fails is skipped.
        path: the `.sqlite` file to create (replaced if it exists).
        timeout: seconds allowed for the whole script.

    Returns:
        `(ddl, inserted)`: the CREATE statements that were run, joined, and how many INSERT statements succeeded.

    Raises:
        _Rejected: "invalid_ddl" (no CREATE TABLE, another kind of statement, or a statement SQLite refuses) or
        "invalid_rows" (INSERTs were given and none of them worked).
    """
    ddl = [s for s in split_statements(schema) if not re.match(r"\s*INSERT\b", s, re.I)]
    inserts = [s for s in split_statements(rows) if re.match(r"\s*INSERT\b", s, re.I)] if rows else []
    if not any(re.match(r"\s*CREATE\s+TABLE\b", s, re.I) for s in ddl):
        raise _Rejected("invalid_ddl", "no CREATE TABLE statement in the schema")
    for statement in ddl:
        if not re.match(r"\s*CREATE\s+(?:UNIQUE\s+)?(?:TABLE|INDEX)\b", statement, re.I):
            raise _Rejected("invalid_ddl", f"only CREATE TABLE / CREATE INDEX are allowed: {statement[:80]!r}")
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        path.unlink()
    con = sqlite3.connect(path)
    deadline = time.monotonic() + timeout
    con.set_progress_handler(lambda: 1 if time.monotonic() > deadline else 0, 10_000)
    con.set_authorizer(_ddl_authorizer)
    inserted = 0
    try:
        for statement in ddl:
            try:
                con.execute(statement)
            except sqlite3.Error as error:
                raise _Rejected("invalid_ddl", f"{error} in {statement[:120]!r}") from error
        for statement in inserts:
            try:
                con.execute(statement)
                inserted += 1
            except sqlite3.Error as error:
                logger.debug("skipping an INSERT that fails (%s): %s", error, statement[:120])
        con.commit()
    finally:
        con.close()
    if inserts and not inserted:
        raise _Rejected("invalid_rows", f"none of the {len(inserts)} INSERT statements worked")
    return ";\n".join(ddl) + ";", inserted


def _slug(text: str, *, limit: int = 32) -> str:
    slug = re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")
    return slug[:limit].strip("_") or "domain"


def _load_seeds(seeds: Sequence[dict] | str | Path) -> list[dict]:
    if isinstance(seeds, (str, Path)):
        path = Path(seeds)
        if not path.is_file():
            raise MissingFileError(f"seed file {path} not found; pass a JSONL with `question` and `sql` per line")
        seeds = read_jsonl(path)
    out = []
    for i, s in enumerate(seeds, 1):
        if not isinstance(s, dict) or not s.get("question") or not s.get("sql"):
            raise RecordError(f"seed example {i} needs non-empty `question` and `sql` fields, got {str(s)[:120]}")
        out.append(s)
    if not out:
        raise RecordError("strong synthesis needs at least one seed example (`question`, `sql`)")
    return out


def synthesize_strong(
    generator: Generator,
    *,
    seeds: Sequence[dict] | str | Path,
    output: str | Path,
    db_out_root: str | Path,
    n: int,
    seed: int = 0,
    difficulties: Sequence[str] = DIFFICULTIES,
    temperature: float = 0.8,
    max_new_tokens: int = 1500,
    batch_size: int = 8,
    allow_empty: bool = False,
    stats: SynthesisStats | None = None,
) -> list[dict]:
    """Ask a strong model for `n` new examples (new domain, schema, rows, question, SQL); keep the ones that check.

    Request `i` asks for difficulty `difficulties[i % len(difficulties)]` with two seed examples and a domain
    hint drawn from a random generator seeded by `(seed, i)`, so a resumed run asks the same things. A reply is
    kept when every section is there, the DDL materializes, the SQL parses and executes with a non-empty
    result, and neither its normalized SQL nor its question was seen before. A rejected reply goes to
    `<output stem>.rejected.jsonl` with its reason: missing_section, invalid_ddl, invalid_rows, sql_parse_error,
    sql_exec_error, empty_result, duplicate_sql, duplicate_question, generation_error.

    Args:
        generator: the strong model (any `generation.Generator`; an OpenAI-compatible endpoint is typical).
        seeds: few-shot examples (dicts with `question`, `sql`, optionally `schema`, `domain`) or a JSONL path.
        output: the JSONL file of strong records (requests already answered there or in the rejected file are
            skipped on resume).
        db_out_root: where the new databases go (`<db_out_root>/<db_id>/<db_id>.sqlite`).
        n: how many requests to make (each asks for one example; kept examples are at most `n`).
        seed: the random seed.
        difficulties: the levels to cycle through.
        temperature: sampling temperature of the strong model.
        max_new_tokens: the reply budget.
        batch_size: requests sent together (the backend's concurrency decides how many run at once).
        allow_empty: keep SQL whose result is empty.
        stats: filled with the cost and yield of this run when given.

    Returns:
        All strong records in `output`.

    Raises:
        RecordError: no usable seed examples (a ValueError).
        UsageError: an unknown difficulty (a ValueError).
        MissingFileError: the seed file does not exist (a FileNotFoundError).
    """
    from sense_hub.execution import execute
    from sense_hub.generation import GenerationConfig

    seed_examples = _load_seeds(seeds)
    for level in difficulties:
        if level not in DIFFICULTY_GUIDE:
            raise UsageError(f"unknown difficulty {level!r}; choose from {list(DIFFICULTY_GUIDE)}")
    stats = stats if stats is not None else SynthesisStats()
    stats.strategy = "strong"
    started = time.perf_counter()
    output, db_out_root = Path(output), Path(db_out_root)
    resumed = resume_output(output)
    kept_records, done, seen_sql, seen_q = resumed.records, resumed.done, resumed.seen_sql, resumed.seen_questions
    stats.resumed = len(kept_records)

    todo = []
    for i in range(n):
        if f"strong-{i:06d}" in done:
            continue
        rng = random.Random(f"{seed}-{i}")
        difficulty = difficulties[i % len(difficulties)]
        shots = rng.sample(seed_examples, min(2, len(seed_examples)))
        hint = rng.choice(DOMAIN_HINTS)
        todo.append((i, difficulty, strong_prompt(difficulty=difficulty, seed_examples=shots, domain_hint=hint)))
    logger.info("strong synthesis: %d requests to make (%d answered before)", len(todo), n - len(todo))

    from tqdm.auto import tqdm

    bar = tqdm(total=len(todo), desc="strong", unit="example", file=sys.stderr, disable=None)
    out, rej = open_appenders(output)
    with out, rej:
        for start in range(0, len(todo), batch_size):
            batch = todo[start : start + batch_size]
            prompts = [p for _, _, p in batch]
            config = GenerationConfig(n=1, temperature=temperature, max_new_tokens=max_new_tokens, seed=seed + start)
            try:
                outputs = generator.generate(prompts, config)
                stats.count_call(prompts, outputs)
            except Exception as error:  # a backend failure loses this batch, not the run  # noqa: BLE001
                logger.warning("generation failed for requests %d..%d: %s", batch[0][0], batch[-1][0], error)
                for i, difficulty, _ in batch:
                    stats.rejected["generation_error"] += 1
                    rej.write({"id": f"strong-{i:06d}", "reason": "generation_error", "message": str(error)[:500],
                               "difficulty": difficulty, "raw": ""})  # fmt: skip
                bar.update(len(batch))
                continue
            for (i, difficulty, _), texts in zip(batch, outputs, strict=True):
                record_id = f"strong-{i:06d}"
                text = texts[0] if texts else ""
                try:
                    record = _check_strong(
                        text, record_id=record_id, index=i, difficulty=difficulty, db_out_root=db_out_root,
                        seen_sql=seen_sql, seen_q=seen_q, generator_name=_model_name(generator), allow_empty=allow_empty,
                        execute=execute,
                    )  # fmt: skip
                except _Rejected as rejection:
                    stats.rejected[rejection.reason] += 1
                    rej.write({"id": record_id, "reason": rejection.reason, "message": rejection.message[:500],
                               "difficulty": difficulty, "raw": text[:4000]})  # fmt: skip
                    bar.update(1)
                    continue
                out.write(record)
                resumed.keep(record)
                stats.kept += 1
                stats.verification[record["verification"]] += 1
                stats.family(difficulty)["kept"] += 1
                bar.update(1)
    bar.close()
    stats.elapsed += time.perf_counter() - started
    logger.info("%s", stats.table())
    return kept_records


def _model_name(generator) -> str:
    """The served model's name when the backend has one (an endpoint's URL says little), else the generator's."""
    model = getattr(generator, "model", None)
    return model if isinstance(model, str) and model else generator.name


def _check_strong(
    text: str,
    *,
    record_id: str,
    index: int,
    difficulty: str,
    db_out_root: Path,
    seen_sql: set[str],
    seen_q: set[str],
    generator_name: str,
    allow_empty: bool,
    execute,
) -> dict:
    import sqlglot
    from sqlglot.errors import SqlglotError

    sample = parse_strong_output(text)
    missing = sample.missing()
    if missing:
        raise _Rejected("missing_section", f"missing {', '.join(missing)}")
    try:
        parsed = sqlglot.parse(sample.sql, read="sqlite")
    except (SqlglotError, ValueError, RecursionError) as error:
        raise _Rejected("sql_parse_error", str(error)[:300]) from error
    if len([p for p in parsed if p is not None]) != 1:
        raise _Rejected("sql_parse_error", "the SQL section must hold exactly one statement")
    if dedup_key(sample.sql) in seen_sql:
        raise _Rejected("duplicate_sql", sample.sql[:200])
    if normalize_question(sample.question) in seen_q:
        raise _Rejected("duplicate_question", sample.question[:200])
    db_id = f"{_slug(sample.domain)}_{index:06d}"
    db_dir = db_out_root / db_id
    db_path = db_dir / f"{db_id}.sqlite"
    try:
        ddl, _ = materialize_database(schema=sample.schema, rows=sample.rows, path=db_path)
        result = execute(db_path, sample.sql, timeout=10.0)
        if not result.ok:
            raise _Rejected("sql_exec_error", f"{result.error}: {result.message}"[:300])
        if not allow_empty and (not result.rows or all(v is None for row in result.rows for v in row)):
            raise _Rejected("empty_result", "the SQL returns no rows (or only NULL) on the model's data")
    except _Rejected:
        shutil.rmtree(db_dir, ignore_errors=True)
        raise
    record = {
        "id": record_id,
        "domain": sample.domain,
        "difficulty": difficulty,
        "db_id": db_id,
        "schema": ddl,
        "question": sample.question,
        "sql": sample.sql,
        "evidence": "",
        "generator": f"strong:{generator_name}",
        "verification": "executed",
    }
    return validate_record("strong", record, where=f"strong record {record_id}")
