"""Training on the CPU: logits only where a loss is taken (the same loss and gradients as full logits), threads."""

from __future__ import annotations

import pytest
import torch
from datasets import Dataset
from test_training import CPU, pairs_records, strong_records
from trl import ModelConfig, SFTConfig

from sense_hub import compute
from sense_hub.training import (
    CDPOConfig,
    SenseScriptArguments,
    build_preference_trainer,
    build_sft_trainer,
    strong_to_sft,
)


@pytest.fixture(autouse=True)
def _restore_compaction():
    yield
    compute.compact_lm_head(True)


def _loss_and_grads(trainer, batch, *, compact: bool):
    compute.compact_lm_head(compact)
    model = trainer.model
    model.zero_grad()
    loss = trainer.compute_loss(model, dict(batch))
    loss.backward()
    grads = {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}
    return loss.detach(), grads


def _perturb(model):
    torch.manual_seed(1)
    with torch.no_grad():  # move the policy away from the reference so that DPO margins are not 0
        for param in model.parameters():
            param.add_(0.05 * torch.randn_like(param))


def _assert_same(a, b):
    (loss_a, grads_a), (loss_b, grads_b) = a, b
    torch.testing.assert_close(loss_a, loss_b, rtol=1e-5, atol=1e-6)
    assert grads_a.keys() == grads_b.keys() and grads_a
    for name in grads_a:
        torch.testing.assert_close(grads_a[name], grads_b[name], rtol=1e-4, atol=1e-6, msg=name)


def test_the_cpu_path_projects_only_labelled_positions():
    import trl.trainer.utils as trl_utils

    assert compute.compact_lm_head(False) is False
    assert trl_utils._use_triton(torch.device("cpu")) is False  # TRL's own choice: every position on a CPU
    assert compute.compact_lm_head(True) is True
    assert trl_utils._use_triton(torch.device("cpu")) is True
    assert compute.compact_lm_head(True) is True  # idempotent: no wrapper around the wrapper
    compute.compact_lm_head(False)
    assert trl_utils._use_triton(torch.device("cpu")) is False


def test_sft_loss_equals_the_full_logits_loss(tmp_path, tiny_db, tiny_model_dir):
    args = SFTConfig(output_dir=str(tmp_path / "out"), per_device_train_batch_size=4, completion_only_loss=True, **CPU)
    data = Dataset.from_list(strong_to_sft(strong_records(), db_root=tiny_db.parent.parent))
    trainer = build_sft_trainer(
        SenseScriptArguments(), args, ModelConfig(model_name_or_path=str(tiny_model_dir)), train_dataset=data
    )
    batch = next(iter(trainer.get_train_dataloader()))
    kept = _loss_and_grads(trainer, batch, compact=True)
    full = _loss_and_grads(trainer, batch, compact=False)
    _assert_same(kept, full)
    with torch.no_grad():  # and both are the completion-only cross-entropy of the model's own full logits
        logits = trainer.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[:, :-1]
        labels = batch["labels"][:, 1:]
        mask = labels != -100
        token_logps = torch.log_softmax(logits.float(), dim=-1).gather(-1, labels.clamp(min=0).unsqueeze(-1))
    assert 0 < mask.sum() < mask.numel()  # the prompt is masked out, the completion is not
    torch.testing.assert_close(kept[0], -token_logps.squeeze(-1)[mask].sum() / mask.sum(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "settings",
    [
        {"preference_loss": "dpo", "loss_type": ["sigmoid"]},
        {"preference_loss": "cdpo", "cdpo_epsilon": 0.1},
        {"preference_loss": "dpo", "loss_type": ["sigmoid", "sft"], "loss_weights": [1.0, 1.0]},
        {"preference_loss": "dpo", "loss_type": ["sft"]},
        {"preference_loss": "cdpo", "cdpo_epsilon": 0.1, "precompute_ref_log_probs": True},
    ],
    ids=["sigmoid", "cdpo", "sigmoid+sft", "sft", "cdpo-precomputed-reference"],
)
def test_preference_loss_equals_the_full_logits_loss(settings, tmp_path, tiny_db, tiny_model_dir):
    args = CDPOConfig(output_dir=str(tmp_path / "out"), beta=0.5, per_device_train_batch_size=4, **settings, **CPU)
    data = Dataset.from_list([{k: r[k] for k in ("prompt", "chosen", "rejected")} for r in pairs_records(tiny_db)])
    trainer = build_preference_trainer(
        SenseScriptArguments(), args, ModelConfig(model_name_or_path=str(tiny_model_dir)), train_dataset=data
    )
    _perturb(trainer.model)
    batch = next(iter(trainer.get_train_dataloader()))
    kept = _loss_and_grads(trainer, batch, compact=True)
    full = _loss_and_grads(trainer, batch, compact=False)
    _assert_same(kept, full)
    assert kept[0] > 0


def test_threads_use_the_available_cores_unless_asked(monkeypatch):
    monkeypatch.delenv(compute.THREADS_VARIABLE, raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delenv("TORCHELASTIC_RUN_ID", raising=False)
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    before = torch.get_num_threads()
    try:
        assert compute.configure_threads() == compute.available_cores()
        monkeypatch.setenv(compute.THREADS_VARIABLE, "1")
        assert compute.configure_threads() == 1 and torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_a_launcher_s_one_thread_is_not_a_request(monkeypatch):
    """accelerate launch / torchrun set OMP_NUM_THREADS=1 themselves: only the launcher's own environment counts."""
    monkeypatch.delenv(compute.THREADS_VARIABLE, raising=False)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setenv("TORCHELASTIC_RUN_ID", "test")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    monkeypatch.setattr(compute, "_parent_process", lambda: ({}, ["torchrun", "--nproc_per_node", "2"]))
    assert compute.asked_threads() == (None, "")
    monkeypatch.setattr(compute, "available_cores", lambda: 8)
    before = torch.get_num_threads()
    try:
        assert compute.configure_threads() == 4  # 8 cores shared by 2 ranks
    finally:
        torch.set_num_threads(before)
    monkeypatch.setattr(compute, "_parent_process", lambda: ({"OMP_NUM_THREADS": "3"}, ["torchrun"]))
    assert compute.asked_threads() == (3, "OMP_NUM_THREADS given to torchrun")
    monkeypatch.delenv("TORCHELASTIC_RUN_ID")
    monkeypatch.setenv("ACCELERATE_USE_CPU", "False")
    argv = ["/venv/bin/python", "/venv/bin/accelerate", "launch", "--num_cpu_threads_per_process", "2", "x.py"]
    monkeypatch.setattr(compute, "_parent_process", lambda: ({}, argv))
    assert compute.asked_threads() == (2, "accelerate --num_cpu_threads_per_process")
    monkeypatch.setattr(compute, "_parent_process", lambda: ({}, argv[:3] + ["x.py"]))
    assert compute.asked_threads() == (None, "")
