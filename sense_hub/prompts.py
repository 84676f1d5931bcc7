"""The one prompt: schema serialization, the chat messages, and SQL extraction from model output.

Every stage that shows a question to a model (weak sampling, predictions, SFT/cDPO training records, the Space)
builds its messages here, so a model is trained on exactly the prompt it is evaluated and served with.

The schema is written as `CREATE TABLE` statements with primary and foreign keys and, as SQL comments, a few
sample values per column (they tell a small model how values are spelled: `'France'`, not `'france'`). Big
schemas are trimmed to a character budget (about 3.5 characters per token for DDL): sample values go first,
then the non-key columns of the tables least related to the question, then whole far tables.
"""

from __future__ import annotations

import functools
import re
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "INSTRUCTION",
    "SYSTEM_PROMPT",
    "build_prompt",
    "extract_sql",
    "prompt_for_database",
    "serialize_schema",
    "statement_complete",
]

SYSTEM_PROMPT = "You are a text-to-SQL assistant. Answer with one SQLite SELECT query and nothing else."
INSTRUCTION = "Answer with one SQLite SELECT query that starts with SELECT."
# (Wording chosen on the embedded SmolLM2-135M: asking for a query "that starts with SELECT" stops it from echoing
# the CREATE TABLE statements back, its most common failure with a plainer instruction.)

_MAX_SAMPLE_CHARS = 40


# ---------------------------------------------------------------------------------------------------------------
# Schema serialization
# ---------------------------------------------------------------------------------------------------------------


def _quote_name(name: str) -> str:
    if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        return name
    return '"' + name.replace('"', '""') + '"'


def _literal(value) -> str | None:
    """A sample value as a short SQL literal; None for values not worth showing (blobs, empty strings)."""
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        text = " ".join(value.split())
        if not text:
            return None
        if len(text) > _MAX_SAMPLE_CHARS:
            text = text[: _MAX_SAMPLE_CHARS - 3] + "..."
        return "'" + text.replace("'", "''") + "'"
    return None


@dataclass
class _TableView:
    """One table and how much of it to show (the trimming state)."""

    table: object  # sense_hub.databases.Table
    samples: int
    keys_only: bool = False
    dropped: bool = False
    key_columns: set = field(default_factory=set)

    def render(self) -> str:
        table = self.table
        pk = [c.name for c in table.columns if c.primary_key]
        lines = []
        hidden = 0
        for column in table.columns:
            if self.keys_only and column.name not in self.key_columns:
                hidden += 1
                continue
            line = f"  {_quote_name(column.name)}"
            if column.type:
                line += f" {column.type}"
            if column.primary_key and len(pk) == 1:
                line += " PRIMARY KEY"
            values = []
            integer_key = column.primary_key and "INT" in column.type.upper()
            if self.samples > 0 and not integer_key:
                values = [v for v in (_literal(s) for s in column.samples[: self.samples]) if v is not None]
            lines.append((line, values))
        if len(pk) > 1:
            lines.append((f"  PRIMARY KEY ({', '.join(_quote_name(c) for c in pk)})", []))
        for fk in table.foreign_keys:
            ref = f"{_quote_name(fk.ref_table)}({_quote_name(fk.ref_column)})" if fk.ref_column else fk.ref_table
            lines.append((f"  FOREIGN KEY ({_quote_name(fk.column)}) REFERENCES {ref}", []))
        body = []
        for i, (line, values) in enumerate(lines):
            text = line + ("," if i < len(lines) - 1 else "")
            if values:
                text += " -- e.g. " + ", ".join(values)
            body.append(text)
        if hidden:
            body.append(f"  -- ... {hidden} more column{'s' if hidden > 1 else ''}")
        return f"CREATE TABLE {_quote_name(table.name)} (\n" + "\n".join(body) + "\n);"


_WORD = re.compile(r"[a-z0-9]+")


def _words(text: str) -> set[str]:
    words = set()
    for w in _WORD.findall(text.replace("_", " ").lower()):
        words.add(w)
        if len(w) > 3 and w.endswith("s"):
            words.add(w[:-1])
    return words


def _relevance_order(tables: Sequence, question: str) -> list[int]:
    """Table indices from the farthest to the nearest to the question (word overlap, then foreign-key hops)."""
    q = _words(question)
    score = []
    for t in tables:
        name_hit = len(_words(t.name) & q)
        col_hits = sum(1 for c in t.columns if _words(c.name) & q)
        score.append(3 * name_hit + col_hits)
    # Foreign-key graph (undirected) for hop distance from the best-matching tables.
    index = {t.name.lower(): i for i, t in enumerate(tables)}
    neighbours: dict[int, set[int]] = {i: set() for i in range(len(tables))}
    for i, t in enumerate(tables):
        for fk in t.foreign_keys:
            j = index.get(fk.ref_table.lower())
            if j is not None and j != i:
                neighbours[i].add(j)
                neighbours[j].add(i)
    best = max(score, default=0)
    seeds = [i for i, s in enumerate(score) if s == best and s > 0]
    hops = dict.fromkeys(seeds, 0)
    queue = deque(seeds)
    while queue:
        i = queue.popleft()
        for j in neighbours[i]:
            if j not in hops:
                hops[j] = hops[i] + 1
                queue.append(j)
    far = len(tables) + 1
    # Farthest first: most hops, then lowest score, then later in the schema.
    return sorted(range(len(tables)), key=lambda i: (-hops.get(i, far), score[i], -i))


def _fits(views: list[_TableView], max_chars: int) -> tuple[bool, str]:
    text = "\n\n".join(v.render() for v in views if not v.dropped)
    return len(text) <= max_chars, text


def render_schema(schema, *, sample_values: int = 3, max_chars: int = 6000, question: str = "") -> str:
    """Serialize an introspected `sense_hub.databases.Schema` as DDL within `max_chars` (see `serialize_schema`)."""
    views = []
    for t in schema.tables:
        keys = {c.name for c in t.columns if c.primary_key} | {fk.column for fk in t.foreign_keys}
        for other in schema.tables:
            keys |= {fk.ref_column for fk in other.foreign_keys if fk.ref_table.lower() == t.name.lower()}
        views.append(_TableView(table=t, samples=sample_values, key_columns=keys))
    ok, text = _fits(views, max_chars)
    if ok or not views:
        return text
    order = [views[i] for i in _relevance_order(schema.tables, question)]
    # 1. fewer, then no sample values (far tables first).
    for samples in sorted({min(1, sample_values), 0}, reverse=True):
        for view in order:
            view.samples = min(view.samples, samples)
            ok, text = _fits(views, max_chars)
            if ok:
                return text
    # 2. only key columns of far tables; 3. drop far tables. The nearest table is always kept.
    for attr in ("keys_only", "dropped"):
        for view in order[:-1]:
            setattr(view, attr, True)
            ok, text = _fits(views, max_chars)
            if ok:
                return _with_note(text, views)
    # 4. a single table over the budget: cut it at a line boundary.
    cut = text[:max_chars].rsplit("\n", 1)[0]
    return _with_note(cut, views)


def _with_note(text: str, views: list[_TableView]) -> str:
    dropped = [v.table.name for v in views if v.dropped]
    if not dropped:
        return text
    return text + "\n-- (tables not shown: " + ", ".join(dropped) + ")"


@functools.lru_cache(maxsize=256)
def _introspect_cached(path: str, mtime_ns: int, size: int, sample_values: int):
    from sense_hub.databases import introspect

    return introspect(path, sample_values=sample_values)


def cached_schema(db_path: str | Path, sample_values: int):
    path = Path(db_path).resolve()
    try:
        stat = path.stat()
    except FileNotFoundError:
        from sense_hub.databases import DatabaseError

        raise DatabaseError(f"database file not found: {path}") from None
    return _introspect_cached(str(path), stat.st_mtime_ns, stat.st_size, sample_values)


def serialize_schema(db_path: str | Path, *, sample_values: int = 3, max_chars: int = 6000, question: str = "") -> str:
    """The schema of an SQLite database as `CREATE TABLE` statements with keys and sample values.

    Args:
        db_path: the `.sqlite` file.
        sample_values: distinct sample values shown per column (as `-- e.g. ...` comments); 0 for none.
        max_chars: the budget; big schemas drop sample values first, then the non-key columns of the tables least
            related to `question` (by name overlap and foreign-key distance), then whole far tables.
        question: optional; decides which tables are "far" when trimming.

    Returns:
        The DDL text. The introspection is cached per (path, modification time), so repeated calls are cheap.

    Raises:
        sense_hub.databases.DatabaseError: the file is missing, not SQLite or corrupt.
    """
    schema = cached_schema(db_path, sample_values)
    return render_schema(schema, sample_values=sample_values, max_chars=max_chars, question=question)


# ---------------------------------------------------------------------------------------------------------------
# Chat messages
# ---------------------------------------------------------------------------------------------------------------


def build_prompt(question: str, schema: str, *, evidence: str = "") -> list[dict]:
    """The chat messages (system + user) for one question: the ONE prompt of sense-hub.

    Args:
        question: the natural-language question.
        schema: the serialized schema (`serialize_schema`, or the DDL stored with a synthetic record).
        evidence: BIRD-style external knowledge; omitted when empty.

    Returns:
        `[{"role": "system", ...}, {"role": "user", ...}]`, ready for a chat template or a chat completion API.
    """
    parts = [f"Database schema:\n{schema.strip()}"]
    if evidence and evidence.strip():
        parts.append(f"External knowledge: {evidence.strip()}")
    parts.append(f"Question: {question.strip()}")
    parts.append(INSTRUCTION)
    return [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": "\n\n".join(parts)},
    ]


def prompt_for_database(
    question: str, db_path: str | Path, *, evidence: str = "", sample_values: int = 3, max_chars: int = 6000
) -> list[dict]:
    """`build_prompt` with the schema of `db_path` (introspected once per file version, then cached).

    Args:
        question: the natural-language question.
        db_path: the `.sqlite` file.
        evidence: BIRD-style external knowledge; "" for none.
        sample_values: see `serialize_schema`.
        max_chars: see `serialize_schema`.

    Raises:
        sense_hub.databases.DatabaseError: the file is missing, not SQLite or corrupt.
    """
    schema = serialize_schema(db_path, sample_values=sample_values, max_chars=max_chars, question=question)
    return build_prompt(question, schema, evidence=evidence)


# ---------------------------------------------------------------------------------------------------------------
# SQL extraction
# ---------------------------------------------------------------------------------------------------------------

_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_+-]*)[^\n]*\n?(.*?)(?:```|\Z)", re.DOTALL)
_START_STRICT = re.compile(r"\bSELECT\b|\bWITH\s+(?:RECURSIVE\s+)?[\w\"`\[\]]+\s*(?:\([^)]*\)\s*)?AS\s*\(")
_START_ANY = re.compile(_START_STRICT.pattern, re.IGNORECASE)
_SENTENCE_END = re.compile(r"\.\s+[A-Z][a-z]+\b")
_PREFIX = re.compile(r"^\s*(?:sql(?:ite)?\s*(?:query)?|query|answer)\s*:\s*", re.IGNORECASE)


def _first_statement(sql: str, *, inline: bool = False) -> str:
    """Cut `sql` at the end of its first statement: a `;` outside quotes and comments, or a blank line."""
    i, n = 0, len(sql)
    while i < n:
        ch = sql[i]
        if ch in "'\"" or (ch == "`" and not inline):
            end = sql.find(ch, i + 1)
            while end != -1 and end + 1 < n and sql[end + 1] == ch:  # doubled quote escape
                end = sql.find(ch, end + 2)
            if end == -1:
                return sql
            i = end + 1
            continue
        if ch == "`" and inline:
            return sql[:i]
        if ch == "[":
            end = sql.find("]", i + 1)
            i = n if end == -1 else end + 1
            continue
        if sql.startswith("--", i):
            end = sql.find("\n", i)
            if end == -1:
                return sql[:i]
            i = end + 1
            continue
        if sql.startswith("/*", i):
            end = sql.find("*/", i + 2)
            i = n if end == -1 else end + 2
            continue
        if ch == ";":
            return sql[:i]
        if ch == "\n" and re.match(r"\n[ \t]*\n", sql[i:]):
            return sql[:i]
        if ch == "." and _SENTENCE_END.match(sql, i):  # "... FROM singer. It returns ..." (prose follows)
            return sql[:i]
        i += 1
    return sql


def _strip_leading_comments(sql: str) -> str:
    while True:
        sql = sql.lstrip()
        if sql.startswith("--"):
            sql = sql.split("\n", 1)[1] if "\n" in sql else ""
        elif sql.startswith("/*") and "*/" in sql:
            sql = sql.split("*/", 1)[1]
        else:
            return sql


def _from_text(text: str) -> str:
    matches = list(_START_STRICT.finditer(text)) or list(_START_ANY.finditer(text))
    if not matches:
        body = _PREFIX.sub("", text, count=1)
        return _first_statement(_strip_leading_comments(body))
    candidates = []
    for match in matches:
        start = match.start()
        inline = start > 0 and text[start - 1] == "`" and not text[: start - 1].endswith("``")
        line_start = not text[:start].rsplit("\n", 1)[-1].strip(" \t`:") or bool(
            _PREFIX.match(text[:start].rsplit("\n", 1)[-1])
        )
        sql = _first_statement(text[start:], inline=inline)
        # A query at the start of a line, or one with a FROM clause, beats "select" used in prose.
        if line_start or re.search(r"\bFROM\b", sql, re.IGNORECASE):
            return sql
        candidates.append(sql)
    return candidates[0]


def extract_sql(text: str) -> str:
    """The first SQL statement in a model's answer.

    Handles code fences (```` ```sql ```` or bare, closed or cut off), prose before and after the query, `SQL:`-style
    prefixes, inline `code`, several statements (the first query is kept) and trailing semicolons. When the text
    holds no SELECT/WITH query at all, its first statement is returned as is (it will fail to execute, which is
    the right label for it); empty or blank text gives "".

    Args:
        text: the generated text.

    Returns:
        The SQL statement without a trailing semicolon, stripped; "" when there is none.
    """
    if not text or not text.strip():
        return ""
    matches = list(_FENCE.finditer(text))
    fences = [m.group(2) for m in matches if m.group(2).strip()]
    if matches and not fences:  # only empty fences: look at the text around them
        text = _FENCE.sub("", text)
        if not text.strip():
            return ""
    if fences:
        with_query = [f for f in fences if _START_ANY.search(f)]
        body = with_query[0] if with_query else fences[0]
        sql = _from_text(body) if with_query else _first_statement(_strip_leading_comments(body))
    else:
        sql = _from_text(text)
    sql = sql.strip()
    while sql.endswith(";"):
        sql = sql[:-1].rstrip()
    return sql


def statement_complete(text: str) -> bool:
    """Whether `extract_sql(text)` is final: text appended on the same or the next line no longer changes it
    (the first statement ended with `;`, a closing code fence, a blank line or prose)."""
    sql = extract_sql(text)
    return bool(sql) and all(extract_sql(text + probe) == sql for probe in (" x1 y2", "\nx1 y2", ")"))
