"""SQL templates with typed slots, filled from a real database (SPFT-SQL style).

A template *family* is a small function that picks tables, columns and values from a database profile and
returns a candidate: the SQL, a rule-based question rendered from the same slots (the deterministic fallback
when no SQL-to-text model is good enough), and *baseline* queries whose results the candidate must differ
from (the same query without its filter, the branches of a set operation). A candidate is kept only when it
executes, returns a non-empty, non-NULL result of a sensible size, and differs from every baseline: a filter
that keeps the whole table or an INTERSECT equal to one of its branches teaches nothing.

Families (see `FAMILIES`): single-table filters (numeric, text, BETWEEN, LIKE), counts, aggregates,
GROUP BY, HAVING, ORDER BY/LIMIT, superlatives, joins along foreign keys, nesting (IN, NOT IN, above the
average) and set operations (UNION, INTERSECT, EXCEPT).

Example:

```python
profile = profile_database(db_path)
candidates = generate_candidates(profile, n=50, seed=0)
```
"""

from __future__ import annotations

import logging
import random
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from sense_hub.execution import dedup_key

logger = logging.getLogger(__name__)

MAX_RESULT_ROWS = 100
MAX_TEXT_VALUE_CHARS = 40
_DISTINCT_VALUES = 200
_IDENTIFIER_NAME = re.compile(r"(id|code|phone|zip|number|num|no)$|^(id|code)|_id_", re.IGNORECASE)

_RESERVED = {
    "abort", "action", "add", "all", "alter", "and", "as", "asc", "between", "by", "case", "check", "collate",
    "column", "commit", "constraint", "create", "cross", "current", "default", "delete", "desc", "distinct",
    "drop", "else", "end", "escape", "except", "exists", "foreign", "from", "full", "glob", "group", "having",
    "if", "in", "index", "inner", "insert", "intersect", "into", "is", "isnull", "join", "key", "left", "like",
    "limit", "match", "natural", "not", "notnull", "null", "of", "offset", "on", "or", "order", "outer",
    "primary", "references", "replace", "right", "select", "set", "table", "then", "to", "transaction",
    "union", "unique", "update", "using", "values", "view", "when", "where", "with", "window", "rows",
}  # fmt: skip


# ---------------------------------------------------------------------------------------------------------------
# Database profile: the typed slots a template can fill.
# ---------------------------------------------------------------------------------------------------------------


@dataclass
class ColumnProfile:
    """One column with what templates need to know: its kind and some of its values.

    `kind` is "number" or "text" (read from the values, not only the declared type: Spider stores numbers
    in TEXT columns and the reverse) or "other" (mixed, empty, binary). `values` are distinct non-NULL values,
    sorted; `n_distinct` and `n_nonnull` are exact counts.
    """

    table: str
    name: str
    kind: str
    is_key: bool
    n_distinct: int
    n_nonnull: int
    values: list = field(default_factory=list)

    @property
    def categorical(self) -> bool:
        """Values repeat (GROUP BY makes sense) and there are at least two of them."""
        return 2 <= self.n_distinct < self.n_nonnull and self.n_distinct <= 50


@dataclass
class TableProfile:
    name: str
    row_count: int
    columns: list[ColumnProfile]
    primary_key: list[str]

    def of_kind(self, kind: str, *, keys: bool = False) -> list[ColumnProfile]:
        return [c for c in self.columns if c.kind == kind and (keys or not c.is_key) and c.n_nonnull > 0]

    def measures(self) -> list[ColumnProfile]:
        """Numeric columns that are quantities (not ids, codes or phone numbers): what averages are taken of."""
        return [c for c in self.of_kind("number") if not _IDENTIFIER_NAME.search(c.name)]


@dataclass
class JoinPath:
    """child.fk = parent.ref (a foreign key)."""

    child: str
    child_column: str
    parent: str
    parent_column: str


@dataclass
class DatabaseProfile:
    db_id: str
    path: Path
    tables: dict[str, TableProfile]
    joins: list[JoinPath]
    ddl: str


@dataclass
class TemplateCandidate:
    """A filled template: SQL, the rule-based question, and the baselines its result must differ from."""

    family: str
    sql: str
    question: str
    tables: list[str]
    baselines: list[str] = field(default_factory=list)
    different: list[tuple[str, str]] = field(default_factory=list)  # pairs of queries that must disagree (no ties)


def quote(name: str) -> str:
    """An identifier as SQLite reads it: bare when safe, double-quoted otherwise."""
    if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name) and name.lower() not in _RESERVED:
        return name
    return '"' + name.replace('"', '""') + '"'


def literal(value) -> str:
    """A SQL literal for a value read from the database."""
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    if isinstance(value, float) and value.is_integer():
        return repr(value)
    return repr(value)


def humanize(name: str) -> str:
    """`Singer_ID` -> "singer id", `HomeTown` -> "home town" (for rule-based questions)."""
    words = re.sub(r"([a-z])([A-Z])", r"\1 \2", name).replace("_", " ").replace("-", " ")
    return re.sub(r"\s+", " ", words).strip().lower()


def _say(value) -> str:
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _value_kind(values: list) -> str:
    if not values:
        return "other"
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        return "number"
    if all(isinstance(v, str) for v in values):
        return "text"
    return "other"


def profile_database(db_path: str | Path, *, timeout: float = 10.0) -> DatabaseProfile:
    """Read the tables, typed columns, value samples and foreign keys of a SQLite database.

    Args:
        db_path: `<db_root>/<db_id>/<db_id>.sqlite`; the db_id is the file stem.
        timeout: seconds allowed per profiling query.

    Raises:
        DatabaseError: the file is missing or is not a SQLite database (from `databases.introspect`).
    """
    from sense_hub.databases import introspect
    from sense_hub.execution import execute

    path = Path(db_path)
    schema = introspect(path, sample_values=0)
    tables: dict[str, TableProfile] = {}
    for table in schema.tables:
        fk_columns = {fk.column.lower() for fk in table.foreign_keys}
        pk = [c.name for c in table.columns if c.primary_key]
        columns = []
        for column in table.columns:
            q_col, q_tab = quote(column.name), quote(table.name)
            counts = execute(path, f"SELECT count(DISTINCT {q_col}), count({q_col}) FROM {q_tab}", timeout=timeout)
            values = execute(
                path,
                f"SELECT DISTINCT {q_col} FROM {q_tab} WHERE {q_col} IS NOT NULL LIMIT {_DISTINCT_VALUES}",
                timeout=timeout,
            )
            if not counts.ok or not values.ok:
                logger.debug("skipping column %s.%s: %s %s", table.name, column.name, counts.error, values.error)
                continue
            vals = [row[0] for row in values.rows]
            kind = _value_kind(vals)
            if kind == "text":
                vals = [v for v in vals if 0 < len(v) <= MAX_TEXT_VALUE_CHARS and "\n" not in v and v.strip() == v]
            vals = sorted(vals) if kind in ("number", "text") else []
            n_distinct, n_nonnull = counts.rows[0]
            columns.append(
                ColumnProfile(
                    table=table.name,
                    name=column.name,
                    kind=kind,
                    is_key=column.primary_key or column.name.lower() in fk_columns,
                    n_distinct=int(n_distinct or 0),
                    n_nonnull=int(n_nonnull or 0),
                    values=vals,
                )
            )
        tables[table.name] = TableProfile(table.name, int(table.row_count), columns, pk)
    names = {t.lower(): t for t in tables}
    joins = []
    for table in schema.tables:
        for fk in table.foreign_keys:
            parent = names.get(fk.ref_table.lower())
            if parent is None or parent == table.name:
                continue
            parent_cols = {c.name.lower(): c.name for c in tables[parent].columns}
            ref = parent_cols.get((fk.ref_column or "").lower())
            if ref is None and len(tables[parent].primary_key) == 1:
                ref = tables[parent].primary_key[0]
            child_cols = {c.name.lower(): c.name for c in tables[table.name].columns}
            if ref is None or fk.column.lower() not in child_cols:
                continue
            joins.append(JoinPath(table.name, child_cols[fk.column.lower()], parent, ref))
    ddl_result = execute(path, "SELECT sql FROM sqlite_master WHERE type = 'table' AND sql IS NOT NULL")
    ddl = ";\n".join(row[0].strip() for row in ddl_result.rows) + ";" if ddl_result.ok and ddl_result.rows else ""
    return DatabaseProfile(db_id=path.stem, path=path, tables=tables, joins=joins, ddl=ddl)


# ---------------------------------------------------------------------------------------------------------------
# Slot helpers
# ---------------------------------------------------------------------------------------------------------------


class _Skip(Exception):
    """This family cannot be filled from this database (no column of the right kind, no foreign key)."""


def _pick(rng: random.Random, items: list):
    if not items:
        raise _Skip
    return items[rng.randrange(len(items))]


def _tables_with_rows(db: DatabaseProfile, minimum: int = 2) -> list[TableProfile]:
    return [t for t in db.tables.values() if t.row_count >= minimum and t.columns]


def _display_columns(table: TableProfile) -> list[ColumnProfile]:
    """Columns worth showing in a result: non-key text first, else any non-key, else anything."""
    text = table.of_kind("text")
    if text:
        return text
    other = [c for c in table.columns if not c.is_key and c.n_nonnull > 0]
    return other or [c for c in table.columns if c.n_nonnull > 0]


def _projection(rng: random.Random, table: TableProfile, *, alias: str = "", avoid: str = "") -> list[ColumnProfile]:
    cols = [c for c in _display_columns(table) if c.name != avoid] or _display_columns(table)
    if not cols:
        raise _Skip
    k = 2 if len(cols) >= 2 and rng.random() < 0.35 else 1
    return rng.sample(cols, k)


def _cols_sql(cols: list[ColumnProfile], alias: str = "") -> str:
    prefix = f"{alias}." if alias else ""
    return ", ".join(prefix + quote(c.name) for c in cols)


def _cols_say(cols: list[ColumnProfile]) -> str:
    return " and ".join(humanize(c.name) for c in cols)


_NUM_OPS = {">": "greater than", "<": "less than", ">=": "at least", "<=": "at most"}


def _numeric_condition(rng: random.Random, column: ColumnProfile, alias: str = "") -> tuple[str, str]:
    """`age > 30`, with the value from the middle of the column's distinct values (so the filter bites)."""
    values = column.values
    if len(values) < 3:
        raise _Skip
    op = _pick(rng, list(_NUM_OPS))
    value = values[rng.randrange(len(values) // 4, max(len(values) // 4 + 1, 3 * len(values) // 4))]
    prefix = f"{alias}." if alias else ""
    return (
        f"{prefix}{quote(column.name)} {op} {literal(value)}",
        f"{humanize(column.name)} {_NUM_OPS[op]} {_say(value)}",
    )


def _text_condition(rng: random.Random, column: ColumnProfile, alias: str = "") -> tuple[str, str]:
    if not column.values or column.n_distinct < 2:
        raise _Skip
    value = _pick(rng, column.values)
    prefix = f"{alias}." if alias else ""
    return f"{prefix}{quote(column.name)} = {literal(value)}", f"{humanize(column.name)} equal to {_say(value)}"


def _condition(
    rng: random.Random, table: TableProfile, alias: str = "", avoid: str | tuple[str, ...] = ""
) -> tuple[str, str, str]:
    """A filter on a non-key column of `table`: (sql, words, column name)."""
    avoid = (avoid,) if isinstance(avoid, str) else avoid
    choices = [c for c in table.of_kind("number") if len(c.values) >= 3 and c.name not in avoid]
    choices += [c for c in table.of_kind("text") if c.values and c.n_distinct >= 2 and c.name not in avoid]
    column = _pick(rng, choices)
    if column.kind == "number":
        sql, say = _numeric_condition(rng, column, alias)
    else:
        sql, say = _text_condition(rng, column, alias)
    return sql, say, column.name


_AGGS = {"avg": "average", "sum": "total", "min": "minimum", "max": "maximum"}


# ---------------------------------------------------------------------------------------------------------------
# Families
# ---------------------------------------------------------------------------------------------------------------


def _filter_numeric(rng, db):
    t = _pick(rng, [t for t in _tables_with_rows(db, 3) if any(len(c.values) >= 3 for c in t.of_kind("number"))])
    col = _pick(rng, [c for c in t.of_kind("number") if len(c.values) >= 3])
    cond, say = _numeric_condition(rng, col)
    proj = _projection(rng, t, avoid=col.name)
    q_t = quote(t.name)
    sql = f"SELECT {_cols_sql(proj)} FROM {q_t} WHERE {cond}"
    question = f"What are the {_cols_say(proj)} of the {humanize(t.name)} entries with {say}?"
    return TemplateCandidate("filter_numeric", sql, question, [t.name], [f"SELECT {_cols_sql(proj)} FROM {q_t}"])


def _filter_text(rng, db):
    t = _pick(rng, [t for t in _tables_with_rows(db, 3) if any(c.n_distinct >= 2 for c in t.of_kind("text"))])
    col = _pick(rng, [c for c in t.of_kind("text") if c.n_distinct >= 2 and c.values])
    cond, say = _text_condition(rng, col)
    proj = _projection(rng, t, avoid=col.name)
    q_t = quote(t.name)
    sql = f"SELECT {_cols_sql(proj)} FROM {q_t} WHERE {cond}"
    question = f"Show the {_cols_say(proj)} of the {humanize(t.name)} entries whose {humanize(col.name)} is {_say_value(cond)}."
    return TemplateCandidate("filter_text", sql, question, [t.name], [f"SELECT {_cols_sql(proj)} FROM {q_t}"])


def _say_value(cond: str) -> str:
    """The literal at the end of `col = 'v'` as words."""
    value = cond.split(" = ", 1)[1]
    return '"' + value[1:-1].replace("''", "'") + '"' if value.startswith("'") else value


def _count_filter(rng, db):
    t = _pick(rng, _tables_with_rows(db, 3))
    cond, say, _ = _condition(rng, t)
    q_t = quote(t.name)
    sql = f"SELECT count(*) FROM {q_t} WHERE {cond}"
    question = f"How many {humanize(t.name)} entries have {say}?"
    return TemplateCandidate("count_filter", sql, question, [t.name], [f"SELECT count(*) FROM {q_t}"])


def _aggregate(rng, db):
    t = _pick(rng, [t for t in _tables_with_rows(db) if t.measures()])
    col = _pick(rng, [c for c in t.measures() if c.n_distinct >= 2])
    agg = _pick(rng, list(_AGGS))
    q_t = quote(t.name)
    if rng.random() < 0.5:
        cond, say, _ = _condition(rng, t, avoid=col.name)
        sql = f"SELECT {agg}({quote(col.name)}) FROM {q_t} WHERE {cond}"
        question = f"What is the {_AGGS[agg]} {humanize(col.name)} of the {humanize(t.name)} entries with {say}?"
        baselines = [f"SELECT {agg}({quote(col.name)}) FROM {q_t}"]
    else:
        sql = f"SELECT {agg}({quote(col.name)}) FROM {q_t}"
        question = f"What is the {_AGGS[agg]} {humanize(col.name)} over all {humanize(t.name)} entries?"
        baselines = []
    return TemplateCandidate("aggregate", sql, question, [t.name], baselines)


def _distinct_count(rng, db):
    t = _pick(rng, [t for t in _tables_with_rows(db) if any(c.categorical for c in t.columns if not c.is_key)])
    col = _pick(rng, [c for c in t.columns if c.categorical and not c.is_key])
    sql = f"SELECT count(DISTINCT {quote(col.name)}) FROM {quote(t.name)}"
    question = f"How many different {humanize(col.name)} values are there among the {humanize(t.name)} entries?"
    return TemplateCandidate("distinct_count", sql, question, [t.name], [f"SELECT count(*) FROM {quote(t.name)}"])


def _group_count(rng, db):
    t = _pick(rng, [t for t in _tables_with_rows(db) if any(c.categorical for c in t.columns if not c.is_key)])
    col = _pick(rng, [c for c in t.columns if c.categorical and not c.is_key])
    q_c = quote(col.name)
    sql = f"SELECT {q_c}, count(*) FROM {quote(t.name)} GROUP BY {q_c}"
    question = f"For each {humanize(col.name)}, how many {humanize(t.name)} entries are there?"
    return TemplateCandidate("group_count", sql, question, [t.name])


def _group_aggregate(rng, db):
    t = _pick(rng, [t for t in _tables_with_rows(db) if any(c.categorical for c in t.columns if not c.is_key)])
    col = _pick(rng, [c for c in t.columns if c.categorical and not c.is_key])
    num = _pick(rng, [c for c in t.measures() if c.name != col.name and c.n_distinct >= 2])
    agg = _pick(rng, list(_AGGS))
    q_c = quote(col.name)
    sql = f"SELECT {q_c}, {agg}({quote(num.name)}) FROM {quote(t.name)} GROUP BY {q_c}"
    question = f"What is the {_AGGS[agg]} {humanize(num.name)} of the {humanize(t.name)} entries for each {humanize(col.name)}?"
    return TemplateCandidate("group_aggregate", sql, question, [t.name])


def _group_having(rng, db):
    t = _pick(rng, [t for t in _tables_with_rows(db) if any(c.categorical for c in t.columns if not c.is_key)])
    col = _pick(rng, [c for c in t.columns if c.categorical and not c.is_key])
    k = rng.choice([2, 2, 3])
    q_c = quote(col.name)
    sql = f"SELECT {q_c} FROM {quote(t.name)} GROUP BY {q_c} HAVING count(*) >= {k}"
    question = f"Which {humanize(col.name)} values appear in at least {k} {humanize(t.name)} entries?"
    return TemplateCandidate(
        "group_having", sql, question, [t.name], [f"SELECT {q_c} FROM {quote(t.name)} GROUP BY {q_c}"]
    )


def _order_limit(rng, db):
    t = _pick(rng, [t for t in _tables_with_rows(db, 3) if any(c.n_distinct >= 3 for c in t.measures())])
    num = _pick(rng, [c for c in t.measures() if c.n_distinct >= 3])
    proj = _projection(rng, t, avoid=num.name)
    desc = rng.random() < 0.6
    k = rng.choice([1, 1, 3, 5])
    k = min(k, max(1, t.row_count - 1))
    sql = f"SELECT {_cols_sql(proj)} FROM {quote(t.name)} ORDER BY {quote(num.name)} {'DESC' if desc else 'ASC'} LIMIT {k}"
    most = "highest" if desc else "lowest"
    if k == 1:
        question = (
            f"What is the {_cols_say(proj)} of the {humanize(t.name)} entry with the {most} {humanize(num.name)}?"
        )
    else:
        question = (
            f"Show the {_cols_say(proj)} of the {k} {humanize(t.name)} entries with the {most} {humanize(num.name)}."
        )
    return TemplateCandidate("order_limit", sql, question, [t.name])


def _superlative_group(rng, db):
    t = _pick(rng, [t for t in _tables_with_rows(db) if any(c.categorical for c in t.columns if not c.is_key)])
    col = _pick(rng, [c for c in t.columns if c.categorical and not c.is_key])
    q_c = quote(col.name)
    desc = rng.random() < 0.7
    sql = f"SELECT {q_c} FROM {quote(t.name)} GROUP BY {q_c} ORDER BY count(*) {'DESC' if desc else 'ASC'} LIMIT 1"
    question = (
        f"Which {humanize(col.name)} is the {'most' if desc else 'least'} common among the {humanize(t.name)} entries?"
    )
    # a tie for first place makes LIMIT 1 arbitrary: the baseline is the runner-up, which must differ in count
    tie_check = f"SELECT count(*) FROM {quote(t.name)} GROUP BY {q_c} ORDER BY count(*) {'DESC' if desc else 'ASC'} LIMIT 1 OFFSET 1"
    first = (
        f"SELECT count(*) FROM {quote(t.name)} GROUP BY {q_c} ORDER BY count(*) {'DESC' if desc else 'ASC'} LIMIT 1"
    )
    return TemplateCandidate("superlative_group", sql, question, [t.name], different=[(first, tie_check)])


def _between(rng, db):
    t = _pick(rng, [t for t in _tables_with_rows(db, 3) if any(len(c.values) >= 4 for c in t.measures())])
    num = _pick(rng, [c for c in t.measures() if len(c.values) >= 4])
    n = len(num.values)
    lo = num.values[rng.randrange(0, n // 2)]
    hi = num.values[rng.randrange(n // 2, n)]
    proj = _projection(rng, t, avoid=num.name)
    q_t = quote(t.name)
    sql = f"SELECT {_cols_sql(proj)} FROM {q_t} WHERE {quote(num.name)} BETWEEN {literal(lo)} AND {literal(hi)}"
    question = f"List the {_cols_say(proj)} of the {humanize(t.name)} entries whose {humanize(num.name)} is between {_say(lo)} and {_say(hi)}."
    return TemplateCandidate("between", sql, question, [t.name], [f"SELECT {_cols_sql(proj)} FROM {q_t}"])


def _like(rng, db):
    t = _pick(rng, [t for t in _tables_with_rows(db, 3) if any(len(c.values) >= 3 for c in t.of_kind("text"))])
    col = _pick(rng, [c for c in t.of_kind("text") if len(c.values) >= 3])
    word = _pick(rng, [w for v in col.values for w in re.findall(r"[A-Za-z]{3,}", v)])
    proj = _projection(rng, t)
    q_t = quote(t.name)
    sql = f"SELECT {_cols_sql(proj)} FROM {q_t} WHERE {quote(col.name)} LIKE '%{word}%'"
    question = f'Which {humanize(t.name)} entries have a {humanize(col.name)} containing "{word}"? Give their {_cols_say(proj)}.'
    return TemplateCandidate("like", sql, question, [t.name], [f"SELECT {_cols_sql(proj)} FROM {q_t}"])


def _join_parts(rng, db) -> tuple[JoinPath, TableProfile, TableProfile, str]:
    join = _pick(rng, [j for j in db.joins if db.tables[j.child].row_count and db.tables[j.parent].row_count])
    child, parent = db.tables[join.child], db.tables[join.parent]
    on = f"T1.{quote(join.child_column)} = T2.{quote(join.parent_column)}"
    return join, child, parent, f"{quote(child.name)} AS T1 JOIN {quote(parent.name)} AS T2 ON {on}"


def _join_project(rng, db):
    join, child, parent, source = _join_parts(rng, db)
    a = _pick(rng, _display_columns(child))
    b = _pick(rng, [c for c in _display_columns(parent) if c.name != join.parent_column] or _display_columns(parent))
    sql = f"SELECT T1.{quote(a.name)}, T2.{quote(b.name)} FROM {source}"
    question = (
        f"For each {humanize(child.name)} entry, show its {humanize(a.name)} and the {humanize(b.name)} of the "
        f"{humanize(parent.name)} it refers to."
    )
    return TemplateCandidate("join_project", sql, question, [child.name, parent.name])


def _join_filter(rng, db):
    join, child, parent, source = _join_parts(rng, db)
    cond, say, col = _condition(rng, parent, alias="T2", avoid=join.parent_column)
    proj = _projection(rng, child)
    sql = f"SELECT {_cols_sql(proj, 'T1')} FROM {source} WHERE {cond}"
    question = f"What are the {_cols_say(proj)} of the {humanize(child.name)} entries whose {humanize(parent.name)} has {say}?"
    return TemplateCandidate(
        "join_filter", sql, question, [child.name, parent.name], [f"SELECT {_cols_sql(proj, 'T1')} FROM {source}"]
    )


def _join_group(rng, db):
    join, child, parent, source = _join_parts(rng, db)
    b = _pick(rng, [c for c in _display_columns(parent) if c.name != join.parent_column] or _display_columns(parent))
    sql = f"SELECT T2.{quote(b.name)}, count(*) FROM {source} GROUP BY T1.{quote(join.child_column)}"
    question = f"For each {humanize(parent.name)}, show its {humanize(b.name)} and the number of {humanize(child.name)} entries it has."
    return TemplateCandidate("join_group", sql, question, [child.name, parent.name])


def _nested_in(rng, db):
    join = _pick(rng, db.joins)
    child, parent = db.tables[join.child], db.tables[join.parent]
    cond, say, _ = _condition(rng, child, avoid=join.child_column)
    proj = _projection(rng, parent, avoid=join.parent_column)
    q_p = quote(parent.name)
    sql = (
        f"SELECT {_cols_sql(proj)} FROM {q_p} WHERE {quote(join.parent_column)} IN "
        f"(SELECT {quote(join.child_column)} FROM {quote(child.name)} WHERE {cond})"
    )
    question = f"What are the {_cols_say(proj)} of the {humanize(parent.name)} entries that have a {humanize(child.name)} with {say}?"
    return TemplateCandidate(
        "nested_in", sql, question, [parent.name, child.name], [f"SELECT {_cols_sql(proj)} FROM {q_p}"]
    )


def _nested_not_in(rng, db):
    join = _pick(rng, db.joins)
    child, parent = db.tables[join.child], db.tables[join.parent]
    proj = _projection(rng, parent, avoid=join.parent_column)
    q_p = quote(parent.name)
    sql = (
        f"SELECT {_cols_sql(proj)} FROM {q_p} WHERE {quote(join.parent_column)} NOT IN "
        f"(SELECT {quote(join.child_column)} FROM {quote(child.name)} WHERE {quote(join.child_column)} IS NOT NULL)"
    )
    question = f"Which {humanize(parent.name)} entries have no {humanize(child.name)}? Show their {_cols_say(proj)}."
    return TemplateCandidate(
        "nested_not_in", sql, question, [parent.name, child.name], [f"SELECT {_cols_sql(proj)} FROM {q_p}"]
    )


def _nested_avg(rng, db):
    t = _pick(rng, [t for t in _tables_with_rows(db, 3) if any(c.n_distinct >= 3 for c in t.measures())])
    num = _pick(rng, [c for c in t.measures() if c.n_distinct >= 3])
    proj = _projection(rng, t, avoid=num.name)
    above = rng.random() < 0.6
    q_t, q_n = quote(t.name), quote(num.name)
    sql = f"SELECT {_cols_sql(proj)} FROM {q_t} WHERE {q_n} {'>' if above else '<'} (SELECT avg({q_n}) FROM {q_t})"
    question = (
        f"Which {humanize(t.name)} entries have a {humanize(num.name)} {'above' if above else 'below'} the average "
        f"{humanize(num.name)}? Show their {_cols_say(proj)}."
    )
    return TemplateCandidate("nested_avg", sql, question, [t.name], [f"SELECT {_cols_sql(proj)} FROM {q_t}"])


def _set_operation(op: str):
    def family(rng, db):
        t = _pick(rng, _tables_with_rows(db, 3))
        categorical = [c for c in t.columns if c.categorical and not c.is_key]
        proj = [_pick(rng, categorical if categorical and rng.random() < 0.7 else _display_columns(t))]
        cond1, say1, col1 = _condition(rng, t, avoid=proj[0].name)
        cond2, say2, _ = _condition(rng, t, avoid=(proj[0].name, col1))
        q_t = quote(t.name)
        first = f"SELECT {_cols_sql(proj)} FROM {q_t} WHERE {cond1}"
        second = f"SELECT {_cols_sql(proj)} FROM {q_t} WHERE {cond2}"
        what, entries = _cols_say(proj), f"{humanize(t.name)} entries"
        if op == "UNION":
            question = f"List the {what} of {entries} with {say1} or with {say2}."
        elif op == "INTERSECT":
            question = f"Which {what} values belong both to {entries} with {say1} and to {entries} with {say2}?"
        else:
            question = f"Which {what} values belong to {entries} with {say1} but not to any with {say2}?"
        sql = f"{first} {op} {second}"
        return TemplateCandidate(f"set_{op.lower()}", sql, question, [t.name], [first, second])

    return family


FAMILIES: dict[str, Callable[[random.Random, DatabaseProfile], TemplateCandidate]] = {
    "filter_numeric": _filter_numeric,
    "filter_text": _filter_text,
    "count_filter": _count_filter,
    "aggregate": _aggregate,
    "distinct_count": _distinct_count,
    "group_count": _group_count,
    "group_aggregate": _group_aggregate,
    "group_having": _group_having,
    "order_limit": _order_limit,
    "superlative_group": _superlative_group,
    "between": _between,
    "like": _like,
    "join_project": _join_project,
    "join_filter": _join_filter,
    "join_group": _join_group,
    "nested_in": _nested_in,
    "nested_not_in": _nested_not_in,
    "nested_avg": _nested_avg,
    "set_union": _set_operation("UNION"),
    "set_intersect": _set_operation("INTERSECT"),
    "set_except": _set_operation("EXCEPT"),
}


# ---------------------------------------------------------------------------------------------------------------
# Checking and generating candidates
# ---------------------------------------------------------------------------------------------------------------


def _bag(rows) -> list:
    return sorted(tuple(repr(v) for v in row) for row in rows)


def check_candidate(db: DatabaseProfile, candidate: TemplateCandidate, *, timeout: float = 10.0):
    """Execute a candidate and judge its result.

    Returns:
        `(reason, result)`: reason is None when the candidate is kept, else one of "exec_error",
        "empty_result", "null_result", "zero_result", "too_many_rows", "same_as_baseline", "tie".
    """
    from sense_hub.execution import execute

    result = execute(db.path, candidate.sql, timeout=timeout, max_rows=MAX_RESULT_ROWS + 1)
    if not result.ok:
        return ("too_many_rows" if result.error == "too_large" else "exec_error"), result
    if not result.rows:
        return "empty_result", result
    if all(v is None for row in result.rows for v in row):
        return "null_result", result
    if len(result.rows) > MAX_RESULT_ROWS or result.truncated:
        return "too_many_rows", result
    if len(result.rows) == 1 and len(result.rows[0]) == 1 and result.rows[0][0] == 0 and "count(" in candidate.sql:
        return "zero_result", result
    mine = _bag(result.rows)
    for baseline in candidate.baselines:
        other = execute(db.path, baseline, timeout=timeout, max_rows=100_000)
        if other.ok and _bag(other.rows) == mine:
            return "same_as_baseline", result
    for first, second in candidate.different:
        a, b = execute(db.path, first, timeout=timeout), execute(db.path, second, timeout=timeout)
        if a.ok and b.ok and a.rows and b.rows and a.rows == b.rows:
            return "tie", result
    return None, result


def generate_candidates(
    db: DatabaseProfile,
    *,
    n: int,
    seed: int = 0,
    families: list[str] | None = None,
    seen_sql: set[str] | None = None,
    max_attempts_per_candidate: int = 12,
    timeout: float = 10.0,
) -> tuple[list[TemplateCandidate], dict[str, int]]:
    """Fill templates from one database until `n` distinct candidates pass the execution checks.

    Families take turns (round robin over a seeded shuffle) so that every family that fits the database is
    represented; a family that cannot be filled (no foreign key for a join) drops out.

    Args:
        db: the profile from `profile_database`.
        n: how many candidates to return (fewer when the database runs out of distinct ones).
        seed: the random seed; the same seed gives the same candidates in the same order.
        families: names from `FAMILIES` to use (default: all).
        seen_sql: normalized SQL already taken (updated in place); duplicates are skipped.
        max_attempts_per_candidate: give up after `n * max_attempts_per_candidate` fills.
        timeout: seconds per query.

    Returns:
        `(candidates, rejected)`: rejected counts the reasons fills were dropped ("duplicate_sql", "exec_error",
        "empty_result", "same_as_baseline", ...).
    """
    names = list(families or FAMILIES)
    unknown = [name for name in names if name not in FAMILIES]
    if unknown:
        raise ValueError(f"unknown template families {unknown}; choose from {sorted(FAMILIES)}")
    rng = random.Random(f"{seed}-{db.db_id}")
    rng.shuffle(names)
    seen = seen_sql if seen_sql is not None else set()
    rejected: dict[str, int] = {}
    failures = dict.fromkeys(names, 0)
    out: list[TemplateCandidate] = []
    attempts = 0
    turn = 0
    while len(out) < n and names and attempts < n * max_attempts_per_candidate:
        name = names[turn % len(names)]
        turn += 1
        attempts += 1
        try:
            candidate = FAMILIES[name](rng, db)
        except _Skip:
            candidate = None
        if candidate is None:
            failures[name] += 1
            if failures[name] >= 8:  # this family does not fit this database
                names.remove(name)
            continue
        key = dedup_key(candidate.sql)
        if key in seen:
            rejected["duplicate_sql"] = rejected.get("duplicate_sql", 0) + 1
            failures[name] += 1
            if failures[name] >= 25:
                names.remove(name)
            continue
        reason, _ = check_candidate(db, candidate, timeout=timeout)
        if reason is not None:
            rejected[reason] = rejected.get(reason, 0) + 1
            failures[name] += 1
            if failures[name] >= 25:
                names.remove(name)
            continue
        seen.add(key)
        out.append(candidate)
    return out, rejected
