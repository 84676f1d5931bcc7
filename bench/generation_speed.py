"""Candidates per second with the embedded model: batched sampling against one-at-a-time generation.

Batched: prompts in batches, each with `num_return_sequences=N` (what `sense-hub sample` does). One at a time: one
`generate` call per candidate (batch of one sequence), the naive loop. Both use the same prompts (the one prompt on
Spider dev questions), the same sampling settings and the same token budget, in one process, one after the other,
so the ratio is meaningful even on a busy machine. One-at-a-time is measured on fewer questions (it is slow);
rates are per candidate.

Usage:
    .venv/bin/python bench/generation_speed.py                      # 8 questions x 8 candidates
    .venv/bin/python bench/generation_speed.py --questions 16 --batch-size 64 --threads 1

Needs ../shared/data/spider (Spider dev); exits 0 with a message without it.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "spider"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-root", type=Path, default=DATA, help="the Spider folder (dev.json, database/)")
    parser.add_argument("--model", default="embedded")
    parser.add_argument("--questions", type=int, default=8, help="questions for the batched run")
    parser.add_argument("--single-questions", type=int, default=2, help="questions for the one-at-a-time run")
    parser.add_argument("--n", type=int, default=8, help="candidates per question")
    parser.add_argument("--batch-size", type=int, default=32, help="sequences per batch (prompts x n)")
    parser.add_argument("--max-new-tokens", type=int, default=96)
    parser.add_argument("--temperature", type=float, default=0.8)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument(
        "--compare-plain",
        action="store_true",
        help="also time batched sampling with plain generate (each prompt encoded n times, no shared prefill)",
    )
    args = parser.parse_args()

    if not (args.data_root / "dev.json").is_file():
        print(f"skipped: Spider dev not found at {args.data_root} (pass --data-root)")
        return 0

    from sense_hub.benchmarks import load_benchmark, resolve_database
    from sense_hub.generation import GenerationConfig, TransformersGenerator
    from sense_hub.prompts import extract_sql, prompt_for_database

    examples = load_benchmark("spider", root=args.data_root)
    prompts = []
    for example in examples:
        try:
            db = resolve_database(examples.db_roots, example.db_id)
        except ValueError:
            continue  # wta_1 has no database in the shared copy
        prompts.append(prompt_for_database(example.question, db))
        if len(prompts) == args.questions:
            break

    t0 = time.perf_counter()
    generator = TransformersGenerator(args.model, batch_size=args.batch_size, num_threads=args.threads)
    load_s = time.perf_counter() - t0
    import torch

    print(f"model {args.model}: loaded in {load_s:.1f} s; torch threads {torch.get_num_threads()}")
    config = GenerationConfig(n=args.n, temperature=args.temperature, max_new_tokens=args.max_new_tokens, seed=0)
    generator.generate(prompts[:1], GenerationConfig(max_new_tokens=4))  # warm-up

    t0 = time.perf_counter()
    batched = generator.generate(prompts, config)
    batched_s = time.perf_counter() - t0
    batched_count = sum(len(c) for c in batched)

    plain_s = None
    if args.compare_plain:
        generator.share_prefill = False
        t0 = time.perf_counter()
        generator.generate(prompts, config)
        plain_s = time.perf_counter() - t0
        generator.share_prefill = True

    single_prompts = prompts[: args.single_questions]
    t0 = time.perf_counter()
    single = []
    for prompt in single_prompts:
        for i in range(args.n):
            one = GenerationConfig(n=1, temperature=args.temperature, max_new_tokens=args.max_new_tokens, seed=i)
            single.append(generator.generate([prompt], one)[0][0])
    single_s = time.perf_counter() - t0

    def sql_share(texts):
        sqls = [extract_sql(t) for t in texts]
        return sum(s.upper().startswith(("SELECT", "WITH")) for s in sqls) / max(1, len(sqls))

    batched_rate = batched_count / batched_s
    single_rate = len(single) / single_s
    flat = [c for cands in batched for c in cands]
    print(f"{'':<16}{'candidates':>12}{'seconds':>10}{'cand/s':>10}{'SELECT share':>14}")
    print(f"{'one at a time':<16}{len(single):>12}{single_s:>10.1f}{single_rate:>10.3f}{sql_share(single):>14.2f}")
    if plain_s is not None:
        print(f"{'batched, plain':<16}{batched_count:>12}{plain_s:>10.1f}{batched_count / plain_s:>10.3f}{'':>14}")
    print(f"{'batched':<16}{batched_count:>12}{batched_s:>10.1f}{batched_rate:>10.3f}{sql_share(flat):>14.2f}")
    print(
        f"batched / one-at-a-time: {batched_rate / single_rate:.1f}x "
        f"(batch {args.batch_size} sequences, n={args.n}, max_new_tokens={args.max_new_tokens})"
    )
    distinct = sum(len(set(c)) for c in batched) / len(batched)
    print(f"distinct candidates per question (batched): {distinct:.1f} of {args.n}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
