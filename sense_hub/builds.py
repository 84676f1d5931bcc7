"""Dataset builds: the logic of `dataset_scripts/build_{strong,weak,pairs}.py` (their arguments, the build, the
`build_config-<config>.yaml` that makes a published dataset rebuildable); `sense_hub.hub` writes and pushes the repo.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import shlex
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sense_hub.errors import InputError, UsageError
from sense_hub.formats import validate_records
from sense_hub.hub import check_config_name, check_repo_id, detect_kind, push_dataset_repo, write_dataset_repo
from sense_hub.records import read_jsonl

logger = logging.getLogger(__name__)


def build_dataset(
    kind: str,
    *,
    input_path: str | Path,
    output_dir: str | Path,
    config_name: str | None = None,
    validation_fraction: float = 0.1,
    seed: int = 0,
    push_to_hub: str | None = None,
    private: bool = False,
    revision: str | None = None,
    preset: str | None = None,
    db_root: str | Path | None = None,
    command: str | None = None,
    card: Mapping[str, Any] | None = None,
    drop_gold_suspect: bool = False,
    build_config: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Read records, write the dataset repo folder (one config), and optionally push it.

    For `kind="pairs"`, the input may be pairs records (published as they are) or labelled weak records, which
    are turned into pairs with `sense_hub.pairs.build_pairs` and the preset `preset` (the config name defaults
    to the preset's name).

    Args:
        kind: "strong", "weak" or "pairs".
        input_path: the records JSONL.
        output_dir: the dataset repo folder.
        config_name: default "default" (or the preset name for pairs built from weak records).
        validation_fraction, seed: the by-database split.
        push_to_hub: `ORG/NAME` to push to after writing.
        private, revision: see `push_dataset_repo`.
        preset: a `sense_hub.pairs.PRESETS` name (pairs from weak records only).
        db_root: the databases folder (`<db_id>/<db_id>.sqlite`), needed to build pairs' prompts; the sha256
            of the databases the records refer to go in the card.
        command: the command line recorded in the card (default: this process's argv).
        card: extra card fields (`models`, `source`, `parameters`, `pretty_name`, `license`).
        drop_gold_suspect: pairs from weak records only: leave out the questions marked `gold_suspect`.
        build_config: the build script's arguments that determine the files (`build_config_of`); written as
            `build_config-<config>.yaml` next to the card, and the card's command becomes the rebuild command.
            For strong records, a `<input stem>.contamination.json` next to the input (written by
            `sense-hub synthesize --decontaminate`) puts its counts in the card.

    Returns:
        `{"output_dir", "config_name", "records", "commit"}` (commit is None without `push_to_hub`).

    Raises:
        ValueError: bad arguments or records (naming the file, record and field).
    """
    if push_to_hub is not None:
        check_repo_id(push_to_hub)  # fail before doing any work
    input_path = Path(input_path)
    records = read_jsonl(input_path)
    if not records:
        raise UsageError(f"{input_path}: no records")
    card = dict(card or {})
    parameters = dict(card.get("parameters", {}))
    found = detect_kind(records[0])
    # with --preset, records that are not pairs are meant as weak records (so a missing weak field is named)
    if kind == "pairs" and (found == "weak" or (preset is not None and found != "pairs")):
        if preset is None:
            raise UsageError(f"{input_path} holds weak records: pass --preset (a pairs preset) to build pairs")
        if db_root is None:
            raise UsageError("building pairs from weak records needs --db-root (the databases folder)")
        from sense_hub.pairs import PRESETS, build_pairs

        if preset not in PRESETS:
            raise UsageError(f"unknown pairs preset {preset!r}; known presets: {sorted(PRESETS)}")
        weak = validate_records("weak", records, source=str(input_path))
        pair_config = dataclasses.replace(PRESETS[preset], drop_gold_suspect=drop_gold_suspect)
        records, pair_stats = build_pairs(weak, config=pair_config, db_root=Path(db_root))
        parameters.update({"preset": preset, **dataclasses.asdict(pair_config)})
        if drop_gold_suspect:
            checks = card.setdefault("checks", {})
            checks["questions_dropped_gold_suspect"] = pair_stats["questions_dropped_gold_suspect"]
        card.setdefault("models", sorted({r["generator"] for r in weak}))
        logger.info("built %d pairs from %d weak records (%s)", len(records), len(weak), pair_stats)
        config_name = config_name or preset
    elif preset is not None and kind == "pairs":
        logger.warning("%s already holds pairs: --preset %s is ignored", input_path, preset)
    config_name = config_name or "default"
    parameters.update({"validation_fraction": validation_fraction, "seed": seed})
    card["parameters"] = parameters
    card.setdefault("source", input_path.name)
    if kind == "strong":
        _add_contamination_report(card, input_path)
    if command is None and build_config is not None:
        command = rebuild_command(kind, config_name)
    card["command"] = command if command is not None else " ".join(shlex.quote(a) for a in sys.argv)
    if push_to_hub is not None:
        card.setdefault("repo_id", push_to_hub)
    write_dataset_repo(
        records,
        kind=kind,
        out_dir=output_dir,
        config_name=config_name,
        validation_fraction=validation_fraction,
        seed=seed,
        card=card,
        source=str(input_path),
        db_root=db_root,
    )
    if build_config is not None:
        write_build_config(output_dir, kind, config_name, build_config)
    commit = None
    if push_to_hub is not None:
        commit = push_dataset_repo(output_dir, repo_id=push_to_hub, private=private, revision=revision)
    return {"output_dir": str(output_dir), "config_name": config_name, "records": len(records), "commit": commit}


BUILD_CONFIG_PATTERN = "build_config-{config_name}.yaml"
_NOT_IN_BUILD_CONFIG = ("output_dir", "push_to_hub", "private", "revision")  # where it goes, not what it is


def build_config_file(config_name: str) -> str:
    """The name of the YAML, next to the card, holding the arguments that built `config_name`."""
    return BUILD_CONFIG_PATTERN.format(config_name=config_name)


def rebuild_command(kind: str, config_name: str) -> str:
    """The command (recorded in the card) that rebuilds a config byte for byte from its build-config YAML."""
    return f"python dataset_scripts/build_{kind}.py --config {build_config_file(config_name)} --output_dir <folder>"


def file_sha256(path: str | Path) -> str:
    """sha256 of a file's bytes (read in 1 MiB blocks)."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_build_config(out_dir: str | Path, kind: str, config_name: str, build_config: Mapping[str, Any]) -> Path:
    """Write `build_config-<config>.yaml` (sorted keys, so the same arguments give the same bytes)."""
    import yaml

    path = Path(out_dir) / build_config_file(config_name)
    header = (
        f"# The arguments that built config {config_name!r} of this {kind} dataset. Rebuild it byte for byte with\n"
        f"#   {rebuild_command(kind, config_name)}\n"
    )
    path.write_text(header + yaml.safe_dump(dict(build_config), sort_keys=True, allow_unicode=True), encoding="utf-8")
    return path


def _add_contamination_report(card: dict, input_path: Path) -> None:
    from sense_hub.contamination import report_path

    report = report_path(input_path)
    if report.is_file():
        counts = json.loads(report.read_text(encoding="utf-8"))
        counts["benchmark"] = Path(str(counts.get("benchmark", ""))).name or str(counts.get("benchmark", ""))
        card.setdefault("checks", {})["contamination"] = counts


@dataclasses.dataclass
class DatasetBuildArguments:
    """Arguments of `dataset_scripts/build_{strong,weak}.py` (YAML keys under `--config` use the same names)."""

    input: str = dataclasses.field(metadata={"help": "The records JSONL written by the previous stage."})
    output_dir: str = dataclasses.field(metadata={"help": "The dataset repo folder to write (other configs kept)."})
    config_name: str | None = dataclasses.field(
        default=None, metadata={"help": "The config to write (default 'default'; for pairs, the preset's name)."}
    )
    validation_fraction: float = dataclasses.field(
        default=0.1, metadata={"help": "Share of databases held out for validation (split by db_id), in [0, 1)."}
    )
    seed: int = dataclasses.field(default=0, metadata={"help": "Seed of the by-database split."})
    push_to_hub: str | None = dataclasses.field(default=None, metadata={"help": "ORG/NAME to push the folder to."})
    private: bool = dataclasses.field(default=False, metadata={"help": "Create the Hub repo private."})
    revision: str | None = dataclasses.field(default=None, metadata={"help": "Branch to push to (default main)."})
    repo_id: str | None = dataclasses.field(
        default=None, metadata={"help": "The Hub id the card's usage snippet names (default: --push_to_hub)."}
    )
    input_sha256: str | None = dataclasses.field(
        default=None,
        metadata={"help": "Refuse to build unless the input has this sha256 (set in the build-config YAML)."},
    )
    db_root: str | None = dataclasses.field(
        default=None,
        metadata={
            "help": "Databases folder (<db_id>/<db_id>.sqlite): the sha256 of each one the records use go in the card."
        },
    )

    def __post_init__(self):
        if not 0.0 <= self.validation_fraction < 1.0:
            raise UsageError(f"`validation_fraction` must lie in [0, 1), got {self.validation_fraction}")
        if self.config_name is not None:
            check_config_name(self.config_name)
        if self.push_to_hub is not None:
            check_repo_id(self.push_to_hub)


@dataclasses.dataclass
class PairsBuildArguments(DatasetBuildArguments):
    """Arguments of `dataset_scripts/build_pairs.py`: pairs records, or weak records plus a preset."""

    preset: str | None = dataclasses.field(
        default=None,
        metadata={
            "help": "Pairs preset (sense_hub.pairs.PRESETS, e.g. grouped-any-limit1) to build pairs from weak records."
        },
    )
    db_root: str | None = dataclasses.field(
        default=None, metadata={"help": "Databases folder (<db_id>/<db_id>.sqlite), to build pairs from weak records."}
    )
    drop_gold_suspect: bool = dataclasses.field(
        default=False, metadata={"help": "Leave out questions the weak records mark gold_suspect (label noise)."}
    )


def build_config_of(args: DatasetBuildArguments) -> dict[str, Any]:
    """The arguments that determine a build's files (not where they go), with `repo_id` and the input's sha256."""
    config = {f.name: getattr(args, f.name) for f in dataclasses.fields(args) if f.name not in _NOT_IN_BUILD_CONFIG}
    config["repo_id"] = args.repo_id or args.push_to_hub
    config["input_sha256"] = file_sha256(args.input)
    return config


def build_from_arguments(kind: str, args: DatasetBuildArguments, *, command: str | None = None) -> dict[str, Any]:
    """Run `build_dataset` with the parsed arguments of a build script, and record them next to the card.

    The dataset repo gets `build_config-<config>.yaml` (`build_config_of`), so `build_<kind>.py --config` on it
    rebuilds the same files byte for byte (given the same input, checked by its sha256).

    Raises:
        InputError: `input_sha256` is set and the input's differs.
    """

    # a missing input gets build_dataset's own error
    build_config = build_config_of(args) if Path(args.input).is_file() else None
    if build_config and args.input_sha256 and args.input_sha256 != build_config["input_sha256"]:
        raise InputError(
            f"--input {args.input}: sha256 {build_config['input_sha256'][:12]}... differs from input_sha256 "
            f"{args.input_sha256[:12]}... in the build config: this is not the input that built the dataset; "
            "pass the original input, or drop input_sha256 to build from this one"
        )
    repo_id = args.repo_id or args.push_to_hub
    card = {"repo_id": repo_id} if repo_id else None
    return build_dataset(
        kind,
        input_path=args.input,
        output_dir=args.output_dir,
        config_name=args.config_name,
        validation_fraction=args.validation_fraction,
        seed=args.seed,
        push_to_hub=args.push_to_hub,
        private=args.private,
        revision=args.revision,
        preset=getattr(args, "preset", None),
        db_root=getattr(args, "db_root", None),
        command=command,
        card=card,
        drop_gold_suspect=getattr(args, "drop_gold_suspect", False),
        build_config=build_config,
    )


# ---------------------------------------------------------------------------------------------------------------
# Judged predictions (`sense-hub eval --push-to-hub`, dataset_scripts/build_predictions.py)
# ---------------------------------------------------------------------------------------------------------------
