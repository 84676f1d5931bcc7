"""`sense-hub sample` (N weak candidates per question, labelled by execution) and `sense-hub predict` (greedy or N
samples with execution voting): the same arguments, told apart by the command name."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from sense_hub.benchmarks import BENCHMARKS, find_benchmark_root, load_benchmark, load_examples
from sense_hub.errors import UsageError
from sense_hub.execution import check_timeout
from sense_hub.generation import BACKENDS
from sense_hub.matching import METRICS
from sense_hub.sampling import budget_report, predict, sample_candidates, weak_stats


def add_cli_arguments(parser: argparse.ArgumentParser) -> None:
    command = parser.prog.split()[-1]
    parser.set_defaults(_command=command)
    sample = command == "sample"
    src = parser.add_argument_group("questions")
    src.add_argument("--benchmark", choices=BENCHMARKS, help="A benchmark in its published layout.")
    src.add_argument(
        "--data-root",
        type=Path,
        help="The benchmark's folder (e.g. data/spider) or a folder holding it (e.g. data, with data/spider).",
    )
    src.add_argument("--input", type=Path, help="Instead of a benchmark: JSON/JSONL with question, sql, db_id.")
    src.add_argument(
        "--db-root",
        type=Path,
        action="append",
        help="Folder with <db_id>/<db_id>.sqlite (repeatable; default: the benchmark's database folders).",
    )
    src.add_argument("--limit", type=int, default=None, help="Only the first N questions.")
    gen = parser.add_argument_group("generation")
    gen.add_argument("--model", default="embedded", help="'embedded', a model folder / Hub id, or a served name.")
    gen.add_argument("--backend", choices=BACKENDS, default=None)
    gen.add_argument("--base-url", default=None, help="Server URL for the openai (.../v1) and tgi backends.")
    gen.add_argument("--api-key", default=None, help="Credential for remote backends.")
    gen.add_argument(
        "-n",
        "--num-samples",
        type=int,
        default=8 if sample else 1,
        help="Candidates per question (default: %(default)s).",
    )
    gen.add_argument(
        "--temperature",
        type=float,
        default=0.8 if sample else None,
        help="Sampling temperature (default: " + ("0.8)." if sample else "0 = greedy for n=1, else 0.8)."),
    )
    gen.add_argument("--top-p", type=float, default=1.0)
    gen.add_argument("--max-new-tokens", type=int, default=256)
    gen.add_argument("--batch-size", type=int, default=8, help="Sequences generated together (local backend).")
    gen.add_argument("--max-concurrency", type=int, default=8, help="Requests in flight (remote backends).")
    gen.add_argument("--seed", type=int, default=0)
    run = parser.add_argument_group("run")
    run.add_argument(
        "--metric",
        choices=METRICS,
        default="strict" if sample else "spider",
        help="Labelling metric" if sample else "How candidate results are grouped for the vote",
    )
    run.add_argument("--timeout", type=float, default=30.0, help="Seconds per query.")
    run.add_argument("--chunk-size", type=int, default=8, help="Questions per generate call and durable append.")
    run.add_argument("--no-progress", action="store_true", help="No progress bar.")
    run.add_argument("--output", type=Path, required=True, help="JSONL to write (resumed when it exists).")
    repair = parser.add_argument_group("repair (sense_hub.repair)")
    repair.add_argument(
        "--repair-rounds",
        type=int,
        default=0,
        metavar="N",
        help="fix SQL that does not run: replace an unknown name, join the table that holds an unknown column, or "
        "ask the model again with SQLite's error, up to N rounds (default 0: off). "
        + (
            "Off for weak data, whose rejected side is the weak model's errors; a repaired record keeps its SQL "
            "before repair in `first_sql`"
            if sample
            else "The summary scores the answers before and after side by side"
        ),
    )
    repair.add_argument(
        "--repair-style",
        choices=("restate", "conversation"),
        default="restate",
        help="how the model is asked again: the task restated with the failed SQL and the error in one message "
        "(default), or the error as a new user turn after the model's answer",
    )
    repair.add_argument(
        "--repair-samples",
        type=int,
        default=4,
        metavar="K",
        help="answers the model samples per repair call (temperature 0.7); the execution vote among those that "
        "run is kept (default 4; 1 = one greedy answer, which small models mostly repeat)",
    )


def load_examples_from_args(args: argparse.Namespace):
    """The examples and database folders named by `--benchmark/--data-root` or `--input` (and `--db-root`)."""
    if bool(args.benchmark) == bool(args.input):
        raise UsageError("give either --benchmark NAME --data-root DIR, or --input FILE")
    if args.benchmark:
        if args.data_root is None:
            raise UsageError("--benchmark needs --data-root (the benchmark's folder, or the folder holding it)")
        examples = load_benchmark(args.benchmark, root=find_benchmark_root(args.benchmark, args.data_root))
    else:
        examples = load_examples(args.input)
    db_roots = args.db_root or examples.db_roots
    if not db_roots:
        raise UsageError("no database folder found: pass --db-root DIR (holding <db_id>/<db_id>.sqlite)")
    if args.limit is not None:
        examples = examples[: args.limit]
    return examples, db_roots


def run_cli(args: argparse.Namespace) -> int:
    from sense_hub.generation import load_generator

    command = getattr(args, "_command", "sample")
    try:
        check_timeout(args.timeout, name="--timeout")
    except ValueError as e:
        raise UsageError(str(e)) from e
    examples, db_roots = load_examples_from_args(args)
    generator = load_generator(
        args.model,
        backend=args.backend,
        base_url=args.base_url,
        api_key=args.api_key,
        batch_size=args.batch_size,
        max_concurrency=args.max_concurrency,
    )
    common: dict[str, Any] = {
        "db_root": db_roots,
        "output": args.output,
        "n": args.num_samples,
        "temperature": args.temperature,
        "top_p": args.top_p,
        "max_new_tokens": args.max_new_tokens,
        "metric": args.metric,
        "seed": args.seed,
        "chunk_size": args.chunk_size,
        "timeout": args.timeout,
        "progress": not args.no_progress,
    }
    if args.repair_rounds < 0 or args.repair_samples < 1:
        raise UsageError("--repair-rounds must be 0 or more and --repair-samples 1 or more")
    repair = {
        "repair_rounds": args.repair_rounds,
        "repair_style": args.repair_style,
        "repair_samples": args.repair_samples,
    }
    if command == "predict":
        rows = predict(
            examples,
            generator,
            greedy_pass=not getattr(args, "no_greedy_pass", False),
            constrained=args.constrained,
            **repair,
            **common,
        )
        report = budget_report(
            rows,
            db_root=db_roots,
            output=args.output,
            n=args.num_samples,
            temperature=args.temperature,
            metric=args.metric,
            timeout=args.timeout,
        )
        summary = {"questions": len(rows), **report, "output": str(args.output)}
    else:
        rows = sample_candidates(examples, generator, **repair, **common)
        summary = {**weak_stats(rows), "output": str(args.output)}
    sys.stdout.write(json.dumps(summary) + "\n")
    return 0
