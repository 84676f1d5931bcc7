"""`sense-hub experiment`: a controlled comparison of training arms declared in YAML (`sense_hub.experiment`)."""

from __future__ import annotations

import argparse
import json
import sys

from sense_hub.errors import UsageError


def add_cli_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = (
        "Example: sense-hub experiment --config recipes/experiments/sense-qwen.yaml --dry-run\n"
        "The YAML declares the student, the questions (a Spider split or your own files), the data steps and the\n"
        "arms (recipe, start, data, budget); see recipes/experiments/README.md."
    )
    parser.add_argument("--config", required=True, metavar="EXP.yaml", help="the experiment: ExperimentConfig fields")
    parser.add_argument("--output-dir", default=None, help="run folder (default: the YAML's output_dir); resumed")
    parser.add_argument(
        "--stages",
        default=None,
        help="comma list of steps to run (split, synth, domains, weak, pairs, an arm's name, robustness, compare); "
        "default: all, in the plan's order",
    )
    parser.add_argument("--dry-run", action="store_true", help="print the plan (steps in order) and stop")


def run_cli(args: argparse.Namespace) -> int:
    from sense_hub.experiment import Experiment, load_config

    config, arms = load_config(args.config, {"output_dir": args.output_dir})
    experiment = Experiment(config, arms, config_path=args.config)
    plan = experiment.plan()
    stages = None
    if args.stages:
        stages = [s.strip() for s in args.stages.split(",") if s.strip()]
        unknown = [s for s in stages if s not in plan]
        if unknown:
            raise UsageError(f"--stages: {unknown} not in this experiment's plan; choose from {', '.join(plan)}")
    if args.dry_run:
        for i, stage in enumerate(plan, 1):
            what = experiment.describe(stage)
            sys.stdout.write(f"{i:>2}. {stage:<18} {what}\n")
        return 0
    results = experiment.run(stages)
    if results:
        sys.stdout.write(json.dumps({"output_dir": str(experiment.out), "systems": results.get("systems", [])}) + "\n")
    return 0
