"""The files a synthesis run appends to, and what a resumed run learns from them.

Kept strong records go to the output JSONL, rejected samples (with their reason) to `<output stem>.rejected.jsonl`,
one durable line at a time (`records.JsonlAppender`), so a killed run loses at most the line being written. A
rerun reads both files (`resume_output`): the ids there are not asked again, and their SQL and questions are not
kept twice.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from sense_hub.execution import dedup_key
from sense_hub.records import JsonlAppender, read_complete_jsonl

__all__ = ["OutputFiles", "decontaminate_output", "normalize_question", "rejected_path", "resume_output"]


def rejected_path(output: Path) -> Path:
    """Where the rejected samples of `output` go: `<stem>.rejected.jsonl` next to it."""
    return output.with_name(f"{output.stem}.rejected.jsonl")


def normalize_question(question: str) -> str:
    """Lower case, letters and digits only, single spaces (for question deduplication)."""
    return " ".join(re.findall(r"[a-z0-9]+", question.lower()))


@dataclass
class OutputFiles:
    """What a synthesis output holds so far: kept records, the ids already answered (kept or rejected), and the
    dedup keys of the kept SQL and questions."""

    records: list[dict]
    done: set[str]
    seen_sql: set[str] = field(default_factory=set)
    seen_questions: set[str] = field(default_factory=set)

    def keep(self, record: dict) -> None:
        """Count a newly kept record (the caller has written it)."""
        self.records.append(record)
        self.seen_sql.add(dedup_key(record["sql"]))
        self.seen_questions.add(normalize_question(record["question"]))


def resume_output(output: Path) -> OutputFiles:
    """Read an output and its rejected file (complete lines; a torn last line is redone).

    Raises:
        RecordError: a complete line is not JSON (the message names the file and line).
    """
    records, _ = read_complete_jsonl(output)
    rejected, _ = read_complete_jsonl(rejected_path(output))
    files = OutputFiles(records=[], done={r["id"] for r in records} | {r["id"] for r in rejected})
    for record in records:
        files.keep(record)
    return files


def open_appenders(output: Path) -> tuple[JsonlAppender, JsonlAppender]:
    """Appenders for the kept records and the rejected samples (each cuts off a torn last line first)."""
    return JsonlAppender(output), JsonlAppender(rejected_path(output))


def decontaminate_output(output: Path, index, *, action: str) -> dict:
    """Check a synthesis output against a benchmark (`contamination.BenchmarkIndex`) and act on the matches.

    `drop` moves contaminated records to the rejected file (reason `contaminated:sql` / `contaminated:question`,
    so a resumed run does not ask for them again); `flag` rewrites every record with a `contamination` column
    ("" when clean). The counts (including records dropped by earlier runs on the same output) are written to
    `contamination.report_path(output)` and returned.

    Args:
        output: the strong-records JSONL.
        index: the benchmark's `contamination.BenchmarkIndex`.
        action: "drop" or "flag".
    """
    from sense_hub.contamination import ACTIONS, report_path
    from sense_hub.records import append_jsonl, write_json, write_jsonl

    if action not in ACTIONS:
        raise ValueError(f"`action` must be one of {ACTIONS}, got {action!r}")
    records, _ = read_complete_jsonl(output)
    rejected, _ = read_complete_jsonl(rejected_path(output))
    earlier = [r for r in rejected if str(r.get("reason", "")).startswith("contaminated:")]
    matches = index.scan(records)
    if action == "drop":
        kept = [r for r, m in zip(records, matches, strict=True) if m is None]
        dropped = [
            {"id": r["id"], "reason": f"contaminated:{m.how}", "message": f"matches {m.item} (overlap {m.overlap})",
             "question": r["question"], "sql": r["sql"]}
            for r, m in zip(records, matches, strict=True) if m is not None
        ]  # fmt: skip
        if dropped:
            append_jsonl(rejected_path(output), dropped)
            write_jsonl(output, kept)
    else:
        write_jsonl(
            output,
            [{**r, "contamination": m.label() if m else ""} for r, m in zip(records, matches, strict=True)],
        )
    report = index.report(matches, action=action)
    if earlier:
        by_how = Counter(str(r["reason"]).split(":", 1)[1] for r in earlier)
        report["checked"] += len(earlier)
        report["sql_matches"] += by_how["sql"]
        report["question_matches"] += by_how["question"]
        report["dropped"] += len(earlier)
    write_json(report_path(output), report, sort_keys=True)
    return report
