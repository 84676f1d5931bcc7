"""Record files: JSONL reading with line-numbered errors, atomic writes, durable appends, resume after a kill.

Every stage reads and writes its records through these functions, so a bad line is always reported the same way
(`weak.jsonl:12: not valid JSON (Expecting value at column 1); fix or remove that line`) and a run killed
mid-write leaves a file the next run can resume from:

- `read_jsonl` / `iter_jsonl`: every line must be a JSON object; blank lines are skipped.
- `read_complete_jsonl`: for files being appended to; a torn last line (a write cut short by a kill) is left out
  and reported, the file is not changed. `JsonlAppender` cuts such a line off before it appends.
- `read_csv_rows`: the rows of a CSV file; a quote that is never closed (which would swallow the rest of the file
  into one cell) is an error naming the line it opens on.
- `write_jsonl` / `write_json`: written to a temporary file, fsynced, then renamed over the target, so a reader
  sees the old file or the new one, never half of one.
"""

from __future__ import annotations

import csv
import json
import logging
import os
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import orjson

from sense_hub.errors import MissingFileError, RecordError, SenseHubError

__all__ = [
    "JsonlAppender",
    "read_csv_rows",
    "append_jsonl",
    "dumps_line",
    "iter_jsonl",
    "load_records",
    "loads",
    "read_complete_jsonl",
    "read_jsonl",
    "write_json",
    "write_jsonl",
]

logger = logging.getLogger(__name__)

_FIX = "fix or remove that line (one JSON object per line)"


def loads(line: str | bytes) -> Any:
    """`json.loads`, through orjson (5x faster) when it accepts the line; the standard module decides the rest
    (NaN, integers past 64 bits, lone surrogates) and words the error."""
    try:
        return orjson.loads(line)
    except orjson.JSONDecodeError:
        return json.loads(line)


def dumps_line(record: Mapping[str, Any]) -> str:
    """One JSONL line (with its newline); non-ASCII text is kept as is."""
    return json.dumps(record, ensure_ascii=False) + "\n"


def _parse(line: bytes, *, where: str, error: type[SenseHubError], fix: str) -> dict:
    line = line.rstrip(b"\r\n")
    try:
        record = loads(line)
    except json.JSONDecodeError as err:
        raise error(f"{where}: not valid JSON ({err.msg} at column {err.colno}); {fix}") from err
    except UnicodeDecodeError as err:
        raise error(f"{where}: not UTF-8 text ({err.reason}); {fix}") from err
    if not isinstance(record, dict):
        raise error(f"{where}: expected a JSON object, got {type(record).__name__}; {fix}")
    return record


def iter_jsonl(
    path: str | Path, *, error: type[SenseHubError] = RecordError, fix: str = _FIX
) -> Iterator[tuple[int, dict]]:
    """Yield `(line_number, record)` for each non-blank line of a JSONL file.

    Args:
        path: the file.
        error: the error class for a bad line (a `SenseHubError`); the message is `file:line: problem; fix`.
        fix: what the message tells the reader to do about a bad line.

    Raises:
        MissingFileError: the file does not exist.
        RecordError (or `error`): a line is not JSON or not a JSON object.
    """
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"{path}: no such file")
    with path.open("rb") as fh:
        for lineno, line in enumerate(fh, 1):
            if line.strip():
                yield lineno, _parse(line, where=f"{path}:{lineno}", error=error, fix=fix)


def read_jsonl(
    path: str | Path, *, error: type[SenseHubError] = RecordError, fix: str = _FIX, missing_ok: bool = False
) -> list[dict]:
    """The records of a JSONL file (see `iter_jsonl`); `missing_ok=True` gives `[]` for a missing file."""
    if missing_ok and not Path(path).exists():
        return []
    return [record for _, record in iter_jsonl(path, error=error, fix=fix)]


def read_csv_rows(path: str | Path, *, error: type[SenseHubError] = RecordError) -> list[list[str]]:
    """The rows of a CSV file (text decoded as UTF-8, a byte-order mark dropped, bad bytes replaced).

    The file is parsed strictly: a quoted field that is never closed, or text right after a closing quote, is an
    error naming the line where that row starts, instead of a cell that silently holds the rest of the file.

    Raises:
        MissingFileError: the file does not exist.
        RecordError (or `error`): malformed quoting, naming `path:line`.
    """
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"{path}: no such file")
    rows: list[list[str]] = []
    with path.open(newline="", encoding="utf-8-sig", errors="replace") as fh:
        reader = csv.reader(fh, strict=True)
        start = 1
        while True:
            try:
                row = next(reader)
            except StopIteration:
                return rows
            except csv.Error as err:
                what = "a quote opened here is never closed" if "end of data" in str(err) else str(err)
                raise error(
                    f"{path}:{start}: malformed CSV ({what}); close the quote, or double a quote inside a quoted "
                    'field ("")'
                ) from err
            rows.append(row)
            start = reader.line_num + 1


def read_complete_jsonl(
    path: str | Path, *, error: type[SenseHubError] = RecordError, fix: str = _FIX
) -> tuple[list[dict], int]:
    """The records of the complete lines of a JSONL file that is appended to, and the size of a torn last line.

    A last line without its newline is a write cut short by a kill: it is left out (and logged), and its length in
    bytes is returned so the caller can cut it off (`JsonlAppender` does). The file is not changed. A missing file
    gives `([], 0)`.

    Raises:
        RecordError (or `error`): a complete line is not a JSON object.
    """
    path = Path(path)
    if not path.exists():
        return [], 0
    data = path.read_bytes()
    cut = data.rfind(b"\n") + 1
    torn = len(data) - cut if data[cut:].strip() else 0
    records = []
    for lineno, line in enumerate(data[:cut].split(b"\n")[:-1], 1):
        if line.strip():
            records.append(_parse(line, where=f"{path}:{lineno}", error=error, fix=fix))
    if torn:
        logger.warning("%s: leaving out a torn last line (%d bytes) left by an interrupted run", path, torn)
    return records, torn


def _cut_torn_line(path: Path) -> None:
    data = path.read_bytes()
    cut = data.rfind(b"\n") + 1
    if cut < len(data):
        logger.warning("%s: cutting off an incomplete last line left by an interrupted run", path)
        with path.open("r+b") as fh:
            fh.truncate(cut)


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError as err:  # some filesystems (and Windows) cannot sync a folder; the rename is still atomic
        logger.debug("cannot fsync %s: %s", folder, err)
    finally:
        os.close(fd)


def _write_atomic(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)
    return path


def write_jsonl(path: str | Path, records: Iterable[Mapping[str, Any]]) -> Path:
    """Write records as JSONL atomically (a temporary file, fsynced, renamed over `path`); returns `path`."""
    return _write_atomic(Path(path), "".join(dumps_line(r) for r in records))


def write_json(path: str | Path, data: Any, *, indent: int = 2, sort_keys: bool = False) -> Path:
    """Write one JSON document atomically (with a final newline); returns `path`."""
    return _write_atomic(Path(path), json.dumps(data, indent=indent, sort_keys=sort_keys) + "\n")


def append_jsonl(path: str | Path, records: Iterable[Mapping[str, Any]]) -> None:
    """Append records with one write, then flush and fsync (durable before the caller goes on)."""
    text = "".join(dumps_line(r) for r in records)
    if not text:
        return
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())


class JsonlAppender:
    """An open JSONL file that each record is appended to durably (one write, flushed and fsynced).

    Opening it cuts off a torn last line left by a killed run, so the first new record starts on its own line.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.exists():
            _cut_torn_line(self.path)
        self._file = self.path.open("a", encoding="utf-8")

    def write(self, record: Mapping[str, Any]) -> None:
        self._file.write(dumps_line(record))
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> JsonlAppender:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def load_records(
    source: str | Path,
    *,
    config: str | None = None,
    split: str = "train",
    error: type[SenseHubError] = RecordError,
) -> list[dict]:
    """The one loader of a stage's data: records from a JSONL/JSON file, a local Hub-layout dataset folder, or a
    Hub dataset id (SFT, cDPO, GRPO and SPFT data, `benchmarks.load_examples` for folders and Hub ids).

    Args:
        source: the file, folder or `org/name`.
        config: the dataset config name (folders and Hub ids).
        split: the split to read (folders and Hub ids; a file is the `train` split). A missing split gives `[]`.
        error: the error class for a bad file (named by file and line number).

    Raises:
        error: an unreadable JSONL line or JSON file.
    """
    path = Path(source)
    if path.is_file() and path.suffix in {".jsonl", ".json"}:
        if split != "train":
            return []
        text = path.read_text(encoding="utf-8")
        if path.suffix == ".json" and text.lstrip().startswith("["):
            try:
                return list(json.loads(text))
            except json.JSONDecodeError as err:
                raise error(f"{path}: not valid JSON ({err}); expected a list of records") from err
        return read_jsonl(path, error=error, fix="one JSON record per line")
    if path.is_dir():
        # datasets' cache keys a local folder by its name, not its path: two runs' `datasets/pairs` would share
        # (stale) rows. `load_local` reads the config's files by absolute path.
        from sense_hub.hub import known_configs, load_local

        names = known_configs(path)
        dataset = load_local(path, config or ("default" if "default" in names or not names else names[0]))
    else:
        from datasets import load_dataset

        dataset = load_dataset(str(source), name=config)
    if split not in dataset:
        return []
    return [dict(row) for row in dataset[split]]
