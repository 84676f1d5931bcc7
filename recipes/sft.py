"""Supervised fine-tuning on strong text-to-SQL data (prompt-completion, loss on the SQL only).

Usage:
    accelerate launch recipes/sft.py --config recipes/codellama-13b/sft.yaml
    accelerate launch recipes/sft.py --config recipes/smollm2-135m/sft.yaml --dataset_name DIR --max_steps 2

`--dataset_name` is a JSONL file of strong records, a local Hub-layout dataset folder, or a Hub id; YAML keys are
the dataclass field names of `SenseScriptArguments`, `trl.SFTConfig` and `trl.ModelConfig`; the command line
overrides the YAML. The trained model (safetensors) and its model card land in `--output_dir`.
"""

from trl import ModelConfig, SFTConfig, TrlParser

from sense_hub.training import SenseScriptArguments, run_sft


def main(script_args, training_args, model_args):
    output_dir = run_sft(script_args, training_args, model_args)
    print(f"Model and card saved to {output_dir}")


def make_parser():
    return TrlParser((SenseScriptArguments, SFTConfig, ModelConfig))


if __name__ == "__main__":
    main(*make_parser().parse_args_and_config())
