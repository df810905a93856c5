"""Substring search that means what the user typed: LIKE wildcards are matched literally."""

LIKE_ESCAPE = "\\"


def substring_pattern(text: str) -> str:
    """``50%_off`` → ``%50\\%\\_off%`` (use with ``escape=LIKE_ESCAPE``)."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"
