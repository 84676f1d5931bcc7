"""`sense-hub predict -n N`: greedy, maj@N and pass@N reported apart, each with its samples and wall seconds."""

from __future__ import annotations

import json

from test_sampling import GOLD, QUESTION, ScriptedGenerator

from sense_hub.benchmarks import Example
from sense_hub.cards import eval_summary_to_result, model_card
from sense_hub.cli import main
from sense_hub.sampling import budget, budget_report, predict, run_info, timings_path

# Three questions whose scripted answers make greedy (2), maj@3 (1) and pass@3 (3) all differ:
#   q0: samples [wrong, right, right]: the vote is right; greedy wrong
#   q1: samples [wrong, wrong (same result), right]: the vote is wrong; greedy right
#   q2: samples [wrong, right, wrong], all results different: the tie goes to the first, wrong; greedy right
Q1, GOLD1 = "Singers older than 40?", "SELECT name FROM singer WHERE age > 40"
Q2, GOLD2 = "Singers from France?", "SELECT name FROM singer WHERE country = 'France'"
ANSWERS = {
    QUESTION: [
        "SELECT count(*) FROM concert WHERE year = 2014",
        "SELECT count(*) FROM singer",
        "SELECT count(singer_id) FROM singer",
    ],
    Q1: ["SELECT name FROM singer", "SELECT name FROM singer WHERE age > 0", GOLD1],
    Q2: ["SELECT name FROM singer WHERE age > 50", GOLD2, "SELECT country FROM singer"],
}


class GreedyAware(ScriptedGenerator):
    """Scripted samples; at temperature 0 it answers with the gold-like `greedy` script instead."""

    def __init__(self, answers, greedy):
        super().__init__(answers)
        self.greedy = greedy
        self.configs = []

    def generate(self, prompts, config):
        self.configs.append((config.n, config.temperature))
        if config.temperature == 0:
            questions = [p[-1]["content"].split("Question: ")[1].split("\n")[0] for p in prompts]
            return [[self.greedy[q]] for q in questions]
        return super().generate(prompts, config)


def examples() -> list[Example]:
    return [
        Example(question_id="b-0", db_id="concert_singer", question=QUESTION, sql=GOLD),
        Example(question_id="b-1", db_id="concert_singer", question=Q1, sql=GOLD1),
        Example(question_id="b-2", db_id="concert_singer", question=Q2, sql=GOLD2),
    ]


GREEDY = {QUESTION: "SELECT 1", Q1: GOLD1, Q2: GOLD2}


def test_budget_names():
    assert budget("greedy")["name"] == "greedy" and budget("greedy")["samples_per_question"] == 1
    assert budget("maj", 8)["name"] == "maj@8" and budget("pass", 8)["samples_per_question"] == 8


def test_predict_reports_three_budgets_apart(tiny_db, tmp_path):
    out = tmp_path / "pred.jsonl"
    gen = GreedyAware(ANSWERS, GREEDY)
    rows = predict(examples(), gen, db_root=tiny_db.parent.parent, output=out, n=3, progress=False)
    assert (1, 0.0) in gen.configs and (3, 0.8) in gen.configs  # a separate greedy pass, not the first sample
    assert [r["greedy"] for r in rows] == ["SELECT 1", GOLD1, GOLD2]
    report = budget_report(rows, db_root=tiny_db.parent.parent, output=out, n=3)
    budgets = report["budgets"]
    assert list(budgets) == ["greedy", "maj@3", "pass@3"] and report["pred_budget"] == "maj@3"
    assert {name: b["correct"] for name, b in budgets.items()} == {"greedy": 2, "maj@3": 1, "pass@3": 3}
    # maj@3 picks q0's two agreeing right answers, not q1's or q2's lone right one
    assert rows[0]["pred"] in ANSWERS[QUESTION][1:] and rows[1]["pred"] != GOLD1
    assert [b["samples_per_question"] for b in budgets.values()] == [1, 3, 3]
    for b in budgets.values():
        assert b["questions"] == 3 and b["wall_s"] is not None and b["wall_s"] >= 0
    assert budgets["maj@3"]["wall_s"] >= budgets["pass@3"]["wall_s"]  # the vote's execution is on top
    assert budgets["pass@3"]["selection_s"] == 0.0
    chunks = json.loads(timings_path(out).read_text())["chunks"]
    assert set(chunks["0"]) >= {"samples", "vote", "greedy", "questions"}


def test_greedy_only_for_n_1_and_no_greedy_pass(tiny_db, tmp_path):
    rows = predict(
        examples(), GreedyAware(ANSWERS, GREEDY), db_root=tiny_db.parent.parent, output=tmp_path / "g.jsonl"
    )
    report = budget_report(rows, db_root=tiny_db.parent.parent, output=tmp_path / "g.jsonl", n=1)
    assert list(report["budgets"]) == ["greedy"]
    assert report["budgets"]["greedy"]["correct"] == 2  # n=1 at temperature 0: `pred` is the greedy answer
    rows = predict(
        examples(),
        GreedyAware(ANSWERS, GREEDY),
        db_root=tiny_db.parent.parent,
        output=tmp_path / "v.jsonl",
        n=3,
        greedy_pass=False,
    )
    assert "greedy" not in rows[0]
    report = budget_report(rows, db_root=tiny_db.parent.parent, output=tmp_path / "v.jsonl", n=3)
    assert list(report["budgets"]) == ["maj@3", "pass@3"]  # no greedy number made up from a sample


def test_eval_and_card_name_the_budget_of_pred(tiny_db, tmp_path, capsys):
    out = tmp_path / "pred.jsonl"
    predict(examples(), GreedyAware(ANSWERS, GREEDY), db_root=tiny_db.parent.parent, output=out, n=3)
    info = run_info(out)
    assert info["budget"]["name"] == "maj@3" and info["decoding"]["n"] == 3 and info["model"] == "scripted"
    assert main(["eval", "--predictions", str(out), "--db-root", str(tiny_db.parent.parent)]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["run"]["budget"]["name"] == "maj@3" and summary["correct"] == 1
    result = eval_summary_to_result(summary, dataset_name="toy", dataset_id="toy")
    text = model_card(
        model_name="m", base_model="org/base", datasets=[], recipe="sft", command="x", hyperparameters={},
        results=[result],
    )  # fmt: skip
    assert "execution_accuracy (maj@3)" in text and "greedy" not in text.split("## Evaluation")[1].split("##")[0]
    from huggingface_hub import ModelCard

    parsed = ModelCard(text).data.eval_results[0]
    assert parsed.metric_name == "Execution accuracy (maj@3)" and parsed.metric_args["samples_per_question"] == 3


def test_predict_cli_summary_has_budgets(tiny_db, tiny_model_dir, tmp_path, capsys):
    questions = tmp_path / "q.jsonl"
    questions.write_text(json.dumps({"question": QUESTION, "sql": GOLD, "db_id": "concert_singer"}) + "\n")
    out = tmp_path / "pred.jsonl"
    argv = [
        "predict", "--input", str(questions), "--db-root", str(tiny_db.parent.parent), "--model", str(tiny_model_dir),
        "-n", "2", "--max-new-tokens", "4", "--output", str(out), "--no-progress",
    ]  # fmt: skip
    assert main(argv) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert list(summary["budgets"]) == ["greedy", "maj@2", "pass@2"]
    assert summary["pred_budget"] == "maj@2"
    assert all(b["wall_s"] is not None for b in summary["budgets"].values())
    assert summary["budgets"]["pass@2"]["correct"] >= summary["budgets"]["maj@2"]["correct"]
