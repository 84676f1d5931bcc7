"""`sense-hub compare`: EX of several judged runs over the same items, with bootstrap CIs and exact McNemar tests."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from sense_hub import compare


def add_cli_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "files", nargs="+", type=Path, metavar="JUDGED.jsonl", help="`sense-hub eval --output` files, same items"
    )
    parser.add_argument("--names", default=None, help="comma-separated system names, one per file (default: stems)")
    parser.add_argument(
        "--by", choices=compare.BY_FIELDS, default=None, help="also break EX down by database or difficulty"
    )
    parser.add_argument(
        "--bootstrap", type=int, default=10_000, metavar="N", help="bootstrap resamples (default 10000)"
    )
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    parser.add_argument(
        "--output", type=Path, default=None, metavar="TABLE.md", help="also write the markdown tables here"
    )


def _fail(message: str) -> int:
    sys.stderr.write(f"sense-hub compare: {' '.join(message.split())}\n")
    return 2


def run_cli(args: argparse.Namespace) -> int:
    names = None
    if args.names is not None:
        names = [x.strip() for x in args.names.split(",")]
        if any(not x for x in names):
            return _fail(f"--names {args.names!r} has an empty name; give one comma-separated name per file")
    if args.bootstrap < 1:
        return _fail(f"--bootstrap must be >= 1, got {args.bootstrap}")
    try:
        result = compare.compare(args.files, names=names, by=args.by, n_resamples=args.bootstrap, seed=args.seed)
    except ValueError as e:
        return _fail(str(e))
    table = compare.render_markdown(result)
    if args.output is not None:
        try:
            args.output.parent.mkdir(parents=True, exist_ok=True)
            args.output.write_text(table, encoding="utf-8")
        except OSError as e:
            return _fail(f"cannot write --output {args.output}: {e.strerror or e}")
    sys.stdout.write(table + "\n" + json.dumps(compare.summary(result)) + "\n")
    sys.stdout.flush()
    return 0
