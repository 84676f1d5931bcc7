"""`sense-hub models`: the embedded models, installed or not, their size on disk and how to install a missing one."""

from __future__ import annotations

import argparse
import json
import sys

from sense_hub import models


def add_cli_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print the rows as JSON instead of a table")


def run_cli(args: argparse.Namespace) -> int:
    rows = models.status()
    if args.json:
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
        return 0
    lines = ["| model | Hub id | installed | on disk | role |", "|---|---|---|---|---|"]
    for row in rows:
        if row["converted"]:
            disk = f"{row['folder_bytes'] / 1e9:.2f} GB converted"
        elif row["installed"]:
            disk = f"GGUF {row['gguf_bytes'] / 1e9:.2f} GB (converted on first use)"
        else:
            disk = "-"
        lines.append(
            f"| {row['name']} | {row['hub_id']} | {'yes' if row['installed'] else 'no'} | {disk} | {row['role']} |"
        )
    missing = [row for row in rows if not row["installed"]]
    for row in missing:
        lines.append(f"\nto install {row['name']}: {row['install']}   (or `{row['make']}` in a checkout)")
    lines.append(f"\ncache: {models.cache_root()}  (set SENSE_HUB_CACHE to move it)")
    sys.stdout.write("\n".join(lines) + "\n")
    return 0
