"""Template synthesis (SPFT-SQL): executable SQL filled from templates over real databases, a question for each
written by a SQL-to-text model (or a template rule), kept when a text-to-SQL verifier answers it with SQL that
gives the same result."""

from __future__ import annotations

import logging
import re
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sense_hub.errors import UsageError
from sense_hub.execution import dedup_key
from sense_hub.formats import validate_record
from sense_hub.synthesis.output import normalize_question, open_appenders, resume_output
from sense_hub.synthesis.statistics import SynthesisStats, classify_difficulty
from sense_hub.synthesis.template_sql import DatabaseProfile, TemplateCandidate, generate_candidates, profile_database

if TYPE_CHECKING:
    from sense_hub.generation import Generator

__all__ = [
    "SQL_TO_TEXT_EXAMPLES",
    "SQL_TO_TEXT_SYSTEM",
    "parse_question",
    "sql_to_text_prompt",
    "synthesize_templates",
]

logger = logging.getLogger(__name__)


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
    candidate: TemplateCandidate
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
    generator: Generator | None,
    output: str | Path,
    per_database: int,
    verifier: Generator | None = None,
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
        families: template families to use (default: all of `template_sql.FAMILIES`).
        metric: the result comparison of the verification ("spider", "bird" or "strict"); questions of the set
            operation families are always checked by set equality (`_verification_metric`).
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
        raise UsageError(f"question_source must be 'model', 'template' or 'auto', got {question_source!r}")
    verify = verifier is not None
    if question_source == "auto":
        question_source = "model" if verify else "template"
    if rounds < 1:
        raise UsageError(f"rounds must be at least 1, got {rounds}")
    stats = stats if stats is not None else SynthesisStats()
    stats.strategy = "templates"
    started = time.perf_counter()
    output = Path(output)
    resumed = resume_output(output)
    kept_records, done, seen_sql, seen_q = resumed.records, resumed.done, resumed.seen_sql, resumed.seen_questions
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
    out, rej = open_appenders(output)
    with out, rej:
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
                        key = dedup_key(item.candidate.sql)
                        if key in seen_sql:
                            item.reason, item.stage = "duplicate_sql", len(item.stages)
                        elif normalize_question(item.question) in seen_q:
                            item.reason = "duplicate_question"
                            item.feedback = "another query already has this question"
                        else:
                            verification = f"verified:{verifier.name}" if verify else "executed"
                            record = _template_record(item, verification=verification)
                            out.write(record)
                            resumed.keep(record)
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
    from sense_hub.evaluation import evaluate_generator
    from sense_hub.generation import GenerationConfig
    from sense_hub.prompts import prompt_for_database

    if not items:
        return
    config = GenerationConfig(n=1, max_new_tokens=max_new_tokens)
    preds: list[str] = [""] * len(items)
    verdicts: list = [None] * len(items)
    groups: dict[str, list[int]] = {}
    for i, item in enumerate(items):
        groups.setdefault(_verification_metric(item.candidate.family, metric), []).append(i)
    step = max(1, batch_size * 8)  # see `_generate`: one backend call sorts and batches many prompts
    for group_metric, indices in groups.items():
        for start in range(0, len(indices), step):
            batch = [items[i] for i in indices[start : start + step]]
            prompts = [
                prompt_for_database(item.question or "", item.db.path, max_chars=schema_chars) for item in batch
            ]
            generated = evaluate_generator(
                verifier,
                prompts,
                config=config,
                db_paths=[item.db.path for item in batch],
                gold=[item.candidate.sql for item in batch],
                metric=group_metric,
                workers=0,
            )
            stats.count_call(prompts, [g.texts for g in generated])
            for i, g in zip(indices[start : start + step], generated, strict=True):
                preds[i], verdicts[i] = g.sqls[0], g.verdicts[0]
    for item, pred, verdict in zip(items, preds, verdicts, strict=True):
        stats.family(item.candidate.family)["calls"] += 1
        if verdict.correct:
            item.reason = ""
            continue
        item.reason = "verify_error" if verdict.error else "verify_mismatch"
        what = f"it fails with {verdict.error}" if verdict.error else "it returns a different result"
        item.feedback = f"a text-to-SQL model answered it with `{pred[:300]}`, and {what}"


SET_FAMILIES = frozenset({"set_union", "set_intersect", "set_except"})


def _verification_metric(family: str, metric: str) -> str:
    """The comparison that checks a question of `family`: `metric`, but set equality for the set operations.

    A UNION, INTERSECT or EXCEPT query returns a set, so its question asks for a set: "notes of deaths with 5 or
    more injured or fewer than 8 killed" is answered right by `... WHERE injured >= 5 OR killed < 8`, which lists
    a note once per matching row. Under a bag comparison (the `spider` and `strict` metrics) those duplicates
    reject a faithful question; `bird`'s set equality does not.
    """
    return "bird" if family in SET_FAMILIES else metric


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
