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
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sense_hub.errors import SenseHubError, UsageError

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
    "experiment": (
        "sense_hub.commands.experiment",
        "Train and score arms of a controlled experiment declared in YAML; paired comparison at the end.",
    ),
    "sft": (
        "sense_hub.commands.sft",
        "Supervised fine-tuning on strong data (TRL; --config recipes/<model>/sft.yaml).",
    ),
    "cdpo": (
        "sense_hub.commands.cdpo",
        "Conservative DPO on preference pairs (TRL; --config recipes/<model>/cdpo.yaml).",
    ),
    "grpo": ("sense_hub.commands.grpo", "GRPO with execution rewards (TRL; --config recipes/<model>/grpo.yaml)."),
    "spft": ("sense_hub.commands.spft", "SPFT-SQL self-play fine-tuning rounds (--config recipes/<model>/spft.yaml)."),
    "adapt": (
        "sense_hub.commands.adapt",
        "Adapt a small model to one database: verified questions, SFT, cDPO, scored before and after.",
    ),
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
    if hasattr(module, "make_parser") and {"-h", "--help"} & set(rest):  # a trainer: every field it reads
        from sense_hub.commands.trainers import print_full_help

        print_full_help(module.make_parser, name)
        return 0
    parser = argparse.ArgumentParser(prog=f"sense-hub {name}", description=help_)
    parser.add_argument("--log-level", default="WARNING", help="Python logging level (default: WARNING).")
    module.add_cli_arguments(parser)
    if getattr(module, "takes_extra_arguments", False):
        args, args.extra = parser.parse_known_args(rest)
    else:
        args = parser.parse_args(rest)
    logging.basicConfig(level=args.log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    return guarded(f"sense-hub {name}", lambda: _run_logged(name, module, args))


def _run_logged(name: str, module, args: argparse.Namespace) -> object:
    """Run a command; a long one shows one line on the terminal and writes the rest to a log beside its output."""
    log_path = log_file_for(name, args, module)
    if log_path is None:
        return module.run_cli(args)
    from sense_hub.terminal import capture_to_log

    with capture_to_log(log_path) as terminal, terminal.stage(f"sense-hub {name}", live_only=True):
        result = module.run_cli(args)
    if log_path.exists():
        sys.stderr.write(f"sense-hub {name}: warnings, library logs and progress bars: {log_path}\n")
    return result


def log_file_for(name: str, args: argparse.Namespace, module=None) -> Path | None:
    """The log file of a long command, in its output folder, or None.

    `sample|predict|synthesize --output weak.jsonl` logs to `weak.log`; a command module with a `log_file(args)`
    function names its own (`spft`: `<output_dir>/spft.log`, from the arguments its parser read). The quickstart
    opens its own (`DIR/quickstart.log`) once its config is read.
    """
    if name in ("sample", "predict", "synthesize") and getattr(args, "output", None):
        output = Path(args.output)
        return output.with_name(output.name + ".log") if output.suffix == ".log" else output.with_suffix(".log")
    if module is not None and hasattr(module, "log_file"):
        return module.log_file(args)
    return None


def guarded(prog: str, run: Callable[[], object]) -> int:
    """Run `run()` the way every sense-hub entry point does and return its exit status.

    0 on success (or `run()`'s integer result); 2 for a `SenseHubError` (input the user can fix), printed as one
    line `<prog>: <message>` on stderr, no traceback; 130 on Ctrl-C. Any other exception is a bug and propagates.
    """
    try:
        result = run()
    except KeyboardInterrupt:
        sys.stderr.write(f"{prog}: interrupted; finished work is kept, run the same command to resume\n")
        return 130
    except BrokenPipeError:  # `sense-hub ... | head`: the reader left; say nothing more
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except SenseHubError as err:  # input the user can fix: one line, no traceback (a bug still shows one)
        sys.stderr.write(f"{prog}: {_one_line(err)}\n")
        return 2
    return result if isinstance(result, int) and not isinstance(result, bool) else 0


def run_script(prog: str, main: Callable[..., object], make_parser: Callable[[], Any]) -> int:
    """The body of a `dataset_scripts/*.py` or `recipes/*.py` entry point, with the CLI's error handling.

    Parses the arguments with `make_parser().parse_args_and_config()` (a `TrlParser`), calls `main(*parsed)` and
    returns the exit status (see `guarded`). A `ValueError` raised while parsing (a dataclass `__post_init__` check,
    a config value of the wrong type) is the user's to fix, so it is reported the same way.

    Usage:
        if __name__ == "__main__":
            sys.exit(run_script("build_pairs.py", main, make_parser))
    """

    def run() -> object:
        try:
            parsed = make_parser().parse_args_and_config()
        except SenseHubError:
            raise
        except (ValueError, TypeError) as err:
            raise UsageError(str(err)) from err
        main(*parsed)
        return 0

    return guarded(prog, run)


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split()) or type(err).__name__


if __name__ == "__main__":
    sys.exit(main())
