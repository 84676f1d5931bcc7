"""Pair construction: every knob combination on a hand-checkable set of labelled candidates."""

from __future__ import annotations

import itertools
import json
import re

import pytest

from sense_hub.execution import dedup_key
from sense_hub.formats import validate_records
from sense_hub.pairs import PRESETS, PairConfig, build_pairs

GOLD_Q1 = "SELECT name FROM singer"


def weak(qid, sql, correct, error, *, k, gold=GOLD_Q1, db_id="concert_singer", question=None):
    return {
        "question_id": qid,
        "db_id": db_id,
        "question": question or f"question {qid}?",
        "evidence": "",
        "gold_sql": gold,
        "sql": sql,
        "sample_index": k,
        "generator": "test",
        "status": "ok" if error in (None, "wrong_result") else error,
        "correct": correct,
        "error": error,
    }


# q1: 2 correct (duplicates of each other and of the gold), 2 wrong results (duplicates), a runtime and a
#     syntax error.  q2: no correct sample, 2 distinct wrong results.  q3: only correct samples.
#     q4: labelled against a broken gold (never a negative).
RECORDS = [
    weak("q1", "SELECT name FROM singer", True, None, k=0),
    weak("q1", "select  name from singer;", True, None, k=1),
    weak("q1", "SELECT age FROM singer", False, "wrong_result", k=2),
    weak("q1", "SELECT age FROM singer ", False, "wrong_result", k=3),
    weak("q1", "SELECT nme FROM singer", False, "runtime", k=4),
    weak("q1", "SELEC x", False, "syntax", k=5),
    weak("q2", "SELECT 1", False, "wrong_result", k=0, gold="SELECT count(*) FROM singer"),
    weak("q2", "SELECT 2", False, "wrong_result", k=1, gold="SELECT count(*) FROM singer"),
    weak("q3", "SELECT 3", True, None, k=0, gold="SELECT 3"),
    weak("q4", "SELECT 4", False, "gold_error", k=0, gold="SELECT nope FROM singer"),
]

# The negatives each setting keeps, in input order: (dedup, neg_filter) -> {question: [sql, ...]}
NEGATIVES = {
    (True, "all"): {
        "q1": ["SELECT age FROM singer", "SELECT nme FROM singer", "SELEC x"],
        "q2": ["SELECT 1", "SELECT 2"],
    },
    (False, "all"): {
        "q1": ["SELECT age FROM singer", "SELECT age FROM singer ", "SELECT nme FROM singer", "SELEC x"],
        "q2": ["SELECT 1", "SELECT 2"],
    },
    (True, "exec_only"): {"q1": ["SELECT age FROM singer"], "q2": ["SELECT 1", "SELECT 2"]},
    (False, "exec_only"): {
        "q1": ["SELECT age FROM singer", "SELECT age FROM singer "],
        "q2": ["SELECT 1", "SELECT 2"],
    },
}
# The positives: (dedup, keep_gold) -> {question: [(sql, source), ...]}
POSITIVES = {
    (True, False): {"q1": [("SELECT name FROM singer", "sample")], "q3": [("SELECT 3", "sample")]},
    (False, False): {
        "q1": [("SELECT name FROM singer", "sample"), ("select  name from singer;", "sample")],
        "q3": [("SELECT 3", "sample")],
    },
    # with dedup the gold absorbs both samples (same normalized SQL)
    (True, True): {
        "q1": [(GOLD_Q1, "gold")],
        "q2": [("SELECT count(*) FROM singer", "gold")],
        "q3": [("SELECT 3", "gold")],
        "q4": [("SELECT nope FROM singer", "gold")],
    },
    (False, True): {
        "q1": [(GOLD_Q1, "gold"), ("SELECT name FROM singer", "sample"), ("select  name from singer;", "sample")],
        "q2": [("SELECT count(*) FROM singer", "gold")],
        "q3": [("SELECT 3", "gold"), ("SELECT 3", "sample")],
        "q4": [("SELECT nope FROM singer", "gold")],
    },
}
ERROR_OF = {r["sql"]: r["error"] for r in RECORDS}


def prompt_fn(question, db_id, evidence):
    return [{"role": "system", "content": f"schema {db_id}"}, {"role": "user", "content": question}]


@pytest.mark.parametrize(
    "dedup, neg_filter, keep_gold, neg_limit",
    list(itertools.product([True, False], ["all", "exec_only"], [True, False], [1, 2, None])),
)
def test_every_knob_combination(dedup, neg_filter, keep_gold, neg_limit):
    config = PairConfig(dedup=dedup, neg_filter=neg_filter, keep_gold=keep_gold, neg_limit=neg_limit, seed=0)
    pairs, stats = build_pairs(RECORDS, config=config, prompt_fn=prompt_fn)
    validate_records("pairs", pairs)
    negatives = NEGATIVES[(dedup, neg_filter)]
    positives = POSITIVES[(dedup, keep_gold)]

    expected_counts = {}
    for qid in ("q1", "q2", "q3", "q4"):
        if positives.get(qid) and negatives.get(qid):
            available = len(negatives[qid])
            expected_counts[qid] = available if neg_limit is None else min(neg_limit, available)
    got_counts = {qid: sum(p["question_id"] == qid for p in pairs) for qid in ("q1", "q2", "q3", "q4")}
    assert {q: c for q, c in got_counts.items() if c} == expected_counts

    for pair in pairs:
        qid = pair["question_id"]
        chosen, rejected = pair["chosen"][0]["content"], pair["rejected"][0]["content"]
        assert pair["chosen"][0]["role"] == pair["rejected"][0]["role"] == "assistant"
        assert (chosen, pair["chosen_source"]) in positives[qid]
        assert rejected in negatives[qid]
        assert pair["rejected_error"] == ERROR_OF[rejected]
        assert pair["prompt"] == prompt_fn(pair["question"], "concert_singer", "")
    # no negative is used twice for a question
    keys = [(p["question_id"], p["rejected"][0]["content"]) for p in pairs]
    assert len(keys) == len(set(keys))
    # with no limit the negatives come in input order
    if neg_limit is None:
        for qid in expected_counts:
            assert [p["rejected"][0]["content"] for p in pairs if p["question_id"] == qid] == negatives[qid]

    # statistics
    assert stats["questions"] == 4 and stats["candidates"] == len(RECORDS)
    assert stats["pairs"] == len(pairs) == sum(expected_counts.values())
    with_pos = len(positives)
    assert stats["questions_with_positive"] == with_pos
    assert stats["questions_without_positive"] == 4 - with_pos
    assert stats["questions_with_negative"] == 2 and stats["questions_without_negative"] == 2
    dropped = stats["negatives_dropped"]
    assert dropped["gold_error"] == 1
    assert dropped.get("duplicate", 0) == (1 if dedup else 0)
    if neg_filter == "exec_only":
        assert dropped["filtered:runtime"] == 1 and dropped["filtered:syntax"] == 1
    else:
        assert not any(k.startswith("filtered:") for k in dropped)
    over = sum(len(negatives[q]) - expected_counts[q] for q in expected_counts)
    assert dropped.get("over_limit", 0) == over
    expected_pos_dups = {(True, False): 1, (False, False): 0, (True, True): 3, (False, True): 0}[(dedup, keep_gold)]
    assert stats["positives_dropped_duplicate"] == expected_pos_dups


def test_seed_makes_the_draw_deterministic():
    records = [
        weak(f"q{q}", sql, correct, None if correct else "wrong_result", k=k)
        for q in range(40)
        for k, (sql, correct) in enumerate(
            [("SELECT name FROM singer", True), ("SELECT age FROM singer", True)]
            + [(f"SELECT {i}", False) for i in range(5)]
        )
    ]
    config = PairConfig(neg_limit=1, seed=0)
    first, _ = build_pairs(records, config=config, prompt_fn=prompt_fn)
    again, _ = build_pairs(list(reversed(records))[::-1], config=config, prompt_fn=prompt_fn)
    other, _ = build_pairs(records, config=PairConfig(neg_limit=1, seed=1), prompt_fn=prompt_fn)
    assert first == again
    assert first != other
    # both positives and several negatives get used across questions
    assert len({p["chosen"][0]["content"] for p in first}) == 2
    assert len({p["rejected"][0]["content"] for p in first}) > 2


def test_positives_spread_over_negatives():
    """With 2 distinct positives and no limit, the 4 negatives are paired with each positive twice."""
    records = [weak("q", "SELECT name FROM singer", True, None, k=0), weak("q", "SELECT 'x'", True, None, k=1)]
    records += [weak("q", f"SELECT {i}", False, "wrong_result", k=2 + i) for i in range(4)]
    pairs, _ = build_pairs(records, config=PairConfig(neg_limit=None), prompt_fn=prompt_fn)
    chosen = [p["chosen"][0]["content"] for p in pairs]
    assert sorted(chosen) == sorted(["SELECT name FROM singer", "SELECT 'x'"] * 2)


@pytest.mark.parametrize(
    "a, b, same",
    [
        ("SELECT  name FROM T WHERE a = 'X';", "select name from t where a='X'", True),
        ("SELECT name FROM t WHERE a = 'X'", "SELECT name FROM t WHERE a = 'x'", False),
        ("SELECT count(*) FROM singer", "SELECT count ( * )\nFROM singer ;", True),
        ('SELECT "Full Name" FROM t', 'SELECT "full name" FROM t', False),
        ("SELECT a FROM t WHERE b > 1", "SELECT a FROM t WHERE b >= 1", False),
        ("SELECT a FROM t", "SELECT b FROM t", False),
        ("SELECT a -- the name\nFROM t /* all */", "select a from t", True),
        ("SELECT [My Col] FROM t", "SELECT [my col] FROM t", False),
        ("SELECT '--' FROM t", "SELECT '-' FROM t", False),
    ],
)
def test_dedup_key(a, b, same):
    assert (dedup_key(a) == dedup_key(b)) is same


def test_presets_and_validation():
    assert PRESETS["grouped-any-limit1"] == PairConfig(dedup=True, neg_filter="all", keep_gold=False, neg_limit=1)
    assert PRESETS["grouped-exec-limit1"].neg_filter == "exec_only"
    assert PRESETS["keep-gold-limit1"].keep_gold
    with pytest.raises(ValueError, match="neg_filter"):
        PairConfig(neg_filter="errors")
    with pytest.raises(ValueError, match="neg_limit"):
        PairConfig(neg_limit=0)
    with pytest.raises(ValueError, match="db_root"):
        build_pairs(RECORDS, config=PairConfig())


def test_prompts_come_from_the_database(tiny_db):
    db_root = tiny_db.parent.parent
    records = RECORDS[:6] + [dict(r, db_id="no_such_db", question_id="q2") for r in RECORDS[6:8]]
    pairs, stats = build_pairs(records, config=PairConfig(neg_limit=None), db_root=db_root)
    assert {p["question_id"] for p in pairs} == {"q1"}
    prompt = pairs[0]["prompt"]
    assert [m["role"] for m in prompt] == ["system", "user"]
    assert "singer" in prompt[1]["content"] and "question q1?" in prompt[1]["content"]
    assert all(p["prompt"] == prompt for p in pairs)
    # q2 has no positive anyway; with keep_gold it would pair but its database is missing
    _, stats = build_pairs(records, config=PairConfig(keep_gold=True), db_root=db_root)
    assert stats["questions_missing_db"] == 1


def test_cli(tmp_path, tiny_db):
    from sense_hub.cli import main

    weak_path = tmp_path / "weak.jsonl"
    weak_path.write_text("".join(json.dumps(r) + "\n" for r in RECORDS))
    out = tmp_path / "pairs.jsonl"
    db_root = str(tiny_db.parent.parent)
    args = ["pairs", "--weak", str(weak_path), "--db-root", db_root, "--output", str(out)]
    assert main(args + ["--preset", "grouped-any-limit1"]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    validate_records("pairs", rows)
    assert sorted(r["question_id"] for r in rows) == ["q1"]
    assert main(args + ["--preset", "grouped-any-limit1", "--neg-limit", "all", "--keep-gold"]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted(r["question_id"] for r in rows) == ["q1"] * 3 + ["q2"] * 2


def test_cli_rejects_a_malformed_weak_file(tmp_path, tiny_db, capsys):
    from sense_hub.cli import main

    weak_path = tmp_path / "weak.jsonl"
    bad = dict(RECORDS[0])
    del bad["gold_sql"]
    weak_path.write_text(json.dumps(RECORDS[1]) + "\n" + json.dumps(bad) + "\n")
    argv = [
        "pairs",
        "--weak",
        str(weak_path),
        "--db-root",
        str(tiny_db.parent.parent),
        "--output",
        str(tmp_path / "p"),
    ]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("sense-hub pairs: ") and err.count("\n") == 1 and "Traceback" not in err
    assert re.search(r"weak.jsonl:2.*gold_sql", err)
