"""Publish judged benchmark predictions (per question: gold, prediction, correct, error) as a Hub dataset repo.

Reads the rows `sense-hub eval --output OUT.jsonl` wrote, writes README.md (card with the model, decoding settings,
budget, score and database fingerprints from the eval summary) + one parquet config `<benchmark>-<split>` under
--output-dir, and pushes with --push-to-hub ORG/NAME. Other configs (benchmarks, splits) in the folder or on the Hub
are kept.

Usage:
    sense-hub eval --predictions pred.jsonl --db-root data/spider/database --output judged.jsonl > summary.json
    python dataset_scripts/build_predictions.py --input judged.jsonl --summary summary.json --benchmark spider \
        --split dev --output-dir out/predictions [--push-to-hub ORG/sense-predictions]
"""

import dataclasses
import json
import logging
import sys

from trl import TrlParser

from sense_hub.cli import run_script
from sense_hub.hub import build_predictions, check_repo_id


@dataclasses.dataclass
class PredictionsBuildArguments:
    """Arguments of `dataset_scripts/build_predictions.py` (YAML keys under `--config` use the same names)."""

    input: str = dataclasses.field(metadata={"help": "The judged rows JSONL (`sense-hub eval --output`)."})
    output_dir: str = dataclasses.field(metadata={"help": "The dataset repo folder to write (other configs kept)."})
    benchmark: str = dataclasses.field(metadata={"help": "The benchmark's name, e.g. spider (names the config)."})
    split: str = dataclasses.field(
        default="dev", metadata={"help": "The benchmark split, e.g. dev (names the config)."}
    )
    summary: str | None = dataclasses.field(
        default=None, metadata={"help": "The `sense-hub eval` summary JSON: score, run and fingerprints for the card."}
    )
    model: str | None = dataclasses.field(
        default=None, metadata={"help": "The model that wrote the predictions (default: from the summary)."}
    )
    push_to_hub: str | None = dataclasses.field(default=None, metadata={"help": "ORG/NAME to push the folder to."})
    private: bool = dataclasses.field(default=False, metadata={"help": "Create the Hub repo private."})
    revision: str | None = dataclasses.field(default=None, metadata={"help": "Branch to push to (default main)."})

    def __post_init__(self):
        if self.push_to_hub is not None:
            check_repo_id(self.push_to_hub)


def main(args: PredictionsBuildArguments) -> dict:
    result = build_predictions(
        input_path=args.input,
        output_dir=args.output_dir,
        benchmark=args.benchmark,
        split=args.split,
        summary_path=args.summary,
        model=args.model,
        push_to_hub=args.push_to_hub,
        private=args.private,
        revision=args.revision,
    )
    print(json.dumps(result))
    return result


def make_parser() -> TrlParser:
    return TrlParser((PredictionsBuildArguments,))


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    sys.exit(run_script("build_predictions.py", main, make_parser))
