"""`sense-hub synthesize`: strong data from a strong LLM (new domains) or from SQL templates over real databases.

Prints the run's table (cost and yield), then a one-line JSON summary.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from sense_hub.cards import plot_synthesis_statistics
from sense_hub.contamination import DEFAULT_NGRAM, DEFAULT_THRESHOLD
from sense_hub.errors import UsageError
from sense_hub.generation import BACKENDS
from sense_hub.synthesis import (
    SynthesisStats,
    resume_output,
    synthesis_statistics,
    synthesize_strong,
    synthesize_templates,
)


def add_cli_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = (
        "examples:\n"
        "  sense-hub synthesize --strategy templates --db-root spider/database --model embedded \\\n"
        "      --per-database 40 --rounds 2 --output strong_templates.jsonl\n"
        "  sense-hub synthesize --strategy strong --model gpt-4o --backend openai \\\n"
        "      --base-url https://api.openai.com/v1 --seeds seeds.jsonl --num-examples 200 \\\n"
        "      --db-out-root synthetic_dbs --output strong.jsonl"
    )
    parser.add_argument("--strategy", choices=("strong", "templates"), required=True, help="which generator")
    parser.add_argument("--output", type=Path, required=True, help="strong records (JSONL, appended, resumable)")
    parser.add_argument("--model", default="embedded", help="the generating model (default: embedded)")
    parser.add_argument("--backend", choices=BACKENDS, default=None, help="default: transformers for local models")
    parser.add_argument("--base-url", default=None, help="server URL for the openai (.../v1) and tgi backends")
    parser.add_argument("--api-key", default=None, help="credential for remote backends (default: $OPENAI_API_KEY)")
    parser.add_argument("--batch-size", type=int, default=16, help="prompts per generate call (default: 16)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    parser.add_argument("--stats-plot", type=Path, default=None, help="also write the statistics plot (PNG)")
    group = parser.add_argument_group("contamination (sense_hub.contamination)")
    group.add_argument(
        "--decontaminate",
        default=None,
        metavar="PATH",
        help="check the records against a benchmark: its folder (e.g. data/spider), NAME:FOLDER, or a JSON/JSONL "
        "of question, sql, db_id; counts go to <output stem>.contamination.json and the dataset card",
    )
    group.add_argument(
        "--decontaminate-action",
        choices=("drop", "flag"),
        default="drop",
        help="drop matching records (to the rejected file) or flag them in a `contamination` column (default: drop)",
    )
    group.add_argument(
        "--decontaminate-threshold",
        type=float,
        default=DEFAULT_THRESHOLD,
        help="question n-gram overlap at or above which a record matches (default: %(default)s)",
    )
    group.add_argument("--decontaminate-ngram", type=int, default=DEFAULT_NGRAM, help="n-gram size (default: 4)")
    group = parser.add_argument_group("templates")
    group.add_argument("--db-root", type=Path, help="folder of <db_id>/<db_id>.sqlite databases")
    group.add_argument("--db-ids", default=None, help="comma-separated db_ids (default: every database)")
    group.add_argument("--per-database", type=int, default=20, help="candidate queries per database (default: 20)")
    group.add_argument("--rounds", type=int, default=2, help="question rounds per candidate (default: 2)")
    group.add_argument("--no-verify", action="store_true", help="keep executable pairs without model verification")
    group.add_argument(
        "--question-source",
        choices=("auto", "model", "template"),
        default="auto",
        help="who writes the first question: the SQL-to-text model or the template rule (default: auto = the "
        "model when verifying, the rule with --no-verify)",
    )
    group.add_argument("--verifier-model", default=None, help="text-to-SQL model that verifies (default: --model)")
    group.add_argument(
        "--rule-fallback",
        action="store_true",
        help="when every model-written question fails verification, try the template's rule-worded question",
    )
    group.add_argument("--families", default=None, help="comma-separated template families (default: all)")
    group.add_argument("--rule-questions-only", action="store_true", help="no SQL-to-text model; rule questions")
    group.add_argument("--time-budget", type=float, default=None, help="stop after this many seconds (resumable)")
    group = parser.add_argument_group("strong")
    group.add_argument("--seeds", type=Path, help="seed examples (JSONL with question, sql[, schema, domain])")
    group.add_argument("--num-examples", type=int, default=10, help="requests to the strong model (default: 10)")
    group.add_argument("--db-out-root", type=Path, help="where the new databases are written")
    group.add_argument("--temperature", type=float, default=0.8, help="strong model temperature (default: 0.8)")
    group.add_argument("--max-new-tokens", type=int, default=1500, help="strong model reply budget (default: 1500)")


def run_cli(args: argparse.Namespace) -> int:
    from sense_hub.generation import load_generator

    stats = SynthesisStats()
    index = None
    if args.decontaminate is not None:  # load the benchmark first: a bad PATH fails before any generation
        from sense_hub.contamination import BenchmarkIndex

        if not 0.0 < args.decontaminate_threshold <= 1.0:
            raise UsageError(f"--decontaminate-threshold must lie in (0, 1], got {args.decontaminate_threshold}")
        if args.decontaminate_ngram < 1:
            raise UsageError(f"--decontaminate-ngram must be at least 1, got {args.decontaminate_ngram}")
        index = BenchmarkIndex.from_path(
            args.decontaminate, ngram=args.decontaminate_ngram, threshold=args.decontaminate_threshold
        )
    if args.strategy == "templates":
        from sense_hub.databases import list_databases

        if args.db_root is None:
            raise UsageError("--strategy templates needs --db-root (a folder of <db_id>/<db_id>.sqlite)")
        databases = list_databases(args.db_root)
        if args.db_ids:
            wanted = [d.strip() for d in args.db_ids.split(",") if d.strip()]
            missing = [d for d in wanted if d not in databases]
            if missing:
                raise UsageError(
                    f"--db-ids: {missing} not found under {args.db_root} (have {sorted(databases)[:10]}...)"
                )
            databases = {d: databases[d] for d in wanted}
        if not databases:
            raise UsageError(f"no <db_id>/<db_id>.sqlite databases under {args.db_root}")
        model = None
        if not args.no_verify or (args.question_source == "model" and not args.rule_questions_only):
            model = load_generator(args.model, backend=args.backend, base_url=args.base_url, api_key=args.api_key,
                                   batch_size=args.batch_size)  # fmt: skip
        verifier = None if args.no_verify else model
        if args.verifier_model and not args.no_verify:
            verifier = load_generator(args.verifier_model, backend=args.backend, base_url=args.base_url,
                                      api_key=args.api_key, batch_size=args.batch_size)  # fmt: skip
        records = synthesize_templates(
            [databases[d] for d in sorted(databases)],
            generator=None if args.rule_questions_only else model,
            verifier=verifier,
            output=args.output,
            per_database=args.per_database,
            rounds=args.rounds,
            seed=args.seed,
            question_source=args.question_source,
            rule_fallback=args.rule_fallback,
            families=[f.strip() for f in args.families.split(",")] if args.families else None,
            batch_size=args.batch_size,
            time_budget=args.time_budget,
            stats=stats,
        )
    else:
        if args.seeds is None or args.db_out_root is None:
            raise UsageError("--strategy strong needs --seeds (JSONL) and --db-out-root (a folder)")
        generator = load_generator(args.model, backend=args.backend, base_url=args.base_url, api_key=args.api_key,
                                   batch_size=args.batch_size)  # fmt: skip
        records = synthesize_strong(
            generator,
            seeds=args.seeds,
            output=args.output,
            db_out_root=args.db_out_root,
            n=args.num_examples,
            seed=args.seed,
            temperature=args.temperature,
            max_new_tokens=args.max_new_tokens,
            batch_size=args.batch_size,
            stats=stats,
        )
    contamination = None
    if index is not None:
        from sense_hub.synthesis.output import decontaminate_output

        contamination = decontaminate_output(args.output, index, action=args.decontaminate_action)
        records = resume_output(args.output).records  # what is left (dropped) or rewritten (flagged)
    sys.stdout.write(stats.table() + "\n")
    summary = stats.as_dict()
    summary["records_in_output"] = len(records)
    if contamination is not None:
        summary["contamination"] = contamination
    if args.stats_plot:
        summary["stats_plot"] = str(plot_synthesis_statistics(synthesis_statistics(records), args.stats_plot))
    sys.stdout.write(json.dumps(summary) + "\n")
    return 0
