"""`sense-hub predict`: SQL for a benchmark, greedy or N samples with execution voting (see `commands.sample`)."""

from sense_hub.commands.sample import add_cli_arguments, run_cli

__all__ = ["add_cli_arguments", "run_cli"]
