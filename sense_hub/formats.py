"""Dataset columns and `datasets.Features`: the single source of truth for every record sense-hub writes.

Every stage reads and writes plain dict records (JSONL) whose keys are listed here; the Hub datasets are the
same records cast to the Features below. Nothing else in the package spells a column name of its own.

Record kinds:

- **strong**: execution-verified (question, SQL) examples from a strong model or from SQL templates.
- **weak**: one weak-model SQL candidate for a question, executed and labelled against the gold SQL.
- **pairs**: TRL conversational preference format (`prompt`/`chosen`/`rejected`) plus provenance.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from sense_hub.errors import RecordError

# ---------------------------------------------------------------------------------------------------------------
# Column names and their Python types (used for validation without importing `datasets`).
# ---------------------------------------------------------------------------------------------------------------

STRONG_COLUMNS: dict[str, type | tuple[type, ...]] = {
    "id": str,  # stable id, e.g. "tmpl-concert_singer-000123" or "strong-000042"
    "domain": str,  # e.g. "music"; the db_id for template data
    "difficulty": str,  # "easy" | "medium" | "hard"
    "db_id": str,  # the database the SQL runs on (DIR/databases/<db_id>/<db_id>.sqlite)
    "schema": str,  # CREATE TABLE statements (the embedded schema for LLM-made domains)
    "question": str,
    "sql": str,
    "evidence": str,  # BIRD-style external knowledge, "" when none
    "generator": str,  # "strong:<model>" or "templates:<family>+<sql-to-text model>"
    "verification": str,  # "executed" | "verified:<model>" | ...
}

WEAK_COLUMNS: dict[str, type | tuple[type, ...]] = {
    "question_id": str,  # "<benchmark or dataset>-<index>"
    "db_id": str,
    "question": str,
    "evidence": str,
    "gold_sql": str,
    "sql": str,  # the weak model's candidate
    "sample_index": int,
    "generator": str,  # model name / path / endpoint
    "status": str,  # "ok" (executed) or the execution error kind
    "correct": bool,  # execution result equals gold under the labelling metric
    "error": (str, type(None)),  # None when correct; else "wrong_result" or an execution error kind
}

PAIRS_COLUMNS: dict[str, type | tuple[type, ...]] = {
    "prompt": list,  # [{"role": "system"|"user", "content": str}, ...]
    "chosen": list,  # [{"role": "assistant", "content": sql}]
    "rejected": list,  # [{"role": "assistant", "content": sql}]
    "db_id": str,
    "question_id": str,
    "question": str,
    "chosen_source": str,  # "gold" | "sample"
    "rejected_error": str,  # why the rejected SQL is wrong: "wrong_result" or an execution error kind
}

# SPFT-SQL self-play rounds: pairs (gold chosen, opponent SQL rejected) plus the opponent sample's execution reward
# w (1: its result differs from gold; 0: it matches, so the error-driven loss never pushes it down).
REWARD_COLUMN = "reward"
SPFT_COLUMNS: dict[str, type | tuple[type, ...]] = {**PAIRS_COLUMNS, REWARD_COLUMN: float}

# Judged benchmark predictions (`sense-hub eval --push-to-hub`, dataset_scripts/build_predictions.py): one row per
# question, the model's SQL and its verdict.
PREDICTIONS_COLUMNS: dict[str, type | tuple[type, ...]] = {
    "question_id": str,
    "db_id": str,
    "question": str,  # "" when the predictions file had none (Spider-style text files)
    "gold": str,
    "pred": str,
    "correct": bool,  # the prediction's result equals the gold result under the card's metric
    "error": (str, type(None)),  # None when both executed; else the execution error kind (see evaluation.Verdict)
}

COLUMNS = {
    "strong": STRONG_COLUMNS,
    "weak": WEAK_COLUMNS,
    "pairs": PAIRS_COLUMNS,
    "spft": SPFT_COLUMNS,
    "predictions": PREDICTIONS_COLUMNS,
}

# Columns a record carries when the check that sets them ran (kept by `validate_record` when present, never
# required): `gold_suspect` (label noise, `sampling.gold_suspect`) and `contamination` (`sense_hub.contamination`).
OPTIONAL_COLUMNS: dict[str, dict[str, type]] = {
    "strong": {"contamination": str},  # "" when clean; else "sql:<benchmark id>" or "question:<benchmark id>"
    "weak": {
        "gold_suspect": bool,  # most samples agree on one result that is not the gold result
        "first_sql": str,  # `sample --repair-rounds`: the SQL before repair ("" when repair left it alone)
    },
    "pairs": {"gold_suspect": bool},  # the pair's question is gold_suspect in the weak records
    "spft": {},
}
OPTIONAL_DEFAULTS: dict[str, Any] = {"contamination": "", "gold_suspect": False, "first_sql": ""}


def validate_record(kind: str, record: Mapping[str, Any], *, where: str = "record") -> dict[str, Any]:
    """Check one record against the columns of `kind` and return it as a plain dict in column order.

    Args:
        kind: "strong", "weak" or "pairs".
        record: the record to check.
        where: how to name the record in an error ("weak.jsonl line 12").

    Raises:
        RecordError: a missing field or a field of the wrong type, naming `where` and the field.
    """
    if kind not in COLUMNS:
        raise ValueError(f"unknown record kind {kind!r}; expected one of {sorted(COLUMNS)}")
    columns = COLUMNS[kind]
    out: dict[str, Any] = {}
    for name, expected in columns.items():
        if name not in record:
            raise RecordError(f"{where}: missing field {name!r} (a {kind} record needs {list(columns)})")
        value = record[name]
        if expected is int and isinstance(value, bool):
            raise RecordError(f"{where}: field {name!r} must be an integer, got {value!r}")
        if not isinstance(value, expected):
            names = expected.__name__ if isinstance(expected, type) else " or ".join(t.__name__ for t in expected)
            raise RecordError(f"{where}: field {name!r} must be {names}, got {type(value).__name__}")
        out[name] = value
    for name, expected in OPTIONAL_COLUMNS.get(kind, {}).items():
        if name in record:
            value = record[name]
            if not isinstance(value, expected):
                raise RecordError(f"{where}: field {name!r} must be {expected.__name__}, got {type(value).__name__}")
            out[name] = value
    return out


def optional_columns(kind: str, records: Iterable[Mapping[str, Any]]) -> list[str]:
    """The optional columns of `kind` that any of `records` carries (in `OPTIONAL_COLUMNS` order)."""
    records = list(records)
    return [name for name in OPTIONAL_COLUMNS.get(kind, {}) if any(name in r for r in records)]


def validate_records(kind: str, records: Iterable[Mapping[str, Any]], *, source: str = "records") -> list[dict]:
    """Validate many records; errors name `source` and the 1-based record number."""
    return [validate_record(kind, r, where=f"{source} record {i}") for i, r in enumerate(records, 1)]


def features(kind: str, optional: Iterable[str] = ()):
    """The `datasets.Features` of a record kind (imports `datasets` lazily), plus the `optional` columns named."""
    from datasets import Features, Value

    message = [{"role": Value("string"), "content": Value("string")}]
    spec = {
        "strong": {name: Value("string") for name in STRONG_COLUMNS},
        "weak": {
            **{name: Value("string") for name in WEAK_COLUMNS},
            "sample_index": Value("int32"),
            "correct": Value("bool"),
        },
        "pairs": {
            **{name: Value("string") for name in PAIRS_COLUMNS},
            "prompt": message,
            "chosen": message,
            "rejected": message,
        },
        "predictions": {**{name: Value("string") for name in PREDICTIONS_COLUMNS}, "correct": Value("bool")},
    }
    if kind not in spec:
        raise ValueError(f"unknown record kind {kind!r}; expected one of {sorted(spec)}")
    extra = {"contamination": Value("string"), "gold_suspect": Value("bool"), "first_sql": Value("string")}
    return Features({**spec[kind], **{name: extra[name] for name in optional}})
