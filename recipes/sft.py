"""Supervised fine-tuning on strong text-to-SQL data (prompt-completion, loss on the SQL only).

Usage:
    accelerate launch recipes/sft.py --config recipes/codellama-13b/sft.yaml
    accelerate launch recipes/sft.py --config recipes/smollm2-135m/sft.yaml --dataset_name DIR --max_steps 2

`--dataset_name` is a JSONL file of strong records, a local Hub-layout dataset folder, or a Hub id; YAML keys are
the dataclass field names of `SenseScriptArguments`, `trl.SFTConfig` and `trl.ModelConfig`; the command line
overrides the YAML. The trained model (safetensors) and its model card land in `--output_dir`.
"""

import sys

from sense_hub.cli import run_script
from sense_hub.commands.sft import main, make_parser

if __name__ == "__main__":
    sys.exit(run_script("sft.py", main, make_parser))
