"""Whether a predicted query's result equals the gold one: the `spider`, `bird` and `strict` metrics.

- `spider`: the official Spider test-suite execution semantics. Both queries are first normalized like the
  official script does (`> =` spacing, `YEAR(CURDATE())` -> 2020, `" value "` -> `" 1 "` in the prediction,
  DISTINCT tokens dropped unless `keep_distinct`, which also keeps only the first statement); results are equal
  when some permutation of the predicted columns gives the same bag of rows (the same list of rows when the
  gold SQL contains "order by").
- `bird`: BIRD's rule, `set(pred_rows) == set(gold_rows)`: column order matters, duplicates and row order do not.
- `strict`: the same bag of rows with the same column order; row order matters when the gold has ORDER BY;
  DISTINCT is kept. This is the label for weak samples.

Values compare with Python equality (`1 == 1.0`, `None == None`, `"1" != 1`).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from itertools import permutations, product

from sense_hub.execution import ExecutionResult
from sense_hub.execution import sql_tokens as _tokens

__all__ = [
    "METRICS",
    "has_order_by",
    "prepare_sql",
    "remove_distinct",
    "result_rows_match",
    "results_match",
    "spider_order_matters",
]

METRICS = ("spider", "bird", "strict")

_ORDER_BY = re.compile(r"\border\s+by\b", re.IGNORECASE)
_CUR_YEAR = re.compile(r"YEAR\s*\(\s*CURDATE\s*\(\s*\)\s*\)\s*", re.IGNORECASE)


def remove_distinct(sql: str) -> str:
    """Drop every `DISTINCT` keyword token (not inside strings, quoted names or comments), keep the first statement.

    This mirrors the official Spider evaluator, which keeps the first statement that `sqlparse` finds and
    joins its tokens back without the ones spelled `distinct`.
    """
    out = []
    for tok in _tokens(sql):
        if tok.lower() == "distinct":
            continue
        out.append(tok)
        if tok == ";":
            break
    return "".join(out)


def first_statement(sql: str) -> tuple[str, str]:
    """Split `sql` after its first top-level `;`: (first statement, the rest)."""
    pos = 0
    for tok in _tokens(sql):
        pos += len(tok)
        if tok == ";":
            return sql[:pos], sql[pos:]
    return sql, ""


def has_order_by(sql: str) -> bool:
    """True when `sql` contains ORDER BY (anywhere, like the official evaluators; any spacing or case)."""
    return bool(_ORDER_BY.search(sql))


def spider_order_matters(gold_sql: str) -> bool:
    """The official Spider rule: row order matters iff the normalized gold SQL contains the text "order by"."""
    return "order by" in gold_sql.lower()


def prepare_sql(sql: str, *, metric: str, role: str, keep_distinct: bool = False) -> str:
    """The SQL text that `metric` executes for a gold (`role="gold"`) or predicted (`role="pred"`) query.

    For `spider` this applies the official normalizations (see the module docstring); `bird` and `strict`
    execute the query as written, stripped of surrounding whitespace.

    Raises:
        ValueError: an unknown metric or role.
    """
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; choose one of {', '.join(METRICS)}")
    if role not in ("gold", "pred"):
        raise ValueError(f"`role` must be 'gold' or 'pred', got {role!r}")
    sql = sql.strip()
    if metric != "spider" or not sql:
        return sql
    if role == "pred":
        sql = sql.replace(" value ", " 1 ")
    sql = sql.replace("> =", ">=").replace("< =", "<=").replace("! =", "!=")
    if not keep_distinct and (";" in sql or "distinct" in sql.lower()):  # else remove_distinct changes nothing
        sql = remove_distinct(sql)
    if "curdate" in sql.lower():
        sql = _CUR_YEAR.sub("2020", sql)
    return sql


def _sort_key(value) -> str:
    return f"{value}{type(value)}"


def _unordered_row(row: tuple) -> tuple:
    # the official evaluator's row canonicalization (values sorted by str(value) + str(type(value)))
    return tuple(sorted(row, key=_sort_key))


def _column_permutations(gold: Sequence[tuple], pred: Sequence[tuple], n_cols: int):
    """Candidate maps gold column i -> pred column perm[i]; a column's bag of values must match."""
    if n_cols <= 3:
        return permutations(range(n_cols))
    gold_cols = [Counter(row[i] for row in gold) for i in range(n_cols)]
    pred_cols = [Counter(row[j] for row in pred) for j in range(n_cols)]
    options = [[j for j in range(n_cols) if pred_cols[j] == gold_cols[i]] for i in range(n_cols)]
    return (p for p in product(*options) if len(set(p)) == n_cols)


def _spider_rows_match(gold: Sequence[tuple], pred: Sequence[tuple], order_matters: bool) -> bool:
    if not gold and not pred:
        return True
    if len(gold) != len(pred):
        return False
    n_cols = len(gold[0])
    if len(pred[0]) != n_cols:
        return False
    if n_cols == 1:  # no permutation to try, and each row is already "unordered"
        return list(gold) == list(pred) if order_matters else Counter(gold) == Counter(pred)
    # cheap necessary condition: the same rows once each row's values are sorted
    g_unordered = [_unordered_row(r) for r in gold]
    p_unordered = [_unordered_row(r) for r in pred]
    if order_matters:
        if g_unordered != p_unordered:
            return False
    elif set(g_unordered) != set(p_unordered):
        return False
    gold_list = list(gold)
    gold_bag = Counter(gold_list) if not order_matters else None
    for perm in _column_permutations(gold, pred, n_cols):
        moved = list(pred) if n_cols == 1 else [tuple(row[j] for j in perm) for row in pred]
        if order_matters:
            if moved == gold_list:
                return True
        elif Counter(moved) == gold_bag:
            return True
    return False


def result_rows_match(
    gold: Sequence[tuple], pred: Sequence[tuple], *, metric: str = "strict", order_matters: bool = False
) -> bool:
    """Compare two lists of result rows under `metric` (see the module docstring).

    Raises:
        ValueError: an unknown metric.
    """
    if metric == "spider":
        return _spider_rows_match(gold, pred, order_matters)
    if metric == "bird":
        return set(pred) == set(gold)
    if metric == "strict":
        if len(gold) != len(pred):
            return False
        if gold and len(gold[0]) != len(pred[0]):
            return False
        if order_matters:
            return list(gold) == list(pred)
        return Counter(gold) == Counter(pred)
    raise ValueError(f"unknown metric {metric!r}; choose one of {', '.join(METRICS)}")


def results_match(
    gold: ExecutionResult, pred: ExecutionResult, *, metric: str = "strict", order_matters: bool = False
) -> bool:
    """True when both queries executed and their rows are equal under `metric`.

    Args:
        gold: the gold query's result.
        pred: the predicted query's result.
        metric: "spider", "bird" or "strict".
        order_matters: compare rows in order (use `has_order_by(gold_sql)`, or `spider_order_matters` for
            the official Spider rule); ignored by `bird`.

    Raises:
        ValueError: an unknown metric.
    """
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; choose one of {', '.join(METRICS)}")
    if not (gold.ok and pred.ok):
        return False
    return result_rows_match(gold.rows, pred.rows, metric=metric, order_matters=order_matters)
