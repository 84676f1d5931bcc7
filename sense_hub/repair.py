"""Execution-guided repair: an answer whose SQL SQLite refuses is fixed before it is returned.

A round, for every answer that does not run (syntax, unknown table or column, runtime error, timeout, empty SQL):

1. **Names and joins, without the model.** SQLite's "no such column: pet_type" names what is wrong. When exactly
   one name of the schema is the same up to letter case, `_` and spaces (`PetType`), or exactly one table holds the
   column a wrong qualifier points at (`Pets.StuID` when only `Has_Pet` has `StuID` among the query's tables), the
   name is replaced (`fix_names`). When the column belongs to a table the query does not join, and exactly one
   such table is linked by a foreign key to one the query uses, that table is joined on the key and the column
   qualified with it (`join_for_column`: `FROM Student WHERE PetID IN ...` becomes `FROM Student JOIN Has_Pet ON
   Student.StuID = Has_Pet.StuID WHERE Has_Pet.PetID IN ...`). Up to three such fixes in a row, each run again;
   no model call. On the 0.5B's 972 greedy Spider dev answers they make 247 of the 354 failing answers run, 122 of
   them right: EX 48.0% -> 60.6% (`bench/answers_that_run.py --from-judged`).
2. **The model, shown the error.** Otherwise the model is asked again with its SQL, SQLite's message and, for an
   unknown name, the closest real names (`Columns with similar names: Pets.PetType`) and the columns of the
   tables the query uses. Asked greedily, a 0.5B model mostly writes the same SQL again (FACTS: 0 of 18 fixed),
   so by default it samples `samples` answers (temperature 0.7) and the execution-majority vote among those that
   run is kept (`sampling.majority_vote`); when none runs, the first sample is kept for the next round.

Up to `rounds` rounds; an answer that still fails keeps its last SQL, and every answer records how many model
calls repair spent and the errors it passed through. Repair never sees the gold SQL: it only asks whether the
query runs, so an answer that runs and is wrong is left as it is.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from sense_hub.generation import GenerationConfig, Generator

#: Errors repair acts on: the query did not produce a result. `empty` (SQL missing) counts; `missing_db`,
#: `refused` (a write) and `too_large` do not: asking again cannot fix the database or the request.
REPAIRABLE = frozenset({"syntax", "runtime", "timeout", "empty", "crash"})

STYLES = ("conversation", "restate")

_NO_SUCH = re.compile(r"no such (column|table): ([^\s,;]+)", re.IGNORECASE)


@dataclass
class Repaired:
    """One answer after repair.

    Attributes:
        sql: the final SQL (the first SQL when it ran or repair was off).
        model_calls: model calls repair spent on this answer (0 when the first SQL ran or a name fix worked).
        name_fixes: names replaced without the model.
        errors: SQLite's message for each SQL that failed, in order.
        runs: whether the final SQL executes.
    """

    sql: str
    model_calls: int = 0
    name_fixes: int = 0
    errors: list[str] = field(default_factory=list)
    runs: bool = True

    @property
    def changed(self) -> bool:
        return self.model_calls > 0 or self.name_fixes > 0


def _norm(name: str) -> str:
    return re.sub(r"[\s_\-]", "", name.strip("`\"[]'")).lower()


class SchemaIndex:
    """Table and column names of one database, for name hints and name fixes."""

    def __init__(self, db_path: str | Path) -> None:
        from sense_hub.prompts import cached_schema

        schema = cached_schema(db_path, 0)
        self.tables = {t.name: [c.name for c in t.columns] for t in schema.tables}
        self.columns = [(t, c) for t, cols in self.tables.items() for c in cols]
        self.links = [(t.name, fk.column, fk.ref_table, fk.ref_column) for t in schema.tables for fk in t.foreign_keys]

    def table_of(self, name: str) -> str | None:
        matches = [t for t in self.tables if t.lower() == name.lower()]
        return matches[0] if matches else None

    def similar(self, name: str, *, kind: str, limit: int = 4) -> list[str]:
        """The closest real names: `Table.Column` for a column, `Table` for a table."""
        bare = name.split(".")[-1]
        if kind == "table":
            pool = {t: t for t in self.tables}
        else:
            pool = {f"{t}.{c}": c for t, c in self.columns}
        exact = [full for full, short in pool.items() if _norm(short) == _norm(bare)]
        lowered = {full: _norm(short) for full, short in pool.items()}
        close = difflib.get_close_matches(_norm(bare), list(lowered.values()), n=limit * 3, cutoff=0.5)
        ranked = exact + [full for c in close for full, short in lowered.items() if short == c]
        return list(dict.fromkeys(ranked))[:limit]


def _tables_in(sql: str, index: SchemaIndex) -> list[str]:
    words = {w.lower() for w in re.findall(r"[A-Za-z_][A-Za-z0-9_]*", sql)}
    return [t for t in index.tables if t.lower() in words]


def _aliases(sql: str, index: SchemaIndex) -> dict[str, str]:
    """alias (lower case) -> table, from `FROM t AS a` / `JOIN t a`, plus each table under its own name."""
    out = {t.lower(): t for t in index.tables}
    for table, alias in re.findall(r"\b(?:FROM|JOIN)\s+([A-Za-z_]\w*)(?:\s+(?:AS\s+)?([A-Za-z_]\w*))?", sql, re.I):
        real = index.table_of(table)
        if real and alias and alias.upper() not in _KEYWORDS_AFTER_TABLE:
            out[alias.lower()] = real
    return out


_KEYWORDS_AFTER_TABLE = {
    "WHERE", "JOIN", "ON", "GROUP", "ORDER", "LIMIT", "INNER", "LEFT", "RIGHT", "CROSS", "NATURAL", "UNION",
    "EXCEPT", "INTERSECT", "HAVING", "AS", "USING", "OUTER", "FULL",
}  # fmt: skip


def fix_names(sql: str, message: str, index: SchemaIndex) -> str | None:
    """The SQL with the unknown name of SQLite's `message` replaced, when one replacement is unambiguous, else None.

    - `no such column: pet_type` and exactly one column of the query's tables equal up to case, `_` and spaces
      (`PetType`): replaced wherever it appears as a word.
    - `no such column: T2.StuID` where T2's table lacks `StuID` and exactly one other table of the query has it:
      the qualifier is changed to that table's alias.
    - `no such table: pet` and exactly one table equal up to case, `_`, spaces and a plural `s`: replaced.
    """
    found = _NO_SUCH.search(message or "")
    if not found:
        return None
    kind, name = found.group(1).lower(), found.group(2)
    if kind == "table":
        wanted = _norm(name).rstrip("s")
        same = [t for t in index.tables if _norm(t).rstrip("s") == wanted]
        if len(same) != 1:
            return None
        return _replace_word(sql, name, same[0])
    aliases = _aliases(sql, index)
    qualifier, _, column = name.rpartition(".")
    same = [(t, c) for t in _tables_in(sql, index) for c in index.tables[t] if _norm(c) == _norm(column)]
    if qualifier:
        holders = {t for t, _ in same}
        if len(holders) == 1:
            (table,) = holders
            real = next(c for t, c in same if t == table)
            named = [a for a, t in aliases.items() if t == table and a != table.lower()]
            alias = next((a for a in named if re.search(rf"\b{re.escape(a)}\s*\.", sql, re.I)), None)
            alias = alias or (named[0] if named else None)
            if alias:  # as the query spells it
                alias = re.search(rf"\b({re.escape(alias)})\b", sql, re.I).group(1)
            new_ref = f"{alias or table}.{real}"
            return re.sub(rf"\b{re.escape(qualifier)}\s*\.\s*{re.escape(column)}\b", new_ref, sql, flags=re.I)
        return None
    columns = {c for _, c in same}
    if len(columns) != 1:
        return None
    return _replace_word(sql, column, columns.pop())


def join_for_column(sql: str, message: str, index: SchemaIndex) -> str | None:
    """The SQL with the table that holds SQLite's unknown column joined in, when one join is unambiguous, else None.

    For `no such column: C` (or `Q.C`): the innermost SELECT that uses the name must read only plain tables; among
    the tables it does not read, exactly one foreign-key link may connect a table with a column `C` (equal up to
    case, `_` and spaces) to one it reads. That table is joined on the link (aliased `T<n>` when the query uses
    aliases), the column is qualified with it, and the SELECT's other bare columns are qualified with their tables
    first, so the new table cannot make them ambiguous. The result is parsed and written by sqlglot.
    """
    import sqlglot
    from sqlglot import exp

    found = _NO_SUCH.search(message or "")
    if not found or found.group(1).lower() != "column":
        return None
    qualifier, _, column = found.group(2).rpartition(".")
    try:
        tree = sqlglot.parse_one(sql, read="sqlite")
    except sqlglot.errors.SqlglotError:
        return None
    if tree is None:
        return None
    cols = [
        c
        for c in tree.find_all(exp.Column)
        if _norm(c.name) == _norm(column) and (c.table or "").lower() == qualifier.lower()
    ]
    select = cols[0].find_ancestor(exp.Select) if cols else None
    source = None if select is None else (select.args.get("from_") or select.args.get("from"))
    if source is None:
        return None
    sources = [source.this] + [j.this for j in select.args.get("joins") or []]
    present: dict[str, str] = {}  # the name the query reads a table under (lower case) -> the real table
    spelled: dict[str, str] = {}  # the real table -> how the query names it
    for table in sources:
        real = index.table_of(table.name) if isinstance(table, exp.Table) else None
        if real is None:  # a subquery or an unknown table: no guessing
            return None
        used = table.alias or table.name
        present[used.lower()] = real
        spelled.setdefault(real, used)
    holders = [t for t, cs in index.tables.items() if t not in spelled and any(_norm(c) == _norm(column) for c in cs)]
    path = _join_path(holders, spelled, index)
    if path is None:
        return None
    table = path[-1][0]
    real_column = next(c for c in index.tables[table] if _norm(c) == _norm(column))
    aliased = any(t.alias for t in sources)
    names: list[str] = []  # what each joined table is called in the query
    taken = set(present)
    for joined_table, *_ in path:
        name = joined_table
        if aliased:
            n = 1
            while f"t{n}" in taken:
                n += 1
            name = f"T{n}"
        taken.add(name.lower())
        names.append(name)
    for c in select.find_all(exp.Column):  # the SELECT's own bare columns, qualified with the one table that has them
        if c.table or c in cols or c.find_ancestor(exp.Select) is not select:
            continue
        owners = [u for u, real in present.items() if any(_norm(k) == _norm(c.name) for k in index.tables[real])]
        if len(owners) == 1:
            c.set("table", exp.to_identifier(spelled[present[owners[0]]]))
    previous = None
    for (joined_table, key, other, other_key), name in zip(path, names, strict=True):
        joined = exp.alias_(exp.to_table(joined_table), name, table=True) if aliased else exp.to_table(joined_table)
        left = spelled[other] if previous is None else previous
        on = sqlglot.parse_one(f"{left}.{other_key} = {name}.{key}", read="sqlite")
        select.append("joins", exp.Join(this=joined, on=on))
        previous = name
    for c in cols:
        if c.find_ancestor(exp.Select) is select:
            c.set("table", exp.to_identifier(names[-1]))
            c.set("this", exp.to_identifier(real_column))
    return tree.sql(dialect="sqlite")


def _join_path(holders: list[str], spelled: dict[str, str], index: SchemaIndex) -> list[tuple] | None:
    """The one shortest foreign-key path from a table the query reads to a table in `holders`: a list of
    `(table to join, its key, the table it joins to, that table's key)`, one step or two (through a table the query
    does not read); None when there is none or more than one of the shortest length."""
    edges = [(a, ac, b, bc) for a, ac, b, bc in index.links] + [(b, bc, a, ac) for a, ac, b, bc in index.links]
    direct = [(x, xk, t, tk) for x, xk, t, tk in edges if x in holders and t in spelled]
    if direct:
        return direct if len(direct) == 1 else None
    two = [
        [(m, mk2, t, tk), (x, xk, m, mk)]
        for x, xk, m, mk in edges
        if x in holders and m not in spelled and m not in holders
        for m2, mk2, t, tk in edges
        if m2 == m and t in spelled
    ]
    return two[0] if len(two) == 1 else None


def _replace_word(sql: str, old: str, new: str) -> str | None:
    out, count = re.subn(rf"(?<![\w.]){re.escape(old)}(?!\w)", new, sql)
    if not count:
        out, count = re.subn(rf"(?<!\w){re.escape(old)}(?!\w)", new, sql)
    return out if count and out != sql else None


def feedback(sql: str, message: str, index: SchemaIndex | None) -> str:
    """What the model is told about a query that failed: SQLite's message, similar names, the tables' columns."""
    lines = [f"SQLite could not run that query: {message or 'it is empty'}."]
    found = _NO_SUCH.search(message or "")
    if index is not None:
        if found:
            kind, name = found.group(1).lower(), found.group(2)
            similar = index.similar(name, kind=kind)
            if similar:
                what = "Tables" if kind == "table" else "Columns"
                lines.append(f"{what} with similar names: {', '.join(similar)}.")
        tables = _tables_in(sql, index) or list(index.tables)[:6]
        if found:  # the tables that hold the names it may have meant
            tables += [s.split(".")[0] for s in index.similar(found.group(2), kind=found.group(1).lower())]
            tables = [t for t in dict.fromkeys(tables) if t in index.tables]
        for t in tables:
            lines.append(f"Columns of {t}: {', '.join(index.tables[t])}.")
        joins = [f"{a}.{b} = {c}.{d}" for a, b, c, d in index.links if a in tables or c in tables]
        if joins:
            lines.append(f"Join keys: {'; '.join(joins)}.")
    lines.append("Use only these names. Write the corrected SQLite query only.")
    return "\n".join(lines)


def repair_prompt(prompt: list[dict], sql: str, message: str, index: SchemaIndex | None, style: str) -> list[dict]:
    """The prompt of a repair call.

    `conversation`: the original prompt, the failed SQL as the assistant's turn, then the feedback as the user's.
    `restate`: one user turn: the original question and schema, the failed SQL and the feedback (small models
    often repeat their own assistant turn; restating the task in one message avoids that).
    """
    note = feedback(sql, message, index)
    if style == "conversation":
        return [*prompt, {"role": "assistant", "content": sql or "(no SQL)"}, {"role": "user", "content": note}]
    if style != "restate":
        raise ValueError(f"unknown repair style {style!r}; expected one of {STYLES}")
    head, last = prompt[:-1], prompt[-1]
    content = f"{last['content']}\n\nA previous answer was:\n{sql or '(no SQL)'}\n{note}"
    return [*head, {**last, "content": content}]


def _needs_repair(result) -> bool:
    return not result.ok and (result.error in REPAIRABLE)


def repair(
    generator: Generator | None,
    prompts: Sequence[list[dict]],
    sqls: Sequence[str],
    db_paths: Sequence[str | Path],
    *,
    rounds: int = 1,
    config: GenerationConfig | None = None,
    style: str = "restate",
    fix_names_first: bool = True,
    timeout: float = 30.0,
    grammars: Sequence[str | None] | None = None,
    samples: int = 4,
    temperature: float = 0.7,
) -> list[Repaired]:
    """Repair the answers whose SQL does not run (see the module docstring).

    Args:
        generator: the model that wrote the answers; None: only the name and join fixes, no model call.
        prompts: the prompt of each answer.
        sqls: the SQL of each answer.
        db_paths: the database of each answer.
        rounds: repair rounds at most (0: only report whether each answer runs).
        config: decoding of the repair calls (default 256 new tokens); `n` and `temperature` come from
            `samples` and `temperature`.
        style: `restate` or `conversation` (`repair_prompt`).
        fix_names_first: try the name fix before asking the model.
        timeout: seconds per query.
        grammars: schema-aware decoding for the repair calls, one grammar per answer (`constrained`).
        samples: answers sampled per repair call (1: one greedy answer).
        temperature: their temperature (ignored when `samples` is 1).

    Returns:
        One `Repaired` per answer, in order.
    """
    from sense_hub.evaluation import evaluate_generator
    from sense_hub.execution import Executor
    from sense_hub.sampling import majority_vote

    if not len(prompts) == len(sqls) == len(db_paths):
        raise ValueError("repair needs one prompt, SQL and database path per answer")
    if style not in STYLES:
        raise ValueError(f"unknown repair style {style!r}; expected one of {STYLES}")
    if samples < 1:
        raise ValueError(f"`samples` must be at least 1, got {samples}")
    config = replace(
        config or GenerationConfig(max_new_tokens=256),
        n=samples,
        temperature=temperature if samples > 1 else 0.0,
        grammars=None,
    )
    out = [Repaired(sql=s) for s in sqls]
    indexes: dict[str, SchemaIndex | None] = {}

    def index_of(path) -> SchemaIndex | None:
        key = str(path)
        if key not in indexes:
            try:
                indexes[key] = SchemaIndex(path)
            except Exception:  # a missing or broken database: repair goes on without hints
                indexes[key] = None
        return indexes[key]

    with Executor(timeout=timeout, workers=0) as executor:
        results = executor.map([(str(d), s) for d, s in zip(db_paths, sqls, strict=True)])
        failing = [i for i, r in enumerate(results) if _needs_repair(r)]
        for i, r in enumerate(results):
            out[i].runs = r.ok
        for _ in range(rounds):
            if not failing:
                break
            ask = []
            for i in failing:
                message = results[i].message or results[i].error or ""
                out[i].errors.append(message)
                index = index_of(db_paths[i])
                sql, fixes = out[i].sql, 0
                while fix_names_first and index is not None and fixes < 3:  # names and joins, no model call
                    fixed = fix_names(sql, message, index) or join_for_column(sql, message, index)
                    if fixed is None:
                        break
                    result = executor.map([(str(db_paths[i]), fixed)])[0]
                    sql, fixes = fixed, fixes + 1
                    if result.ok:
                        out[i].sql, out[i].runs, out[i].name_fixes = fixed, True, out[i].name_fixes + fixes
                        results[i] = result
                        break
                    message = result.message or result.error or ""
                if out[i].runs and out[i].name_fixes:
                    continue
                ask.append(i)
            if ask and generator is not None:
                repair_prompts = [
                    repair_prompt(
                        list(prompts[i]),
                        out[i].sql,
                        results[i].message or results[i].error or "",
                        index_of(db_paths[i]),
                        style,
                    )
                    for i in ask
                ]
                call_config = config
                if grammars is not None:
                    call_config = replace(config, grammars=tuple(grammars[i] for i in ask))
                answers = evaluate_generator(generator, repair_prompts, config=call_config)
                new = executor.map(
                    [(str(db_paths[i]), sql) for i, a in zip(ask, answers, strict=True) for sql in a.sqls]
                )
                for k, (i, answer) in enumerate(zip(ask, answers, strict=True)):
                    found = new[k * samples : (k + 1) * samples]
                    chosen, _ = majority_vote(found)  # (0, 0) when none runs: the first sample
                    out[i].model_calls += 1
                    out[i].sql, out[i].runs = answer.sqls[chosen], found[chosen].ok
                    results[i] = found[chosen]
            failing = [i for i in failing if _needs_repair(results[i])]
        for i in failing:  # the last failure's message, when the rounds ran out
            if rounds and (not out[i].errors or out[i].errors[-1] != (results[i].message or results[i].error)):
                out[i].errors.append(results[i].message or results[i].error or "")
    return out


__all__ = [
    "REPAIRABLE",
    "STYLES",
    "Repaired",
    "SchemaIndex",
    "feedback",
    "fix_names",
    "join_for_column",
    "repair",
    "repair_prompt",
]
