"""GRPO reward functions: many small cases on a tiny SQLite database, plus the caches that make them cheap."""

from __future__ import annotations

import pytest

from sense_hub.rewards import (
    REWARDS,
    ExecutionScorer,
    completion_text,
    get_reward_funcs,
    is_clean_sql,
)

GOLD = "SELECT count(*) FROM singer"
SLOW = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c WHERE x < 0"  # never ends on its own


@pytest.fixture
def db_root(tiny_db):
    return tiny_db.parent.parent


def rewards(db_root, completions, gold=GOLD, *, names=tuple(REWARDS), **kwargs):
    """{name: rewards} for `completions` of one question, all names sharing one scorer."""
    funcs = get_reward_funcs(list(names), db_root=db_root, **kwargs)
    n = len(completions)
    columns = {"db_id": ["concert_singer"] * n, "gold_sql": [gold] * n}
    return {f.__name__: f(prompts=[[]] * n, completions=completions, **columns) for f in funcs}


def one(db_root, completion, gold=GOLD, **kwargs):
    """(execution, executes, format, arctic) for a single completion."""
    out = rewards(db_root, [completion], gold, **kwargs)
    return tuple(out[name][0] for name in ("execution", "executes", "format", "arctic"))


@pytest.mark.parametrize(
    ("completion", "expected"),
    [
        ("SELECT count(*) FROM singer", (1.0, 1.0, 1.0, 1.0)),  # right
        ("select COUNT(*)   from singer;", (1.0, 1.0, 1.0, 1.0)),  # right, other spelling, trailing ;
        ("SELECT count(*) FROM concert WHERE year = 2014", (0.0, 1.0, 1.0, 0.1)),  # wrong number, executes
        ("SELECT name FROM singer", (0.0, 1.0, 1.0, 0.1)),  # wrong result, executes
        ("SELECT count(*) FROM singers", (0.0, 0.0, 1.0, 0.0)),  # runtime error: no such table
        ("SELECT count(* FROM singer", (0.0, 0.0, 1.0, 0.0)),  # syntax error
        ("", (0.0, 0.0, 0.0, 0.0)),  # empty
        ("   \n", (0.0, 0.0, 0.0, 0.0)),  # blank
        ("I do not know how to answer that.", (0.0, 0.0, 0.0, 0.0)),  # prose, no SQL
        ("The query is SELECT count(*) FROM singer", (1.0, 1.0, 0.0, 1.0)),  # right SQL in prose: not clean
        ("SELECT count(*) FROM singer\n\nThis counts the singers.", (1.0, 1.0, 0.0, 1.0)),  # prose after
        ("```sql\nSELECT count(*) FROM singer;\n```", (1.0, 1.0, 1.0, 1.0)),  # one code fence
        ("```\nSELECT count(*) FROM singer\n```", (1.0, 1.0, 1.0, 1.0)),  # bare fence
        ("Here:\n```sql\nSELECT count(*) FROM singer\n```", (1.0, 1.0, 0.0, 1.0)),  # fence with prose
        ("SELECT count(*) FROM singer; SELECT 1", (1.0, 1.0, 0.0, 1.0)),  # several statements: first one runs
        ("SELECT 1; SELECT count(*) FROM singer", (0.0, 1.0, 0.0, 0.1)),  # the first statement is wrong
        ("DROP TABLE singer", (0.0, 0.0, 0.0, 0.0)),  # refused (read-only)
        ("DELETE FROM singer", (0.0, 0.0, 0.0, 0.0)),  # refused
        ("WITH t AS (SELECT * FROM singer) SELECT count(*) FROM t", (1.0, 1.0, 1.0, 1.0)),  # CTE
    ],
)
def test_rewards_per_case(db_root, completion, expected):
    assert one(db_root, completion) == expected


def test_conversational_completions_score_like_strings(db_root):
    texts = ["SELECT count(*) FROM singer", "SELECT name FROM singer", "nope"]
    plain = rewards(db_root, texts)
    chat = rewards(db_root, [[{"role": "assistant", "content": t}] for t in texts])
    blocks = rewards(db_root, [[{"role": "assistant", "content": [{"type": "text", "text": t}]}] for t in texts])
    assert plain == chat == blocks
    assert plain["arctic"] == [1.0, 0.1, 0.0]


@pytest.mark.parametrize(
    ("completion", "text"),
    [
        ("SELECT 1", "SELECT 1"),
        ([{"role": "assistant", "content": "SELECT 1"}], "SELECT 1"),
        ({"role": "assistant", "content": "SELECT 1"}, "SELECT 1"),
        (
            [{"role": "assistant", "content": [{"type": "text", "text": "SELECT "}, {"type": "text", "text": "1"}]}],
            "SELECT 1",
        ),
        ([], ""),
        (None, ""),
    ],
)
def test_completion_text(completion, text):
    assert completion_text(completion) == text


@pytest.mark.parametrize(
    ("text", "clean"),
    [
        ("SELECT a FROM t", True),
        ("  SELECT a FROM t ;  ", True),
        ("```sql\nSELECT a FROM t\n```", True),
        ("```SQL\nSELECT a\nFROM t;\n```", True),
        ("WITH x AS (SELECT 1) SELECT * FROM x", True),
        ("SQL: SELECT a FROM t", False),
        ("SELECT a FROM t; SELECT b FROM t", False),
        ("```sql\nSELECT a FROM t\n```\n```sql\nSELECT b FROM t\n```", False),
        ("CREATE TABLE t (a INT)", False),
        ("", False),
    ],
)
def test_is_clean_sql(text, clean):
    assert is_clean_sql(text) is clean


def test_timeout_costs_one_timeout_and_no_reward(db_root):
    scorer = ExecutionScorer(db_root=db_root, timeout=0.2)
    funcs = get_reward_funcs(["execution", "executes", "arctic"], scorer=scorer)
    columns = {"db_id": ["concert_singer"] * 3, "gold_sql": [GOLD] * 3}
    completions = [SLOW, SLOW, GOLD]
    out = [f(prompts=[[]] * 3, completions=completions, **columns) for f in funcs]
    assert out == [[0.0, 0.0, 1.0], [0.0, 0.0, 1.0], [0.0, 0.0, 1.0]]
    assert scorer.stats.timeouts == 1 and scorer.stats.completion_executions == 2  # the slow query ran once


def test_order_by_and_metrics(db_root):
    gold = "SELECT name FROM singer ORDER BY age"
    reversed_order = "SELECT name FROM singer ORDER BY age DESC"
    assert rewards(db_root, [reversed_order], gold, names=["execution"], metric="strict")["execution"] == [0.0]
    assert rewards(db_root, [reversed_order], gold, names=["execution"], metric="bird")["execution"] == [1.0]
    swapped = "SELECT age, name FROM singer"
    plain_gold = "SELECT name, age FROM singer"
    assert rewards(db_root, [swapped], plain_gold, names=["execution"], metric="spider")["execution"] == [1.0]
    assert rewards(db_root, [swapped], plain_gold, names=["execution"], metric="strict")["execution"] == [0.0]


def test_a_failing_gold_gives_none_for_execution_rewards(db_root):
    out = rewards(db_root, ["SELECT 1", "nonsense"], "SELECT nothing FROM nowhere")
    assert out["execution"] == [None, None] and out["arctic"] == [None, None]
    assert out["executes"] == [1.0, 0.0] and out["format"] == [1.0, 0.0]


def test_missing_database_is_not_a_crash(db_root):
    funcs = get_reward_funcs(["executes", "arctic"], db_root=db_root)
    columns = {"db_id": ["gone"], "gold_sql": [GOLD]}
    assert [f(prompts=[[]], completions=["SELECT 1"], **columns) for f in funcs] == [[0.0], [None]]


def test_db_path_column_instead_of_db_root(tiny_db):
    (f,) = get_reward_funcs(["arctic"])
    assert f(prompts=[[]], completions=[GOLD], db_path=[str(tiny_db)], gold_sql=[GOLD]) == [1.0]


def test_duplicates_execute_once_and_gold_once_across_steps(db_root):
    """A GRPO-shaped batch: 2 questions x 8 generations with many duplicates, scored by 3 rewards for 2 steps."""
    funcs = get_reward_funcs(["execution", "executes", "arctic"], db_root=db_root)
    scorer = funcs[0].scorer
    assert all(f.scorer is scorer for f in funcs)
    q1 = ["SELECT count(*) FROM singer", "select count(*) from singer;", "SELECT name FROM singer", "oops"] * 2
    q2 = ["SELECT count(*) FROM concert", "SELECT name FROM singer", "SELECT name FROM singer", "oops"] * 2
    completions = q1 + q2
    columns = {
        "db_id": ["concert_singer"] * 16,
        "gold_sql": [GOLD] * 8 + ["SELECT count(*) FROM concert"] * 8,
    }
    first = [f(prompts=[[]] * 16, completions=completions, **columns) for f in funcs]
    # distinct (database, SQL) across the batch: count singer, name singer, "oops", count concert = 4
    assert scorer.stats.gold_executions == 2
    assert scorer.stats.completion_executions == 4
    second = [f(prompts=[[]] * 16, completions=completions, **columns) for f in funcs]
    assert first == second
    assert scorer.stats.gold_executions == 2 and scorer.stats.completion_executions == 4  # nothing ran again
    assert scorer.stats.completions_scored == 6 * 16
    assert scorer.stats.verdict_cache_hits == 6 * 16 - 6  # 6 distinct (question, SQL) verdicts were computed
    new = [
        f(prompts=[[]], completions=["SELECT age FROM singer"], db_id=["concert_singer"], gold_sql=[GOLD])
        for f in funcs
    ]
    assert new == [[0.0], [1.0], [0.1]]
    assert scorer.stats.gold_executions == 2 and scorer.stats.completion_executions == 5


def test_process_pool_gives_the_same_rewards(db_root):
    completions = [GOLD, "SELECT name FROM singer", "bad sql", SLOW]
    in_process = rewards(db_root, completions, names=["arctic"], workers=0, timeout=0.3)
    pooled = rewards(db_root, completions, names=["arctic"], workers=2, timeout=0.3)
    assert in_process == pooled == {"arctic": [1.0, 0.1, 0.0, 0.0]}


def test_reward_names_are_logged_by_trl():
    from trl.trainer.utils import get_callable_name

    funcs = get_reward_funcs(["format", "execution"], db_root=".")
    assert [get_callable_name(f) for f in funcs] == ["format", "execution"]


def test_format_alone_needs_no_database():
    (f,) = get_reward_funcs(["format"])
    assert f.scorer is None
    assert f(prompts=[[]] * 2, completions=["SELECT 1", "hello"]) == [1.0, 0.0]


@pytest.mark.parametrize(
    ("names", "kwargs", "message"),
    [
        ([], {}, "`reward_funcs` is empty"),
        (["accuracy"], {}, r"unknown reward\(s\) \['accuracy'\].*choose from execution"),
        (["arctic", "arctic"], {}, "more than once.*reward_weights"),
        (["arctic"], {"metric": "exact"}, "`metric` must be one of spider, bird, strict"),
        (["arctic"], {"timeout": 0}, "`execution_timeout` must be positive"),
        (["arctic"], {"timeout": float("nan")}, "`execution_timeout` must be positive and finite"),
        (["arctic"], {"timeout": float("inf")}, "`execution_timeout` must be positive and finite"),
    ],
)
def test_bad_arguments_say_the_fix(names, kwargs, message):
    with pytest.raises(ValueError, match=message):
        get_reward_funcs(names, db_root=".", **kwargs)


def test_missing_columns_say_which(db_root):
    (f,) = get_reward_funcs(["execution"], db_root=db_root)
    with pytest.raises(ValueError, match="needs a `gold_sql` column"):
        f(prompts=[[]], completions=["SELECT 1"], db_id=["concert_singer"])
    with pytest.raises(ValueError, match="`db_id` \\(or `db_path`\\) column"):
        f(prompts=[[]], completions=["SELECT 1"], gold_sql=[GOLD])
    (g,) = get_reward_funcs(["execution"])
    with pytest.raises(ValueError, match="needs `db_root`"):
        g(prompts=[[]], completions=["SELECT 1"], gold_sql=[GOLD], db_id=["concert_singer"])


def test_the_reward_and_the_evaluator_give_one_verdict_on_a_test_suite_folder(tmp_path):
    """A SQL that matches on the first database but not on another of its folder (Spider's test suite) is wrong
    for `evaluation.judge` and gets no execution reward either: one comparison decides both."""
    import sqlite3

    from sense_hub.evaluation import judge

    folder = tmp_path / "dbs" / "shop"
    folder.mkdir(parents=True)
    for name, rows in (("shop.sqlite", 3), ("shop_2.sqlite", 5)):
        con = sqlite3.connect(folder / name)
        con.execute("CREATE TABLE item (id INTEGER)")
        con.executemany("INSERT INTO item VALUES (?)", [(i,) for i in range(rows)])
        con.commit()
        con.close()
    gold, lucky, right = "SELECT count(*) FROM item", "SELECT 3", "SELECT count(id) FROM item"
    verdicts = judge([(folder / "shop.sqlite", gold, sql) for sql in (lucky, right)], metric="spider")
    scorer = ExecutionScorer(db_root=tmp_path / "dbs", metric="spider")
    outcomes = scorer.score([lucky, right], gold_sql=[gold, gold], db_id=["shop", "shop"])
    scorer.close()
    assert [v.correct for v in verdicts] == [o.correct for o in outcomes] == [False, True]
