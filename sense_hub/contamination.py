"""Benchmark contamination checks for synthesized (strong) records.

A synthesized record is *contaminated* when it restates a benchmark item: its SQL equals a benchmark gold SQL
after normalization (sqlglot, SQLite dialect: keywords and unquoted identifiers in one case, quotes on
identifiers dropped, spacing and a trailing `;` removed; string literals kept as written), or its question shares
most of its word n-grams with one benchmark question (`question_overlap >= threshold`, where the overlap is the
share of the record question's n-grams found in that benchmark question; questions shorter than n words count
as one n-gram). The SQL check ignores `db_id` on purpose: a strong model that writes a Spider gold query over a
new domain still leaks the answer.

`sense-hub synthesize --decontaminate PATH [--decontaminate-action drop|flag]` runs the check after synthesis:
`drop` moves contaminated records from the output to `<stem>.rejected.jsonl` (reason `contaminated:sql` or
`contaminated:question`, so a resumed run does not ask for them again); `flag` keeps them with a `contamination`
column (`"sql:<benchmark id>"`, `"question:<benchmark id>"`, `""` when clean). Either way the counts go to
`<output stem>.contamination.json`, which `dataset_scripts/build_strong.py` puts in the dataset card.

PATH is a benchmark folder in a published layout (`sense_hub.benchmarks`, detected by its files, e.g.
`data/spider`), `NAME:FOLDER` to name the layout (`spider-syn:data/spider-syn`), or a JSON/JSONL file of
records with `question`, `sql` (or `query`/`SQL`) and `db_id`.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sense_hub.benchmarks import BENCHMARKS, Example, load_benchmark, load_examples
from sense_hub.errors import BenchmarkError

logger = logging.getLogger(__name__)

ACTIONS = ("drop", "flag")
DEFAULT_NGRAM = 4
DEFAULT_THRESHOLD = 0.8
REPORT_SUFFIX = ".contamination.json"

__all__ = [
    "ACTIONS",
    "BenchmarkIndex",
    "DEFAULT_NGRAM",
    "DEFAULT_THRESHOLD",
    "Match",
    "load_benchmark_items",
    "normalize_sql",
    "question_ngrams",
    "report_path",
]


def report_path(output: str | Path) -> Path:
    """Where the contamination counts of a synthesis output go: `<stem>.contamination.json` next to it."""
    output = Path(output)
    return output.with_name(output.stem + REPORT_SUFFIX)


def normalize_sql(sql: str) -> str:
    """The SQL text compared for contamination: sqlglot's SQLite rendering with identifiers normalized.

    Falls back to `execution.dedup_key` when sqlglot cannot parse the query.
    """
    import sqlglot
    from sqlglot import exp
    from sqlglot.errors import SqlglotError
    from sqlglot.optimizer.normalize_identifiers import normalize_identifiers

    from sense_hub.execution import dedup_key

    try:
        tree = sqlglot.parse_one(sql.strip().rstrip(";"), read="sqlite")
    except (SqlglotError, ValueError):
        return dedup_key(sql)
    if tree is None:
        return dedup_key(sql)
    for ident in tree.find_all(exp.Identifier):
        ident.set("quoted", False)
    tree = normalize_identifiers(tree, dialect="sqlite")
    return tree.sql(dialect="sqlite", normalize=True, comments=False)


_WORD = re.compile(r"[a-z0-9]+")


def question_ngrams(question: str, n: int = DEFAULT_NGRAM) -> set[tuple[str, ...]]:
    """The set of lower-cased word n-grams of a question (the whole question when it has fewer than n words)."""
    words = _WORD.findall(question.lower())
    if not words:
        return set()
    if len(words) < n:
        return {tuple(words)}
    return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}


@dataclass(frozen=True)
class Match:
    """Why a record is contaminated: `how` is "sql" or "question", `item` the benchmark id, `overlap` in [0, 1]."""

    how: str
    item: str
    overlap: float

    def label(self) -> str:
        """The `contamination` column value, e.g. "sql:spider-12"."""
        return f"{self.how}:{self.item}"


@dataclass
class BenchmarkIndex:
    """The questions and gold SQL of a benchmark, indexed for fast checks.

    Args:
        name: how the benchmark is named in reports (its folder or file).
        items: the benchmark examples.
        ngram: question n-gram length.
        threshold: the question overlap at or above which a record is contaminated, in (0, 1].
    """

    name: str
    items: Sequence[Example]
    ngram: int = DEFAULT_NGRAM
    threshold: float = DEFAULT_THRESHOLD
    _sql: dict[str, str] = field(default_factory=dict, init=False, repr=False)
    _grams: dict[tuple[str, ...], list[int]] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.ngram < 1:
            raise ValueError(f"`ngram` must be at least 1, got {self.ngram}")
        if not 0.0 < self.threshold <= 1.0:
            raise ValueError(f"`threshold` must lie in (0, 1], got {self.threshold}")
        for i, ex in enumerate(self.items):
            self._sql.setdefault(normalize_sql(ex.sql), ex.question_id)
            for gram in question_ngrams(ex.question, self.ngram):
                self._grams.setdefault(gram, []).append(i)

    @classmethod
    def from_path(cls, path: str | Path, *, ngram: int = DEFAULT_NGRAM, threshold: float = DEFAULT_THRESHOLD):
        """Index the benchmark at `path` (see the module docstring for what PATH may be)."""
        return cls(str(path), load_benchmark_items(path), ngram=ngram, threshold=threshold)

    def check(self, question: str, sql: str) -> Match | None:
        """The first reason (SQL before question) a (question, SQL) restates a benchmark item, or None."""
        item = self._sql.get(normalize_sql(sql))
        if item is not None:
            return Match("sql", item, 1.0)
        grams = question_ngrams(question, self.ngram)
        if not grams:
            return None
        shared: Counter[int] = Counter()
        for gram in grams:
            shared.update(self._grams.get(gram, ()))
        if not shared:
            return None
        best, count = min(shared.items(), key=lambda kv: (-kv[1], kv[0]))
        overlap = count / len(grams)
        if overlap >= self.threshold:
            return Match("question", self.items[best].question_id, round(overlap, 4))
        return None

    def scan(self, records: Iterable[Mapping[str, Any]]) -> list[Match | None]:
        """`check` for each record's `question` and `sql`."""
        return [self.check(str(r["question"]), str(r["sql"])) for r in records]

    def report(self, matches: Sequence[Match | None], *, action: str) -> dict[str, Any]:
        """The counts for the card: items indexed, records checked, SQL / question matches, dropped / flagged."""
        if action not in ACTIONS:
            raise ValueError(f"`action` must be one of {ACTIONS}, got {action!r}")
        hits = [m for m in matches if m is not None]
        by_how = Counter(m.how for m in hits)
        return {
            "benchmark": self.name,
            "benchmark_items": len(self.items),
            "ngram": self.ngram,
            "threshold": self.threshold,
            "action": action,
            "checked": len(matches),
            "sql_matches": by_how["sql"],
            "question_matches": by_how["question"],
            "dropped": len(hits) if action == "drop" else 0,
            "flagged": len(hits) if action == "flag" else 0,
        }


def load_benchmark_items(path: str | Path) -> list[Example]:
    """The benchmark examples at `path`: a benchmark folder, `NAME:FOLDER`, or a JSON/JSONL file.

    Raises:
        BenchmarkError: nothing loadable there (the message says what PATH may be).
    """
    text = str(path)
    name, sep, rest = text.partition(":")
    if sep and name in BENCHMARKS:
        return list(load_benchmark(name, root=Path(rest)))
    path = Path(text)
    if path.is_file():
        return list(load_examples(path))
    if path.is_dir():
        for name in BENCHMARKS:
            try:
                examples = load_benchmark(name, root=path)
            except BenchmarkError:
                continue
            logger.info("decontaminate: %s read as the %s layout (%d items)", path, name, len(examples))
            return list(examples)
        raise BenchmarkError(
            f"--decontaminate {path}: no benchmark layout found in this folder (known: {', '.join(BENCHMARKS)}); "
            "pass NAME:FOLDER or a JSON/JSONL file with question, sql and db_id"
        )
    raise BenchmarkError(
        f"--decontaminate {text}: no such file or folder; pass a benchmark folder (e.g. data/spider), "
        "NAME:FOLDER (e.g. spider-syn:data/spider-syn) or a JSON/JSONL file with question, sql and db_id"
    )
