"""What the page shows of a database and a result: schema Markdown, result tables, error text, transpiled SQL."""

import logging
import re
from pathlib import Path
from typing import Any

from sense_hub.errors import UploadError
from sense_hub.space.config import DIALECTS

logger = logging.getLogger(__name__)


def schema_markdown(db_path: str | Path, *, sample_values: int = 3) -> str:
    """The database's tables, columns (type, primary key, sample values), foreign keys and row counts, as Markdown.

    Raises:
        UploadError: the file cannot be read as SQLite.
    """
    from sense_hub.databases import DatabaseError, introspect

    try:
        schema = introspect(db_path, sample_values=sample_values)
    except DatabaseError as e:
        raise UploadError("The database cannot be read; upload it again.") from e
    if not schema.tables:
        return f"**{schema.db_id}** has no tables."
    lines = [
        f"**{markdown_text(schema.db_id)}**: {len(schema.tables)} table{'s' if len(schema.tables) != 1 else ''}",
        "",
    ]
    for table in schema.tables:
        lines.append(f"**{markdown_text(table.name)}** ({table.row_count:,} row{'s' if table.row_count != 1 else ''})")
        lines.append("")
        fks = {fk.column: fk for fk in table.foreign_keys}
        for col in table.columns:
            parts = [f"`{col.name}` {markdown_text(col.type)}".rstrip()]
            if col.primary_key:
                parts.append("primary key")
            if col.name in fks:
                fk = fks[col.name]
                parts.append(
                    f"→ {markdown_text(fk.ref_table)}.{markdown_text(fk.ref_column)}"
                    if fk.ref_column
                    else f"→ {markdown_text(fk.ref_table)}"
                )
            if col.samples:
                parts.append("e.g. " + ", ".join(markdown_text(_short(v)) for v in col.samples))
            lines.append("- " + " · ".join(parts))
        lines.append("")
    return "\n".join(lines)


def _short(value: Any, limit: int = 40) -> str:
    text = value.hex() if isinstance(value, bytes) else str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def markdown_text(text: str) -> str:
    """Text shown as is inside Markdown (no markup, no line breaks)."""
    return re.sub(r"([\\`*{}\[\]<>#|!~])", r"\\\1", str(text)).replace("\n", " ")


def _cell(value: Any) -> Any:
    """A value as JSON carries it: blobs become hex text, everything else is SQLite's own value."""
    if isinstance(value, bytes):
        return "0x" + value.hex()
    return value


def result_table(result) -> dict:
    """An `ExecutionResult` as the `{"headers", "data"}` value of a `gr.Dataframe` (rows exactly as SQLite gave
    them; blobs as `0x…` hex)."""
    headers = list(result.columns)
    return {"headers": headers, "data": [[_cell(v) for v in row] for row in result.rows]}


def describe_error(result, *, timeout: float | None = None) -> str:
    """A visitor-facing sentence for a failed `ExecutionResult`."""
    message = (result.message or "").strip()
    kind = result.error
    if kind == "runtime" and re.search(r"authori[sz]|readonly|read-only", message, re.IGNORECASE):
        kind = "refused"
    if kind == "timeout":
        limit = f" {timeout:g} s" if timeout else ""
        return f"The query ran past the{limit} time limit and was stopped. Try a simpler query or add a LIMIT."
    if kind == "refused":
        return f"Refused: this Space only runs read-only queries (one SELECT or WITH statement). {message}".strip()
    if kind == "syntax":
        return f"SQLite could not parse this SQL: {message}"
    if kind == "runtime":
        return f"SQLite could not run this SQL: {message}"
    if kind == "empty":
        return "There is no SQL to run."
    if kind == "missing_db":
        return "The database is gone (the session may have expired); upload it again."
    if kind == "too_large":
        cap = re.search(r"\(([^)]*)\)", message)
        limit = f" ({cap.group(1)}: what a browser table shows)" if cap else ""
        return f"The result is larger than this Space returns{limit}. Add a LIMIT or select fewer columns."
    return f"The query failed ({kind}): {message}"


def preview_rows(db_path: str | Path, table: str, *, limit: int = 5, timeout: float = 5.0) -> dict:
    """The first `limit` rows of `table` as a `gr.Dataframe` value (`{"headers": [], "data": []}` if it fails)."""
    from sense_hub.execution import execute

    quoted = '"' + table.replace('"', '""') + '"'
    result = execute(db_path, f"SELECT * FROM {quoted} LIMIT {int(limit)}", timeout=timeout, max_rows=limit)
    if not result.ok:
        return {"headers": [], "data": []}
    return result_table(result)


def table_names(db_path: str | Path) -> list[str]:
    """The database's table names, in schema order."""
    from sense_hub.databases import introspect

    return [t.name for t in introspect(db_path, sample_values=0).tables]


def transpile_sql(sql: str, *, dialect: str) -> str:
    """SQLite SQL rewritten for another dialect by sqlglot (pretty-printed).

    Raises:
        ValueError: an unknown dialect, or SQL that sqlglot cannot parse (the message says which).
    """
    import sqlglot
    from sqlglot.errors import SqlglotError

    if dialect not in DIALECTS and dialect != "sqlite":
        raise ValueError(f"unknown dialect {dialect!r}; choose one of {', '.join(DIALECTS)}")
    if not sql.strip():
        return ""
    try:
        statements = sqlglot.transpile(sql, read="sqlite", write=dialect, pretty=True)
    except SqlglotError as e:
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ValueError(f"sqlglot could not translate this SQL to {dialect}: {first}") from e
    return ";\n".join(statements)
