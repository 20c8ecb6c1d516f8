"""Small process and network helpers shared by the harness modules."""

from __future__ import annotations

import socket
from pathlib import Path

__all__ = ["free_port", "tail"]


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that is free right now.

    The port is released before returning, so another process may still take it
    before the caller binds it; callers that start servers retry on a bind failure.

    Returns:
        The port number.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def tail(text_or_path: str | Path, lines: int = 40) -> str:
    """Return the last lines of a text or of a file.

    Args:
        text_or_path: The text itself, or a ``Path`` to a file (read leniently as UTF-8).
        lines: How many lines to keep.

    Returns:
        The last ``lines`` lines joined with newlines; an empty string when a file
        does not exist.
    """
    if isinstance(text_or_path, Path):
        try:
            text = text_or_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
    else:
        text = str(text_or_path)
    return "\n".join(text.splitlines()[-lines:])
