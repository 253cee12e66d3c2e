"""A config file's tables read into frozen dataclasses: unknown keys named with the valid ones, values checked early.

Shared by the training config (`training.config`) and the experimental options' table
(`training.experimental.config`), so either can read and check a table without importing the other.

Example:
    >>> from dataclasses import dataclass
    >>> @dataclass(frozen=True)
    ... class Demo:
    ...     steps: int = 1
    >>> build_table(Demo, {"steps": 3}, "[demo]")
    Demo(steps=3)
    >>> build_table(Demo, {"stpes": 3}, "[demo]")
    Traceback (most recent call last):
    ...
    tbhns_opensearch.errors.ConfigError: [demo]: unknown key(s) ['stpes']; valid keys: steps
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from tbhns_opensearch.errors import ConfigError


def build_table(cls: type, values: Any, where: str) -> Any:
    """`cls(**values)`, where `values` is one table of a config file (`where` names it in errors)."""
    if not isinstance(values, dict):
        raise ConfigError(f'{where}: missing or not a table; e.g. [data] with dataset = "icecat"')
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; valid keys: {', '.join(sorted(known))}")
    try:
        return cls(**values)
    except TypeError as exc:
        raise ConfigError(f"{where}: {exc}") from exc


def check_non_negative(where: str, config: object, names: tuple[str, ...]) -> None:
    """Raise `ConfigError` naming every field of `names` below 0 (`where`: the table, "" for the top level)."""
    bad = {name: getattr(config, name) for name in names if getattr(config, name) < 0}
    if bad:
        raise ConfigError(f"{where} {bad} must be >= 0".strip())
