"""Fenced blocks of the README and docs, and the `tbhns` commands in their shell blocks (the docs tests share it)."""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.helpers import ROOT

DOCS = (ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")))
SHELL_LANGUAGES = {"bash", "sh", "console", "shell"}
OPERATORS = {"&&", "||", "|", ";", "&"}
PREFIXES = {"time", "exec", "nohup"}


@dataclass(frozen=True)
class Block:
    """A fenced code block: its language, the marker comment right before it (if any) and its lines."""

    path: Path
    language: str
    marker: str | None
    lines: tuple[tuple[int, str], ...]  # (1-based line number in the file, text)


@dataclass(frozen=True)
class Command:
    """One `tbhns` command of a doc: where it is, the line as written, and its arguments after `tbhns`."""

    path: Path
    line: int
    text: str
    args: tuple[str, ...]

    def where(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}: {self.text}"


def fenced_blocks(path: Path) -> Iterator[Block]:
    """The fenced blocks of a Markdown file, each with the HTML comment on the line before its fence."""
    lines = path.read_text(encoding="utf-8").splitlines()
    number = 0
    while number < len(lines):
        text = lines[number].strip()
        if text.startswith("```"):
            language = text[3:].strip().split(" ")[0].lower()
            previous = next((lines[i].strip() for i in range(number - 1, -1, -1) if lines[i].strip()), "")
            marker = previous if previous.startswith("<!--") else None
            body = []
            number += 1
            while number < len(lines) and not lines[number].strip().startswith("```"):
                body.append((number + 1, lines[number]))
                number += 1
            yield Block(path, language, marker, tuple(body))
        number += 1


def shell_lines(block: Block) -> Iterator[tuple[int, str]]:
    """The block's command lines: `\\` continuations joined (numbered by their first line), `$ ` stripped."""
    pending: list[str] = []
    start = 0
    for number, text in block.lines:
        if not pending:
            start = number
            text = text.strip().removeprefix("$ ")
        if text.rstrip().endswith("\\"):
            pending.append(text.rstrip()[:-1].strip())
            continue
        pending.append(text.strip())
        yield start, " ".join(part for part in pending if part)
        pending = []
    if pending:
        yield start, " ".join(pending)


def tbhns_invocations(text: str) -> list[list[str]]:
    """The argument lists of the `tbhns` commands on one shell line (none when it runs no `tbhns`)."""
    lexer = shlex.shlex(text, posix=True, punctuation_chars=";&|")
    lexer.whitespace_split = True
    lexer.commenters = "#"
    try:
        tokens = list(lexer)
    except ValueError as exc:  # unbalanced quotes: a doc error only where the line runs tbhns
        if re.search(r"(^|[\s;&|])tbhns\s", text):
            raise AssertionError(f"cannot split {text!r} as a shell line: {exc}") from None
        return []
    segments: list[list[str]] = [[]]
    for token in tokens:
        if token in OPERATORS:
            segments.append([])
        else:
            segments[-1].append(token)
    invocations = []
    for segment in segments:
        while segment and (re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=.*", segment[0]) or segment[0] in PREFIXES):
            segment = segment[1:]
        if segment[:2] == ["taskset", "-c"]:
            segment = segment[3:]
        if segment and Path(segment[0]).name == "tbhns":
            invocations.append(segment[1:])
    return invocations


def block_commands(block: Block) -> list[Command]:
    """The `tbhns` commands of one fenced block, in order (none unless it is a shell block)."""
    if block.language not in SHELL_LANGUAGES:
        return []
    return [
        Command(block.path, number, text, tuple(args))
        for number, text in shell_lines(block)
        for args in tbhns_invocations(text)
    ]


def doc_commands(paths: tuple[Path, ...] = DOCS) -> list[Command]:
    """Every `tbhns` command of every fenced shell block of `paths`, in order."""
    return [command for path in paths for block in fenced_blocks(path) for command in block_commands(block)]
