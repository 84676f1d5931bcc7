"""Hub-native datasets and models: write a dataset repo layout, load it back, push it (and model folders).

A dataset repo written here is exactly what the Hub serves and `datasets` reads:

```
<out_dir>/
  README.md                                   card: YAML (license, tags, `configs:`) + body
  statistics-<config>.png                     the plot the card shows
  <config>/train-00000-of-00001.parquet       records cast to `formats.features(kind)`
  <config>/validation-00000-of-00001.parquet  (absent when only one database)
  <config>/build_info.json                    how the config was made (kind, provenance, split)
```

`datasets.load_dataset(str(out_dir), config)` and, once pushed, `load_dataset("ORG/NAME", config)` read it.
Each write replaces one config and keeps the others: the README's `configs:` is loaded, edited and written back,
never rebuilt from scratch (a fresh card over an existing README would wipe the earlier configs). Writes are
deterministic: the same records, config and seed give byte-identical files.
"""

from __future__ import annotations

import json
import logging
import random
import re
import shlex
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from sense_hub import cards
from sense_hub.errors import DatasetRepoError, InputError, UsageError
from sense_hub.formats import COLUMNS, OPTIONAL_DEFAULTS, optional_columns, validate_records
from sense_hub.models import credit_of, hub_model_id
from sense_hub.records import read_jsonl

logger = logging.getLogger(__name__)

SPLITS = ("train", "validation")
BUILD_INFO = "build_info.json"
README = "README.md"
DEFAULT_MAX_SHARD_BYTES = 256 * 1024 * 1024
_CONFIG_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,95}$")


# ---------------------------------------------------------------------------------------------------------------
# Reading records
# ---------------------------------------------------------------------------------------------------------------


def detect_kind(record: Mapping[str, Any]) -> str | None:
    """The record kind whose columns `record` has all of, or None ("pairs" before "weak" before "strong")."""
    for kind in ("pairs", "weak", "strong"):
        if all(name in record for name in COLUMNS[kind]):
            return kind
    return None


# ---------------------------------------------------------------------------------------------------------------
# Splitting and writing
# ---------------------------------------------------------------------------------------------------------------


def split_by_database(
    records: Sequence[Mapping[str, Any]], *, validation_fraction: float = 0.1, seed: int = 0
) -> dict[str, list[dict]]:
    """Split records into train/validation by `db_id`, so no database appears in both.

    The databases are sorted, shuffled with `seed`, and `round(validation_fraction * n_databases)` of them (at
    least one when the fraction is positive) go to validation, always leaving at least one database in train.
    With a single database, validation is empty. Records keep their input order within a split.

    Args:
        records: records with a `db_id` field.
        validation_fraction: share of databases held out, in [0, 1).
        seed: shuffling seed.

    Returns:
        `{"train": [...], "validation": [...]}` (validation may be empty).

    Raises:
        ValueError: `validation_fraction` outside [0, 1).
    """
    if not 0.0 <= validation_fraction < 1.0:
        raise UsageError(f"`validation_fraction` must lie in [0, 1), got {validation_fraction}")
    databases = sorted({r["db_id"] for r in records})
    random.Random(seed).shuffle(databases)
    n_val = 0
    if validation_fraction > 0 and len(databases) > 1:
        n_val = min(max(1, round(validation_fraction * len(databases))), len(databases) - 1)
    held_out = set(databases[:n_val])
    return {
        "train": [dict(r) for r in records if r["db_id"] not in held_out],
        "validation": [dict(r) for r in records if r["db_id"] in held_out],
    }


def check_config_name(config_name: str) -> None:
    if not _CONFIG_NAME.match(config_name) or config_name in (".", ".."):
        raise UsageError(
            f"invalid config name {config_name!r}: use letters, digits, '-', '_' or '.' (e.g. 'grouped-any-limit1')"
        )


def _data_file(config_name: str, split: str, index: int = 0, total: int = 1) -> str:
    return f"{config_name}/{split}-{index:05d}-of-{total:05d}.parquet"


def _shards(records: list[dict], max_shard_bytes: int) -> list[list[dict]]:
    """Contiguous, near-equal shards whose JSON size stays under `max_shard_bytes` (one shard when small)."""
    size = sum(len(json.dumps(r, ensure_ascii=False)) for r in records)
    n = max(1, min(len(records), -(-size // max_shard_bytes)))
    bounds = [round(i * len(records) / n) for i in range(n + 1)]
    return [records[bounds[i] : bounds[i + 1]] for i in range(n)]


def _write_parquet(records: list[dict], *, kind: str, path: Path) -> None:
    """Cast records to the kind's Features and write one parquet file with fixed writer settings."""
    import pyarrow.parquet as pq
    from datasets import Dataset

    from sense_hub.formats import features

    table = Dataset.from_list(records, features=features(kind, optional_columns(kind, records))).data.table
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    pq.write_table(table, tmp, compression="snappy", row_group_size=10_000, write_statistics=True)
    tmp.replace(path)


def _read_parquet(path: Path) -> list[dict]:
    import pyarrow.parquet as pq

    return pq.read_table(path).to_pylist()


def read_card_metadata(repo_dir: str | Path) -> dict[str, Any]:
    """The YAML metadata of `<repo_dir>/README.md` as a dict ({} when there is no README)."""
    readme = Path(repo_dir) / README
    if not readme.is_file():
        return {}
    from huggingface_hub import DatasetCard

    return DatasetCard.load(readme).data.to_dict()


def known_configs(repo_dir: str | Path) -> list[str]:
    """The config names listed in the README `configs:` of a dataset repo folder."""
    return [c["config_name"] for c in read_card_metadata(repo_dir).get("configs", []) or []]


def _merge_configs(existing: list[dict], entry: dict) -> list[dict]:
    merged, replaced = [], False
    for config in existing:
        if config.get("config_name") == entry["config_name"]:
            merged.append(entry)
            replaced = True
        else:
            merged.append(config)
    if not replaced:
        merged.append(entry)
    return merged


def _provenance(card: Mapping[str, Any] | None, records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    card = dict(card or {})
    models = card.get("models")
    if models is None:
        models = sorted({str(r.get("generator", "")) for r in records} - {""})[:20]
    hub_ids = list(dict.fromkeys(hub_model_id(str(m)) for m in models))  # "embedded" -> its Hub id
    provenance = {
        "models": hub_ids,
        "credits": [credit for credit in map(credit_of, hub_ids) if credit],
        "source": card.get("source", ""),
        "parameters": dict(card.get("parameters", {})),
        "command": card.get("command", ""),
    }
    if card.get("checks"):  # counts of checks run while building (gold_suspect dropped, contamination)
        provenance["checks"] = dict(card["checks"])
    return provenance


def write_dataset_repo(
    records: Iterable[Mapping[str, Any]],
    *,
    kind: str,
    out_dir: str | Path,
    config_name: str = "default",
    validation_fraction: float = 0.1,
    seed: int = 0,
    card: Mapping[str, Any] | None = None,
    source: str = "records",
    max_shard_bytes: int = DEFAULT_MAX_SHARD_BYTES,
    db_root: str | Path | None = None,
) -> Path:
    """Write (or update one config of) a Hub dataset repo folder.

    Args:
        records: strong, weak or pairs records (see `sense_hub.formats`).
        kind: "strong", "weak" or "pairs".
        out_dir: the repo folder; earlier configs in it are kept.
        config_name: the config to write ("default", or e.g. a pairs preset such as "grouped-any-limit1").
        validation_fraction: share of databases held out for validation (split by `db_id`).
        seed: split seed.
        card: provenance for the card: `models` (list), `source` (str), `parameters` (dict), `command` (str),
            and optionally `pretty_name`, `license`, `repo_id` (used in the card's usage snippet).
        source: how to name the records in validation errors (e.g. the input file's path).
        max_shard_bytes: a split larger than this (as JSON) is written as several parquet shards.
        db_root: the databases folder (`<db_id>/<db_id>.sqlite`); the sha256 of each database the records refer
            to goes in the card and `build_info.json` (`provenance.databases`; `sense_hub.fingerprints`).

    Returns:
        `out_dir`.

    Raises:
        RecordError: a record lacks a field or has a wrong type (names the record and the field).
        ValueError: no records, an invalid config name, or a folder holding another kind of data.
    """
    out_dir = Path(out_dir)
    check_config_name(config_name)
    if kind not in COLUMNS:
        raise ValueError(f"unknown record kind {kind!r}; expected one of {sorted(COLUMNS)}")
    rows = validate_records(kind, records, source=source)
    optional = optional_columns(kind, rows)  # every split and shard gets the same columns
    rows = [{**r, **{name: r.get(name, OPTIONAL_DEFAULTS[name]) for name in optional}} for r in rows]
    if not rows:
        raise UsageError(f"{source}: no records to write; the {kind} dataset would be empty")
    splits = split_by_database(rows, validation_fraction=validation_fraction, seed=seed)

    metadata = read_card_metadata(out_dir)
    for name in [c["config_name"] for c in metadata.get("configs", []) or []]:
        info_path = out_dir / name / BUILD_INFO
        if name != config_name and info_path.is_file():
            other = json.loads(info_path.read_text(encoding="utf-8")).get("kind")
            if other != kind:
                raise UsageError(
                    f"{out_dir} holds {other} data (config {name!r}); write {kind} records to another folder"
                )

    config_dir = out_dir / config_name
    config_dir.mkdir(parents=True, exist_ok=True)
    for stale in config_dir.glob("*.parquet"):
        stale.unlink()
    data_files = []
    for split in SPLITS:
        if not splits[split]:
            continue
        shards = _shards(splits[split], max_shard_bytes)
        paths = [_data_file(config_name, split, i, len(shards)) for i in range(len(shards))]
        for shard, path in zip(shards, paths, strict=True):
            _write_parquet(shard, kind=kind, path=out_dir / path)
        data_files.append({"split": split, "path": paths[0] if len(paths) == 1 else paths})
    provenance = _provenance(card, rows)
    if db_root is not None:
        provenance["databases"] = record_database_fingerprints(rows, db_root=db_root)
    build_info = {
        "kind": kind,
        "config_name": config_name,
        "provenance": provenance,
        "split": {"by": "db_id", "validation_fraction": validation_fraction, "seed": seed},
    }
    (config_dir / BUILD_INFO).write_text(
        json.dumps(build_info, indent=2, sort_keys=True, default=str) + "\n", encoding="utf-8"
    )

    configs = _merge_configs(
        list(metadata.get("configs", []) or []), {"config_name": config_name, "data_files": data_files}
    )
    write_dataset_card(out_dir, kind=kind, configs=configs, metadata=metadata, card=card, rerender=[config_name])
    logger.info(
        "wrote %s config %r to %s (%d train, %d validation records)",
        kind,
        config_name,
        out_dir,
        len(splits["train"]),
        len(splits["validation"]),
    )
    return out_dir


def record_database_fingerprints(records: Iterable[Mapping[str, Any]], *, db_root: str | Path) -> dict[str, str]:
    """sha256 of `<db_root>/<db_id>/<db_id>.sqlite` for every `db_id` the records name that exists there.

    Keys are the paths relative to `db_root` (what `sense-hub eval` summaries use). LLM-made domains whose
    database is only a schema in the record have no file and are left out.
    """
    from sense_hub.fingerprints import database_fingerprints

    root = Path(db_root)
    db_ids = sorted({str(r.get("db_id", "")) for r in records} - {""})
    paths = [root / db_id / f"{db_id}.sqlite" for db_id in db_ids if "/" not in db_id and db_id not in (".", "..")]
    return database_fingerprints(paths, root=root)


def write_dataset_card(
    out_dir: Path,
    *,
    kind: str,
    configs: list[dict],
    metadata: Mapping[str, Any] | None = None,
    card: Mapping[str, Any] | None = None,
    rerender: Iterable[str] = (),
) -> Path:
    """(Re)write README.md, and the statistics plots of the configs in `rerender` (and of any missing one)."""
    rerender = set(rerender)
    card = dict(card or {})
    sections = []
    for config in configs:
        name = config["config_name"]
        splits: dict[str, list[dict]] = {}
        data_files = config.get("data_files", [])
        if isinstance(data_files, str):
            data_files = [{"split": "train", "path": data_files}]
        for entry in data_files:
            paths = entry["path"] if isinstance(entry["path"], list) else [entry["path"]]
            files = [out_dir / p for p in paths]
            if not all(f.is_file() for f in files):
                logger.warning(
                    "config %r: data files %s are not in %s; left out of the card body", name, paths, out_dir
                )
                splits = {}
                break
            splits[entry["split"]] = [row for f in files for row in _read_parquet(f)]
        if not splits:
            continue
        info_path = out_dir / name / BUILD_INFO
        info = json.loads(info_path.read_text(encoding="utf-8")) if info_path.is_file() else {}
        stats = cards.config_statistics(kind, splits)
        plot = f"statistics-{name}.png"
        if name in rerender or not (out_dir / plot).is_file():
            cards.render_statistics_plot(stats, path=out_dir / plot, title=f"{kind} / {name}")
        sections.append(
            {
                "name": name,
                "stats": stats,
                "plot": plot,
                "provenance": info.get("provenance", _provenance({}, [])),
                "split": info.get("split", {"validation_fraction": "?", "seed": "?"}),
            }
        )
    metadata = dict(metadata or {})
    text = cards.dataset_card(
        kind=kind,
        configs=configs,
        sections=sections,
        repo_id=card.get("repo_id"),
        pretty_name=card.get("pretty_name") or metadata.get("pretty_name"),
        license=card.get("license") or metadata.get("license") or cards.DEFAULT_DATASET_LICENSE,
        metadata=metadata,
    )
    readme = out_dir / README
    readme.write_text(text, encoding="utf-8")
    return readme


# ---------------------------------------------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------------------------------------------


def load_local(repo_dir: str | Path, config_name: str, *, split: str | None = None):
    """`datasets.load_dataset` on a local dataset repo folder, with a clear error for an unknown config.

    Reads the config's data files exactly as the README `configs:` lists them (what `load_dataset(str(repo_dir),
    config_name)` and the Hub do), keyed in the cache by their absolute paths.

    Raises:
        DatasetRepoError: no README.md with `configs:` in `repo_dir`, or `config_name` is not one of them.
    """
    repo_dir = Path(repo_dir)
    if not (repo_dir / README).is_file():
        raise DatasetRepoError(
            f"{repo_dir} is not a dataset repo folder: no {README} (write one with write_dataset_repo)"
        )
    names = known_configs(repo_dir)
    if config_name not in names:
        raise DatasetRepoError(f"unknown config {config_name!r} in {repo_dir}; known configs: {names}")
    from datasets import load_dataset

    # datasets 5.2 keys the cache of a local repo folder by its basename, config and relative data files, so two
    # folders named alike (e.g. two runs' `datasets/pairs`) would share a cache entry. Loading the config's
    # parquet files by absolute path keys the cache by those paths and their mtimes instead.
    config = next(c for c in read_card_metadata(repo_dir)["configs"] if c["config_name"] == config_name)
    entries = config.get("data_files", [])
    if isinstance(entries, str):
        entries = [{"split": "train", "path": entries}]
    data_files = {
        e["split"]: [
            str((repo_dir / p).resolve()) for p in (e["path"] if isinstance(e["path"], list) else [e["path"]])
        ]
        for e in entries
    }
    return load_dataset("parquet", data_files=data_files, split=split)


def load_from_hub(repo_id: str, config_name: str, *, split: str | None = None, revision: str | None = None):
    """`datasets.load_dataset(repo_id, config_name)` with the repo id and config checked first.

    Raises:
        ValueError: an invalid repo id (before any network call).
        DatasetRepoError: the repo's README.md has no `configs:` entry named `config_name` (lists the known ones).
    """
    check_repo_id(repo_id)
    from huggingface_hub import DatasetCard, hf_hub_download

    card = DatasetCard.load(hf_hub_download(repo_id, README, repo_type="dataset", revision=revision))
    names = [c["config_name"] for c in card.data.to_dict().get("configs", []) or []]
    if config_name not in names:
        raise DatasetRepoError(f"unknown config {config_name!r} in {repo_id}; known configs: {names}")
    from datasets import load_dataset

    return load_dataset(repo_id, config_name, split=split, revision=revision)


# ---------------------------------------------------------------------------------------------------------------
# Pushing
# ---------------------------------------------------------------------------------------------------------------


def check_repo_id(repo_id: str) -> str:
    """Validate a Hub repo id of the form ORG/NAME before any network call.

    Raises:
        ValueError: the id is not `namespace/name` with allowed characters.
    """
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(repo_id)
    except HFValidationError as err:
        raise UsageError(f"invalid Hub repo id {repo_id!r}: {err} Use the form ORG/NAME, e.g. 'sense/pairs'.") from err
    if repo_id.count("/") != 1:
        raise UsageError(f"invalid Hub repo id {repo_id!r}: use the form ORG/NAME, e.g. 'sense/pairs'")
    return repo_id


def _local_files(local_dir: Path) -> list[str]:
    return sorted(
        p.relative_to(local_dir).as_posix()
        for p in local_dir.rglob("*")
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(local_dir).parts)
    )


def _merge_remote_readme(api, *, repo_id: str, revision: str, local_readme: str) -> str:
    """Keep configs that exist only on the remote in the README's `configs:` (never wipe earlier configs)."""
    from huggingface_hub import DatasetCard
    from huggingface_hub.errors import EntryNotFoundError

    try:
        remote_path = api.hf_hub_download(repo_id, README, repo_type="dataset", revision=revision)
    except EntryNotFoundError:
        return local_readme
    remote_configs = DatasetCard.load(remote_path).data.to_dict().get("configs", []) or []
    local = DatasetCard(local_readme)
    local_configs = list(getattr(local.data, "configs", None) or [])
    names = {c["config_name"] for c in local_configs}
    extra = [c for c in remote_configs if c.get("config_name") not in names]
    if not extra:
        return local_readme
    local.data.configs = local_configs + extra
    logger.info("kept remote-only configs %s in %s", [c["config_name"] for c in extra], repo_id)
    return str(local)


def push_dataset_repo(
    local_dir: str | Path,
    *,
    repo_id: str,
    private: bool = False,
    revision: str | None = None,
    commit_message: str | None = None,
) -> str:
    """Push a dataset repo folder to the Hub in one atomic commit.

    Unchanged files are not re-uploaded, and when nothing changed no commit is made. Files under the pushed
    configs' folders that are no longer local are deleted remotely; configs that exist only remotely are kept
    (files and their `configs:` entry). A failed upload or commit leaves the remote repo as it was.

    Args:
        local_dir: a folder written by `write_dataset_repo`.
        repo_id: `ORG/NAME`.
        private: create the repo private (an existing repo keeps its visibility).
        revision: the branch to push to (created from main when missing); default main.
        commit_message: default "Update <configs> with sense-hub".

    Returns:
        The commit id the remote branch points to after the push.

    Raises:
        ValueError: invalid repo id (before any network call) or a folder without README.md.
    """
    check_repo_id(repo_id)
    local_dir = Path(local_dir)
    if not (local_dir / README).is_file():
        raise DatasetRepoError(
            f"{local_dir} is not a dataset repo folder: no {README} (write it with write_dataset_repo)"
        )
    from huggingface_hub import CommitOperationAdd, CommitOperationDelete, HfApi

    api = HfApi()
    api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
    branch = revision or "main"
    if revision is not None and revision != "main":
        api.create_branch(repo_id, repo_type="dataset", branch=revision, exist_ok=True)
    remote_files = set(api.list_repo_files(repo_id, repo_type="dataset", revision=branch))

    local_files = _local_files(local_dir)
    readme = (local_dir / README).read_text(encoding="utf-8")
    if README in remote_files:
        readme = _merge_remote_readme(api, repo_id=repo_id, revision=branch, local_readme=readme)
    local_configs = {path.split("/", 1)[0] for path in local_files if "/" in path}
    operations: list = []
    for path in local_files:
        content = readme.encode("utf-8") if path == README else local_dir / path
        operations.append(CommitOperationAdd(path_in_repo=path, path_or_fileobj=content))
    for path in sorted(remote_files - set(local_files)):
        if "/" in path and path.split("/", 1)[0] in local_configs:
            operations.append(CommitOperationDelete(path_in_repo=path))
    message = commit_message or f"Update {', '.join(sorted(local_configs)) or 'dataset'} with sense-hub"
    info = api.create_commit(
        repo_id, repo_type="dataset", operations=operations, commit_message=message, revision=branch
    )
    logger.info("pushed %s to %s@%s: %s", local_dir, repo_id, branch, info.oid)
    return info.oid


def push_model_folder(
    local_dir: str | Path,
    *,
    repo_id: str,
    private: bool = False,
    revision: str | None = None,
    commit_message: str | None = None,
) -> str:
    """Push a model folder (weights, tokenizer, README.md card) to the Hub in one commit.

    Training checkpoints (`checkpoint-*/`) and hidden files are left out. Unchanged files are not re-uploaded;
    when nothing changed no commit is made.

    Returns:
        The commit id the remote branch points to after the push.

    Raises:
        ValueError: invalid repo id (before any network call) or `local_dir` is not a folder.
    """
    check_repo_id(repo_id)
    local_dir = Path(local_dir)
    if not local_dir.is_dir():
        raise UsageError(f"model folder {local_dir} does not exist: pass the folder a training run wrote")
    from huggingface_hub import HfApi

    api = HfApi()
    api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
    branch = revision or "main"
    if revision is not None and revision != "main":
        api.create_branch(repo_id, repo_type="model", branch=revision, exist_ok=True)
    info = api.upload_folder(
        repo_id=repo_id,
        folder_path=local_dir,
        repo_type="model",
        revision=branch,
        commit_message=commit_message or "Upload model with sense-hub",
        ignore_patterns=["checkpoint-*", "checkpoint-*/**", ".*", "**/.*", "runs/**"],
    )
    logger.info("pushed %s to %s@%s: %s", local_dir, repo_id, branch, info.oid)
    return info.oid


# ---------------------------------------------------------------------------------------------------------------
# Predictions datasets (`dataset_scripts/build_predictions.py`, `sense-hub eval --push-to-hub`)
# ---------------------------------------------------------------------------------------------------------------


SPLIT_NAME = re.compile(r"^\w+(\.\w+)*$")


def predictions_config_name(benchmark: str, split: str) -> str:
    """The config of a benchmark split in a predictions repo: `<benchmark>-<split>` (e.g. `spider-dev`)."""
    return f"{benchmark}-{split}"


def prediction_rows(rows: Iterable[Mapping[str, Any]]) -> list[dict]:
    """`sense-hub eval --output` rows as predictions records (`formats.PREDICTIONS_COLUMNS`).

    A row without `question_id` gets its 0-based line index, one without `question` an empty string (Spider-style
    text files carry neither).
    """
    from sense_hub.formats import PREDICTIONS_COLUMNS

    out = []
    for i, row in enumerate(rows):
        record = {name: row.get(name) for name in PREDICTIONS_COLUMNS}
        if record["question_id"] is None:
            record["question_id"] = str(i)
        record["question_id"] = str(record["question_id"])
        for name in ("db_id", "question", "gold", "pred"):
            if record[name] is None:
                record[name] = ""
        out.append(record)
    return out


def write_predictions_repo(
    rows: Iterable[Mapping[str, Any]],
    *,
    out_dir: str | Path,
    benchmark: str,
    split: str,
    info: Mapping[str, Any] | None = None,
    repo_id: str | None = None,
    source: str = "predictions",
) -> Path:
    """Write (or replace one config of) a dataset repo of judged predictions, one config per benchmark and split.

    The config `<benchmark>-<split>` holds one parquet split named `split` with the columns
    `question_id, db_id, question, gold, pred, correct, error`; `<config>/build_info.json` and the card hold `info`
    (the model, decoding settings, budget, the eval summary and its fingerprints, the command). Other configs in
    `out_dir` are kept.

    Args:
        rows: `sense-hub eval --output` rows (see `prediction_rows`).
        out_dir: the repo folder.
        benchmark: e.g. "spider".
        split: e.g. "dev" (a Hub split name: letters, digits, `_`).
        info: `model`, `decoding` (dict), `budget`, `summary` (the eval summary, with `fingerprints`), `command`.
        repo_id: the Hub id used in the card's usage snippet.
        source: how to name the rows in validation errors.

    Returns:
        `out_dir`.

    Raises:
        RecordError: a row lacks a field or has a wrong type.
        ValueError: no rows, or an invalid benchmark or split name.
    """
    out_dir = Path(out_dir)
    config_name = predictions_config_name(benchmark, split)
    check_config_name(config_name)
    if not SPLIT_NAME.match(split):
        raise UsageError(f"invalid split name {split!r}: use letters, digits and '_' (e.g. 'dev', 'test')")
    records = validate_records("predictions", prediction_rows(rows), source=source)
    if not records:
        raise InputError(f"{source}: no predictions to write")
    metadata = read_card_metadata(out_dir)
    config_dir = out_dir / config_name
    config_dir.mkdir(parents=True, exist_ok=True)
    for stale in config_dir.glob("*.parquet"):
        stale.unlink()
    path = _data_file(config_name, split)
    _write_parquet(records, kind="predictions", path=out_dir / path)
    build_info = {
        "kind": "predictions",
        "config_name": config_name,
        "benchmark": benchmark,
        "split": split,
        "rows": len(records),
        "correct": sum(r["correct"] for r in records),
        **dict(info or {}),
    }
    (config_dir / BUILD_INFO).write_text(
        json.dumps(build_info, indent=2, sort_keys=True, default=str) + "\n", encoding="utf-8"
    )
    configs = _merge_configs(
        list(metadata.get("configs", []) or []),
        {"config_name": config_name, "data_files": [{"split": split, "path": path}]},
    )
    sections = []
    for config in configs:
        info_path = out_dir / config["config_name"] / BUILD_INFO
        if info_path.is_file():
            sections.append(json.loads(info_path.read_text(encoding="utf-8")))
    text = cards.predictions_card(configs=configs, sections=sections, repo_id=repo_id, metadata=metadata)
    (out_dir / README).write_text(text, encoding="utf-8")
    logger.info("wrote predictions config %r to %s (%d rows)", config_name, out_dir, len(records))
    return out_dir


def build_predictions(
    *,
    input_path: str | Path,
    output_dir: str | Path,
    benchmark: str,
    split: str = "dev",
    summary_path: str | Path | None = None,
    model: str | None = None,
    push_to_hub: str | None = None,
    private: bool = False,
    revision: str | None = None,
    command: str | None = None,
) -> dict[str, Any]:
    """Read `sense-hub eval --output` rows, write the predictions repo folder (one config), optionally push it.

    Args:
        input_path: the judged rows JSONL (`sense-hub eval --output OUT.jsonl`).
        output_dir: the dataset repo folder.
        benchmark, split: name the config `<benchmark>-<split>`.
        summary_path: the eval summary JSON (its last line is used), for the card's score and fingerprints.
        model: the model that wrote the predictions (default: the summary's `run.model`).
        push_to_hub, private, revision: see `push_dataset_repo`.
        command: the command recorded in the card (default: this process's argv).

    Returns:
        `{"output_dir", "config_name", "records", "commit"}`.

    Raises:
        ValueError: bad arguments or rows (naming the file, line and field).
    """
    if push_to_hub is not None:
        check_repo_id(push_to_hub)
    input_path = Path(input_path)
    rows = read_jsonl(input_path)
    if rows and "correct" not in rows[0]:
        raise InputError(
            f"{input_path} line 1 has no `correct` field: pass the rows `sense-hub eval --output OUT.jsonl` wrote, "
            "not the predictions themselves"
        )
    info: dict[str, Any] = {"command": command if command is not None else shlex.join(sys.argv)}
    if summary_path is not None:
        lines = [line for line in Path(summary_path).read_text(encoding="utf-8").splitlines() if line.strip()]
        try:
            summary = json.loads(lines[-1]) if lines else None
        except json.JSONDecodeError:
            summary = None
        if not isinstance(summary, dict):
            raise InputError(f"{summary_path}: expected the JSON summary line `sense-hub eval` prints last")
        info.update(predictions_info(summary))
    if model is not None:
        info["model"] = model
    write_predictions_repo(
        rows,
        out_dir=output_dir,
        benchmark=benchmark,
        split=split,
        info=info,
        repo_id=push_to_hub,
        source=str(input_path),
    )
    commit = None
    if push_to_hub is not None:
        commit = push_dataset_repo(output_dir, repo_id=push_to_hub, private=private, revision=revision)
    return {
        "output_dir": str(output_dir),
        "config_name": predictions_config_name(benchmark, split),
        "records": len(rows),
        "commit": commit,
    }


def predictions_info(summary: Mapping[str, Any]) -> dict[str, Any]:
    """The card fields of a predictions config from an eval summary: `model`, `decoding`, `budget`, `summary`."""
    run = dict(summary.get("run") or {})
    info: dict[str, Any] = {"summary": {k: v for k, v in summary.items() if k not in ("run",)}}
    for key in ("model", "decoding", "budget"):
        if run.get(key) is not None:
            info[key] = run[key]
    return info
