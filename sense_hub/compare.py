"""Paired comparison of judged predictions, and the `sense-hub compare` command.

    sense-hub compare A.jsonl B.jsonl [C.jsonl ...] [--names a,b,c] [--by db_id|difficulty]
                      [--bootstrap 10000] [--seed 0] [--output table.md]

Each input is the `--output` of `sense-hub eval` over the same items: one JSON object per line with a boolean
`correct`, plus `db_id` and `gold`. Items are aligned by `question_id` (or `id`) when every line of every file
has one, else line by line; either way each aligned item must have the same `db_id` and gold SQL in every file.

Per system: n, correct, execution accuracy (EX) and its 95% percentile-bootstrap interval. Per pair (A, B):
the items only A got right, the items only B got right, the exact McNemar p-value (two-sided binomial test on
those discordant items) and EX(A) - EX(B) with a paired-bootstrap 95% interval (every system is resampled with
the same item indices, so the interval reflects the pairing). The last line on stdout is a JSON summary.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from sense_hub.errors import InputError

__all__ = [
    "Comparison",
    "CompareInputError",
    "GroupRow",
    "PairResult",
    "SystemResult",
    "align",
    "bootstrap_sums",
    "compare",
    "default_names",
    "mcnemar_p",
    "percentile_interval",
    "read_judged",
    "render_markdown",
    "summary",
]

BY_FIELDS = ("db_id", "difficulty")
ID_FIELDS = ("question_id", "id")
MISSING_GROUP = "(none)"


class CompareInputError(InputError):
    """Judged files that cannot be compared: unreadable, malformed, or not over the same items."""


@dataclass(frozen=True)
class SystemResult:
    name: str
    n: int
    correct: int
    ex: float
    ci_low: float
    ci_high: float


@dataclass(frozen=True)
class PairResult:
    a: str
    b: str
    a_only: int
    b_only: int
    mcnemar_p: float
    delta: float
    delta_ci_low: float
    delta_ci_high: float


@dataclass(frozen=True)
class GroupRow:
    """One database (or difficulty) of the breakdown: its item count and each system's correct count."""

    group: str
    n: int
    correct: tuple[int, ...]


@dataclass
class Comparison:
    systems: list[SystemResult]
    pairs: list[PairResult]
    n_resamples: int
    seed: int
    aligned_by: str
    by: str | None = None
    groups: list[GroupRow] = field(default_factory=list)


# ---------------------------------------------------------------------------------------------------------------
# Statistics
# ---------------------------------------------------------------------------------------------------------------


def mcnemar_p(a_only: int, b_only: int) -> float:
    """The exact two-sided McNemar p-value: a binomial test of the discordant items against p = 1/2.

    `p = min(1, 2 * P(X <= min(a_only, b_only)))` with `X ~ Binomial(a_only + b_only, 1/2)`, computed with exact
    integers (`math.comb`) and one correctly rounded division, so it neither loses precision nor overflows.

    Args:
        a_only: items only the first system got right.
        b_only: items only the second system got right.

    Raises:
        ValueError: a negative count.
    """
    if a_only < 0 or b_only < 0:
        raise ValueError(f"discordant counts must be >= 0, got {a_only} and {b_only}")
    n = a_only + b_only
    if n == 0:
        return 1.0
    k = min(a_only, b_only)
    if 2 * k == n:
        return 1.0
    tail = sum(math.comb(n, i) for i in range(k + 1))
    return min(1.0, (2 * tail) / (1 << n))


def bootstrap_sums(correct: np.ndarray, *, n_resamples: int, seed: int, chunk: int = 2000) -> np.ndarray:
    """Correct counts of every system on `n_resamples` bootstrap resamples of the items.

    All systems are resampled with the same item indices (a paired bootstrap), so differences of rows are the
    paired-bootstrap distribution of the difference.

    Args:
        correct: `(systems, items)` array of 0/1.
        n_resamples: bootstrap resamples.
        seed: seed of `numpy.random.default_rng`; the same seed gives the same resamples.
        chunk: resamples drawn at once (bounds memory: `chunk * items` indices).

    Returns:
        `(systems, n_resamples)` int64 array of correct counts.
    """
    k, n = correct.shape
    rng = np.random.default_rng(seed)
    weights_matrix = correct.astype(np.float32).T  # (items, systems); counts stay exact in float32 (< 2**24)
    out = np.empty((k, n_resamples), dtype=np.int64)
    for start in range(0, n_resamples, chunk):
        size = min(chunk, n_resamples - start)
        idx = rng.integers(0, n, size=(size, n), dtype=np.int64)
        idx += np.arange(size, dtype=np.int64)[:, None] * n
        counts = np.bincount(idx.ravel(), minlength=size * n).reshape(size, n).astype(np.float32)
        out[:, start : start + size] = np.rint(counts @ weights_matrix).astype(np.int64).T
    return out


def percentile_interval(samples: np.ndarray, *, level: float = 0.95) -> tuple[float, float]:
    """The central `level` percentile interval of bootstrap samples."""
    tail = (1.0 - level) / 2.0
    low, high = np.quantile(samples, [tail, 1.0 - tail])
    return float(low), float(high)


# ---------------------------------------------------------------------------------------------------------------
# Input
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Item:
    line: int
    record: dict


def read_judged(path: str | Path) -> list[_Item]:
    """Read one `sense-hub eval --output` file: its non-blank lines with their line numbers.

    Raises:
        CompareInputError: the file is missing or unreadable, a line is not a JSON object, or a line has no
            boolean `correct` field.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError as e:
        raise CompareInputError(f"{path}: file not found") from e
    except OSError as e:
        raise CompareInputError(f"{path}: cannot read ({e.strerror or e})") from e
    items = []
    for number, line in enumerate(text.split("\n"), 1):  # not splitlines(): U+2028 may sit inside a JSON string
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            raise CompareInputError(
                f"{where}: not valid JSON ({e.msg}); each line must be one JSON object from `sense-hub eval --output`"
            ) from e
        if not isinstance(record, dict):
            raise CompareInputError(
                f"{where}: expected a JSON object, got {type(record).__name__}; "
                "each line must be one JSON object from `sense-hub eval --output`"
            )
        if not isinstance(record.get("correct"), bool):
            what = "no `correct` field" if "correct" not in record else "`correct` is not true/false"
            raise CompareInputError(
                f"{where}: {what}; compare judged predictions: run `sense-hub eval --predictions {path.name} "
                "--db-root DIR --output JUDGED.jsonl` and compare the JUDGED files"
            )
        items.append(_Item(number, record))
    if not items:
        raise CompareInputError(f"{path}: no lines; expected the `--output` of `sense-hub eval`")
    return items


def _key_field(files: Sequence[list[_Item]]) -> str | None:
    for name in ID_FIELDS:
        if all(name in it.record and it.record[name] is not None for items in files for it in items):
            return name
    return None


def _norm_sql(sql) -> str:
    return " ".join(str(sql).split()) if sql is not None else ""


def align(files: Sequence[list[_Item]], paths: Sequence[str | Path]) -> tuple[list[list[_Item]], str]:
    """Align the items of judged files to the first file's order.

    By `question_id` (or `id`) when every line of every file has one, else by line. Aligned items must agree on
    `db_id` and (whitespace-normalized) `gold` wherever a file has those fields.

    Returns:
        The items of each file in the first file's order, and what they were aligned by (`question_id`, `id` or
        `line`).

    Raises:
        CompareInputError: the files hold different items, a file repeats an id, or aligned items differ; the
            message names the file and its first differing line.
    """
    first, first_path = files[0], paths[0]
    key = _key_field(files)
    aligned = [list(first)]
    if key is None:
        for items, path in zip(files[1:], paths[1:], strict=True):
            if len(items) != len(first):
                short, short_path, long_, long_path = (
                    (items, path, first, first_path) if len(items) < len(first) else (first, first_path, items, path)
                )
                extra = long_[len(short)]
                raise CompareInputError(
                    f"{long_path}:{extra.line}: {long_path} has {len(long_)} items but {short_path} has "
                    f"{len(short)}; compare judged files over the same items (without question_id they are paired "
                    "line by line)"
                )
            aligned.append(list(items))
    else:
        ref: dict[str, _Item] = {}
        for it in first:
            k = str(it.record[key])
            if k in ref:
                raise CompareInputError(
                    f"{first_path}:{it.line}: {key} {k!r} repeats (first at line {ref[k].line}); ids must be unique"
                )
            ref[k] = it
        for items, path in zip(files[1:], paths[1:], strict=True):
            by_key: dict[str, _Item] = {}
            for it in items:
                k = str(it.record[key])
                if k in by_key:
                    raise CompareInputError(
                        f"{path}:{it.line}: {key} {k!r} repeats (first at line {by_key[k].line}); ids must be unique"
                    )
                if k not in ref:
                    raise CompareInputError(
                        f"{path}:{it.line}: {key} {k!r} is not in {first_path}; compare judged files over the same "
                        "items"
                    )
                by_key[k] = it
            missing = [it for it in first if str(it.record[key]) not in by_key]
            if missing:
                raise CompareInputError(
                    f"{first_path}:{missing[0].line}: {key} {str(missing[0].record[key])!r} has no line in {path} "
                    f"({len(missing)} missing); compare judged files over the same items"
                )
            aligned.append([by_key[str(it.record[key])] for it in first])
    for items, path in zip(aligned[1:], paths[1:], strict=True):
        for ours, theirs in zip(first, items, strict=True):
            for name, norm in (("db_id", str), ("gold", _norm_sql)):
                if name in ours.record and name in theirs.record:
                    if norm(ours.record[name]) != norm(theirs.record[name]):
                        raise CompareInputError(
                            f"{path}:{theirs.line}: {name} {_short(theirs.record[name])} differs from "
                            f"{first_path}:{ours.line} ({_short(ours.record[name])}); the files are not judged over "
                            f"the same items (aligned by {key or 'line'})"
                        )
    return aligned, key or "line"


def _short(value, limit: int = 60) -> str:
    text = repr(" ".join(str(value).split()))
    return text if len(text) <= limit else text[: limit - 4] + "...'"


def default_names(paths: Sequence[str | Path]) -> list[str]:
    """System names from file stems; `parent/stem` where stems repeat."""
    paths = [Path(p) for p in paths]
    names = [p.stem for p in paths]
    if len(set(names)) < len(names):
        names = [f"{p.parent.name}/{p.stem}" if names.count(p.stem) > 1 else p.stem for p in paths]
    return names


# ---------------------------------------------------------------------------------------------------------------
# Comparison
# ---------------------------------------------------------------------------------------------------------------


def compare(
    paths: Sequence[str | Path],
    *,
    names: Sequence[str] | None = None,
    by: str | None = None,
    n_resamples: int = 10_000,
    seed: int = 0,
) -> Comparison:
    """Compare judged prediction files over the same items.

    Args:
        paths: `sense-hub eval --output` files (one or more).
        names: one name per file (default: the file stems).
        by: break the accuracy down by this field (`db_id` or `difficulty`).
        n_resamples: bootstrap resamples for the intervals.
        seed: the bootstrap seed (same seed, same intervals).

    Raises:
        CompareInputError: unreadable or mismatched inputs, or bad names (see `read_judged`, `align`).
        ValueError: `n_resamples < 1` or an unknown `by`.
    """
    if not paths:
        raise ValueError("give at least one judged file")
    if n_resamples < 1:
        raise ValueError(f"the number of bootstrap resamples must be >= 1, got {n_resamples}")
    if by is not None and by not in BY_FIELDS:
        raise ValueError(f"cannot break down by {by!r}; choose one of {', '.join(BY_FIELDS)}")
    names = list(names) if names is not None else default_names(paths)
    if len(names) != len(paths):
        raise CompareInputError(f"{len(names)} names for {len(paths)} files; give one name per file")
    if len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        raise CompareInputError(f"system name {dup!r} is used twice; give distinct names with --names")
    files = [read_judged(p) for p in paths]
    aligned, aligned_by = align(files, paths)
    correct = np.array([[it.record["correct"] for it in items] for items in aligned], dtype=np.int64)
    n = correct.shape[1]
    totals = correct.sum(axis=1)
    sums = bootstrap_sums(correct, n_resamples=n_resamples, seed=seed)
    systems = []
    for i, name in enumerate(names):
        low, high = percentile_interval(sums[i] / n)
        systems.append(SystemResult(name, n, int(totals[i]), int(totals[i]) / n, low, high))
    pairs = []
    for i in range(len(names)):
        for j in range(i + 1, len(names)):
            a_only = int(np.sum((correct[i] == 1) & (correct[j] == 0)))
            b_only = int(np.sum((correct[i] == 0) & (correct[j] == 1)))
            low, high = percentile_interval((sums[i] - sums[j]) / n)
            pairs.append(
                PairResult(
                    names[i], names[j], a_only, b_only, mcnemar_p(a_only, b_only), (a_only - b_only) / n, low, high
                )
            )
    groups = _groups(aligned, paths, correct, by) if by is not None else []
    return Comparison(systems, pairs, n_resamples, seed, aligned_by, by, groups)


def _groups(aligned: list[list[_Item]], paths, correct: np.ndarray, by: str) -> list[GroupRow]:
    labels = []
    for position in range(correct.shape[1]):
        label = next(
            (items[position].record[by] for items in aligned if items[position].record.get(by) not in (None, "")),
            None,
        )
        labels.append(MISSING_GROUP if label is None else str(label))
    if all(x == MISSING_GROUP for x in labels):
        raise CompareInputError(
            f"{paths[0]}:{aligned[0][0].line}: no `{by}` field on any line of any file; --by {by} needs it "
            "(Spider records have no difficulty; BIRD benchmark records do)"
        )
    rows = []
    for label in sorted(set(labels)):
        mask = np.array([x == label for x in labels])
        rows.append(GroupRow(label, int(mask.sum()), tuple(int(c) for c in correct[:, mask].sum(axis=1))))
    return rows


# ---------------------------------------------------------------------------------------------------------------
# Output
# ---------------------------------------------------------------------------------------------------------------


def summary(result: Comparison) -> dict:
    """The JSON summary: `{"systems": [...], "pairs": [...]}` (EX, intervals and differences as fractions)."""
    return {
        "systems": [
            {"name": s.name, "n": s.n, "correct": s.correct, "ex": s.ex, "ci_low": s.ci_low, "ci_high": s.ci_high}
            for s in result.systems
        ],
        "pairs": [
            {
                "a": p.a,
                "b": p.b,
                "a_only": p.a_only,
                "b_only": p.b_only,
                "mcnemar_p": p.mcnemar_p,
                "delta": p.delta,
                "delta_ci_low": p.delta_ci_low,
                "delta_ci_high": p.delta_ci_high,
            }
            for p in result.pairs
        ],
    }


def _pct(x: float) -> str:
    return f"{100 * x:.1f}"


def _signed(x: float) -> str:
    text = f"{100 * x:+.1f}"
    return "+0.0" if text == "-0.0" else text


def _p(p: float) -> str:
    if p >= 0.001:
        return f"{p:.3g}"
    return f"{p:.1e}"


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|")


def render_markdown(result: Comparison) -> str:
    """The comparison as markdown tables (EX and differences in percentage points)."""
    level = "95%"
    n = result.systems[0].n
    lines = [
        f"Execution accuracy on {n} items (aligned by {result.aligned_by}); {level} percentile-bootstrap intervals "
        f"from {result.n_resamples} resamples, seed {result.seed}.",
        "",
        f"| system | n | correct | EX % | {level} CI |",
        "|---|---:|---:|---:|---|",
    ]
    for s in result.systems:
        lines.append(
            f"| {_cell(s.name)} | {s.n} | {s.correct} | {_pct(s.ex)} | [{_pct(s.ci_low)}, {_pct(s.ci_high)}] |"
        )
    if result.pairs:
        lines += [
            "",
            "Pairs: items only A / only B got right, exact McNemar p (two-sided binomial on those), "
            f"EX(A) - EX(B) in points with a paired-bootstrap {level} CI.",
            "",
            f"| A | B | only A | only B | McNemar p | EX(A) - EX(B) | {level} CI |",
            "|---|---|---:|---:|---:|---:|---|",
        ]
        for p in result.pairs:
            lines.append(
                f"| {_cell(p.a)} | {_cell(p.b)} | {p.a_only} | {p.b_only} | {_p(p.mcnemar_p)} | {_signed(p.delta)} "
                f"| [{_signed(p.delta_ci_low)}, {_signed(p.delta_ci_high)}] |"
            )
    if result.groups:
        names = [s.name for s in result.systems]
        lines += [
            "",
            f"EX % by {result.by} (correct in brackets).",
            "",
            f"| {result.by} | n | " + " | ".join(_cell(x) for x in names) + " |",
            "|---|---:|" + "---:|" * len(names),
        ]
        for g in result.groups:
            cells = " | ".join(f"{_pct(c / g.n)} ({c})" for c in g.correct)
            lines.append(f"| {_cell(g.group)} | {g.n} | {cells} |")
    return "\n".join(lines) + "\n"
