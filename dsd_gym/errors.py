"""Errors a user can act on.

A :class:`UserError` carries one line that names what is wrong and what is allowed; the CLI prints
it without a traceback and exits with status 2.
"""

from __future__ import annotations


class UserError(ValueError):
    """Bad input: a scenario, an override, a policy spec, a file. The message is one line."""

    exit_code = 2
