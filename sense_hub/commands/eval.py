"""`sense-hub eval`: execution accuracy of predictions (the contract is in `sense_hub.evaluation`'s docstring).

The last line on stdout is the JSON summary; `--output` gets one line per input line with `correct` and `error`.
The summary carries the sha256 `fingerprints` of every database file used and of the inputs (`sense_hub.fingerprints`),
`run` (model, decoding settings and budget, when `sense-hub predict` wrote PRED), and, with `--push-to-hub`, the
predictions dataset it published.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import orjson

from sense_hub.errors import MissingFileError, SenseHubError, UsageError
from sense_hub.evaluation import evaluate_records, input_fingerprints, read_predictions, summarize
from sense_hub.execution import check_timeout
from sense_hub.fingerprints import (
    FingerprintMismatchError,
    check_databases,
    mismatch_message,
    read_expected_fingerprints,
    sha256_file,
)
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
    repro = parser.add_argument_group("reproducibility")
    repro.add_argument(
        "--expect-fingerprints",
        type=Path,
        metavar="FILE",
        default=None,
        help="an earlier eval summary JSON (or a model card README.md) whose database sha256 fingerprints must "
        "match the databases used now; refuses to score and names the database when one differs",
    )
    repro.add_argument(
        "--allow-changed-databases",
        action="store_true",
        help="with --expect-fingerprints: score anyway when a database differs (the summary says which)",
    )
    repro.add_argument(
        "--push-to-hub",
        metavar="ORG/NAME",
        default=None,
        help="publish the judged predictions as a Hub dataset (config <benchmark>-<split>; needs --benchmark)",
    )
    repro.add_argument("--benchmark", default=None, help="with --push-to-hub: the benchmark's name, e.g. spider")
    repro.add_argument("--split", default="dev", help="with --push-to-hub: the benchmark split (default dev)")
    repro.add_argument(
        "--model",
        default=None,
        help="the model that wrote the predictions, for the summary and card (default: what `sense-hub predict` "
        "recorded next to PRED)",
    )
    repro.add_argument(
        "--dataset-dir",
        type=Path,
        metavar="DIR",
        default=None,
        help="with --push-to-hub: write the predictions dataset repo folder here (default: a temporary folder)",
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
    if args.allow_changed_databases and args.expect_fingerprints is None:
        raise UsageError(
            "--allow-changed-databases needs --expect-fingerprints FILE (the fingerprints to compare with)"
        )
    if args.push_to_hub is not None:
        _check_push_arguments(args)
    records = read_predictions(args.predictions, gold=args.gold)
    fingerprints, referenced = input_fingerprints(records, db_root=args.db_root, predictions=args.predictions)
    if args.gold is not None:
        fingerprints["gold_file"] = sha256_file(args.gold)
    check = _check_fingerprints(args, fingerprints, referenced) if args.expect_fingerprints is not None else None
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
    from sense_hub.sampling import run_info

    summary = summarize(verdicts, metric=args.metric)
    run = run_info(args.predictions) or {}
    if args.model is not None:
        run["model"] = args.model
    if run:
        summary["run"] = run
    summary["fingerprints"] = fingerprints
    if check is not None:
        summary["fingerprint_check"] = check
    if args.push_to_hub is not None:
        try:
            summary.update(_push_predictions(args, rows, summary))
        except SenseHubError:
            _print_summary(summary)  # the scores stand; only the upload failed
            raise
    _print_summary(summary)
    return 0


def _print_summary(summary: dict) -> None:
    sys.stdout.write(json.dumps(summary) + "\n")
    sys.stdout.flush()


def _check_push_arguments(args: argparse.Namespace) -> None:
    from sense_hub.hub import SPLIT_NAME, check_repo_id

    try:
        check_repo_id(args.push_to_hub)
    except ValueError as err:
        raise UsageError(f"--push-to-hub: {err}") from err
    if not args.benchmark:
        raise UsageError(
            "--push-to-hub needs --benchmark NAME (e.g. spider): the dataset has one config per benchmark"
        )
    if not SPLIT_NAME.match(args.split) or not SPLIT_NAME.match(args.benchmark.replace("-", "_")):
        raise UsageError(
            f"--benchmark {args.benchmark!r} / --split {args.split!r}: use letters, digits and '_' (e.g. spider, dev)"
        )


def _check_fingerprints(args: argparse.Namespace, fingerprints: dict, referenced: list[str]) -> dict:
    """Compare with --expect-fingerprints: refuse (exit 2) when a database differs, unless allowed."""
    expected = read_expected_fingerprints(args.expect_fingerprints)
    check = check_databases(expected["databases"], fingerprints["databases"], referenced=referenced)
    if not check.ok:
        message = mismatch_message(check, expected_path=args.expect_fingerprints)
        if not args.allow_changed_databases:
            raise FingerprintMismatchError(
                f"{message}: refusing to score; use the same databases, or pass --allow-changed-databases to "
                "score anyway"
            )
        sys.stderr.write(f"sense-hub eval: warning: {message}; scoring anyway (--allow-changed-databases)\n")
    if isinstance(expected.get("gold"), str) and expected["gold"] != fingerprints["gold"]:
        sys.stderr.write(
            f"sense-hub eval: warning: the gold SQL differs from {args.expect_fingerprints} "
            "(another question set or corrected gold queries): the scores are not comparable item by item\n"
        )
    return {
        "expected": str(args.expect_fingerprints),
        **check.as_dict(),
        "gold_matches": expected.get("gold") == fingerprints["gold"] if "gold" in expected else None,
        "allowed_changed_databases": bool(args.allow_changed_databases and not check.ok),
    }


def _push_predictions(args: argparse.Namespace, rows: list[dict], summary: dict) -> dict:
    import shlex
    import tempfile

    from sense_hub.hub import predictions_config_name, predictions_info, push_dataset_repo, write_predictions_repo

    info = {**predictions_info(summary), "command": shlex.join(["sense-hub", *sys.argv[1:]])}
    with tempfile.TemporaryDirectory(prefix="sense-hub-predictions-") as tmp:
        out_dir = args.dataset_dir or Path(tmp)
        write_predictions_repo(
            rows,
            out_dir=out_dir,
            benchmark=args.benchmark,
            split=args.split,
            info=info,
            repo_id=args.push_to_hub,
            source=str(args.predictions),
        )
        from huggingface_hub.errors import HfHubHTTPError

        # HfHubHTTPError is an OSError; a refused connection is the HTTP client's own HTTPError (its base class)
        http_errors = (OSError, *(c for c in HfHubHTTPError.__mro__ if c.__name__ == "HTTPError"))
        try:
            commit = push_dataset_repo(out_dir, repo_id=args.push_to_hub)
        except http_errors as err:
            raise UsageError(
                f"--push-to-hub {args.push_to_hub}: the upload failed ({str(err).splitlines()[0]}); the scores "
                "are printed below; check your token (`hf auth login`) and rerun"
            ) from err
    return {
        "predictions_repo": args.push_to_hub,
        "predictions_config": predictions_config_name(args.benchmark, args.split),
        "predictions_commit": commit,
    }
