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

import sys

from sense_hub.cli import run_script
from sense_hub.commands.grpo import main, make_parser

if __name__ == "__main__":
    sys.exit(run_script("grpo.py", main, make_parser))
