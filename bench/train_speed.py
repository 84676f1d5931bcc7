"""CPU training throughput of the student settings, side by side: tokens/s, sequences/s and the loss they reach.

Every row trains on the same data in the same order: the Spider dev questions of the SENSE experiment's training
databases (the first 10 by sorted db_id), each a chat prompt from `prompts.prompt_for_database` (schema with 3
sample values per column, as training uses) and its gold SQL as the completion; SFT with completion-only loss
through `sense_hub.training.build_sft_trainer` (TRL's SFTTrainer), `--batch` sequences per optimizer step. The
first `--warmup` steps are not timed; tokens/s counts the real (non-padding) tokens of the `--steps` timed steps
(`include_num_input_tokens_seen="non_padding"`) over their wall time. Loss is the mean training loss of the timed
steps: the same order of examples, so settings that change only the arithmetic should show about the same loss.

Rows (`--rows` picks some):

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


def measure(name: str, args: argparse.Namespace) -> dict:
    """Train one row for warmup + timed steps; its figures."""
    import logging
    import warnings

    from datasets import Dataset
    from transformers import TrainerCallback
    from trl import ModelConfig, SFTConfig

    from sense_hub.training import SenseScriptArguments, build_sft_trainer

    warnings.filterwarnings("ignore")
    logging.disable(logging.WARNING)
    row = ROWS[name]
    steps = args.warmup + args.steps
    records = training_examples(args.spider, sample_values=row["sample_values"], limit=steps * args.batch * 8)
    dataset = Dataset.from_list(records)

    class Clock(TrainerCallback):
        def __init__(self):
            self.marks: list[tuple[float, int]] = []
            self.losses: list[float] = []

        def on_step_end(self, args_, state, control, **kwargs):
            self.marks.append((time.perf_counter(), int(state.num_input_tokens_seen)))

        def on_log(self, args_, state, control, logs=None, **kwargs):
            if logs and "loss" in logs:
                self.losses.append(float(logs["loss"]))

    clock = Clock()
    with tempfile.TemporaryDirectory() as out:
        training_args = SFTConfig(
            output_dir=out,
            use_cpu=True,
            bf16=row["bf16"],
            packing=row["packing"],
            max_length=1024,
            completion_only_loss=True,
            per_device_train_batch_size=args.batch,
            gradient_accumulation_steps=1,
            max_steps=steps,
            learning_rate=1e-4 if not row["lora"] else 2e-4,
            lr_scheduler_type="constant",
            logging_steps=1,
            save_strategy="no",
            report_to="none",
            seed=42,
            dataloader_num_workers=0,
            include_num_input_tokens_seen="non_padding",
            train_sampling_strategy="group_by_length" if row.get("grouped") else "random",
            disable_tqdm=True,
            torch_compile=bool(row.get("compile")),
            pad_to_multiple_of=64 if row.get("compile") else "auto",  # fewer shapes, fewer recompilations
        )
        model_args = ModelConfig(model_name_or_path=row["model"], dtype=row.get("dtype", "float32"))
        if row["lora"]:
            model_args.use_peft = True
            model_args.lora_r = 16
            model_args.lora_alpha = 32
            model_args.lora_target_modules = row.get("target", "all-linear")  # peft reads the string, not a list of it
        script = SenseScriptArguments(dataset_name="bench")
        trainer = build_sft_trainer(script, training_args, model_args, train_dataset=dataset, callbacks=[clock])
        trainer.train()
    (t0, n0), (t1, n1) = clock.marks[args.warmup - 1], clock.marks[-1]
    timed = clock.losses[args.warmup : args.warmup + args.steps]
    return {
        "row": name,
        "tokens_per_s": (n1 - n0) / (t1 - t0),
        "sequences_per_s": args.steps * args.batch / (t1 - t0),
        "seconds_per_step": (t1 - t0) / args.steps,
        "tokens_per_step": (n1 - n0) / args.steps,
        "loss": sum(timed) / max(1, len(timed)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", default=",".join(ROWS), help=f"comma-separated, of {', '.join(ROWS)}")
    parser.add_argument("--steps", type=int, default=3, help="timed optimizer steps per row")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps first (allocation, kernel choice)")
    parser.add_argument("--batch", type=int, default=4, help="sequences per optimizer step")
    parser.add_argument("--spider", type=Path, default=SPIDER, help="Spider folder (dev.json, database/)")
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
        print(f"{name}: {result['tokens_per_s']:.0f} tokens/s ({result['wall_s']:.0f} s with loading)", flush=True)
    if not results:
        return
    base = results[0]["tokens_per_s"]
    print(f"\n| row | setting | tokens/s | x {results[0]['row']} | sequences/s | s/step | tokens/step | loss |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for r in results:
        row = ROWS[r["row"]]
        setting = ", ".join(
            [("LoRA r 16 " if row["lora"] else "full ") + ("bf16 autocast" if row["bf16"] else "fp32")]
            + (["bf16 weights"] if row.get("dtype") == "bfloat16" else [])
            + (["torch.compile"] if row.get("compile") else [])
            + (["packing"] if row["packing"] else [])
            + (["no sample values"] if row["sample_values"] == 0 else [])
            + (["grouped by length"] if row.get("grouped") else [])
        )
        print(f"| {r['row']} | {setting} | {r['tokens_per_s']:.0f} | {r['tokens_per_s'] / base:.2f} | "
              f"{r['sequences_per_s']:.2f} | {r['seconds_per_step']:.1f} | {r['tokens_per_step']:.0f} | {r['loss']:.3f} |")  # fmt: skip
    print(f"load average at the end {os.getloadavg()[0]:.1f} (start {load:.1f})")


if __name__ == "__main__":
    main()
