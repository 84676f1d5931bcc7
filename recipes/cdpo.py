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

from sense_hub.cli import run_script
from sense_hub.commands.cdpo import main, make_parser

if __name__ == "__main__":
    sys.exit(run_script("cdpo.py", main, make_parser))
