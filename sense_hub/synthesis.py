"""Strong data: LLM-synthesized domains (SENSE) and template-based, execution-verified SQL (SPFT-SQL).

Two generators write the same *strong* records (`formats.STRONG_COLUMNS`):

- `synthesize_strong`: a strong model invents a new domain, its schema (and a few rows), a question and its
  SQL at a difficulty level, with two seed examples as few-shot. The schema is materialized in a new SQLite
  database (`<db_out_root>/<db_id>/<db_id>.sqlite`), the SQL must parse (sqlglot) and execute with a non-empty
  result, and duplicates (by normalized SQL, by question) are dropped. Every rejected sample keeps its reason.
- `synthesize_templates`: SQL filled from templates over real databases (`sense_hub.sql_templates`), a
  SQL-to-text model writes the question, and a text-to-SQL model (the verifier) answers it; a pair is kept
  when the two SQL queries give the same result. Rejected pairs are re-asked with feedback in the next round;
  the last round uses a rule-based question rendered from the template itself. Each record says who wrote the
  question (`generator`) and what checked it (`verification`).

Both append to a JSONL file one line at a time (rejections go to `<output stem>.rejected.jsonl`), so an
interrupted run resumes where it stopped, and both fill a `SynthesisStats` with calls, approximate tokens,
kept and rejected examples by reason.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import re
import shutil
import sqlite3
import sys
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sense_hub.formats import validate_record
from sense_hub.sql_templates import (
    Candidate,
    DatabaseProfile,
    generate_candidates,
    normalize_sql,
    profile_database,
)

logger = logging.getLogger(__name__)

DIFFICULTIES = ("easy", "medium", "hard")

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


# ---------------------------------------------------------------------------------------------------------------
# Cost and yield
# ---------------------------------------------------------------------------------------------------------------


@dataclass
class SynthesisStats:
    """Cost and yield of one synthesis run (tokens are approximate: characters / 4)."""

    strategy: str = ""
    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    kept: int = 0
    resumed: int = 0
    unfinished: int = 0
    rejected: Counter = field(default_factory=Counter)
    families: dict[str, Counter] = field(default_factory=dict)
    verification: Counter = field(default_factory=Counter)
    elapsed: float = 0.0

    def count_call(self, prompts: Sequence[list[dict]], outputs: Sequence[Sequence[str]]) -> None:
        self.calls += sum(len(o) for o in outputs)
        self.prompt_tokens += sum(_approx_tokens(m["content"]) for p in prompts for m in p)
        self.completion_tokens += sum(_approx_tokens(t) for o in outputs for t in o)

    def family(self, name: str) -> Counter:
        return self.families.setdefault(name, Counter())

    def as_dict(self) -> dict[str, Any]:
        return {
            "strategy": self.strategy,
            "calls": self.calls,
            "approx_prompt_tokens": self.prompt_tokens,
            "approx_completion_tokens": self.completion_tokens,
            "kept": self.kept,
            "resumed": self.resumed,
            "unfinished": self.unfinished,
            "rejected": dict(self.rejected),
            "verification": dict(self.verification),
            "families": {k: dict(v) for k, v in sorted(self.families.items())},
            "elapsed_s": round(self.elapsed, 1),
        }

    def table(self) -> str:
        """A plain-text table of the run, for logs and the CLI."""
        lines = [
            f"synthesis ({self.strategy}): kept {self.kept} new (+{self.resumed} from a previous run), "
            f"rejected {sum(self.rejected.values())}, {self.calls} model calls, "
            f"~{self.prompt_tokens} prompt + ~{self.completion_tokens} completion tokens, {self.elapsed:.1f} s",
        ]
        if self.rejected:
            lines.append("rejected by reason: " + ", ".join(f"{k} {v}" for k, v in self.rejected.most_common()))
        if self.verification:
            lines.append("kept by verification: " + ", ".join(f"{k} {v}" for k, v in self.verification.most_common()))
        if self.families:
            keys = sorted({k for c in self.families.values() for k in c})
            lines.append(f"{'family':<20}" + "".join(f"{k:>12}" for k in keys))
            for name, counter in sorted(self.families.items()):
                lines.append(f"{name:<20}" + "".join(f"{counter.get(k, 0):>12}" for k in keys))
        return "\n".join(lines)


def _approx_tokens(text: str) -> int:
    return (len(text) + 3) // 4


# ---------------------------------------------------------------------------------------------------------------
# Resumable JSONL
# ---------------------------------------------------------------------------------------------------------------


def rejected_path(output: Path) -> Path:
    """Where the rejected samples of `output` go: `<stem>.rejected.jsonl` next to it."""
    return output.with_name(f"{output.stem}.rejected.jsonl")


def _read_jsonl(path: Path) -> list[dict]:
    """Complete lines of a JSONL file; a torn last line (an interrupted write) is cut off the file."""
    if not path.exists():
        return []
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        cut = data.rfind(b"\n") + 1
        logger.warning("%s: dropping an incomplete last line left by an interrupted run", path)
        with path.open("r+b") as f:
            f.truncate(cut)
        data = data[:cut]
    records = []
    for number, line in enumerate(data.decode("utf-8").splitlines(), 1):
        if line.strip():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise ValueError(f"{path} line {number}: not JSON ({e}); fix or remove that line") from e
    return records


class _Appender:
    """Appends one JSON object per line; each line goes out in one write, flushed and fsynced."""

    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        _read_jsonl(path)  # repair a torn last line before appending
        self._file = path.open("a", encoding="utf-8")

    def write(self, record: dict) -> None:
        self._file.write(json.dumps(record, ensure_ascii=False) + "\n")
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self) -> None:
        self._file.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def normalize_question(question: str) -> str:
    """Lower case, letters and digits only, single spaces (for question deduplication)."""
    return " ".join(re.findall(r"[a-z0-9]+", question.lower()))


# ---------------------------------------------------------------------------------------------------------------
# SQL components, difficulty and dataset statistics
# ---------------------------------------------------------------------------------------------------------------

COMPONENTS = ("joins", "aggregates", "group_by", "having", "order_by", "limit", "nesting", "set_ops", "window")


def sql_components(sql: str) -> dict[str, int]:
    """Count the SQL components of a query (sqlglot, SQLite dialect).

    Returns:
        `{"tables", "joins", "aggregates", "group_by", "having", "order_by", "limit", "nesting", "set_ops",
        "window", "conditions", "parsed"}`; `parsed` is 0 when sqlglot cannot read the query (then the rest is 0).
    """
    import sqlglot
    from sqlglot import exp
    from sqlglot.errors import SqlglotError

    empty = dict.fromkeys(("tables", *COMPONENTS, "conditions", "parsed"), 0)
    try:
        tree = sqlglot.parse_one(sql, read="sqlite")
    except (SqlglotError, ValueError, RecursionError):
        return empty
    if tree is None:
        return empty
    selects = list(tree.find_all(exp.Select))
    set_ops = list(tree.find_all(exp.Union, exp.Intersect, exp.Except))
    tables = {t.name.lower() for t in tree.find_all(exp.Table)}
    conditions = sum(1 for _ in tree.find_all(exp.Where)) + sum(
        1 for w in tree.find_all(exp.Where) for _ in w.find_all(exp.And, exp.Or)
    )
    return {
        "tables": len(tables),
        "joins": sum(1 for _ in tree.find_all(exp.Join)),
        "aggregates": sum(1 for _ in tree.find_all(exp.AggFunc)),
        "group_by": sum(1 for _ in tree.find_all(exp.Group)),
        "having": sum(1 for _ in tree.find_all(exp.Having)),
        "order_by": sum(1 for _ in tree.find_all(exp.Order)),
        "limit": sum(1 for _ in tree.find_all(exp.Limit)),
        "nesting": max(0, len(selects) - 1 - len(set_ops)),
        "set_ops": len(set_ops),
        "window": sum(1 for _ in tree.find_all(exp.Window)),
        "conditions": conditions,
        "parsed": 1,
    }


def classify_difficulty(sql: str) -> str:
    """easy / medium / hard from the SQL's components (in the spirit of Spider's hardness levels).

    easy: one table, at most one condition, no grouping or nesting; hard: nesting, set operations, window
    functions, HAVING, or four and more components together; medium: the rest.
    """
    c = sql_components(sql)
    if c["nesting"] or c["set_ops"] or c["window"]:
        return "hard"
    score = (
        c["joins"]
        + min(c["aggregates"], 1)
        + c["group_by"]
        + 2 * c["having"]
        + c["order_by"]
        + max(0, c["conditions"] - 1)
    )
    if score >= 4:
        return "hard"
    if c["tables"] <= 1 and not c["group_by"] and score <= 1:
        return "easy"
    return "medium"


def _family_of(record: dict) -> str:
    generator = record.get("generator", "")
    if generator.startswith("templates:"):
        return generator[len("templates:") :].split("+", 1)[0]
    return generator.split(":", 1)[0] or "unknown"


def synthesis_statistics(records: Iterable[dict]) -> dict[str, Any]:
    """Difficulty and diversity statistics of strong records, for the dataset card.

    Returns:
        `{"examples", "difficulty", "components" (examples using each component), "components_per_example"
        (histogram of how many distinct components an example uses), "tables_per_example", "joins_per_example",
        "domains", "databases", "families", "verification"}`; the histograms are `{value: count}` dicts.
    """
    records = list(records)
    difficulty: Counter = Counter()
    components: Counter = Counter()
    per_example: Counter = Counter()
    tables: Counter = Counter()
    joins: Counter = Counter()
    for r in records:
        c = sql_components(r["sql"])
        difficulty[r.get("difficulty") or classify_difficulty(r["sql"])] += 1
        used = [name for name in COMPONENTS if c[name]]
        components.update(used)
        per_example[len(used)] += 1
        tables[c["tables"]] += 1
        joins[c["joins"]] += 1
    return {
        "examples": len(records),
        "difficulty": {k: difficulty.get(k, 0) for k in DIFFICULTIES},
        "components": {k: components.get(k, 0) for k in COMPONENTS},
        "components_per_example": dict(sorted(per_example.items())),
        "tables_per_example": dict(sorted(tables.items())),
        "joins_per_example": dict(sorted(joins.items())),
        "domains": dict(Counter(r.get("domain", "") for r in records).most_common()),
        "databases": len({r.get("db_id") for r in records}),
        "families": dict(Counter(_family_of(r) for r in records).most_common()),
        "verification": dict(Counter(r.get("verification", "") for r in records).most_common()),
    }


def plot_statistics(stats: dict[str, Any], path: str | Path) -> Path:
    """Render `synthesis_statistics` as a PNG (four panels) for a dataset card.

    Args:
        stats: the dict from `synthesis_statistics`.
        path: the PNG file to write (parent folders are created).

    Returns:
        The path written.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(2, 2, figsize=(11, 7.5))
    panels = [
        (axes[0][0], stats["difficulty"], "difficulty", "#4c72b0"),
        (axes[0][1], stats["components"], "examples using each SQL component", "#55a868"),
        (axes[1][0], {str(k): v for k, v in stats["tables_per_example"].items()}, "tables per example", "#c44e52"),
        (axes[1][1], dict(list(stats["domains"].items())[:15]), "top domains", "#8172b2"),
    ]
    for ax, data, title, color in panels:
        names, values = list(map(str, data)), list(data.values())
        ax.bar(range(len(values)), values, color=color)
        ax.set_xticks(range(len(values)))
        ax.set_xticklabels(names, rotation=35 if len(names) > 4 else 0, ha="right" if len(names) > 4 else "center")
        ax.set_title(title)
    fig.suptitle(f"{stats['examples']} examples over {stats['databases']} databases")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


# ---------------------------------------------------------------------------------------------------------------
# Template synthesis (SPFT-SQL)
# ---------------------------------------------------------------------------------------------------------------

SQL_TO_TEXT_SYSTEM = (
    "You turn SQLite queries into the question a user would ask. Write one natural English question whose "
    "answer is exactly the result of the query. Mention every filter value and condition. Do not mention SQL, "
    "tables or columns by their code names when a plain word works. Reply with the question only."
)

SQL_TO_TEXT_EXAMPLES = (
    (
        "singer(singer_id, name, country, age)",
        "SELECT name FROM singer WHERE age > 40 AND country = 'France'",
        "What are the names of the singers from France who are older than 40?",
    ),
    (
        "pets(pet_id, pet_type, weight)",
        "SELECT pet_type, avg(weight) FROM pets GROUP BY pet_type HAVING count(*) >= 2",
        "For each type of pet that has at least two pets, what is the average weight?",
    ),
    (
        "country(code, name, continent); city(id, name, country_code, population)",
        "SELECT count(*) FROM city WHERE population BETWEEN 10000 AND 50000",
        "How many cities have a population between 10000 and 50000?",
    ),
)
"""Few-shot (tables, SQL, question) examples of the SQL-to-text prompt, given as earlier chat turns.

Measured on 57 template queries over the 19 Spider dev databases (3 each), verified by Qwen2.5-Coder-0.5B: one
inline example with a 0.5B writer 13/57 verified (it often copied the example's question); these three as chat
turns 16/57; the same prompt with Qwen2.5-Coder-1.5B as the writer 25/57. The writer's size matters most."""


def _compact_schema(db: DatabaseProfile, tables: Sequence[str]) -> str:
    lines = []
    for name in tables:
        table = db.tables.get(name)
        if table is not None:
            lines.append(f"{name}({', '.join(c.name for c in table.columns)})")
    return "; ".join(lines)


def sql_to_text_prompt(
    sql: str, *, tables: str, previous: str | None = None, feedback: str | None = None
) -> list[dict]:
    """The SQL-to-text prompt (a different task from `prompts.build_prompt`): write the question for `sql`.

    The few-shot examples (`SQL_TO_TEXT_EXAMPLES`) are earlier user/assistant turns, which small chat models follow
    more faithfully than examples inlined in one message.

    Args:
        sql: the query to describe.
        tables: the tables it reads, compactly (`singer(singer_id, name, age)`).
        previous: a question written before that failed verification (then `feedback` says why).
        feedback: what went wrong with `previous`.
    """
    messages = [{"role": "system", "content": SQL_TO_TEXT_SYSTEM}]
    for example_tables, example_sql, example_question in SQL_TO_TEXT_EXAMPLES:
        messages.append({"role": "user", "content": f"Tables: {example_tables}\nSQL: {example_sql}"})
        messages.append({"role": "assistant", "content": example_question})
    user = f"Tables: {tables}\nSQL: {sql}"
    if previous:
        user += (
            f"\nA previous question was: {previous}\nIt was misunderstood: {feedback or 'it does not match the SQL'}. "
            "Write a clearer question that states exactly what the SQL computes."
        )
    messages.append({"role": "user", "content": user})
    return messages


def parse_question(text: str) -> str | None:
    """The question in a SQL-to-text reply, or None when the reply is not a usable question."""
    text = re.sub(r"```.*?(```|\Z)", " ", text, flags=re.DOTALL)
    for line in text.splitlines():
        line = re.sub(r"^[\s>*#-]*(question\s*:)?\s*", "", line, flags=re.IGNORECASE).strip().strip('"').strip()
        if not line:
            continue
        if re.search(r"\bselect\b.*\bfrom\b", line, re.IGNORECASE) or len(line) < 10 or len(line) > 300:
            return None
        if not re.search(r"[A-Za-z]{3}", line):
            return None
        if line[-1] not in "?.":
            line += "?"
        return line
    return None


@dataclass
class _Item:
    id: str
    db: DatabaseProfile
    candidate: Candidate
    stages: list[str]
    stage: int = 0
    question: str | None = None
    writer: str = ""
    previous: str | None = None
    feedback: str | None = None
    reason: str = ""


def synthesize_templates(
    db_paths: Sequence[str | Path],
    *,
    generator,
    output: str | Path,
    per_database: int,
    verifier=None,
    rounds: int = 2,
    seed: int = 0,
    question_source: str = "auto",
    rule_fallback: bool = False,
    families: list[str] | None = None,
    metric: str = "spider",
    batch_size: int = 16,
    chunk_size: int = 64,
    max_new_tokens: int = 128,
    time_budget: float | None = None,
    schema_chars: int = 6000,
    stats: SynthesisStats | None = None,
) -> list[dict]:
    """Template-based, execution-verified (question, SQL) pairs over real databases; resumable.

    For every database, `per_database` distinct candidate queries are filled from the template families and
    checked by execution (non-empty, non-trivial result). Each then goes through question *stages*:

    - `question_source="model"` (the default with a verifier): the SQL-to-text model writes the question; the next
      `rounds - 1` stages re-ask it with the verifier's failure as feedback. With `rule_fallback`, a last stage
      tries the rule-based template question; off by default, because the rule question names columns and values
      literally, so it verifies far more easily than a natural one and crowds model-written questions out (16 of
      22 kept records were rule-worded when it was always on).
    - `question_source="template"` (the default without a verifier): the rule-based template question first; then
      `rounds - 1` model rewrites with feedback.

    After each stage the verifier (a text-to-SQL model, prompted with `prompts.prompt_for_database`) answers the
    question; the pair is kept when its SQL gives the same result as the template SQL under `metric`
    (`evaluation.judge`). Without a verifier the first usable question is kept and the record says "executed"
    (by default the rule-based question: an unchecked model-written question is not trusted).

    Args:
        db_paths: `.sqlite` files (their stems are the db_ids).
        generator: the SQL-to-text model (a `generation.Generator`), or None for rule-based questions only.
        output: the JSONL file of strong records (appended to; records already there are skipped on resume).
        per_database: candidate queries per database (kept records are at most this many).
        verifier: the text-to-SQL model that checks each question (often the same object as `generator`); None
            keeps every executable pair unverified (verification "executed").
        rounds: question stages per candidate, besides the rule-based last resort (`question_source="model"`).
        seed: random seed of the template filling (the same seed gives the same candidates and ids).
        question_source: "model", "template" or "auto" (model with a verifier, template without; see above).
        rule_fallback: with `question_source="model"`, try the rule-based question when every model-written one
            failed verification (records then say `+rule` in `generator`).
        families: template families to use (default: all of `sql_templates.FAMILIES`).
        metric: the result comparison of the verification ("spider", "bird" or "strict").
        batch_size: prompts per `generate` call.
        chunk_size: candidates taken through all stages together (records are written after each chunk).
        max_new_tokens: generation budget per verifier answer (questions get at most 80 tokens).
        time_budget: seconds after which no new chunk is started (the rest is left for a resumed run).
        schema_chars: the schema budget of the verifier's prompt (`prompts.serialize_schema` trims big schemas
            to it, keeping the tables closest to the question); prompt length is most of a small local model's cost.
        stats: filled with the cost and yield of this run when given.

    Returns:
        All strong records in `output` (kept by earlier runs and this one).

    Raises:
        ValueError: an unknown `question_source` or template family, or an unreadable `output`.
        DatabaseError: a database file is missing or not SQLite.
    """
    if question_source not in ("model", "template", "auto"):
        raise ValueError(f"question_source must be 'model', 'template' or 'auto', got {question_source!r}")
    verify = verifier is not None
    if question_source == "auto":
        question_source = "model" if verify else "template"
    if rounds < 1:
        raise ValueError(f"rounds must be at least 1, got {rounds}")
    stats = stats if stats is not None else SynthesisStats()
    stats.strategy = "templates"
    started = time.perf_counter()
    output = Path(output)
    kept_records = _read_jsonl(output)
    rejected_before = _read_jsonl(rejected_path(output))
    done = {r["id"] for r in kept_records} | {r["id"] for r in rejected_before}
    seen_sql = {normalize_sql(r["sql"]) for r in kept_records}
    seen_q = {normalize_question(r["question"]) for r in kept_records}
    stats.resumed = len(kept_records)

    if generator is None:
        stages = ["template"]
    elif question_source == "model":
        stages = ["model"] + ["rewrite"] * (rounds - 1) + (["template"] if rule_fallback else [])
    else:
        stages = ["template"] + ["rewrite"] * (rounds - 1)
    if not verify:
        stages = stages[:1] + (["template"] if stages[0] != "template" else [])

    items: list[_Item] = []
    for db_path in db_paths:
        db = profile_database(db_path)
        candidates, rejected = generate_candidates(db, n=per_database, seed=seed, families=families)
        for reason, count in rejected.items():
            stats.rejected[f"template_{reason}"] += count
        for index, candidate in enumerate(candidates):
            stats.family(candidate.family)["candidates"] += 1
            item_id = f"tmpl-{db.db_id}-{index:05d}"
            if item_id in done:
                continue
            items.append(_Item(id=item_id, db=db, candidate=candidate, stages=list(stages)))
    # interleave the databases (first candidate of each, then the second, ...) so a run cut short covers them all
    items.sort(key=lambda item: int(item.id.rsplit("-", 1)[1]))
    logger.info("template synthesis: %d candidates to process (%d done before)", len(items), len(done))

    from tqdm.auto import tqdm

    bar = tqdm(total=len(items), desc="templates", unit="sql", file=sys.stderr, disable=None)
    with _Appender(output) as out, _Appender(rejected_path(output)) as rej:
        for start in range(0, len(items), chunk_size):
            if time_budget is not None and time.perf_counter() - started > time_budget:
                stats.unfinished = len(items) - start
                logger.warning("time budget of %.0f s spent: %d candidates left for a resumed run", time_budget,
                               stats.unfinished)  # fmt: skip
                break
            chunk = items[start : start + chunk_size]
            pending = list(chunk)
            while pending:
                _write_questions(pending, generator, stats, batch_size=batch_size, max_new_tokens=max_new_tokens)
                ready = []
                for item in pending:
                    if item.question is None:
                        continue
                    if normalize_question(item.question) in seen_q:
                        item.reason, item.feedback = "duplicate_question", "another query already has this question"
                        item.question = None
                        continue
                    ready.append(item)
                for item in ready:
                    item.reason = ""
                if verify:
                    _verify(
                        ready, verifier, stats, metric=metric, batch_size=batch_size, max_new_tokens=max_new_tokens,
                        schema_chars=schema_chars,
                    )  # fmt: skip
                still = []
                for item in pending:
                    if item.question is not None and not item.reason:
                        key = normalize_sql(item.candidate.sql)
                        if key in seen_sql:
                            item.reason, item.stage = "duplicate_sql", len(item.stages)
                        elif normalize_question(item.question) in seen_q:
                            item.reason = "duplicate_question"
                            item.feedback = "another query already has this question"
                        else:
                            verification = f"verified:{verifier.name}" if verify else "executed"
                            record = _template_record(item, verification=verification)
                            out.write(record)
                            kept_records.append(record)
                            seen_sql.add(key)
                            seen_q.add(normalize_question(record["question"]))
                            stats.kept += 1
                            stats.verification[verification] += 1
                            stats.family(item.candidate.family)["kept"] += 1
                            bar.update(1)
                            continue
                    item.previous = item.question or item.previous
                    item.question = None
                    item.stage += 1
                    if item.stage < len(item.stages):
                        still.append(item)
                        continue
                    reason = item.reason or "unverified"
                    stats.rejected[reason] += 1
                    stats.family(item.candidate.family)["rejected"] += 1
                    rej.write(
                        {
                            "id": item.id,
                            "db_id": item.db.db_id,
                            "family": item.candidate.family,
                            "sql": item.candidate.sql,
                            "question": item.previous or "",
                            "reason": reason,
                            "feedback": item.feedback or "",
                        }
                    )
                    bar.update(1)
                pending = still
    bar.close()
    stats.elapsed += time.perf_counter() - started
    logger.info("%s", stats.table())
    return kept_records


def _generate(generator, prompts: list[list[dict]], stats: SynthesisStats, *, batch_size: int, **config) -> list[str]:
    """One greedy answer per prompt; counts calls and tokens.

    The prompts go to the backend in one call of up to `batch_size * 8` so that a local model can sort them by
    length before batching (padding a short prompt to a long schema costs more than the answer itself) and a
    remote one can keep its concurrency busy.
    """
    from sense_hub.generation import GenerationConfig

    texts: list[str] = []
    cfg = GenerationConfig(n=1, **config)
    step = max(1, batch_size * 8)
    for start in range(0, len(prompts), step):
        batch = prompts[start : start + step]
        outputs = generator.generate(batch, cfg)
        stats.count_call(batch, outputs)
        texts.extend(o[0] if o else "" for o in outputs)
    return texts


def _write_questions(items: list[_Item], generator, stats: SynthesisStats, *, batch_size: int, max_new_tokens: int):
    """Give each item the question of its current stage (model-written ones in one batched pass)."""
    asks: list[_Item] = []
    for item in items:
        kind = item.stages[item.stage]
        if kind == "template":
            item.question, item.writer = item.candidate.question, "rule"
        else:
            asks.append(item)
    if not asks:
        return
    prompts = [
        sql_to_text_prompt(
            item.candidate.sql,
            tables=_compact_schema(item.db, item.candidate.tables),
            previous=item.previous if item.stages[item.stage] == "rewrite" else None,
            feedback=item.feedback,
        )
        for item in asks
    ]
    texts = _generate(generator, prompts, stats, batch_size=batch_size, max_new_tokens=min(max_new_tokens, 80))
    for item, text in zip(asks, texts, strict=True):
        stats.family(item.candidate.family)["calls"] += 1
        question = parse_question(text)
        if question is None:
            item.reason, item.feedback = "bad_question", "the reply was not a question"
        item.question, item.writer = question, generator.name


def _verify(
    items: list[_Item], verifier, stats: SynthesisStats, *, metric: str, batch_size: int, max_new_tokens: int,
    schema_chars: int = 6000,
):  # fmt: skip
    """The verifier answers each question; item.reason is "" when its SQL matches, else why not."""
    from sense_hub.evaluation import judge
    from sense_hub.prompts import extract_sql, prompt_for_database

    if not items:
        return
    prompts = [prompt_for_database(item.question or "", item.db.path, max_chars=schema_chars) for item in items]
    texts = _generate(verifier, prompts, stats, batch_size=batch_size, max_new_tokens=max_new_tokens)
    preds = [extract_sql(t) for t in texts]
    verdicts = judge(
        [(item.db.path, item.candidate.sql, pred) for item, pred in zip(items, preds, strict=True)],
        metric=metric,
        workers=0,
    )
    for item, pred, verdict in zip(items, preds, verdicts, strict=True):
        stats.family(item.candidate.family)["calls"] += 1
        if verdict.correct:
            item.reason = ""
            continue
        item.reason = "verify_error" if verdict.error else "verify_mismatch"
        what = f"it fails with {verdict.error}" if verdict.error else "it returns a different result"
        item.feedback = f"a text-to-SQL model answered it with `{pred[:300]}`, and {what}"


def _template_record(item: _Item, *, verification: str) -> dict:
    record = {
        "id": item.id,
        "domain": item.db.db_id,
        "difficulty": classify_difficulty(item.candidate.sql),
        "db_id": item.db.db_id,
        "schema": item.db.ddl,
        "question": item.question or "",
        "sql": item.candidate.sql,
        "evidence": "",
        "generator": f"templates:{item.candidate.family}+{item.writer}",
        "verification": verification,
    }
    return validate_record("strong", record, where=f"template record {item.id}")


# ---------------------------------------------------------------------------------------------------------------
# Strong synthesis (SENSE)
# ---------------------------------------------------------------------------------------------------------------

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
            raise FileNotFoundError(f"seed file {path} not found; pass a JSONL with `question` and `sql` per line")
        seeds = _read_jsonl(path)
    out = []
    for i, s in enumerate(seeds, 1):
        if not isinstance(s, dict) or not s.get("question") or not s.get("sql"):
            raise ValueError(f"seed example {i} needs non-empty `question` and `sql` fields, got {str(s)[:120]}")
        out.append(s)
    if not out:
        raise ValueError("strong synthesis needs at least one seed example (`question`, `sql`)")
    return out


def synthesize_strong(
    generator,
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
        ValueError: no usable seed examples, or an unknown difficulty.
        FileNotFoundError: the seed file does not exist.
    """
    from sense_hub.execution import execute
    from sense_hub.generation import GenerationConfig

    seed_examples = _load_seeds(seeds)
    for level in difficulties:
        if level not in DIFFICULTY_GUIDE:
            raise ValueError(f"unknown difficulty {level!r}; choose from {list(DIFFICULTY_GUIDE)}")
    stats = stats if stats is not None else SynthesisStats()
    stats.strategy = "strong"
    started = time.perf_counter()
    output, db_out_root = Path(output), Path(db_out_root)
    kept_records = _read_jsonl(output)
    done = {r["id"] for r in kept_records} | {r["id"] for r in _read_jsonl(rejected_path(output))}
    seen_sql = {normalize_sql(r["sql"]) for r in kept_records}
    seen_q = {normalize_question(r["question"]) for r in kept_records}
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
    with _Appender(output) as out, _Appender(rejected_path(output)) as rej:
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
                kept_records.append(record)
                seen_sql.add(normalize_sql(record["sql"]))
                seen_q.add(normalize_question(record["question"]))
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
    if normalize_sql(sample.sql) in seen_sql:
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


# ---------------------------------------------------------------------------------------------------------------
# Command line: `sense-hub synthesize`
# ---------------------------------------------------------------------------------------------------------------


def add_cli_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = (
        "examples:\n"
        "  sense-hub synthesize --strategy templates --db-root spider/database --model embedded \\\n"
        "      --per-database 40 --rounds 2 --output strong_templates.jsonl\n"
        "  sense-hub synthesize --strategy strong --model gpt-4o --backend openai \\\n"
        "      --base-url https://api.openai.com/v1 --seeds seeds.jsonl --num-examples 200 \\\n"
        "      --db-out-root synthetic_dbs --output strong.jsonl"
    )
    parser.add_argument("--strategy", choices=("strong", "templates"), required=True, help="which generator")
    parser.add_argument("--output", type=Path, required=True, help="strong records (JSONL, appended, resumable)")
    parser.add_argument("--model", default="embedded", help="the generating model (default: embedded)")
    parser.add_argument("--backend", default=None, help="transformers (default), openai or tgi")
    parser.add_argument("--base-url", default=None, help="server URL for the openai (.../v1) and tgi backends")
    parser.add_argument("--api-key", default=None, help="credential for remote backends (default: $OPENAI_API_KEY)")
    parser.add_argument("--batch-size", type=int, default=16, help="prompts per generate call (default: 16)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    parser.add_argument("--stats-plot", type=Path, default=None, help="also write the statistics plot (PNG)")
    group = parser.add_argument_group("templates")
    group.add_argument("--db-root", type=Path, help="folder of <db_id>/<db_id>.sqlite databases")
    group.add_argument("--db-ids", default=None, help="comma-separated db_ids (default: every database)")
    group.add_argument("--per-database", type=int, default=20, help="candidate queries per database (default: 20)")
    group.add_argument("--rounds", type=int, default=2, help="question rounds per candidate (default: 2)")
    group.add_argument("--no-verify", action="store_true", help="keep executable pairs without model verification")
    group.add_argument(
        "--question-source",
        choices=("auto", "model", "template"),
        default="auto",
        help="who writes the first question: the SQL-to-text model or the template rule (default: auto = the "
        "model when verifying, the rule with --no-verify)",
    )
    group.add_argument("--verifier-model", default=None, help="text-to-SQL model that verifies (default: --model)")
    group.add_argument(
        "--rule-fallback",
        action="store_true",
        help="when every model-written question fails verification, try the template's rule-worded question",
    )
    group.add_argument("--families", default=None, help="comma-separated template families (default: all)")
    group.add_argument("--rule-questions-only", action="store_true", help="no SQL-to-text model; rule questions")
    group.add_argument("--time-budget", type=float, default=None, help="stop after this many seconds (resumable)")
    group = parser.add_argument_group("strong")
    group.add_argument("--seeds", type=Path, help="seed examples (JSONL with question, sql[, schema, domain])")
    group.add_argument("--num-examples", type=int, default=10, help="requests to the strong model (default: 10)")
    group.add_argument("--db-out-root", type=Path, help="where the new databases are written")
    group.add_argument("--temperature", type=float, default=0.8, help="strong model temperature (default: 0.8)")
    group.add_argument("--max-new-tokens", type=int, default=1500, help="strong model reply budget (default: 1500)")


def run_cli(args: argparse.Namespace) -> int:
    from sense_hub.generation import load_generator

    stats = SynthesisStats()
    if args.strategy == "templates":
        from sense_hub.databases import list_databases

        if args.db_root is None:
            raise SystemExit("--strategy templates needs --db-root (a folder of <db_id>/<db_id>.sqlite)")
        databases = list_databases(args.db_root)
        if args.db_ids:
            wanted = [d.strip() for d in args.db_ids.split(",") if d.strip()]
            missing = [d for d in wanted if d not in databases]
            if missing:
                raise SystemExit(
                    f"--db-ids: {missing} not found under {args.db_root} (have {sorted(databases)[:10]}...)"
                )
            databases = {d: databases[d] for d in wanted}
        if not databases:
            raise SystemExit(f"no <db_id>/<db_id>.sqlite databases under {args.db_root}")
        model = None
        if not args.no_verify or (args.question_source == "model" and not args.rule_questions_only):
            model = load_generator(args.model, backend=args.backend, base_url=args.base_url, api_key=args.api_key,
                                   batch_size=args.batch_size)  # fmt: skip
        verifier = None if args.no_verify else model
        if args.verifier_model and not args.no_verify:
            verifier = load_generator(args.verifier_model, backend=args.backend, base_url=args.base_url,
                                      api_key=args.api_key, batch_size=args.batch_size)  # fmt: skip
        records = synthesize_templates(
            [databases[d] for d in sorted(databases)],
            generator=None if args.rule_questions_only else model,
            verifier=verifier,
            output=args.output,
            per_database=args.per_database,
            rounds=args.rounds,
            seed=args.seed,
            question_source=args.question_source,
            rule_fallback=args.rule_fallback,
            families=[f.strip() for f in args.families.split(",")] if args.families else None,
            batch_size=args.batch_size,
            time_budget=args.time_budget,
            stats=stats,
        )
    else:
        if args.seeds is None or args.db_out_root is None:
            raise SystemExit("--strategy strong needs --seeds (JSONL) and --db-out-root (a folder)")
        generator = load_generator(args.model, backend=args.backend, base_url=args.base_url, api_key=args.api_key,
                                   batch_size=args.batch_size)  # fmt: skip
        records = synthesize_strong(
            generator,
            seeds=args.seeds,
            output=args.output,
            db_out_root=args.db_out_root,
            n=args.num_examples,
            seed=args.seed,
            temperature=args.temperature,
            max_new_tokens=args.max_new_tokens,
            batch_size=args.batch_size,
            stats=stats,
        )
    print(stats.table())  # noqa: T201 - the CLI's report
    summary = stats.as_dict()
    summary["records_in_output"] = len(records)
    if args.stats_plot:
        summary["stats_plot"] = str(plot_statistics(synthesis_statistics(records), args.stats_plot))
    print(json.dumps(summary))  # noqa: T201
    return 0
