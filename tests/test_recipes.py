"""Every YAML under recipes/ is parsed: model recipes by their script's parser, accelerate configs by key."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
RECIPES = REPO / "recipes"
ACCELERATE = sorted((RECIPES / "accelerate").glob("*.yaml"))
MODEL_RECIPES = sorted(p for p in RECIPES.glob("*/*.yaml") if p.parent.name not in ("accelerate", "experiments"))
GPU_FREE = ["--use_cpu", "true"]  # bf16 recipes validate only where bf16 is possible; CPU autocast accepts it


def load_recipe(name: str):
    spec = importlib.util.spec_from_file_location(f"recipe_{name}", RECIPES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def script_for(path: Path) -> str:
    """`sft-lora.yaml` -> "sft", `cdpo-qlora.yaml` -> "cdpo", `spft.yaml` -> "spft"."""
    return path.stem.split("-")[0]


def test_there_are_recipes_for_every_model():
    folders = {p.parent.name for p in MODEL_RECIPES}
    assert {"smollm2-135m", "codellama-7b", "codellama-13b", "deepseek-coder-1.3b"} <= folders
    for folder in ("smollm2-135m", "codellama-7b", "codellama-13b"):
        assert (RECIPES / folder / "sft.yaml").is_file() and (RECIPES / folder / "cdpo.yaml").is_file()
    assert {p.stem for p in ACCELERATE} >= {"single_gpu", "ddp", "zero3", "fsdp"}


@pytest.mark.parametrize("path", MODEL_RECIPES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_model_recipe_parses(path):
    script = script_for(path)
    if not (RECIPES / f"{script}.py").is_file():
        pytest.fail(f"{path}: no recipes/{script}.py parses it (name recipes <script>[-variant].yaml)")
    parser = load_recipe(script).make_parser()
    parsed = parser.parse_args_and_config(["--config", str(path), *GPU_FREE])
    model_args = parsed[2] if len(parsed) > 2 else None
    assert model_args is not None and model_args.model_name_or_path, f"{path}: model_name_or_path is not set"
    if script in {"sft", "cdpo"}:
        script_args, training_args, model_args = parsed
        assert training_args.output_dir, f"{path}: output_dir is not set"
        if model_args.load_in_4bit:
            assert model_args.use_peft, f"{path}: QLoRA (load_in_4bit) needs use_peft: true"
    if script == "cdpo":
        training_args = parsed[1]
        if training_args.preference_loss == "cdpo":
            assert training_args.loss_type in (["sigmoid"], ["sigmoid", "robust"])


CPU_RECIPES = [
    p for p in sorted((RECIPES / "smollm2-135m").glob("*.yaml")) if script_for(p) in {"sft", "cdpo", "grpo"}
]


@pytest.mark.parametrize("path", CPU_RECIPES, ids=lambda p: p.name)
def test_cpu_recipes_are_cpu_settings(path):
    config = yaml.safe_load(path.read_text())
    assert config["model_name_or_path"] == "embedded"
    # bf16 autocast is the measured winner for SFT and cDPO (bench/train_speed.py); GRPO's CPU run was fp32
    assert config["use_cpu"] is True and config["bf16"] is (path.name != "grpo.yaml")
    # checkpointing costs CPU time; only GRPO (8 completions of long Spider prompts a step) needs the memory back
    assert config["gradient_checkpointing"] is (path.name == "grpo.yaml") and config["report_to"] == "none"


def test_grpo_recipes_use_the_execution_rewards():
    parser = load_recipe("grpo").make_parser()
    for name in ("smollm2-135m", "qwen2.5-coder-0.5b", "qwen2.5-coder-7b"):
        script_args, training_args, model_args = parser.parse_args_and_config(
            ["--config", str(RECIPES / name / "grpo.yaml"), *GPU_FREE]
        )
        assert script_args.reward_funcs == ["arctic"], name
        assert training_args.generation_batch_size % training_args.num_generations == 0, name
    assert (training_args.use_vllm, model_args.model_name_or_path) == (True, "Qwen/Qwen2.5-Coder-7B-Instruct")
    small = yaml.safe_load((RECIPES / "qwen2.5-coder-0.5b" / "grpo.yaml").read_text())
    assert small["use_cpu"] is True and small["use_peft"] is True and small["merge_lora"] is True


@pytest.mark.parametrize("name", ["codellama-7b", "codellama-13b"])
def test_sense_recipes_use_cdpo_epsilon_0_1(name):
    parser = load_recipe("cdpo").make_parser()
    _, training_args, _ = parser.parse_args_and_config(["--config", str(RECIPES / name / "cdpo.yaml"), *GPU_FREE])
    assert (training_args.preference_loss, training_args.cdpo_epsilon) == ("cdpo", 0.1)
    assert training_args.loss_weights == pytest.approx([1.8, -0.8]) and training_args.label_smoothing == 0.1


def test_command_line_overrides_yaml():
    parser = load_recipe("sft").make_parser()
    config = RECIPES / "smollm2-135m" / "sft.yaml"
    _, training_args, model_args = parser.parse_args_and_config(
        ["--config", str(config), "--max_steps", "2", "--output_dir", "elsewhere", "--model_name_or_path", "m"]
    )
    assert (training_args.max_steps, training_args.output_dir, model_args.model_name_or_path) == (2, "elsewhere", "m")


def test_unknown_yaml_key_fails_clearly(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("model_name_or_path: embedded\nuse_cpu: true\nbf16: false\nlearning_rat: 0.1\n")
    with pytest.raises(ValueError, match="learning_rat"):
        load_recipe("sft").make_parser().parse_args_and_config(["--config", str(bad)])


@pytest.mark.parametrize("path", ACCELERATE, ids=lambda p: p.name)
def test_accelerate_config(path):
    config = yaml.safe_load(path.read_text())
    for key in ("compute_environment", "distributed_type", "mixed_precision", "num_machines", "num_processes"):
        assert key in config, f"{path.name}: missing {key}"
    kind = config["distributed_type"]
    assert kind in {"NO", "MULTI_GPU", "DEEPSPEED", "FSDP"}
    if kind == "DEEPSPEED":
        assert config["deepspeed_config"]["zero_stage"] == 3
        assert config["deepspeed_config"]["zero3_save_16bit_model"] is True  # a loadable model at the end
    if kind == "FSDP":
        assert config["fsdp_config"]["fsdp_state_dict_type"] == "FULL_STATE_DICT"
    if kind == "NO":
        assert config["num_processes"] == 1
    if config.get("use_cpu"):
        assert config["mixed_precision"] == "no"


def _sft_run(tmp_path, tiny_db, tiny_model_dir, launcher: list[str], *, questions: int, steps: int):
    """A CPU SFT run of the SmolLM2 recipe on the tiny model: (command, output folder)."""
    strong = tmp_path / "strong.jsonl"
    records = [
        {
            "question": f"How many singers are there? ({i})",
            "sql": "SELECT count(*) FROM singer",
            "db_id": "concert_singer",
        }
        for i in range(questions)
    ]
    strong.write_text("".join(json.dumps(r) + "\n" for r in records))
    out = tmp_path / "out"
    recipe = [
        "recipes/sft.py",
        "--config",
        "recipes/smollm2-135m/sft.yaml",
        "--model_name_or_path",
        str(tiny_model_dir),
    ]
    data = ["--dataset_name", str(strong), "--db_root", str(tiny_db.parent.parent)]
    budget = ["--max_steps", str(steps), "--per_device_train_batch_size", "2", "--output_dir", str(out)]
    return [*launcher, *recipe, *data, *budget], out


@pytest.mark.slow  # a subprocess that imports torch/transformers/trl afresh
def test_accelerate_launch_runs_the_sft_recipe_on_cpu(tmp_path, tiny_db, tiny_model_dir):
    """`accelerate launch recipes/sft.py --config ...` works with no `accelerate config` and no GPU."""
    accelerate = str(Path(sys.executable).with_name("accelerate"))
    command, out = _sft_run(tmp_path, tiny_db, tiny_model_dir, [accelerate, "launch"], questions=2, steps=1)
    env = {**os.environ, "HF_HOME": str(tmp_path / "hf"), "ACCELERATE_CONFIG_FILE": str(tmp_path / "none.yaml")}
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert (out / "model.safetensors").is_file() and (out / "README.md").is_file()
    assert "accelerate launch recipes/sft.py --config recipes/smollm2-135m/sft.yaml" in (out / "README.md").read_text()


@pytest.mark.slow  # two processes that import torch/transformers/trl afresh and train over gloo
def test_torchrun_two_processes_write_one_model_and_one_card(tmp_path, tiny_db, tiny_model_dir):
    """`torchrun --nproc_per_node 2 recipes/sft.py ...` on CPU: both ranks train, only the main one saves and talks."""
    torchrun = str(Path(sys.executable).with_name("torchrun"))
    launcher = [torchrun, "--standalone", "--nproc_per_node", "2"]  # a local rendezvous on a free port
    command, out = _sft_run(tmp_path, tiny_db, tiny_model_dir, launcher, questions=8, steps=2)
    env = {**os.environ, "HF_HOME": str(tmp_path / "hf"), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("Model and card saved") == 1, done.stdout
    assert sorted(p.name for p in out.glob("*.safetensors")) == ["model.safetensors"]
    assert (out / "README.md").is_file() and (out / "sft.log").is_file() and (out / "sft.rank1.log").is_file()
    state = json.loads((out / "trainer_state.json").read_text())
    assert state["global_step"] == 2
    # both ranks trained: the card's total batch counts two processes
    accumulation = yaml.safe_load((REPO / "recipes/smollm2-135m/sft.yaml").read_text())["gradient_accumulation_steps"]
    assert f"| `total_train_batch_size` | `{2 * 2 * accumulation}` |" in (out / "README.md").read_text()
