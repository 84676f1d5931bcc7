"""Uploads: one private folder per visitor, and the checks and copy that make an upload a read-only SQLite file."""

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
from pathlib import Path

from sense_hub.errors import UploadError

logger = logging.getLogger(__name__)


SQLITE_MAGIC = b"SQLite format 3\x00"
SQLITE_SUFFIXES = (".sqlite", ".sqlite3", ".db")
CSV_SUFFIXES = (".csv",)


def _key(path: str | Path) -> str:
    return os.path.normpath(os.path.abspath(str(path)))


class UploadLedger(set):
    """Gradio's set of uploaded files (`Blocks.upload_file_set`, which its `/upload` route `update`s), counting
    the uploads of each path so that each upload is used once and its shared file is deleted right after.

    Gradio stores an upload as `<GRADIO_TEMP_DIR>/<hash of the bytes>/<name>`: two visitors who upload the same
    file share one path, and a path is a plain string that anyone who learns it could name in a request or in
    `/gradio_api/file=`. `claim` takes one pending upload of a path (none left: someone else's upload, refused),
    and the file is deleted when its last pending upload has been taken. `build_demo` installs one.
    """

    def __init__(self) -> None:
        super().__init__()
        self._pending: dict[str, int] = {}
        self._lock = threading.Lock()

    def update(self, *groups) -> None:  # Gradio: `blocks.upload_file_set.update(output_files)` per upload request
        with self._lock:
            for group in groups:
                for path in group:
                    key = _key(path)
                    self._pending[key] = self._pending.get(key, 0) + 1
                    super().add(str(path))

    def add(self, path) -> None:
        self.update([path])

    def knows(self, path: str | Path) -> bool:
        """Whether `path` came through Gradio's `/upload` (a visitor's file, not an example or a static file)."""
        with self._lock:
            return _key(path) in self._pending

    def claim(self, path: str | Path) -> int | None:
        """Take one pending upload of `path`: the number still pending after it, or None when none was pending."""
        key = _key(path)
        with self._lock:
            pending = self._pending.get(key, 0)
            if pending == 0:
                return None
            self._pending[key] = pending - 1
            return pending - 1

    def forget_all(self) -> None:
        """Delete every uploaded file still on disk (at shutdown)."""
        with self._lock:
            for key in self._pending:
                _remove_upload(Path(key))
            self._pending = dict.fromkeys(self._pending, 0)


def _place(source: Path, target: Path, *, move: bool) -> None:
    """Copy (or move) `source` to `target` in one step: written under a temporary name, then renamed into place.

    One visitor's concurrent requests naming the same upload share `target`: a request that finds it already
    there uses it while another may be placing it again, so it must never be seen half-written (a plain
    `copyfile` truncates it first: the other request then reads an empty database).
    """
    fd, staging = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    os.close(fd)
    try:
        if move:
            shutil.move(source, staging)
        else:
            shutil.copyfile(source, staging)
        os.replace(staging, target)
    except BaseException:
        Path(staging).unlink(missing_ok=True)
        raise


def _remove_upload(path: Path) -> None:
    """Delete an uploaded file and its folder (Gradio makes one folder per upload hash) when that is empty."""
    try:
        path.unlink()
    except FileNotFoundError:
        pass
    except OSError as e:
        logger.warning("could not delete the upload %s: %s", path, e)
        return
    try:
        path.parent.rmdir()
    except OSError:  # not empty: another file with the same bytes under another name
        pass


class SessionStore:
    """One private folder per visitor under a root folder; folders idle for `max_age_s` are removed.

    Args:
        root: where the folders live (default: a new temporary folder, removed when the process exits).
        max_age_s: a folder untouched this long is deleted (checked whenever a visitor uses the Space, at most
            once a minute).
    """

    def __init__(self, root: str | Path | None = None, *, max_age_s: float = 3600.0):
        self._own_root = root is None
        if root is None:
            root = tempfile.mkdtemp(prefix="sense-demo-sessions-")
            atexit.register(_remove_tree, Path(root))  # a folder we made is ours to delete at exit
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.max_age_s = max_age_s
        self._lock = threading.Lock()
        self._taken: dict[Path, dict[str, Path]] = {}  # visitor folder -> {upload path: the visitor's copy}
        self._last_expiry = 0.0

    def _folder(self, session_id: str) -> Path:
        if not session_id:
            raise ValueError("a session id is needed to give the visitor a private folder")
        return self.root / hashlib.sha256(session_id.encode()).hexdigest()[:24]

    def workdir(self, session_id: str) -> Path:
        """The visitor's folder (created on first use; touching it keeps it alive)."""
        folder = self._folder(session_id)
        with self._lock:
            now = time.time()
            if not folder.exists() or now - self._last_expiry > 60:
                self._last_expiry = now
                self._expire(keep=folder)
            folder.mkdir(parents=True, exist_ok=True)
            os.utime(folder)
        return folder

    def take_uploads(self, session_id: str, files, ledger: UploadLedger | None) -> list[Path]:
        """The visitor's own copies of the files named in a request, in order.

        A fresh upload (pending in `ledger`) is moved or copied into the visitor's folder, and Gradio's shared
        file is deleted once no upload of it is pending; a path this visitor took before maps to the same copy; an
        upload path that is not pending (another visitor's, already taken) is refused as not found. Paths that did
        not come through `/upload` (the bundled examples) are returned as they are.

        Raises:
            UploadError: a named upload is gone or belongs to nobody pending.
        """
        if files is None:
            return []
        names = [str(f) for f in (files if isinstance(files, list | tuple) else [files])]
        workdir = self.workdir(session_id)
        out = []
        for name in names:
            with self._lock:
                mine = self._taken.setdefault(workdir, {}).get(_key(name))
            if mine is not None and mine.is_file():
                out.append(mine)
                continue
            if ledger is None or not ledger.knows(name):
                out.append(Path(name))
                continue
            left = ledger.claim(name)
            source = Path(name)
            if left is None or not source.is_file():
                raise UploadError(f"The upload {source.name} could not be found; please upload it again.")
            folder = workdir / "uploads" / hashlib.sha256(_key(name).encode()).hexdigest()[:16]
            folder.mkdir(parents=True, exist_ok=True)
            target = folder / source.name
            # the last pending upload of these bytes: nobody else needs Gradio's file, so it is moved, not copied
            _place(source, target, move=left == 0)
            if left == 0:
                _remove_upload(source)
            with self._lock:
                self._taken.setdefault(workdir, {})[_key(name)] = target
            out.append(target)
        return out

    def drop(self, session_id: str) -> None:
        """Delete the visitor's folder and everything in it."""
        folder = self._folder(session_id)
        with self._lock:
            self._taken.pop(folder, None)
        _remove_tree(folder)

    def close(self) -> None:
        """Delete every visitor's folder (and the root, when this store made it)."""
        with self._lock:
            self._taken.clear()
            folders = list(self.root.iterdir()) if self.root.exists() else []
        for folder in folders:
            _remove_tree(folder)
        if self._own_root:
            _remove_tree(self.root)

    def _expire(self, *, keep: Path | None = None) -> None:
        cutoff = time.time() - self.max_age_s
        for folder in self.root.iterdir():
            try:
                if folder != keep and folder.is_dir() and folder.stat().st_mtime < cutoff:
                    self._taken.pop(folder, None)
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
