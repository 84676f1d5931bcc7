"""`sense-hub pairs`: preference pairs from labelled weak samples (knobs by preset, each overridable)."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

from sense_hub.errors import MissingFileError
from sense_hub.pairs import NEG_FILTERS, PRESETS, build_pairs, read_weak_records, write_pairs


def _neg_limit(value: str) -> int | None:
    if value.lower() in ("all", "none"):
        return None
    try:
        limit = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer or 'all', got {value!r}") from None
    if limit < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer or 'all', got {value!r}")
    return limit


def add_cli_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--weak", required=True, type=Path, help="Weak records JSONL (from `sense-hub sample`).")
    parser.add_argument(
        "--db-root",
        action="append",
        type=Path,
        required=True,
        help="Folder with <db_id>/<db_id>.sqlite for the prompts (repeat to search several).",
    )
    parser.add_argument(
        "--preset",
        default="grouped-any-limit1",
        choices=sorted(PRESETS),
        help="Named knob setting (default: %(default)s).",
    )
    parser.add_argument("--dedup", action=argparse.BooleanOptionalAction, default=None, help="Override the preset.")
    parser.add_argument("--neg-filter", choices=NEG_FILTERS, default=None, help="Override the preset.")
    parser.add_argument(
        "--keep-gold", action=argparse.BooleanOptionalAction, default=None, help="Override the preset."
    )
    parser.add_argument(
        "--neg-limit",
        type=_neg_limit,
        default=argparse.SUPPRESS,
        help="Negatives per question, or 'all' (default: the preset's).",
    )
    parser.add_argument("--seed", type=int, default=None, help="Override the preset's seed.")
    parser.add_argument(
        "--drop-gold-suspect",
        action="store_true",
        default=None,
        help="Leave out questions the weak records mark gold_suspect (most samples agree on another result).",
    )
    parser.add_argument("--output", required=True, type=Path, help="Pairs JSONL to write.")
    parser.add_argument("--stats", type=Path, default=None, help="Also write the statistics JSON here.")


def run_cli(args: argparse.Namespace) -> int:
    config = PRESETS[args.preset]
    overrides = {
        "dedup": args.dedup,
        "neg_filter": args.neg_filter,
        "keep_gold": args.keep_gold,
        "seed": args.seed,
        "drop_gold_suspect": args.drop_gold_suspect,
    }
    config = replace(config, **{k: v for k, v in overrides.items() if v is not None})
    if hasattr(args, "neg_limit"):
        config = replace(config, neg_limit=args.neg_limit)
    if not args.weak.is_file():
        raise MissingFileError(f"--weak {args.weak}: no such file")
    pairs, stats = build_pairs(read_weak_records(args.weak), config=config, db_root=args.db_root)
    write_pairs(pairs, args.output)
    stats["output"] = str(args.output)
    if args.stats:
        args.stats.parent.mkdir(parents=True, exist_ok=True)
        args.stats.write_text(json.dumps(stats, indent=2) + "\n")
    sys.stdout.write(json.dumps(stats) + "\n")
    return 0
