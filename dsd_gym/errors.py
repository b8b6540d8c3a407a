"""Errors a user can act on.

A :class:`UserError` carries one line that names what is wrong and what is allowed; the CLI prints
it without a traceback and exits with status 2.
"""

from __future__ import annotations


class UserError(ValueError):
    """Bad input: a scenario, an override, a policy spec, a file. The message is one line."""

    exit_code = 2


def first_line(exc: BaseException, limit: int = 120) -> str:
    """The first non-empty line of a library's exception message, at most ``limit`` characters: the
    reason part of a one-line ``UserError`` about a file the library could not read."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    text = lines[0] if lines else type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."
