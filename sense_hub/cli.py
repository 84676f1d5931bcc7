"""The `sense-hub` command line: it only dispatches.

Each subcommand is a thin module of `sense_hub.commands` (or the module that owns its stage) defining

    def add_cli_arguments(parser: argparse.ArgumentParser) -> None: ...
    def run_cli(args: argparse.Namespace) -> int: ...

Only the chosen command's module is imported, so `sense-hub eval --help` never imports torch. A module that sets
`takes_extra_arguments = True` gets the options it does not declare in `args.extra` (`spft` hands them to its
TrlParser). Exit status: 0 on success; 2 for bad arguments (argparse) and for bad input (a
`sense_hub.errors.SenseHubError`, printed as one line `sense-hub <command>: <message>`, no traceback); 130 on
Ctrl-C. Any other exception is a bug and shows its traceback.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from sense_hub.errors import SenseHubError

# name -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "eval": ("sense_hub.commands.eval", "Execution accuracy of predicted SQL against gold SQL."),
    "compare": (
        "sense_hub.commands.compare",
        "Compare judged predictions: EX with bootstrap CIs, McNemar p per pair.",
    ),
    "predict": (
        "sense_hub.commands.predict",
        "Predict SQL for a benchmark (greedy or N samples with execution voting).",
    ),
    "sample": ("sense_hub.commands.sample", "Sample N weak candidates per question and label them by execution."),
    "pairs": ("sense_hub.commands.pairs", "Build preference pairs from labelled weak samples."),
    "synthesize": ("sense_hub.commands.synthesize", "Synthesize strong data (strong LLM domains or SQL templates)."),
    "spft": ("sense_hub.commands.spft", "Run SPFT-SQL self-play fine-tuning rounds."),
    "quickstart": (
        "sense_hub.commands.quickstart",
        "Run every stage offline on the bundled databases and embedded model.",
    ),
    "models": (
        "sense_hub.commands.models",
        "List the embedded models: installed or not, size on disk, how to install.",
    ),
}


def _top_level_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sense-hub",
        description="Text-to-SQL training data and models on the Hugging Face Hub (SENSE, SPFT-SQL).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="commands:\n" + "\n".join(f"  {name:<12} {help_}" for name, (_, help_) in COMMANDS.items()),
    )
    parser.add_argument("command", choices=sorted(COMMANDS), metavar="COMMAND", help="see the list below")
    parser.add_argument("--version", action="version", version=_version())
    return parser


def _version() -> str:
    from sense_hub import __version__

    return f"sense-hub {__version__}"


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in COMMANDS:
        _top_level_parser().parse_args(argv or ["--help"])
        return 2
    name, rest = argv[0], argv[1:]
    module_name, help_ = COMMANDS[name]
    module = importlib.import_module(module_name)
    parser = argparse.ArgumentParser(prog=f"sense-hub {name}", description=help_)
    parser.add_argument("--log-level", default="WARNING", help="Python logging level (default: WARNING).")
    module.add_cli_arguments(parser)
    if getattr(module, "takes_extra_arguments", False):
        args, args.extra = parser.parse_known_args(rest)
    else:
        args = parser.parse_args(rest)
    logging.basicConfig(level=args.log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(module.run_cli(args) or 0)
    except KeyboardInterrupt:
        sys.stderr.write(f"sense-hub {name}: interrupted; finished work is kept, run the same command to resume\n")
        return 130
    except SenseHubError as err:  # input the user can fix: one line, no traceback (a bug still shows one)
        sys.stderr.write(f"sense-hub {name}: {_one_line(err)}\n")
        return 2


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split()) or type(err).__name__


if __name__ == "__main__":
    sys.exit(main())
