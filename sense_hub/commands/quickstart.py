"""`sense-hub quickstart`: every stage offline on the bundled databases and the embedded model."""

from __future__ import annotations

import argparse
import json
import sys

from sense_hub.quickstart import Pipeline, load_config


def add_cli_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--output-dir", default=None, help="Where every artifact is written (default out/quickstart).")
    parser.add_argument("--config", default=None, help="A YAML file of QuickstartConfig fields to scale the job up.")
    parser.add_argument("--push-to-hub", default=None, metavar="ORG", help="Publish every dataset and model to ORG.")
    parser.add_argument("--model", default=None, help="Weak/base model: 'embedded' (default) or a folder.")
    parser.add_argument("--restart", action="store_true", help="Forget finished stages and start over.")


def run_cli(args: argparse.Namespace) -> int:
    config = load_config(
        args.config, {"output_dir": args.output_dir, "push_to_hub": args.push_to_hub, "model": args.model}
    )
    done = Pipeline(config, restart=args.restart).run()
    accuracy = {k: v for k, v in done.get("report", {}).items() if k != "seconds"}
    sys.stdout.write(json.dumps({"output_dir": config.output_dir, "execution_accuracy": accuracy}) + "\n")
    return 0
