"""Build the SENSE preference-pairs dataset as a Hub dataset repo, one config per pairs variant.

The input is either pairs records (written by `sense-hub pairs`), published as they are, or labelled weak
records (written by `sense-hub sample`) together with --preset and --db-root, turned into pairs here with
`sense_hub.pairs.build_pairs`. Each variant is its own config (default: the preset's name), merged into the
README `configs:` next to the earlier ones.

Usage:
    python dataset_scripts/build_pairs.py --input weak.jsonl --preset grouped-any-limit1 --db-root DIR \
        --output-dir out/pairs [--push-to-hub sense/pairs]
    python dataset_scripts/build_pairs.py --input pairs.jsonl --config-name grouped-any-limit3 --output-dir out/pairs
    python dataset_scripts/build_pairs.py --config build_pairs.yaml
"""

import json
import logging
import sys

from trl import TrlParser

from sense_hub.builds import PairsBuildArguments, build_from_arguments
from sense_hub.cli import run_script


def main(args: PairsBuildArguments) -> dict:
    result = build_from_arguments("pairs", args)
    print(json.dumps(result))
    return result


def make_parser() -> TrlParser:
    return TrlParser((PairsBuildArguments,))


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    sys.exit(run_script("build_pairs.py", main, make_parser))
