"""The errors sense-hub raises at its boundaries (files, command line, uploads, endpoints).

Every one subclasses `SenseHubError`, so a caller can catch them all, and the builtin that describes it
(`ValueError` for input that cannot be used, `FileNotFoundError` for a missing file, `RuntimeError` for a model or
backend that failed), so code written against the builtins keeps working. The message names the file, line or
field and says the fix; `sense-hub` prints it as one line on stderr and exits 2.

Untrusted SQL is not an error: it gives an `execution.ExecutionResult` with an error kind.
"""

from __future__ import annotations

__all__ = [
    "BenchmarkError",
    "DatabaseError",
    "DatasetRepoError",
    "GenerationError",
    "InputError",
    "MissingFileError",
    "ModelError",
    "RecordError",
    "ResumeError",
    "SenseHubError",
    "TrainingDataError",
    "UploadError",
    "UsageError",
]


class SenseHubError(Exception):
    """Base of every error sense-hub raises for input it cannot use; the message says what to do."""


class UsageError(SenseHubError, ValueError):
    """Command-line arguments that do not fit together (a flag another flag needs, a value out of range)."""


class MissingFileError(SenseHubError, FileNotFoundError):
    """A file or folder the caller named does not exist."""


class RecordError(SenseHubError, ValueError):
    """A record (JSONL line) is not JSON, lacks a field or has one of the wrong type; the message names the file,
    line and field."""


class InputError(SenseHubError, ValueError):
    """A predictions or gold file cannot be used as a whole (missing, unreadable, lines that do not pair up)."""


class ResumeError(SenseHubError, ValueError):
    """An output file was started with other arguments, or holds records that contradict the examples."""


class DatabaseError(SenseHubError, ValueError):
    """A database file is missing, unreadable, corrupt or not SQLite; the message names the path."""


class BenchmarkError(SenseHubError, ValueError):
    """A benchmark or dataset file is missing or malformed; the message names the file, the record and the fix."""


class DatasetRepoError(SenseHubError, ValueError):
    """A dataset repo folder is missing, malformed, or lacks the requested config; the message says the fix."""


class TrainingDataError(SenseHubError, ValueError):
    """Training data that cannot be used; the message names the source, the record and the fix."""


class UploadError(SenseHubError, ValueError):
    """An upload the Space cannot use; the message is written for the visitor and says what to upload instead."""


class GenerationError(SenseHubError, RuntimeError):
    """A generation backend failed in a way retries cannot fix; the message names the URL/model and the fix."""


class ModelError(SenseHubError, RuntimeError):
    """The model could not be loaded or did not answer; the message is written for the visitor."""
