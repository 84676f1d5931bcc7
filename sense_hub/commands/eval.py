"""`sense-hub eval`: execution accuracy of predictions (the contract is in `sense_hub.evaluation`'s docstring).

The last line on stdout is the JSON summary; `--output` gets one line per input line with `correct` and `error`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import orjson

from sense_hub.errors import MissingFileError, UsageError
from sense_hub.evaluation import evaluate_records, read_predictions, summarize
from sense_hub.execution import check_timeout
from sense_hub.matching import METRICS


def add_cli_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--predictions",
        required=True,
        type=Path,
        metavar="PRED",
        help="JSONL with db_id, gold, pred per line, or a text file with one predicted SQL per line",
    )
    parser.add_argument(
        "--gold",
        type=Path,
        metavar="GOLD",
        default=None,
        help="for a text predictions file: gold SQL file with `SQL<TAB>db_id` per line",
    )
    parser.add_argument(
        "--db-root", required=True, type=Path, metavar="DIR", help="folder holding <db_id>/<db_id>.sqlite"
    )
    parser.add_argument(
        "--metric",
        choices=METRICS,
        default="spider",
        help="spider: official test-suite semantics (default); bird: set equality; "
        "strict: multiset, column order and DISTINCT kept",
    )
    parser.add_argument("--keep-distinct", action="store_true", help="spider metric: do not strip DISTINCT")
    parser.add_argument(
        "--timeout", type=float, default=30.0, metavar="SECONDS", help="seconds per query (default 30)"
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        metavar="N",
        help="worker processes, which isolate crashes (0: run in this process; default: one per CPU, up to 8, "
        "for jobs of 2,000+ distinct queries, else in-process)",
    )
    parser.add_argument(
        "--output",
        type=Path,
        metavar="OUT.jsonl",
        default=None,
        help="write one JSON line per input line: the input fields + correct + error",
    )


def _json_line(row: dict) -> bytes:
    """One output line as UTF-8 (orjson; the standard module for what orjson refuses: lone surrogates from
    "\\udc80" escapes in the input stay escaped, integers past 64 bits)."""
    try:
        return orjson.dumps(row, option=orjson.OPT_APPEND_NEWLINE)
    except TypeError:
        line = json.dumps(row, ensure_ascii=False)
        try:
            return (line + "\n").encode("utf-8")
        except UnicodeEncodeError:
            return (json.dumps(row) + "\n").encode("utf-8")


def run_cli(args: argparse.Namespace) -> int:
    if not args.predictions.is_file():
        raise MissingFileError(f"predictions file not found: {args.predictions}")
    if args.gold is not None and not args.gold.is_file():
        raise MissingFileError(f"gold file not found: {args.gold}")
    if not args.db_root.is_dir():
        raise MissingFileError(f"--db-root is not a folder: {args.db_root} (it must hold <db_id>/<db_id>.sqlite)")
    try:
        check_timeout(args.timeout, name="--timeout")
    except ValueError as e:
        raise UsageError(str(e)) from e
    if args.workers is not None and args.workers < 0:
        raise UsageError(f"--workers must be >= 0, got {args.workers}")
    records = read_predictions(args.predictions, gold=args.gold)
    rows, verdicts = evaluate_records(
        records,
        db_root=args.db_root,
        metric=args.metric,
        keep_distinct=args.keep_distinct,
        timeout=args.timeout,
        workers=args.workers,
        progress=True,
    )
    if args.output is not None:
        try:
            args.output.parent.mkdir(parents=True, exist_ok=True)
            with args.output.open("wb") as f:
                f.write(b"".join(_json_line(row) for row in rows))
        except OSError as e:
            raise UsageError(f"cannot write --output {args.output}: {e}") from e
    sys.stdout.write(json.dumps(summarize(verdicts, metric=args.metric)) + "\n")
    sys.stdout.flush()
    return 0
