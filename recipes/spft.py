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

import sys

from sense_hub.cli import run_script
from sense_hub.commands.spft import main, make_parser

if __name__ == "__main__":
    sys.exit(run_script("spft.py", main, make_parser))
