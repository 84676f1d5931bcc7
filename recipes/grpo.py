"""GRPO with execution rewards (Arctic-Text2SQL-R1 style): the model samples SQL, the executor scores it.

Usage:
    accelerate launch recipes/grpo.py --config recipes/smollm2-135m/grpo.yaml --dataset_name OUT/datasets/strong
    accelerate launch recipes/grpo.py --config recipes/smollm2-135m/grpo.yaml --dataset_name OUT/datasets/strong \\
        --max_steps 2 --output_dir DIR
    accelerate launch --config_file recipes/accelerate/zero3.yaml recipes/grpo.py \\
        --config recipes/qwen2.5-coder-7b/grpo.yaml --dataset_name TRAIN.jsonl --db_root DBS

`--dataset_name` holds questions with their `db_id` and gold SQL: strong records, weak records, or a benchmark's
JSON/JSONL (a file, a local Hub-layout dataset folder or a Hub id). `--reward_funcs` names the rewards
(`execution`, `executes`, `format`, `arctic`), `--reward_weights` weighs them. YAML keys are the dataclass field
names of `GRPOScriptArguments`, `trl.GRPOConfig` and `trl.ModelConfig`; the command line overrides the YAML. The
trained model (safetensors), `grpo_results.json`, the reward curve and the model card land in `--output_dir`.
"""

import json
import logging
import sys
from pathlib import Path

from trl import GRPOConfig, ModelConfig, TrlParser

from sense_hub.cli import run_script
from sense_hub.grpo import RESULTS_FILE, GRPOScriptArguments, run_grpo
from sense_hub.terminal import capture_to_log, is_main_process, run_log_path


def main(script_args, training_args, model_args):
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # one line on the terminal; warnings, datasets' bars and the per-step metrics go to the log in output_dir
    with capture_to_log(run_log_path(training_args.output_dir, "grpo")) as terminal, terminal.stage("grpo"):
        output_dir = run_grpo(script_args, training_args, model_args)
    if not is_main_process():  # one report for the whole run; only the main process writes the model and card
        return
    print(f"Warnings and training logs: {terminal.log_path}")
    results_path = Path(output_dir) / RESULTS_FILE
    if results_path.is_file():
        results = json.loads(results_path.read_text())
        summary = {k: results[k] for k in ("reward", "heldout_baseline", "heldout", "execution") if k in results}
        print(json.dumps(summary))
    print(f"Model and card saved to {output_dir}")


def make_parser():
    return TrlParser((GRPOScriptArguments, GRPOConfig, ModelConfig))


if __name__ == "__main__":
    sys.exit(run_script("grpo.py", main, make_parser))
