"""Fingerprints: sha256 of the databases, predictions and gold a score was computed on, and checks against them.

A published score reproduces only on the same databases (BIRD's dev databases changed in June 2024 and scores
moved; a DAIL-SQL gap was traced to a database). `sense-hub eval` puts a `fingerprints` block in its JSON summary:

```
"fingerprints": {
  "algorithm": "sha256",
  "databases": {"concert_singer/concert_singer.sqlite": "<hex>", ...},   # every file it executed on
  "databases_combined": "<hex>",     # one digest over the sorted (name, digest) lines above
  "predictions": "<hex>",            # the predictions file's bytes
  "gold": "<hex>"                    # the (db_id, gold SQL) pairs in order: equal for a JSONL and a gold file
}
```

and `--expect-fingerprints FILE` (an earlier summary, or a model card whose `model-index` results carry them)
refuses to score when a database it uses now differs from the one scored then.

Hashing a large database is slow (BIRD dev is ~1.4 GB), so digests are cached by absolute path, size, inode
and mtime, in this process and in `<sense-hub cache>/fingerprints.json` (`models.cache_root()`). Like git's
index, an entry is trusted only when the file had not been modified for `RACY_SECONDS` when it was hashed: a
file rewritten in the same clock tick with the same size is hashed again rather than read from the cache.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sense_hub.errors import InputError, SenseHubError

__all__ = [
    "ALGORITHM",
    "FingerprintCache",
    "FingerprintCheck",
    "FingerprintMismatchError",
    "RACY_SECONDS",
    "check_databases",
    "combined_digest",
    "database_fingerprints",
    "gold_digest",
    "mismatch_message",
    "read_expected_fingerprints",
    "sha256_file",
]

logger = logging.getLogger(__name__)

ALGORITHM = "sha256"
RACY_SECONDS = 2.0
_CACHE_VERSION = 1
_CHUNK = 1 << 20


class FingerprintMismatchError(SenseHubError, ValueError):
    """A database differs from the one an expected score was computed on (the message names it)."""


def sha256_file(path: str | Path) -> str:
    """The sha256 hex digest of a file's bytes (read in 1 MiB chunks)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _default_cache_file() -> Path:
    from sense_hub.models import cache_root

    return cache_root() / "fingerprints.json"


class FingerprintCache:
    """sha256 digests of files, cached by (absolute path, size, inode, mtime) in memory and in a JSON file.

    Args:
        path: the JSON cache file (default `<sense-hub cache>/fingerprints.json`); `None` entries are never
            written when `persist` is False.
        persist: read and write the JSON file (False: this process only).
    """

    def __init__(self, path: str | Path | None = None, *, persist: bool = True) -> None:
        self.path = Path(path) if path is not None else _default_cache_file()
        self.persist = persist
        self.hashed = 0  # files actually read (cache misses), for benchmarks and tests
        self._entries: dict[str, dict[str, Any]] = {}
        self._dirty = False
        if persist:
            self._load()

    def _load(self) -> None:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return
        except (OSError, ValueError) as err:
            logger.warning("ignoring the fingerprint cache %s (%s); it will be rewritten", self.path, err)
            return
        if isinstance(data, dict) and data.get("version") == _CACHE_VERSION and isinstance(data.get("entries"), dict):
            self._entries = data["entries"]

    def sha256(self, path: str | Path) -> str:
        """The sha256 of `path`, from the cache when the file is unchanged since it was hashed.

        Raises:
            FileNotFoundError: `path` does not exist.
        """
        key = str(Path(path).resolve())
        st = os.stat(key)
        entry = self._entries.get(key)
        if (
            entry is not None
            and entry.get("size") == st.st_size
            and entry.get("mtime_ns") == st.st_mtime_ns
            and entry.get("ino") == st.st_ino
            and entry.get("hashed_at_ns", 0) - st.st_mtime_ns >= RACY_SECONDS * 1e9
        ):
            return entry["sha256"]
        hashed_at = time.time_ns()
        digest = sha256_file(key)
        self.hashed += 1
        self._entries[key] = {
            "size": st.st_size,
            "mtime_ns": st.st_mtime_ns,
            "ino": st.st_ino,
            "hashed_at_ns": hashed_at,
            "sha256": digest,
        }
        self._dirty = True
        return digest

    def save(self) -> None:
        """Write the cache file if anything was hashed (atomically; a failure is logged, never raised)."""
        if not (self.persist and self._dirty):
            return
        from sense_hub.records import write_json

        self._entries = {k: v for k, v in self._entries.items() if os.path.exists(k)}  # forget deleted files
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            write_json(self.path, {"version": _CACHE_VERSION, "entries": self._entries}, indent=None)
            self._dirty = False
        except OSError as err:
            logger.warning("could not write the fingerprint cache %s: %s", self.path, err)


def combined_digest(digests: Mapping[str, str]) -> str:
    """One sha256 over `name<TAB>digest` lines sorted by name: equal when every file is equal."""
    text = "".join(f"{name}\t{digests[name]}\n" for name in sorted(digests))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def gold_digest(pairs: Iterable[tuple[str, str]]) -> str:
    """sha256 over `db_id<TAB>gold SQL` lines in order: the same for a JSONL predictions file and a gold file."""
    digest = hashlib.sha256()
    for db_id, gold in pairs:
        digest.update(f"{db_id}\t{gold}\n".encode("utf-8", errors="surrogatepass"))
    return digest.hexdigest()


def database_fingerprints(
    paths: Iterable[str | Path], *, root: str | Path, cache: FingerprintCache | None = None
) -> dict[str, str]:
    """The sha256 of each existing database file, keyed by its path relative to `root` (POSIX form, sorted).

    Files that do not exist or cannot be read are left out (the evaluation reports them as `missing_db` or as
    failed queries).
    """
    cache = cache if cache is not None else FingerprintCache()
    root = Path(root)
    out = {}
    for path in sorted({Path(p) for p in paths}):
        if not path.is_file():
            continue
        try:
            name = path.relative_to(root).as_posix()
        except ValueError:
            name = path.as_posix()
        try:
            out[name] = cache.sha256(path)
        except OSError as err:  # unreadable: left out like a missing file (its queries fail the same way)
            logger.warning("cannot fingerprint %s (%s); it is left out of the fingerprints", path, err)
    return dict(sorted(out.items()))


def _from_model_card(text: str) -> dict[str, Any] | None:
    from huggingface_hub import ModelCard

    card = ModelCard(text)
    merged: dict[str, str] = {}
    found = False
    for result in card.data.eval_results or []:
        fingerprints = (result.dataset_args or {}).get("fingerprints")
        if isinstance(fingerprints, dict) and isinstance(fingerprints.get("databases"), dict):
            merged.update(fingerprints["databases"])
            found = True
    return {"databases": merged} if found else None


def read_expected_fingerprints(path: str | Path) -> dict[str, Any]:
    """The fingerprints recorded in a `sense-hub eval` summary (the whole stdout works too) or a model card.

    Args:
        path: a JSON file (the summary `sense-hub eval` prints last, or a predictions dataset's
            `<config>/build_info.json`) or a model card README.md whose `model-index` results carry
            `dataset.args.fingerprints`.

    Returns:
        The `fingerprints` block (at least `databases`: name -> sha256).

    Raises:
        InputError: the file is missing or holds no fingerprints.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as err:
        raise InputError(f"--expect-fingerprints {path}: file not found") from err
    except (OSError, UnicodeDecodeError) as err:
        raise InputError(f"--expect-fingerprints {path}: cannot read it ({err})") from err
    if text.lstrip().startswith("---"):
        found = _from_model_card(text)
        if found is None:
            raise InputError(
                f"--expect-fingerprints {path}: the model card's model-index results carry no fingerprints "
                "(cards record them from `sense-hub eval` summaries; pass that summary JSON instead)"
            )
        return found
    lines = [line for line in text.splitlines() if line.strip()]
    for candidate in (text, *reversed(lines)):
        try:
            data = json.loads(candidate)
        except ValueError:
            continue
        if isinstance(data, dict):
            if isinstance(data.get("summary"), dict):  # a predictions dataset's build_info.json
                data = data["summary"]
            block = data.get("fingerprints", data)
            if isinstance(block, dict) and isinstance(block.get("databases"), dict):
                return block
    raise InputError(
        f"--expect-fingerprints {path}: no `fingerprints` with `databases` found; pass the JSON summary line a "
        "`sense-hub eval` run printed (e.g. `sense-hub eval ... | tail -1 > summary.json`) or a model card"
    )


@dataclass
class FingerprintCheck:
    """How the databases used now compare with expected fingerprints."""

    changed: list[str] = field(default_factory=list)  # in both, other digest
    missing: list[str] = field(default_factory=list)  # expected and referenced now, but not on disk
    unexpected: list[str] = field(default_factory=list)  # used now, not in the expected fingerprints
    matched: int = 0

    @property
    def ok(self) -> bool:
        return not (self.changed or self.missing)

    def as_dict(self) -> dict[str, Any]:
        return {
            "matched": self.matched,
            "changed": self.changed,
            "missing": self.missing,
            "not_in_expected": self.unexpected,
        }


def check_databases(
    expected: Mapping[str, str], actual: Mapping[str, str], *, referenced: Sequence[str] = ()
) -> FingerprintCheck:
    """Compare the databases used now (`actual`, name -> sha256) with `expected`.

    Args:
        expected: name -> sha256 from an earlier run.
        actual: name -> sha256 of the files used now.
        referenced: names the inputs refer to now (whether or not the file exists); an expected one that is
            absent from `actual` counts as missing.
    """
    check = FingerprintCheck()
    for name, digest in actual.items():
        if name not in expected:
            check.unexpected.append(name)
        elif expected[name] != digest:
            check.changed.append(name)
        else:
            check.matched += 1
    check.missing = sorted({n for n in referenced if n in expected and n not in actual})
    return check


def mismatch_message(check: FingerprintCheck, *, expected_path: str | Path, shown: int = 3) -> str:
    """One line naming the databases that differ from `expected_path` (the first `shown` of each kind)."""
    parts = []
    for label, names in (("changed", check.changed), ("missing now", check.missing)):
        if names:
            more = f" and {len(names) - shown} more" if len(names) > shown else ""
            parts.append(f"{label}: {', '.join(names[:shown])}{more}")
    return f"database(s) differ from {expected_path} ({'; '.join(parts)})"
