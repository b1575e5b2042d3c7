"""Shortening user-supplied text (file contents, names, paths) quoted in error messages."""

from __future__ import annotations

__all__ = ["cut", "elide_middle", "first_line", "reason"]


def cut(text: str, limit: int = 80) -> str:
    """``text``, cut to its first ``limit`` characters (``...`` marks a cut)."""
    return text if len(text) <= limit else text[:limit] + "..."


def elide_middle(text: str, limit: int = 200) -> str:
    """``text``, its middle elided when longer than ``limit`` characters (for paths, whose
    end names the file); the full length is given."""
    if len(text) <= limit:
        return text
    keep = max(1, (limit - 3) // 2)
    return f"{text[:keep]}...{text[-keep:]} ({len(text)} characters)"


def first_line(text: str, limit: int = 200) -> str:
    """The first non-blank line of ``text``, stripped, at most ``limit`` characters (``""``
    if there is none): a multi-line library message as one line."""
    return next((line.strip() for line in text.splitlines() if line.strip()), "")[:limit]


def reason(exc: BaseException) -> str:
    """The first line of an exception's message (or its type's name), for one-line
    errors."""
    return first_line(str(exc)) or type(exc).__name__
