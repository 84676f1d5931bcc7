"""`sense-hub sft --config recipes/<model>/sft.yaml [--field value ...]`: SFT on strong text-to-SQL data.

Prompt-completion records, loss on the SQL only. `--dataset_name` is a JSONL file of strong records, a local
Hub-layout dataset folder, or a Hub id; YAML keys are the dataclass fields of `SenseScriptArguments`,
`trl.SFTConfig` and `trl.ModelConfig`, and the command line overrides the YAML. The trained model (safetensors) and
its model card land in `--output_dir`. `accelerate launch recipes/sft.py ...` runs the same `main`.
"""

from __future__ import annotations

import argparse

from sense_hub.commands import trainers

NAME = "sft"
takes_extra_arguments = True


def make_parser(subparsers=None):
    from trl import ModelConfig, SFTConfig

    from sense_hub.training import SenseScriptArguments

    return trainers.trl_parser((SenseScriptArguments, SFTConfig, ModelConfig), NAME, subparsers)


def main(script_args, training_args, model_args) -> None:
    from sense_hub.terminal import is_main_process
    from sense_hub.training import run_sft

    output_dir, log = trainers.train_logged(NAME, run_sft, script_args, training_args, model_args)
    if is_main_process():  # one report for the whole run; only the main process writes the model and card
        trainers.say(f"Model and card saved to {output_dir}")
        trainers.say(f"Warnings and training logs: {log}")


def add_cli_arguments(parser: argparse.ArgumentParser) -> None:
    trainers.add_cli_arguments(parser, NAME)


def run_cli(args: argparse.Namespace) -> int:
    main(*trainers.parse(args, make_parser, NAME))
    return 0
