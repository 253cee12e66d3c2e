"""Click options whose default and help live where the package keeps them: on a config dataclass's field.

`field_option("--m", "hnsw_m", source="tbhns_opensearch.index.templates:IndexConfig.m")` takes its default from
the field and its help from the field's `metadata["help"]`, as sentence-transformers' training arguments do,
so `--help`, the docs and the code read one value. A source may also name a function's keyword
(`"pkg.mod:function.keyword"`) or a module constant (`"pkg.mod:NAME"`); those carry no help, so the option
passes its own.

The source is a dotted name, read when click first needs it (parsing the command line, or `--help`): listing
the commands imports none of the modules behind them (some import numpy, opensearch-py or FastAPI).

Example:
    >>> @click.command()
    ... @field_option("--m", "hnsw_m", source="tbhns_opensearch.index.templates:IndexConfig.m")
    ... def demo(hnsw_m: int) -> None:
    ...     click.echo(hnsw_m + 1)
    >>> from click.testing import CliRunner
    >>> CliRunner().invoke(demo, []).output
    '17\\n'
    >>> "HNSW graph degree  [default: 16]" in CliRunner().invoke(demo, ["--help"]).output
    True
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
from collections.abc import Callable, Sequence
from typing import Any

import click


def source_default(source: str) -> tuple[Any, str]:
    """(default, help) of `source`: "module:Class.field" of a dataclass (help from the field's metadata),
    "module:function.keyword" (no help) or "module:NAME" (a constant, no help).

    Example:
        >>> source_default("tbhns_opensearch.config:DEFAULT_ENCODER")
        ('all-MiniLM-L6-v2', '')
    """
    module_name, _, path = source.partition(":")
    owner_path, _, name = path.rpartition(".")
    owner: Any = importlib.import_module(module_name)
    for part in filter(None, owner_path.split(".")):
        owner = getattr(owner, part)
    if dataclasses.is_dataclass(owner):
        fields = {f.name: f for f in dataclasses.fields(owner)}
        if name not in fields:
            raise LookupError(f"{source}: {owner.__name__} has no field {name!r}; its fields are {sorted(fields)}")
        found = fields[name]
        default = found.default_factory() if found.default is dataclasses.MISSING else found.default
        if default is dataclasses.MISSING:
            raise LookupError(f"{source}: the field has no default for an option to take")
        return default, found.metadata.get("help", "")
    if callable(owner):
        parameter = inspect.signature(owner).parameters.get(name)
        if parameter is None or parameter.default is inspect.Parameter.empty:
            raise LookupError(f"{source}: {owner.__qualname__} has no keyword {name!r} with a default")
        return parameter.default, ""
    return getattr(owner, name), ""


class FieldOption(click.Option):
    """A click option whose default and help come from `source` (see `source_default`).

    Args:
        source: Where the default (and help) live, e.g. "tbhns_opensearch.cluster:NodeConfig.heap".
        pick: The option's default from the source's (e.g. the BM25 weight of a weight pair); None: the same.
        shown: What `--help` shows as the default, from the source's, where the option's default is not it.
        note: Appended to the help; help given to the option replaces the field's.
        attrs: `click.Option`'s; without `type`, the type is the default's (int, float, bool or text).
    """

    def __init__(
        self,
        param_decls: Sequence[str],
        *,
        source: str,
        pick: Callable[[Any], Any] | None = None,
        shown: Callable[[Any], str] | None = None,
        note: str = "",
        **attrs: Any,
    ) -> None:
        if "default" in attrs:
            raise TypeError(f"{source}: a field option takes its default from the field, not default=")
        attrs.setdefault("show_default", True)
        self.source, self.pick, self.shown, self.note = source, pick, shown, note
        self.shown_default: str | None = None
        self._typed = attrs.get("type") is not None
        self._resolved = False
        super().__init__(param_decls, **attrs)

    def resolve(self) -> None:
        """Read the source once: set the default, the help and (unless given) the type."""
        if self._resolved:
            return
        default, help_text = source_default(self.source)
        self.default = self.pick(default) if self.pick else default
        self.shown_default = self.shown(default) if self.shown else None
        self.help = (self.help or help_text) + self.note
        if not self._typed and not self.is_flag and self.default is not None:
            self.type = click.types.convert_type(None, self.default)
        self._resolved = True

    def handle_parse_result(self, ctx: click.Context, opts: Any, args: list[str]) -> Any:
        self.resolve()
        return super().handle_parse_result(ctx, opts, args)

    def get_default(self, ctx: click.Context, call: bool = True) -> Any:
        self.resolve()
        return super().get_default(ctx, call=call)

    def get_help_record(self, ctx: click.Context) -> tuple[str, str] | None:
        self.resolve()
        return super().get_help_record(ctx)

    def get_help_extra(self, ctx: click.Context) -> Any:
        extra = super().get_help_extra(ctx)
        if self.shown_default is not None:
            extra["default"] = self.shown_default
        return extra


def field_option(*param_decls: str, source: str, **attrs: Any) -> Callable[[Any], Any]:
    """`click.option(*param_decls, **attrs)` with default and help from `source` (`FieldOption`)."""
    return click.option(*param_decls, cls=FieldOption, source=source, **attrs)


def field_options(command: click.Command) -> list[FieldOption]:
    """The field options of `command` and, for a group, of every command below it."""
    found = [param for param in command.params if isinstance(param, FieldOption)]
    for sub in getattr(command, "commands", {}).values():
        found.extend(field_options(sub))
    return found
