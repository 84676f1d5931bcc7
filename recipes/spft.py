"""SPFT-SQL self-play fine-tuning: main (best so far) vs opponent (weakest so far), error-driven loss.

Usage:
    accelerate launch recipes/spft.py --config recipes/smollm2-135m/spft.yaml \\
        --dataset_name TRAIN.jsonl --db_root DBS --eval_size 8 --max_steps 2
    accelerate launch --config_file recipes/accelerate/zero3.yaml recipes/spft.py \\
        --config recipes/qwen2.5-coder-7b/spft.yaml --dataset_name TRAIN.jsonl --eval_dataset_name HELDOUT.jsonl --db_root DBS

TRAIN.jsonl has `question`, `sql` (gold) and `db_id` per line (strong records work as they are). Each round writes
`OUTPUT_DIR/round_NN/` (state.json, data.jsonl, model/); rerunning the same command resumes where it stopped.
YAML keys are the dataclass field names of `SPFTScriptArguments`, `SPFTConfig` (a `trl.DPOConfig`) and
`trl.ModelConfig`; the command line overrides the YAML. `sense-hub spft` takes the same options.
"""

import json
import logging
import sys
from pathlib import Path

from trl import ModelConfig, TrlParser

from sense_hub.cli import run_script
from sense_hub.spft import SPFTConfig, SPFTScriptArguments, rounds_table, run_spft
from sense_hub.terminal import capture_to_log, is_main_process, run_log_path


def main(script_args, training_args, model_args):
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # one line on the terminal; warnings, datasets' bars and the per-step metrics go to the log in output_dir
    with capture_to_log(run_log_path(training_args.output_dir, "spft")) as terminal, terminal.stage("spft"):
        best = run_spft(script_args, training_args, model_args)
    if not is_main_process():  # one report for the whole run; only the main process writes the model and card
        return
    print(f"Warnings and training logs: {terminal.log_path}")
    results = json.loads((Path(training_args.output_dir) / "spft_results.json").read_text())
    print(rounds_table(results["rounds"]))
    print(f"Best model (held-out EX {results['best']['accuracy']:.3f}): {best}")


def make_parser():
    return TrlParser((SPFTScriptArguments, SPFTConfig, ModelConfig))


if __name__ == "__main__":
    sys.exit(run_script("spft.py", main, make_parser))
