"""Schema-aware decoding: the model may write only the database's own table and column names.

Small models invent names (`pet_type` for `PetType`, `Pets.StuID` for a column of another table); SQLite then
refuses the query. Here every word the model writes must be an SQL keyword or function, a table or column of the
database (any letter case, as SQLite matches them), a number, a short alias (`T1`, `p`) or a name right after
`AS`; string literals ('dog', "dog") are free. The rule is a regular expression compiled by llguidance (the
grammar engine behind guidance, also used by vLLM and llama.cpp), which turns it into a token mask at each
decoding step; `SchemaConstraint` applies the mask inside transformers' `generate`.

It constrains names, not grammar: a query can still be wrong or fail for another reason (a column of a table the
query does not join). `sense-hub predict --constrained` reports it as its own budget (`greedy+constrained`).

Install: `pip install llguidance` (part of `sense-hub[train]`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from functools import lru_cache
from pathlib import Path

from sense_hub.errors import SenseHubError

# SQLite's keywords (sqlite.org/lang_keywords.html) and its core, aggregate and date functions, plus the type names
# a CAST may use.
SQL_WORDS = frozenset(
    """
    abort action add after all alter always analyze and as asc attach autoincrement before begin between by cascade
    case cast check collate column commit conflict constraint create cross current current_date current_time
    current_timestamp database default deferrable deferred delete desc detach distinct do drop each else end escape
    except exclude exclusive exists explain fail filter first following for foreign from full generated glob group
    groups having if ignore immediate in index indexed initially inner insert instead intersect into is isnull join
    key last left like limit match materialized natural no not nothing notnull null nulls of offset on or order
    others outer over partition plan pragma preceding primary query raise range recursive references regexp reindex
    release rename replace restrict returning right rollback row rows savepoint select set table temp temporary then
    ties to transaction trigger unbounded union unique update using vacuum values view virtual when where window
    with without true false
    abs avg count group_concat string_agg max min sum total length lower upper substr substring trim ltrim rtrim
    round instr coalesce ifnull iif nullif typeof date time datetime julianday strftime unixepoch printf format
    random hex quote char unicode sign ceil ceiling floor sqrt power pow mod exp ln log log10 log2 pi
    integer int real text numeric float double varchar blob boolean decimal
    """.split()
)

_WORD_CHARS = "A-Za-z0-9_"
_FREE_WORDS = (
    r"[0-9]+(?:\.[0-9]+)?",  # numbers
    r"[Tt][0-9]+",  # T1, T2: the aliases Spider's gold SQL (and so the models) use
    r"[A-Za-z][0-9]?",  # p, s1: short aliases
    r"(?:[Aa][Ss])[ \t\n]+[A-Za-z_][A-Za-z0-9_]*",  # any name right after AS (an alias it defines)
)


class ConstraintError(SenseHubError):
    """Constrained decoding cannot run here (llguidance missing, a remote backend)."""


def schema_names(db_path: str | Path) -> list[str]:
    """The table and column names of an SQLite database, each once, in schema order."""
    from sense_hub.prompts import cached_schema

    names: list[str] = []
    for table in cached_schema(db_path, 0).tables:
        names.append(table.name)
        names += [c.name for c in table.columns]
    return list(dict.fromkeys(names))


def _words_of(names: Iterable[str]) -> list[str]:
    """The identifier words in `names`: a name with spaces or dashes (`Home Town`) allows each of its words."""
    words = set()
    for name in names:
        words.update(w for w in re.split(rf"[^{_WORD_CHARS}]+", name) if w)
    return sorted(words, key=lambda w: (-len(w), w.lower()))


def sql_regex(names: Iterable[str]) -> str:
    """A regular expression accepting SQL whose every word is a keyword, a function, one of `names` (any case),
    a number, a short alias or a name after `AS`; quoted strings and punctuation are free.

    A word must be followed by a non-word character (or end the text), so `pet_type` cannot be written as the
    allowed `pet` followed by `_type`. An optional Markdown code fence may surround the query.
    """
    words = sorted({*SQL_WORDS, *(w.lower() for w in _words_of(names))}, key=lambda w: (-len(w), w))
    word = "(?:" + "|".join([f"(?i:{'|'.join(re.escape(w) for w in words)})", *_FREE_WORDS]) + ")"
    backquoted = "`(?:" + "|".join(re.escape(n) for n in sorted(set(names), key=len, reverse=True)) + ")`"
    # ASCII punctuation and white space outside quotes (no other characters: SQL needs none there)
    unit = r"""(?:[\t\n\r !#$%&()*+,\-./:;<=>?@\[\\\]^{|}~]|'(?:[^']|'')*'|"[^"]*")"""
    token = f"(?:{word}|{backquoted})"
    body = f"{unit}*(?:{token}{unit}+)*{token}?"
    return rf"(?:```(?:sql|sqlite|SQL)?\n)?{body}(?:```[ \t\n]*)?"


def _llguidance():
    try:
        import llguidance  # noqa: F401
        import llguidance.hf  # noqa: F401
    except ImportError as e:  # pragma: no cover - llguidance is part of [train]
        raise ConstraintError(
            "constrained decoding needs llguidance: pip install llguidance (or pip install 'sense-hub[train]')"
        ) from e
    return llguidance


_TOKENIZERS: dict[tuple[int, int], object] = {}


def ll_tokenizer(tokenizer, vocab_size: int):
    """llguidance's view of a Hugging Face fast tokenizer (built once per tokenizer and vocabulary size: ~1 s)."""
    llg = _llguidance()
    key = (id(tokenizer), vocab_size)
    if key not in _TOKENIZERS:
        _TOKENIZERS[key] = llg.hf.from_tokenizer(tokenizer, n_vocab=vocab_size)
    return _TOKENIZERS[key]


@lru_cache(maxsize=256)
def compiled_grammar(names: tuple[str, ...]) -> str:
    """The llguidance grammar for `sql_regex(names)` (cached per schema)."""
    llg = _llguidance()
    return llg.LLMatcher.grammar_from_regex(sql_regex(names))


def grammar_for_database(db_path: str | Path) -> str:
    """The grammar that allows only this database's names (see `sql_regex`)."""
    return compiled_grammar(tuple(schema_names(db_path)))


class SchemaConstraint:
    """A transformers logits processor that masks, row by row, every token the row's grammar does not allow.

    Args:
        tokenizer: the model's (fast) tokenizer.
        grammars: one grammar per row of the batch `generate` runs (`grammar_for_database`), or None for a row
            left free.
        vocab_size: the width of the model's logits.

    A processor serves one `generate` call: the first call sees the prompts and only masks; each later call first
    feeds every row's last token to its matcher. A row whose grammar is complete may only end (end of sequence).
    """

    def __init__(self, tokenizer, grammars: Sequence[str | None], vocab_size: int) -> None:
        llg = _llguidance()
        self.vocab_size = vocab_size
        lltok = ll_tokenizer(tokenizer, vocab_size)
        self.matchers = [None if g is None else llg.LLMatcher(lltok, g) for g in grammars]
        for m in self.matchers:
            if m is not None and m.is_error():
                raise ConstraintError(f"the schema grammar does not compile: {m.get_error()}")
        self.started = False
        self.rejected = 0  # tokens a matcher refused (a bug if ever above 0: the mask allowed them)

    def __call__(self, input_ids, scores):
        import numpy as np
        import torch

        if len(self.matchers) != scores.shape[0]:
            raise ConstraintError(f"{len(self.matchers)} grammars for a batch of {scores.shape[0]} rows")
        if self.started:
            last = input_ids[:, -1].tolist()
            for matcher, token in zip(self.matchers, last, strict=True):
                if matcher is not None and not matcher.is_stopped():
                    if not matcher.consume_token(token):
                        self.rejected += 1
        self.started = True
        width = scores.shape[-1]
        allowed = np.ones((scores.shape[0], width), dtype=bool)
        for row, matcher in enumerate(self.matchers):
            if matcher is None or matcher.is_stopped() or matcher.is_error():
                continue
            bits = np.unpackbits(np.frombuffer(matcher.compute_bitmask(), dtype=np.uint8), bitorder="little")
            bits = bits[:width]
            allowed[row, : bits.shape[0]] = bits.astype(bool)
            allowed[row, bits.shape[0] :] = False
        mask = torch.from_numpy(~allowed).to(scores.device)
        return scores.masked_fill(mask, float("-inf"))


__all__ = [
    "ConstraintError",
    "SQL_WORDS",
    "SchemaConstraint",
    "compiled_grammar",
    "grammar_for_database",
    "ll_tokenizer",
    "schema_names",
    "sql_regex",
]
