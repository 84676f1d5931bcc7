"""Typed YAML configs: one reader for every dataclass config that is not a TRL recipe (`quickstart`, `experiment`).

The recipes under `recipes/` read their YAML with TRL's `TrlParser`; the two pipelines that drive them
(`QuickstartConfig`, `ExperimentConfig`) hold nested settings that an argument parser cannot express (an
experiment's list of arms), so they read YAML here, with the same rules a typed parser applies and errors that name
the file, line and field:

    config = configs.load(QuickstartConfig, "quick.yaml", {"output_dir": "out"})   # the command line wins
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

from sense_hub.errors import MissingFileError, UsageError

T = TypeVar("T")


def _type_name(hint: Any) -> str:
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        optional = len(args) < len(typing.get_args(hint))
        text = " or ".join(_type_name(a) for a in args)
        return f"{text} or null" if optional else text
    if typing.get_origin(hint) is list:
        return "a list of " + {str: "strings", int: "integers", float: "numbers"}.get(args[0], "mappings")
    if typing.get_origin(hint) is dict or hint is dict:
        return "a mapping"
    return {int: "an integer", float: "a number", str: "a string", bool: "true or false"}.get(hint, str(hint))


def _coerce(hint: Any, value: Any) -> tuple[bool, Any]:
    """Whether `value` fits the type hint, and the value as that type (an int for a float field becomes a float)."""
    origin = typing.get_origin(hint)
    if hint is Any:
        return True, value
    if origin in (typing.Union, types.UnionType):
        for option in typing.get_args(hint):
            ok, coerced = _coerce(option, value)
            if ok:
                return True, coerced
        return False, value
    if hint is type(None):
        return value is None, value
    if origin is list:
        if not isinstance(value, list):
            return False, value
        (item,) = typing.get_args(hint)
        coerced = [_coerce(item, v) for v in value]
        return all(ok for ok, _ in coerced), [v for _, v in coerced]
    if origin is dict or hint is dict:
        return isinstance(value, dict), value
    if hint is bool:
        return isinstance(value, bool), value
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool), value
    if hint is float:
        if isinstance(value, str):  # YAML 1.1 reads `1e-4` (no dot) as a string; a typed parser takes it
            try:
                value = float(value)
            except ValueError:
                return False, value
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        return ok, float(value) if ok else value
    return isinstance(value, hint), value


def check_field_types(cls: type, values: dict[str, Any], *, where: dict[str, str] | None = None) -> dict[str, Any]:
    """Check values against the type hints of a dataclass's fields, the way a typed parser would.

    Booleans are not integers, an integer is a number (and becomes a float), a string is not a list of strings
    (`db_ids: concert_singer` must be `[concert_singer]`), and NaN or infinity is not a number.

    Args:
        cls: the dataclass.
        values: field name -> value (names that are not fields are left alone).
        where: field name -> where the value came from (`quick.yaml:7`), used in the error.

    Returns:
        The values, with integers given for float fields turned into floats.

    Raises:
        UsageError: a value of the wrong type, naming where it came from, the field, the expected type and the value.
    """
    hints = typing.get_type_hints(cls)
    out = dict(values)
    for f in dataclasses.fields(cls):
        if f.name not in values:
            continue
        ok, coerced = _coerce(hints[f.name], values[f.name])
        if not ok:
            place = f"{where[f.name]}: " if where and f.name in where else ""
            expected = _type_name(hints[f.name])
            if "list" in expected and isinstance(values[f.name], str):
                expected += f" (a YAML list: [{values[f.name]}])"
            raise UsageError(f"{place}`{f.name}` must be {expected}, got {values[f.name]!r}")
        out[f.name] = coerced
    return out


def check_keys(cls: type, values: dict, where: str) -> None:
    """Refuse keys that are not fields of the dataclass, naming them and the known ones."""
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(map(str, values)) - known)
    if unknown:
        raise UsageError(f"{where}: unknown key(s) {unknown}; known keys: {sorted(known)}")


def read_yaml(path: str | Path, cls: type) -> tuple[dict[str, Any], dict[str, Any]]:
    """The mapping a YAML file holds and `key -> "path:line"` (for errors that point at the line), or a clear error.

    Raises:
        MissingFileError: the file does not exist.
        UsageError: not UTF-8, not valid YAML (with the line and column), or not a mapping.
    """
    import yaml

    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"config file {path} does not exist")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise UsageError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start}); save it as UTF-8") from err
    try:
        loaded = yaml.safe_load(text) or {}
        node = yaml.compose(text)
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        place = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        problem = err.problem or err.context
        if err.context and err.context_mark and err.problem:
            problem = f"{err.context} at line {err.context_mark.line + 1}: {err.problem}"
        raise UsageError(f"{place}: not valid YAML ({problem}); fix the YAML syntax") from err
    except yaml.YAMLError as err:
        raise UsageError(f"{path}: not valid YAML ({' '.join(str(err).split())})") from err
    if not isinstance(loaded, dict):
        raise UsageError(f"{path}: expected a mapping of {cls.__name__} fields, got {type(loaded).__name__}")
    where: dict[str, Any] = {}
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if not isinstance(key.value, str):
                continue
            where[key.value] = f"{path}:{key.start_mark.line + 1}"
            if isinstance(value, yaml.SequenceNode):  # `arms[2]` -> its line, for errors inside list items
                for i, item in enumerate(value.value):
                    where[f"{key.value}[{i}]"] = f"{path}:{item.start_mark.line + 1}"
    return loaded, where


def load(
    cls: type[T], path: str | Path | None, overrides: dict[str, Any], *, places: dict[str, str] | None = None
) -> T:
    """Read a YAML config of `cls` fields (if any) and apply command-line overrides (None: not given).

    Every value is checked before any work starts; the dataclass's `__post_init__` checks ranges and raises
    `UsageError`, which gets the place the field came from. `places`, when given, is filled with `key -> "file:line"`
    (and `key[i] -> "file:line"` for list items), for checks made after loading.

    Raises:
        MissingFileError: the config file does not exist.
        UsageError: the YAML does not parse, is not a mapping, has unknown keys, or a value of the wrong type or
            out of range (naming the file, line and field).
    """
    values: dict[str, Any] = {}
    where: dict[str, Any] = {}
    if path is not None:
        loaded, where = read_yaml(path, cls)
        check_keys(cls, loaded, str(path))
        values.update(loaded)
    overrides = {k: v for k, v in overrides.items() if v is not None}
    values.update(overrides)
    for name in overrides:
        where[name] = f"--{name.replace('_', '-')}"
    values = check_field_types(cls, values, where=where)
    if places is not None:
        places.update(where)
    try:
        return cls(**values)
    except UsageError as err:
        field_name = next((n for n in where if f"`{n}`" in str(err)), None)
        if field_name is None or str(err).startswith(str(where[field_name])):
            raise
        raise UsageError(f"{where[field_name]}: {err}") from err
