"""`sense-hub adapt --db shop.sqlite --output-dir DIR`: a small local model for one database (`sense_hub.adapt`)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from sense_hub.errors import UsageError

GGUF_TYPES = ("q8_0", "f16", "bf16", "q4_k_m")


def add_cli_arguments(parser: argparse.ArgumentParser) -> None:
    from sense_hub.adapt import DEFAULT_STUDENT, DEFAULT_TEACHER

    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = (
        "Example: sense-hub adapt --db shop.sqlite --output-dir runs/shop --questions my-questions.jsonl\n"
        "The teacher writes and verifies questions over the database (templates filled from its schema and\n"
        "values); the student is trained on them (SFT, then cDPO on its own execution-labelled mistakes) and\n"
        "scored before and after on --questions, which it never trains on. The same command resumes."
    )
    parser.add_argument("--db", type=Path, required=True, help="the SQLite database to adapt to")
    parser.add_argument("--output-dir", type=Path, required=True, help="run folder: data, models, tables (resumed)")
    parser.add_argument(
        "--questions",
        type=Path,
        default=None,
        help="your held-out questions (JSONL: question, sql): scored before and after, never trained on; without "
        "it a share of the verified questions is held out (synthetic, and said so)",
    )
    parser.add_argument("--student", default=DEFAULT_STUDENT, help=f"the model to adapt (default: {DEFAULT_STUDENT})")
    parser.add_argument(
        "--teacher",
        default=DEFAULT_TEACHER,
        help=f"writes and verifies the questions (default: {DEFAULT_TEACHER}; 'rules': template-worded questions, no model)",
    )
    parser.add_argument(
        "--teacher-base-url", default=None, help="an OpenAI-compatible endpoint serving --teacher (vLLM, SGLang, ...)"
    )
    parser.add_argument("--start-from", default=None, help="a model to start from instead of the student")
    parser.add_argument(
        "--budget-minutes", type=float, default=None, help="training time, split between SFT and cDPO (default: none)"
    )
    parser.add_argument("--gguf", choices=GGUF_TYPES, default=None, help="also write a GGUF file for llama.cpp")
    parser.add_argument("--push-to-hub", default=None, metavar="ORG/NAME", help="publish the adapted model")
    parser.add_argument("--templates", type=int, default=200, help="template SQL candidates (default: 200)")
    parser.add_argument("--sft-epochs", type=float, default=2.0, help="SFT epochs (default: 2)")
    parser.add_argument("--cdpo-epochs", type=float, default=1.0, help="cDPO epochs (default: 1)")
    parser.add_argument("--seed", type=int, default=42, help="seed of every random choice (default: 42)")
    for stage in ("sft", "cdpo"):
        parser.add_argument(
            f"--{stage}-option",
            action="append",
            default=[],
            metavar="KEY=VALUE",
            help=f"a field of the {stage} trainer over sense_hub/data/recipes/adapt-{stage}.yaml, e.g. "
            + ("lora_target_modules=all-linear" if stage == "sft" else "cdpo_epsilon=0.0")
            + " (repeatable)",
        )


def _options(pairs: list[str], flag: str) -> dict:
    import yaml

    options = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"{flag} {pair!r}: expected KEY=VALUE, e.g. {flag} learning_rate=1e-4")
        options[key.strip()] = yaml.safe_load(value) if value.strip() else ""
    return options


def run_cli(args: argparse.Namespace) -> int:
    from sense_hub.adapt import AdaptOptions, command_line, run_adapt

    for name in ("templates", "sft_epochs", "cdpo_epochs"):
        if getattr(args, name) <= 0:
            raise UsageError(f"--{name.replace('_', '-')} must be positive, got {getattr(args, name)}")
    if args.budget_minutes is not None and args.budget_minutes <= 0:
        raise UsageError(f"--budget-minutes must be positive, got {args.budget_minutes}")
    opts = AdaptOptions(
        db=args.db,
        output_dir=args.output_dir,
        questions=args.questions,
        student=args.student,
        teacher=args.teacher,
        teacher_base_url=args.teacher_base_url,
        start_from=args.start_from,
        budget_minutes=args.budget_minutes,
        gguf=args.gguf,
        push_to_hub=args.push_to_hub,
        templates=args.templates,
        sft_epochs=args.sft_epochs,
        cdpo_epochs=args.cdpo_epochs,
        seed=args.seed,
        sft_options=_options(args.sft_option, "--sft-option"),
        cdpo_options=_options(args.cdpo_option, "--cdpo-option"),
        command=command_line(),
    )
    summary = run_adapt(opts)
    sys.stdout.write(json.dumps({"model": summary["model"], "scores": summary["scores"]}) + "\n")
    return 0
