"""A GGUF file of a trained model for llama.cpp, written by llama.cpp's own converter.

The converter (`convert_hf_to_gguf.py`, its `conversion/` package and `gguf-py`) ships inside llama.cpp's sources, which PyPI carries in the
llama-cpp-python source package (`vendor/llama.cpp`). The first export fetches that package with pip (sources, not
weights; nothing is compiled) into the cache, or uses a llama.cpp checkout named by `LLAMA_CPP_DIR`. The converter
writes `f16`, `bf16` and `q8_0` itself; `q4_k_m` needs llama.cpp's `llama-quantize` program (from a llama.cpp
build; `LLAMA_QUANTIZE` names it when it is not on PATH).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from sense_hub.errors import SenseHubError

LLAMA_CPP_PYTHON = "llama-cpp-python==0.3.36"  # its vendor/llama.cpp: the converter that matches llama.cpp 0.3.36
CONVERTER_TYPES = ("f16", "bf16", "q8_0")


class GGUFExportError(SenseHubError, RuntimeError):
    """The converter could not be found or failed; the message says what to do."""


def llama_cpp_sources() -> Path:
    """A llama.cpp source tree holding `convert_hf_to_gguf.py` and `gguf-py`."""
    named = os.environ.get("LLAMA_CPP_DIR")
    if named:
        root = Path(named)
        if not (root / "convert_hf_to_gguf.py").is_file():
            raise GGUFExportError(
                f"LLAMA_CPP_DIR={root} has no convert_hf_to_gguf.py: point it at a llama.cpp checkout"
            )
        return root
    from sense_hub.models import cache_root

    version = LLAMA_CPP_PYTHON.split("==")[1]
    root = cache_root() / f"llama.cpp-{version}"
    if (root / "convert_hf_to_gguf.py").is_file():
        return root
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [
            sys.executable,
            "-m",
            "pip",
            "download",
            LLAMA_CPP_PYTHON,
            "--no-deps",
            "--no-binary",
            ":all:",
            "-d",
            tmp,
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        archives = list(Path(tmp).glob("llama_cpp_python-*.tar.gz"))
        if proc.returncode != 0 or not archives:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no archive"]
            raise GGUFExportError(
                f"could not fetch llama.cpp's converter ({LLAMA_CPP_PYTHON} sources): {tail[0]}; "
                "set LLAMA_CPP_DIR to a llama.cpp checkout instead"
            )
        prefix = f"{archives[0].name.removesuffix('.tar.gz')}/vendor/llama.cpp/"
        staging = root.with_name(root.name + ".tmp")
        shutil.rmtree(staging, ignore_errors=True)
        with tarfile.open(archives[0]) as tar:
            members = [
                m
                for m in tar.getmembers()
                if m.name.startswith(prefix)
                and (
                    m.name == prefix + "convert_hf_to_gguf.py"
                    or m.name.startswith((prefix + "gguf-py/", prefix + "conversion/"))
                )
                and (m.isfile() or m.isdir())
            ]
            for m in members:
                m.name = m.name[len(prefix) :]
            tar.extractall(staging, members=members, filter="data")
        staging.replace(root)
    return root


def export_gguf(model_dir: str | Path, quantization: str, output: str | Path | None = None) -> Path:
    """Write `<model_dir>/<name>-<quantization>.gguf` (or `output`) with llama.cpp's converter; returns its path.

    Raises:
        GGUFExportError: an unknown type, a missing model folder, or a converter/quantizer failure (with its last
            lines of output).
    """
    model_dir = Path(model_dir)
    if quantization not in (*CONVERTER_TYPES, "q4_k_m"):
        raise GGUFExportError(f"--gguf {quantization}: choose from {', '.join((*CONVERTER_TYPES, 'q4_k_m'))}")
    if not (model_dir / "config.json").is_file():
        raise GGUFExportError(f"{model_dir}: no saved model (config.json) to convert")
    output = Path(output) if output else model_dir / f"{model_dir.name}-{quantization}.gguf"
    sources = llama_cpp_sources()
    outtype = quantization if quantization in CONVERTER_TYPES else "f16"
    converted = output if outtype == quantization else output.with_name(output.stem + "-f16.gguf")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(sources / "gguf-py"), os.environ.get("PYTHONPATH", "")])}
    cmd = [sys.executable, str(sources / "convert_hf_to_gguf.py"), str(model_dir), "--outfile", str(converted)]
    _run([*cmd, "--outtype", outtype], env=env, what="convert_hf_to_gguf.py")
    if converted != output:
        quantize = os.environ.get("LLAMA_QUANTIZE") or shutil.which("llama-quantize")
        if not quantize:
            raise GGUFExportError(
                f"q4_k_m needs llama.cpp's llama-quantize program (build llama.cpp, or set LLAMA_QUANTIZE); the f16 "
                f"file is at {converted}, and --gguf q8_0 needs no extra program"
            )
        _run([quantize, str(converted), str(output), "Q4_K_M"], env=env, what="llama-quantize")
        converted.unlink(missing_ok=True)
    return output


def _run(cmd: list[str], *, env: dict, what: str) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        tail = " | ".join((proc.stderr or proc.stdout).strip().splitlines()[-3:])
        raise GGUFExportError(f"{what} failed (exit {proc.returncode}): {tail}")
