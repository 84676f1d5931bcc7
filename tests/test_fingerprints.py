"""Database and input fingerprints: hashing, the cache, and `sense-hub eval --expect-fingerprints`."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from pathlib import Path

import pytest
from conftest import make_tiny_db

from sense_hub import fingerprints
from sense_hub.cli import main
from sense_hub.errors import InputError


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    """The on-disk fingerprint cache in this test's folder, not the user's."""
    monkeypatch.setattr(fingerprints, "_default_cache_file", lambda: tmp_path / "cache" / "fingerprints.json")
    return tmp_path / "cache" / "fingerprints.json"


@pytest.fixture
def bench(tmp_path) -> dict:
    """Two databases (one with a test-suite sibling) and JSONL predictions over them."""
    root = tmp_path / "db"
    make_tiny_db(root / "concert" / "concert.sqlite")
    make_tiny_db(root / "concert" / "concert_alt.sqlite")  # test-suite style sibling
    make_tiny_db(root / "music" / "music.sqlite")
    rows = [
        {"question_id": "q0", "db_id": "concert", "question": "How many singers?", "gold": "SELECT count(*) FROM singer",
         "pred": "SELECT count(*) FROM singer"},
        {"question_id": "q1", "db_id": "music", "question": "Names?", "gold": "SELECT name FROM singer",
         "pred": "SELECT name FROM singer WHERE age > 30"},
    ]  # fmt: skip
    pred = tmp_path / "pred.jsonl"
    pred.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return {"root": root, "pred": pred, "rows": rows, "tmp": tmp_path}


def run_eval(capsys, *args: str) -> tuple[int, dict | None, str]:
    code = main(["eval", *args])
    out, err = capsys.readouterr()
    lines = out.strip().splitlines()
    return code, (json.loads(lines[-1]) if lines else None), err


def flip_one_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


# ----------------------------------------------------------------------------------------------------------------
# Hashing and the cache
# ----------------------------------------------------------------------------------------------------------------


def test_sha256_file_matches_hashlib(tmp_path):
    path = tmp_path / "f.bin"
    path.write_bytes(os.urandom(3 * (1 << 20) + 17))  # more than one read chunk
    assert fingerprints.sha256_file(path) == hashlib.sha256(path.read_bytes()).hexdigest()


def test_cache_reuses_an_old_unchanged_file_and_persists(tmp_path):
    path = tmp_path / "a.sqlite"
    path.write_bytes(b"x" * 1000)
    old = time.time() - 60
    os.utime(path, (old, old))
    cache_file = tmp_path / "c.json"
    first = fingerprints.FingerprintCache(cache_file)
    digest = first.sha256(path)
    assert first.hashed == 1 and first.sha256(path) == digest and first.hashed == 1
    first.save()
    second = fingerprints.FingerprintCache(cache_file)  # a later process
    assert second.sha256(path) == digest and second.hashed == 0


def test_cache_rehashes_when_size_or_mtime_changes(tmp_path):
    path = tmp_path / "a.sqlite"
    path.write_bytes(b"x" * 1000)
    old = time.time() - 60
    os.utime(path, (old, old))
    cache = fingerprints.FingerprintCache(tmp_path / "c.json")
    before = cache.sha256(path)
    path.write_bytes(b"y" * 1000)  # same size, new mtime
    os.utime(path, (old + 1, old + 1))
    after = cache.sha256(path)
    assert after != before and after == hashlib.sha256(b"y" * 1000).hexdigest()
    path.write_bytes(b"y" * 1001)
    os.utime(path, (old + 1, old + 1))  # same mtime, other size
    assert cache.sha256(path) == hashlib.sha256(b"y" * 1001).hexdigest()


def test_cache_does_not_trust_a_file_modified_just_before_hashing(tmp_path):
    """A file rewritten within the clock tick it was hashed in (same size and mtime) must not hit the cache."""
    path = tmp_path / "a.sqlite"
    path.write_bytes(b"x" * 1000)
    now = time.time()
    os.utime(path, (now, now))
    cache = fingerprints.FingerprintCache(tmp_path / "c.json")
    cache.sha256(path)
    path.write_bytes(b"z" * 1000)
    os.utime(path, (now, now))  # identical size and mtime: only the racy rule catches it
    assert cache.sha256(path) == hashlib.sha256(b"z" * 1000).hexdigest()
    assert cache.hashed == 2


def test_corrupt_cache_file_is_ignored(tmp_path):
    cache_file = tmp_path / "c.json"
    cache_file.write_text("{not json")
    path = tmp_path / "a"
    path.write_bytes(b"abc")
    cache = fingerprints.FingerprintCache(cache_file)
    assert cache.sha256(path) == hashlib.sha256(b"abc").hexdigest()
    cache.save()
    assert json.loads(cache_file.read_text())["version"] == 1


def test_combined_and_gold_digests():
    a = fingerprints.combined_digest({"x/x.sqlite": "1", "y/y.sqlite": "2"})
    assert a == fingerprints.combined_digest({"y/y.sqlite": "2", "x/x.sqlite": "1"})
    assert a != fingerprints.combined_digest({"x/x.sqlite": "1", "y/y.sqlite": "3"})
    assert fingerprints.gold_digest([("a", "SELECT 1")]) != fingerprints.gold_digest([("b", "SELECT 1")])


def test_check_databases_names_changed_missing_and_new():
    check = fingerprints.check_databases(
        {"a/a.sqlite": "1", "b/b.sqlite": "2", "c/c.sqlite": "3"},
        {"a/a.sqlite": "1", "b/b.sqlite": "9", "d/d.sqlite": "4"},
        referenced=["a/a.sqlite", "b/b.sqlite", "c/c.sqlite"],
    )
    assert (check.changed, check.missing, check.unexpected, check.matched) == (
        ["b/b.sqlite"],
        ["c/c.sqlite"],
        ["d/d.sqlite"],
        1,
    )
    assert not check.ok
    assert fingerprints.check_databases({"a/a.sqlite": "1"}, {"a/a.sqlite": "1"}).ok


def test_read_expected_rejects_files_without_fingerprints(tmp_path):
    path = tmp_path / "s.json"
    path.write_text(json.dumps({"execution_accuracy": 0.5}))
    with pytest.raises(InputError, match="no `fingerprints`"):
        fingerprints.read_expected_fingerprints(path)
    with pytest.raises(InputError, match="file not found"):
        fingerprints.read_expected_fingerprints(tmp_path / "nope.json")


# ----------------------------------------------------------------------------------------------------------------
# sense-hub eval
# ----------------------------------------------------------------------------------------------------------------


def test_eval_summary_has_fingerprints_of_every_database_used(bench, capsys):
    code, summary, _ = run_eval(capsys, "--predictions", str(bench["pred"]), "--db-root", str(bench["root"]))
    assert code == 0
    fp = summary["fingerprints"]
    root = bench["root"]
    assert fp["databases"] == {
        name: hashlib.sha256((root / name).read_bytes()).hexdigest()
        for name in ("concert/concert.sqlite", "concert/concert_alt.sqlite", "music/music.sqlite")
    }
    assert fp["predictions"] == hashlib.sha256(bench["pred"].read_bytes()).hexdigest()
    assert fp["gold"] == fingerprints.gold_digest((r["db_id"], r["gold"]) for r in bench["rows"])
    assert fp["databases_combined"] == fingerprints.combined_digest(fp["databases"])


def test_gold_fingerprint_is_the_same_for_text_and_jsonl_inputs(bench, capsys):
    _, jsonl, _ = run_eval(capsys, "--predictions", str(bench["pred"]), "--db-root", str(bench["root"]))
    pred_txt, gold_txt = bench["tmp"] / "pred.sql", bench["tmp"] / "gold.sql"
    pred_txt.write_text("".join(r["pred"] + "\n" for r in bench["rows"]))
    gold_txt.write_text("".join(f"{r['gold']}\t{r['db_id']}\n" for r in bench["rows"]))
    _, text, _ = run_eval(
        capsys, "--predictions", str(pred_txt), "--gold", str(gold_txt), "--db-root", str(bench["root"])
    )
    assert text["fingerprints"]["gold"] == jsonl["fingerprints"]["gold"]
    assert text["fingerprints"]["gold_file"] == hashlib.sha256(gold_txt.read_bytes()).hexdigest()
    assert text["fingerprints"]["databases"] == jsonl["fingerprints"]["databases"]


def test_unchanged_databases_pass_the_expectation(bench, capsys):
    summary_file = bench["tmp"] / "summary.json"
    _, first, _ = run_eval(capsys, "--predictions", str(bench["pred"]), "--db-root", str(bench["root"]))
    summary_file.write_text(json.dumps(first) + "\n")
    code, again, err = run_eval(
        capsys,
        "--predictions", str(bench["pred"]), "--db-root", str(bench["root"]),
        "--expect-fingerprints", str(summary_file),
    )  # fmt: skip
    assert code == 0 and "warning" not in err and "differ" not in err
    assert again["correct"] == first["correct"]
    assert again["fingerprint_check"]["matched"] == 3
    assert again["fingerprint_check"]["changed"] == [] and again["fingerprint_check"]["gold_matches"] is True


def test_one_changed_byte_is_refused_with_the_database_name(bench, capsys):
    summary_file = bench["tmp"] / "summary.json"
    _, first, _ = run_eval(capsys, "--predictions", str(bench["pred"]), "--db-root", str(bench["root"]))
    summary_file.write_text(json.dumps(first) + "\n")
    flip_one_byte(bench["root"] / "music" / "music.sqlite")
    out = bench["tmp"] / "out.jsonl"
    code, summary, err = run_eval(
        capsys,
        "--predictions", str(bench["pred"]), "--db-root", str(bench["root"]),
        "--expect-fingerprints", str(summary_file), "--output", str(out),
    )  # fmt: skip
    assert code == 2 and summary is None and not out.exists()  # refused before scoring
    assert len(err.strip().splitlines()) == 1
    assert "music/music.sqlite" in err and "concert" not in err and "--allow-changed-databases" in err


def test_a_changed_test_suite_sibling_is_refused_too(bench, capsys):
    summary_file = bench["tmp"] / "summary.json"
    _, first, _ = run_eval(capsys, "--predictions", str(bench["pred"]), "--db-root", str(bench["root"]))
    summary_file.write_text(json.dumps(first))
    flip_one_byte(bench["root"] / "concert" / "concert_alt.sqlite")
    code, _, err = run_eval(
        capsys,
        "--predictions", str(bench["pred"]), "--db-root", str(bench["root"]),
        "--expect-fingerprints", str(summary_file),
    )  # fmt: skip
    assert code == 2 and "concert/concert_alt.sqlite" in err


def test_allow_changed_databases_scores_and_says_so(bench, capsys):
    summary_file = bench["tmp"] / "summary.json"
    _, first, _ = run_eval(capsys, "--predictions", str(bench["pred"]), "--db-root", str(bench["root"]))
    summary_file.write_text(json.dumps(first))
    flip_one_byte(bench["root"] / "music" / "music.sqlite")
    code, summary, err = run_eval(
        capsys,
        "--predictions", str(bench["pred"]), "--db-root", str(bench["root"]),
        "--expect-fingerprints", str(summary_file), "--allow-changed-databases",
    )  # fmt: skip
    assert code == 0
    assert "warning" in err and "music/music.sqlite" in err and "scoring anyway" in err
    assert summary["fingerprint_check"]["changed"] == ["music/music.sqlite"]
    assert summary["fingerprint_check"]["allowed_changed_databases"] is True
    assert (
        summary["fingerprints"]["databases"]["music/music.sqlite"]
        != first["fingerprints"]["databases"]["music/music.sqlite"]
    )


def test_a_database_missing_now_is_refused(bench, capsys):
    summary_file = bench["tmp"] / "summary.json"
    _, first, _ = run_eval(capsys, "--predictions", str(bench["pred"]), "--db-root", str(bench["root"]))
    summary_file.write_text(json.dumps(first))
    shutil.rmtree(bench["root"] / "music")
    code, _, err = run_eval(
        capsys,
        "--predictions", str(bench["pred"]), "--db-root", str(bench["root"]),
        "--expect-fingerprints", str(summary_file),
    )  # fmt: skip
    assert code == 2 and "missing now: music/music.sqlite" in err


def test_a_subset_of_the_expected_databases_passes(bench, capsys):
    summary_file = bench["tmp"] / "summary.json"
    _, first, _ = run_eval(capsys, "--predictions", str(bench["pred"]), "--db-root", str(bench["root"]))
    summary_file.write_text(json.dumps(first))
    subset = bench["tmp"] / "subset.jsonl"
    subset.write_text(json.dumps(bench["rows"][0]) + "\n")
    code, summary, err = run_eval(
        capsys,
        "--predictions", str(subset), "--db-root", str(bench["root"]), "--expect-fingerprints", str(summary_file),
    )  # fmt: skip
    assert code == 0
    assert "gold SQL differs" in err  # another question set: said, not refused
    assert summary["fingerprint_check"]["gold_matches"] is False


def test_expect_fingerprints_without_fingerprints_is_one_line_exit_2(bench, capsys):
    bad = bench["tmp"] / "bad.json"
    bad.write_text('{"execution_accuracy": 0.5}\n')
    code, _, err = run_eval(
        capsys, "--predictions", str(bench["pred"]), "--db-root", str(bench["root"]), "--expect-fingerprints", str(bad)
    )
    assert code == 2 and len(err.strip().splitlines()) == 1 and str(bad) in err


def test_repeated_eval_hashes_nothing_new(bench, capsys, monkeypatch, private_cache):
    old = time.time() - 60
    for path in bench["root"].rglob("*.sqlite"):
        os.utime(path, (old, old))
    os.utime(bench["pred"], (old, old))
    run_eval(capsys, "--predictions", str(bench["pred"]), "--db-root", str(bench["root"]))
    assert private_cache.is_file()
    calls = []
    real = fingerprints.sha256_file
    monkeypatch.setattr(fingerprints, "sha256_file", lambda p: calls.append(p) or real(p))
    code, _, _ = run_eval(capsys, "--predictions", str(bench["pred"]), "--db-root", str(bench["root"]))
    assert code == 0 and calls == []


def test_allow_changed_databases_alone_is_a_usage_error(bench, capsys):
    code, _, err = run_eval(
        capsys, "--predictions", str(bench["pred"]), "--db-root", str(bench["root"]), "--allow-changed-databases"
    )
    assert code == 2 and "--expect-fingerprints" in err
