"""`sense_hub.compare` (McNemar, bootstrap, alignment, refusals) and the `sense-hub compare` command."""

from __future__ import annotations

import json
import math
import random
import time
from pathlib import Path

import numpy as np
import pytest

from sense_hub.cli import main
from sense_hub.compare import (
    CompareInputError,
    bootstrap_sums,
    compare,
    default_names,
    mcnemar_p,
    percentile_interval,
    render_markdown,
    summary,
)

SYSTEM_KEYS = {"name", "n", "correct", "ex", "ci_low", "ci_high"}
PAIR_KEYS = {"a", "b", "a_only", "b_only", "mcnemar_p", "delta", "delta_ci_low", "delta_ci_high"}


def records(correct, *, ids=True, dbs=None, golds=None, **extra):
    out = []
    for i, c in enumerate(correct):
        row = {"db_id": (dbs[i] if dbs else "db" + str(i % 3)), "gold": golds[i] if golds else f"SELECT {i}"}
        if ids:
            row["question_id"] = f"spider-{i}"
        row.update({"pred": "SELECT 1", "correct": bool(c), "error": None})
        for key, values in extra.items():
            row[key] = values[i]
        out.append(row)
    return out


def write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


# --- McNemar: hand-computed two-sided binomial values --------------------------------------------------------


@pytest.mark.parametrize(
    ("a_only", "b_only", "expected"),
    [
        (0, 0, 1.0),  # no discordant items
        (0, 1, 1.0),  # 2 * 1/2
        (0, 5, 0.0625),  # 2 * 1/32
        (5, 0, 0.0625),  # symmetric
        (1, 5, 0.21875),  # 2 * (1 + 6) / 64
        (0, 6, 0.03125),  # 2 * 1/64
        (2, 8, 0.109375),  # 2 * (1 + 10 + 45) / 1024
        (1, 9, 0.021484375),  # 2 * (1 + 10) / 1024
        (3, 3, 1.0),  # balanced
        (4, 5, 1.0),  # 2 * P(X <= 4) for n = 9 is exactly 1
        (0, 10, 2 / 1024),
        (10, 20, 2 * sum(math.comb(30, i) for i in range(11)) / 2**30),
    ],
)
def test_mcnemar_exact_values(a_only, b_only, expected):
    assert mcnemar_p(a_only, b_only) == pytest.approx(expected, rel=1e-12)


def test_mcnemar_large_counts_stay_finite_and_ordered():
    p = mcnemar_p(400, 600)
    assert 0 < p < 1e-9
    assert mcnemar_p(480, 520) > mcnemar_p(450, 550) > p
    assert mcnemar_p(5000, 5000) == 1.0
    assert mcnemar_p(0, 3000) == 0.0  # 2 / 2**3000 underflows to 0, no overflow error


def test_mcnemar_rejects_negative_counts():
    with pytest.raises(ValueError, match=">= 0"):
        mcnemar_p(-1, 3)


# --- bootstrap ---------------------------------------------------------------------------------------------------


def test_bootstrap_sums_shape_range_and_seed():
    correct = (np.random.default_rng(3).random((2, 50)) < 0.6).astype(np.int64)
    a = bootstrap_sums(correct, n_resamples=1000, seed=7)
    b = bootstrap_sums(correct, n_resamples=1000, seed=7)
    c = bootstrap_sums(correct, n_resamples=1000, seed=8)
    assert a.shape == (2, 1000)
    assert (a >= 0).all() and (a <= 50).all()
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)
    # the mean of the resampled counts is close to the observed count
    assert abs(a[0].mean() - correct[0].sum()) < 1.0


def test_bootstrap_chunks_do_not_change_the_draws_count():
    correct = np.ones((1, 30), dtype=np.int64)
    sums = bootstrap_sums(correct, n_resamples=2500, seed=0, chunk=1000)
    assert sums.shape == (1, 2500)
    assert (sums == 30).all()  # an always-right system is always right on a resample


def test_bootstrap_is_paired():
    # B is A with one extra right item: on every resample B >= A
    a = np.array([1, 0, 1, 0, 1, 0, 0, 1, 1, 0])
    b = a.copy()
    b[1] = 1
    sums = bootstrap_sums(np.stack([a, b]), n_resamples=2000, seed=0)
    assert (sums[1] >= sums[0]).all()


def test_percentile_interval():
    low, high = percentile_interval(np.arange(1001) / 1000)
    assert low == pytest.approx(0.025)
    assert high == pytest.approx(0.975)


def test_bootstrap_is_fast():
    correct = (np.random.default_rng(0).random((2, 1034)) < 0.8).astype(np.int64)
    bootstrap_sums(correct, n_resamples=100, seed=0)  # warm-up
    started = time.perf_counter()
    bootstrap_sums(correct, n_resamples=10_000, seed=0)
    assert time.perf_counter() - started < 3.0  # about 0.1 s; a generous bound for a busy CI machine


# --- compare() ---------------------------------------------------------------------------------------------------


def test_identical_systems(tmp_path):
    rows = records([1, 0, 1, 1, 0, 1, 0, 1])
    result = compare([write(tmp_path / "a.jsonl", rows), write(tmp_path / "b.jsonl", rows)], n_resamples=500)
    (pair,) = result.pairs
    assert (pair.a_only, pair.b_only, pair.mcnemar_p) == (0, 0, 1.0)
    assert (pair.delta, pair.delta_ci_low, pair.delta_ci_high) == (0.0, 0.0, 0.0)
    assert result.systems[0].ci_low == result.systems[1].ci_low


def test_counts_ex_and_pair_direction(tmp_path):
    a = [1, 1, 1, 1, 1, 0, 0, 0, 1, 1]
    b = [0, 0, 0, 0, 0, 0, 0, 0, 1, 1]  # 5 items only A got right, none only B
    result = compare([write(tmp_path / "a.jsonl", records(a)), write(tmp_path / "b.jsonl", records(b))])
    sa, sb = result.systems
    assert (sa.name, sa.n, sa.correct, sa.ex) == ("a", 10, 7, 0.7)
    assert (sb.name, sb.n, sb.correct, sb.ex) == ("b", 10, 2, 0.2)
    (pair,) = result.pairs
    assert (pair.a, pair.b, pair.a_only, pair.b_only) == ("a", "b", 5, 0)
    assert pair.mcnemar_p == pytest.approx(0.0625)
    assert pair.delta == pytest.approx(0.5)  # EX(A) - EX(B)
    assert 0 < pair.delta_ci_low <= pair.delta <= pair.delta_ci_high <= 1


def test_interval_contains_the_point_estimate(tmp_path):
    rng = random.Random(0)
    paths = []
    for name, p in (("x", 0.3), ("y", 0.5), ("z", 0.8)):
        paths.append(write(tmp_path / f"{name}.jsonl", records([rng.random() < p for _ in range(200)])))
    result = compare(paths, n_resamples=2000, seed=1)
    for s in result.systems:
        assert 0 <= s.ci_low <= s.ex <= s.ci_high <= 1
        assert s.ci_high - s.ci_low < 0.2  # n = 200: about +- 7 points
    assert len(result.pairs) == 3
    assert [(p.a, p.b) for p in result.pairs] == [("x", "y"), ("x", "z"), ("y", "z")]
    for p in result.pairs:
        assert p.delta_ci_low <= p.delta <= p.delta_ci_high
        assert p.delta == pytest.approx((p.a_only - p.b_only) / 200)


def test_seed_reproducibility(tmp_path):
    a = write(tmp_path / "a.jsonl", records([i % 2 for i in range(40)]))
    b = write(tmp_path / "b.jsonl", records([i % 3 == 0 for i in range(40)]))
    one = summary(compare([a, b], n_resamples=1000, seed=5))
    two = summary(compare([a, b], n_resamples=1000, seed=5))
    other = summary(compare([a, b], n_resamples=1000, seed=6))
    assert one == two
    assert one != other
    assert one["pairs"][0]["mcnemar_p"] == other["pairs"][0]["mcnemar_p"]  # only the intervals depend on the seed


def test_alignment_by_question_id_when_lines_are_shuffled(tmp_path):
    a_rows = records([1, 1, 0, 0, 1, 0])
    b_rows = records([1, 0, 0, 1, 1, 1])
    shuffled = [b_rows[i] for i in (5, 2, 0, 4, 1, 3)]
    a = write(tmp_path / "a.jsonl", a_rows)
    in_order = compare([a, write(tmp_path / "b.jsonl", b_rows)], n_resamples=300)
    result = compare([a, write(tmp_path / "b_shuffled.jsonl", shuffled)], n_resamples=300)
    assert result.aligned_by == "question_id"
    assert (result.pairs[0].a_only, result.pairs[0].b_only) == (1, 2)
    assert summary(result)["pairs"][0] | {"b": "b"} == summary(in_order)["pairs"][0]


def test_alignment_by_id_field(tmp_path):
    a_rows = [
        {"id": f"q{i}", "db_id": "d", "gold": f"SELECT {i}", "correct": bool(c)} for i, c in enumerate([1, 0, 1])
    ]
    b_rows = list(reversed([dict(r, correct=not r["correct"]) for r in a_rows]))
    result = compare([write(tmp_path / "a.jsonl", a_rows), write(tmp_path / "b.jsonl", b_rows)], n_resamples=100)
    assert result.aligned_by == "id"
    assert (result.pairs[0].a_only, result.pairs[0].b_only) == (2, 1)


def test_alignment_by_line_without_ids(tmp_path):
    a = write(tmp_path / "a.jsonl", records([1, 0, 1], ids=False))
    b = write(tmp_path / "b.jsonl", records([1, 1, 1]))  # ids in one file only: paired by line
    result = compare([a, b], n_resamples=100)
    assert result.aligned_by == "line"
    assert (result.pairs[0].a_only, result.pairs[0].b_only) == (0, 1)


def test_blank_lines_are_skipped_and_line_numbers_kept(tmp_path):
    a = tmp_path / "a.jsonl"
    rows = records([1, 0], ids=False)
    a.write_text(json.dumps(rows[0]) + "\n\n" + json.dumps(rows[1]) + "\n")
    b = write(tmp_path / "b.jsonl", records([1, 1], ids=False, dbs=["db0", "other"]))
    with pytest.raises(CompareInputError, match=r"b\.jsonl:2: db_id 'other' differs from .*a\.jsonl:3"):
        compare([a, b])


# --- refusals ----------------------------------------------------------------------------------------------------


def test_refuses_different_line_counts(tmp_path):
    a = write(tmp_path / "a.jsonl", records([1, 0, 1], ids=False))
    b = write(tmp_path / "b.jsonl", records([1, 0], ids=False))
    with pytest.raises(CompareInputError, match=r"a\.jsonl:3: .*a\.jsonl has 3 items but .*b\.jsonl has 2"):
        compare([a, b])


def test_refuses_different_db_id(tmp_path):
    a = write(tmp_path / "a.jsonl", records([1, 0, 1], ids=False))
    b = write(tmp_path / "b.jsonl", records([1, 0, 1], ids=False, dbs=["db0", "db1", "zoo"]))
    with pytest.raises(CompareInputError, match=r"b\.jsonl:3: db_id 'zoo' differs from .*a\.jsonl:3 \('db2'\)"):
        compare([a, b])


def test_refuses_different_gold_but_ignores_whitespace(tmp_path):
    a = write(tmp_path / "a.jsonl", records([1, 0], golds=["SELECT 1", "SELECT  name FROM t"]))
    spaced = write(tmp_path / "spaced.jsonl", records([1, 1], golds=[" SELECT 1", "SELECT name\nFROM t "]))
    assert compare([a, spaced], n_resamples=10).pairs[0].b_only == 1
    other = write(tmp_path / "other.jsonl", records([1, 1], golds=["SELECT 1", "SELECT age FROM t"]))
    with pytest.raises(CompareInputError, match=r"other\.jsonl:2: gold 'SELECT age FROM t' differs"):
        compare([a, other])


def test_refuses_unknown_and_missing_ids(tmp_path):
    a = write(tmp_path / "a.jsonl", records([1, 0, 1]))
    extra = records([1, 0, 1, 1])
    with pytest.raises(CompareInputError, match=r"b\.jsonl:4: question_id 'spider-3' is not in .*a\.jsonl"):
        compare([a, write(tmp_path / "b.jsonl", extra)])
    with pytest.raises(CompareInputError, match=r"a\.jsonl:3: question_id 'spider-2' has no line in .*c\.jsonl"):
        compare([a, write(tmp_path / "c.jsonl", records([1, 0]))])


def test_refuses_repeated_ids(tmp_path):
    rows = records([1, 0, 1])
    rows[2]["question_id"] = "spider-0"
    with pytest.raises(CompareInputError, match=r"a\.jsonl:3: question_id 'spider-0' repeats \(first at line 1\)"):
        compare([write(tmp_path / "a.jsonl", rows), write(tmp_path / "b.jsonl", records([1, 1, 1]))])


def test_refuses_malformed_json(tmp_path):
    a = tmp_path / "a.jsonl"
    a.write_text(json.dumps(records([1])[0]) + "\n{not json\n")
    with pytest.raises(CompareInputError, match=r"a\.jsonl:2: not valid JSON .*sense-hub eval --output"):
        compare([a])
    a.write_text("[1, 2]\n")
    with pytest.raises(CompareInputError, match=r"a\.jsonl:1: expected a JSON object, got list"):
        compare([a])


def test_refuses_missing_correct_field(tmp_path):
    rows = records([1, 0])
    del rows[1]["correct"]
    with pytest.raises(CompareInputError, match=r"p\.jsonl:2: no `correct` field; .*run `sense-hub eval"):
        compare([write(tmp_path / "p.jsonl", rows)])
    rows[1]["correct"] = "yes"
    with pytest.raises(CompareInputError, match=r"p\.jsonl:2: `correct` is not true/false"):
        compare([write(tmp_path / "p.jsonl", rows)])


def test_refuses_empty_and_missing_files(tmp_path):
    (tmp_path / "empty.jsonl").write_text("\n")
    with pytest.raises(CompareInputError, match="empty.jsonl: no lines"):
        compare([tmp_path / "empty.jsonl"])
    with pytest.raises(CompareInputError, match="nope.jsonl: file not found"):
        compare([tmp_path / "nope.jsonl"])


def test_refuses_bad_names_and_resamples(tmp_path):
    a = write(tmp_path / "a.jsonl", records([1, 0]))
    b = write(tmp_path / "b.jsonl", records([1, 1]))
    with pytest.raises(CompareInputError, match="1 names for 2 files"):
        compare([a, b], names=["x"])
    with pytest.raises(CompareInputError, match="'x' is used twice"):
        compare([a, b], names=["x", "x"])
    with pytest.raises(ValueError, match="resamples must be >= 1"):
        compare([a, b], n_resamples=0)


def test_default_names():
    assert default_names(["runs/base.jsonl", "runs/sft.jsonl"]) == ["base", "sft"]
    assert default_names(["a/judged.jsonl", "b/judged.jsonl", "c.jsonl"]) == ["a/judged", "b/judged", "c"]


# --- breakdown ---------------------------------------------------------------------------------------------------


def test_by_db_id(tmp_path):
    dbs = ["pets", "pets", "zoo", "cars", "zoo", "pets"]
    a = write(tmp_path / "a.jsonl", records([1, 1, 0, 1, 0, 0], dbs=dbs))
    b = write(tmp_path / "b.jsonl", records([0, 1, 1, 1, 1, 0], dbs=dbs))
    result = compare([a, b], by="db_id", n_resamples=100)
    assert [(g.group, g.n, g.correct) for g in result.groups] == [
        ("cars", 1, (1, 1)),
        ("pets", 3, (2, 1)),
        ("zoo", 2, (0, 2)),
    ]
    table = render_markdown(result)
    assert "| db_id | n | a | b |" in table
    assert "| pets | 3 | 66.7 (2) | 33.3 (1) |" in table


def test_by_difficulty(tmp_path):
    levels = ["simple", "moderate", "simple", "challenging"]
    a = write(tmp_path / "a.jsonl", records([1, 0, 1, 0], difficulty=levels))
    result = compare([a], by="difficulty", n_resamples=100)
    assert [(g.group, g.n, g.correct) for g in result.groups] == [
        ("challenging", 1, (0,)),
        ("moderate", 1, (0,)),
        ("simple", 2, (2,)),
    ]
    with pytest.raises(CompareInputError, match=r"b\.jsonl:1: no `difficulty` field"):
        compare([write(tmp_path / "b.jsonl", records([1]))], by="difficulty")
    partial = records([1, 0, 1], difficulty=["simple", "", "simple"])
    groups = compare([write(tmp_path / "c.jsonl", partial)], by="difficulty", n_resamples=10).groups
    assert [(g.group, g.n, g.correct) for g in groups] == [("(none)", 1, (0,)), ("simple", 2, (2,))]


def test_markdown_tables(tmp_path):
    a = write(tmp_path / "base.jsonl", records([0] * 5 + [1] * 5))
    b = write(tmp_path / "sft.jsonl", records([1] * 10))
    table = render_markdown(compare([a, b], n_resamples=200))
    assert "| system | n | correct | EX % | 95% CI |" in table
    assert "| base | 10 | 5 | 50.0 | [" in table
    assert "| sft | 10 | 10 | 100.0 | [100.0, 100.0] |" in table
    assert "| base | sft | 0 | 5 | 0.0625 | -50.0 | [" in table


# --- CLI ---------------------------------------------------------------------------------------------------------


def last_json(out: str) -> dict:
    return json.loads(out.rstrip("\n").splitlines()[-1])


def test_cli_summary_and_table(tmp_path, capsys):
    a = write(tmp_path / "base.jsonl", records([1, 0, 0, 0, 0, 0, 1, 1]))
    b = write(tmp_path / "sft.jsonl", records([1, 1, 1, 1, 1, 1, 1, 1]))
    c = write(tmp_path / "cdpo.jsonl", records([1, 1, 1, 1, 1, 0, 1, 0]))
    out_md = tmp_path / "out" / "table.md"
    assert main(["compare", str(a), str(b), str(c), "--bootstrap", "500", "--output", str(out_md)]) == 0
    out = capsys.readouterr().out
    data = last_json(out)
    assert set(data) == {"systems", "pairs"}
    assert [set(s) for s in data["systems"]] == [SYSTEM_KEYS] * 3
    assert [set(p) for p in data["pairs"]] == [PAIR_KEYS] * 3
    assert [s["name"] for s in data["systems"]] == ["base", "sft", "cdpo"]
    assert [(s["n"], s["correct"]) for s in data["systems"]] == [(8, 3), (8, 8), (8, 6)]
    first = data["pairs"][0]
    assert (first["a"], first["b"], first["a_only"], first["b_only"]) == ("base", "sft", 0, 5)
    assert first["mcnemar_p"] == pytest.approx(0.0625)
    assert first["delta"] == pytest.approx(-5 / 8)
    assert out_md.read_text() in out
    assert out.startswith("Execution accuracy on 8 items")


def test_cli_names_seed_and_by(tmp_path, capsys):
    a = write(tmp_path / "a.jsonl", records([1, 0, 1, 0, 1, 1]))
    b = write(tmp_path / "b.jsonl", records([0, 0, 1, 1, 1, 1]))
    args = ["compare", str(a), str(b), "--names", "first, second", "--seed", "3", "--bootstrap", "300"]
    assert main([*args, "--by", "db_id"]) == 0
    out = capsys.readouterr().out
    assert "| db_id | n | first | second |" in out
    assert [s["name"] for s in last_json(out)["systems"]] == ["first", "second"]
    assert main(args) == 0
    assert last_json(capsys.readouterr().out) == last_json(out)


@pytest.mark.parametrize(
    ("setup", "extra", "message"),
    [
        ("short", [], "a.jsonl:3: "),
        ("nojson", [], "b.jsonl:2: not valid JSON"),
        ("nocorrect", [], "b.jsonl:1: no `correct` field"),
        ("ok", ["--names", "x"], "1 names for 2 files"),
        ("ok", ["--names", "x,"], "has an empty name"),
        ("ok", ["--bootstrap", "0"], "--bootstrap must be >= 1"),
        ("ok", ["--by", "difficulty"], "no `difficulty` field"),
    ],
)
def test_cli_refusals_exit_2_with_one_line(tmp_path, capsys, setup, extra, message):
    a = write(tmp_path / "a.jsonl", records([1, 0, 1], ids=False))
    b = tmp_path / "b.jsonl"
    if setup == "short":
        write(b, records([1, 0], ids=False))
    elif setup == "nojson":
        b.write_text(json.dumps(records([1])[0]) + "\nnope\n")
    elif setup == "nocorrect":
        b.write_text(json.dumps({"db_id": "db0", "gold": "SELECT 0", "pred": "SELECT 1"}) + "\n")
    else:
        write(b, records([0, 0, 1], ids=False))
    assert main(["compare", str(a), str(b), *extra]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("sense-hub compare: ")
    assert message in lines[0]


def test_cli_missing_file(tmp_path, capsys):
    a = write(tmp_path / "a.jsonl", records([1]))
    assert main(["compare", str(a), str(tmp_path / "gone.jsonl")]) == 2
    assert "gone.jsonl: file not found" in capsys.readouterr().err


def test_line_separator_inside_a_json_string(tmp_path):
    # orjson (used by `sense-hub eval`) writes U+2028 unescaped; it must not split a line
    rows = records([1, 0])
    rows[0]["question"] = "first\u2028second"
    a = tmp_path / "a.jsonl"
    a.write_text("".join(json.dumps(r, ensure_ascii=False) + "\r\n" for r in rows), encoding="utf-8")
    result = compare([a], n_resamples=10)
    assert (result.systems[0].n, result.systems[0].correct) == (2, 1)


# --- real published predictions (../shared/data) -----------------------------------------------------------------

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
SPIDER = SHARED / "spider"
PUBLISHED = SHARED / "predictions" / "spider_dev"


@pytest.mark.data
@pytest.mark.skipif(not (SPIDER / "dev_gold.sql").is_file(), reason="needs ../shared/data/spider")
def test_published_spider_systems(tmp_path, capsys):
    judged = []
    for name, path in (
        ("c3sql", "c3sql_gpt35/predicted_sql.txt"),
        ("codes-1b", "codes/pred_sqls-codes-1b-spider.txt"),
    ):
        out = tmp_path / f"{name}.jsonl"
        args = ["eval", "--predictions", str(PUBLISHED / path), "--gold", str(SPIDER / "dev_gold.sql")]
        assert main([*args, "--db-root", str(SPIDER / "database"), "--workers", "0", "--output", str(out)]) == 0
        judged.append(str(out))
    capsys.readouterr()
    started = time.perf_counter()
    assert main(["compare", *judged]) == 0
    seconds = time.perf_counter() - started
    data = last_json(capsys.readouterr().out)
    assert [(s["n"], s["correct"]) for s in data["systems"]] == [(1034, 804), (1034, 762)]  # 972 + 62 of wta_1
    pair = data["pairs"][0]
    assert (pair["a_only"], pair["b_only"]) == (99, 57)
    assert pair["mcnemar_p"] == pytest.approx(2 * sum(math.comb(156, i) for i in range(58)) / 2**156)
    assert pair["delta"] == pytest.approx(42 / 1034)
    assert pair["delta_ci_low"] < pair["delta"] < pair["delta_ci_high"]
    assert seconds < 5.0  # 10,000 paired resamples of 1,034 items: about 0.2 s
