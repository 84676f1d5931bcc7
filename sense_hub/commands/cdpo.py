"""`sense-hub cdpo --config recipes/<model>/cdpo.yaml [--field value ...]`: conservative DPO on preference pairs.

`--dataset_name` holds pairs records (`prompt`/`chosen`/`rejected`), or weak records for `--preference_loss kto`;
`--cdpo_epsilon` is the cDPO label-noise rate (SENSE: 0.1). YAML keys are the dataclass fields of
`SenseScriptArguments`, `CDPOConfig` (a `trl.DPOConfig`) and `trl.ModelConfig`; the command line overrides the YAML.
`accelerate launch recipes/cdpo.py ...` runs the same `main`.
"""

from __future__ import annotations

import argparse

from sense_hub.commands import trainers

NAME = "cdpo"
takes_extra_arguments = True


def make_parser(subparsers=None):
    from trl import ModelConfig

    from sense_hub.training import CDPOConfig, SenseScriptArguments

    return trainers.trl_parser((SenseScriptArguments, CDPOConfig, ModelConfig), NAME, subparsers)


def main(script_args, training_args, model_args) -> None:
    from sense_hub.terminal import is_main_process
    from sense_hub.training import run_cdpo

    output_dir, log = trainers.train_logged(NAME, run_cdpo, script_args, training_args, model_args)
    if is_main_process():  # one report for the whole run; only the main process writes the model and card
        trainers.say(f"Model and card saved to {output_dir}")
        trainers.say(f"Warnings and training logs: {log}")


def add_cli_arguments(parser: argparse.ArgumentParser) -> None:
    trainers.add_cli_arguments(parser, NAME)


def run_cli(args: argparse.Namespace) -> int:
    main(*trainers.parse(args, make_parser, NAME))
    return 0
