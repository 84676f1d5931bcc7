"""GRPO reward functions from execution, chosen by name (open-r1's `rewards.py` pattern).

Each reward function has TRL's signature `f(prompts, completions, **columns) -> list[float]`: TRL's `GRPOTrainer`
calls it with the prompts, the generated completions (plain strings, or conversational: a list of messages) and
the dataset's other columns, one entry per completion. These rewards read two columns, `db_id` (the database,
`<db_root>/<db_id>/<db_id>.sqlite`; a `db_path` column naming the file works too) and `gold_sql`.

- `execution`: 1.0 when the completion's SQL (`prompts.extract_sql`) gives the gold result under `metric`, else 0.0.
- `executes`: 1.0 when the completion's SQL runs without error, else 0.0.
- `format`: 1.0 when the completion is exactly one SQL query (optionally in one code fence, optionally ending with
  `;`) and nothing else, else 0.0.
- `arctic`: Arctic-Text2SQL-R1's reward: 1.0 correct, 0.1 executes but wrong, 0.0 otherwise.

Weights are TRL's `GRPOConfig.reward_weights` (one per name). Execution-based rewards give `None` (TRL: not
applicable) for a question whose gold SQL fails, so that question contributes no advantage.

All rewards built by one `get_reward_funcs` call share an `ExecutionScorer`: each question's gold result is
computed once and kept for every generation of every step; a completion is executed once per (database, SQL up to
`execution.canonical_sql`) in a batch, and its verdict for a question is remembered, so the same completion for the
same question later (another reward function of the same step, or a later step) costs nothing. Queries run through
`sense_hub.execution.Executor`: read-only, with its timeout (a runaway query costs one timeout) and, with
`workers`, its process pool.

Example:
    >>> funcs = get_reward_funcs(["arctic"], db_root="databases", metric="spider")
    >>> trainer = GRPOTrainer(model=..., reward_funcs=funcs, args=GRPOConfig(...), train_dataset=...)
"""

from __future__ import annotations

import logging
import re
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sense_hub.execution import ExecutionResult, Executor, canonical_sql, check_timeout
from sense_hub.matching import METRICS, prepare_sql
from sense_hub.prompts import extract_sql

__all__ = [
    "REWARDS",
    "ExecutionScorer",
    "Outcome",
    "RewardFunction",
    "ScorerStats",
    "completion_text",
    "get_reward_funcs",
    "is_clean_sql",
]

logger = logging.getLogger(__name__)

#: Reward names and what they give.
REWARDS: dict[str, str] = {
    "execution": "1.0 when the extracted SQL gives the gold result under the metric, else 0.0",
    "executes": "1.0 when the extracted SQL runs without error, else 0.0",
    "format": "1.0 when the completion is exactly one SQL query (optionally fenced, optional ';'), else 0.0",
    "arctic": "Arctic-Text2SQL-R1: 1.0 correct, 0.1 executes but wrong, 0.0 otherwise",
}

#: Arctic-Text2SQL-R1's reward for SQL that executes but gives a wrong result.
ARCTIC_EXECUTES_REWARD = 0.1


# ---------------------------------------------------------------------------------------------------------------
# Completions -> text -> SQL
# ---------------------------------------------------------------------------------------------------------------


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content blocks: [{"type": "text", "text": ...}, ...]
        return "".join(b.get("text", "") for b in content if isinstance(b, dict) and b.get("type", "text") == "text")
    return ""


def completion_text(completion: Any) -> str:
    """The text of one completion: a string as is; a conversational completion's assistant message(s) joined.

    Args:
        completion: a string, a list of messages (`[{"role": "assistant", "content": ...}]`), or one message dict.
    """
    if isinstance(completion, str):
        return completion
    if isinstance(completion, dict):
        return _content_text(completion.get("content"))
    if isinstance(completion, list):
        messages = [m for m in completion if isinstance(m, dict)]
        assistant = [m for m in messages if m.get("role", "assistant") == "assistant"] or messages
        return "".join(_content_text(m.get("content")) for m in assistant)
    return ""


_ONE_FENCE = re.compile(r"\A```[ \t]*(?:sql|sqlite)?[ \t]*\n?(.*?)\n?[ \t]*```\Z", re.DOTALL | re.IGNORECASE)
_QUERY_START = re.compile(r"\A(?:SELECT|WITH)\b", re.IGNORECASE)


def is_clean_sql(text: str) -> bool:
    """Whether `text` is exactly one SQL query and nothing else: an optional single code fence around it, an
    optional trailing `;`, no prose, no second statement. The query must start with SELECT or WITH."""
    body = text.strip()
    fence = _ONE_FENCE.match(body)
    if fence:
        body = fence.group(1).strip()
    body = body.rstrip()
    while body.endswith(";"):
        body = body[:-1].rstrip()
    sql = extract_sql(text)
    return bool(sql) and sql == body and bool(_QUERY_START.match(sql))


# ---------------------------------------------------------------------------------------------------------------
# Scoring by execution, with caches
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    """The execution verdict of one completion for one question.

    `correct` is None when the gold SQL fails (the question cannot be judged); `error` is the completion's
    execution error kind (`sense_hub.execution.ERROR_KINDS`), None when it ran.
    """

    sql: str
    executes: bool
    correct: bool | None
    error: str | None


@dataclass
class ScorerStats:
    """Work counters of an `ExecutionScorer`: what ran, and what the caches saved."""

    completions_scored: int = 0
    gold_executions: int = 0
    completion_executions: int = 0
    verdict_cache_hits: int = 0
    timeouts: int = 0

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


class ExecutionScorer:
    """Execution verdicts for (question, completion) pairs, with the gold results and verdicts cached.

    Args:
        db_root: folder with `<db_id>/<db_id>.sqlite`; needed unless the data has a `db_path` column.
        metric: "spider", "bird" or "strict" (see `sense_hub.matching`).
        keep_distinct: keep DISTINCT under `spider`.
        timeout: seconds per query (gold or completion).
        workers: `Executor` worker processes: 0 runs in this process, None picks automatically (in-process for
            GRPO-sized batches), N forks N processes per batch (crash-isolated).
        max_rows: a result with more rows counts as `too_large` (an error).
        cache_size: verdicts remembered (least recently used dropped first).

    Raises:
        ValueError: an unknown metric, or a non-positive timeout or cache size.
    """

    def __init__(
        self,
        *,
        db_root: str | Path | None = None,
        metric: str = "strict",
        keep_distinct: bool = False,
        timeout: float = 10.0,
        workers: int | None = None,
        max_rows: int = 100_000,
        cache_size: int = 200_000,
    ) -> None:
        if metric not in METRICS:
            raise ValueError(f"`metric` must be one of {', '.join(METRICS)}, got {metric!r}")
        timeout = check_timeout(timeout, name="`execution_timeout`")  # nan, 0, negatives and inf are refused
        if cache_size <= 0:
            raise ValueError(f"`cache_size` must be positive, got {cache_size}")
        self.db_root = Path(db_root) if db_root is not None else None
        self.metric = metric
        self.keep_distinct = keep_distinct
        self.cache_size = cache_size
        self.executor = Executor(workers=workers, timeout=timeout, max_rows=max_rows)
        self.stats = ScorerStats()
        self._gold: dict[tuple[str, str], ExecutionResult] = {}
        self._verdicts: OrderedDict[tuple[str, str, str], Outcome] = OrderedDict()
        self._warned_gold: set[tuple[str, str]] = set()
        self._siblings: dict[str, list[str]] = {}

    def close(self) -> None:
        """Close the executor's database connections."""
        self.executor.close()

    def db_path(self, *, db_id: str | None = None, db_path: str | None = None) -> str:
        """The database file of a row: its `db_path`, else `<db_root>/<db_id>/<db_id>.sqlite`.

        Raises:
            ValueError: neither is available.
        """
        if db_path:
            return str(db_path)
        if not db_id:
            raise ValueError("each row needs a `db_id` (or `db_path`) column for the execution rewards")
        if self.db_root is None:
            raise ValueError(f"db_id {db_id!r} needs `db_root`: the folder with <db_id>/<db_id>.sqlite inside")
        return str(self.db_root / db_id / f"{db_id}.sqlite")

    def score(
        self,
        completions: Sequence[Any],
        *,
        gold_sql: Sequence[str],
        db_id: Sequence[str] | None = None,
        db_path: Sequence[str] | None = None,
    ) -> list[Outcome]:
        """One `Outcome` per completion (same order).

        Args:
            completions: strings or conversational completions.
            gold_sql: the gold SQL per completion.
            db_id: the database id per completion (with `db_root`).
            db_path: the database file per completion (instead of `db_id`).

        Raises:
            ValueError: columns whose lengths differ from `completions`, or a row without a database.
        """
        n = len(completions)
        for name, column in (("gold_sql", gold_sql), ("db_id", db_id), ("db_path", db_path)):
            if column is not None and len(column) != n:
                raise ValueError(f"column `{name}` has {len(column)} entries for {n} completions")
        if db_id is None and db_path is None:
            raise ValueError("the execution rewards need a `db_id` (or `db_path`) column in the dataset")
        self.stats.completions_scored += n
        keys: list[tuple[str, str, str]] = []
        sqls: list[str] = []
        for i, completion in enumerate(completions):
            path = self.db_path(db_id=db_id[i] if db_id else None, db_path=db_path[i] if db_path else None)
            gold = prepare_sql(gold_sql[i] or "", metric=self.metric, role="gold", keep_distinct=self.keep_distinct)
            sql = extract_sql(completion_text(completion))
            pred = prepare_sql(sql, metric=self.metric, role="pred", keep_distinct=self.keep_distinct)
            keys.append((path, gold, canonical_sql(pred)))
            sqls.append(pred)

        # what must run: gold queries never seen, completions without a remembered verdict (each once)
        missing_gold = list(dict.fromkeys((p, g) for p, g, _ in keys if (p, g) not in self._gold))
        to_run: dict[tuple[str, str], str] = {}
        for key, pred in zip(keys, sqls, strict=True):
            if key not in self._verdicts and (key[0], key[2]) not in to_run:
                to_run[(key[0], key[2])] = pred
        items = [(p, g) for p, g in missing_gold] + [(p, s) for (p, _), s in to_run.items()]
        results = self.executor.map(items) if items else []
        for (p, g), result in zip(missing_gold, results[: len(missing_gold)], strict=True):
            self._gold[(p, g)] = result
        pred_results = dict(zip(to_run, results[len(missing_gold) :], strict=True))
        self.stats.gold_executions += len(missing_gold)
        self.stats.completion_executions += len(to_run)
        self.stats.timeouts += sum(r.error == "timeout" for r in pred_results.values())

        from sense_hub.evaluation import Comparator

        compare = Comparator(self.metric)  # one per batch: it keeps the results it compared
        outcomes = []
        for key, pred in zip(keys, sqls, strict=True):
            outcome = self._verdicts.get(key)
            if outcome is not None:
                self._verdicts.move_to_end(key)
                self.stats.verdict_cache_hits += 1
            else:
                outcome = self._judge(key, pred, pred_results[(key[0], key[2])], compare)
                self._remember(key, outcome)
            outcomes.append(outcome)
        return outcomes

    def _judge(self, key: tuple[str, str, str], pred: str, result: ExecutionResult, compare) -> Outcome:
        """The verdict `evaluation.judge` gives (`evaluation.Comparator`, the other databases of a test-suite
        folder included); a failing gold query gives no reward (`correct=None`) where `judge` says `gold_error`."""
        from sense_hub.databases import sibling_databases

        path, gold_sql, _ = key
        gold = self._gold[(path, gold_sql)]
        if not gold.ok:
            if (path, gold_sql) not in self._warned_gold:
                self._warned_gold.add((path, gold_sql))
                logger.warning(
                    "gold SQL fails on %s (%s): %s; its question gets no reward", path, gold.error, gold_sql
                )
            return Outcome(sql=pred, executes=result.ok, correct=None, error=result.error)
        correct = compare(gold, result, gold_sql).correct
        if correct:  # as `judge`: the same result on every other database of the folder (Spider's test suite)
            if path not in self._siblings:
                self._siblings[path] = [str(p) for p in sibling_databases(path)[1:]]
            others = self._siblings[path]
            if others:
                runs = self.executor.map([(other, sql) for other in others for sql in (gold_sql, pred)])
                correct = all(compare(runs[2 * k], runs[2 * k + 1], gold_sql).correct for k in range(len(others)))
        return Outcome(sql=pred, executes=result.ok, correct=correct, error=result.error)

    def _remember(self, key: tuple[str, str, str], outcome: Outcome) -> None:
        self._verdicts[key] = outcome
        if len(self._verdicts) > self.cache_size:
            self._verdicts.popitem(last=False)


# ---------------------------------------------------------------------------------------------------------------
# The reward functions
# ---------------------------------------------------------------------------------------------------------------


def _execution(outcome: Outcome) -> float | None:
    return None if outcome.correct is None else float(outcome.correct)


def _executes(outcome: Outcome) -> float:
    return float(outcome.executes)


def _arctic(outcome: Outcome) -> float | None:
    if outcome.correct is None:
        return None
    if outcome.correct:
        return 1.0
    return ARCTIC_EXECUTES_REWARD if outcome.executes else 0.0


_FROM_OUTCOME: dict[str, Callable[[Outcome], float | None]] = {
    "execution": _execution,
    "executes": _executes,
    "arctic": _arctic,
}


class RewardFunction:
    """A named reward with TRL's signature, `f(prompts, completions, **columns) -> list[float | None]`.

    `__name__` is the reward's name, which TRL logs as `rewards/<name>/mean`.
    """

    def __init__(self, name: str, scorer: ExecutionScorer | None) -> None:
        if name not in REWARDS:
            raise ValueError(f"unknown reward {name!r}: choose from {', '.join(REWARDS)}")
        self.__name__ = name
        self.scorer = scorer

    def __repr__(self) -> str:
        return f"RewardFunction({self.__name__!r})"

    def __call__(self, prompts=None, completions=None, **columns) -> list[float | None]:
        completions = list(completions or [])
        if self.__name__ == "format":
            return [float(is_clean_sql(completion_text(c))) for c in completions]
        if "gold_sql" not in columns:
            raise ValueError(
                f"the {self.__name__!r} reward needs a `gold_sql` column in the dataset (got {sorted(columns)})"
            )
        outcomes = self.scorer.score(
            completions, gold_sql=columns["gold_sql"], db_id=columns.get("db_id"), db_path=columns.get("db_path")
        )
        return [_FROM_OUTCOME[self.__name__](o) for o in outcomes]


def get_reward_funcs(
    names: Sequence[str],
    *,
    db_root: str | Path | None = None,
    metric: str = "strict",
    keep_distinct: bool = False,
    timeout: float = 10.0,
    workers: int | None = None,
    scorer: ExecutionScorer | None = None,
) -> list[RewardFunction]:
    """The reward functions for `names`, sharing one `ExecutionScorer` (one gold cache, one verdict cache).

    Args:
        names: reward names from `REWARDS` ("execution", "executes", "format", "arctic").
        db_root: folder with `<db_id>/<db_id>.sqlite`.
        metric: "spider", "bird" or "strict".
        keep_distinct: keep DISTINCT under `spider`.
        timeout: seconds per query.
        workers: `Executor` worker processes (0: in this process; None: automatic).
        scorer: an existing scorer to share instead of building one from the other arguments.

    Raises:
        ValueError: no names, an unknown or repeated name, or a bad scorer setting.
    """
    names = list(names)
    if not names:
        raise ValueError(f"`reward_funcs` is empty: name at least one of {', '.join(REWARDS)}")
    unknown = [n for n in names if n not in REWARDS]
    if unknown:
        raise ValueError(f"unknown reward(s) {unknown} in `reward_funcs`: choose from {', '.join(REWARDS)}")
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ValueError(f"`reward_funcs` names {repeated} more than once: weight a reward with `reward_weights`")
    if scorer is None and any(n != "format" for n in names):
        scorer = ExecutionScorer(
            db_root=db_root, metric=metric, keep_distinct=keep_distinct, timeout=timeout, workers=workers
        )
    return [RewardFunction(name, scorer) for name in names]
