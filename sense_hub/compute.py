"""How training uses the CPU: every core however a recipe is launched, and logits only where a loss is taken.

- `configure_threads`: `accelerate launch` on a machine without a GPU sets `OMP_NUM_THREADS=1` for the script it
  starts (it raises the count only with `--cpu`), and `torchrun` does the same for each rank. A training step then
  runs on one core. Unless the user asked for a thread count (`SENSE_HUB_NUM_THREADS`, `OMP_NUM_THREADS` in the
  launcher's own environment, or accelerate's `--num_cpu_threads_per_process`), the trainers use the cores the
  scheduler gives the process (physical cores at most), divided among the ranks of this machine.
- `compact_lm_head`: TRL's trainers (SFT, DPO and so cDPO, GRPO, and our SPFT subclass) compute per-token
  log-probabilities with a fused LM head (`trl.trainer.utils.add_fused_lm_head`). On CUDA/XPU it projects only the
  positions with a label; everywhere else it projects every position through the whole vocabulary and masks the
  result afterwards. For Qwen2.5 (151,936 tokens) that is ~1.5 GB of fp32 logits per batch of 4 x 600 tokens, for
  the ~50 completion tokens a loss reads. The compaction is exact (the same log-probabilities, entropies and
  top-1 flags at the kept positions, zeros elsewhere), so we turn it on for the CPU too.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

logger = logging.getLogger(__name__)

THREADS_VARIABLE = "SENSE_HUB_NUM_THREADS"


def available_cores() -> int:
    """The cores this process may run on: the scheduler's CPU affinity, at most the physical cores."""
    try:
        allowed = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        allowed = os.cpu_count() or 1
    try:
        import psutil

        physical = psutil.cpu_count(logical=False) or allowed
    except ImportError:
        physical = allowed
    return max(1, min(allowed, physical))


def _launcher(parent_argv: list[str]) -> str | None:
    """ "accelerate" or "torchrun" when one of them started this process (it then sets OMP_NUM_THREADS itself)."""
    if os.environ.get("TORCHELASTIC_RUN_ID"):
        return "torchrun"
    if os.environ.get("ACCELERATE_USE_CPU") is not None and any(
        Path(arg).name.startswith("accelerate") for arg in parent_argv[:3]
    ):
        return "accelerate"
    return None


def _parent_process() -> tuple[dict[str, str], list[str]]:
    """The launcher's environment and command line, as the user started it (Linux /proc; empty elsewhere)."""
    parent = Path("/proc") / str(os.getppid())
    try:
        raw_env = (parent / "environ").read_bytes().split(b"\0")
        raw_cmd = (parent / "cmdline").read_bytes().split(b"\0")
    except OSError:
        return {}, []
    env = {}
    for item in raw_env:
        key, sep, value = item.decode(errors="replace").partition("=")
        if sep:
            env[key] = value
    return env, [a.decode(errors="replace") for a in raw_cmd if a]


def _positive_int(value: str | None) -> int | None:
    try:
        number = int(value) if value is not None else None
    except ValueError:
        return None
    return number if number and number > 0 else None


def asked_threads() -> tuple[int | None, str]:
    """The thread count the user asked for, and where the request came from (None: nobody asked)."""
    explicit = _positive_int(os.environ.get(THREADS_VARIABLE))
    if explicit:
        return explicit, THREADS_VARIABLE
    env, argv = _parent_process()
    launcher = _launcher(argv)
    if launcher is None:
        omp = _positive_int(os.environ.get("OMP_NUM_THREADS"))
        return (omp, "OMP_NUM_THREADS") if omp else (None, "")
    # The launcher set OMP_NUM_THREADS for us; it counts only if the user gave it to the launcher.
    for i, arg in enumerate(argv):
        if arg.startswith("--num_cpu_threads_per_process"):
            value = arg.partition("=")[2] or (argv[i + 1] if i + 1 < len(argv) else None)
            if _positive_int(value):
                return _positive_int(value), f"{launcher} --num_cpu_threads_per_process"
    omp = _positive_int(env.get("OMP_NUM_THREADS"))
    return (omp, f"OMP_NUM_THREADS given to {launcher}") if omp else (None, "")


def configure_threads() -> int:
    """Set torch's intra-op threads for training and log the count; returns it.

    On a machine with a GPU nothing changes (the host threads feed the device). On a CPU-only machine: the count
    the user asked for, else the available cores divided among this machine's ranks (`LOCAL_WORLD_SIZE`).
    """
    import torch

    if torch.cuda.is_available():
        return torch.get_num_threads()
    asked, source = asked_threads()
    ranks = _positive_int(os.environ.get("LOCAL_WORLD_SIZE")) or 1
    cores = available_cores()
    threads = asked or max(1, cores // ranks)
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    how = f"asked for with {source}" if asked else f"{cores} cores / {ranks} rank(s) on this machine"
    logger.info("training on %d CPU thread(s) (%s)", threads, how)
    return threads


_ORIGINAL = "_sense_hub_original"


def compact_lm_head(enabled: bool = True) -> bool:
    """Make TRL's fused LM head project only the positions with a label on every device (or, `enabled=False`,
    restore TRL's own choice: compact on CUDA/XPU only, the old full-vocabulary path on CPU).

    Returns:
        Whether the compact path is now on for the CPU. False also when this TRL has no fused LM head to adjust
        (a warning says so).
    """
    try:
        from trl.trainer import utils as trl_utils
    except ImportError:
        return False
    current = getattr(trl_utils, "_use_triton", None)
    if current is None or not hasattr(trl_utils, "add_fused_lm_head"):
        logger.warning("this TRL has no fused LM head to compact: training computes full logits")
        return False
    original = getattr(current, _ORIGINAL, current)
    if not enabled:
        trl_utils._use_triton = original
        return False
    if current is original:

        def compact(device) -> bool:
            # the kernels keep their own device test (torch tiles on CPU); only the choice of positions changes
            return device.type == "cpu" or original(device)

        setattr(compact, _ORIGINAL, original)
        trl_utils._use_triton = compact
    return True
