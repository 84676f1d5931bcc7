"""Latency of the Space's `/answer` on a Spider dev database with an embedded model (target: median < 5 s on CPU).

The model is loaded once and kept warm; one untimed question warms it up. Each question is then asked through
the launched app's `/answer` endpoint (gradio_client, real HTTP; the Space's fast greedy path: the schema's
key/value cache reused between questions, decoding stopped at the end of the statement) and, side by side,
through `SQLAssistant.answer` with that path off (a full `generate` per answer, as `sense-hub predict` does).
Greedy decoding, `--max-new-tokens` tokens at most.

Usage:
    python bench/space_latency.py                       # car_1, 10 questions
    python bench/space_latency.py --db-id world_1 --questions 10 --max-new-tokens 96

On a shared, busy CPU the wall time measures the neighbours; with `--threads 1` the process CPU time per answer
is also printed, which approximates the wall time on an idle core.

Skips (exit 0) when ../shared/data/spider is not there.
"""

import argparse
import dataclasses
import json
import os
import statistics
import sys
import time
from pathlib import Path

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="the shared data folder (spider/ inside)")
    parser.add_argument("--db-id", default="car_1", help="a Spider dev database (default: car_1, 6 tables)")
    parser.add_argument("--questions", type=int, default=10)
    parser.add_argument("--max-new-tokens", type=int, default=96)
    parser.add_argument("--model", default="embedded:qwen2.5-coder-0.5b", help="the Space's default")
    parser.add_argument(
        "--repair-rounds", type=int, default=None, help="repair rounds (default: the Space's default, 1; 0 = off)"
    )
    parser.add_argument("--skip-api", action="store_true", help="time only the library call")
    parser.add_argument("--skip-library", action="store_true", help="time only the /answer endpoint")
    parser.add_argument(
        "--threads", type=int, default=None, help="torch CPU threads (default: the generator's choice, one per CPU)"
    )
    args = parser.parse_args()
    if args.threads:  # before torch is imported: OpenMP reads it once, for every thread (Gradio's workers too)
        os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = str(args.threads)

    spider = args.data / "spider"
    db = spider / "database" / args.db_id / f"{args.db_id}.sqlite"
    if not (spider / "dev.json").is_file() or not db.is_file():
        print(f"skipped: Spider dev data not found ({spider / 'dev.json'}, {db})")
        return 0

    from sense_hub.execution import execute
    from sense_hub.matching import results_match
    from sense_hub.space import SpaceConfig, SQLAssistant, build_demo, launch_options

    dev = [e for e in json.loads((spider / "dev.json").read_text()) if e["db_id"] == args.db_id]
    items = dev[: args.questions + 1]
    if len(items) < 2:
        print(f"skipped: {args.db_id} has fewer than 2 dev questions")
        return 0
    warmup, items = items[0], items[1:]

    config = SpaceConfig(model=args.model, max_new_tokens=args.max_new_tokens)
    if args.repair_rounds is not None:
        config = dataclasses.replace(config, repair_rounds=args.repair_rounds)
    repaired = []
    assistant = SQLAssistant(config)
    start = time.perf_counter()
    assistant.warm_up()
    load_s = time.perf_counter() - start
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    assistant.answer(warmup["question"], db)
    # side by side: the same model without the Space's fast greedy path (every answer a full `generate`)
    plain = SQLAssistant(dataclasses.replace(config, fast_greedy=False), generator=assistant.warm_up())

    client = demo = None
    if not args.skip_api:
        from gradio_client import Client, handle_file

        demo = build_demo(config, assistant=assistant)
        _, url, _ = demo.launch(
            prevent_thread_lock=True, server_name="127.0.0.1", quiet=True, **launch_options(config)
        )
        client = Client(url, verbose=False)
        client.predict(handle_file(str(db)), warmup["question"], api_name="/answer")

    api_s, api_cpu, lib_s, lib_cpu, gen_s, executes, correct = [], [], [], [], [], 0, 0
    print(f"{'api s':>6} {'api cpu':>7} {'lib s':>6} {'lib cpu':>7} {'gen s':>6}  ok  EX  question")
    for e in items:
        a_s = a_c = l_s = l_c = g_s = float("nan")
        if client is not None:
            t, c = time.perf_counter(), time.process_time()
            sql, _table = client.predict(handle_file(str(db)), e["question"], api_name="/answer")
            a_s, a_c = time.perf_counter() - t, time.process_time() - c
            api_s.append(a_s)
            api_cpu.append(a_c)
        if not args.skip_library:
            t, c = time.perf_counter(), time.process_time()
            answer = plain.answer(e["question"], db)
            l_s, l_c, g_s, sql = time.perf_counter() - t, time.process_time() - c, answer.generation_s, answer.sql
            lib_s.append(l_s)
            if answer.repair_note():
                repaired.append(answer.repair_note())
            lib_cpu.append(l_c)
            gen_s.append(g_s)
        result, gold = execute(db, sql), execute(db, e["query"])
        right = result.ok and gold.ok and results_match(gold, result, metric="spider")
        executes += result.ok
        correct += right
        print(
            f"{a_s:6.2f} {a_c:7.2f} {l_s:6.2f} {l_c:7.2f} {g_s:6.2f}  {'y' if result.ok else 'n':>2}  {'y' if right else 'n':>2}  {e['question'][:60]}"
        )
    if demo is not None:
        demo.close()

    n = len(items)
    print()
    print(
        f"database {args.db_id}, {n} questions, model {args.model} (loaded in {load_s:.1f} s), "
        f"max_new_tokens {args.max_new_tokens}, greedy, torch threads {_threads()}; "
        f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"
    )
    if api_s:
        print(
            f"/answer (HTTP)     median {statistics.median(api_s):.2f} s   p90 {percentile(api_s, 0.9):.2f} s   wall"
        )
        print(
            f"                   median {statistics.median(api_cpu):.2f} s   p90 {percentile(api_cpu, 0.9):.2f} s   CPU"
        )
    if lib_s:
        print(
            f"library, plain     median {statistics.median(lib_s):.2f} s   p90 {percentile(lib_s, 0.9):.2f} s   wall"
        )
        print(
            f"                   median {statistics.median(lib_cpu):.2f} s   p90 {percentile(lib_cpu, 0.9):.2f} s   CPU"
        )
        print(f"  of which model   median {statistics.median(gen_s):.2f} s   wall")
    if api_s and lib_s:
        print(f"plain / /answer    {statistics.median(lib_s) / statistics.median(api_s):.2f}x at the median (wall)")
    print(f"SQL executes {executes}/{n}, correct (spider EX) {correct}/{n}")
    print(f"repair rounds {config.repair_rounds}: {len(repaired)} library answers went through repair")
    for note in repaired:
        print(f"  {note}")
    target = statistics.median(api_s or lib_s)
    print(f"target median < 5 s (wall): {'met' if target < 5 else 'NOT met'} ({target:.2f} s)")
    if _threads() == 1:
        cpu = statistics.median(api_cpu or lib_cpu)
        print(
            f"one thread: CPU time ~ wall time on an idle core, so on a quiet machine about {cpu:.2f} s "
            f"({'under' if cpu < 5 else 'over'} 5 s); the wall time above includes waiting for other processes"
        )
    return 0


def _threads() -> int:
    import torch

    return torch.get_num_threads()


if __name__ == "__main__":
    sys.exit(main())
