"""What `sense-hub sft|cdpo|grpo|spft` share: the trainer's own `TrlParser` reads `--config` and every `--field value`.

Each trainer command module defines, TRL style, `make_parser(subparsers=None)` (its `TrlParser`, or a subcommand of
`subparsers`) and `main(script_args, training_args, model_args)`; the `recipes/<x>.py` scripts are shims around the
same two, so `accelerate launch recipes/sft.py --config ...` and `sense-hub sft --config ...` run the same code.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sense_hub.errors import MissingFileError, UsageError


def trl_parser(dataclass_types: tuple, name: str, subparsers=None, **kwargs) -> Any:
    """A `TrlParser` of `dataclass_types`, or (TRL's `make_parser(subparsers)` pattern) a subcommand `name` of
    `subparsers`."""
    from trl import TrlParser

    if subparsers is not None:
        return subparsers.add_parser(name, dataclass_types=dataclass_types, **kwargs)
    return TrlParser(dataclass_types, **kwargs)


def add_cli_arguments(parser: argparse.ArgumentParser, name: str) -> None:
    parser.add_argument("--config", default=None, help="YAML of dataclass fields; the command line overrides it.")
    parser.epilog = (
        f"Any other --field value is a dataclass field of the trainer: `sense-hub {name} --help` lists them all "
        f"(the YAML keys of recipes/<model>/{name}.yaml)."
    )


def parse(args: argparse.Namespace, make_parser: Callable[..., Any], name: str) -> tuple:
    """(script_args, training_args, model_args) from `--config` and the other flags; parsed once, kept on `args`."""
    if getattr(args, "parsed", None) is None:
        argv = list(args.extra)
        if args.config is not None:
            if not Path(args.config).is_file():
                raise MissingFileError(f"--config {args.config}: no such file")
            argv = ["--config", str(args.config), *argv]
        parser = make_parser()
        parser.prog, parser.exit_on_error = f"sense-hub {name}", False
        try:
            with warnings.catch_warnings():  # transformers' renamed-field notices are library noise here
                warnings.simplefilter("ignore", FutureWarning)
                args.parsed = tuple(parser.parse_args_and_config(argv))
        except (ValueError, TypeError, argparse.ArgumentError) as err:  # an unknown key or a bad value
            raise UsageError(f"{args.config or 'arguments'}: {' '.join(str(err).split())}") from err
    return args.parsed


def print_full_help(make_parser: Callable[..., Any], name: str) -> None:
    """`sense-hub <trainer> --help`: every dataclass field the trainer reads, with `--config` first."""
    parser = make_parser()
    parser.prog = f"sense-hub {name}"
    parser.usage = f"sense-hub {name} --config recipes/<model>/{name}.yaml [--field value ...]"
    parser.description = "--config YAML: the fields below as YAML keys; the command line overrides the YAML."
    parser.print_help(sys.stdout)


def say(text: str) -> None:
    """One line of a trainer's report on stdout."""
    sys.stdout.write(f"{text}\n")
    sys.stdout.flush()


def train_logged(name: str, run: Callable[..., Any], script_args, training_args, model_args) -> tuple[Any, Path]:
    """Run a trainer with one line on the terminal; warnings, datasets' bars and the per-step metrics go to
    `<output_dir>/<name>.log`. Returns (what `run` returned, the log's path)."""
    from sense_hub.terminal import capture_to_log, run_log_path

    with capture_to_log(run_log_path(training_args.output_dir, name)) as terminal, terminal.stage(name):
        result = run(script_args, training_args, model_args)
    return result, terminal.log_path
