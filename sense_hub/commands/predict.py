"""`sense-hub predict`: SQL for a benchmark, greedy or N samples with execution voting (see `commands.sample`).

`--repair-rounds N` and `--constrained` are budgets of their own (`greedy+repair`, `greedy+constrained`); with
repair the summary also scores the same answers before repair. With `-n N` (N > 1) the summary reports three budgets side by side, each with its samples per question and wall
seconds: `greedy` (a separate greedy pass, never the first sample; `--no-greedy-pass` skips it), `maj@N` (the
execution-majority vote, the `pred` column) and `pass@N` (any sample correct: an oracle bound).
"""

from __future__ import annotations

import argparse

from sense_hub.commands.sample import add_cli_arguments as _add_shared_arguments
from sense_hub.commands.sample import run_cli

__all__ = ["add_cli_arguments", "run_cli"]


def add_cli_arguments(parser: argparse.ArgumentParser) -> None:
    _add_shared_arguments(parser)
    parser.add_argument(
        "--no-greedy-pass",
        action="store_true",
        help="with -n > 1: skip the separate greedy pass (the summary then has no greedy budget)",
    )
    parser.add_argument(
        "--constrained",
        action="store_true",
        help="schema-aware decoding: the model may write only the database's table and column names "
        "(llguidance; local transformers backend). Its own budget: greedy+constrained",
    )
