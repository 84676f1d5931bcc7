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

from trl import ModelConfig, TrlParser

from sense_hub.training import CDPOConfig, SenseScriptArguments, run_cdpo


def main(script_args, training_args, model_args):
    output_dir = run_cdpo(script_args, training_args, model_args)
    print(f"Model and card saved to {output_dir}")


def make_parser():
    return TrlParser((SenseScriptArguments, CDPOConfig, ModelConfig))


if __name__ == "__main__":
    main(*make_parser().parse_args_and_config())
