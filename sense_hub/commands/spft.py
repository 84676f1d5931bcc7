"""`sense-hub spft --config recipes/<model>/spft.yaml --dataset_name TRAIN.jsonl --db_root DBS [--field value ...]`:
SPFT-SQL self-play rounds, main (best so far) against opponent (weakest so far) with the error-driven loss.

TRAIN.jsonl has `question`, `sql` (gold) and `db_id` per line (strong records work as they are). Each round writes
`OUTPUT_DIR/round_NN/` (state.json, data.jsonl, model/); rerunning the same command resumes where it stopped. YAML
keys are the dataclass fields of `SPFTScriptArguments`, `SPFTConfig` (a `trl.DPOConfig`) and `trl.ModelConfig`; the
command line overrides the YAML. Prints the rounds table, then a one-line JSON summary. `accelerate launch
recipes/spft.py ...` runs the same `main`.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from sense_hub.commands import trainers

NAME = "spft"
takes_extra_arguments = True


def make_parser(subparsers=None):
    from trl import ModelConfig

    from sense_hub.spft import SPFTConfig, SPFTScriptArguments

    return trainers.trl_parser((SPFTScriptArguments, SPFTConfig, ModelConfig), NAME, subparsers)


def main(script_args, training_args, model_args) -> None:
    import logging

    from sense_hub.spft import rounds_table, run_spft
    from sense_hub.terminal import is_main_process

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    best, log = trainers.train_logged(NAME, run_spft, script_args, training_args, model_args)
    if not is_main_process():  # one report for the whole run; only the main process writes the model and card
        return
    trainers.say(f"Warnings and training logs: {log}")
    results = json.loads((Path(training_args.output_dir) / "spft_results.json").read_text(encoding="utf-8"))
    trainers.say(rounds_table(results["rounds"]))
    trainers.say(f"Best model (held-out EX {results['best']['accuracy']:.3f}): {best}")
    trainers.say(json.dumps({"best_model": str(best), "best": results["best"]}))


def add_cli_arguments(parser: argparse.ArgumentParser) -> None:
    trainers.add_cli_arguments(parser, NAME)


def run_cli(args: argparse.Namespace) -> int:
    main(*trainers.parse(args, make_parser, NAME))
    return 0
