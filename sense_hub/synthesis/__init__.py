"""Strong data: LLM-synthesized domains (SENSE) and template-based, execution-verified SQL (SPFT-SQL).

Two generators write the same *strong* records (`formats.STRONG_COLUMNS`):

- `synthesize_strong`: a strong model invents a new domain, its schema (and a few rows), a question and its
  SQL at a difficulty level, with two seed examples as few-shot. The schema is materialized in a new SQLite
  database (`<db_out_root>/<db_id>/<db_id>.sqlite`), the SQL must parse (sqlglot) and execute with a non-empty
  result, and duplicates (by normalized SQL, by question) are dropped. Every rejected sample keeps its reason.
- `synthesize_templates`: SQL filled from templates over real databases (`sense_hub.synthesis.template_sql`), a
  SQL-to-text model writes the question, and a text-to-SQL model (the verifier) answers it; a pair is kept
  when the two SQL queries give the same result. Rejected pairs are re-asked with feedback in the next round.
  A rule-based question rendered from the template is a last resort only with `rule_fallback=True` (off by
  default: rule questions name columns and values verbatim and teach little). Each record says who wrote the
  question (`generator`) and what checked it (`verification`).

Both append to a JSONL file one line at a time (rejections go to `<output stem>.rejected.jsonl`), so an
interrupted run resumes where it stopped, and both fill a `SynthesisStats` with calls, approximate tokens,
kept and rejected examples by reason.

Modules: `strong` (the strong-model generator and its database sandbox), `template_sql` (SQL templates filled from a
database profile), `templates` (the template generator,
SQL-to-text and verification), `output` (the appended output files and resume), `statistics` (run cost and
yield; difficulty and SQL components). The command is `sense_hub.commands.synthesize`.
"""

from sense_hub.cards import plot_synthesis_statistics as plot_statistics
from sense_hub.synthesis.output import normalize_question, rejected_path, resume_output
from sense_hub.synthesis.statistics import (
    COMPONENTS,
    DIFFICULTIES,
    SynthesisStats,
    classify_difficulty,
    sql_components,
    synthesis_statistics,
)
from sense_hub.synthesis.strong import (
    DIFFICULTY_GUIDE,
    DOMAIN_HINTS,
    OVER_REPRESENTED_DOMAINS,
    StrongSample,
    materialize_database,
    parse_strong_output,
    split_statements,
    strong_prompt,
    synthesize_strong,
)
from sense_hub.synthesis.templates import (
    SQL_TO_TEXT_EXAMPLES,
    SQL_TO_TEXT_SYSTEM,
    parse_question,
    sql_to_text_prompt,
    synthesize_templates,
)

__all__ = [
    "COMPONENTS",
    "DIFFICULTIES",
    "DIFFICULTY_GUIDE",
    "DOMAIN_HINTS",
    "OVER_REPRESENTED_DOMAINS",
    "SQL_TO_TEXT_EXAMPLES",
    "SQL_TO_TEXT_SYSTEM",
    "StrongSample",
    "SynthesisStats",
    "classify_difficulty",
    "materialize_database",
    "normalize_question",
    "parse_question",
    "parse_strong_output",
    "plot_statistics",
    "rejected_path",
    "resume_output",
    "split_statements",
    "sql_components",
    "sql_to_text_prompt",
    "strong_prompt",
    "synthesis_statistics",
    "synthesize_strong",
    "synthesize_templates",
]
