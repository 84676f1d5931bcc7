"""Dataset repo layout, splitting, determinism, config merging, and push/pull through the test Hub server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hub_server import HubServer, tree_digest

from sense_hub import builds, hub
from sense_hub.formats import RecordError

CONFIG = "grouped-any-limit1"


def make_pair(i: int, db_id: str) -> dict:
    return {
        "prompt": [
            {"role": "system", "content": "You write SQLite."},
            {"role": "user", "content": f"CREATE TABLE t{i} (a INT);\nQuestion {i}?"},
        ],
        "chosen": [{"role": "assistant", "content": f"SELECT a FROM t{i}"}],
        "rejected": [{"role": "assistant", "content": f"SELECT b FROM t{i}"}],
        "db_id": db_id,
        "question_id": f"spider-{i}",
        "question": f"How many things number {i}?",
        "chosen_source": "gold" if i % 2 else "sample",
        "rejected_error": "wrong_result" if i % 3 else "runtime",
    }


def make_weak(i: int, db_id: str) -> dict:
    return {
        "question_id": f"q-{i // 2}",
        "db_id": db_id,
        "question": f"question {i // 2}",
        "evidence": "",
        "gold_sql": "SELECT 1",
        "sql": "SELECT 1" if i % 2 else "SELECT 2",
        "sample_index": i % 2,
        "generator": "embedded",
        "status": "ok",
        "correct": bool(i % 2),
        "error": None if i % 2 else "wrong_result",
    }


@pytest.fixture
def pairs_records() -> list[dict]:
    return [make_pair(i, f"db_{i % 5}") for i in range(25)]


@pytest.fixture
def hub_server(monkeypatch, tmp_path):
    """The test Hub, with this process's huggingface_hub pointed at it (and a private cache)."""
    with HubServer() as server:
        server.patch_client(monkeypatch, cache_dir=tmp_path / "hf-cache")
        yield server


def load_in_subprocess(server: HubServer, tmp_path: Path, repo: str, config: str) -> dict:
    """`datasets.load_dataset(repo, config)` in a fresh interpreter whose HF_ENDPOINT is the test server."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGINGFACE"))}
    env.update(server.environ(), HF_HOME=str(tmp_path / "hf-home"))
    code = (
        "import json, sys, datasets\n"
        "ds = datasets.load_dataset(sys.argv[1], sys.argv[2])\n"
        "print(json.dumps({split: ds[split].to_list() for split in ds}))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, repo, config], env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


# ----------------------------------------------------------------------------------------------------------------
# Splitting
# ----------------------------------------------------------------------------------------------------------------


def test_split_by_database_never_shares_a_database(pairs_records):
    splits = hub.split_by_database(pairs_records, validation_fraction=0.4, seed=3)
    train_dbs = {r["db_id"] for r in splits["train"]}
    val_dbs = {r["db_id"] for r in splits["validation"]}
    assert train_dbs and val_dbs and not train_dbs & val_dbs
    assert len(val_dbs) == 2  # round(0.4 * 5)
    assert len(splits["train"]) + len(splits["validation"]) == len(pairs_records)


def test_split_is_deterministic_by_seed(pairs_records):
    a = hub.split_by_database(pairs_records, validation_fraction=0.2, seed=0)
    b = hub.split_by_database(list(reversed(pairs_records)), validation_fraction=0.2, seed=0)
    assert {r["db_id"] for r in a["validation"]} == {r["db_id"] for r in b["validation"]}
    seeds = {
        frozenset(r["db_id"] for r in hub.split_by_database(pairs_records, seed=s)["validation"]) for s in range(8)
    }
    assert len(seeds) > 1


def test_split_keeps_a_database_in_train():
    two = [make_pair(0, "a"), make_pair(1, "b")]
    splits = hub.split_by_database(two, validation_fraction=0.9)
    assert {r["db_id"] for r in splits["train"]} and len({r["db_id"] for r in splits["validation"]}) == 1
    one = [make_pair(0, "a"), make_pair(1, "a")]
    assert hub.split_by_database(one, validation_fraction=0.5)["validation"] == []
    assert hub.split_by_database(two, validation_fraction=0.0)["validation"] == []


def test_split_rejects_bad_fraction(pairs_records):
    with pytest.raises(ValueError, match="validation_fraction"):
        hub.split_by_database(pairs_records, validation_fraction=1.0)


# ----------------------------------------------------------------------------------------------------------------
# Writing and loading locally
# ----------------------------------------------------------------------------------------------------------------


def test_write_dataset_repo_layout_and_load(tmp_path, pairs_records):
    out = hub.write_dataset_repo(pairs_records, kind="pairs", out_dir=tmp_path / "pairs", config_name=CONFIG)
    assert (out / CONFIG / "train-00000-of-00001.parquet").is_file()
    assert (out / CONFIG / "validation-00000-of-00001.parquet").is_file()
    assert (out / f"statistics-{CONFIG}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    readme = (out / "README.md").read_text()
    assert f"](statistics-{CONFIG}.png)" in readme
    assert hub.known_configs(out) == [CONFIG]

    from datasets import load_dataset

    ds = load_dataset(str(out), CONFIG, cache_dir=str(tmp_path / "cache"))
    assert set(ds) == {"train", "validation"}
    rows = ds["train"].to_list() + ds["validation"].to_list()
    assert sorted(rows, key=lambda r: r["question_id"]) == sorted(pairs_records, key=lambda r: r["question_id"])
    from sense_hub.formats import features

    assert ds["train"].features == features("pairs")


def test_single_database_has_no_validation_split(tmp_path):
    records = [make_pair(i, "only_db") for i in range(4)]
    out = hub.write_dataset_repo(records, kind="pairs", out_dir=tmp_path / "p", config_name="x")
    assert not (out / "x" / "validation-00000-of-00001.parquet").exists()
    assert list(hub.load_local(out, "x")) == ["train"]


def test_rewrite_is_byte_identical(tmp_path, pairs_records):
    a = hub.write_dataset_repo(pairs_records, kind="pairs", out_dir=tmp_path / "a", config_name=CONFIG)
    digest = tree_digest(a)
    hub.write_dataset_repo(pairs_records, kind="pairs", out_dir=a, config_name=CONFIG)
    assert tree_digest(a) == digest
    b = hub.write_dataset_repo(pairs_records, kind="pairs", out_dir=tmp_path / "b", config_name=CONFIG)
    assert tree_digest(b) == digest
    c = hub.write_dataset_repo(pairs_records[:-1], kind="pairs", out_dir=tmp_path / "c", config_name=CONFIG)
    assert tree_digest(c) != digest


def test_new_config_keeps_earlier_configs(tmp_path, pairs_records):
    out = tmp_path / "pairs"
    hub.write_dataset_repo(pairs_records, kind="pairs", out_dir=out, config_name=CONFIG)
    hub.write_dataset_repo(pairs_records[:10], kind="pairs", out_dir=out, config_name="grouped-any-limit3")
    assert hub.known_configs(out) == [CONFIG, "grouped-any-limit3"]
    # rewriting the first config replaces it in place and keeps the second
    hub.write_dataset_repo(pairs_records[:7], kind="pairs", out_dir=out, config_name=CONFIG)
    assert hub.known_configs(out) == [CONFIG, "grouped-any-limit3"]
    first = hub.load_local(out, CONFIG)
    assert sum(len(first[s]) for s in first) == 7
    second = hub.load_local(out, "grouped-any-limit3")
    assert sum(len(second[s]) for s in second) == 10
    readme = (out / "README.md").read_text()
    assert "## Configuration `grouped-any-limit1`" in readme and "## Configuration `grouped-any-limit3`" in readme


def test_other_yaml_metadata_survives_a_rewrite(tmp_path, pairs_records):
    out = hub.write_dataset_repo(pairs_records, kind="pairs", out_dir=tmp_path / "p", config_name=CONFIG)
    from huggingface_hub import DatasetCard

    card = DatasetCard.load(out / "README.md")
    card.data.annotations_creators = ["machine-generated"]
    card.save(out / "README.md")
    hub.write_dataset_repo(pairs_records, kind="pairs", out_dir=out, config_name="v2")
    data = hub.read_card_metadata(out)
    assert data["annotations_creators"] == ["machine-generated"]
    assert [c["config_name"] for c in data["configs"]] == [CONFIG, "v2"]


def test_missing_field_names_record_and_field(tmp_path, pairs_records):
    broken = [dict(r) for r in pairs_records]
    del broken[3]["rejected"]
    with pytest.raises(RecordError, match=r"pairs\.jsonl record 4: missing field 'rejected'"):
        hub.write_dataset_repo(broken, kind="pairs", out_dir=tmp_path / "p", source="pairs.jsonl")
    assert not (tmp_path / "p").exists()


def test_wrong_type_names_the_field(tmp_path):
    record = make_weak(0, "db")
    record["sample_index"] = "0"
    with pytest.raises(RecordError, match="'sample_index' must be int"):
        hub.write_dataset_repo([record], kind="weak", out_dir=tmp_path / "w")


def test_empty_records_and_bad_config_name(tmp_path, pairs_records):
    with pytest.raises(ValueError, match="no records"):
        hub.write_dataset_repo([], kind="pairs", out_dir=tmp_path / "p")
    with pytest.raises(ValueError, match="invalid config name"):
        hub.write_dataset_repo(pairs_records, kind="pairs", out_dir=tmp_path / "p", config_name="../evil")


def test_mixing_kinds_in_one_folder_is_refused(tmp_path, pairs_records):
    out = hub.write_dataset_repo(pairs_records, kind="pairs", out_dir=tmp_path / "d", config_name="a")
    with pytest.raises(ValueError, match="holds pairs data"):
        hub.write_dataset_repo([make_weak(i, "db") for i in range(4)], kind="weak", out_dir=out, config_name="b")


def test_unknown_config_lists_known_ones(tmp_path, pairs_records):
    out = hub.write_dataset_repo(pairs_records, kind="pairs", out_dir=tmp_path / "p", config_name=CONFIG)
    with pytest.raises(hub.DatasetRepoError, match=r"unknown config 'nope'.*grouped-any-limit1"):
        hub.load_local(out, "nope")
    with pytest.raises(hub.DatasetRepoError, match="no README.md"):
        hub.load_local(tmp_path, CONFIG)


def test_weak_records_round_trip_with_null_errors(tmp_path):
    records = [make_weak(i, f"db{i % 3}") for i in range(12)]
    out = hub.write_dataset_repo(records, kind="weak", out_dir=tmp_path / "weak", validation_fraction=0.34)
    ds = hub.load_local(out, "default")
    rows = [r for split in ds for r in ds[split].to_list()]
    assert sorted(rows, key=lambda r: (r["question_id"], r["sample_index"])) == sorted(
        records, key=lambda r: (r["question_id"], r["sample_index"])
    )
    assert ds["train"].features["correct"].dtype == "bool"
    # the card names the model behind the `embedded` generator by its Hub id
    info = json.loads((out / "default" / "build_info.json").read_text())
    assert info["provenance"]["models"] == ["HuggingFaceTB/SmolLM2-135M-Instruct"]
    assert "- Models: `HuggingFaceTB/SmolLM2-135M-Instruct`" in (out / "README.md").read_text()


# ----------------------------------------------------------------------------------------------------------------
# Pushing and loading through the test Hub
# ----------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("repo_id", ["no-namespace", "org/name/extra", "org/bad name", "org/--x", ""])
def test_invalid_repo_id_fails_before_any_request(tmp_path, repo_id, pairs_records, hub_server):
    out = hub.write_dataset_repo(pairs_records, kind="pairs", out_dir=tmp_path / "p", config_name=CONFIG)
    with pytest.raises(ValueError, match="repo id"):
        hub.push_dataset_repo(out, repo_id=repo_id)
    with pytest.raises(ValueError, match="repo id"):
        hub.push_model_folder(out, repo_id=repo_id)
    assert hub_server.requests == []


def test_push_then_load_dataset_round_trips(tmp_path, pairs_records, hub_server):
    out = hub.write_dataset_repo(pairs_records, kind="pairs", out_dir=tmp_path / "pairs", config_name=CONFIG)
    oid = hub.push_dataset_repo(out, repo_id="sense/pairs")
    repo = hub_server.repo("sense/pairs")
    assert repo.branches["main"] == oid
    remote = hub_server.files("sense/pairs")
    for path in hub._local_files(out):
        assert remote[path] == (out / path).read_bytes(), path
    commits = hub_server.commit_count("sense/pairs")

    # unchanged data: no new commit, same head
    assert hub.push_dataset_repo(out, repo_id="sense/pairs") == oid
    assert hub_server.commit_count("sense/pairs") == commits

    with pytest.raises(hub.DatasetRepoError, match=r"unknown config 'nope' in sense/pairs; known configs: \['grouped"):
        hub.load_from_hub("sense/pairs", "nope")

    from_hub = load_in_subprocess(hub_server, tmp_path, "sense/pairs", CONFIG)
    local = hub.load_local(out, CONFIG)
    assert set(from_hub) == set(local) == {"train", "validation"}
    for split in local:
        assert from_hub[split] == local[split].to_list()
    assert sorted(from_hub["train"] + from_hub["validation"], key=lambda r: r["question_id"]) == sorted(
        pairs_records, key=lambda r: r["question_id"]
    )


def test_push_merges_configs_and_deletes_stale_files(tmp_path, pairs_records, hub_server):
    first = hub.write_dataset_repo(pairs_records, kind="pairs", out_dir=tmp_path / "one", config_name=CONFIG)
    hub.push_dataset_repo(first, repo_id="sense/pairs")
    # a second folder with only another config must not wipe the first config on the Hub
    second = hub.write_dataset_repo(pairs_records[:6], kind="pairs", out_dir=tmp_path / "two", config_name="limit3")
    hub.push_dataset_repo(second, repo_id="sense/pairs")
    remote = hub_server.files("sense/pairs")
    assert f"{CONFIG}/train-00000-of-00001.parquet" in remote
    from huggingface_hub import DatasetCard

    names = [c["config_name"] for c in DatasetCard(remote["README.md"].decode()).data.configs]
    assert sorted(names) == sorted([CONFIG, "limit3"])
    # rewriting a config with a single database drops its validation file remotely as well
    hub.write_dataset_repo([make_pair(0, "solo")], kind="pairs", out_dir=first, config_name=CONFIG)
    hub.push_dataset_repo(first, repo_id="sense/pairs")
    remote = hub_server.files("sense/pairs")
    assert f"{CONFIG}/validation-00000-of-00001.parquet" not in remote
    assert "limit3/train-00000-of-00001.parquet" in remote


@pytest.mark.parametrize("failure", ["commit", "lfs-upload"])
def test_failed_push_leaves_remote_unchanged(tmp_path, pairs_records, hub_server, failure):
    out = hub.write_dataset_repo(pairs_records, kind="pairs", out_dir=tmp_path / "p", config_name=CONFIG)
    hub.push_dataset_repo(out, repo_id="sense/pairs")
    before_files = hub_server.files("sense/pairs")
    before_commits = hub_server.commit_count("sense/pairs")

    hub.write_dataset_repo(pairs_records[:9], kind="pairs", out_dir=out, config_name=CONFIG)
    hub.write_dataset_repo(pairs_records[9:], kind="pairs", out_dir=out, config_name="extra")
    hub_server.fail[failure] = 1
    with pytest.raises(Exception):  # noqa: B017 - an HTTP error or its RuntimeError wrapper, either way it fails
        hub.push_dataset_repo(out, repo_id="sense/pairs")
    assert hub_server.commit_count("sense/pairs") == before_commits
    assert hub_server.files("sense/pairs") == before_files
    # the next push goes through
    hub.push_dataset_repo(out, repo_id="sense/pairs")
    assert hub_server.commit_count("sense/pairs") == before_commits + 1
    assert "extra/train-00000-of-00001.parquet" in hub_server.files("sense/pairs")


def test_push_to_a_revision_branch(tmp_path, pairs_records, hub_server):
    out = hub.write_dataset_repo(pairs_records, kind="pairs", out_dir=tmp_path / "p", config_name=CONFIG)
    oid = hub.push_dataset_repo(out, repo_id="sense/pairs", revision="v1", private=True)
    repo = hub_server.repo("sense/pairs")
    assert repo.private
    assert repo.branches["v1"] == oid != repo.branches["main"]
    assert "README.md" not in hub_server.files("sense/pairs", revision="main")
    assert "README.md" in hub_server.files("sense/pairs", revision="v1")


def test_push_model_folder(tmp_path, hub_server):
    from sense_hub.cards import model_card

    folder = tmp_path / "model"
    (folder / "checkpoint-2").mkdir(parents=True)
    (folder / "checkpoint-2" / "optimizer.pt").write_bytes(b"x" * 100)
    (folder / "config.json").write_text(json.dumps({"model_type": "llama"}))
    (folder / "model.safetensors").write_bytes(os.urandom(2048))
    (folder / "README.md").write_text(
        model_card(
            model_name="sense-cdpo",
            base_model="HuggingFaceTB/SmolLM2-135M-Instruct",
            datasets=["sense/pairs"],
            recipe="cdpo",
            command="accelerate launch recipes/cdpo.py",
            hyperparameters={"learning_rate": 1e-6},
            results=[{"dataset": "Spider dev", "dataset_id": "spider", "metric": "execution_accuracy", "value": 0.5}],
        )
    )
    oid = hub.push_model_folder(folder, repo_id="sense/sense-cdpo")
    files = hub_server.files("sense/sense-cdpo", repo_type="model")
    assert set(files) == {".gitattributes", "README.md", "config.json", "model.safetensors"}
    assert files["model.safetensors"] == (folder / "model.safetensors").read_bytes()
    assert hub.push_model_folder(folder, repo_id="sense/sense-cdpo") == oid
    assert hub_server.commit_count("sense/sense-cdpo", repo_type="model") == 2

    from huggingface_hub import hf_hub_download

    path = hf_hub_download("sense/sense-cdpo", "model.safetensors", cache_dir=tmp_path / "dl")
    assert Path(path).read_bytes() == files["model.safetensors"]


def test_large_splits_are_sharded_and_load_whole(tmp_path, pairs_records):
    out = hub.write_dataset_repo(
        pairs_records, kind="pairs", out_dir=tmp_path / "p", config_name=CONFIG, max_shard_bytes=2000
    )
    shards = sorted(p.name for p in (out / CONFIG).glob("train-*.parquet"))
    assert len(shards) > 1 and shards[0] == f"train-00000-of-{len(shards):05d}.parquet"
    ds = hub.load_local(out, CONFIG)
    assert sorted(r["question_id"] for s in ds for r in ds[s].to_list()) == sorted(
        r["question_id"] for r in pairs_records
    )
    # back to one shard: the old shards are gone
    hub.write_dataset_repo(pairs_records, kind="pairs", out_dir=out, config_name=CONFIG)
    assert sorted(p.name for p in (out / CONFIG).glob("train-*.parquet")) == ["train-00000-of-00001.parquet"]


def test_load_local_sees_a_rewrite_in_place(tmp_path, pairs_records):
    # `datasets.load_dataset(folder, config)` alone would serve the first write's rows from its cache here
    out = hub.write_dataset_repo(pairs_records[:5], kind="pairs", out_dir=tmp_path / "pairs", config_name=CONFIG)
    assert {r["question_id"] for s, d in hub.load_local(out, CONFIG).items() for r in d} == {
        r["question_id"] for r in pairs_records[:5]
    }
    hub.write_dataset_repo(pairs_records[5:9], kind="pairs", out_dir=out, config_name=CONFIG)
    assert {r["question_id"] for s, d in hub.load_local(out, CONFIG).items() for r in d} == {
        r["question_id"] for r in pairs_records[5:9]
    }


def test_dataset_card_records_the_fingerprints_of_the_databases_used(tmp_path):
    import hashlib

    from conftest import make_tiny_db

    root = tmp_path / "dbs"
    make_tiny_db(root / "db_0" / "db_0.sqlite")
    make_tiny_db(root / "db_1" / "db_1.sqlite")
    make_tiny_db(root / "unused" / "unused.sqlite")
    records = [make_weak(i, f"db_{i % 3}") for i in range(6)]  # db_2 has no file (e.g. an LLM-made domain)
    out = hub.write_dataset_repo(
        records, kind="weak", out_dir=tmp_path / "weak", validation_fraction=0.0, db_root=root
    )
    info = json.loads((out / "default" / hub.BUILD_INFO).read_text())
    expected = {
        f"db_{i}/db_{i}.sqlite": hashlib.sha256((root / f"db_{i}" / f"db_{i}.sqlite").read_bytes()).hexdigest()
        for i in (0, 1)
    }
    assert info["provenance"]["databases"] == expected
    card = (out / "README.md").read_text()
    assert all(f"| `{name}` | `{digest}` |" in card for name, digest in expected.items())
    assert "unused" not in card and "db_2/db_2.sqlite" not in card
    without = hub.write_dataset_repo(records, kind="weak", out_dir=tmp_path / "plain", validation_fraction=0.0)
    assert "database fingerprints" not in (without / "README.md").read_text()


def test_build_script_db_root_puts_fingerprints_in_the_card(tmp_path):
    from conftest import make_tiny_db

    root = tmp_path / "dbs"
    make_tiny_db(root / "db_0" / "db_0.sqlite")
    path = tmp_path / "weak.jsonl"
    path.write_text("".join(json.dumps(make_weak(i, "db_0")) + "\n" for i in range(4)))
    args = builds.DatasetBuildArguments(input=str(path), output_dir=str(tmp_path / "out"), db_root=str(root))
    builds.build_from_arguments("weak", args, command="x")
    info = json.loads((tmp_path / "out" / "default" / hub.BUILD_INFO).read_text())
    assert list(info["provenance"]["databases"]) == ["db_0/db_0.sqlite"]
