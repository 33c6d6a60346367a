"""Custom options that nothing defines: Confluent accepts them, protoc does not.

Confluent parses .proto text with Wire's parser, which does not resolve option names, and builds its
descriptors only from the options it knows; `option (my_option) = "x";` with no `extend` defining
`my_option` registers fine there. protoc refuses it ("Option "(my_option)" unknown"). To follow
Confluent, the registry compiles a copy of the text with those options cut out (their positions come
from protoc's errors) and stores the text as submitted; the options are ignored, as Confluent does.
"""

from __future__ import annotations

import re

UNKNOWN_OPTION = re.compile(r'^[\w./-]+\.proto:(\d+):(\d+): Option "\(([^"]*)\)" unknown\.')
_IDENT_CHARS = re.compile(r"[\w.()]")


def unknown_option_positions(errors: str) -> list[tuple[int, int]] | None:
    """(line, column) of each unknown custom option, or None when any error is about something else."""
    positions = []
    for line in errors.splitlines():
        match = UNKNOWN_OPTION.match(line)
        if match is None:
            return None
        positions.append((int(match.group(1)), int(match.group(2))))
    return positions or None


def strip_options(text: str, positions: list[tuple[int, int]]) -> str | None:
    """`text` without the options whose names start at `positions` (protoc's 1-based line and column,
    tabs to the next multiple of 8); None if one of them is not where an option can be cut out."""
    cuts = []
    for line, column in positions:
        start = _offset(text, line, column)
        if start is None or text[start : start + 1] != "(":
            return None
        cut = _option_span(text, start)
        if cut is None:
            return None
        cuts.append(cut)
    for begin, end in sorted(set(cuts), reverse=True):
        text = text[:begin] + " " * (end - begin) + text[end:]  # blanks keep later positions valid
    return _drop_empty_brackets(text)


def _offset(text: str, line: int, column: int) -> int | None:
    lines = text.split("\n")
    if not 1 <= line <= len(lines):
        return None
    base = sum(len(x) + 1 for x in lines[: line - 1])
    col = 0
    for i, char in enumerate(lines[line - 1]):
        if col + 1 == column:
            return base + i
        col = (col // 8 + 1) * 8 if char == "\t" else col + 1
    return None


def _option_span(text: str, start: int) -> tuple[int, int] | None:
    """The span to cut for the option whose name starts at `start`: the whole `option ... ;` statement,
    or the `name = value` entry of a `[...]` list with one neighbouring comma."""
    before = text[:start].rstrip()
    value_end = _value_end(text, start)
    if value_end is None:
        return None
    if before.endswith("option") and not _IDENT_CHARS.match(before[-7:-6] or " "):
        end = _skip_space(text, value_end)
        if text[end : end + 1] != ";":
            return None
        return len(before) - len("option"), end + 1
    if before.endswith(("[", ",")):
        after = _skip_space(text, value_end)
        if text[after : after + 1] == ",":
            return start, after + 1
        if before.endswith(","):
            return len(before) - 1, value_end
        return start, value_end
    return None


def _value_end(text: str, start: int) -> int | None:
    """The end of `(name).sub = value` starting at `start`."""
    i = start
    while i < len(text) and _IDENT_CHARS.match(text[i]):
        i += 1
    i = _skip_space(text, i)
    if text[i : i + 1] != "=":
        return None
    i = _skip_space(text, i + 1)
    depth = 0
    while i < len(text):
        char = text[i]
        if char in "\"'":
            close = _string_end(text, i)
            if close is None:
                return None
            i = close
            continue
        if char in "{[":
            depth += 1
        elif char in "}]":
            if depth == 0:
                return i
            depth -= 1
            if depth == 0 and char == "}":
                return i + 1
        elif depth == 0 and char in ",;":
            return i
        i += 1
    return None


def _string_end(text: str, i: int) -> int | None:
    quote = text[i]
    i += 1
    while i < len(text):
        if text[i] == "\\":
            i += 2
            continue
        if text[i] == quote:
            return i + 1
        i += 1
    return None


def _skip_space(text: str, i: int) -> int:
    while i < len(text) and text[i].isspace():
        i += 1
    return i


def _drop_empty_brackets(text: str) -> str:
    return re.sub(r"\[\s*\]", "", text)
