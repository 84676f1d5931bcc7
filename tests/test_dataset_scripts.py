"""The dataset build scripts: YAML/flag parsing, pairs from weak records, determinism, pushing, bad input."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import pytest
from conftest import make_tiny_db
from hub_server import HubServer, tree_digest

from sense_hub import builds, hub
from sense_hub.formats import RecordError

SCRIPTS = Path(__file__).resolve().parents[1] / "dataset_scripts"


def load_script(name: str):
    spec = importlib.util.spec_from_file_location(f"dataset_scripts_{name}", SCRIPTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_script(name: str, argv: list[str]) -> dict:
    module = load_script(name)
    (args,) = module.make_parser().parse_args_and_config(args=argv)
    return module.main(args)


def write_jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


QUESTIONS = [
    ("How many singers are there?", "SELECT count(*) FROM singer", ["SELECT count(*) FROM concert"]),
    ("List the names of French singers.", "SELECT name FROM singer WHERE country = 'France'",
     ["SELECT name FROM singer", "SELECT nme FROM singer"]),
    ("What is the age of the oldest singer?", "SELECT max(age) FROM singer", ["SELECT min(age) FROM singer"]),
]  # fmt: skip


def weak_records(db_ids: list[str]) -> list[dict]:
    """Labelled weak samples: the gold SQL once (correct) plus wrong candidates, for each question and database."""
    records = []
    for db_id in db_ids:
        for q, (question, gold, wrong) in enumerate(QUESTIONS):
            for i, sql in enumerate([gold, *wrong]):
                error = None if sql == gold else ("runtime" if "nme" in sql else "wrong_result")
                records.append(
                    {
                        "question_id": f"{db_id}-{q}",
                        "db_id": db_id,
                        "question": question,
                        "evidence": "",
                        "gold_sql": gold,
                        "sql": sql,
                        "sample_index": i,
                        "generator": "embedded",
                        "status": "runtime" if error == "runtime" else "ok",
                        "correct": error is None,
                        "error": error,
                    }
                )
    return records


def strong_records(n: int) -> list[dict]:
    return [
        {
            "id": f"strong-{i:06d}",
            "domain": "music",
            "difficulty": ("easy", "medium", "hard")[i % 3],
            "db_id": f"music_{i % 4}",
            "schema": "CREATE TABLE singer (singer_id INTEGER PRIMARY KEY, name TEXT)",
            "question": f"What is the name of singer {i}?",
            "sql": f"SELECT name FROM singer WHERE singer_id = {i}",
            "evidence": "",
            "generator": "strong:gpt-4",
            "verification": "executed",
        }
        for i in range(n)
    ]


@pytest.fixture
def db_root(tmp_path) -> Path:
    root = tmp_path / "dbs"
    for db_id in ("concert_singer", "concert_singer_2", "concert_singer_3"):
        make_tiny_db(root / db_id / f"{db_id}.sqlite")
    return root


def test_build_strong_from_yaml_config_with_flag_override(tmp_path):
    records = write_jsonl(tmp_path / "strong.jsonl", strong_records(12))
    config = tmp_path / "build_strong.yaml"
    config.write_text(
        f"input: {records}\noutput_dir: {tmp_path / 'strong'}\nvalidation_fraction: 0.25\nseed: 3\n", encoding="utf-8"
    )
    result = run_script("build_strong", ["--config", str(config), "--seed", "4"])
    assert result["config_name"] == "default" and result["records"] == 12 and result["commit"] is None
    info = json.loads((tmp_path / "strong" / "default" / "build_info.json").read_text())
    assert info["split"] == {"by": "db_id", "validation_fraction": 0.25, "seed": 4}
    assert info["provenance"]["models"] == ["strong:gpt-4"]
    ds = hub.load_local(tmp_path / "strong", "default")
    assert sum(len(ds[s]) for s in ds) == 12
    assert not {r["db_id"] for r in ds["train"]} & {r["db_id"] for r in ds["validation"]}


def test_unknown_yaml_key_fails(tmp_path):
    config = tmp_path / "bad.yaml"
    config.write_text("input: x.jsonl\noutput_dir: out\nvalidation_fractoin: 0.2\n", encoding="utf-8")
    with pytest.raises(ValueError, match="validation_fractoin"):
        load_script("build_weak").make_parser().parse_args_and_config(args=["--config", str(config)])


def test_bad_arguments_fail_at_parse_time(tmp_path):
    parser = load_script("build_weak").make_parser()
    with pytest.raises(ValueError, match="invalid Hub repo id 'not a repo'"):
        parser.parse_args_and_config(args=["--input", "x", "--output-dir", "y", "--push-to-hub", "not a repo"])
    with pytest.raises(ValueError, match=r"validation_fraction` must lie in \[0, 1\)"):
        parser.parse_args_and_config(args=["--input", "x", "--output_dir", "y", "--validation_fraction", "1.5"])


def test_build_weak_is_deterministic_and_names_bad_records(tmp_path):
    records = weak_records(["concert_singer", "concert_singer_2", "concert_singer_3"])
    path = write_jsonl(tmp_path / "weak.jsonl", records)
    argv = ["--input", str(path), "--output-dir", str(tmp_path / "a")]
    run_script("build_weak", argv)
    digest = tree_digest(tmp_path / "a")
    shutil.rmtree(tmp_path / "a")
    run_script("build_weak", argv)
    assert tree_digest(tmp_path / "a") == digest

    del records[4]["correct"]
    write_jsonl(path, records)
    with pytest.raises(RecordError, match=r"weak\.jsonl record 5: missing field 'correct'"):
        run_script("build_weak", argv)
    path.write_text('{"question_id": "x"}\nnot json\n', encoding="utf-8")
    with pytest.raises(RecordError, match=r"weak\.jsonl:2: not valid JSON"):
        run_script("build_weak", argv)


def test_build_pairs_from_weak_with_presets(tmp_path, db_root):
    path = write_jsonl(
        tmp_path / "weak.jsonl", weak_records(["concert_singer", "concert_singer_2", "concert_singer_3"])
    )
    out = tmp_path / "pairs"
    common = ["--input", str(path), "--db-root", str(db_root), "--output-dir", str(out)]
    one = run_script("build_pairs", [*common, "--preset", "grouped-any-limit1", "--validation-fraction", "0.34"])
    three = run_script("build_pairs", [*common, "--preset", "grouped-any-limit3", "--validation-fraction", "0.34"])
    assert one["config_name"] == "grouped-any-limit1" and three["config_name"] == "grouped-any-limit3"
    assert one["records"] == 9  # one negative per question
    assert three["records"] == 12  # up to three: question 2 has two wrong candidates
    assert hub.known_configs(out) == ["grouped-any-limit1", "grouped-any-limit3"]
    ds = hub.load_local(out, "grouped-any-limit1")
    row = ds["train"][0]
    assert row["prompt"][-1]["role"] == "user" and "singer" in row["prompt"][-1]["content"]
    assert row["chosen"][0]["role"] == "assistant"
    info = json.loads((out / "grouped-any-limit3" / "build_info.json").read_text())
    assert info["provenance"]["parameters"]["neg_limit"] == 3
    assert info["provenance"]["parameters"]["preset"] == "grouped-any-limit3"
    readme = (out / "README.md").read_text()
    assert "`neg_limit`: `3`" in readme and "`neg_limit`: `1`" in readme


def test_build_pairs_from_weak_needs_a_preset(tmp_path, db_root):
    path = write_jsonl(tmp_path / "weak.jsonl", weak_records(["concert_singer"]))
    with pytest.raises(ValueError, match="--preset"):
        run_script(
            "build_pairs", ["--input", str(path), "--db-root", str(db_root), "--output-dir", str(tmp_path / "p")]
        )
    with pytest.raises(ValueError, match="unknown pairs preset 'nope'.*grouped-any-limit1"):
        run_script(
            "build_pairs",
            ["--input", str(path), "--db-root", str(db_root), "--output-dir", str(tmp_path / "p"), "--preset", "nope"],
        )


def test_build_pairs_publishes_pairs_and_pushes(tmp_path, db_root, monkeypatch):
    from sense_hub.pairs import PRESETS, build_pairs

    pairs, _ = build_pairs(
        weak_records(["concert_singer", "concert_singer_2"]), config=PRESETS["keep-gold-limit1"], db_root=db_root
    )
    path = write_jsonl(tmp_path / "pairs.jsonl", pairs)
    argv = ["--input", str(path), "--output-dir", str(tmp_path / "out"), "--config-name", "keep-gold-limit1"]
    with HubServer() as server:
        server.patch_client(monkeypatch, cache_dir=tmp_path / "hf-cache")
        first = run_script("build_pairs", [*argv, "--push-to-hub", "acme/pairs"])
        assert first["commit"] == server.repo("acme/pairs").branches["main"]
        count = server.commit_count("acme/pairs")
        again = run_script("build_pairs", [*argv, "--push-to-hub", "acme/pairs"])
        assert again["commit"] == first["commit"]
        assert server.commit_count("acme/pairs") == count
        remote = server.files("acme/pairs")
    assert (
        remote["keep-gold-limit1/train-00000-of-00001.parquet"]
        == (tmp_path / "out" / "keep-gold-limit1" / "train-00000-of-00001.parquet").read_bytes()
    )
    assert 'load_dataset("acme/pairs", "keep-gold-limit1")' in remote["README.md"].decode()


def test_script_command_line_pushes_with_hf_endpoint(tmp_path):
    """The real entry point in a fresh interpreter, pointed at the test Hub by HF_ENDPOINT (read at import)."""
    import os
    import subprocess
    import sys

    path = write_jsonl(tmp_path / "strong.jsonl", strong_records(8))
    with HubServer() as server:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGINGFACE"))}
        env.update(server.environ(), HF_HOME=str(tmp_path / "hf-home"))
        argv = [sys.executable, str(SCRIPTS / "build_strong.py"), "--input", str(path)]
        argv += ["--output-dir", str(tmp_path / "strong"), "--push-to-hub", "acme/strong", "--private"]
        proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-3000:]
        result = json.loads(proc.stdout.strip().splitlines()[-1])
        assert result["commit"] == server.repo("acme/strong").branches["main"]
        assert server.repo("acme/strong").private
        remote = server.files("acme/strong")
    assert (
        remote["default/train-00000-of-00001.parquet"]
        == (tmp_path / "strong" / "default" / "train-00000-of-00001.parquet").read_bytes()
    )
    # the card's command is the one that rebuilds the files, from the YAML pushed next to it
    assert "dataset_scripts/build_strong.py --config build_config-default.yaml" in remote["README.md"].decode()
    assert b"private: true" not in remote["build_config-default.yaml"]


def test_build_config_yaml_on_the_hub_rebuilds_the_repo_byte_for_byte(tmp_path, db_root, monkeypatch):
    """Build two pairs configs and push; pull each build_config YAML from the Hub; rebuild; compare every byte."""
    from huggingface_hub import hf_hub_download

    from sense_hub.errors import InputError

    weak = write_jsonl(
        tmp_path / "weak.jsonl", weak_records(["concert_singer", "concert_singer_2", "concert_singer_3"])
    )
    common = ["--input", str(weak), "--db_root", str(db_root), "--output_dir", str(tmp_path / "out")]
    with HubServer() as server:
        server.patch_client(monkeypatch, cache_dir=tmp_path / "hf-cache")
        for preset, extra in (
            ("grouped-any-limit1", ["--seed", "5"]),
            ("keep-gold-limit1", ["--validation_fraction", "0.4"]),
        ):
            run_script("build_pairs", [*common, "--preset", preset, *extra, "--push_to_hub", "acme/pairs"])
        remote = server.files("acme/pairs")
        configs = [c["config_name"] for c in hub.read_card_metadata(tmp_path / "out")["configs"]]
        pulled = [
            hf_hub_download("acme/pairs", f"build_config-{name}.yaml", repo_type="dataset", cache_dir=tmp_path / "dl")
            for name in configs
        ]
    assert configs == ["grouped-any-limit1", "keep-gold-limit1"]
    import yaml

    config = yaml.safe_load((tmp_path / "out" / "build_config-grouped-any-limit1.yaml").read_text())
    assert "output_dir" not in config and "push_to_hub" not in config  # where it went is not what it is
    assert config["seed"] == 5 and config["repo_id"] == "acme/pairs" and config["preset"] == "grouped-any-limit1"
    assert config["input_sha256"] == builds.file_sha256(weak)
    card = remote["README.md"].decode()
    assert "python dataset_scripts/build_pairs.py --config build_config-keep-gold-limit1.yaml" in card

    rebuilt = tmp_path / "rebuilt"
    for path in pulled:  # in the card's config order, as the original was built
        run_script("build_pairs", ["--config", path, "--output_dir", str(rebuilt)])
    files = {p.relative_to(rebuilt).as_posix(): p.read_bytes() for p in rebuilt.rglob("*") if p.is_file()}
    remote.pop(".gitattributes", None)  # the Hub's own file
    assert sorted(files) == sorted(remote), (sorted(files), sorted(remote))
    assert [name for name in files if files[name] != remote[name]] == []

    # a changed input is refused by its sha256, before anything is written
    weak.write_text(weak.read_text().replace("SELECT min(age)", "SELECT max(age)"))
    with pytest.raises(InputError, match="sha256 .* differs from input_sha256"):
        run_script("build_pairs", ["--config", pulled[0], "--output_dir", str(tmp_path / "other")])
    assert not (tmp_path / "other").exists()


def _bad_weak_files(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    """The weak records a careless user hands the scripts, and what the one-line error must say."""
    good = weak_records(["concert_singer"])[0]
    missing = {k: v for k, v in good.items() if k != "question"}
    wrong_type = {**good, "sample_index": "0"}
    files = {
        "missing field": (
            write_jsonl(tmp_path / "missing.jsonl", [good, missing]),
            "record 2: missing field 'question'",
        ),
        "wrong type": (write_jsonl(tmp_path / "type.jsonl", [wrong_type]), "field 'sample_index' must be int"),
    }
    byte = tmp_path / "byte.jsonl"
    byte.write_bytes(json.dumps(good).encode() + b"\n" + json.dumps(good).encode().replace(b"How", b"H\xffw") + b"\n")
    files["non-UTF-8 byte"] = (byte, "byte.jsonl:2: not UTF-8 text")
    return files


@pytest.mark.parametrize("case", ["missing field", "wrong type", "non-UTF-8 byte"])
@pytest.mark.parametrize("script", ["build_pairs", "build_weak"])
def test_bad_weak_records_give_one_line_and_exit_2(tmp_path, db_root, capsys, monkeypatch, script, case):
    """`run_script` is what each script's `__main__` calls: the CLI's handling of `SenseHubError`, in one place."""
    from sense_hub.cli import run_script

    path, needle = _bad_weak_files(tmp_path)[case]
    module = load_script(script)
    argv = [f"{script}.py", "--input", str(path), "--output_dir", str(tmp_path / "out")]
    if script == "build_pairs":
        argv += ["--preset", "grouped-any-limit1", "--db_root", str(db_root)]
    monkeypatch.setattr("sys.argv", argv)
    assert run_script(f"{script}.py", module.main, module.make_parser) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith(f"{script}.py: ") and needle in err[-1] and str(path) in err[-1], err
    assert not any("Traceback" in line for line in err)
    assert not (tmp_path / "out").exists()  # nothing written


def test_script_entry_point_exits_2_with_one_line(tmp_path):
    """The real `__main__`: a fresh interpreter, a bad argument value and a bad record file, no traceback."""
    import subprocess
    import sys

    path, _ = _bad_weak_files(tmp_path)["non-UTF-8 byte"]
    for extra, needle in ((["--validation_fraction", "2"], "`validation_fraction` must lie in [0, 1)"), ([], "byte")):
        argv = [sys.executable, str(SCRIPTS / "build_weak.py"), "--input", str(path)]
        argv += ["--output_dir", str(tmp_path / "out"), *extra]
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 2, proc.stderr[-3000:]
        assert "Traceback" not in proc.stderr and proc.stderr.strip().splitlines()[-1].startswith("build_weak.py: ")
        assert needle in proc.stderr


def test_build_predictions_entry_point_exits_2_with_one_line(tmp_path):
    """`build_predictions.py` runs through `run_script` as the other scripts do: a bad value is one line, exit 2."""
    import subprocess
    import sys

    for extra, needle in (
        (["--input", str(tmp_path / "absent.jsonl")], "no such file"),
        (["--input", "x.jsonl", "--push_to_hub", "bad"], "invalid Hub repo id 'bad'"),
    ):
        argv = [sys.executable, str(SCRIPTS / "build_predictions.py"), "--output_dir", str(tmp_path / "out")]
        proc = subprocess.run([*argv, "--benchmark", "spider", *extra], capture_output=True, text=True, timeout=300)
        assert proc.returncode == 2, proc.stderr[-3000:]
        lines = proc.stderr.strip().splitlines()
        assert (
            "Traceback" not in proc.stderr and lines[-1].startswith("build_predictions.py: ") and needle in lines[-1]
        )
