"""Safe, bounded execution of untrusted SQL on SQLite files.

Every query runs on a read-only connection (`mode=ro`, and `immutable=1` unless the database has a live `-wal`
file) with an authorizer that allows only reads: no writes, DDL, transactions, ATTACH/DETACH (so no
`VACUUM INTO`), PRAGMAs other than a few introspection ones (allowed alike as `PRAGMA table_info(t)` and as
`SELECT * FROM pragma_table_info('t')`; `database_list` is not one of them, it shows the server's file path), or
`load_extension`. Python's `sqlite3` refuses a
second statement. A query past its deadline is interrupted twice over: a progress handler checks the clock every
few thousand SQLite steps, and a watchdog thread calls `Connection.interrupt()` at the deadline (a single step can
take seconds: `hex(zeroblob(30000000))`). SQLite's heap is capped process-wide (`PRAGMA hard_heap_limit`), and
results are capped in rows and bytes, fetched in growing chunks so that a few huge rows never fill memory. Bad SQL, a missing database or a timeout give an `ExecutionResult` with an error kind, never an
exception.

`Executor` runs many `(db_path, sql)` pairs: pairs that are the same up to `canonical_sql` (case of keywords and
names, whitespace, comments) once, grouped by database so each worker keeps one connection per database, either
in this process or in forked worker processes that send results back in batches; a worker that dies (segfault,
`os._exit`) marks the query it was running as `crash` and a fresh worker takes the rest, and a worker stuck past
the timeout is killed.
"""

from __future__ import annotations

import heapq
import logging
import math
import os
import re
import sqlite3
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import chain
from pathlib import Path
from urllib.parse import quote

__all__ = [
    "ERROR_KINDS",
    "check_timeout",
    "ExecutionResult",
    "Executor",
    "canonical_sql",
    "compile_error",
    "dedup_key",
    "execute",
    "sql_tokens",
]

logger = logging.getLogger(__name__)

ERROR_KINDS = ("timeout", "syntax", "runtime", "refused", "missing_db", "empty", "too_large", "crash")

#: SQLite virtual-machine instructions between two deadline checks.
PROGRESS_STEPS = 2_000
#: Default cap on the estimated size of a result (strings/blobs by length, other values 8 bytes).
MAX_BYTES = 256 * 2**20
#: Longest string or blob a query may build (SQLITE_LIMIT_LENGTH).
MAX_VALUE_BYTES = 64 * 2**20
#: SQLite heap limit for in-process execution (bytes; 0 for none). `PRAGMA hard_heap_limit` is process-wide: it is
#: set on the first query unless a lower limit is already in force, and a query past it fails with "out of memory"
#: (`too_large`) instead of exhausting the machine. Worker processes use `WORKER_HEAP_LIMIT`.
HEAP_LIMIT = 4 * 2**30
#: Rows fetched at most per chunk (chunks grow from 1 so that the byte cap is checked before many huge rows load).
FETCH_ROWS = 1024


def check_timeout(value, *, name: str = "timeout") -> float:
    """`value` as seconds, or a `ValueError` naming `name` unless it is a finite number above 0.

    NaN would never expire (every comparison with it is false), and 0, negatives and infinity are no limit either.
    """
    try:
        seconds = float(value)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{name} must be a number of seconds, got {value!r}") from e
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(f"{name} must be positive and finite (seconds), got {value!r}")
    return seconds


_READ_PRAGMAS = frozenset(
    {
        "table_info",
        "table_xinfo",
        "table_list",
        "index_list",
        "index_info",
        "index_xinfo",
        "foreign_key_list",
        "collation_list",
        "function_list",
        "compile_options",
        "user_version",
        "schema_version",
        "application_id",
        "encoding",
        "page_count",
        "page_size",
    }
)
_REFUSED_FUNCTIONS = frozenset({"load_extension"})
# Statements that are not queries: refused before SQLite sees them (the authorizer would refuse most anyway).
_STATEMENT_KEYWORDS = frozenset(
    {
        "alter",
        "analyze",
        "attach",
        "begin",
        "commit",
        "create",
        "delete",
        "detach",
        "drop",
        "end",
        "insert",
        "reindex",
        "release",
        "replace",
        "rollback",
        "savepoint",
        "update",
        "upsert",
        "vacuum",
    }
)
_LEADING_WORD = re.compile(r"(?:\s+|--[^\n]*(?:\n|$)|/\*.*?(?:\*/|$)|\()*([A-Za-z]+)", re.DOTALL)

# One SQL token: a comment, a quoted string or name, a word, a number, whitespace, or any other character.
_TOKEN = re.compile(
    r"""
    --[^\n]*\n?
  | /\*.*?(?:\*/|$)
  | '(?:[^']|'')*'?
  | "(?:[^"]|"")*"?
  | `[^`]*`?
  | \[[^\]]*\]?
  | [^\W\d][\w$#]*
  | \d[\w.]*
  | \s+
  | .
    """,
    re.VERBOSE | re.DOTALL,
)


def sql_tokens(sql: str) -> list[str]:
    """Split SQL into tokens whose concatenation is `sql` again (strings, quoted names and comments whole)."""
    return _TOKEN.findall(sql)


# Comments and quoted things, for canonical_sql: every other piece of `_QUOTED.split(sql)` is one of them.
_QUOTED = re.compile(
    r"""(--[^\n]*\n?|/\*.*?(?:\*/|$)|'(?:[^']|'')*'?|"(?:[^"]|"")*"?|`[^`]*`?|\[[^\]]*\]?)""", re.DOTALL
)
_SPACES = re.compile(r"\s+")
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def canonical_sql(sql: str) -> str:
    """A spelling of `sql` that SQLite runs identically: comments and whitespace runs become one space, and
    ASCII letters outside strings and quoted names (keywords, names, functions: case-insensitive in SQLite)
    are lower-cased. Used to run textually different but equivalent queries once.
    """
    pieces = _QUOTED.split(sql)
    out: list[str] = []
    code: list[str] = []
    for k, piece in enumerate(pieces):
        if k % 2 == 0:
            code.append(piece)
        elif piece.startswith(("--", "/*")):
            code.append(" ")
        else:
            out.append(_SPACES.sub(" ", "".join(code)).translate(_ASCII_LOWER))
            out.append(piece)
            code = []
    out.append(_SPACES.sub(" ", "".join(code)).translate(_ASCII_LOWER))
    return "".join(out).strip()


_WORDS = re.compile(r"\w+|[^\s\w]")


def dedup_key(sql: str) -> str:
    """The one key sense-hub deduplicates SQL by (weak candidates, pairs, synthesized and template queries).

    Tokens (`sql_tokens`) joined by one space, without whitespace, comments or a trailing `;`; tokens outside
    quotes are lower-cased, `'literals'`, `"identifiers"`, `` `names` `` and `[names]` are kept as written. So
    `SELECT  name FROM T WHERE a = 'X';` and `select name from t where a='X'` are one query, `... a = 'x'`
    another. Deliberately syntactic (no parser) so a million candidates take seconds; semantically equal but
    differently written queries (`a = 1` / `1 = a`) stay distinct.
    """
    sql = sql.strip()
    if not any(c in sql for c in "'\"`[") and "--" not in sql and "/*" not in sql:
        return " ".join(_WORDS.findall(sql.lower().rstrip(";")))  # the common case, without the full tokenizer
    words: list[str] = []
    for token in _TOKEN.findall(sql):
        if token[0] in "'\"`[":
            words.append(token)
        elif not token.isspace() and not token.startswith(("--", "/*")):
            words.extend(_WORDS.findall(token.lower()))
    while words and words[-1] == ";":
        words.pop()
    return " ".join(words)


@dataclass(frozen=True)
class ExecutionResult:
    """The outcome of one query: rows when `ok`, else an error kind (one of `ERROR_KINDS`) and a message.

    `truncated` is True when the result was larger than the cap (then `error == "too_large"` and `rows` holds
    the first rows only).
    """

    ok: bool
    rows: tuple[tuple, ...] = ()
    columns: tuple[str, ...] = ()
    error: str | None = None
    message: str = ""
    elapsed: float = 0.0
    truncated: bool = False

    @classmethod
    def failure(cls, error: str, message: str, *, elapsed: float = 0.0) -> ExecutionResult:
        return cls(ok=False, error=error, message=message, elapsed=elapsed)


_SCHEMA_TABLES = frozenset({"sqlite_master", "sqlite_schema"})


def _authorizer(action: int, arg1, arg2, db_name, trigger) -> int:
    if action in (sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_RECURSIVE):
        return sqlite3.SQLITE_OK
    if action == sqlite3.SQLITE_UPDATE and arg1 in _SCHEMA_TABLES and db_name == "main" and trigger is None:
        # SQLite asks this when a query opens an eponymous virtual table (`pragma_table_info('t')`), so the
        # table-valued form of an allowed PRAGMA follows the same rule as the statement. Nothing can write the
        # schema anyway: the connection is read-only, `writable_schema` is refused, and SQLite itself refuses
        # "table sqlite_master may not be modified".
        return sqlite3.SQLITE_OK
    if action == sqlite3.SQLITE_FUNCTION:
        return sqlite3.SQLITE_DENY if (arg2 or "").lower() in _REFUSED_FUNCTIONS else sqlite3.SQLITE_OK
    if action == sqlite3.SQLITE_PRAGMA:
        name = (arg1 or "").lower()
        if name in _READ_PRAGMAS and (arg2 is None or name not in {"user_version", "application_id"}):
            return sqlite3.SQLITE_OK
        return sqlite3.SQLITE_DENY
    return sqlite3.SQLITE_DENY


_COMPILER = threading.local()


def compile_error(sql: str) -> str:
    """SQLite's message when `sql` does not compile as one statement the executor would allow, else "".

    The statement is compiled (`EXPLAIN`: nothing runs) on an empty in-memory database under the executor's
    authorizer. SQLite parses the whole statement before it resolves names, so "no such table / column /
    function" means the syntax is fine and gives ""; "syntax error", "incomplete input", several statements or
    a refused action (a write, ATTACH, ...) give SQLite's message.
    """
    con = getattr(_COMPILER, "connection", None)
    if con is None:
        con = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
        if hasattr(con, "enable_load_extension"):
            con.enable_load_extension(False)
        con.set_authorizer(_authorizer)
        _COMPILER.connection = con
    try:
        con.execute("EXPLAIN " + sql).fetchone()
    except sqlite3.Error as err:
        message = str(err)
        return "" if message.startswith("no such ") else message
    return ""


def _lenient_text(b: bytes) -> str:
    # Spider's official evaluator decodes text with errors="ignore"; used only after a strict decode fails.
    return b.decode(errors="ignore")


class _Watchdog:
    """One thread per process that calls `Connection.interrupt()` on connections whose deadline has passed.

    The progress handler only looks at the clock between groups of SQLite steps, and one step (a function over a
    30 MB blob) can take seconds; `interrupt()` stops the statement at the next step. One long-lived thread
    serves every query in the process (starting a thread per query would cost as much as a small query); after a
    fork it is started again in the child.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._armed: dict[int, sqlite3.Connection] = {}
        self._heap: list[tuple[float, int]] = []
        self._next = 0
        self._pid = -1

    def arm(self, con: sqlite3.Connection, deadline: float) -> int:
        """Interrupt `con` at `deadline` (`time.perf_counter()` seconds) unless `disarm` comes first."""
        with self._cond:
            if self._pid != os.getpid():  # first use, or a forked child: the thread did not survive the fork
                self._armed.clear()
                self._heap.clear()
                self._pid = os.getpid()
                threading.Thread(target=self._loop, name="sense-hub-sqlite-watchdog", daemon=True).start()
            token = self._next
            self._next += 1
            self._armed[token] = con
            heapq.heappush(self._heap, (deadline, token))
            if self._heap[0][1] == token:
                self._cond.notify()
            return token

    def disarm(self, token: int) -> None:
        """The query finished: after this returns, `interrupt()` is never called for `token`."""
        with self._cond:
            self._armed.pop(token, None)
            if len(self._heap) > 64 + 4 * len(self._armed):  # drop finished entries now and then
                self._heap = [entry for entry in self._heap if entry[1] in self._armed]
                heapq.heapify(self._heap)

    def _loop(self) -> None:
        pid = os.getpid()
        with self._cond:
            while self._pid == pid:
                while self._heap and self._heap[0][1] not in self._armed:
                    heapq.heappop(self._heap)
                if not self._heap:
                    self._cond.wait()
                    continue
                deadline, token = self._heap[0]
                wait = deadline - time.perf_counter()
                if wait > 0:
                    self._cond.wait(wait)
                    continue
                heapq.heappop(self._heap)
                con = self._armed.pop(token)
                try:
                    con.interrupt()
                except sqlite3.ProgrammingError:  # closed meanwhile
                    pass

    def thread_alive(self) -> bool:
        """Whether this process runs the watchdog thread (forking is safe with it: see `_after_fork`)."""
        return self._pid == os.getpid()

    def _before_fork(self) -> None:
        self._cond.acquire()  # the child must not inherit the lock held by the watchdog thread

    def _after_fork_in_parent(self) -> None:
        self._cond.release()

    def _after_fork_in_child(self) -> None:
        self._cond = threading.Condition()
        self._armed.clear()
        self._heap.clear()
        self._pid = -1  # the thread did not survive the fork: `arm` starts one


_WATCHDOG = _Watchdog()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(
        before=_WATCHDOG._before_fork,
        after_in_parent=_WATCHDOG._after_fork_in_parent,
        after_in_child=_WATCHDOG._after_fork_in_child,
    )
_HEAP_LOCK = threading.Lock()
_heap_limit_pid = -1


def _cap_heap(limit: int) -> None:
    """Set SQLite's process-wide hard heap limit to `limit` bytes unless a lower one is in force (once a process)."""
    global _heap_limit_pid
    if not limit or _heap_limit_pid == os.getpid():
        return
    with _HEAP_LOCK:
        if _heap_limit_pid == os.getpid():
            return
        con = sqlite3.connect(":memory:")
        try:
            current = con.execute("PRAGMA hard_heap_limit").fetchone()[0]
            if current == 0 or current > limit:
                con.execute(f"PRAGMA hard_heap_limit = {int(limit)}")
        finally:
            con.close()
        _heap_limit_pid = os.getpid()


class _Session:
    """Read-only connections kept open per database file, with a resettable deadline."""

    def __init__(self) -> None:
        self._connections: dict[str, sqlite3.Connection] = {}
        self.deadline = float("inf")

    def _progress(self) -> int:
        return 1 if time.perf_counter() > self.deadline else 0

    def has(self, db_path: str) -> bool:
        return db_path in self._connections

    def connection(self, db_path: str) -> sqlite3.Connection:
        con = self._connections.get(db_path)
        if con is None:
            _cap_heap(HEAP_LIMIT)
            resolved = Path(db_path).resolve()
            immutable = not Path(f"{resolved}-wal").exists()
            uri = f"file:{quote(str(resolved))}?mode=ro" + ("&immutable=1" if immutable else "")
            con = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
            if hasattr(con, "enable_load_extension"):
                con.enable_load_extension(False)
            if hasattr(con, "setlimit"):
                con.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, MAX_VALUE_BYTES)
                con.setlimit(sqlite3.SQLITE_LIMIT_ATTACHED, 0)
            con.set_authorizer(_authorizer)
            con.set_progress_handler(self._progress, PROGRESS_STEPS)
            self._connections[db_path] = con
        return con

    def close(self) -> None:
        for con in self._connections.values():
            con.close()
        self._connections.clear()


def _classify(exc: BaseException, *, timed_out: bool) -> str:
    message = str(exc).lower()
    if timed_out:
        return "timeout"
    if isinstance(exc, sqlite3.ProgrammingError) and "one statement" in message:
        return "refused"
    if (
        "not authorized" in message
        or "authorization denied" in message
        or "readonly" in message
        or "may not be modified" in message
    ):
        return "refused"
    if "not a database" in message or "unable to open" in message or "disk image is malformed" in message:
        return "missing_db"
    if "syntax error" in message or "incomplete input" in message or "unrecognized token" in message:
        return "syntax"
    if (
        isinstance(exc, sqlite3.DataError | OverflowError | MemoryError)
        or "too big" in message
        or "out of memory" in message
    ):
        return "too_large"
    return "runtime"


_SIZED = (str, bytes)


def _estimate_bytes(rows: list) -> int:
    """Strings and blobs by length, anything else 8 bytes."""
    return sum([len(v) if v.__class__ in _SIZED else 8 for v in chain.from_iterable(rows)])


def _size(n: int) -> str:
    return f"{n / 2**20:,.1f} MB" if n >= 2**20 else f"{n:,} bytes"


def _rows_within(chunk: list, max_rows: int, max_bytes: int) -> list:
    """The first rows of `chunk` that fit in `max_rows` rows and `max_bytes` bytes."""
    kept = []
    for row in chunk[: max(0, max_rows)]:
        max_bytes -= _estimate_bytes([row])
        if max_bytes < 0:
            break
        kept.append(row)
    return kept


def _not_a_database(db_path: str) -> str:
    """Why `db_path` cannot be a database ("" when it can): missing, empty (SQLite would open a zero-byte file as
    an empty database, so every query would say "no such table") or without the SQLite header."""
    try:
        with open(db_path, "rb") as f:
            head = f.read(16)
    except FileNotFoundError:
        return f"database file not found: {db_path}"
    except OSError as e:
        return f"cannot read database file {db_path}: {e}"
    if not head:
        return f"database file is empty (0 bytes): {db_path}"
    if head != b"SQLite format 3\x00":
        return f"file is not a database (no SQLite header): {db_path}"
    return ""


def _run(
    session: _Session, db_path: str, sql: str, *, timeout: float, max_rows: int, max_bytes: int
) -> ExecutionResult:
    start = time.perf_counter()
    if not sql or not sql.strip():
        return ExecutionResult.failure("empty", "the SQL is empty")
    lead = _LEADING_WORD.match(sql)
    if lead is not None and lead.group(1).lower() in _STATEMENT_KEYWORDS:
        word = lead.group(1).upper()
        return ExecutionResult.failure("refused", f"only queries are allowed (SELECT, WITH, VALUES), not {word}")
    if not session.has(db_path):
        problem = _not_a_database(db_path)
        if problem:
            return ExecutionResult.failure("missing_db", problem)
    try:
        con = session.connection(db_path)
    except sqlite3.Error as e:
        return ExecutionResult.failure("missing_db", f"cannot open {db_path}: {e}")
    for attempt in (0, 1):
        session.deadline = start + timeout
        con.text_factory = str if attempt == 0 else _lenient_text
        rows: list = []
        truncated = False
        token = _WATCHDOG.arm(con, session.deadline)
        try:
            cursor = con.execute(sql)
            size = 0
            want = 1  # rows per fetch: doubles up to FETCH_ROWS while the byte budget allows
            while True:
                chunk = cursor.fetchmany(want)
                if not chunk:
                    break
                chunk_bytes = _estimate_bytes(chunk)
                if len(rows) + len(chunk) > max_rows or size + chunk_bytes > max_bytes:
                    rows.extend(_rows_within(chunk, max_rows - len(rows), max_bytes - size))
                    truncated = True
                    break
                rows.extend(chunk)
                size += chunk_bytes
                per_row = max(1, size // len(rows))
                want = max(1, min(FETCH_ROWS, 2 * want, (max_bytes - size) // per_row))
            columns = tuple(d[0] for d in cursor.description or ())
            cursor.close()
        except sqlite3.OperationalError as e:
            if attempt == 0 and "could not decode" in str(e).lower():
                continue
            elapsed = time.perf_counter() - start
            timed_out = time.perf_counter() > session.deadline
            if not timed_out and "interrupted" in str(e).lower():
                # the progress handler swallowed an exception raised in it: Ctrl-C (SIGINT) while SQLite ran
                raise KeyboardInterrupt from e
            return ExecutionResult.failure(_classify(e, timed_out=timed_out), str(e), elapsed=elapsed)
        except (sqlite3.Error, ValueError, OverflowError, MemoryError, UnicodeError) as e:
            elapsed = time.perf_counter() - start
            return ExecutionResult.failure(_classify(e, timed_out=False), f"{type(e).__name__}: {e}", elapsed=elapsed)
        finally:
            _WATCHDOG.disarm(token)
            session.deadline = float("inf")
        elapsed = time.perf_counter() - start
        if truncated:
            return ExecutionResult(
                ok=False,
                rows=tuple(rows),
                columns=columns,
                error="too_large",
                message=f"the result is larger than the cap ({max_rows:,} rows / {_size(max_bytes)})",
                elapsed=elapsed,
                truncated=True,
            )
        return ExecutionResult(ok=True, rows=tuple(rows), columns=columns, elapsed=elapsed)
    return ExecutionResult.failure("runtime", "text could not be decoded")  # pragma: no cover (loop returns)


def execute(
    db_path: str | Path,
    sql: str,
    *,
    timeout: float = 30.0,
    max_rows: int = 100_000,
    max_bytes: int = MAX_BYTES,
) -> ExecutionResult:
    """Run one query read-only, in this process, and return its rows or an error kind.

    Args:
        db_path: the `.sqlite` file.
        sql: one SQL statement (a trailing `;` is fine; a second statement is refused).
        timeout: seconds after which the query is interrupted (`error="timeout"`).
        max_rows: more rows than this gives `error="too_large"` with the first `max_rows` rows.
        max_bytes: the same cap on the estimated size of the result.

    Returns:
        An `ExecutionResult`; this function does not raise for bad SQL or a missing database.

    Raises:
        ValueError: `timeout` is not a finite number of seconds above 0.
    """
    timeout = check_timeout(timeout)
    session = _Session()
    try:
        return _run(session, str(db_path), sql, timeout=timeout, max_rows=max_rows, max_bytes=max_bytes)
    finally:
        session.close()


# ---------------------------------------------------------------------------------------------------------------
# Many queries: dedup, group by database, forked workers with crash isolation.
# ---------------------------------------------------------------------------------------------------------------


def _as_tuple(r: ExecutionResult) -> tuple:
    return (r.ok, r.rows, r.columns, r.error, r.message, r.elapsed, r.truncated)


#: SQLite heap limit in each worker process (bytes; 0 for none).
WORKER_HEAP_LIMIT = 4 * 2**30
#: A worker sends its results in batches: at most this many, or after this many seconds.
BATCH_SIZE = 64
BATCH_SECONDS = 0.05
#: How long a new worker may take to start (import, under load) before it counts as stuck.
STARTUP_SECONDS = 60.0


def _worker_main(conn, tasks: list[tuple[int, str, str]], options: dict, position) -> None:
    """Run `tasks` in order; `position.value` is the one running now (the parent reads it if this process dies)."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's business: it kills the workers
    _cap_heap(WORKER_HEAP_LIMIT)  # process-wide: a query past it fails with "out of memory"
    session = _Session()
    batch: list = []
    last = time.monotonic()
    try:
        conn.send([])  # ready: the parent's stuck-worker clock starts now, not while this process imported
        for k, (index, db_path, sql) in enumerate(tasks):
            position.value = k
            batch.append((index, _as_tuple(_execute_in_session(session, db_path, sql, **options))))
            now = time.monotonic()
            if len(batch) >= BATCH_SIZE or now - last > BATCH_SECONDS:
                conn.send(batch)
                batch, last = [], now
        position.value = len(tasks)
        if batch:
            conn.send(batch)
    finally:
        session.close()
        conn.close()


def _execute_in_session(session: _Session, db_path: str, sql: str, **options) -> ExecutionResult:
    """One query on a shared session (module-level so tests can wrap it to simulate a crashing worker)."""
    return _run(session, db_path, sql, **options)


def _context(start_method: str | None):
    import multiprocessing
    import threading

    if start_method is None:
        # fork is cheapest, but forking a process that runs other threads (a web server, tokenizers) may
        # deadlock the child; then forkserver. macOS and Windows: spawn.
        methods = multiprocessing.get_all_start_methods()
        if "fork" in methods and sys.platform == "linux":
            others = threading.active_count() - (1 if _WATCHDOG.thread_alive() else 0)  # the watchdog is fork-safe
            start_method = "fork" if others == 1 else "forkserver"
        else:
            start_method = "spawn"
    return multiprocessing.get_context(start_method)


class Executor:
    """Run many `(db_path, sql)` pairs, each identical pair once, grouped by database.

    Args:
        workers: worker processes; `0` runs everything in this process (queries are still interrupted at the
            timeout, but a crash of SQLite itself would take the process down); `None` picks `min(8, CPUs)`
            processes when there are at least `min_pool_tasks` distinct queries and 2 or more CPUs, else 0
            (on 2 idle cores, 7,776 Spider dev pairs: 1.10 s with 2 processes against 1.29 s in-process).
        timeout: seconds per query.
        max_rows: row cap per result.
        max_bytes: size cap per result.
        min_pool_tasks: below this many distinct queries, `workers=None` runs in-process.
        start_method: multiprocessing start method; default "fork" on Linux when this process runs a single
            thread, else "forkserver" ("spawn" off Linux).

    Attributes:
        executed: how many distinct queries this executor has run (a pair that repeats within one `map` call,
            up to `canonical_sql`, counts once).

    Example:
        >>> with Executor(workers=2, timeout=5) as ex:
        ...     results = ex.map([("db.sqlite", "SELECT 1")])
    """

    def __init__(
        self,
        *,
        workers: int | None = None,
        timeout: float = 30.0,
        max_rows: int = 100_000,
        max_bytes: int = MAX_BYTES,
        min_pool_tasks: int = 2_000,
        start_method: str | None = None,
    ) -> None:
        if workers is not None and workers < 0:
            raise ValueError(f"`workers` must be >= 0 or None, got {workers}")
        timeout = check_timeout(timeout, name="`timeout`")
        self.workers = workers
        self.timeout = float(timeout)
        self.options = {"timeout": float(timeout), "max_rows": max_rows, "max_bytes": max_bytes}
        self.min_pool_tasks = min_pool_tasks
        self.start_method = start_method
        self.executed = 0  # distinct queries run so far (identical pairs in one `map` run once)
        self._session: _Session | None = None

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self._session is not None:
            self._session.close()
            self._session = None

    def _n_workers(self, n_tasks: int) -> int:
        if self.workers is not None:
            return min(self.workers, n_tasks)
        cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        if n_tasks < self.min_pool_tasks or cpus < 2:
            return 0  # small jobs: forking and pickling results cost more than they save
        return min(8, cpus, n_tasks)

    def map(self, items: Sequence[tuple[str | Path, str]], *, progress=None) -> list[ExecutionResult]:
        """Execute `(db_path, sql)` pairs; results come back in the same order.

        Args:
            items: the pairs; pairs that are the same up to `canonical_sql` are executed once and share the
            result (its `columns` spelled as in the first of them).
            progress: optional callable called with the number of distinct queries just finished.
        """
        keys: dict[tuple[str, str], int] = {}
        canonical: dict[str, str] = {}
        unique: list[tuple[str, str]] = []  # the first spelling of each distinct query runs
        slots = []
        for db_path, sql in items:
            form = canonical.get(sql)
            if form is None:
                form = canonical[sql] = canonical_sql(sql)
            key = (str(db_path), form)
            slot = keys.get(key)
            if slot is None:
                slot = keys[key] = len(keys)
                unique.append((str(db_path), sql))
            slots.append(slot)
        results: list[ExecutionResult | None] = [None] * len(unique)
        order = sorted(range(len(unique)), key=lambda i: unique[i][0])  # by database: one connection each
        tasks = [(i, unique[i][0], unique[i][1]) for i in order]
        n_workers = self._n_workers(len(tasks))
        self.executed += len(tasks)
        if n_workers == 0:
            if self._session is None:
                self._session = _Session()
            for i, db_path, sql in tasks:
                results[i] = _execute_in_session(self._session, db_path, sql, **self.options)
                if progress is not None:
                    progress(1)
        else:
            self._map_processes(tasks, results, n_workers, progress)
        return [results[s] for s in slots]  # type: ignore[misc]

    def _map_processes(self, tasks, results, n_workers: int, progress) -> None:
        from multiprocessing.connection import wait

        ctx = _context(self.start_method)
        size = -(-len(tasks) // n_workers)
        running: dict = {}  # connection -> [process, shard, results received, last activity, shared position, ready]

        def start(shard) -> None:
            if not shard:
                return
            parent_conn, child_conn = ctx.Pipe(duplex=False)
            position = ctx.RawValue("q", -1)
            proc = ctx.Process(target=_worker_main, args=(child_conn, shard, self.options, position), daemon=True)
            proc.start()
            child_conn.close()
            running[parent_conn] = [proc, shard, 0, time.monotonic(), position, False]

        def fail_current(conn, kind: str, message: str) -> None:
            """The worker died or hangs: its current query gets `kind`; a new worker takes the others."""
            proc, shard, received, _, position, _ready = running.pop(conn)
            conn.close()
            if proc.is_alive():
                proc.kill()
            proc.join()
            current = min(max(position.value, received), len(shard) - 1)
            index, db_path, sql = shard[current]
            logger.warning("query %r on %s: %s", sql[:200], db_path, message)
            results[index] = ExecutionResult.failure(kind, message)
            if progress is not None:
                progress(1)
            start(shard[received:current] + shard[current + 1 :])  # finished-but-unsent ones run again

        grace = 2.0 + BATCH_SECONDS + self.timeout
        try:
            for k in range(0, len(tasks), size):
                start(tasks[k : k + size])
            while running:
                ready = wait(list(running), timeout=0.5)
                now = time.monotonic()
                for conn in ready:
                    state = running[conn]
                    try:
                        batch = conn.recv()
                    except (EOFError, OSError):
                        proc = state[0]
                        proc.join(timeout=1.0)
                        if state[2] >= len(state[1]):
                            running.pop(conn)
                            conn.close()
                            continue
                        code = proc.exitcode
                        why = f"signal {-code}" if code is not None and code < 0 else f"exit code {code}"
                        fail_current(conn, "crash", f"the worker process died while running this query ({why})")
                        continue
                    for index, payload in batch:
                        results[index] = ExecutionResult(*payload)
                    state[2] += len(batch)
                    state[3] = now
                    state[5] = True
                    if progress is not None:
                        progress(len(batch))
                for conn, state in list(running.items()):
                    if conn not in ready and now - state[3] > (grace if state[5] else grace + STARTUP_SECONDS):
                        fail_current(conn, "timeout", f"the query did not stop within {grace:.1f} s; worker killed")
        finally:
            for conn, (proc, *_rest) in list(running.items()):
                proc.kill()
                proc.join()
                conn.close()
