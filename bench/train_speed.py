"""CPU training throughput of the student settings, side by side: tokens/s, sequences/s and the loss they reach.

Every row trains on the same data in the same order: the Spider dev questions of the SENSE experiment's training
databases (the first 10 by sorted db_id), each a chat prompt from `prompts.prompt_for_database` (schema with 3
sample values per column, as training uses) and its gold SQL as the completion; SFT with completion-only loss
through `sense_hub.training.build_sft_trainer` (TRL's SFTTrainer), `--batch` sequences per optimizer step. The
first `--warmup` steps are not timed; tokens/s counts the real (non-padding) tokens of the `--steps` timed steps
(`include_num_input_tokens_seen="non_padding"`) over their wall time. Loss is the mean training loss of the timed
steps: the same order of examples, so settings that change only the arithmetic should show about the same loss.

The default rows run the Qwen student's recipes as written (`recipes/qwen2.5-coder-0.5b/{sft,cdpo}.yaml`, on
`--batch` sequences or pairs a step): `*-before` is TRL's own CPU path (every position through the whole
vocabulary) with the recipes' former LoRA dropout of 0.05, `*-full-logits` the same without dropout, and the plain
row logits only where a loss is taken (`sense_hub.compute.compact_lm_head`). Each also reports the user and system
CPU seconds and minor page faults of its timed steps and its process's peak RSS; `--profile DIR` writes
torch.profiler's top operations of each row's last step. cDPO rows precompute the reference log-probs first
(untimed), as the recipe does.

Other rows (`--rows` picks some):

| row | student | setting |
|---|---|---|
| smollm2-fp32 | SmolLM2-135M, full fine-tuning | fp32: the CPU recipe today (TRL defaults) |
| smollm2-bf16 | SmolLM2-135M, full fine-tuning | bf16 autocast (`bf16: true`; AVX512-BF16/AMX where the CPU has it) |
| smollm2-packing | SmolLM2-135M, full fine-tuning | fp32, `packing: true` (best-fit packing, padding-free) |
| smollm2-short | SmolLM2-135M, full fine-tuning | fp32, schema without sample values (shorter prompts) |
| smollm2-bf16-short | SmolLM2-135M, full fine-tuning | bf16 autocast and the shorter prompts |
| smollm2-bf16-grouped | SmolLM2-135M, full fine-tuning | bf16 autocast, batches of similar length (less padding) |
| smollm2-bf16-grouped-short | SmolLM2-135M, full fine-tuning | bf16 autocast, grouped by length, the shorter prompts |
| smollm2-bf16-weights | SmolLM2-135M, full fine-tuning | bf16 weights and optimizer state (`dtype: bfloat16`), no fp32 master copy |
| smollm2-bf16-compile | SmolLM2-135M, full fine-tuning | bf16 autocast, `torch_compile: true` (inductor; batches padded to a multiple of 64) |
| qwen05-lora | Qwen2.5-Coder-0.5B, LoRA r 16 on all linear layers | fp32 |
| qwen05-lora-bf16 | Qwen2.5-Coder-0.5B, LoRA r 16 on all linear layers | bf16 autocast |
| qwen05-lora-bf16-grouped | Qwen2.5-Coder-0.5B, LoRA r 16 on all linear layers | bf16 autocast, grouped by length |
| qwen05-full-bf16 | Qwen2.5-Coder-0.5B, full fine-tuning | bf16 autocast (fp32 weights and Adam state: ~8 GB) |
| qwen05-lora-top8-grouped | Qwen2.5-Coder-0.5B, LoRA r 16 on the linear layers of the top 8 of 24 blocks | bf16 autocast, grouped by length |

Each row runs in its own process (one model in memory at a time). Time it with nothing else running: the figures
are wall-clock.

Usage:
    .venv/bin/python bench/train_speed.py [--rows smollm2-fp32,smollm2-bf16] [--steps 3] [--warmup 1] [--batch 4]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SPIDER = REPO.parent / "shared" / "data" / "spider"

# A peft regex (a string is matched in full): the linear layers of blocks 16-23. The backward pass stops at block 16.
TOP8 = r".*\.layers\.(1[6-9]|2[0-3])\.(self_attn\.(q|k|v|o)_proj|mlp\.(gate|up|down)_proj)"

ROWS = {
    "smollm2-fp32": {"model": "embedded", "bf16": False, "packing": False, "sample_values": 3, "lora": False},
    "smollm2-bf16": {"model": "embedded", "bf16": True, "packing": False, "sample_values": 3, "lora": False},
    "smollm2-packing": {"model": "embedded", "bf16": False, "packing": True, "sample_values": 3, "lora": False},
    "smollm2-short": {"model": "embedded", "bf16": False, "packing": False, "sample_values": 0, "lora": False},
    "smollm2-bf16-short": {"model": "embedded", "bf16": True, "packing": False, "sample_values": 0, "lora": False},
    "smollm2-bf16-grouped": {
        "model": "embedded", "bf16": True, "packing": False, "sample_values": 3, "lora": False, "grouped": True
    },
    "smollm2-bf16-grouped-short": {
        "model": "embedded", "bf16": True, "packing": False, "sample_values": 0, "lora": False, "grouped": True
    },
    "smollm2-bf16-weights": {
        "model": "embedded", "bf16": True, "packing": False, "sample_values": 3, "lora": False, "dtype": "bfloat16"
    },
    "smollm2-bf16-compile": {
        "model": "embedded", "bf16": True, "packing": False, "sample_values": 3, "lora": False, "compile": True
    },
    "qwen05-lora": {
        "model": "embedded:qwen2.5-coder-0.5b", "bf16": False, "packing": False, "sample_values": 3, "lora": True
    },
    "qwen05-lora-bf16": {
        "model": "embedded:qwen2.5-coder-0.5b", "bf16": True, "packing": False, "sample_values": 3, "lora": True
    },
    "qwen05-lora-bf16-grouped": {
        "model": "embedded:qwen2.5-coder-0.5b", "bf16": True, "packing": False, "sample_values": 3, "lora": True,
        "grouped": True,
    },
    "qwen05-lora-top8-grouped": {
        "model": "embedded:qwen2.5-coder-0.5b", "bf16": True, "packing": False, "sample_values": 3, "lora": True,
        "grouped": True, "target": TOP8,
    },
    "qwen05-full-bf16": {
        "model": "embedded:qwen2.5-coder-0.5b", "bf16": True, "packing": False, "sample_values": 3, "lora": False
    },
}  # fmt: skip

# The Qwen student's recipes as written (recipes/qwen2.5-coder-0.5b/{sft,cdpo}.yaml), on `--batch` sequences (cDPO:
# pairs) per step without accumulation: TRL's own path on a CPU (every position through the whole vocabulary), then
# logits only where a loss is taken (sense_hub.compute.compact_lm_head), then settings the profile pointed at.
QWEN = "recipes/qwen2.5-coder-0.5b"
ROWS.update({
    "qwen05-sft-before": {"recipe": f"{QWEN}/sft.yaml", "logits": "full", "options": {"lora_dropout": 0.05}},
    "qwen05-sft-full-logits": {"recipe": f"{QWEN}/sft.yaml", "logits": "full"},
    "qwen05-sft": {"recipe": f"{QWEN}/sft.yaml"},
    "qwen05-sft-no-dropout": {"recipe": f"{QWEN}/sft.yaml", "options": {"lora_dropout": 0.0}},
    "qwen05-sft-eager-attention": {"recipe": f"{QWEN}/sft.yaml", "options": {"attn_implementation": "eager"}},
    "qwen05-sft-bf16-weights": {"recipe": f"{QWEN}/sft.yaml", "options": {"dtype": "bfloat16"}},
    "qwen05-cdpo-before": {"recipe": f"{QWEN}/cdpo.yaml", "logits": "full", "options": {"lora_dropout": 0.05}},
    "qwen05-cdpo-full-logits": {"recipe": f"{QWEN}/cdpo.yaml", "logits": "full"},
    "qwen05-cdpo": {"recipe": f"{QWEN}/cdpo.yaml"},
})  # fmt: skip
DEFAULT_ROWS = [
    "qwen05-sft-before", "qwen05-sft-full-logits", "qwen05-sft",
    "qwen05-cdpo-before", "qwen05-cdpo-full-logits", "qwen05-cdpo",
]  # fmt: skip


def training_examples(spider: Path, *, sample_values: int, limit: int) -> list[dict]:
    """Prompt/completion records of the training databases' Spider dev questions, in a fixed order."""
    from sense_hub.benchmarks import load_benchmark
    from sense_hub.databases import database_path
    from sense_hub.prompts import build_prompt, serialize_schema

    dev = load_benchmark("spider", root=spider)
    train_dbs = sorted({e.db_id for e in dev})[:10]
    root = spider / "database"
    out = []
    for e in dev:
        if e.db_id not in train_dbs:
            continue
        schema = serialize_schema(database_path(root, e.db_id), sample_values=sample_values, question=e.question)
        prompt = build_prompt(e.question, schema, evidence=e.evidence)
        out.append({"prompt": prompt, "completion": [{"role": "assistant", "content": e.sql}]})
        if len(out) == limit:
            break
    return out


def preference_examples(spider: Path, *, sample_values: int, limit: int) -> list[dict]:
    """Prompt/chosen/rejected records: the gold SQL against the gold SQL of the next question on the same database
    (a wrong answer of realistic length; only the arithmetic is measured)."""
    records = training_examples(spider, sample_values=sample_values, limit=limit + 1)
    return [
        {"prompt": a["prompt"], "chosen": a["completion"], "rejected": b["completion"]}
        for a, b in zip(records, records[1:], strict=False)
    ][:limit]


def measure(name: str, args: argparse.Namespace) -> dict:
    """Train one row for warmup + timed steps; its figures (the timed steps' wall and CPU time, the process's peak RSS)."""
    import logging
    import resource
    import warnings

    from datasets import Dataset
    from transformers import TrainerCallback

    from sense_hub import compute

    warnings.filterwarnings("ignore")
    logging.disable(logging.WARNING)
    row = ROWS[name]
    steps = args.warmup + args.steps

    class Clock(TrainerCallback):
        def __init__(self):
            self.marks: list[tuple[float, int, float, float, int]] = []
            self.losses: list[float] = []

        def on_step_begin(self, args_, state, control, **kwargs):
            if args.profile and state.global_step == steps - 1:  # the last step, under torch.profiler
                import torch.profiler

                self.profiler = torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU])
                self.profiler.__enter__()

        def on_step_end(self, args_, state, control, **kwargs):
            if getattr(self, "profiler", None) is not None:
                self.profiler.__exit__(None, None, None)
                table = self.profiler.key_averages().table(sort_by="self_cpu_time_total", row_limit=25)
                args.profile.mkdir(parents=True, exist_ok=True)
                (args.profile / f"{name}.txt").write_text(table)
                self.profiler = None
            usage = resource.getrusage(resource.RUSAGE_SELF)
            self.marks.append(
                (
                    time.perf_counter(),
                    int(state.num_input_tokens_seen),
                    usage.ru_utime,
                    usage.ru_stime,
                    usage.ru_minflt,
                )
            )

        def on_log(self, args_, state, control, logs=None, **kwargs):
            if logs and "loss" in logs:
                self.losses.append(float(logs["loss"]))

    clock = Clock()
    common = {
        "use_cpu": True,
        "max_length": 1024,
        "per_device_train_batch_size": args.batch,
        "gradient_accumulation_steps": 1,
        "max_steps": steps,
        "lr_scheduler_type": "constant",
        "logging_steps": 1,
        "save_strategy": "no",
        "report_to": "none",
        "seed": 42,
        "dataloader_num_workers": 0,
        "include_num_input_tokens_seen": "non_padding",
        "disable_tqdm": True,
    }
    with tempfile.TemporaryDirectory() as out:
        if "recipe" in row:
            script, training_args, model_args, build, records = recipe_row(row, args, out, steps, common)
        else:
            script, training_args, model_args, build, records = custom_row(row, args, out, steps, common)
        trainer = build(script, training_args, model_args, train_dataset=Dataset.from_list(records), callbacks=[clock])
        if row.get("logits") == "full":
            compute.compact_lm_head(False)  # TRL's own choice on a CPU: every position through the whole vocabulary
        threads = compute.configure_threads()
        trainer.train()
    (t0, n0, u0, s0, f0), (t1, n1, u1, s1, f1) = clock.marks[args.warmup - 1], clock.marks[-1]
    timed = clock.losses[args.warmup : args.warmup + args.steps]
    return {
        "row": name,
        "threads": threads,
        "tokens_per_s": (n1 - n0) / (t1 - t0),
        "sequences_per_s": args.steps * args.batch / (t1 - t0),
        "seconds_per_step": (t1 - t0) / args.steps,
        "tokens_per_step": (n1 - n0) / args.steps,
        "user_s": u1 - u0,
        "system_s": s1 - s0,
        "minor_faults": f1 - f0,
        "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2,
        "loss": sum(timed) / max(1, len(timed)),
    }


def recipe_row(row: dict, args: argparse.Namespace, out: str, steps: int, common: dict):
    """A recipe YAML exactly as written, with the bench's data, batch and step count (and the row's `options`)."""
    from trl import ModelConfig, SFTConfig, TrlParser

    from sense_hub.training import CDPOConfig, SenseScriptArguments, build_preference_trainer, build_sft_trainer

    cdpo = Path(row["recipe"]).stem == "cdpo"
    overrides = {**common, "output_dir": out, "max_length": 2048, **row.get("options", {})}
    counted = overrides.pop("include_num_input_tokens_seen")  # not a flag TrlParser reads as a string
    argv = ["--config", str(REPO / row["recipe"])]
    for key, value in overrides.items():
        argv += [f"--{key}", str(value)]
    parser = TrlParser((SenseScriptArguments, CDPOConfig if cdpo else SFTConfig, ModelConfig))
    script, training_args, model_args = parser.parse_args_and_config(argv)
    training_args.include_num_input_tokens_seen = counted
    if cdpo:
        records = preference_examples(args.spider, sample_values=3, limit=steps * args.batch)
        return script, training_args, model_args, build_preference_trainer, records
    records = training_examples(args.spider, sample_values=3, limit=steps * args.batch * 8)
    return script, training_args, model_args, build_sft_trainer, records


def custom_row(row: dict, args: argparse.Namespace, out: str, steps: int, common: dict):
    """The older rows: settings given in the row itself (SFT)."""
    from trl import ModelConfig, SFTConfig

    from sense_hub.training import SenseScriptArguments, build_sft_trainer

    model_args = ModelConfig(model_name_or_path=row["model"], dtype=row.get("dtype", "float32"))
    if row["lora"]:
        model_args.use_peft = True
        model_args.lora_r = 16
        model_args.lora_alpha = 32
        model_args.lora_target_modules = row.get("target", "all-linear")  # peft reads the string, not a list of it
    records = training_examples(args.spider, sample_values=row["sample_values"], limit=steps * args.batch * 8)
    training_args = SFTConfig(
        output_dir=out,
        packing=row["packing"],
        completion_only_loss=True,
        learning_rate=1e-4 if not row["lora"] else 2e-4,
        train_sampling_strategy="group_by_length" if row.get("grouped") else "random",
        torch_compile=bool(row.get("compile")),
        pad_to_multiple_of=64 if row.get("compile") else "auto",  # fewer shapes, fewer recompilations
        gradient_checkpointing=False,
        bf16=row["bf16"],
        **common,
    )
    return SenseScriptArguments(dataset_name="bench"), training_args, model_args, build_sft_trainer, records


def setting(row: dict) -> str:
    if "recipe" in row:
        extra = [f"{k} {v}" for k, v in row.get("options", {}).items()]
        logits = "full logits (TRL on a CPU)" if row.get("logits") == "full" else "logits where a loss is taken"
        return ", ".join([row["recipe"], *extra, logits])
    return ", ".join(
        [
            row.get("stage", "sft")
            + (" LoRA r 16" if row["lora"] else " full")
            + (" top 8" if row.get("target") else "")
        ]
        + ["bf16 autocast" if row["bf16"] else "fp32"]
        + (["bf16 weights"] if row.get("dtype") == "bfloat16" else [])
        + (["torch.compile"] if row.get("compile") else [])
        + (["packing"] if row["packing"] else [])
        + (["no sample values"] if row["sample_values"] == 0 else [])
        + (["grouped by length"] if row.get("grouped") else [])
        + (["full logits (TRL on CPU)"] if row.get("logits") == "full" else ["logits where a loss is taken"])
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", default=",".join(DEFAULT_ROWS), help=f"comma-separated, of {', '.join(ROWS)}")
    parser.add_argument("--steps", type=int, default=3, help="timed optimizer steps per row")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps first (allocation, kernel choice)")
    parser.add_argument("--batch", type=int, default=4, help="sequences (cDPO: pairs) per optimizer step")
    parser.add_argument("--spider", type=Path, default=SPIDER, help="Spider folder (dev.json, database/)")
    parser.add_argument(
        "--profile", type=Path, default=None, help="write torch.profiler's top operations of each row's last step here"
    )
    parser.add_argument("--one", default=None, help=argparse.SUPPRESS)  # internal: measure one row, print JSON
    args = parser.parse_args()
    if args.warmup < 1 or args.steps < 1:
        parser.error("--warmup and --steps must be at least 1")
    if args.one:
        sys.stdout.write(json.dumps(measure(args.one, args)) + "\n")
        return
    if not (args.spider / "dev.json").is_file():
        raise SystemExit(f"Spider dev not found at {args.spider} (see ../shared/data/README)")
    names = [n.strip() for n in args.rows.split(",") if n.strip()]
    unknown = sorted(set(names) - set(ROWS))
    if unknown:
        parser.error(f"unknown rows {unknown}; choose from {', '.join(ROWS)}")
    load = os.getloadavg()[0]
    print(f"{os.cpu_count()} CPUs, load average {load:.1f}; batch {args.batch}, {args.warmup} warm-up + {args.steps} "
          "timed steps per row", flush=True)  # fmt: skip
    results = []
    for name in names:
        argv = [sys.executable, __file__, "--one", name, "--steps", str(args.steps), "--warmup", str(args.warmup),
                "--batch", str(args.batch), "--spider", str(args.spider)]  # fmt: skip
        if args.profile:
            argv += ["--profile", str(args.profile)]
        start = time.perf_counter()
        proc = subprocess.run(argv, capture_output=True, text=True, env={**os.environ, "TQDM_DISABLE": "1"})
        if proc.returncode != 0:
            print(
                f"{name}: failed ({proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else proc.returncode})"
            )
            continue
        result = json.loads(proc.stdout.strip().splitlines()[-1])
        result["wall_s"] = time.perf_counter() - start
        results.append(result)
        print(f"{name}: {result['seconds_per_step']:.1f} s/step ({result['wall_s']:.0f} s with loading)", flush=True)
    if not results:
        return
    by_name = {r["row"]: r for r in results}
    print("\n| row | setting | threads | tokens/s | s/step | x before | user s | system s | minor faults | peak RSS GB "
          "| tokens/step | loss |")  # fmt: skip
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in results:
        row = ROWS[r["row"]]
        # a row is compared with its "before" row (TRL's CPU path and the old LoRA dropout) when that ran
        stem = r["row"].removesuffix("-full-logits").removesuffix("-before")
        twin = by_name.get(stem + "-before", by_name.get(stem + "-full-logits", results[0]))
        print(f"| {r['row']} | {setting(row)} | {r['threads']} | {r['tokens_per_s']:.0f} | {r['seconds_per_step']:.2f} | "
              f"{twin['seconds_per_step'] / r['seconds_per_step']:.2f}x | {r['user_s']:.1f} | {r['system_s']:.1f} | "
              f"{r['minor_faults'] / 1e6:.2f} M | {r['peak_rss_gb']:.1f} | {r['tokens_per_step']:.0f} | {r['loss']:.4f} |")  # fmt: skip
    print(f"load average at the end {os.getloadavg()[0]:.1f} (start {load:.1f}); user/system s, faults: the timed "
          "steps; peak RSS: the whole process, loading included")  # fmt: skip


if __name__ == "__main__":
    main()
