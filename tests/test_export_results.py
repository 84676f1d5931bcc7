"""`bench/export_results.py`: the committed outputs of an experiment run go back into a new run folder intact."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "bench" / "export_results.py"


def _load():
    spec = importlib.util.spec_from_file_location("export_results", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _jsonl(path: Path, rows) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def _read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_export_then_restore_gives_back_what_a_resumed_run_needs(tmp_path):
    er = _load()
    run, results, new = tmp_path / "run", tmp_path / "results", tmp_path / "new"
    human = [{"question_id": "spider-1", "db_id": "pets_1", "question": "How many pets?", "sql": "SELECT 1"}]
    _jsonl(run / "data" / "train-human.jsonl", human)
    strong = [{"id": "tmpl-pets_1-00000", "db_id": "pets_1", "question": "q", "sql": "SELECT 2", "prompt": "long"}]
    _jsonl(run / "data" / "strong-templates.jsonl", strong)
    rejected = [{"id": "tmpl-pets_1-00001", "db_id": "pets_1", "family": "like", "sql": "x", "reason": "verify_error"}]
    _jsonl(run / "data" / "strong-templates.rejected.jsonl", rejected)
    weak = [{**human[0], "sample_index": 0, "sql": "SELECT 1", "status": "ok", "correct": True, "generator": "m"}]
    _jsonl(run / "data" / "weak.jsonl", weak)
    judged = [{"question_id": "spider-9", "db_id": "pets_1", "pred": "SELECT 1", "correct": False, "error": "x"}]
    _jsonl(run / "judged" / "base.jsonl", judged)
    (run / "models" / "sft").mkdir(parents=True)
    (run / "models" / "sft" / "README.md").write_text("card from the model\n")
    (run / "done").mkdir()
    (run / "done" / "train-sft.json").write_text(json.dumps({"seconds": 12.0, "last_loss": 0.5}))

    written = er.export(run, results)
    assert written["strong-rejected.ids.jsonl"] == 1 and written["cards/sft.md"] == 1
    assert _read(results / "strong-rejected.ids.jsonl") == [
        {"id": "tmpl-pets_1-00001", "db_id": "pets_1", "family": "like", "reason": "verify_error"}
    ]
    assert json.loads((results / "strong-rejected.json").read_text()) == {"verify_error": 1}
    assert "question" not in _read(results / "weak.jsonl")[0]  # no prompts or questions: joined again on restore

    # a card `compare` wrote from step records never replaces the one that came from the model
    (run / "cards" / "sft").mkdir(parents=True)
    (run / "cards" / "sft" / "README.md").write_text("card from step records\n")
    er.export(run, results)
    assert (results / "cards" / "sft.md").read_text() == "card from the model\n"

    _jsonl(new / "data" / "train-human.jsonl", human)  # what `--stages split` writes on the new machine
    er.restore(results, new)
    assert _read(new / "data" / "strong-templates.jsonl") == strong
    assert [r["id"] for r in _read(new / "data" / "strong-templates.rejected.jsonl")] == ["tmpl-pets_1-00001"]
    assert _read(new / "data" / "weak.jsonl")[0]["gold_sql"] == "SELECT 1"
    assert _read(new / "judged" / "base.jsonl") == judged
    marker = json.loads((new / "done" / "train-sft.json").read_text())
    assert marker["last_loss"] == 0.5 and marker["restored_from"] == str(results)

    # a resumed synthesis asks only what neither file holds
    from sense_hub.synthesis import resume_output

    assert resume_output(new / "data" / "strong-templates.jsonl").done == {"tmpl-pets_1-00000", "tmpl-pets_1-00001"}
