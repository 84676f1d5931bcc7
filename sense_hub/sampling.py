"""Weak-model sampling (`sense-hub sample`) and benchmark predictions (`sense-hub predict`).

`sample_candidates` asks a generator for `n` SQL candidates per question, executes each against the question's
database and labels it against the gold result (`evaluation.judge`, metric `strict` by default) into weak
records (`formats.WEAK_COLUMNS`). `predict` writes one prediction per question — greedy, or the winner of an
execution-based majority vote over `n` samples (self-consistency) — as the JSONL `sense-hub eval` reads.

Both are resumable. Questions are processed in fixed chunks of `chunk_size` (by position in the example list);
each chunk's records are appended with one write, `flush` and `fsync`. A sidecar `<output>.manifest.json` holds
the arguments. On restart with the same arguments the file is read back, a torn last line is dropped, chunks
that are not complete are removed and redone from the start, and complete chunks are skipped: nothing is lost
or duplicated, and with a local model the result is the same as an uninterrupted run (each chunk has its own
seed). Restarting with other generation arguments is refused with an error naming what differs.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import sys
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from sense_hub.benchmarks import Example, as_db_roots, resolve_database
from sense_hub.errors import ResumeError
from sense_hub.formats import WEAK_COLUMNS
from sense_hub.records import append_jsonl, read_complete_jsonl, write_json, write_jsonl

if TYPE_CHECKING:
    from sense_hub.generation import Generator

logger = logging.getLogger(__name__)

_MANIFEST_VERSION = 1

GOLD_SUSPECT_MIN_AGREE = 3
"""The default fewest samples that must share one wrong result to mark a question `gold_suspect`."""


# ---------------------------------------------------------------------------------------------------------------
# Resumable chunked JSONL
# ---------------------------------------------------------------------------------------------------------------


def manifest_path(output: str | Path) -> Path:
    """The sidecar file holding the arguments a resumable output was started with."""
    output = Path(output)
    return output.with_name(output.name + ".manifest.json")


class _ChunkedOutput:
    """Append-only JSONL written in question chunks, with a manifest guard and resume."""

    def __init__(self, path: Path, manifest: dict) -> None:
        self.path = Path(path)
        self.manifest = manifest
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def _check_manifest(self) -> None:
        mpath = manifest_path(self.path)
        if mpath.exists():
            old = json.loads(mpath.read_text())
            diffs = [f"{k}: {old.get(k)!r} then, {v!r} now" for k, v in self.manifest.items() if old.get(k) != v]
            if diffs:
                raise ResumeError(
                    f"{self.path} was started with other arguments ({'; '.join(diffs)}). Rerun with the same "
                    f"arguments to resume, or choose another --output (or delete {self.path} and {mpath})."
                )
        elif self.path.exists() and self.path.stat().st_size > 0:
            raise ResumeError(
                f"{self.path} exists but has no {mpath.name}, so it was not started by this command; "
                "choose another --output or delete the file."
            )
        else:
            write_json(mpath, self.manifest)

    def load(
        self,
        *,
        complete: Callable[[list[dict]], bool],
        chunk_of: Mapping[str, int],
        chunk_sizes: Mapping[int, int],
    ) -> dict[str, list[dict]]:
        """Check the manifest, read what is there, and keep only the chunks that are complete.

        Records of questions outside this run (`chunk_of` lacks them) stay in the file but are not returned.
        Incomplete chunks (a run killed mid-chunk) are removed from the file, so they are redone whole.

        Returns:
            question_id -> its records, for the questions of complete chunks.
        """
        self._check_manifest()
        records, torn = read_complete_jsonl(
            self.path, error=ResumeError, fix="it is not a sense-hub output; choose another --output"
        )
        by_question: dict[str, list[dict]] = {}
        for rec in records:
            by_question.setdefault(rec["question_id"], []).append(rec)
        by_chunk: dict[int, list[str]] = {}
        foreign: set[str] = set()
        for qid in by_question:
            if qid in chunk_of:
                by_chunk.setdefault(chunk_of[qid], []).append(qid)
            else:
                foreign.add(qid)
        kept: dict[str, list[dict]] = {}
        for chunk, qids in by_chunk.items():
            if len(qids) == chunk_sizes[chunk] and all(complete(by_question[q]) for q in qids):
                kept.update((q, by_question[q]) for q in qids)
        n_kept = sum(len(v) for v in kept.values()) + sum(len(by_question[q]) for q in foreign)
        if torn or n_kept < len(records):
            if n_kept < len(records):
                logger.warning("%s: redoing %d records of unfinished chunks", self.path, len(records) - n_kept)
            keep_ids = set(kept) | foreign
            self._rewrite([r for r in records if r["question_id"] in keep_ids])
        return kept

    def _rewrite(self, records: list[dict]) -> None:
        write_jsonl(self.path, records)

    def append(self, records: list[dict]) -> None:
        """Append records with one write, then flush and fsync (durable before the next chunk starts)."""
        append_jsonl(self.path, records)


def usable_examples(examples: Sequence[Example], db_root, *, skip_problems: bool) -> list[tuple[Example, Path]]:
    from sense_hub.databases import DatabaseError

    roots = as_db_roots(db_root)
    usable, missing, broken = [], Counter(), 0
    seen: set[str] = set()
    for ex in examples:
        if ex.question_id in seen:
            raise ValueError(f"question id {ex.question_id!r} repeats; ids must be unique to resume safely")
        seen.add(ex.question_id)
        if skip_problems and getattr(ex, "problem", ""):
            broken += 1
            continue
        try:
            usable.append((ex, resolve_database(roots, ex.db_id)))
        except DatabaseError:
            missing[ex.db_id] += 1
    if missing:
        logger.warning(
            "skipping %d questions whose database is missing under %s: %s",
            sum(missing.values()),
            ", ".join(map(str, roots)),
            ", ".join(f"{db} ({k})" for db, k in sorted(missing.items())),
        )
    if broken:
        logger.warning("skipping %d questions whose gold SQL is broken (see the loader's problems)", broken)
    return usable


def _chunk_seed(seed: int, chunk: int) -> int:
    return (seed * 1_000_003 + chunk) % (2**31 - 1)


def _progress(total: int, initial: int, desc: str, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(
        total=total,
        initial=initial,
        desc=desc,
        unit="question",
        file=sys.stderr,
        dynamic_ncols=True,
        disable=not enabled,
    )


def _run_chunks(
    *,
    items: list[tuple[Example, Path]],
    output: Path,
    manifest: dict,
    chunk_size: int,
    per_question: Callable[[list[dict]], bool],
    process: Callable[[list[tuple[Example, Path]], int], list[dict]],
    desc: str,
    progress: bool,
) -> list[dict]:
    chunk_of = {ex.question_id: i // chunk_size for i, (ex, _) in enumerate(items)}
    sizes = Counter(chunk_of.values())
    out = _ChunkedOutput(output, manifest)
    done = out.load(complete=per_question, chunk_of=chunk_of, chunk_sizes=sizes)
    for ex, _ in items:
        recs = done.get(ex.question_id)
        if recs and (recs[0].get("gold_sql", recs[0].get("gold")) != ex.sql or recs[0]["question"] != ex.question):
            raise ResumeError(
                f"{output} holds question {ex.question_id!r} with another question or gold SQL; the examples "
                "changed since the run started. Choose another --output."
            )
    bar = _progress(len(items), sum(1 for ex, _ in items if ex.question_id in done), desc, progress)
    try:
        for start in range(0, len(items), chunk_size):
            chunk = items[start : start + chunk_size]
            if all(ex.question_id in done for ex, _ in chunk):
                continue
            records = process(chunk, start // chunk_size)
            out.append(records)
            for rec in records:
                done.setdefault(rec["question_id"], []).append(rec)
            bar.update(len(chunk))
    finally:
        bar.close()
    return [rec for ex, _ in items for rec in done.get(ex.question_id, [])]


def example_prompts(chunk: list[tuple[Example, Path]]) -> list[list[dict]]:
    from sense_hub.prompts import prompt_for_database

    return [prompt_for_database(ex.question, db_path, evidence=ex.evidence) for ex, db_path in chunk]


def _config(*, n, temperature, top_p, max_new_tokens, seed):
    from sense_hub.generation import GenerationConfig

    return GenerationConfig(n=n, temperature=temperature, top_p=top_p, max_new_tokens=max_new_tokens, seed=seed)


def _generator_name(generator) -> str:
    return str(getattr(generator, "name", type(generator).__name__))


# ---------------------------------------------------------------------------------------------------------------
# sample
# ---------------------------------------------------------------------------------------------------------------


def _repair_candidates(generated, chunk, generator, *, rounds, style, samples, config, metric, timeout):
    """Repair, in place, the candidates of `generated` whose SQL does not run, and judge the new SQL; returns
    `{(question, sample): SQL before repair}` for each candidate repair changed."""
    from sense_hub.evaluation import judge
    from sense_hub.repair import repair

    broken = [
        (q, k)
        for q, g in enumerate(generated)
        for k, v in enumerate(g.verdicts)
        if v.error not in (None, "gold_error") and (v.pred is None or not v.pred.ok)
    ]
    if not broken:
        return {}
    prompts = example_prompts(chunk)
    fixed = repair(
        generator,
        [prompts[q] for q, _ in broken],
        [generated[q].sqls[k] for q, k in broken],
        [chunk[q][1] for q, _ in broken],
        rounds=rounds,
        config=config,
        style=style,
        timeout=timeout,
        samples=samples,
    )
    changed = [(q, k, one.sql) for (q, k), one in zip(broken, fixed, strict=True) if one.changed]
    verdicts = judge([(chunk[q][1], chunk[q][0].sql, sql) for q, _, sql in changed], metric=metric, timeout=timeout)
    first = {}
    for (q, k, sql), verdict in zip(changed, verdicts, strict=True):
        first[(q, k)] = generated[q].sqls[k]
        generated[q].sqls[k], generated[q].verdicts[k] = sql, verdict
    return first


def sample_candidates(
    examples: Sequence[Example],
    generator: Generator,
    *,
    db_root: str | Path | Sequence[str | Path],
    n: int,
    output: str | Path,
    temperature: float = 0.8,
    top_p: float = 1.0,
    max_new_tokens: int = 256,
    metric: str = "strict",
    seed: int = 0,
    chunk_size: int = 8,
    timeout: float = 30.0,
    workers: int | None = None,
    progress: bool = True,
    suspect_min_agree: int = GOLD_SUSPECT_MIN_AGREE,
    repair_rounds: int = 0,
    repair_style: str = "restate",
    repair_samples: int = 4,
) -> list[dict]:
    """Sample `n` SQL candidates per question and label each by execution against the gold SQL.

    Args:
        examples: the questions (`benchmarks.Example`); those with a broken gold (`problem`) or a missing
            database are skipped with a warning.
        generator: a `generation.Generator` (`load_generator(...)`).
        db_root: folder(s) holding `<db_id>/<db_id>.sqlite`, searched in order.
        n: candidates per question.
        output: the weak-records JSONL; resumed when it exists with the same arguments.
        temperature: sampling temperature (0 = greedy, then the n candidates are identical).
        top_p: nucleus sampling mass.
        max_new_tokens: the most tokens per candidate.
        metric: the labelling metric ("strict", "spider", "bird"; see `sense_hub.matching`).
        seed: the base seed; chunk k generates with a seed derived from (seed, k).
        chunk_size: questions per generate call and per durable append.
        timeout: seconds per query when labelling.
        workers: execution worker processes (see `evaluation.judge`).
        progress: show a tqdm bar on stderr.
        suspect_min_agree: the fewest agreeing samples that mark a question `gold_suspect` (see `gold_suspect`).
        repair_rounds: repair each candidate whose SQL does not run (`sense_hub.repair`), up to this many rounds,
            before labelling; the record then keeps the SQL before repair in `first_sql` ("" when untouched).
            Default 0: weak data keeps the weak model's errors, which are what its rejected side is made of.
        repair_style, repair_samples: as in `repair.repair`.

    Returns:
        The weak records (`formats.WEAK_COLUMNS`) of every usable example, in example order then sample
        order: `status` is "ok" or the execution error kind; `error` is None when correct, "wrong_result" when
        it executed with another result, else the error kind ("gold_error" when the gold query fails);
        `gold_suspect` is the same for every sample of a question (label noise, see `gold_suspect`).

    Raises:
        ResumeError: `output` was started with other arguments or other examples.
    """
    from sense_hub.evaluation import evaluate_generator

    if n < 1:
        raise ValueError(f"`n` must be at least 1, got {n}")
    if chunk_size < 1:
        raise ValueError(f"`chunk_size` must be at least 1, got {chunk_size}")
    name = _generator_name(generator)
    items = usable_examples(examples, db_root, skip_problems=True)
    manifest = {
        "version": _MANIFEST_VERSION,
        "kind": "weak",
        "generator": name,
        "n": n,
        "temperature": temperature,
        "top_p": top_p,
        "max_new_tokens": max_new_tokens,
        "metric": metric,
        "seed": seed,
        "chunk_size": chunk_size,
    }
    if suspect_min_agree != GOLD_SUSPECT_MIN_AGREE:
        manifest["suspect_min_agree"] = suspect_min_agree
    if repair_rounds:
        manifest.update(repair_rounds=repair_rounds, repair_style=repair_style, repair_samples=repair_samples)

    def process(chunk: list[tuple[Example, Path]], index: int) -> list[dict]:
        generated = evaluate_generator(
            generator,
            example_prompts(chunk),
            config=_config(
                n=n, temperature=temperature, top_p=top_p, max_new_tokens=max_new_tokens, seed=_chunk_seed(seed, index)
            ),
            db_paths=[db_path for _, db_path in chunk],
            gold=[ex.sql for ex, _ in chunk],
            metric=metric,
            timeout=timeout,
            workers=workers,
        )
        first: dict[tuple[int, int], str] = {}
        if repair_rounds:
            first = _repair_candidates(
                generated,
                chunk,
                generator,
                rounds=repair_rounds,
                style=repair_style,
                samples=repair_samples,
                config=_config(n=1, temperature=0.0, top_p=1.0, max_new_tokens=max_new_tokens, seed=seed),
                metric=metric,
                timeout=timeout,
            )
        sqls = [g.sqls for g in generated]
        verdicts = iter(v for g in generated for v in g.verdicts)
        suspects = [
            gold_suspect(g.verdicts, metric=metric, min_agree=suspect_min_agree)
            and gold_suspect(  # only then is the gold run again, to rule out a disagreement in row order alone
                g.verdicts,
                metric=metric,
                min_agree=suspect_min_agree,
                gold=_gold_result(ex.sql, db_path, metric, timeout),
            )
            for g, (ex, db_path) in zip(generated, chunk, strict=True)
        ]
        records = []
        for q, ((ex, _), cands, suspect) in enumerate(zip(chunk, sqls, suspects, strict=True)):
            for k, sql in enumerate(cands):
                v = next(verdicts)
                executed = v.pred is not None and v.pred.ok
                if v.correct:
                    error = None
                elif v.error is None:
                    error = "wrong_result"
                else:
                    error = v.error
                records.append(
                    {
                        "question_id": ex.question_id,
                        "db_id": ex.db_id,
                        "question": ex.question,
                        "evidence": ex.evidence,
                        "gold_sql": ex.sql,
                        "sql": sql,
                        "sample_index": k,
                        "generator": name,
                        "status": "ok" if executed else (v.pred.error if v.pred is not None else v.error),
                        "correct": bool(v.correct),
                        "error": error,
                        "gold_suspect": suspect,
                        **({"first_sql": first.get((q, k), "")} if repair_rounds else {}),
                    }
                )
        return records

    return _run_chunks(
        items=items,
        output=Path(output),
        manifest=manifest,
        chunk_size=chunk_size,
        per_question=lambda recs: sorted(r["sample_index"] for r in recs) == list(range(n)),
        process=process,
        desc="sampling",
        progress=progress,
    )


def _gold_result(sql: str, db_path: Path, metric: str, timeout: float):
    from sense_hub.execution import execute
    from sense_hub.matching import prepare_sql

    return execute(db_path, prepare_sql(sql, metric=metric, role="gold"), timeout=timeout)


def gold_suspect(
    verdicts: Sequence, *, metric: str = "strict", min_agree: int = GOLD_SUSPECT_MIN_AGREE, gold=None
) -> bool:
    """Label noise: do most of a question's samples agree on one result that is not the gold result?

    The samples that executed are grouped by result with `matching.results_match` (rows as bags, like
    `majority_vote`). The question is suspect when one group holds at least `max(min_agree, n // 2 + 1)` of
    the question's `n` samples (so at least `min_agree` and more than half of *all* samples, executable or
    not), none of the group is correct, its shared result is not empty (many wrong filters agree on no rows),
    the gold query itself executed, and (when `gold` is given) the group's rows are not the gold rows in another
    order (row order alone never flags: weak models often sort the wrong way). With n=5 and `min_agree=3`: 3 of
    5 samples share a non-empty wrong result. Run `sense-hub sample` with a strong model to have the strong
    verifier's samples vote.

    Args:
        verdicts: the question's `evaluation.Verdict`s, one per sample (with `pred` results).
        metric: how results are compared ("strict", "spider", "bird").
        min_agree: the fewest agreeing samples (at least 1; 3 by default).
        gold: the gold query's `execution.ExecutionResult`, to rule out row-order-only disagreements.

    Returns:
        True when the gold SQL is suspect.
    """
    from sense_hub.matching import results_match

    if min_agree < 1:
        raise ValueError(f"`min_agree` must be at least 1, got {min_agree}")
    need = max(min_agree, len(verdicts) // 2 + 1)
    if any(v.error == "gold_error" for v in verdicts):
        return False
    groups: list[list] = []
    for v in verdicts:
        if v.pred is None or not v.pred.ok or not v.pred.rows:
            continue
        for group in groups:
            if results_match(group[0].pred, v.pred, metric=metric, order_matters=False):
                group.append(v)
                break
        else:
            groups.append([v])
    return any(
        len(g) >= need
        and not any(v.correct for v in g)
        and not (gold is not None and results_match(gold, g[0].pred, metric=metric, order_matters=False))
        for g in groups
    )


def gold_suspect_stats(records: Sequence[Mapping]) -> dict:
    """Counts of `gold_suspect` over weak or pairs records: questions flagged, of questions, and records flagged."""
    flagged = {r["question_id"] for r in records if r.get("gold_suspect")}
    return {
        "questions_gold_suspect": len(flagged),
        "questions": len({r["question_id"] for r in records}),
        "records_gold_suspect": sum(bool(r.get("gold_suspect")) for r in records),
    }


def weak_stats(records: Sequence[dict]) -> dict:
    """Counts of a weak-record list: questions, candidates, fraction correct / executing, error kinds."""
    n = len(records)
    questions = {r["question_id"] for r in records}
    solved = {r["question_id"] for r in records if r["correct"]}
    return {
        "questions": len(questions),
        "candidates": n,
        "correct": sum(r["correct"] for r in records),
        "fraction_correct": round(sum(r["correct"] for r in records) / n, 4) if n else 0.0,
        "fraction_executed": round(sum(r["status"] == "ok" for r in records) / n, 4) if n else 0.0,
        "questions_with_correct": len(solved),
        "distinct_sql_per_question": round(len({(r["question_id"], r["sql"]) for r in records}) / len(questions), 2)
        if questions
        else 0.0,
        "errors": dict(sorted(Counter(r["error"] for r in records if r["error"]).items())),
        "questions_gold_suspect": gold_suspect_stats(records)["questions_gold_suspect"],
    }


# ---------------------------------------------------------------------------------------------------------------
# predict
# ---------------------------------------------------------------------------------------------------------------

BUDGET_DESCRIPTIONS = {
    "greedy": "one greedy (temperature 0) answer per question",
    "sample": "one sampled answer per question",
    "maj": "the execution-majority vote over N samples (self-consistency)",
    "pass": "any of N samples correct (an oracle upper bound, not a system)",
}
MODIFIER_DESCRIPTIONS = {
    "constrained": "schema-aware decoding: only the database's table and column names (sense_hub.constrained)",
    "repair": "an answer whose SQL does not run is fixed: its unknown name replaced, or the model asked again with "
    "SQLite's error (sense_hub.repair)",
}


def _modifiers(manifest: Mapping) -> list[str]:
    """The decoding additions a predictions manifest records, in name order (`constrained`, `repair`)."""
    out = []
    if manifest.get("constrained"):
        out.append("constrained")
    if int(manifest.get("repair_rounds") or 0) > 0:
        out.append("repair")
    return out


def budget(kind: str, n: int = 1, modifiers: Sequence[str] = ()) -> dict:
    """How an answer was chosen and from how many samples: `{"name", "description", "samples_per_question"}`.

    Names: `greedy`, `sample@1`, `maj@N`, `pass@N`, each with its decoding additions after a `+`
    (`greedy+constrained`, `greedy+repair`, `greedy+constrained+repair`). Summaries and cards label every score
    with one, so a self-consistency or repaired number never shows under the plain greedy name.
    """
    unknown = [m for m in modifiers if m not in MODIFIER_DESCRIPTIONS]
    if unknown:
        raise ValueError(f"unknown budget modifier {unknown}; expected some of {sorted(MODIFIER_DESCRIPTIONS)}")
    if kind == "greedy":
        name, samples = "greedy", 1
    elif kind in BUDGET_DESCRIPTIONS:
        name, samples = f"{kind}@{n}", n
    else:
        raise ValueError(f"unknown budget {kind!r}; expected one of {sorted(BUDGET_DESCRIPTIONS)}")
    description = "; ".join([BUDGET_DESCRIPTIONS[kind], *(MODIFIER_DESCRIPTIONS[m] for m in modifiers)])
    return {"name": "+".join([name, *modifiers]), "description": description, "samples_per_question": samples}


def timings_path(output: str | Path) -> Path:
    """The sidecar file holding the wall seconds of each chunk's passes (`predict`)."""
    output = Path(output)
    return output.with_name(output.name + ".timings.json")


class _Timings:
    """Wall seconds per chunk and pass (`samples`, `vote`, `greedy`), kept next to the output so resume keeps them."""

    def __init__(self, output: Path) -> None:
        self.path = timings_path(output)

    def load(self) -> dict[str, dict]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return data.get("chunks", {}) if isinstance(data, dict) else {}

    def record(self, chunk: int, seconds: Mapping[str, float], *, questions: int) -> None:
        chunks = self.load()
        chunks[str(chunk)] = {"questions": questions, **{k: round(v, 4) for k, v in seconds.items()}}
        write_json(self.path, {"version": 1, "chunks": chunks})


def budget_report(
    rows: Sequence[dict],
    *,
    db_root: str | Path | Sequence[str | Path],
    output: str | Path,
    n: int,
    temperature: float | None = None,
    metric: str = "spider",
    timeout: float = 30.0,
    workers: int | None = None,
) -> dict:
    """Greedy, maj@N and pass@N of `predict` rows, each with its samples per question and wall seconds.

    Every answer is judged against the gold SQL by execution (`evaluation.judge`, `metric`). Budgets:

    - `greedy`: the separate greedy pass (`greedy` field; with n = 1 and temperature 0, `pred` itself). It is never
      the first of the N samples.
    - `maj@N`: `pred`, the execution-majority vote over the N samples.
    - `pass@N`: any of the N `candidates` correct: an oracle upper bound, not something a system can output.
    - `sample@1`: with n = 1 and a temperature above 0, `pred` is one sample.

    `generation_s` is the wall time of the pass that produced the answers (read from `<output>.timings.json`; the
    N samples are shared by maj@N and pass@N), `selection_s` that of executing the candidates for the vote, and
    `wall_s` their sum: what the budget costs to answer, judging excluded (`judge_s`, for all budgets together).

    Returns:
        `{"metric", "pred_budget", "budgets": {name: {...}}, "judge_s"}`; a pass without recorded timings has
        `null` seconds.
    """
    from sense_hub.evaluation import judge

    if temperature is None:
        temperature = 0.0 if n == 1 else 0.8
    roots = as_db_roots(db_root)
    paths: dict[str, str] = {}
    for row in rows:
        if row["db_id"] not in paths:
            try:
                paths[row["db_id"]] = str(resolve_database(roots, row["db_id"]))
            except ValueError:
                paths[row["db_id"]] = str(roots[0] / row["db_id"] / f"{row['db_id']}.sqlite")  # judged missing_db
    try:
        manifest = json.loads(manifest_path(output).read_text(encoding="utf-8"))
        chunk_size = int(manifest["chunk_size"])
    except (OSError, ValueError, KeyError, TypeError):
        manifest, chunk_size = {}, 0
    mods = _modifiers(manifest) if isinstance(manifest, dict) else []
    repaired = "repair" in mods and all("first_pred" in row for row in rows)
    base_mods = [m for m in mods if m != "repair"]
    recorded = _Timings(Path(output)).load()
    n_chunks = -(-len(rows) // chunk_size) if chunk_size else 0
    chunks = {str(i): recorded.get(str(i), {}) for i in range(n_chunks)}  # this run's chunks only

    def seconds(kind: str) -> float | None:
        values = [c.get(kind) for c in chunks.values()]
        if not values or any(v is None for v in values):
            return None
        return round(sum(values), 3)

    answers: dict[str, list[str]] = {}
    kind = ("maj", n) if n > 1 else (("greedy", 1) if not temperature else ("sample", 1))
    pred_name = budget(*kind, mods)["name"]
    if n > 1:
        if all("greedy" in row for row in rows):
            answers[budget("greedy", 1, base_mods)["name"]] = [row["greedy"] for row in rows]
    if repaired:  # the same answers before repair: a budget of its own, side by side
        answers[budget(*kind, base_mods)["name"]] = [row["first_pred"] for row in rows]
    answers[pred_name] = [row["pred"] for row in rows]
    if n > 1:
        answers[f"pass@{n}"] = []  # judged from the candidates below
    items = []
    for name, sqls in answers.items():
        if name.startswith("pass@"):
            items += [(paths[row["db_id"]], row["gold"], sql) for row in rows for sql in row["candidates"]]
        else:
            items += [(paths[row["db_id"]], row["gold"], sql) for row, sql in zip(rows, sqls, strict=True)]
    start = time.perf_counter()
    verdicts = iter(judge(items, metric=metric, timeout=timeout, workers=workers))
    judge_s = round(time.perf_counter() - start, 3)
    budgets = {}
    repair_calls = sum((row.get("repair") or {}).get("model_calls", 0) for row in rows)
    for name in answers:
        calls = n if n > 1 else 1
        if name.startswith("pass@"):
            correct = sum(any(next(verdicts).correct for _ in row["candidates"]) for row in rows)
            entry = budget("pass", n)
            gen, sel = seconds("samples"), 0.0
        else:
            correct = sum(next(verdicts).correct for _ in rows)
            base = name.split("+")[0]
            entry = budget(base.split("@")[0], n if base.startswith("maj@") else 1, name.split("+")[1:])
            if base == "greedy" and n > 1:
                gen, sel, calls = seconds("greedy"), 0.0, 1
            elif base.startswith("maj@"):
                gen, sel = seconds("samples"), seconds("vote")
            else:
                gen, sel = seconds("samples"), 0.0
            if name == pred_name and repaired:
                repair_s = seconds("repair")
                sel = None if sel is None or repair_s is None else round(sel + repair_s, 3)
                calls += repair_calls / len(rows) if rows else 0.0
        budgets[name] = {
            **entry,
            "questions": len(rows),
            "correct": correct,
            "execution_accuracy": round(correct / len(rows), 4) if rows else 0.0,
            "model_calls_per_question": round(calls, 4),
            "generation_s": gen,
            "selection_s": sel,
            "wall_s": round(gen + sel, 3) if gen is not None and sel is not None else None,
        }
    return {"metric": metric, "pred_budget": pred_name, "budgets": budgets, "judge_s": judge_s}


def run_info(output: str | Path) -> dict | None:
    """What `predict` recorded about a predictions file (its manifest): model, decoding settings, the budget of `pred`.

    Returns:
        `{"model", "decoding", "budget"}`, or None when `output` has no predictions manifest.
    """
    path = manifest_path(output)
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(manifest, dict) or manifest.get("kind") != "predictions":
        return None
    n = int(manifest.get("n", 1))
    temperature = manifest.get("temperature")
    mods = _modifiers(manifest)
    if n > 1:
        chosen = budget("maj", n, mods)
    else:
        chosen = budget("greedy", 1, mods) if not temperature else budget("sample", 1, mods)
    keys = (
        "n",
        "temperature",
        "top_p",
        "max_new_tokens",
        "seed",
        "constrained",
        "repair_rounds",
        "repair_style",
        "repair_samples",
    )
    decoding = {k: manifest[k] for k in keys if k in manifest}
    return {"model": manifest.get("generator"), "decoding": decoding, "budget": chosen}


def majority_vote(results: Sequence, *, metric: str = "spider") -> tuple[int, int]:
    """Self-consistency: the candidate whose execution result the most candidates share.

    Candidates that did not execute successfully do not vote. Results are grouped with
    `matching.results_match` (rows compared as bags, so row order does not split a group); the largest group
    wins, a tie goes to the group whose first member comes first, and its first member is chosen.

    Args:
        results: one `execution.ExecutionResult` per candidate, in sample order.
        metric: how results are compared ("spider", "bird", "strict").

    Returns:
        `(index of the chosen candidate, votes of its group)`; `(0, 0)` when no candidate executed.
    """
    from sense_hub.matching import results_match

    groups: list[list[int]] = []  # member indices; groups[g][0] is the representative
    for i, res in enumerate(results):
        if not res.ok:
            continue
        for group in groups:
            if results_match(results[group[0]], res, metric=metric, order_matters=False):
                group.append(i)
                break
        else:
            groups.append([i])
    if not groups:
        return 0, 0
    best = max(groups, key=lambda g: (len(g), -g[0]))
    return best[0], len(best)


def predict(
    examples: Sequence[Example],
    generator: Generator,
    *,
    db_root: str | Path | Sequence[str | Path],
    output: str | Path,
    n: int = 1,
    temperature: float | None = None,
    top_p: float = 1.0,
    max_new_tokens: int = 256,
    seed: int = 0,
    metric: str = "spider",
    chunk_size: int = 8,
    timeout: float = 30.0,
    progress: bool = True,
    greedy_pass: bool = True,
    repair_rounds: int = 0,
    repair_style: str = "restate",
    repair_samples: int = 4,
    constrained: bool = False,
) -> list[dict]:
    """Predict one SQL query per question: greedy (n=1) or the execution majority vote of n samples.

    With n > 1 and `greedy_pass`, a separate greedy (temperature 0) pass also runs and its SQL goes in `greedy`,
    so greedy, maj@N and pass@N can be reported side by side (`budget_report`) without taking the first sample
    for the greedy answer. The wall seconds of each pass go to `<output>.timings.json`, chunk by chunk.

    Args:
        examples: the questions; those whose database is missing are skipped with a warning.
        generator: a `generation.Generator`.
        db_root: folder(s) holding `<db_id>/<db_id>.sqlite`.
        output: the predictions JSONL (`question_id`, `db_id`, `question`, `gold`, `pred`, plus `votes`,
            `candidates` and `greedy` when n > 1) that `sense-hub eval` reads; resumed like `sample_candidates`.
        n: 1 for greedy decoding, more for self-consistency voting.
        temperature: defaults to 0 (greedy) for n=1 and 0.8 otherwise.
        top_p: nucleus sampling mass.
        max_new_tokens: the most tokens per candidate.
        seed: the base seed.
        metric: how candidate results are grouped for the vote.
        chunk_size: questions per generate call and per durable append.
        timeout: seconds per candidate query when voting.
        progress: show a tqdm bar on stderr.
        greedy_pass: with n > 1, also decode greedily once per question (the `greedy` field).
        repair_rounds: repair `pred` when its SQL does not run, up to this many rounds (`sense_hub.repair`); the
            row then keeps the answer before repair in `first_pred` and what repair did in `repair`
            (`model_calls`, `name_fixes`, `errors`), so `budget_report` scores both side by side.
        repair_style: how the model is asked again (`repair.repair_prompt`).
        repair_samples: answers sampled per repair call; the execution vote among those that run is kept.
        constrained: schema-aware decoding (`sense_hub.constrained`): only the database's names (local backend).

    Returns:
        The prediction rows in example order.

    Raises:
        ResumeError: `output` was started with other arguments.
    """
    from sense_hub.evaluation import evaluate_generator
    from sense_hub.execution import Executor

    if n < 1:
        raise ValueError(f"`n` must be at least 1, got {n}")
    if temperature is None:
        temperature = 0.0 if n == 1 else 0.8
    name = _generator_name(generator)
    items = usable_examples(examples, db_root, skip_problems=False)
    manifest = {
        "version": _MANIFEST_VERSION,
        "kind": "predictions",
        "generator": name,
        "n": n,
        "temperature": temperature,
        "top_p": top_p,
        "max_new_tokens": max_new_tokens,
        "metric": metric,
        "seed": seed,
        "chunk_size": chunk_size,
    }
    vote = n > 1
    greedy_pass = vote and greedy_pass
    if greedy_pass:
        manifest["greedy_pass"] = True
    if constrained:  # recorded only when used, so files predicted before these options still resume
        manifest["constrained"] = True
    if repair_rounds:
        manifest.update(repair_rounds=repair_rounds, repair_style=repair_style, repair_samples=repair_samples)
    timings = _Timings(Path(output))

    def grammars_of(chunk: list[tuple[Example, Path]]) -> tuple | None:
        if not constrained:
            return None
        from sense_hub.constrained import grammar_for_database

        return tuple(grammar_for_database(db_path) for _, db_path in chunk)

    def process(chunk: list[tuple[Example, Path]], index: int) -> list[dict]:
        config = _config(
            n=n, temperature=temperature, top_p=top_p, max_new_tokens=max_new_tokens, seed=_chunk_seed(seed, index)
        )
        prompts = example_prompts(chunk)
        grammars = grammars_of(chunk)
        if grammars is not None:
            config = dataclasses.replace(config, grammars=grammars)
        seconds = {}
        start = time.perf_counter()
        sqls = [g.sqls for g in evaluate_generator(generator, prompts, config=config)]
        seconds["samples"] = time.perf_counter() - start
        if vote:
            start = time.perf_counter()
            with Executor(timeout=timeout) as executor:
                results = executor.map(
                    [(db_path, sql) for (_, db_path), cands in zip(chunk, sqls, strict=True) for sql in cands]
                )
            seconds["vote"] = time.perf_counter() - start
        if greedy_pass:
            start = time.perf_counter()
            greedy_config = _config(
                n=1, temperature=0.0, top_p=1.0, max_new_tokens=max_new_tokens, seed=_chunk_seed(seed, index)
            )
            greedy_config = dataclasses.replace(greedy_config, grammars=grammars)
            greedy = [g.sqls[0] for g in evaluate_generator(generator, prompts, config=greedy_config)]
            seconds["greedy"] = time.perf_counter() - start
        rows = []
        for q, ((ex, _), cands) in enumerate(zip(chunk, sqls, strict=True)):
            row = {"question_id": ex.question_id, "db_id": ex.db_id, "question": ex.question, "gold": ex.sql}
            if vote:
                chosen, votes = majority_vote(results[q * n : (q + 1) * n], metric=metric)
                row.update(pred=cands[chosen], votes=votes, candidates=cands)
                if greedy_pass:
                    row["greedy"] = greedy[q]
            else:
                row["pred"] = cands[0]
            rows.append(row)
        if repair_rounds:
            from sense_hub.repair import repair

            start = time.perf_counter()
            fixed = repair(
                generator,
                prompts,
                [row["pred"] for row in rows],
                [db_path for _, db_path in chunk],
                rounds=repair_rounds,
                config=_config(n=1, temperature=0.0, top_p=1.0, max_new_tokens=max_new_tokens, seed=seed),
                style=repair_style,
                timeout=timeout,
                grammars=grammars,
                samples=repair_samples,
            )
            seconds["repair"] = time.perf_counter() - start
            for row, one in zip(rows, fixed, strict=True):
                row["first_pred"] = row["pred"]
                row["pred"] = one.sql
                row["repair"] = {"model_calls": one.model_calls, "name_fixes": one.name_fixes, "errors": one.errors}
        timings.record(index, seconds, questions=len(chunk))
        return rows

    return _run_chunks(
        items=items,
        output=Path(output),
        manifest=manifest,
        chunk_size=chunk_size,
        per_question=lambda recs: len(recs) == 1,
        process=process,
        desc="predicting",
        progress=progress,
    )


__all__ = [
    "ResumeError",
    "GOLD_SUSPECT_MIN_AGREE",
    "WEAK_COLUMNS",
    "budget",
    "budget_report",
    "gold_suspect",
    "gold_suspect_stats",
    "majority_vote",
    "manifest_path",
    "predict",
    "run_info",
    "sample_candidates",
    "timings_path",
    "weak_stats",
]
