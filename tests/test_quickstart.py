"""The main job end to end with the tiny model: the output contract of ARCHITECTURE.md, resume, config errors."""

import json

import pytest
import yaml

from sense_hub.cli import main
from sense_hub.quickstart import STAGES, QuickstartConfig, load_config


@pytest.fixture(scope="module")
def quickstart_run(tmp_path_factory, tiny_model_dir):
    out = tmp_path_factory.mktemp("qs") / "out"
    config = tmp_path_factory.mktemp("cfg") / "quick.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "model": str(tiny_model_dir),
                "templates_per_database": 3,
                "verifier_model": None,  # rule-written questions: the tiny random model cannot verify any
                "weak_questions": 3,
                "weak_samples": 2,
                "eval_questions": 2,
                "max_new_tokens": 8,
                "sft_steps": 1,
                "cdpo_steps": 1,
                "batch_size": 2,
                "max_length": 4096,
            }
        )
    )
    assert main(["quickstart", "--output-dir", str(out), "--config", str(config)]) == 0
    return out, config


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_quickstart_writes_the_contracted_layout(quickstart_run, tmp_path):
    from datasets import load_dataset
    from huggingface_hub import ModelCard
    from transformers import AutoModelForCausalLM

    out, _ = quickstart_run
    # datasets 5.2 caches a local folder by its name ("strong"), so other tests' folders would be served: own cache
    cache = str(tmp_path / "hf-datasets-cache")
    strong = load_dataset(str(out / "datasets" / "strong"), cache_dir=cache)
    assert {"question", "sql", "db_id"} <= set(strong["train"].column_names)
    weak = load_dataset(str(out / "datasets" / "weak"), cache_dir=cache)
    assert {"question", "sql", "correct", "gold_sql"} <= set(weak["train"].column_names)
    pairs = load_dataset(str(out / "datasets" / "pairs"), cache_dir=cache)
    row = pairs["train"][0]
    assert row["prompt"][-1]["role"] == "user" and row["chosen"][0]["role"] == "assistant"
    assert row["rejected"][0]["content"] != row["chosen"][0]["content"]

    # every record refers to a database that is in DIR/databases
    for split in (strong["train"], weak["train"], pairs["train"]):
        for db_id in set(split["db_id"]):
            assert (out / "databases" / db_id / f"{db_id}.sqlite").is_file()

    report = json.loads((out / "report.json").read_text())
    assert set(report["execution_accuracy"]) == {"base", "sft", "cdpo"}
    held_out = set(report["eval_set"]["databases"])
    assert held_out and not held_out & set(pairs["train"]["db_id"])
    for name in ("sense-sft", "sense-cdpo"):
        folder = out / "models" / name
        assert list(folder.glob("*.safetensors"))
        card = ModelCard.load(folder / "README.md")
        assert card.data.eval_results[0].metric_type == "execution_accuracy"
        AutoModelForCausalLM.from_pretrained(folder)


def test_quickstart_rerun_resumes_without_redoing_stages(quickstart_run, capsys):
    out, config = quickstart_run
    state = json.loads((out / "work" / "state.json").read_text())
    assert set(state["done"]) == set(STAGES)
    before = (out / "report.json").stat().st_mtime_ns
    assert main(["quickstart", "--output-dir", str(out), "--config", str(config)]) == 0
    assert (out / "report.json").stat().st_mtime_ns == before
    assert "done earlier, skipped" in capsys.readouterr().err


def test_quickstart_refuses_changed_settings_in_the_same_directory(quickstart_run, capsys):
    out, config = quickstart_run
    assert main(["quickstart", "--output-dir", str(out), "--config", str(config), "--model", "other"]) == 2
    assert "different settings (model)" in capsys.readouterr().err


def test_config_errors_name_the_key_and_the_fix(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("weak_sample: 4\n")
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['weak_sample'\]"):
        load_config(bad, {})
    with pytest.raises(ValueError, match=r"cdpo_epsilon.*\[0, 0.5\)"):
        QuickstartConfig(cdpo_epsilon=0.7)
    with pytest.raises(FileNotFoundError, match="missing.yaml"):
        load_config(tmp_path / "missing.yaml", {})
