"""Build the SENSE weak (sampled and execution-labelled SQL candidates) data as a Hub dataset repo, and optionally push it.

Reads the records JSONL written by `sense-hub sample`, casts it to the library's Features, splits train/validation by
database, writes README.md (card) + parquet under --output-dir, and pushes with --push-to-hub ORG/NAME.

Usage:
    python dataset_scripts/build_weak.py --input weak.jsonl --output-dir out/weak [--push-to-hub sense/weak]
    python dataset_scripts/build_weak.py --config build_weak.yaml --seed 1
"""

import json
import logging
import sys

from trl import TrlParser

from sense_hub.builds import DatasetBuildArguments, build_from_arguments
from sense_hub.cli import run_script


def main(args: DatasetBuildArguments) -> dict:
    result = build_from_arguments("weak", args)
    print(json.dumps(result))
    return result


def make_parser() -> TrlParser:
    return TrlParser((DatasetBuildArguments,))


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    sys.exit(run_script("build_weak.py", main, make_parser))
