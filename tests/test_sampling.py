"""Weak sampling (labels, resume after a kill, argument guard) and predictions (greedy, majority vote).

Most tests use `ScriptedGenerator`: a deterministic stand-in for a model that answers each question with SQL
strings written in the test, so the labels are known by hand. One test per command runs the real
`TransformersGenerator` on the tiny random model.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from sense_hub.benchmarks import Example
from sense_hub.execution import execute
from sense_hub.formats import WEAK_COLUMNS, validate_records
from sense_hub.sampling import ResumeError, majority_vote, manifest_path, predict, sample_candidates


class ScriptedGenerator:
    """Stands in for a model: answers the question in each prompt with scripted completions, in order.

    `answers` maps a question to completions (cycled to give `n`); unknown questions get "SELECT 1".
    With `fail_after`, the call that would take the total number of prompts past it raises, like a crash.
    """

    name = "scripted"

    def __init__(self, answers: dict[str, list[str]], *, fail_after: int | None = None):
        self.answers = answers
        self.fail_after = fail_after
        self.prompts_seen: list[str] = []
        self.seeds: list[int] = []

    def generate(self, prompts, config):
        questions = [p[-1]["content"].split("Question: ")[1].split("\n")[0] for p in prompts]
        if self.fail_after is not None and len(self.prompts_seen) + len(prompts) > self.fail_after:
            raise RuntimeError("scripted crash")
        self.prompts_seen += questions
        self.seeds.append(config.seed)
        out = []
        for q in questions:
            script = self.answers.get(q, ["SELECT 1"])
            # the seed changes the answers, as it would for a sampling model
            out.append([script[(k + config.seed) % len(script)] for k in range(config.n)])
        return out


QUESTION = "How many singers are there?"
GOLD = "SELECT count(*) FROM singer"
ANSWERS = {
    QUESTION: [
        "SELECT count(*) FROM singer",
        "SELECT count(*) FROM concert WHERE year = 2014",
        "SELEC oops",
        "Here it is:\n```sql\nSELECT count(singer_id) FROM singer;\n```",
    ]
}


def examples(k: int = 1, *, db_id: str = "concert_singer") -> list[Example]:
    out = [Example(question_id="t-0", db_id=db_id, question=QUESTION, sql=GOLD)]
    out += [
        Example(
            question_id=f"t-{i}",
            db_id=db_id,
            question=f"Singers older than {i}?",
            sql=f"SELECT name FROM singer WHERE age > {i}",
        )
        for i in range(1, k)
    ]
    return out


def many_answers(k: int) -> dict[str, list[str]]:
    answers = dict(ANSWERS)
    for i in range(1, k):
        answers[f"Singers older than {i}?"] = [
            f"SELECT name FROM singer WHERE age > {i}",
            f"SELECT name FROM singer WHERE age >= {i + 30}",
            "SELECT nme FROM singer",
        ]
    return answers


def test_labels_and_columns(tiny_db, tmp_path):
    out = tmp_path / "weak.jsonl"
    gen = ScriptedGenerator(ANSWERS)
    records = sample_candidates(
        examples(), gen, db_root=tiny_db.parent.parent, n=4, output=out, seed=0, progress=False
    )
    validate_records("weak", records)
    assert all(list(r) == [*WEAK_COLUMNS, "gold_suspect"] for r in records)
    by_sql = {r["sql"]: r for r in records}
    assert [r["sample_index"] for r in records] == [0, 1, 2, 3]
    assert by_sql["SELECT count(*) FROM singer"]["correct"] is True
    assert by_sql["SELECT count(*) FROM singer"]["error"] is None
    assert by_sql["SELECT count(*) FROM concert WHERE year = 2014"]["error"] == "wrong_result"
    assert by_sql["SELECT count(*) FROM concert WHERE year = 2014"]["status"] == "ok"
    assert by_sql["SELEC oops"]["status"] == by_sql["SELEC oops"]["error"] == "syntax"
    # the SQL is extracted from the fenced answer, and it is correct
    assert by_sql["SELECT count(singer_id) FROM singer"]["correct"] is True
    assert {r["generator"] for r in records} == {"scripted"}
    assert [json.loads(line) for line in out.read_text().splitlines()] == records


def test_skips_missing_databases_and_broken_gold(tiny_db, tmp_path, caplog):
    exs = examples(2) + [
        Example(question_id="t-missing", db_id="no_such_db", question=QUESTION, sql=GOLD),
        Example(
            question_id="t-broken", db_id="concert_singer", question=QUESTION, sql="SELEC", problem="does not parse"
        ),
        Example(question_id="t-goldfails", db_id="concert_singer", question=QUESTION, sql="SELECT nope FROM singer"),
    ]
    records = sample_candidates(
        exs,
        ScriptedGenerator(many_answers(2)),
        db_root=tiny_db.parent.parent,
        n=2,
        output=tmp_path / "w.jsonl",
        progress=False,
    )
    assert [r["question_id"] for r in records] == ["t-0", "t-0", "t-1", "t-1", "t-goldfails", "t-goldfails"]
    assert {r["error"] for r in records if r["question_id"] == "t-goldfails"} == {"gold_error"}
    assert "no_such_db" in caplog.text and "broken" in caplog.text


def _run(tmp_path, db_root, out, *, gen, k=7, chunk_size=2):
    return sample_candidates(
        examples(k), gen, db_root=db_root, n=3, output=out, chunk_size=chunk_size, seed=5, progress=False
    )


def test_resume_after_a_crash_equals_an_uninterrupted_run(tiny_db, tmp_path):
    db_root = tiny_db.parent.parent
    full = tmp_path / "full.jsonl"
    reference = _run(tmp_path, db_root, full, gen=ScriptedGenerator(many_answers(7)))
    assert len(reference) == 21

    out = tmp_path / "resumed.jsonl"
    with pytest.raises(RuntimeError, match="scripted crash"):
        _run(tmp_path, db_root, out, gen=ScriptedGenerator(many_answers(7), fail_after=5))
    assert len(out.read_text().splitlines()) == 2 * 2 * 3  # two chunks of 2 questions made it
    gen = ScriptedGenerator(many_answers(7))
    resumed = _run(tmp_path, db_root, out, gen=gen)
    assert resumed == reference
    assert out.read_bytes() == full.read_bytes()
    assert gen.prompts_seen == [e.question for e in examples(7)[4:]]  # only the unfinished questions
    # a third run has nothing left to do
    gen = ScriptedGenerator(many_answers(7))
    assert _run(tmp_path, db_root, out, gen=gen) == reference and gen.prompts_seen == []


@pytest.mark.parametrize("cut", [1, 0.2, 0.5, 0.77, -1])
def test_resume_from_a_file_cut_anywhere(tiny_db, tmp_path, cut):
    """A kill can leave a torn line or a chunk cut short; the rerun redoes just that and ends identical."""
    db_root = tiny_db.parent.parent
    full = tmp_path / "full.jsonl"
    reference = _run(tmp_path, db_root, full, gen=ScriptedGenerator(many_answers(7)))
    data = full.read_bytes()
    at = {1: 1, -1: len(data) - 1}.get(cut, int(len(data) * cut))
    out = tmp_path / "cut.jsonl"
    out.write_bytes(data[:at])
    manifest_path(out).write_bytes(manifest_path(full).read_bytes())
    assert _run(tmp_path, db_root, out, gen=ScriptedGenerator(many_answers(7))) == reference
    assert out.read_bytes() == data


def test_resume_after_sigkill(tiny_db, tmp_path):
    """A real process killed with SIGKILL mid-run; the rerun completes it without loss or duplicates."""
    db_root = tiny_db.parent.parent
    out = tmp_path / "killed.jsonl"
    script = textwrap.dedent(
        f"""
        import sys, time
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from test_sampling import ScriptedGenerator, many_answers, _run
        from pathlib import Path

        class Slow(ScriptedGenerator):
            def generate(self, prompts, config):
                time.sleep(0.4)
                return super().generate(prompts, config)

        _run(None, Path({str(db_root)!r}), Path({str(out)!r}), gen=Slow(many_answers(7)), chunk_size=1)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", script], env={**os.environ, "PYTHONPATH": os.getcwd()})
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            if out.exists() and len(out.read_bytes().splitlines()) >= 6:
                break
            time.sleep(0.05)
        assert proc.poll() is None, "the sampling process ended before it could be killed"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    partial = len(out.read_bytes().splitlines())
    assert 6 <= partial < 21
    gen = ScriptedGenerator(many_answers(7))
    resumed = _run(tmp_path, db_root, out, gen=gen, chunk_size=1)
    reference = _run(tmp_path, db_root, tmp_path / "full.jsonl", gen=ScriptedGenerator(many_answers(7)), chunk_size=1)
    assert resumed == reference
    assert len(gen.prompts_seen) < 7


def test_resume_refuses_other_arguments(tiny_db, tmp_path):
    db_root = tiny_db.parent.parent
    out = tmp_path / "weak.jsonl"
    sample_candidates(
        examples(2), ScriptedGenerator(many_answers(2)), db_root=db_root, n=2, output=out, progress=False
    )
    with pytest.raises(ResumeError, match=r"n: 2 then, 3 now"):
        sample_candidates(
            examples(2), ScriptedGenerator(many_answers(2)), db_root=db_root, n=3, output=out, progress=False
        )
    with pytest.raises(ResumeError, match=r"temperature"):
        sample_candidates(
            examples(2),
            ScriptedGenerator(many_answers(2)),
            db_root=db_root,
            n=2,
            output=out,
            temperature=0.3,
            progress=False,
        )
    changed = [Example(question_id="t-0", db_id="concert_singer", question=QUESTION, sql="SELECT 1")]
    with pytest.raises(ResumeError, match="t-0"):
        sample_candidates(changed, ScriptedGenerator(ANSWERS), db_root=db_root, n=2, output=out, progress=False)
    stray = tmp_path / "stray.jsonl"
    stray.write_text('{"x": 1}\n')
    with pytest.raises(ResumeError, match="manifest"):
        sample_candidates(examples(), ScriptedGenerator(ANSWERS), db_root=db_root, n=2, output=stray, progress=False)


def test_extending_the_question_list_resumes(tiny_db, tmp_path):
    """`--limit 3` then the whole list: the first questions are kept, the rest are added."""
    db_root = tiny_db.parent.parent
    out = tmp_path / "weak.jsonl"
    gen = ScriptedGenerator(many_answers(5))
    kw = {"db_root": db_root, "n": 2, "output": out, "chunk_size": 2, "progress": False}
    sample_candidates(examples(5)[:3], gen, **kw)
    records = sample_candidates(examples(5), gen, **kw)
    assert [r["question_id"] for r in records] == [f"t-{i}" for i in range(5) for _ in range(2)]
    assert len(out.read_text().splitlines()) == 10


# ---------------------------------------------------------------------------------------------------------------
# predict
# ---------------------------------------------------------------------------------------------------------------


def test_majority_vote(tiny_db):
    def results(*sqls):
        return [execute(tiny_db, s) for s in sqls]

    # groups: {0} empty, {1, 3} five singers, {2} three concerts; 4 fails
    assert majority_vote(
        results(
            "SELECT name FROM singer WHERE age > 100",
            "SELECT count(*) FROM singer",
            "SELECT count(*) FROM concert WHERE year = 2014",
            "SELECT count(singer_id) FROM singer",
            "SELEC x",
        )
    ) == (1, 2)
    # a tie goes to the group that appears first
    assert majority_vote(results("SELECT 1", "SELECT 2", "SELECT 2", "SELECT 1")) == (0, 2)
    assert majority_vote(results("SELECT 2", "SELECT 1", "SELECT 1")) == (1, 2)
    # failures never win, even when they agree
    assert majority_vote(results("SELEC", "SELEC", "SELECT 7")) == (2, 1)
    assert majority_vote(results("SELEC", "SELECT nope FROM singer")) == (0, 0)
    # row order does not split a group
    assert majority_vote(
        results("SELECT 3", "SELECT name FROM singer ORDER BY age", "SELECT name FROM singer", "SELECT 4")
    ) == (1, 2)


def test_predict_greedy_and_vote_feed_eval(tiny_db, tmp_path):
    from sense_hub.cli import main

    db_root = tiny_db.parent.parent
    answers = {
        QUESTION: [
            "SELECT count(*) FROM concert WHERE year = 2014",
            "SELECT count(*) FROM singer",
            "SELECT count(singer_id) FROM singer",
        ]
    }
    greedy = predict(
        examples(), ScriptedGenerator(answers), db_root=db_root, output=tmp_path / "g.jsonl", progress=False
    )
    assert [r["pred"] for r in greedy] == ["SELECT count(*) FROM concert WHERE year = 2014"]
    assert set(greedy[0]) == {"question_id", "db_id", "question", "gold", "pred"}
    voted = predict(
        examples(), ScriptedGenerator(answers), db_root=db_root, n=3, output=tmp_path / "v.jsonl", progress=False
    )
    assert voted[0]["pred"] == "SELECT count(*) FROM singer" and voted[0]["votes"] == 2
    assert voted[0]["candidates"] == answers[QUESTION]

    for name, correct in (("g", False), ("v", True)):
        scored = tmp_path / f"{name}.scored.jsonl"
        assert (
            main(
                [
                    "eval",
                    "--predictions",
                    str(tmp_path / f"{name}.jsonl"),
                    "--db-root",
                    str(db_root),
                    "--output",
                    str(scored),
                ]
            )
            == 0
        )
        assert json.loads(scored.read_text())["correct"] is correct


# ---------------------------------------------------------------------------------------------------------------
# The real local backend, through the CLI
# ---------------------------------------------------------------------------------------------------------------


def _questions_file(tmp_path: Path) -> Path:
    path = tmp_path / "questions.jsonl"
    rows = [
        {"question": QUESTION, "sql": GOLD, "db_id": "concert_singer"},
        {
            "question": "Names of singers from France?",
            "sql": "SELECT name FROM singer WHERE country = 'France'",
            "db_id": "concert_singer",
        },
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_sample_cli_with_a_tiny_model(tiny_db, tiny_model_dir, tmp_path, capsys):
    from sense_hub.cli import main

    out = tmp_path / "weak.jsonl"
    argv = [
        "sample", "--input", str(_questions_file(tmp_path)), "--db-root", str(tiny_db.parent.parent),
        "--model", str(tiny_model_dir), "-n", "3", "--max-new-tokens", "8", "--output", str(out), "--no-progress",
    ]  # fmt: skip
    assert main(argv) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    validate_records("weak", rows)
    assert [(r["question_id"], r["sample_index"]) for r in rows] == [
        (f"questions-{q}", k) for q in range(2) for k in range(3)
    ]
    assert {r["generator"] for r in rows} == {str(tiny_model_dir)}
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["candidates"] == 6 and summary["questions"] == 2
    # the same command again resumes: nothing new, same file
    before = out.read_bytes()
    assert main(argv) == 0
    assert out.read_bytes() == before
    # other arguments are refused with a clear message
    other = list(argv)
    other[other.index("-n") + 1] = "2"
    assert main(other) == 2
    assert "other arguments" in capsys.readouterr().err


def test_predict_cli_with_a_tiny_model(tiny_db, tiny_model_dir, tmp_path):
    from sense_hub.cli import main

    out = tmp_path / "pred.jsonl"
    argv = [
        "predict", "--input", str(_questions_file(tmp_path)), "--db-root", str(tiny_db.parent.parent),
        "--model", str(tiny_model_dir), "-n", "3", "--max-new-tokens", "8", "--output", str(out), "--no-progress",
    ]  # fmt: skip
    assert main(argv) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["question_id"] for r in rows] == ["questions-0", "questions-1"]
    assert all(r["pred"] in r["candidates"] and len(r["candidates"]) == 3 for r in rows)
