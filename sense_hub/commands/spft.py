"""`sense-hub spft`: SPFT-SQL self-play rounds, with the options of `recipes/spft.py`.

    sense-hub spft --config recipes/smollm2-135m/spft.yaml --dataset_name TRAIN.jsonl --db_root DBS [--field value ...]

YAML keys and flags are the dataclass fields of `SPFTScriptArguments`, `SPFTConfig` and `trl.ModelConfig`, parsed
by the recipe's own `TrlParser` (the command line overrides the YAML); `accelerate launch recipes/spft.py --help`
lists them. Prints the rounds table, then a one-line JSON summary.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from sense_hub.errors import MissingFileError, SenseHubError, UsageError

# The dataclass fields go to the recipe's TrlParser unparsed (see `cli.main`).
takes_extra_arguments = True


def add_cli_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", default=None, help="YAML of dataclass fields; the command line overrides it.")
    parser.epilog = "Any other --field value is a dataclass field (see `accelerate launch recipes/spft.py --help`)."


def parse(args: argparse.Namespace) -> tuple:
    """(script_args, training_args, model_args) from `--config` and the other flags, by the recipe's `TrlParser`;
    parsed once and kept on `args`."""
    if getattr(args, "parsed", None) is None:
        from sense_hub.spft import make_parser

        argv = list(args.extra)
        if args.config is not None:
            if not Path(args.config).is_file():
                raise MissingFileError(f"--config {args.config}: no such file")
            argv = ["--config", str(args.config), *argv]
        parser = make_parser(prog="sense-hub spft", exit_on_error=False)
        try:
            args.parsed = tuple(parser.parse_args_and_config(argv))
        except (ValueError, argparse.ArgumentError) as err:  # an unknown key or a bad value, named by the parser
            raise UsageError(f"{args.config or 'arguments'}: {err}") from err
    return args.parsed


def log_file(args: argparse.Namespace) -> Path | None:
    """`<output_dir>/spft.log`; None when the arguments do not parse (`run_cli` then reports why)."""
    try:
        _, training_args, _ = parse(args)
    except SenseHubError:
        return None
    return Path(training_args.output_dir) / "spft.log"


def run_cli(args: argparse.Namespace) -> int:
    from sense_hub.spft import rounds_table, run_spft

    script_args, training_args, model_args = parse(args)
    best = run_spft(script_args, training_args, model_args)
    results = json.loads((Path(training_args.output_dir) / "spft_results.json").read_text(encoding="utf-8"))
    sys.stdout.write(rounds_table(results["rounds"]) + "\n")
    sys.stdout.write(json.dumps({"best_model": str(best), "best": results["best"]}) + "\n")
    return 0
