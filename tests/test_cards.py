"""Dataset and model cards: YAML metadata, body content, model-index round trip, statistics and plots."""

from __future__ import annotations

import pytest
from huggingface_hub import DatasetCard, ModelCard

from sense_hub import cards

RESULTS = [
    {"dataset": "Spider dev", "dataset_id": "spider", "metric": "execution_accuracy", "value": 0.4213},
    {"dataset": "BIRD dev", "dataset_id": "bird", "metric": "execution_accuracy", "value": 0.125},
]


def render_model_card(**overrides) -> str:
    kwargs = {
        "model_name": "sense-cdpo-smollm2",
        "base_model": "HuggingFaceTB/SmolLM2-135M-Instruct",
        "datasets": ["sense/strong", "sense/pairs"],
        "recipe": "cdpo",
        "command": "accelerate launch recipes/cdpo.py --config recipes/smollm2-135m/cdpo.yaml",
        "hyperparameters": {"learning_rate": 5e-7, "beta": 0.1, "cdpo_epsilon": 0.1},
        "results": RESULTS,
    }
    kwargs.update(overrides)
    return cards.model_card(**kwargs)


def weak(i: int, db_id: str, correct: bool, error=None) -> dict:
    return {"db_id": db_id, "question": "how many singers are there", "sql": "SELECT count(*) FROM singer",
            "correct": correct, "error": error}  # fmt: skip


def test_model_card_round_trips_eval_results():
    card = ModelCard(render_model_card())
    results = card.data.eval_results
    assert [(r.dataset_type, r.dataset_name, r.metric_type, r.metric_value) for r in results] == [
        ("spider", "Spider dev", "execution_accuracy", 0.4213),
        ("bird", "BIRD dev", "execution_accuracy", 0.125),
    ]
    assert card.data.model_name == "sense-cdpo-smollm2"
    assert card.data.base_model == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert card.data.datasets == ["sense/strong", "sense/pairs"]
    assert "text-to-sql" in card.data.tags and "cdpo" in card.data.tags


def test_model_card_body_has_recipe_command_and_hyperparameters():
    text = render_model_card()
    assert "accelerate launch recipes/cdpo.py --config recipes/smollm2-135m/cdpo.yaml" in text
    assert "| `cdpo_epsilon` | `0.1` |" in text
    assert "| Spider dev (`spider`) | execution_accuracy | 42.13% |" in text
    assert "Synthesizing Text-to-{SQL} Data from Weak and Strong {LLM}s" in text


@pytest.mark.parametrize(
    ("recipe", "says", "never"),
    [
        ("sft", "the supervised stage of [SENSE]", "DPO"),
        ("cdpo", "conservative\nDPO on execution-labelled pairs", "GRPO"),
        ("grpo", "[GRPO](https://arxiv.org/abs/2402.03300) with execution rewards", "conservative DPO"),
        ("spft", "[SPFT-SQL]", "conservative DPO"),
    ],
)
def test_model_card_describes_the_recipe_that_made_it(recipe, says, never):
    body = render_model_card(recipe=recipe).split("## Use")[0]
    assert says in body and never not in body


def test_grpo_model_card_cites_grpo():
    text = render_model_card(recipe="grpo")
    assert "DeepSeekMath" in text and "yang-etal-2024-synthesizing" not in text


def test_model_card_without_results_has_no_model_index():
    card = ModelCard(render_model_card(results=[]))
    assert card.data.eval_results is None
    assert "model-index" not in card.content.split("---")[1]
    assert "No evaluation results yet." in card.content


def test_add_results_updates_a_recipe_card_in_place(tmp_path):
    """A training recipe writes its card without scores; a later evaluation adds them, and again replaces them."""
    path = tmp_path / "sense-sft" / "README.md"
    path.parent.mkdir()
    path.write_text(render_model_card(results=[]), encoding="utf-8")
    held_out = {"dataset": "Spider dev, 9 held-out databases", "dataset_id": "spider", "value": 0.086}
    held_out["fingerprints"] = {"databases": {"pets_1/pets_1.sqlite": "ab" * 32}}
    cards.add_results(path, [held_out], section="Held-out results", body="EX **8.6% [6.0, 11.1]**")
    card = ModelCard.load(path)
    (result,) = card.data.eval_results
    assert (result.dataset_name, result.metric_value) == ("Spider dev, 9 held-out databases", 0.086)
    assert result.dataset_args["fingerprints"]["databases"] == held_out["fingerprints"]["databases"]
    assert "accelerate launch recipes/cdpo.py" in card.text and "EX **8.6% [6.0, 11.1]**" in card.text
    # the Evaluation table in the text says what the model-index says
    assert "| Spider dev, 9 held-out databases (`spider`) | execution_accuracy | 8.60% |" in card.text
    assert "No evaluation results yet." not in card.text

    # a second score of the same dataset replaces the first; another dataset's result and the text stay
    path.write_text(str(ModelCard(render_model_card(results=RESULTS[1:])).content), encoding="utf-8")
    cards.add_results(path, [held_out], section="Held-out results", body="body-one")
    cards.add_results(path, [{**held_out, "value": 0.102}], section="Held-out results", body="body-two")
    card = ModelCard.load(path)
    assert [(r.dataset_name, r.metric_value) for r in card.data.eval_results] == [
        ("BIRD dev", 0.125),
        ("Spider dev, 9 held-out databases", 0.102),
    ]
    assert card.text.count("## Held-out results") == 1 and "body-two" in card.text and "body-one" not in card.text
    assert "| BIRD dev (`bird`) |" in card.text and "| 10.20% |" in card.text and "| 8.60% |" not in card.text
    with pytest.raises(ValueError, match="'value' must be a fraction"):
        cards.add_results(path, [{**held_out, "value": 8.6}], section="Held-out results", body="x")


@pytest.mark.parametrize(
    ("result", "message"),
    [
        ({"dataset": "Spider dev", "value": 0.5}, "missing field"),
        ({"dataset": "Spider dev", "dataset_id": "spider", "value": 42.0}, r"fraction in \[0, 1\]"),
        ({"dataset": "Spider dev", "dataset_id": "spider", "value": "0.5"}, r"fraction in \[0, 1\]"),
    ],
)
def test_model_card_rejects_bad_results(result, message):
    with pytest.raises(ValueError, match=message):
        render_model_card(results=[result])


def test_eval_summary_to_result_reads_the_eval_summary():
    summary = {"metric": "spider", "n": 200, "correct": 84, "execution_accuracy": 0.42, "errors": {}}
    result = cards.eval_summary_to_result(summary, dataset_name="Spider dev", dataset_id="spider")
    assert result == {
        "dataset": "Spider dev",
        "dataset_id": "spider",
        "metric": "execution_accuracy",
        "value": 0.42,
        "metric_config": "spider",
    }
    card = ModelCard(render_model_card(results=[result]))
    assert card.data.eval_results[0].metric_value == 0.42
    assert card.data.eval_results[0].metric_config == "spider"
    assert cards.eval_summary_to_result({"accuracy": 42.0}, dataset_name="d", dataset_id="d")["value"] == 0.42


def test_eval_summary_without_accuracy_names_the_keys():
    with pytest.raises(ValueError, match=r"no execution accuracy.*\['correct', 'n'\]"):
        cards.eval_summary_to_result({"n": 3, "correct": 1}, dataset_name="d", dataset_id="d")


def test_config_statistics_counts_per_split_database_and_label():
    splits = {
        "train": [weak(0, "a", True), weak(1, "a", False, "wrong_result"), weak(2, "b", False, "syntax")],
        "validation": [weak(3, "c", False, "wrong_result")],
    }
    stats = cards.config_statistics("weak", splits)
    assert stats["labels"] == ["correct", "syntax", "wrong_result"]
    assert stats["splits"][0] == {
        "name": "train",
        "records": 3,
        "databases": 2,
        "labels": {"correct": 1, "wrong_result": 1, "syntax": 1},
    }
    assert stats["per_database"] == [
        {"db_id": "a", "split": "train", "records": 2},
        {"db_id": "b", "split": "train", "records": 1},
        {"db_id": "c", "split": "validation", "records": 1},
    ]
    assert stats["question_words"] == {"mean": 5.0, "min": 5, "max": 5}


def test_statistics_plot_is_a_deterministic_png(tmp_path):
    stats = cards.config_statistics("weak", {"train": [weak(i, f"db{i % 40}", i % 2 == 0) for i in range(80)]})
    a = cards.render_statistics_plot(stats, path=tmp_path / "a.png", title="weak / default")
    b = cards.render_statistics_plot(stats, path=tmp_path / "b.png", title="weak / default")
    assert a.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert a.read_bytes() == b.read_bytes()


def test_dataset_card_yaml_and_body():
    splits = {"train": [weak(0, "a", True)], "validation": [weak(1, "b", False, "timeout")]}
    configs = [
        {"config_name": "default", "data_files": [{"split": "train", "path": "default/train-00000-of-00001.parquet"}]}
    ]
    section = {
        "name": "default",
        "stats": cards.config_statistics("weak", splits),
        "plot": "statistics-default.png",
        "provenance": {
            "models": ["embedded"],
            "source": "weak.jsonl",
            "parameters": {"n": 8, "temperature": 0.8},
            "command": "python dataset_scripts/build_weak.py --input weak.jsonl --output-dir out/weak",
        },
        "split": {"validation_fraction": 0.1, "seed": 0},
    }
    text = cards.dataset_card(kind="weak", configs=configs, sections=[section], repo_id="acme/weak")
    card = DatasetCard(text)
    assert card.data.license == "cc-by-sa-4.0"
    assert card.data.task_categories == ["text-generation", "table-question-answering"]
    assert {"text-to-sql", "sense"} <= set(card.data.tags)
    assert card.data.configs == configs
    assert card.data.size_categories == ["n<1K"]
    body = card.content
    assert 'load_dataset("acme/weak", "default")' in body
    assert "python dataset_scripts/build_weak.py --input weak.jsonl --output-dir out/weak" in body
    assert "- Models: `embedded`" in body
    assert "  - `temperature`: `0.8`" in body
    assert "| train | 1 | 1 | 1 | 0 |" in body  # records, databases, correct, timeout
    assert "![statistics of default](statistics-default.png)" in body
    for citation in ("yang-etal-2024-synthesizing", "yu-etal-2018-spider", "li2023bird"):
        assert citation in body


def test_dataset_card_keeps_unrelated_metadata():
    text = cards.dataset_card(
        kind="strong", configs=[], sections=[], metadata={"annotations_creators": ["machine-generated"], "tags": ["x"]}
    )
    card = DatasetCard(text)
    assert card.data.annotations_creators == ["machine-generated"]
    assert card.data.tags[0] == "x" and "text-to-sql" in card.data.tags


def test_size_category():
    assert cards.size_category(5) == "n<1K"
    assert cards.size_category(1500) == "1K<n<10K"
    assert cards.size_category(2_000_000) == "1M<n<10M"


def test_local_paths_stay_out_of_the_yaml(tmp_path):
    local = tmp_path / "sense-sft"
    local.mkdir()
    card = ModelCard(render_model_card(base_model=str(local), datasets=["sense/pairs", str(tmp_path / "pairs")]))
    assert card.data.base_model is None
    assert card.data.datasets == ["sense/pairs"]
    assert f"fine-tuned from `{local}`" in card.content
    assert f"- `{tmp_path / 'pairs'}`" in card.content
    assert "- [`sense/pairs`](https://huggingface.co/datasets/sense/pairs)" in card.content
    assert cards.is_hub_id("HuggingFaceTB/SmolLM2-135M-Instruct") and not cards.is_hub_id("./model")


def test_model_card_records_fingerprints_budget_and_predictions_link(tmp_path):
    from sense_hub.fingerprints import read_expected_fingerprints

    summary = {
        "metric": "spider",
        "execution_accuracy": 0.5,
        "run": {"budget": {"name": "maj@8", "description": "vote", "samples_per_question": 8}},
        "fingerprints": {"algorithm": "sha256", "databases": {"a/a.sqlite": "11", "b/b.sqlite": "22"},
                         "databases_combined": "33", "predictions": "44", "gold": "55"},
        "predictions_repo": "org/preds",
        "predictions_config": "spider-dev",
    }  # fmt: skip
    result = cards.eval_summary_to_result(summary, dataset_name="Spider dev", dataset_id="spider")
    text = render_model_card(results=[result, RESULTS[1]])
    parsed = ModelCard(text).data.eval_results
    assert parsed[0].dataset_args == {"fingerprints": summary["fingerprints"]}
    assert parsed[0].metric_name == "Execution accuracy (maj@8)" and parsed[0].metric_args["samples_per_question"] == 8
    assert parsed[0].source_url == "https://huggingface.co/datasets/org/preds"
    assert parsed[1].dataset_args is None and parsed[1].metric_name == "Execution accuracy"  # no budget: no label
    assert "| Spider dev (`spider`) | execution_accuracy (maj@8) | 50.00% |" in text
    assert "[`org/preds`](https://huggingface.co/datasets/org/preds) (config `spider-dev`)" in text
    card = tmp_path / "README.md"
    card.write_text(text)
    assert read_expected_fingerprints(card)["databases"] == summary["fingerprints"]["databases"]


def test_training_card_carries_the_eval_summary_fingerprints(tmp_path):
    import json

    from sense_hub.training import load_eval_results

    path = tmp_path / "summary.json"
    fp = {"algorithm": "sha256", "databases": {"a/a.sqlite": "11"}, "databases_combined": "x", "gold": "g"}
    path.write_text("progress bar noise\n" + json.dumps({"execution_accuracy": 0.25, "fingerprints": fp}) + "\n")
    (result,) = load_eval_results([f"spider={path}"])
    assert result["fingerprints"] == fp
    assert ModelCard(render_model_card(results=[result])).data.eval_results[0].dataset_args["fingerprints"] == fp


def test_write_model_card_puts_sections_before_the_citation_on_the_main_process_only(tmp_path, monkeypatch):
    from sense_hub.cards import command_line, write_model_card

    kwargs = {
        "base_model": "HuggingFaceTB/SmolLM2-135M-Instruct",
        "datasets": ["sense/strong"],
        "recipe": "sft",
        "hyperparameters": {"learning_rate": 2e-5},
        "results": RESULTS,
        "sections": {"My section": "Rounds: 2."},
    }
    monkeypatch.setenv("RANK", "1")
    assert write_model_card(tmp_path / "rank1", **kwargs) is None
    assert not (tmp_path / "rank1").exists()
    monkeypatch.setenv("RANK", "0")
    path = write_model_card(tmp_path / "sense-sft", **kwargs)
    card = ModelCard.load(path)
    assert card.data.model_name == "sense-sft" and card.data.eval_results
    assert card.text.index("## My section") < card.text.index("## Citation")
    assert "| `learning_rate` | `2e-05` |" in card.text
    # however a recipe is started, its card names the launcher command
    assert (
        command_line(["/x/recipes/sft.py", "--config", "a b.yaml"])
        == "accelerate launch recipes/sft.py --config 'a b.yaml'"
    )
