"""Label noise: questions whose samples mostly agree on one wrong result are marked `gold_suspect`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import make_tiny_db
from test_sampling import ScriptedGenerator

from sense_hub import cli, hub
from sense_hub.benchmarks import Example
from sense_hub.evaluation import judge
from sense_hub.pairs import PRESETS, PairConfig, build_pairs, read_weak_records
from sense_hub.sampling import gold_suspect, gold_suspect_stats, sample_candidates

FRENCH = "SELECT name FROM singer WHERE country = 'France'"  # 3 rows
OLDER = "SELECT name FROM singer WHERE age > 40"  # Joe Sharp, Rose White, John Nizinik: not the French singers
OLDER_2 = "SELECT name FROM singer WHERE age >= 41"  # the same rows, written differently
NOBODY = "SELECT name FROM singer WHERE country = 'Spain'"  # no rows
COUNT = "SELECT count(*) FROM singer"


def verdicts(db: Path, gold: str, samples: list[str]):
    return judge([(db, gold, sql) for sql in samples], workers=0)


@pytest.mark.parametrize(
    ("gold", "samples", "min_agree", "expected"),
    [
        # 3 of 5 samples share one non-empty result that is not the gold's: suspect
        (FRENCH, [OLDER, OLDER_2, OLDER, COUNT, "SELEC x"], 3, True),
        # only 2 of 5 agree: not enough
        (FRENCH, [OLDER, OLDER_2, COUNT, FRENCH, "SELEC x"], 3, False),
        # 3 of 5 agree, but on the gold result: the gold is confirmed, not suspect
        (
            FRENCH,
            [FRENCH, FRENCH, "SELECT name FROM singer WHERE country = 'France' ORDER BY name", OLDER, OLDER],
            3,
            False,
        ),
        # 3 of 5 agree on an empty result: wrong filters agree on nothing, no evidence against the gold
        (FRENCH, [NOBODY, NOBODY, NOBODY, OLDER, COUNT], 3, False),
        # 3 agree of 8: more than half (5) are needed
        (FRENCH, [OLDER, OLDER, OLDER, COUNT, COUNT, FRENCH, FRENCH, "SELEC x"], 3, False),
        # 5 of 8 agree
        (FRENCH, [OLDER, OLDER, OLDER, OLDER_2, OLDER_2, COUNT, FRENCH, "SELEC x"], 3, True),
        # the gold query itself fails: that is a gold_error, never a suspect
        ("SELECT nme FROM singer", [OLDER, OLDER, OLDER, OLDER, OLDER], 3, False),
        # the parameter: 2 of 3 with min_agree=2 fire, with the default 3 they do not
        (FRENCH, [OLDER, OLDER_2, COUNT], 2, True),
        (FRENCH, [OLDER, OLDER_2, COUNT], 3, False),
    ],
)
def test_gold_suspect_fires_only_on_a_majority_wrong_result(tiny_db, gold, samples, min_agree, expected):
    assert gold_suspect(verdicts(tiny_db, gold, samples), min_agree=min_agree) is expected


def test_gold_suspect_rejects_a_bad_parameter(tiny_db):
    with pytest.raises(ValueError, match="min_agree"):
        gold_suspect(verdicts(tiny_db, FRENCH, [OLDER]), min_agree=0)


def sampled(tmp_path: Path, db_root: Path) -> list[dict]:
    """Weak records of two questions: the first has a wrong gold (most samples agree elsewhere), the second not."""
    examples = [
        Example(question_id="q-0", db_id="concert_singer", question="Which singers are older than 40?", sql=FRENCH),
        Example(question_id="q-1", db_id="concert_singer", question="How many singers are there?", sql=COUNT),
    ]
    gen = ScriptedGenerator(
        {
            "Which singers are older than 40?": [OLDER, OLDER_2, OLDER, COUNT, "SELEC x"],
            "How many singers are there?": [COUNT, COUNT, COUNT, OLDER, OLDER_2],  # 2 wrong agree: too few
        }
    )
    return sample_candidates(examples, gen, db_root=db_root, n=5, output=tmp_path / "weak.jsonl", progress=False)


def test_sampling_marks_every_sample_of_a_suspect_question(tmp_path, tiny_db):
    records = sampled(tmp_path, tiny_db.parent.parent)
    by_q = {qid: {r["gold_suspect"] for r in records if r["question_id"] == qid} for qid in ("q-0", "q-1")}
    assert by_q == {"q-0": {True}, "q-1": {False}}
    assert gold_suspect_stats(records) == {"questions_gold_suspect": 1, "questions": 2, "records_gold_suspect": 5}
    on_disk = list(read_weak_records(tmp_path / "weak.jsonl"))  # the flag survives validation on reading
    assert [r["gold_suspect"] for r in on_disk] == [r["gold_suspect"] for r in records]


def test_pairs_carry_and_drop_gold_suspect(tmp_path, tiny_db):
    records = sampled(tmp_path, tiny_db.parent.parent)
    config = PRESETS["keep-gold-limit1"]
    pairs, stats = build_pairs(records, config=config, db_root=tiny_db.parent.parent)
    flags = {p["question_id"]: p["gold_suspect"] for p in pairs}
    assert flags["q-0"] is True
    assert stats["questions_dropped_gold_suspect"] == 0
    kept, dropped_stats = build_pairs(
        records, config=PairConfig(**{**config.__dict__, "drop_gold_suspect": True}), db_root=tiny_db.parent.parent
    )
    assert "q-0" not in {p["question_id"] for p in kept}
    assert dropped_stats["questions_dropped_gold_suspect"] == stats["questions_gold_suspect"] >= 1
    # records without the flag (older files) give pairs without the column, and nothing is dropped
    old = [{k: v for k, v in r.items() if k != "gold_suspect"} for r in records]
    plain, plain_stats = build_pairs(
        old, config=PairConfig(**{**config.__dict__, "drop_gold_suspect": True}), db_root=tiny_db.parent.parent
    )
    assert plain and all("gold_suspect" not in p for p in plain)
    assert plain_stats["questions_dropped_gold_suspect"] == 0


def test_pairs_command_drops_gold_suspect_and_weak_card_counts(tmp_path, tiny_db, capsys):
    db_root = tiny_db.parent.parent
    sampled(tmp_path, db_root)
    weak = tmp_path / "weak.jsonl"
    out = tmp_path / "pairs.jsonl"
    argv = ["pairs", "--weak", str(weak), "--db-root", str(db_root), "--preset", "keep-gold-limit1"]
    assert cli.main([*argv, "--output", str(out)]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert {r["question_id"]: r["gold_suspect"] for r in rows} == {"q-0": True, "q-1": False}
    assert cli.main([*argv, "--drop-gold-suspect", "--output", str(out)]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["questions_dropped_gold_suspect"] == 1
    assert {json.loads(line)["question_id"] for line in out.read_text().splitlines()} == {"q-1"}

    # the weak dataset's card counts the suspect questions; the column is in the data and in the column table
    repo = hub.write_dataset_repo(read_weak_records(weak), kind="weak", out_dir=tmp_path / "weak-repo", seed=0)
    card = (repo / "README.md").read_text()
    assert "Label noise: 1 of 2 questions (5 records) are marked `gold_suspect`" in card
    assert "| `gold_suspect` | bool |" in card
    ds = hub.load_local(repo, "default")
    assert sorted(ds["train"]["gold_suspect"]) == [False] * 5 + [True] * 5


def test_card_says_nothing_about_label_noise_without_the_flag(tmp_path, tiny_db):
    records = [{k: v for k, v in r.items() if k != "gold_suspect"} for r in sampled(tmp_path, tiny_db.parent.parent)]
    repo = hub.write_dataset_repo(records, kind="weak", out_dir=tmp_path / "weak-repo", seed=0)
    card = (repo / "README.md").read_text()
    assert "gold_suspect" not in card and "Data checks" not in card


def test_build_pairs_script_drop_gold_suspect_counts_in_card(tmp_path, tiny_db):
    from test_dataset_scripts import run_script

    db_root = make_tiny_db(tmp_path / "dbs2" / "concert_singer" / "concert_singer.sqlite").parent.parent
    sampled(tmp_path, db_root)
    argv = ["--input", str(tmp_path / "weak.jsonl"), "--preset", "keep-gold-limit1", "--db_root", str(db_root)]
    run_script("build_pairs", [*argv, "--output_dir", str(tmp_path / "out"), "--drop_gold_suspect", "true"])
    card = (tmp_path / "out" / "README.md").read_text()
    assert "1 `gold_suspect` questions were left out when building" in card
    assert "`drop_gold_suspect`: `True`" in card


def test_row_order_alone_never_flags(tmp_path, tiny_db):
    """Samples that sort the other way agree on the gold rows: the weak model is wrong, not the gold."""
    from sense_hub.execution import execute

    gold = "SELECT name FROM singer ORDER BY age DESC"
    samples = ["SELECT name FROM singer ORDER BY age"] * 4 + [COUNT]
    vs = verdicts(tiny_db, gold, samples)
    assert not any(v.correct for v in vs[:4])  # strict: ORDER BY in the gold makes order count
    assert gold_suspect(vs) is True  # without the gold's rows, it looks like a majority on another result
    assert gold_suspect(vs, gold=execute(tiny_db, gold)) is False
    examples = [Example(question_id="o-0", db_id="concert_singer", question="Singers, oldest first?", sql=gold)]
    gen = ScriptedGenerator({"Singers, oldest first?": samples})
    records = sample_candidates(
        examples, gen, db_root=tiny_db.parent.parent, n=5, output=tmp_path / "o.jsonl", progress=False
    )
    assert {r["gold_suspect"] for r in records} == {False}
