"""The `sense-hub` subcommands, one thin module each: parse the arguments, call the library, print the result.

Every module defines

    def add_cli_arguments(parser: argparse.ArgumentParser) -> None: ...
    def run_cli(args: argparse.Namespace) -> int: ...

and `sense_hub.cli` imports only the chosen one (so `sense-hub eval --help` never imports torch). This is the only
place that writes to stdout; the library logs. Bad input raises a `sense_hub.errors.SenseHubError`, which the
dispatcher prints as one line on stderr before it exits 2.
"""
