"""The error contract of every `sense-hub` subcommand: bad input (a missing file, a malformed line, an unknown key,
a bad value) exits 2 with one line on stderr that names the file or field, and no traceback."""

from __future__ import annotations

import pytest

from sense_hub.cli import main
from sense_hub.errors import SenseHubError

MALFORMED = '{"question": "How many?", "sql": "SELECT 1", "db_id": "a"}\n{"question": "oops"\n'


# (argv with {tmp} for the test's folder, what the one line must say)
CASES = [
    ("eval --predictions {tmp}/missing.jsonl --db-root {tmp}/dbs", "missing.jsonl"),
    ("eval --predictions {tmp}/bad.jsonl --db-root {tmp}/dbs --timeout 0", "--timeout must be positive"),
    ("eval --predictions {tmp}/bad.jsonl --db-root {tmp}/nodir", "nodir"),
    ("pairs --weak {tmp}/missing.jsonl --db-root {tmp}/dbs --output {tmp}/o.jsonl", "missing.jsonl"),
    ("pairs --weak {tmp}/bad.jsonl --db-root {tmp}/dbs --output {tmp}/o.jsonl", "bad.jsonl:1: missing field"),
    ("sample --input {tmp}/missing.jsonl --output {tmp}/o.jsonl", "missing.jsonl"),
    ("sample --input {tmp}/bad.jsonl --output {tmp}/o.jsonl", "bad.jsonl:2: not valid JSON"),
    ("predict --output {tmp}/o.jsonl", "--benchmark"),
    ("synthesize --strategy templates --output {tmp}/o.jsonl", "needs --db-root"),
    ("synthesize --strategy templates --db-root {tmp}/nodir --output {tmp}/o.jsonl", "nodir"),
    ("quickstart --config {tmp}/unknown.yaml", "unknown key(s) ['nope']"),
    ("quickstart --config {tmp}/none.yaml", "none.yaml"),
    ("spft --config {tmp}/none.yaml", "none.yaml"),
    ("spft --config {tmp}/spft.yaml", "`rounds` must be >= 1"),
    ("spft --rounds abc", "invalid int value: 'abc'"),
]


@pytest.mark.parametrize(("command", "needle"), CASES, ids=[c for c, _ in CASES])
def test_bad_input_exits_2_with_one_line(tmp_path, capsys, command, needle):
    (tmp_path / "bad.jsonl").write_text(MALFORMED, encoding="utf-8")
    (tmp_path / "unknown.yaml").write_text("nope: 1\n", encoding="utf-8")
    (tmp_path / "spft.yaml").write_text("rounds: 0\nbf16: false\nuse_cpu: true\n", encoding="utf-8")
    (tmp_path / "dbs").mkdir()
    argv = command.format(tmp=tmp_path).split()
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith(f"sense-hub {argv[0]}: ") and captured.err.count("\n") == 1, captured.err
    assert needle in captured.err and "Traceback" not in captured.err
    assert captured.out == ""


def test_a_bug_still_shows_its_traceback(monkeypatch):
    """Only `SenseHubError` is user error; anything else propagates (pytest sees the exception)."""
    import sense_hub.commands.pairs as pairs_command

    def broken(args):
        raise KeyError("a bug")

    monkeypatch.setattr(pairs_command, "run_cli", broken)
    with pytest.raises(KeyError, match="a bug"):
        main(["pairs", "--weak", "w.jsonl", "--db-root", ".", "--output", "o.jsonl"])


def test_errors_subclass_their_builtins():
    from sense_hub import errors

    for name in errors.__all__:
        cls = getattr(errors, name)
        assert issubclass(cls, SenseHubError)
    assert issubclass(errors.MissingFileError, FileNotFoundError)
    assert issubclass(errors.RecordError, ValueError) and issubclass(errors.GenerationError, RuntimeError)
