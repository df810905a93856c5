"""Redis's glob syntax (``KEYS``/``SCAN MATCH``) as a Python regular expression, so a
pattern selects the same keys on both backends. ``fnmatch`` differs: it negates a class
with ``[!...]`` where Redis uses ``[^...]``, and has no ``\\`` escape."""

from __future__ import annotations

import re


def _char_class(pattern: str, start: int) -> tuple[str, int] | None:
    """The regex for the class opening at ``pattern[start - 1] == "["`` and the index
    after its ``]``; ``None`` when it is never closed (the ``[`` is then literal)."""
    i, n = start, len(pattern)
    negate = i < n and pattern[i] == "^"
    if negate:
        i += 1
    items: list[str] = []
    while i < n and pattern[i] != "]":
        if pattern[i] == "\\" and i + 1 < n:
            items.append(re.escape(pattern[i + 1]))
            i += 2
        elif i + 2 < n and pattern[i + 1] == "-" and pattern[i + 2] != "]":
            low, high = sorted((pattern[i], pattern[i + 2]))
            items.append(f"{re.escape(low)}-{re.escape(high)}")
            i += 3
        else:
            items.append(re.escape(pattern[i]))
            i += 1
    if i >= n:
        return None
    body = "".join(items)
    if not body:
        return ("." if negate else "(?!)"), i + 1
    return f"[{'^' if negate else ''}{body}]", i + 1


def glob_regex(pattern: str) -> re.Pattern[str]:
    """Compiled for ``fullmatch``: ``*`` any run, ``?`` one character, ``[a-z]`` /
    ``[^a-z]`` classes, ``\\x`` a literal ``x``."""
    out: list[str] = []
    i, n = 0, len(pattern)
    while i < n:
        char = pattern[i]
        i += 1
        if char == "*":
            out.append(".*")
        elif char == "?":
            out.append(".")
        elif char == "\\" and i < n:
            out.append(re.escape(pattern[i]))
            i += 1
        elif char == "[" and (found := _char_class(pattern, i)) is not None:
            regex, i = found
            out.append(regex)
        else:
            out.append(re.escape(char))
    return re.compile("".join(out), re.DOTALL)
