"""Preference training on execution-labelled pairs: exact cDPO by default (SENSE), or DPO, IPO, SimPO, ORPO, KTO.

Usage:
    accelerate launch recipes/cdpo.py --config recipes/codellama-13b/cdpo.yaml
    accelerate launch recipes/cdpo.py --config recipes/smollm2-135m/cdpo.yaml --dataset_name PAIRS --max_steps 2
    accelerate launch recipes/cdpo.py --config recipes/smollm2-135m/cdpo.yaml --preference_loss kto \\
        --dataset_name WEAK --db_root DBS

`--dataset_name` holds pairs records (`prompt`/`chosen`/`rejected`), or weak records for `--preference_loss kto`.
`--cdpo_epsilon` is the cDPO label-noise rate (SENSE: 0.1). YAML keys are the dataclass field names of
`SenseScriptArguments`, `CDPOConfig` (a `trl.DPOConfig`) and `trl.ModelConfig`; the command line overrides the YAML.
"""

import sys

from trl import ModelConfig, TrlParser

from sense_hub.cli import run_script
from sense_hub.terminal import capture_to_log, is_main_process, run_log_path
from sense_hub.training import CDPOConfig, SenseScriptArguments, run_cdpo


def main(script_args, training_args, model_args):
    # one line on the terminal; warnings, datasets' bars and the per-step metrics go to the log in output_dir
    with capture_to_log(run_log_path(training_args.output_dir, "cdpo")) as terminal, terminal.stage("cdpo"):
        output_dir = run_cdpo(script_args, training_args, model_args)
    if is_main_process():  # one report for the whole run; only the main process writes the model and card
        print(f"Model and card saved to {output_dir}")
        print(f"Warnings and training logs: {terminal.log_path}")


def make_parser():
    return TrlParser((SenseScriptArguments, CDPOConfig, ModelConfig))


if __name__ == "__main__":
    sys.exit(run_script("cdpo.py", main, make_parser))
