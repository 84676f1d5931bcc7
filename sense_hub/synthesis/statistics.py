"""Cost, yield and content statistics of synthesized strong data.

`SynthesisStats` counts what one run cost and kept (model calls, approximate tokens, kept and rejected examples by
reason and template family); `sql_components`, `classify_difficulty` and `synthesis_statistics` describe the
records themselves for the dataset card (`cards.plot_synthesis_statistics` draws them).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "COMPONENTS",
    "DIFFICULTIES",
    "SynthesisStats",
    "classify_difficulty",
    "sql_components",
    "synthesis_statistics",
]

DIFFICULTIES = ("easy", "medium", "hard")


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
