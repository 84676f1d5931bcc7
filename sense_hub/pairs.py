"""Preference pairs from execution-labelled weak samples (SENSE §3.2), in TRL's conversational format.

For each question the labelled candidates (`formats.WEAK_COLUMNS`) split into

- **positives**: candidates whose result equals the gold result (`correct`), plus the gold SQL itself when
  `keep_gold` is set (listed first);
- **negatives**: the other candidates, filtered by `neg_filter` (`"all"`, or `"exec_only"`: only SQL that ran
  and returned a wrong result, no errors), and never records labelled against a broken gold (`gold_error`).

With `dedup`, candidates whose SQL repeats (by `execution.dedup_key`) are dropped. Then at most
`neg_limit` negatives are drawn (seeded, per question), and the k-th drawn negative is paired with the k-th
positive of a seeded shuffle of the positives (cycling), so pairs spread over the distinct correct answers.
Questions without a positive or without a negative give no pair and are counted. Everything is one pass over
the records plus one pass over the questions: linear time, prompts built once per question.

Each pair is `prompt` (the chat messages of `prompts.prompt_for_database`), `chosen` / `rejected`
(`[{"role": "assistant", "content": sql}]`) and provenance (`db_id`, `question_id`, `question`,
`chosen_source`, `rejected_error`) — exactly `formats.PAIRS_COLUMNS` — plus `gold_suspect` when the weak records
carry it (label noise: most samples agree on one result that is not the gold one, see `sampling.gold_suspect`).
With `drop_gold_suspect` such questions give no pair (counted as `questions_dropped_gold_suspect`).
"""

from __future__ import annotations

import logging
import random
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from sense_hub.execution import dedup_key
from sense_hub.formats import OPTIONAL_DEFAULTS, PAIRS_COLUMNS, RecordError, optional_columns, validate_record
from sense_hub.records import iter_jsonl, write_jsonl

logger = logging.getLogger(__name__)

NEG_FILTERS = ("all", "exec_only")

PromptFn = Callable[[str, str, str], list]
"""`prompt_fn(question, db_id, evidence) -> chat messages`; replaces the database-backed default."""


@dataclass
class PairConfig:
    """The SENSE pair-construction knobs.

    Args:
        dedup: drop candidates whose SQL (`execution.dedup_key`) repeats within a question.
        neg_filter: `"all"` keeps every incorrect candidate; `"exec_only"` keeps only those that executed and
            returned a wrong result (no syntax, runtime or timeout errors).
        keep_gold: add the gold SQL as a chosen candidate (so questions with no correct sample still pair).
        neg_limit: negatives (= pairs) per question; `None` keeps all.
        seed: seeds which negatives are drawn and which positive each is paired with.
        drop_gold_suspect: leave out the questions the weak records mark `gold_suspect` (likely wrong gold SQL).
    """

    dedup: bool = True
    neg_filter: str = "all"
    keep_gold: bool = False
    neg_limit: int | None = 1
    seed: int = 0
    drop_gold_suspect: bool = False

    def __post_init__(self) -> None:
        if self.neg_filter not in NEG_FILTERS:
            raise ValueError(f"`neg_filter` must be one of {NEG_FILTERS}, got {self.neg_filter!r}")
        if self.neg_limit is not None and (isinstance(self.neg_limit, bool) or self.neg_limit < 1):
            raise ValueError(f"`neg_limit` must be a positive integer or None (all), got {self.neg_limit!r}")


PRESETS: dict[str, PairConfig] = {
    "grouped-any-limit1": PairConfig(dedup=True, neg_filter="all", keep_gold=False, neg_limit=1),
    "grouped-any-limit3": PairConfig(dedup=True, neg_filter="all", keep_gold=False, neg_limit=3),
    "grouped-any-all": PairConfig(dedup=True, neg_filter="all", keep_gold=False, neg_limit=None),
    "grouped-exec-limit1": PairConfig(dedup=True, neg_filter="exec_only", keep_gold=False, neg_limit=1),
    "grouped-exec-limit3": PairConfig(dedup=True, neg_filter="exec_only", keep_gold=False, neg_limit=3),
    "keep-gold-limit1": PairConfig(dedup=True, neg_filter="all", keep_gold=True, neg_limit=1),
    "keep-gold-exec-limit1": PairConfig(dedup=True, neg_filter="exec_only", keep_gold=True, neg_limit=1),
    "raw-any-all": PairConfig(dedup=False, neg_filter="all", keep_gold=False, neg_limit=None),
}


@dataclass
class _Question:
    db_id: str
    question: str
    evidence: str
    gold_sql: str
    candidates: list  # (sql, correct, error)
    gold_suspect: bool | None = None  # None when the weak records do not carry the flag


def _group(weak_records: Iterable[Mapping[str, Any]]) -> dict[str, _Question]:
    groups: dict[str, _Question] = {}
    for i, rec in enumerate(weak_records, 1):
        try:
            qid = rec["question_id"]
            group = groups.get(qid)
            if group is None:
                group = groups[qid] = _Question(rec["db_id"], rec["question"], rec["evidence"], rec["gold_sql"], [])
            group.candidates.append((rec["sql"], rec["correct"], rec["error"]))
            if "gold_suspect" in rec:
                group.gold_suspect = bool(group.gold_suspect) or bool(rec["gold_suspect"])
        except KeyError as err:
            raise RecordError(
                f"weak record {i}: missing field {err.args[0]!r}; weak records need the WEAK_COLUMNS"
            ) from err
    return groups


def _database_prompt_fn(db_root) -> PromptFn:
    from sense_hub.benchmarks import as_db_roots, resolve_database
    from sense_hub.prompts import prompt_for_database

    roots = as_db_roots(db_root)

    def prompt(question: str, db_id: str, evidence: str) -> list:
        return prompt_for_database(question, resolve_database(roots, db_id), evidence=evidence)

    return prompt


def build_pairs(
    weak_records: Iterable[Mapping[str, Any]],
    *,
    config: PairConfig,
    db_root: str | Path | Sequence[str | Path] | None = None,
    prompt_fn: PromptFn | None = None,
) -> tuple[list[dict], dict]:
    """Build (chosen, rejected) pairs from labelled weak records.

    Args:
        weak_records: records with `formats.WEAK_COLUMNS` (any order; grouped by `question_id`).
        config: the knobs, e.g. `PRESETS["grouped-any-limit1"]`.
        db_root: folder(s) holding `<db_id>/<db_id>.sqlite`, used to build each question's prompt.
        prompt_fn: `prompt_fn(question, db_id, evidence) -> messages` instead of the database prompt (for
            tests and benchmarks without databases).

    Returns:
        `(pairs, stats)`: pairs in `formats.PAIRS_COLUMNS`, in question order then draw order; stats counts
        questions seen / with and without positives and negatives, candidates, negatives dropped by reason
        (`duplicate`, `filtered:<error kind>`, `gold_error`, `over_limit`), positives dropped as duplicates,
        questions whose database is missing, questions marked / dropped as `gold_suspect`, and pairs kept.

    Raises:
        RecordError: a record lacks a weak column.
        ValueError: neither `db_root` nor `prompt_fn` given.
    """
    if prompt_fn is None:
        if db_root is None:
            raise ValueError("build_pairs needs `db_root` (to build prompts from the databases) or `prompt_fn`")
        prompt_fn = _database_prompt_fn(db_root)
    from sense_hub.databases import DatabaseError

    groups = _group(weak_records)
    dropped: Counter = Counter()
    stats = Counter()
    pairs: list[dict] = []
    normalize = dedup_key if config.dedup else None
    for qid, q in groups.items():
        stats["questions"] += 1
        stats["candidates"] += len(q.candidates)
        if q.gold_suspect:
            stats["questions_gold_suspect"] += 1
            if config.drop_gold_suspect:
                stats["questions_dropped_gold_suspect"] += 1
                continue
        positives: list[tuple[str, str]] = []  # (sql, source)
        negatives: list[tuple[str, str]] = []  # (sql, error)
        seen_pos: set[str] = set()
        seen_neg: set[str] = set()
        if config.keep_gold:
            positives.append((q.gold_sql, "gold"))
            if normalize:
                seen_pos.add(normalize(q.gold_sql))
        for sql, correct, error in q.candidates:
            if correct:
                if normalize:
                    key = normalize(sql)
                    if key in seen_pos:
                        dropped["positive_duplicate"] += 1
                        continue
                    seen_pos.add(key)
                positives.append((sql, "sample"))
                continue
            error = error or "wrong_result"
            if error == "gold_error":
                dropped["gold_error"] += 1
                continue
            if config.neg_filter == "exec_only" and error != "wrong_result":
                dropped[f"filtered:{error}"] += 1
                continue
            if normalize:
                key = normalize(sql)
                if key in seen_neg:
                    dropped["duplicate"] += 1
                    continue
                seen_neg.add(key)
            negatives.append((sql, error))
        stats["questions_with_positive" if positives else "questions_without_positive"] += 1
        stats["questions_with_negative" if negatives else "questions_without_negative"] += 1
        if not positives or not negatives:
            continue
        rng = random.Random(f"{config.seed}:{qid}")
        if config.neg_limit is not None and len(negatives) > config.neg_limit:
            dropped["over_limit"] += len(negatives) - config.neg_limit
            negatives = [negatives[i] for i in sorted(rng.sample(range(len(negatives)), config.neg_limit))]
        order = list(range(len(positives)))
        rng.shuffle(order)
        try:
            prompt = prompt_fn(q.question, q.db_id, q.evidence)
        except DatabaseError as err:
            logger.warning("question %s: no prompt (%s); its pairs are dropped", qid, err)
            stats["questions_missing_db"] += 1
            continue
        stats["questions_paired"] += 1
        flag = {} if q.gold_suspect is None else {"gold_suspect": q.gold_suspect}
        for k, (neg_sql, neg_error) in enumerate(negatives):
            pos_sql, source = positives[order[k % len(order)]]
            pairs.append(
                {
                    "prompt": prompt,
                    "chosen": [{"role": "assistant", "content": pos_sql}],
                    "rejected": [{"role": "assistant", "content": neg_sql}],
                    "db_id": q.db_id,
                    "question_id": qid,
                    "question": q.question,
                    "chosen_source": source,
                    "rejected_error": neg_error,
                    **flag,
                }
            )
    if config.drop_gold_suspect and all(q.gold_suspect is None for q in groups.values()):
        logger.warning("drop_gold_suspect: no weak record carries `gold_suspect` (sample again to get the flags)")
    summary = {
        "config": asdict(config),
        "questions": stats["questions"],
        "candidates": stats["candidates"],
        "questions_with_positive": stats["questions_with_positive"],
        "questions_without_positive": stats["questions_without_positive"],
        "questions_with_negative": stats["questions_with_negative"],
        "questions_without_negative": stats["questions_without_negative"],
        "questions_missing_db": stats["questions_missing_db"],
        "questions_paired": stats["questions_paired"],
        "positives_dropped_duplicate": dropped.pop("positive_duplicate", 0),
        "negatives_dropped": dict(sorted(dropped.items())),
        "questions_gold_suspect": stats["questions_gold_suspect"],
        "questions_dropped_gold_suspect": stats["questions_dropped_gold_suspect"],
        "pairs": len(pairs),
    }
    return pairs, summary


def read_weak_records(path: str | Path) -> Iterable[dict]:
    """Yield weak records from a JSONL file, each checked against `formats.WEAK_COLUMNS`.

    Raises:
        RecordError: a line that is not JSON or lacks a column (the message names the file and line).
    """
    for lineno, record in iter_jsonl(path):
        yield validate_record("weak", record, where=f"{path}:{lineno}")


def write_pairs(pairs: Iterable[Mapping[str, Any]], path: str | Path) -> Path:
    """Write pairs as JSONL (columns in `formats.PAIRS_COLUMNS` order, then `gold_suspect` when any pair has it)."""
    pairs = list(pairs)
    columns = [*PAIRS_COLUMNS, *optional_columns("pairs", pairs)]
    return write_jsonl(path, ({k: pair.get(k, OPTIONAL_DEFAULTS.get(k)) for k in columns} for pair in pairs))
