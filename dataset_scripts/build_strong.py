"""Build the SENSE strong (execution-verified question, SQL) data as a Hub dataset repo, and optionally push it.

Reads the records JSONL written by `sense-hub synthesize`, casts it to the library's Features, splits train/validation by
database, writes README.md (card) + parquet under --output-dir, and pushes with --push-to-hub ORG/NAME.

Usage:
    python dataset_scripts/build_strong.py --input strong.jsonl --output-dir out/strong [--push-to-hub sense/strong]
    python dataset_scripts/build_strong.py --config build_strong.yaml --seed 1
"""

import json
import logging
import sys

from trl import TrlParser

from sense_hub.builds import DatasetBuildArguments, build_from_arguments
from sense_hub.cli import run_script


def main(args: DatasetBuildArguments) -> dict:
    result = build_from_arguments("strong", args)
    print(json.dumps(result))
    return result


def make_parser() -> TrlParser:
    return TrlParser((DatasetBuildArguments,))


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    sys.exit(run_script("build_strong.py", main, make_parser))
