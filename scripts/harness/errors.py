"""Errors raised by the test harness."""

from __future__ import annotations

__all__ = ["HarnessError"]


class HarnessError(Exception):
    """A harness step failed: a tool is missing, a build failed, or a server did not start.

    The message says what failed and, where there is one, ends with the tail of the
    relevant log or command output.
    """
