"""Supervised fine-tuning on strong text-to-SQL data (prompt-completion, loss on the SQL only).

Usage:
    accelerate launch recipes/sft.py --config recipes/codellama-13b/sft.yaml
    accelerate launch recipes/sft.py --config recipes/smollm2-135m/sft.yaml --dataset_name DIR --max_steps 2

`--dataset_name` is a JSONL file of strong records, a local Hub-layout dataset folder, or a Hub id; YAML keys are
the dataclass field names of `SenseScriptArguments`, `trl.SFTConfig` and `trl.ModelConfig`; the command line
overrides the YAML. The trained model (safetensors) and its model card land in `--output_dir`.
"""

import sys

from trl import ModelConfig, SFTConfig, TrlParser

from sense_hub.cli import run_script
from sense_hub.terminal import capture_to_log, is_main_process, run_log_path
from sense_hub.training import SenseScriptArguments, run_sft


def main(script_args, training_args, model_args):
    # one line on the terminal; warnings, datasets' bars and the per-step metrics go to the log in output_dir
    with capture_to_log(run_log_path(training_args.output_dir, "sft")) as terminal, terminal.stage("sft"):
        output_dir = run_sft(script_args, training_args, model_args)
    if is_main_process():  # one report for the whole run; only the main process writes the model and card
        print(f"Model and card saved to {output_dir}")
        print(f"Warnings and training logs: {terminal.log_path}")


def make_parser():
    return TrlParser((SenseScriptArguments, SFTConfig, ModelConfig))


if __name__ == "__main__":
    sys.exit(run_script("sft.py", main, make_parser))
