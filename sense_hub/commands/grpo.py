"""`sense-hub grpo --config recipes/<model>/grpo.yaml --dataset_name DIR [--field value ...]`: GRPO with execution
rewards.

YAML keys are the dataclass fields of `GRPOScriptArguments`, `trl.GRPOConfig` and `trl.ModelConfig`; the command
line overrides the YAML. Prints the reward and held-out summary as one JSON line. `accelerate launch recipes/grpo.py
...` runs the same `main`.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from sense_hub.commands import trainers

NAME = "grpo"
takes_extra_arguments = True


def make_parser(subparsers=None):
    from trl import GRPOConfig, ModelConfig

    from sense_hub.grpo import GRPOScriptArguments

    return trainers.trl_parser((GRPOScriptArguments, GRPOConfig, ModelConfig), NAME, subparsers)


def main(script_args, training_args, model_args) -> None:
    import logging

    from sense_hub.grpo import RESULTS_FILE, run_grpo
    from sense_hub.terminal import is_main_process

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    output_dir, log = trainers.train_logged(NAME, run_grpo, script_args, training_args, model_args)
    if not is_main_process():  # one report for the whole run; only the main process writes the model and card
        return
    trainers.say(f"Warnings and training logs: {log}")
    results_path = Path(output_dir) / RESULTS_FILE
    if results_path.is_file():
        results = json.loads(results_path.read_text())
        summary = {k: results[k] for k in ("reward", "heldout_baseline", "heldout", "execution") if k in results}
        trainers.say(json.dumps(summary))
    trainers.say(f"Model and card saved to {output_dir}")


def add_cli_arguments(parser: argparse.ArgumentParser) -> None:
    trainers.add_cli_arguments(parser, NAME)


def run_cli(args: argparse.Namespace) -> int:
    main(*trainers.parse(args, make_parser, NAME))
    return 0
