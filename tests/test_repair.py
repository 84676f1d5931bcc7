"""Execution-guided repair (`sense_hub.repair`, `predict --repair-rounds`) and schema-aware decoding
(`sense_hub.constrained`, `predict --constrained`).

The repair tests use scripted generators (the model's behaviour is the thing under test: one that fixes its SQL
after seeing SQLite's error, one that never does); the constrained-decoding test runs a real (tiny, random)
transformers model with a real BPE tokenizer through llguidance.
"""

from __future__ import annotations

import json
import re

import pytest

from sense_hub.benchmarks import Example
from sense_hub.repair import SchemaIndex, fix_names, join_for_column, repair, repair_prompt
from sense_hub.sampling import budget, budget_report, predict, run_info, sample_candidates

QUESTION = "What are the names of all singers?"
GOLD = "SELECT name FROM singer"
WRONG = "SELECT singer_name FROM singer"  # no such column; no name equals it up to case and `_`


class Fixer:
    """Answers WRONG at first; once a prompt shows SQLite's error it answers the gold SQL."""

    name = "scripted-fixer"

    def __init__(self, fixes: bool = True):
        self.fixes = fixes
        self.prompts = []

    def generate(self, prompts, config):
        self.prompts += prompts
        out = []
        for p in prompts:
            shown_error = "SQLite could not run that query" in p[-1]["content"]
            out.append([GOLD if (shown_error and self.fixes) else WRONG] * config.n)
        return out


def _examples():
    return [Example(question_id="r-0", db_id="concert_singer", question=QUESTION, sql=GOLD)]


def test_a_model_that_fixes_its_column_after_seeing_the_error_is_repaired_in_one_round(tiny_db, tmp_path):
    out = tmp_path / "preds.jsonl"
    generator = Fixer()
    rows = predict(_examples(), generator, db_root=tiny_db.parents[1], output=out, repair_rounds=1, progress=False)
    (row,) = rows
    assert row["first_pred"] == WRONG and row["pred"] == GOLD
    assert row["repair"] == {"model_calls": 1, "name_fixes": 0, "errors": ["no such column: singer_name"]}
    # the repair prompt carries SQLite's message and the real columns of the table
    note = generator.prompts[-1][-1]["content"]
    assert "no such column: singer_name" in note and "Columns of singer: singer_id, name, country, age" in note
    report = budget_report(rows, db_root=tiny_db.parents[1], output=out, n=1)
    assert report["pred_budget"] == "greedy+repair"
    assert report["budgets"]["greedy"]["correct"] == 0 and report["budgets"]["greedy+repair"]["correct"] == 1
    assert report["budgets"]["greedy"]["model_calls_per_question"] == 1
    assert report["budgets"]["greedy+repair"]["model_calls_per_question"] == 2
    assert run_info(out)["budget"]["name"] == "greedy+repair"


def test_a_model_that_never_fixes_it_stops_after_n_rounds_with_the_last_error(tiny_db):
    generator = Fixer(fixes=False)
    prompt = [{"role": "user", "content": f"Question: {QUESTION}"}]
    (result,) = repair(generator, [prompt], [WRONG], [tiny_db], rounds=3)
    assert result.sql == WRONG and not result.runs
    assert result.model_calls == 3
    assert result.errors[-1] == "no such column: singer_name"
    assert len(generator.prompts) == 3


def test_sql_that_runs_is_never_sent_back(tiny_db):
    generator = Fixer()
    (result,) = repair(generator, [[{"role": "user", "content": "q"}]], [GOLD], [tiny_db], rounds=2)
    assert result.sql == GOLD and result.runs and not result.changed and generator.prompts == []


def test_a_name_that_differs_only_in_case_or_underscores_is_fixed_without_the_model(tiny_db):
    index = SchemaIndex(tiny_db)
    assert (
        fix_names("SELECT singerid FROM singer", "no such column: singerid", index) == "SELECT singer_id FROM singer"
    )
    moved = fix_names(
        "SELECT T1.year FROM singer AS T1 JOIN concert AS T2 ON T1.singer_id = T2.singer_id",
        "no such column: T1.year",
        index,
    )
    assert moved == "SELECT T2.year FROM singer AS T1 JOIN concert AS T2 ON T1.singer_id = T2.singer_id"
    assert fix_names("SELECT name FROM singers", "no such table: singers", index) == "SELECT name FROM singer"
    assert fix_names("SELECT foo FROM singer", "no such column: foo", index) is None  # nothing close: the model's job
    generator = Fixer()
    (result,) = repair(generator, [[{"role": "user", "content": "q"}]], ["SELECT singerid FROM singer"], [tiny_db])
    assert result.runs and result.name_fixes == 1 and result.model_calls == 0 and generator.prompts == []


@pytest.fixture
def pets_db(tmp_path):
    """Spider's pets_1 in small: Has_Pet links students to pets by foreign keys."""
    import sqlite3

    path = tmp_path / "pets_1" / "pets_1.sqlite"
    path.parent.mkdir()
    con = sqlite3.connect(path)
    con.executescript(
        """
        CREATE TABLE Student (StuID INTEGER PRIMARY KEY, Fname TEXT, Age INTEGER);
        CREATE TABLE Pets (PetID INTEGER PRIMARY KEY, PetType TEXT, weight REAL);
        CREATE TABLE Has_Pet (StuID INTEGER, PetID INTEGER,
            FOREIGN KEY (StuID) REFERENCES Student(StuID), FOREIGN KEY (PetID) REFERENCES Pets(PetID));
        INSERT INTO Student VALUES (1, 'Ana', 20), (2, 'Bo', 22), (3, 'Cy', 19);
        INSERT INTO Pets VALUES (10, 'cat', 3.5), (11, 'dog', 12.0);
        INSERT INTO Has_Pet VALUES (1, 10), (2, 11);
        """
    )
    con.commit()
    con.close()
    return path


def test_a_column_of_a_table_the_query_does_not_join_is_joined_in_by_its_foreign_key(pets_db):
    import sqlite3

    index = SchemaIndex(pets_db)
    con = sqlite3.connect(pets_db)
    # bare column, no aliases: the table is joined under its own name, the query's other bare columns qualified
    sql = "SELECT Fname FROM Student WHERE PetID IN (SELECT PetID FROM Pets WHERE PetType = 'cat')"
    fixed = join_for_column(sql, "no such column: PetID", index)
    assert fixed == (
        "SELECT Student.Fname FROM Student JOIN Has_Pet ON Student.StuID = Has_Pet.StuID "
        "WHERE Has_Pet.PetID IN (SELECT PetID FROM Pets WHERE PetType = 'cat')"
    )
    assert con.execute(fixed).fetchall() == [("Ana",)]
    # a qualified column under aliases: the new table gets the next free alias
    sql = "SELECT T1.Fname FROM Student AS T1 JOIN Has_Pet AS T2 ON T1.StuID = T2.StuID WHERE T2.PetType = 'dog'"
    fixed = join_for_column(sql, "no such column: T2.PetType", index)
    assert fixed.endswith("JOIN Pets AS T3 ON T2.PetID = T3.PetID WHERE T3.PetType = 'dog'"), fixed
    assert con.execute(fixed).fetchall() == [("Bo",)]
    # two links away: through the table between (Has_Pet), when that path is the only one
    fixed = join_for_column("SELECT Fname FROM Student WHERE PetType = 'cat'", "no such column: PetType", index)
    assert "JOIN Has_Pet ON Student.StuID = Has_Pet.StuID JOIN Pets ON Has_Pet.PetID = Pets.PetID" in fixed, fixed
    assert con.execute(fixed).fetchall() == [("Ana",)]
    # no foreign key reaches a table with that column, or the name exists nowhere: the model's job
    assert join_for_column("SELECT colour FROM Student", "no such column: colour", index) is None
    assert join_for_column("SELECT Fname FROM Student", "no such table: x", index) is None
    # in repair, the join is made without a model call
    generator = Fixer()
    (result,) = repair(
        generator,
        [[{"role": "user", "content": "q"}]],
        ["SELECT count(*) FROM Pets WHERE StuID = 1"],
        [pets_db],
    )
    assert result.runs and result.model_calls == 0 and generator.prompts == []
    assert "JOIN Has_Pet ON Pets.PetID = Has_Pet.PetID" in result.sql


def test_sample_repairs_only_when_asked_and_keeps_the_sql_before_repair(tiny_db, tmp_path):
    from sense_hub.formats import validate_record

    kept = sample_candidates(
        _examples(), Fixer(), db_root=tiny_db.parents[1], n=2, output=tmp_path / "weak.jsonl", progress=False
    )
    assert [r["sql"] for r in kept] == [WRONG, WRONG] and "first_sql" not in kept[0]  # weak data keeps its errors
    fixed = sample_candidates(
        _examples(),
        Fixer(),
        db_root=tiny_db.parents[1],
        n=2,
        output=tmp_path / "weak-repaired.jsonl",
        progress=False,
        repair_rounds=1,
    )
    assert [(r["sql"], r["first_sql"], r["correct"], r["status"]) for r in fixed] == [(GOLD, WRONG, True, "ok")] * 2
    assert validate_record("weak", fixed[0])["first_sql"] == WRONG


def test_repair_prompt_styles():
    prompt = [{"role": "system", "content": "sys"}, {"role": "user", "content": "Question: q"}]
    conv = repair_prompt(prompt, WRONG, "no such column: x", None, "conversation")
    assert [m["role"] for m in conv] == ["system", "user", "assistant", "user"] and conv[2]["content"] == WRONG
    restated = repair_prompt(prompt, WRONG, "no such column: x", None, "restate")
    assert [m["role"] for m in restated] == ["system", "user"]
    assert restated[1]["content"].startswith("Question: q") and WRONG in restated[1]["content"]
    with pytest.raises(ValueError, match="unknown repair style"):
        repair_prompt(prompt, WRONG, "m", None, "shout")


def test_budget_names_with_modifiers():
    assert budget("greedy", 1, ["constrained", "repair"])["name"] == "greedy+constrained+repair"
    assert budget("maj", 4, ["repair"])["name"] == "maj@4+repair"
    with pytest.raises(ValueError, match="modifier"):
        budget("greedy", 1, ["magic"])


def test_predict_cli_repair_summary(tiny_db, tmp_path, monkeypatch, capsys):
    """`sense-hub predict --repair-rounds 1` prints greedy and greedy+repair side by side (scripted model)."""
    from sense_hub import generation
    from sense_hub.cli import main

    questions = tmp_path / "q.jsonl"
    questions.write_text(
        json.dumps({"question_id": "r-0", "db_id": "concert_singer", "question": QUESTION, "sql": GOLD})
    )
    monkeypatch.setattr(generation, "load_generator", lambda *a, **k: Fixer())
    out = tmp_path / "preds.jsonl"
    code = main(
        ["predict", "--input", str(questions), "--db-root", str(tiny_db.parents[1]), "--model", "scripted",
         "--repair-rounds", "1", "--no-progress", "--output", str(out)]
    )  # fmt: skip
    assert code == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["pred_budget"] == "greedy+repair"
    assert summary["budgets"]["greedy"]["correct"] == 0 and summary["budgets"]["greedy+repair"]["correct"] == 1


# ---------------------------------------------------------------------------------------------------------------
# schema-aware decoding
# ---------------------------------------------------------------------------------------------------------------


def test_the_schema_regex_accepts_real_names_and_refuses_invented_ones(tiny_db):
    from sense_hub.constrained import schema_names, sql_regex

    rx = re.compile(sql_regex(schema_names(tiny_db)))
    for sql in [
        "SELECT name FROM singer WHERE country = 'France'",
        "SELECT T1.Name, count(*) AS n FROM singer AS T1 JOIN concert AS T2 ON T1.singer_id = T2.singer_id "
        "GROUP BY T1.singer_id ORDER BY n DESC LIMIT 1;",
        "```sql\nSELECT avg(age) FROM singer\n```",
        'SELECT concert_name FROM concert WHERE year >= 2014 AND concert_name LIKE "%Week%"',
    ]:
        assert rx.fullmatch(sql), sql
    for sql in ["SELECT singer_name FROM singer", "SELECT name FROM singers", "SELECT name FROM singer WHERE pet = 1"]:
        assert not rx.fullmatch(sql), sql


@pytest.fixture(scope="module")
def tiny_generator(tiny_model_dir):
    from sense_hub.generation import TransformersGenerator

    return TransformersGenerator(str(tiny_model_dir), batch_size=8, device="cpu", dtype="float32")


def test_the_constrained_decoder_never_writes_a_name_outside_the_schema(tiny_generator, tiny_db):
    """A random tiny model with a real BPE tokenizer: free, it writes words the schema lacks; constrained, every
    completion is SQL whose every word is a keyword, a number, an alias or one of the database's names."""
    from dataclasses import replace

    from sense_hub.constrained import grammar_for_database, schema_names, sql_regex
    from sense_hub.generation import GenerationConfig

    rx = re.compile(sql_regex(schema_names(tiny_db)))
    prompts = [[{"role": "user", "content": f"Question: {q}"}] for q in ("How many singers?", "Oldest singer?")]
    config = GenerationConfig(n=8, temperature=1.0, max_new_tokens=40, seed=3)
    free = [t for texts in tiny_generator.generate(prompts, config) for t in texts]
    assert any(not rx.fullmatch(t) for t in free)  # the test can fail: unconstrained, the model invents words
    grammar = grammar_for_database(tiny_db)
    constrained = tiny_generator.generate(prompts, replace(config, grammars=(grammar, grammar)))
    texts = [t for one in constrained for t in one]
    assert len(texts) == 16 and sum(len(t) for t in texts) > 100  # it did write something
    for text in texts:
        assert _valid_prefix(rx, text), text
    assert any(rx.fullmatch(t) for t in texts)  # some end by themselves; the rest stop at max_new_tokens


def _valid_prefix(rx: re.Pattern, text: str) -> bool:
    """The text is SQL the regex accepts, or such SQL cut off by `max_new_tokens` (in a quoted string or a word)."""
    for body in (text, re.sub(r"[A-Za-z0-9_]+$", "", text)):
        if any(rx.fullmatch(body + closer) for closer in ("", "'", '"')):
            return True
    return False


def test_remote_backends_refuse_grammars():
    from sense_hub.errors import GenerationError
    from sense_hub.generation import GenerationConfig, OpenAICompatibleGenerator

    gen = OpenAICompatibleGenerator("m", base_url="http://127.0.0.1:9/v1")
    with pytest.raises(GenerationError, match="local transformers backend"):
        gen.generate([[{"role": "user", "content": "q"}]], GenerationConfig(grammars=("g",)))


# ---------------------------------------------------------------------------------------------------------------
# the Space
# ---------------------------------------------------------------------------------------------------------------


def test_the_space_repairs_an_answer_that_does_not_run_and_says_so(tiny_db):
    from sense_hub.space import SpaceConfig, SQLAssistant

    generator = Fixer()
    answer = SQLAssistant(SpaceConfig(fast_greedy=False), generator=generator).answer(QUESTION, tiny_db)
    assert answer.first_sql == WRONG and answer.sql == GOLD and answer.result.ok
    assert answer.repair_note() == "first try failed: no such column: singer_name; fixed in 1 round"
    off = SQLAssistant(SpaceConfig(fast_greedy=False, repair_rounds=0), generator=Fixer()).answer(QUESTION, tiny_db)
    assert off.sql == WRONG and not off.result.ok and off.repair is None and off.repair_note() == ""
    renamed = SQLAssistant(SpaceConfig(fast_greedy=False), generator=_Always("SELECT singerid FROM singer"))
    answer = renamed.answer(QUESTION, tiny_db)
    assert answer.sql == "SELECT singer_id FROM singer" and answer.repair_note().endswith("fixed by renaming it")


class _Always:
    name = "scripted-always"

    def __init__(self, sql):
        self.sql = sql

    def generate(self, prompts, config):
        return [[self.sql] * config.n for _ in prompts]
