"""The assistant: SQL candidates for a question (the one prompt, any generator), run read-only, chosen by execution voting."""

import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sense_hub.errors import ModelError
from sense_hub.space.config import MAX_QUESTION_CHARS, SpaceConfig

if TYPE_CHECKING:
    from sense_hub.generation import Generator

logger = logging.getLogger(__name__)


@dataclass
class Candidate:
    """One SQL candidate, its execution result and how many candidates agree with its result."""

    sql: str
    result: Any
    votes: int = 0


@dataclass
class Answer:
    """The chosen SQL, its result, and every candidate (the chosen one included)."""

    sql: str
    result: Any
    candidates: list[Candidate] = field(default_factory=list)
    generation_s: float = 0.0
    execution_s: float = 0.0
    repair: Any = None  # a sense_hub.repair.Repaired when the first SQL did not run and repair was tried
    first_sql: str = ""  # the SQL before repair

    def repair_note(self) -> str:
        """One line on what repair did: "first try failed: no such column: pet_type; fixed in 1 round"."""
        r = self.repair
        if r is None or not r.errors:
            return ""
        how = (
            "by renaming it"
            if r.name_fixes and not r.model_calls
            else f"in {r.model_calls} round" + ("s" if r.model_calls != 1 else "")
        )
        outcome = f"fixed {how}" if r.runs else f"not fixed after {r.model_calls + r.name_fixes} tries"
        return f"first try failed: {r.errors[0]}; {outcome}"


def vote(results: list) -> tuple[int, list[int]]:
    """Execution-based voting (self-consistency), the same choice `sense-hub predict` makes
    (`sense_hub.sampling.majority_vote`, spider metric), plus each candidate's vote count for display.

    Args:
        results: one `ExecutionResult` per candidate, in candidate order.

    Returns:
        `(index of the winner, votes per candidate)`: a candidate's votes are the candidates whose result
        matches its own; failed candidates get 0. When nothing executed, the first candidate wins.

    Raises:
        ValueError: `results` is empty.
    """
    from sense_hub.matching import results_match
    from sense_hub.sampling import majority_vote

    if not results:
        raise ValueError("vote needs at least one candidate")
    best, _ = majority_vote(results, metric="spider")
    votes = [
        sum(1 for b in results if b.ok and results_match(a, b, metric="spider", order_matters=False)) if a.ok else 0
        for a in results
    ]
    return best, votes


class SQLAssistant:
    """Writes SQL for questions about a database and runs it.

    The generator is loaded once, on first use (or by `warm_up()`), and shared by every visitor; generation is
    serialized by a lock because one CPU model serves one request at a time.

    Args:
        config: the model and limits.
        generator: an already loaded `sense_hub.generation.Generator` (default: `load_generator(config.model, …)`).
    """

    def __init__(self, config: SpaceConfig | None = None, *, generator: "Generator | None" = None):
        self.config = config or SpaceConfig()
        self._generator = generator
        self._lock = threading.Lock()
        self._fast = None  # a sense_hub.generation.GreedyPrefixCache, made on the first greedy answer

    @property
    def model_name(self) -> str:
        return getattr(self._generator, "name", None) or self.config.model

    def warm_up(self):
        """Load the model now (idempotent) and return the generator.

        Raises:
            ModelError: the model cannot be loaded; the message says which setting to check.
        """
        if self._generator is None:
            with self._lock:
                if self._generator is None:
                    from sense_hub.generation import load_generator

                    c = self.config
                    try:
                        self._generator = load_generator(
                            c.model, backend=c.backend, base_url=c.base_url, api_key=c.api_key
                        )
                    except Exception as e:  # any loader failure becomes one message for the visitor
                        logger.exception("loading model %r failed", c.model)
                        raise ModelError(
                            f"The model {c.model!r} could not be loaded ({type(e).__name__}: {e}). "
                            "Check SENSE_MODEL / SENSE_BACKEND / SENSE_BASE_URL."
                        ) from e
        return self._generator

    def write_sql(self, question: str, db_path: str | Path, *, n: int = 1, seed: int = 0) -> list[str]:
        """`n` SQL candidates for `question` (greedy when `n == 1`, sampled otherwise), from the one prompt.

        Raises:
            ValueError: an empty or too long question, or `n` out of range.
            ModelError: the model failed.
        """
        from sense_hub.evaluation import evaluate_generator
        from sense_hub.generation import GenerationConfig, GreedyPrefixCache
        from sense_hub.prompts import extract_sql, prompt_for_database

        question = (question or "").strip()
        if not question:
            raise ValueError("Type a question about the database first.")
        if len(question) > MAX_QUESTION_CHARS:
            raise ValueError(f"The question is too long ({len(question)} characters; at most {MAX_QUESTION_CHARS}).")
        if not 1 <= n <= self.config.max_candidates:
            raise ValueError(f"Ask for between 1 and {self.config.max_candidates} candidates, not {n}.")
        generator = self.warm_up()
        messages = prompt_for_database(question, db_path)
        gen_config = GenerationConfig(
            n=n,
            temperature=0.0 if n == 1 else self.config.temperature,
            max_new_tokens=self.config.max_new_tokens,
            seed=seed,
            stop_at_statement=True,
        )
        with self._lock:
            try:
                if n == 1 and self.config.fast_greedy and GreedyPrefixCache.supports(generator):
                    if self._fast is None or self._fast.generator is not generator:
                        self._fast = GreedyPrefixCache(generator)
                    return [extract_sql(self._fast.generate(messages, max_new_tokens=self.config.max_new_tokens))]
                return evaluate_generator(generator, [messages], config=gen_config)[0].sqls
            except Exception as e:  # endpoint down, out of memory, ...: one message for the visitor
                logger.exception("generation failed")
                raise ModelError(f"The model did not answer ({type(e).__name__}: {e}).") from e

    def answer(self, question: str, db_path: str | Path, *, n: int = 1, seed: int = 0) -> Answer:
        """Write `n` candidates, execute each read-only with the timeout, and pick one by execution voting.

        Raises:
            ValueError: an empty or too long question, or `n` out of range.
            ModelError: the model failed.
        """
        start = time.perf_counter()
        sqls = self.write_sql(question, db_path, n=n, seed=seed)
        generated = time.perf_counter()
        cache: dict[str, Any] = {}
        for sql in sqls:
            if sql not in cache:
                cache[sql] = self.run_sql(sql, db_path)
        results = [cache[sql] for sql in sqls]
        best, votes = vote(results)
        candidates = [Candidate(sql=s, result=r, votes=v) for s, r, v in zip(sqls, results, votes, strict=True)]
        answer = Answer(
            sql=sqls[best],
            result=results[best],
            candidates=candidates,
            generation_s=generated - start,
            execution_s=time.perf_counter() - generated,
            first_sql=sqls[best],
        )
        from sense_hub.repair import REPAIRABLE

        if self.config.repair_rounds and not answer.result.ok and answer.result.error in REPAIRABLE:
            self._repair(answer, question, db_path, seed=seed)
        return answer

    def _repair(self, answer: Answer, question: str, db_path: str | Path, *, seed: int) -> None:
        """Repair the chosen SQL in place (`sense_hub.repair`); the time goes to `generation_s`."""
        from sense_hub.generation import GenerationConfig
        from sense_hub.prompts import prompt_for_database
        from sense_hub.repair import repair

        start = time.perf_counter()
        messages = prompt_for_database(question.strip(), db_path)
        config = GenerationConfig(max_new_tokens=self.config.max_new_tokens, seed=seed, stop_at_statement=True)
        generator = self.warm_up()  # loaded already; outside the lock, which warm_up takes while loading
        with self._lock:
            try:
                (fixed,) = repair(
                    generator,
                    [messages],
                    [answer.sql],
                    [db_path],
                    rounds=self.config.repair_rounds,
                    config=config,
                    samples=self.config.repair_samples,
                    timeout=self.config.timeout,
                )
            except Exception:  # repair is a bonus: the visitor still gets the first answer and its error
                logger.exception("repair failed")
                return
        answer.repair = fixed
        if fixed.sql != answer.sql:
            answer.sql = fixed.sql
            answer.result = self.run_sql(fixed.sql, db_path)
        answer.generation_s += time.perf_counter() - start

    def run_sql(self, sql: str, db_path: str | Path):
        """Execute visitor SQL read-only with the configured timeout and result caps (an `ExecutionResult`)."""
        from sense_hub.execution import execute

        c = self.config
        return execute(db_path, sql or "", timeout=c.timeout, max_rows=c.max_rows, max_bytes=c.max_result_bytes)
