"""Benchmark loaders: the real published files (when ../shared/data exists) and tiny copies of each layout."""

from __future__ import annotations

import json
import logging

import pytest

from sense_hub.benchmarks import (
    BenchmarkError,
    Example,
    benchmark_db_roots,
    find_benchmark_root,
    load_benchmark,
    load_examples,
    resolve_database,
)
from sense_hub.databases import DatabaseError

# ---------------------------------------------------------------------------------------------------------------
# The real files
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.data
@pytest.mark.parametrize(
    "name, folder, count",
    [
        ("spider", "spider", 1034),
        ("spider-dk", "spider-dk", 535),
        ("spider-syn", "spider-syn", 1034),
        ("spider-realistic", "spider-realistic", 508),
        ("bird", "bird", 1534),
        ("bird-mini-dev", "bird", 500),
    ],
)
def test_real_benchmarks_load(shared_data, name, folder, count):
    examples = load_benchmark(name, root=shared_data / folder)
    assert len(examples) == count
    assert [e.question_id for e in examples[:3]] == [f"{name}-0", f"{name}-1", f"{name}-2"]
    assert all(e.question and e.sql and e.db_id for e in examples)
    if name != "spider-dk":
        assert examples.problems == []


@pytest.mark.data
def test_real_spider_details(shared_data):
    spider = load_benchmark("spider", root=shared_data / "spider")
    assert spider[0] == Example(
        "spider-0", "concert_singer", "How many singers do we have?", "SELECT count(*) FROM singer"
    )
    roots = spider.db_roots
    with_db = [e for e in spider if e.db_id != "wta_1"]
    assert len(with_db) == 972
    assert all(resolve_database(roots, e.db_id).is_file() for e in with_db[::50])
    with pytest.raises(DatabaseError, match="wta_1"):
        resolve_database(roots, "wta_1")

    syn = load_benchmark("spider-syn", root=shared_data / "spider-syn")
    assert syn[0].question == "How many vocalists do we have?" and syn[0].sql == spider[0].sql
    assert syn.db_roots == [(shared_data / "spider" / "database").resolve()]


@pytest.mark.data
def test_real_spider_dk_reports_its_broken_gold(shared_data, caplog):
    with caplog.at_level(logging.WARNING):
        dk = load_benchmark("spider-dk", root=shared_data / "spider-dk")
    assert [(p.question_id, p.db_id) for p in dk.problems] == [("spider-dk-76", "new_pets_1")]
    assert "does not parse" in dk.problems[0].message
    assert dk[76].problem and not dk[75].problem
    assert "spider-dk-76" in caplog.text
    # its databases span its own folder and Spider's
    assert resolve_database(dk.db_roots, "new_pets_1").parent.parent.parent.name == "spider-dk"
    assert resolve_database(dk.db_roots, "car_1").parent.parent.parent.name == "spider"


@pytest.mark.data
def test_real_bird_has_evidence(shared_data):
    bird = load_benchmark("bird", root=shared_data / "bird")
    assert bird[0].evidence.startswith("Eligible free rate")
    assert {e.difficulty for e in bird} == {"simple", "moderate", "challenging"}
    assert find_benchmark_root("bird", shared_data) == shared_data / "bird"
    assert find_benchmark_root("spider", shared_data / "spider") == shared_data / "spider"


# ---------------------------------------------------------------------------------------------------------------
# Tiny copies of each layout
# ---------------------------------------------------------------------------------------------------------------


def write_json(path, data):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    return path


ROW = {"db_id": "concert_singer", "question": "How many singers?", "query": "SELECT count(*) FROM singer"}


def test_tiny_layouts(tmp_path, tiny_db):
    data = tmp_path / "data"
    (data / "spider" / "database").mkdir(parents=True)
    write_json(data / "spider" / "dev.json", [ROW, dict(ROW, query="SELECT name FROM singer")])
    write_json(data / "spider-dk" / "Spider-DK.json", [ROW, dict(ROW, query="SELECT a  b.c FROM t")])
    write_json(
        data / "spider-syn" / "dev.json",
        [
            {
                "db_id": "concert_singer",
                "SpiderQuestion": "How many singers?",
                "SpiderSynQuestion": "How many vocalists?",
                "query": "SELECT 1",
            }
        ],
    )
    write_json(data / "spider-realistic" / "spider-realistic.json", [ROW])
    bird_row = {
        "question_id": 7,
        "db_id": "x",
        "question": "q?",
        "evidence": "e = 1",
        "SQL": "SELECT 1",
        "difficulty": "simple",
    }
    write_json(data / "bird" / "dev" / "dev.json", [bird_row])

    spider = load_benchmark("spider", root=data / "spider")
    assert [e.question_id for e in spider] == ["spider-0", "spider-1"] and spider.problems == []
    assert spider.db_roots == [(data / "spider" / "database").resolve()]
    dk = load_benchmark("spider-dk", root=data / "spider-dk")
    assert [p.question_id for p in dk.problems] == ["spider-dk-1"]
    assert dk.db_roots == [(data / "spider" / "database").resolve()]  # its own folder is absent here
    syn = load_benchmark("spider-syn", root=data / "spider-syn")
    assert syn[0].question == "How many vocalists?"
    assert load_benchmark("spider-realistic", root=data / "spider-realistic")[0].sql == ROW["query"]
    bird = load_benchmark("bird", root=data / "bird")
    assert bird[0] == Example("bird-0", "x", "q?", "SELECT 1", evidence="e = 1", difficulty="simple")
    assert load_benchmark("bird", root=data / "bird" / "dev")[0] == bird[0]
    assert benchmark_db_roots("bird", root=data / "bird") == []


def test_benchmark_errors(tmp_path):
    with pytest.raises(BenchmarkError, match="unknown benchmark 'spyder'"):
        load_benchmark("spyder", root=tmp_path)
    with pytest.raises(BenchmarkError, match=r"dev\.json.*--data-root"):
        load_benchmark("spider", root=tmp_path)
    write_json(tmp_path / "dev.json", [ROW, {"db_id": "a", "question": "q"}])
    with pytest.raises(BenchmarkError, match=r"dev\.json record 1: missing field 'query'"):
        load_benchmark("spider", root=tmp_path)
    (tmp_path / "dev.json").write_text("{not json")
    with pytest.raises(BenchmarkError, match="not valid JSON"):
        load_benchmark("spider", root=tmp_path)


def test_load_examples_jsonl_json_and_strong(tmp_path):
    jsonl = tmp_path / "split.jsonl"
    jsonl.write_text(
        json.dumps({"question": "q0?", "sql": "SELECT 1", "db_id": "a"})
        + "\n\n"
        + json.dumps({"question": "q1?", "query": "SELECT 2", "db_id": "b", "evidence": "hint"})
        + "\n"
    )
    examples = load_examples(jsonl)
    assert [(e.question_id, e.sql, e.evidence) for e in examples] == [
        ("split-0", "SELECT 1", ""),
        ("split-1", "SELECT 2", "hint"),
    ]
    as_json = write_json(
        tmp_path / "split.json", [{"question": "q0?", "sql": "SELECT 1", "db_id": "a", "question_id": "mine-9"}]
    )
    assert load_examples(as_json, name="other")[0].question_id == "mine-9"

    strong = tmp_path / "strong.jsonl"
    record = {
        "id": "tmpl-a-000001", "domain": "a", "difficulty": "easy", "db_id": "a", "schema": "", "question": "q?",
        "sql": "SELECT 1", "evidence": "", "generator": "templates", "verification": "executed",
    }  # fmt: skip
    strong.write_text(json.dumps(record) + "\n")
    assert load_examples(strong, name="strong")[0] == Example(
        "tmpl-a-000001", "a", "q?", "SELECT 1", difficulty="easy"
    )


def test_load_examples_errors(tmp_path):
    with pytest.raises(BenchmarkError, match="no such file"):
        load_examples(tmp_path / "none.jsonl")
    bad = tmp_path / "bad.jsonl"
    bad.write_text(
        json.dumps({"question": "q", "sql": "SELECT 1", "db_id": "a"}) + "\n" + '{"question": "q", "db_id": "a"}\n'
    )
    with pytest.raises(BenchmarkError, match=r"bad\.jsonl:2: missing field 'sql'"):
        load_examples(bad)
    bad.write_text('{"question": "q"\n')
    with pytest.raises(BenchmarkError, match=r"bad\.jsonl:1: not valid JSON"):
        load_examples(bad)
    dup = tmp_path / "dup.jsonl"
    dup.write_text('{"id": "x", "question": "q", "sql": "SELECT 1", "db_id": "a"}\n' * 2)
    with pytest.raises(BenchmarkError, match="repeats line 1"):
        load_examples(dup)
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"question": "q", "sql": "SELECT a  b.c FROM t", "db_id": "a"}\n')
    assert [p.question_id for p in load_examples(broken).problems] == ["broken-0"]
