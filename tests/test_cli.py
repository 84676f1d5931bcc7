"""The error contract of every `sense-hub` subcommand: bad input (a missing file, a malformed line, an unknown key,
a bad value) exits 2 with one line on stderr that names the file or field, and no traceback."""

from __future__ import annotations

import json

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
    # weak records with a wrong type or a byte that is not UTF-8 (named by line)
    ("pairs --weak {tmp}/type.jsonl --db-root {tmp}/dbs --output {tmp}/o.jsonl", "type.jsonl:1: field 'sample_index'"),
    ("pairs --weak {tmp}/byte.jsonl --db-root {tmp}/dbs --output {tmp}/o.jsonl", "byte.jsonl:2: not UTF-8 text"),
    # quickstart configs: every field's type is checked before any stage starts (none loads a model)
    ("quickstart --config {tmp}/q-four.yaml", "q-four.yaml:2: `weak_samples` must be an integer, got 'four'"),
    (
        "quickstart --config {tmp}/q-broken.yaml",
        "q-broken.yaml:3:5: not valid YAML (while parsing a flow sequence at line 2",
    ),
    ("quickstart --config {tmp}/q-dbs.yaml", "q-dbs.yaml:1: `db_ids` must be a list of strings or null"),
    ("quickstart --config {tmp}/q-many.yaml", "q-many.yaml:1: `sft_steps` must be an integer, got 'many'"),
    ("quickstart --config {tmp}/q-nan.yaml", "`sft_learning_rate` must be a number, got nan"),
    ("quickstart --config {tmp}/q-zero.yaml", "q-zero.yaml:1: `cdpo_steps` must be at least 1"),
    ("quickstart --config {tmp}/q-preset.yaml", "unknown `pairs_preset` 'nope'"),
    ("quickstart --config {tmp}/q-model.yaml", "`verifier_model`: unknown embedded model 'embedded:gpt5'"),
    # --input fields that are not strings are refused, not converted
    ("sample --input {tmp}/listq.jsonl --output {tmp}/o.jsonl", "listq.jsonl:1: field 'question' must be a string"),
    ("predict --input {tmp}/intdb.jsonl --output {tmp}/o.jsonl", "intdb.jsonl:1: field 'db_id' must be a string"),
    ("predict --input {tmp}/intdb.json --output {tmp}/o.jsonl", "intdb.json record 1: field 'db_id' must be a"),
]

WEAK = {"question_id": "q1", "db_id": "a", "question": "How many?", "evidence": "", "gold_sql": "SELECT 1"}
WEAK |= {"sql": "SELECT 1", "sample_index": 0, "generator": "g", "status": "ok", "correct": True, "error": None}
FILES = {
    "type.jsonl": json.dumps({**WEAK, "sample_index": "0"}) + "\n",
    "byte.jsonl": json.dumps(WEAK) + "\n" + json.dumps(WEAK).replace("How", "H\udcffw") + "\n",
    "q-four.yaml": "sft_steps: 2\nweak_samples: four\n",
    "q-broken.yaml": "sft_steps: 2\nmodel: [embedded\nseed: 1\n",
    "q-dbs.yaml": "db_ids: concert_singer\n",
    "q-many.yaml": "sft_steps: many\n",
    "q-nan.yaml": "sft_learning_rate: .nan\n",
    "q-zero.yaml": "cdpo_steps: 0\n",
    "q-preset.yaml": "pairs_preset: nope\n",
    "q-model.yaml": "verifier_model: embedded:gpt5\n",
    "listq.jsonl": json.dumps({"question": ["How", "many?"], "sql": "SELECT 1", "db_id": "a"}) + "\n",
    "intdb.jsonl": json.dumps({"question": "How many?", "sql": "SELECT 1", "db_id": 7}) + "\n",
    "intdb.json": json.dumps([{"question": "How many?", "sql": "SELECT 1", "db_id": 7}]),
}


@pytest.mark.parametrize(("command", "needle"), CASES, ids=[c for c, _ in CASES])
def test_bad_input_exits_2_with_one_line(tmp_path, capsys, monkeypatch, command, needle):
    import sense_hub.generation

    def no_model(*args, **kwargs):
        raise AssertionError("a model was loaded before the input was checked")

    monkeypatch.setattr(sense_hub.generation, "load_generator", no_model)
    for name, text in FILES.items():
        (tmp_path / name).write_text(text, encoding="utf-8", errors="surrogateescape")
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


def test_a_long_command_logs_bars_and_library_output_beside_its_output(tmp_path, capsys, tiny_model_dir):
    from conftest import make_tiny_db

    make_tiny_db(tmp_path / "dbs" / "concert_singer" / "concert_singer.sqlite")
    question = {"question": "How many singers?", "sql": "SELECT count(*) FROM singer", "db_id": "concert_singer"}
    (tmp_path / "q.jsonl").write_text(json.dumps(question) + "\n", encoding="utf-8")
    argv = ["sample", "--input", str(tmp_path / "q.jsonl"), "--db-root", str(tmp_path / "dbs")]
    argv += ["--model", str(tiny_model_dir), "-n", "2", "--max-new-tokens", "4", "--output", str(tmp_path / "w.jsonl")]
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["candidates"] == 2
    # not a terminal: no stage line, no bar; only where the rest went
    assert captured.err == f"sense-hub sample: warnings, library logs and progress bars: {tmp_path / 'w.log'}\n"
    assert "sampling: 100%" in (tmp_path / "w.log").read_text(encoding="utf-8")
