"""Per-question predictions on the Hub: `sense-hub eval --push-to-hub`, build_predictions.py, and the model card link.

Pushes go to the test Hub server (`tests/hub_server.py`; the real Hub is unreachable here), and the dataset is read
back with `datasets.load_dataset` in a fresh interpreter pointed at that server.
"""

from __future__ import annotations

import json

import pytest
from conftest import make_tiny_db
from hub_server import HubServer
from test_dataset_scripts import run_script
from test_hub import load_in_subprocess

from sense_hub import fingerprints, hub
from sense_hub.cards import eval_summary_to_result, model_card
from sense_hub.cli import main
from sense_hub.formats import PREDICTIONS_COLUMNS
from sense_hub.training import load_eval_results

REPO = "sense/predictions"


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setattr(fingerprints, "_default_cache_file", lambda: tmp_path / "cache" / "fingerprints.json")


@pytest.fixture
def hub_server(monkeypatch, tmp_path):
    with HubServer() as server:
        server.patch_client(monkeypatch, cache_dir=tmp_path / "hf-cache")
        yield server


@pytest.fixture
def judged(tmp_path) -> dict:
    """Predictions over two databases: right, wrong result, syntax error, missing database, unicode."""
    root = tmp_path / "db"
    make_tiny_db(root / "concert" / "concert.sqlite")
    make_tiny_db(root / "music" / "music.sqlite")
    rows = [
        ("q0", "concert", "How many singers?", "SELECT count(*) FROM singer", "SELECT count(*) FROM singer"),
        ("q1", "music", "Names?", "SELECT name FROM singer", "SELECT name FROM singer WHERE age > 30"),
        ("q2", "music", "Oldest?", "SELECT max(age) FROM singer", "SELEC max(age)"),
        ("q3", "nowhere", "Gone?", "SELECT 1", "SELECT 1"),
        ("q4", "concert", "Chanteurs français ?", "SELECT name FROM singer WHERE country = 'France'",
         "SELECT name FROM singer WHERE country = 'France'"),
    ]  # fmt: skip
    pred = tmp_path / "pred.jsonl"
    pred.write_text(
        "".join(
            json.dumps({"question_id": q, "db_id": d, "question": t, "gold": g, "pred": p}, ensure_ascii=False) + "\n"
            for q, d, t, g, p in rows
        ),
        encoding="utf-8",
    )
    return {"root": root, "pred": pred, "tmp": tmp_path}


def eval_cli(capsys, *args: str) -> tuple[int, dict | None, str]:
    code = main(["eval", *args])
    out, err = capsys.readouterr()
    lines = out.strip().splitlines()
    return code, (json.loads(lines[-1]) if lines else None), err


def test_eval_push_round_trips_through_the_hub(judged, hub_server, tmp_path, capsys):
    out = tmp_path / "judged.jsonl"
    code, summary, _ = eval_cli(
        capsys,
        "--predictions", str(judged["pred"]), "--db-root", str(judged["root"]), "--output", str(out),
        "--push-to-hub", REPO, "--benchmark", "toy", "--split", "dev", "--model", "org/model",
        "--dataset-dir", str(tmp_path / "repo"),
    )  # fmt: skip
    assert code == 0
    assert summary["predictions_repo"] == REPO and summary["predictions_config"] == "toy-dev"
    assert hub_server.repo(REPO).branches["main"] == summary["predictions_commit"]
    judged_rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    expected = [{k: r[k] for k in PREDICTIONS_COLUMNS} for r in judged_rows]
    assert [r["correct"] for r in expected] == [True, False, False, False, True]
    assert [r["error"] for r in expected] == [None, None, "syntax", "missing_db", None]

    loaded = load_in_subprocess(hub_server, tmp_path, REPO, "toy-dev")
    assert list(loaded) == ["dev"]
    assert loaded["dev"] == expected  # identical rows, in order, unicode included

    card = hub_server.files(REPO)["README.md"].decode("utf-8")
    assert "config_name: toy-dev" in card and "`org/model`" in card
    assert summary["fingerprints"]["databases"]["music/music.sqlite"] in card
    info = json.loads(hub_server.files(REPO)["toy-dev/build_info.json"])
    assert info["summary"]["fingerprints"] == summary["fingerprints"] and info["model"] == "org/model"


def test_a_second_benchmark_is_another_config_and_keeps_the_first(judged, hub_server, tmp_path, capsys):
    for split in ("dev", "test"):
        code, _, _ = eval_cli(
            capsys,
            "--predictions", str(judged["pred"]), "--db-root", str(judged["root"]),
            "--push-to-hub", REPO, "--benchmark", "toy", "--split", split,
        )  # fmt: skip
        assert code == 0
    card = hub_server.files(REPO)["README.md"].decode("utf-8")
    assert "config_name: toy-dev" in card and "config_name: toy-test" in card
    assert len(load_in_subprocess(hub_server, tmp_path, REPO, "toy-dev")["dev"]) == 5


def test_push_needs_a_benchmark_and_a_valid_repo(judged, capsys, hub_server):
    code, summary, err = eval_cli(
        capsys, "--predictions", str(judged["pred"]), "--db-root", str(judged["root"]), "--push-to-hub", REPO
    )
    assert code == 2 and summary is None and "--benchmark" in err
    code, _, err = eval_cli(
        capsys,
        "--predictions", str(judged["pred"]), "--db-root", str(judged["root"]),
        "--push-to-hub", "not a repo", "--benchmark", "toy",
    )  # fmt: skip
    assert code == 2 and "--push-to-hub" in err
    assert hub_server.requests == []  # refused before any request


def test_a_failed_upload_is_one_line_and_keeps_the_scores(judged, tmp_path, capsys, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")  # nothing listens there
    out = tmp_path / "judged.jsonl"
    code, summary, err = eval_cli(
        capsys,
        "--predictions", str(judged["pred"]), "--db-root", str(judged["root"]), "--output", str(out),
        "--push-to-hub", REPO, "--benchmark", "toy",
    )  # fmt: skip
    assert code == 2 and "upload failed" in err and "Traceback" not in err
    assert summary["correct"] == 2 and out.is_file()  # the work done is not lost


def test_build_predictions_script_and_model_card_link(judged, hub_server, tmp_path, capsys):
    out = tmp_path / "judged.jsonl"
    code, summary, _ = eval_cli(
        capsys, "--predictions", str(judged["pred"]), "--db-root", str(judged["root"]), "--output", str(out)
    )
    summary_file = tmp_path / "summary.json"
    summary_file.write_text(json.dumps(summary) + "\n")
    result = run_script(
        "build_predictions",
        [
            "--input", str(out), "--summary", str(summary_file), "--benchmark", "toy", "--split", "dev",
            "--model", "org/model", "--output_dir", str(tmp_path / "repo"), "--push_to_hub", REPO,
        ],
    )  # fmt: skip
    assert result["config_name"] == "toy-dev" and result["records"] == 5 and result["commit"]
    local = hub.load_local(tmp_path / "repo", "toy-dev", split="dev").to_list()
    assert local == load_in_subprocess(hub_server, tmp_path, REPO, "toy-dev")["dev"]

    # the model card links the predictions and records the fingerprints with its model-index result
    summary.update(predictions_repo=REPO, predictions_config="toy-dev")
    summary_file.write_text(json.dumps(summary) + "\n")
    results = load_eval_results([f"toy={summary_file}"])
    text = model_card(
        model_name="sense-sft", base_model="org/base", datasets=[], recipe="sft", command="x", hyperparameters={},
        results=results,
    )  # fmt: skip
    assert f"https://huggingface.co/datasets/{REPO}" in text
    from huggingface_hub import ModelCard

    parsed = ModelCard(text).data.eval_results[0]
    assert parsed.source_url == f"https://huggingface.co/datasets/{REPO}" and parsed.dataset_config == "toy-dev"
    assert parsed.dataset_args["fingerprints"]["databases"] == summary["fingerprints"]["databases"]

    # and `--expect-fingerprints` accepts the card: unchanged passes, one changed byte is refused by name
    card_path = tmp_path / "model" / "README.md"
    card_path.parent.mkdir()
    card_path.write_text(text, encoding="utf-8")
    args = ["--predictions", str(judged["pred"]), "--db-root", str(judged["root"]), "--expect-fingerprints"]
    assert eval_cli(capsys, *args, str(card_path))[0] == 0
    db = judged["root"] / "concert" / "concert.sqlite"
    data = bytearray(db.read_bytes())
    data[-1] ^= 0xFF
    db.write_bytes(bytes(data))
    code, _, err = eval_cli(capsys, *args, str(card_path))
    assert code == 2 and "concert/concert.sqlite" in err


def test_rows_without_question_id_or_question_get_defaults(tmp_path):
    rows = [{"db_id": "d", "gold": "SELECT 1", "pred": "SELECT 1", "correct": True, "error": None}]
    out = hub.write_predictions_repo(rows, out_dir=tmp_path / "r", benchmark="spider", split="dev")
    assert hub.load_local(out, "spider-dev", split="dev").to_list() == [
        {"question_id": "0", "db_id": "d", "question": "", "gold": "SELECT 1", "pred": "SELECT 1", "correct": True,
         "error": None}
    ]  # fmt: skip


def test_build_predictions_refuses_unjudged_rows(judged, tmp_path, capsys, monkeypatch):
    with pytest.raises(ValueError, match="no `correct` field"):
        hub.build_predictions(input_path=judged["pred"], output_dir=tmp_path / "r", benchmark="toy")
    # from the script: one line naming the file and what to pass instead, exit 2, nothing written
    from test_dataset_scripts import load_script

    from sense_hub.cli import run_script as run_entry_point

    module = load_script("build_predictions")
    argv = ["build_predictions.py", "--input", str(judged["pred"]), "--output_dir", str(tmp_path / "r"), "--benchmark"]
    monkeypatch.setattr("sys.argv", [*argv, "toy"])
    assert run_entry_point("build_predictions.py", module.main, module.make_parser) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no `correct` field" in err[0] and str(judged["pred"]) in err[0], err
    assert not (tmp_path / "r").exists()


def test_summary_without_reproducibility_fields_keeps_the_old_result():
    result = eval_summary_to_result({"execution_accuracy": 0.5, "metric": "spider"}, dataset_name="a", dataset_id="a")
    assert result == {"dataset": "a", "dataset_id": "a", "metric": "execution_accuracy", "value": 0.5,
                      "metric_config": "spider"}  # fmt: skip


def test_predictions_card_names_model_decoding_and_budget(tmp_path):
    rows = [{"db_id": "d", "gold": "SELECT 1", "pred": "SELECT 2", "correct": False, "error": None}]
    summary = {
        "metric": "spider",
        "execution_accuracy": 0.0,
        "errors": {},
        "run": {
            "model": "org/m",
            "decoding": {"n": 8, "temperature": 0.8, "top_p": 1.0},
            "budget": {"name": "maj@8", "description": "the vote", "samples_per_question": 8},
        },
    }
    out = hub.write_predictions_repo(
        rows, out_dir=tmp_path / "r", benchmark="bird", split="dev", info=hub.predictions_info(summary)
    )
    card = (out / "README.md").read_text()
    assert "- Model: `org/m`" in card
    assert "Budget: **maj@8** (the vote, 8 sample(s) per question)" in card
    assert "`n=8`, `temperature=0.8`, `top_p=1.0`" in card
    assert "greedy" not in card
