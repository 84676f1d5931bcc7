"""Dataset and model cards: statistics, plots, YAML metadata and the Markdown body, from templates.

The templates live in `sense_hub/templates/` (Jinja, rendered through `huggingface_hub`'s `DatasetCard` and
`ModelCard`, so the YAML header is the Hub's own `CardData` serialization). Cards are pure functions of their
inputs: the same data renders the same bytes.
"""

from __future__ import annotations

import logging
import statistics
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from sense_hub.formats import COLUMNS, OPTIONAL_COLUMNS

logger = logging.getLogger(__name__)

TEMPLATES = Path(__file__).parent / "templates"
DATASET_CARD_TEMPLATE = TEMPLATES / "dataset_card.md"
MODEL_CARD_TEMPLATE = TEMPLATES / "model_card.md"
PREDICTIONS_CARD_TEMPLATE = TEMPLATES / "predictions_card.md"

DEFAULT_DATASET_LICENSE = "cc-by-sa-4.0"  # Spider and BIRD are CC BY-SA 4.0
DEFAULT_MODEL_LICENSE = "apache-2.0"
TASK_CATEGORIES = ["text-generation", "table-question-answering"]
EX_METRIC = "execution_accuracy"
HUB_URL = "https://huggingface.co"  # links in card bodies always point at the public Hub

CITATIONS = {
    "sense": """@inproceedings{yang-etal-2024-synthesizing,
    title = "Synthesizing Text-to-{SQL} Data from Weak and Strong {LLM}s",
    author = "Yang, Jiaxi and Hui, Binyuan and Yang, Min and Yang, Jian and Lin, Junyang and Zhou, Chang",
    booktitle = "Proceedings of the 62nd Annual Meeting of the Association for Computational Linguistics (Volume 1: Long Papers)",
    year = "2024",
    address = "Bangkok, Thailand",
    publisher = "Association for Computational Linguistics",
    url = "https://aclanthology.org/2024.acl-long.425",
    pages = "7864--7875",
}""",
    "grpo": """@article{shao2024deepseekmath,
    title = {{DeepSeekMath}: Pushing the Limits of Mathematical Reasoning in Open Language Models},
    author = {Shao, Zhihong and Wang, Peiyi and Zhu, Qihao and Xu, Runxin and Song, Junxiao and Bi, Xiao and Zhang, Haowei and Zhang, Mingchuan and Li, Y. K. and Wu, Y. and Guo, Daya},
    journal = {arXiv preprint arXiv:2402.03300},
    year = {2024},
    url = {https://arxiv.org/abs/2402.03300},
}""",
    "spider": """@inproceedings{yu-etal-2018-spider,
    title = "{S}pider: A Large-Scale Human-Labeled Dataset for Complex and Cross-Domain Semantic Parsing and Text-to-{SQL} Task",
    author = "Yu, Tao and Zhang, Rui and Yang, Kai and Yasunaga, Michihiro and Wang, Dongxu and Li, Zifan and Ma, James and Li, Irene and Yao, Qingning and Roman, Shanelle and Zhang, Zilin and Radev, Dragomir",
    booktitle = "Proceedings of the 2018 Conference on Empirical Methods in Natural Language Processing",
    year = "2018",
    address = "Brussels, Belgium",
    publisher = "Association for Computational Linguistics",
    url = "https://aclanthology.org/D18-1425",
    pages = "3911--3921",
}""",
    "bird": """@inproceedings{li2023bird,
    title = "Can {LLM} Already Serve as A Database Interface? A {BI}g Bench for Large-Scale Database Grounded Text-to-{SQL}s",
    author = "Li, Jinyang and Hui, Binyuan and Qu, Ge and Yang, Jiaxi and Li, Binhua and Li, Bowen and Wang, Bailin and Qin, Bowen and Geng, Ruiying and Huo, Nan and Zhou, Xuanhe and Ma, Chenhao and Li, Guoliang and Chang, Kevin C. C. and Huang, Fei and Cheng, Reynold and Li, Yongbin",
    booktitle = "Advances in Neural Information Processing Systems 36 (NeurIPS 2023), Datasets and Benchmarks Track",
    year = "2023",
    url = "https://arxiv.org/abs/2305.03111",
}""",
}

KIND_DESCRIPTIONS = {
    "strong": (
        "**Strong data**: text-to-SQL examples written by a strong model for new domains, or made "
        "from SQL templates over real databases and turned into questions, each kept only if its SQL executes "
        "on its database. Used for supervised fine-tuning (SFT)."
    ),
    "weak": (
        "**Weak data**: many SQL candidates sampled from a weak model per question, each executed "
        "against the question's database and labelled `correct` when its result equals the gold SQL's result "
        "(strict execution match); otherwise `error` says why (`wrong_result` or the execution error kind)."
    ),
    "pairs": (
        "**Preference pairs** in TRL's conversational preference format (`prompt`, `chosen`, "
        "`rejected`), built from execution-labelled weak samples: a correct SQL (or the gold SQL) is chosen, a "
        "wrong one rejected, with provenance columns. Used for conservative DPO (cDPO) with TRL."
    ),
}

COLUMN_HELP = {
    "id": "stable record id",
    "domain": "domain of the database",
    "difficulty": "easy / medium / hard",
    "db_id": "the database the SQL runs on",
    "schema": "CREATE TABLE statements of the database",
    "question": "natural-language question",
    "sql": "SQL query",
    "evidence": "BIRD-style external knowledge (empty when none)",
    "generator": "the model or procedure that produced the record",
    "verification": "how the record was checked",
    "question_id": "id of the question this record belongs to",
    "gold_sql": "the reference SQL",
    "sample_index": "index of the sample among the N drawn for the question",
    "status": "`ok` when the SQL executed, else the execution error kind",
    "correct": "the SQL's result equals the gold result",
    "error": "null when correct, else `wrong_result` or the execution error kind",
    "prompt": "chat messages: system + user (schema and question)",
    "chosen": "assistant message with a correct SQL",
    "rejected": "assistant message with a wrong SQL",
    "chosen_source": "`gold` or `sample`",
    "rejected_error": "why the rejected SQL is wrong",
    "gold_suspect": "most samples agree on one result that is not the gold result: the gold SQL may be wrong",
    "contamination": "empty when clean; else `sql:<id>` or `question:<id>` of the benchmark item it matches",
    "gold": "the reference SQL",
    "pred": "the model's SQL",
}

PREDICTIONS_COLUMN_HELP = {
    "correct": "the predicted SQL's result equals the gold result under the configuration's metric",
    "error": "null when both queries executed, else the prediction's execution error kind (`gold_error` when the "
    "gold failed)",
}

MAX_PLOTTED_DATABASES = 30

# The column a record kind is broken down by in the counts and the plot.
LABEL_COLUMN = {"strong": "difficulty", "weak": "error", "pairs": "rejected_error"}


def record_label(kind: str, record: Mapping[str, Any]) -> str:
    """The label a record is counted under: difficulty (strong), `correct` or the error (weak), why rejected (pairs)."""
    if kind == "weak":
        return "correct" if record["correct"] else str(record["error"] or "wrong_result")
    return str(record[LABEL_COLUMN[kind]])


def _sql_text(kind: str, record: Mapping[str, Any]) -> str:
    if kind == "pairs":
        return record["chosen"][-1]["content"] if record["chosen"] else ""
    return record["sql"]


def _summary(values: Sequence[int]) -> dict[str, Any]:
    if not values:
        return {"mean": 0, "min": 0, "max": 0}
    return {"mean": round(statistics.fmean(values), 1), "min": min(values), "max": max(values)}


def config_statistics(kind: str, splits: Mapping[str, Sequence[Mapping[str, Any]]]) -> dict[str, Any]:
    """Counts and length statistics of one configuration, per split, per database and per label.

    Args:
        kind: "strong", "weak" or "pairs".
        splits: split name -> records (already validated).

    Returns:
        A dict with `splits` (name, records, databases, labels), `labels` (sorted), `per_database`,
        `question_words`, `sql_tokens`, `label_name` and `sql_name`, ready for the card template and the plot.
    """
    labels: Counter[str] = Counter()
    split_rows, per_database = [], []
    questions, sqls = [], []
    for name, records in splits.items():
        split_labels = Counter(record_label(kind, r) for r in records)
        labels.update(split_labels)
        dbs = Counter(r["db_id"] for r in records)
        split_rows.append({"name": name, "records": len(records), "databases": len(dbs), "labels": dict(split_labels)})
        per_database.extend({"db_id": db, "split": name, "records": n} for db, n in sorted(dbs.items()))
        questions.extend(len(r["question"].split()) for r in records)
        sqls.extend(len(_sql_text(kind, r).split()) for r in records)
    return {
        "splits": split_rows,
        "labels": sorted(labels),
        "label_counts": dict(sorted(labels.items())),
        "per_database": per_database,
        "question_words": _summary(questions),
        "sql_tokens": _summary(sqls),
        "question_lengths": questions,
        "label_name": LABEL_COLUMN[kind],
        "sql_name": "chosen SQL" if kind == "pairs" else "SQL",
        **record_checks(kind, [r for records in splits.values() for r in records]),
    }


def record_checks(kind: str, records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The optional columns `records` carry and their counts, for the card's "Data checks".

    Returns:
        `{"optional_columns": [...], "checks": {...}}`: `checks` has `gold_suspect_questions`,
        `gold_suspect_records` and `questions` when records carry `gold_suspect`, and `contaminated_records`,
        `contaminated_by_match` when they carry `contamination`.
    """
    present = [name for name in OPTIONAL_COLUMNS.get(kind, {}) if any(name in r for r in records)]
    checks: dict[str, Any] = {}
    if "gold_suspect" in present:
        checks["gold_suspect_questions"] = len({r["question_id"] for r in records if r.get("gold_suspect")})
        checks["gold_suspect_records"] = sum(bool(r.get("gold_suspect")) for r in records)
        checks["questions"] = len({r["question_id"] for r in records})
    if "contamination" in present:
        flagged = [str(r["contamination"]).split(":", 1)[0] for r in records if r.get("contamination")]
        checks["contaminated_records"] = len(flagged)
        checks["contaminated_by_match"] = dict(sorted(Counter(flagged).items()))
    return {"optional_columns": present, "checks": checks}


def render_statistics_plot(stats: Mapping[str, Any], *, path: Path, title: str) -> Path:
    """Write a PNG with records per database (stacked by split), records per label and question lengths.

    The PNG carries no timestamp or version metadata, so the same statistics give the same bytes.

    Args:
        stats: the output of `config_statistics`.
        path: where to write the PNG.
        title: the figure title (the configuration name).

    Returns:
        `path`.
    """
    plt = _pyplot()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    split_names = [s["name"] for s in stats["splits"]]
    totals: Counter[str] = Counter()
    for row in stats["per_database"]:
        totals[row["db_id"]] += row["records"]
    dbs = sorted(sorted(totals), key=lambda db: -totals[db])[:MAX_PLOTTED_DATABASES]
    counts = {(row["db_id"], row["split"]): row["records"] for row in stats["per_database"]}
    bottom = [0] * len(dbs)
    for split in split_names:
        heights = [counts.get((db, split), 0) for db in dbs]
        axes[0].bar(range(len(dbs)), heights, bottom=bottom, label=split)
        bottom = [b + h for b, h in zip(bottom, heights, strict=True)]
    axes[0].set_xticks(range(len(dbs)), dbs, rotation=45, ha="right", fontsize=7)
    shown = "" if len(totals) <= MAX_PLOTTED_DATABASES else f" (top {MAX_PLOTTED_DATABASES} of {len(totals)})"
    axes[0].set_title(f"records per database{shown}")
    axes[0].legend(fontsize=7)
    labels = stats["label_counts"]
    axes[1].barh(list(labels), list(labels.values()), color="tab:orange")
    axes[1].set_title(f"records per {stats['label_name']}")
    axes[1].tick_params(axis="y", labelsize=7)
    axes[2].hist(stats["question_lengths"] or [0], bins=20, color="tab:green")
    axes[2].set_title("question length (words)")
    fig.suptitle(title)
    fig.subplots_adjust(left=0.05, right=0.98, bottom=0.25, top=0.85, wspace=0.35)
    return _save(plt, fig, path, dpi=80)


def plot_synthesis_statistics(stats: Mapping[str, Any], path: str | Path) -> Path:
    """Render `synthesis.synthesis_statistics` as a PNG (four panels) for a dataset card.

    Args:
        stats: the dict from `synthesis.synthesis_statistics`.
        path: the PNG file to write (parent folders are created).

    Returns:
        The path written.
    """
    plt = _pyplot()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(2, 2, figsize=(11, 7.5))
    panels = [
        (axes[0][0], stats["difficulty"], "difficulty", "#4c72b0"),
        (axes[0][1], stats["components"], "examples using each SQL component", "#55a868"),
        (axes[1][0], {str(k): v for k, v in stats["tables_per_example"].items()}, "tables per example", "#c44e52"),
        (axes[1][1], dict(list(stats["domains"].items())[:15]), "top domains", "#8172b2"),
    ]
    for ax, data, title, color in panels:
        names, values = list(map(str, data)), list(data.values())
        ax.bar(range(len(values)), values, color=color)
        ax.set_xticks(range(len(values)))
        ax.set_xticklabels(names, rotation=35 if len(names) > 4 else 0, ha="right" if len(names) > 4 else "center")
        ax.set_title(title)
    fig.suptitle(f"{stats['examples']} examples over {stats['databases']} databases")
    fig.tight_layout()
    return _save(plt, fig, path, dpi=110)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(plt, fig, path: Path, *, dpi: int) -> Path:
    """Write the figure as a PNG without timestamp or version metadata (the same figure gives the same bytes)."""
    fig.savefig(path, format="png", dpi=dpi, metadata={"Software": None})
    plt.close(fig)
    return path


def size_category(n: int) -> str:
    """The Hub's `size_categories` bucket for `n` records."""
    for limit, name in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M")):
        if n < limit:
            return name
    return "1M<n<10M"


def _column_rows(kind: str, optional: Sequence[str] = ()) -> list[dict[str, str]]:
    from datasets import Value

    from sense_hub.formats import features

    feats = features(kind, optional)
    rows = []
    for name in [*COLUMNS[kind], *optional]:
        feature = feats[name]
        type_name = feature.dtype if isinstance(feature, Value) else "list of messages (`role`, `content`)"
        rows.append({"name": name, "type": type_name, "help": COLUMN_HELP.get(name, "")})
    return rows


def dataset_card(
    *,
    kind: str,
    configs: list[dict[str, Any]],
    sections: list[dict[str, Any]],
    repo_id: str | None = None,
    pretty_name: str | None = None,
    license: str = DEFAULT_DATASET_LICENSE,
    metadata: Mapping[str, Any] | None = None,
) -> str:
    """Render a dataset card (README.md text) from the template.

    Args:
        kind: "strong", "weak" or "pairs".
        configs: the YAML `configs:` list (`config_name`, `data_files`), already merged with earlier configs.
        sections: one per configuration: `name`, `stats` (from `config_statistics`), `plot` (the PNG's path
            relative to README.md), `provenance` (`models`, `source`, `parameters`, `command`) and `split`
            (`validation_fraction`, `seed`).
        repo_id: the Hub id used in the usage snippet (default `sense/<kind>`).
        pretty_name: the card title.
        license: a Hub license id.
        metadata: earlier YAML metadata to keep (keys other than the ones this function sets are preserved).

    Returns:
        The README.md text: YAML header (license, task_categories, tags, size_categories, configs) and body.
    """
    from huggingface_hub import DatasetCard, DatasetCardData

    if kind not in COLUMNS:
        raise ValueError(f"unknown record kind {kind!r}; expected one of {sorted(COLUMNS)}")
    pretty_name = pretty_name or f"SENSE {kind} text-to-SQL data"
    total = sum(s["records"] for section in sections for s in section["stats"]["splits"])
    extra = dict(metadata or {})
    tags = list(dict.fromkeys([*extra.pop("tags", []), "text-to-sql", "sql", "sense", kind, "synthetic"]))
    for key in ("license", "task_categories", "size_categories", "pretty_name", "configs", "language"):
        extra.pop(key, None)
    card_data = DatasetCardData(
        language=["en"],
        license=license,
        pretty_name=pretty_name,
        task_categories=TASK_CATEGORIES,
        tags=tags,
        size_categories=[size_category(total)],
        configs=configs,
        **extra,
    )
    card = DatasetCard.from_template(
        card_data,
        template_path=str(DATASET_CARD_TEMPLATE),
        pretty_name=pretty_name,
        summary=f"{total} {kind} records for text-to-SQL in {len(sections)} configuration(s), made with "
        "sense-hub following SENSE (Yang et al., ACL 2024).",
        repo_id=repo_id or f"sense/{kind}",
        example_config=sections[0]["name"] if sections else "default",
        kind_description=KIND_DESCRIPTIONS[kind],
        columns=_column_rows(
            kind,
            [
                n
                for n in OPTIONAL_COLUMNS.get(kind, {})
                if any(n in s["stats"].get("optional_columns", []) for s in sections)
            ],
        ),
        sections=sections,
        license=license,
        citations=CITATIONS,
    )
    return str(card)


def eval_summary_to_result(summary: Mapping[str, Any], *, dataset_name: str, dataset_id: str) -> dict[str, Any]:
    """Turn the one-line JSON summary of `sense-hub eval` into a `model_card` result item.

    Args:
        summary: the summary dict; its execution accuracy is read from `execution_accuracy` (or `accuracy`,
            `ex`), a fraction in [0, 1] (a percentage above 1 is divided by 100).
        dataset_name: a readable name ("Spider dev").
        dataset_id: the Hub id or benchmark name ("spider").

    Returns:
        `{"dataset", "dataset_id", "metric": "execution_accuracy", "value"}` (plus `metric_config` with the
        matching semantics when the summary names it).

    Raises:
        ValueError: the summary has no execution accuracy.
    """
    for key in ("execution_accuracy", "accuracy", "ex"):
        if key in summary and isinstance(summary[key], (int, float)) and not isinstance(summary[key], bool):
            value = float(summary[key])
            break
    else:
        raise ValueError(
            f"eval summary has no execution accuracy: expected a number under 'execution_accuracy', got keys "
            f"{sorted(summary)} (pass the last line printed by `sense-hub eval`)"
        )
    if value > 1.0:
        value /= 100.0
    result = {"dataset": dataset_name, "dataset_id": dataset_id, "metric": EX_METRIC, "value": value}
    if isinstance(summary.get("metric"), str):
        result["metric_config"] = summary["metric"]
    result.update(_reproducibility(summary))
    return result


def _reproducibility(summary: Mapping[str, Any]) -> dict[str, Any]:
    """What a card records next to a score so it can be reproduced: budget, fingerprints, predictions repo."""
    out: dict[str, Any] = {}
    run = summary.get("run")
    if isinstance(run, Mapping) and isinstance(run.get("budget"), Mapping) and run["budget"].get("name"):
        out["budget"] = dict(run["budget"])
    fingerprints = summary.get("fingerprints")
    if isinstance(fingerprints, Mapping) and isinstance(fingerprints.get("databases"), Mapping):
        out["fingerprints"] = {
            k: fingerprints[k]
            for k in ("algorithm", "databases", "databases_combined", "predictions", "gold")
            if k in fingerprints
        }
    if isinstance(summary.get("predictions_repo"), str):
        out["predictions_repo"] = summary["predictions_repo"]
        if isinstance(summary.get("predictions_config"), str):
            out["predictions_config"] = summary["predictions_config"]
    return out


def is_hub_id(name: str) -> bool:
    """Whether `name` reads as a Hub repo id (`org/name`) rather than a local path: only those go in the YAML."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    if not name or name.startswith(("/", ".", "~")) or name.count("/") != 1 or Path(name).exists():
        return False
    try:
        validate_repo_id(name)
    except HFValidationError:
        return False
    return True


def model_card(
    *,
    model_name: str,
    base_model: str,
    datasets: list[str],
    recipe: str,
    command: str,
    hyperparameters: Mapping[str, Any],
    results: list[Mapping[str, Any]],
    model_id: str | None = None,
    license: str = DEFAULT_MODEL_LICENSE,
    tags: Sequence[str] = (),
) -> str:
    """Render a model card (README.md text) with a `model-index` of execution accuracy per dataset.

    Args:
        model_name: the model's name (also the `model-index` name).
        base_model: the model it was fine-tuned from; in the YAML `base_model` only when it is a Hub id (a local
            path would fail the Hub's metadata validation), always in the body.
        datasets: the training datasets; Hub ids go in the YAML `datasets`, all of them in the body.
        recipe: "sft", "cdpo", ... (the training stage).
        command: the exact command that trained it.
        hyperparameters: name -> value, shown as a table.
        results: items `{"dataset", "dataset_id", "metric": "execution_accuracy", "value"}` with `value` in
            [0, 1] (see `eval_summary_to_result`), optionally with `budget` (`name` such as "greedy" or "maj@8",
            `description`, `samples_per_question`), `fingerprints` (recorded as the result's `dataset.args`, so
            `sense-hub eval --expect-fingerprints README.md` can check against them) and `predictions_repo` /
            `predictions_config` (the per-question predictions dataset, linked as the result's `source`).
        model_id: the Hub id in the usage snippet (default `model_name`).
        license: a Hub license id.
        tags: extra tags.

    Returns:
        The README.md text. `ModelCard(text).data.eval_results` gives the results back.

    Raises:
        ValueError: a result lacks a field or its value is not a number in [0, 1].
    """
    from huggingface_hub import ModelCard, ModelCardData

    eval_results = _eval_results(results)
    hub_datasets = [d for d in datasets if is_hub_id(d)]
    card_data = ModelCardData(
        model_name=model_name,
        base_model=base_model if is_hub_id(base_model) else None,
        datasets=hub_datasets or None,
        license=license,
        library_name="transformers",
        pipeline_tag="text-generation",
        tags=list(dict.fromkeys(["text-to-sql", "sql", "sense", "trl", recipe, *tags])),
        eval_results=eval_results or None,
    )
    card = ModelCard.from_template(
        card_data,
        template_path=str(MODEL_CARD_TEMPLATE),
        model_name=model_name,
        model_id=model_id or model_name,
        base_model=base_model,
        base_model_url=f"{HUB_URL}/{base_model}",
        hub_url=HUB_URL,
        datasets_list=[{"name": d, "url": f"{HUB_URL}/datasets/{d}" if is_hub_id(d) else None} for d in datasets],
        base_model_is_hub_id=is_hub_id(base_model),
        recipe=recipe,
        command=command,
        hyperparameters=dict(hyperparameters),
        results=[{**r, "metric": r.get("metric", EX_METRIC)} for r in results],
        citations=CITATIONS,
    )
    return str(card)


def command_line(argv: Sequence[str] | None = None) -> str:
    """The command that made a model, as its card shows it: `accelerate launch recipes/<x>.py ...` for a recipe
    (however it was started), this process's command line otherwise."""
    import shlex
    import sys

    argv = list(sys.argv if argv is None else argv)
    script = argv[0] if argv else ""
    if script.endswith(".py") and Path(script).parent.name == "recipes":
        return "accelerate launch " + shlex.join([f"recipes/{Path(script).name}", *argv[1:]])
    return shlex.join(argv)


def write_model_card(
    output_dir: str | Path,
    *,
    base_model: str,
    datasets: list[str],
    recipe: str,
    hyperparameters: Mapping[str, Any],
    results: list[Mapping[str, Any]],
    command: str | None = None,
    sections: Mapping[str, str] | None = None,
    model_name: str | None = None,
    model_id: str | None = None,
    tags: Sequence[str] = (),
) -> Path | None:
    """The one way sense-hub writes a model card: `output_dir/README.md`, on the main process only.

    Renders `model_card` (the command defaults to `command_line()`, the name to the folder's) and puts each of
    `sections` (heading -> markdown) before the citation. Scores measured later go in with `add_results`.

    Returns:
        The card's path, or None on the other processes of a distributed run (they write nothing).
    """
    from sense_hub.terminal import is_main_process

    if not is_main_process():
        return None
    output_dir = Path(output_dir)
    text = model_card(
        model_name=model_name or output_dir.resolve().name or f"sense-{recipe}",
        base_model=base_model,
        datasets=datasets,
        recipe=recipe,
        command=command or command_line(),
        hyperparameters=hyperparameters,
        results=results,
        model_id=model_id,
        tags=tags,
    )
    for heading, body in (sections or {}).items():
        head, mark, tail = text.partition("\n## Citation")
        section = f"\n## {heading}\n\n{body.strip()}\n"
        text = head.rstrip("\n") + "\n" + section + "\n" + mark.lstrip("\n") + tail if mark else text + section
    path = output_dir / "README.md"
    output_dir.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def _eval_results(results: Sequence[Mapping[str, Any]]) -> list[Any]:
    """`model_card` results as huggingface_hub `EvalResult`s (the card's `model-index`), checked."""
    from huggingface_hub import EvalResult

    eval_results = []
    for i, result in enumerate(results, 1):
        missing = [k for k in ("dataset", "dataset_id", "value") if k not in result]
        if missing:
            raise ValueError(f"model_card result {i}: missing field(s) {missing} (got {sorted(result)})")
        value = result["value"]
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0.0 <= value <= 1.0:
            raise ValueError(f"model_card result {i}: 'value' must be a fraction in [0, 1], got {value!r}")
        budget = result.get("budget") or {}
        repo = result.get("predictions_repo")
        eval_results.append(
            EvalResult(
                task_type="text-generation",
                task_name="Text-to-SQL",
                dataset_type=str(result["dataset_id"]),
                dataset_name=str(result["dataset"]),
                dataset_config=result.get("predictions_config") if repo else None,
                dataset_args={"fingerprints": dict(result["fingerprints"])} if result.get("fingerprints") else None,
                metric_type=str(result.get("metric", EX_METRIC)),
                metric_name=f"Execution accuracy ({budget['name']})" if budget.get("name") else "Execution accuracy",
                metric_value=float(value),
                metric_config=result.get("metric_config"),
                metric_args={k: budget[k] for k in ("name", "samples_per_question") if k in budget} or None,
                source_name=f"per-question predictions ({repo})" if repo else None,
                source_url=f"{HUB_URL}/datasets/{repo}" if repo else None,
            )
        )
    return eval_results


def add_results(
    card_path: str | Path,
    results: Sequence[Mapping[str, Any]],
    *,
    section: str,
    body: str,
    base_model: str | None = None,
    datasets: Sequence[str] | None = None,
) -> None:
    """Add scores to a model card written earlier (by `write_model_card`), keeping the rest of it.

    Each result (as in `model_card`) replaces the card's `model-index` entry for the same dataset and metric, or
    is added; the `## {section}` part of the text is replaced by `body` (or appended), so running it again after
    a new score leaves one copy. `base_model` and `datasets`, when given and Hub ids, set the card's metadata (a
    pipeline that publishes its models knows their Hub names only after training).

    Raises:
        ValueError: a result lacks a field or its value is not a number in [0, 1].
    """
    from huggingface_hub import ModelCard

    path = Path(card_path)
    card = ModelCard.load(path)
    new = _eval_results(results)
    keys = {(r.dataset_name, r.metric_type) for r in new}
    kept = [r for r in card.data.eval_results or [] if (r.dataset_name, r.metric_type) not in keys]
    card.data.eval_results = kept + new or None
    card.data.model_name = card.data.model_name or path.parent.name  # the model-index needs a name
    if base_model is not None and is_hub_id(base_model):
        card.data.base_model = base_model
    if datasets is not None and [d for d in datasets if is_hub_id(d)]:
        card.data.datasets = [d for d in datasets if is_hub_id(d)]
    heading = f"## {section}"
    text = _evaluation_table(card.text, card.data.eval_results or [])
    if heading in text:
        start = text.index(heading)
        after = text.find("\n## ", start + len(heading))
        text = text[:start].rstrip() + "\n\n" + (text[after + 1 :] if after != -1 else "")
    card.text = text.rstrip() + f"\n\n{heading}\n\n{body.strip()}\n"
    path.write_text(str(card), encoding="utf-8")


def _evaluation_table(text: str, eval_results: Sequence[Any]) -> str:
    """The card text with its `## Evaluation` table rows rebuilt from the `model-index` (after `add_results`), so
    the table in the text and the metadata say the same; the notes under the table are kept."""
    header = "| dataset | metric | value |\n|---|---|---|\n"
    start = text.find("## Evaluation\n")
    table = text.find(header, start) if start != -1 else -1
    if table == -1 or not eval_results:
        return text
    end = text.find("\n## ", table)
    end = len(text) if end == -1 else end
    rows, notes = [], []
    for r in eval_results:
        budget = (r.metric_args or {}).get("name")
        metric = f"{r.metric_type} ({budget})" if budget else r.metric_type
        rows.append(f"| {r.dataset_name} (`{r.dataset_type}`) | {metric} | {100 * r.metric_value:.2f}% |")
    for line in text[table + len(header) : end].splitlines():
        if line.strip() and not line.startswith("|") and line.strip() != "No evaluation results yet.":
            notes.append(line)
    body = header + "\n".join(rows) + "\n" + ("\n" + "\n".join(notes) + "\n" if notes else "")
    return text[:table] + body + text[end:]


def predictions_card(
    *,
    configs: list[dict[str, Any]],
    sections: list[dict[str, Any]],
    repo_id: str | None = None,
    pretty_name: str | None = None,
    license: str = DEFAULT_DATASET_LICENSE,
    metadata: Mapping[str, Any] | None = None,
) -> str:
    """Render the card (README.md text) of a judged-predictions dataset (`hub.write_predictions_repo`).

    Args:
        configs: the YAML `configs:` list, already merged with earlier configs.
        sections: one `build_info.json` dict per configuration (`config_name`, `benchmark`, `split`, `rows`,
            `correct`, and optionally `model`, `decoding`, `budget`, `summary` with `fingerprints`, `command`).
        repo_id: the Hub id in the usage snippet (default `sense/predictions`).
        pretty_name: the card title.
        license: a Hub license id.
        metadata: earlier YAML metadata to keep.

    Returns:
        The README.md text.
    """
    from huggingface_hub import DatasetCard, DatasetCardData

    pretty_name = pretty_name or (metadata or {}).get("pretty_name") or "Text-to-SQL predictions judged by execution"
    total = sum(int(s.get("rows", 0)) for s in sections)
    extra = dict(metadata or {})
    tags = list(dict.fromkeys([*extra.pop("tags", []), "text-to-sql", "sql", "sense", "predictions", "evaluation"]))
    for key in ("license", "task_categories", "size_categories", "pretty_name", "configs", "language"):
        extra.pop(key, None)
    card_data = DatasetCardData(
        language=["en"],
        license=license,
        pretty_name=pretty_name,
        task_categories=TASK_CATEGORIES,
        tags=tags,
        size_categories=[size_category(total)],
        configs=configs,
        **extra,
    )
    columns = [
        {**row, "help": PREDICTIONS_COLUMN_HELP.get(row["name"], row["help"])} for row in _column_rows("predictions")
    ]
    card = DatasetCard.from_template(
        card_data,
        template_path=str(PREDICTIONS_CARD_TEMPLATE),
        pretty_name=pretty_name,
        repo_id=repo_id or "sense/predictions",
        example_config=sections[0]["config_name"] if sections else "default",
        columns=columns,
        sections=sections,
        total=total,
    )
    return str(card)
