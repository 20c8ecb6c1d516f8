"""Compute and check the ``atlas.sum`` integrity file of a migration directory without the Atlas CLI.

It reproduces ``atlas migrate hash``: the directory's ``*.sql`` files (top level only)
in byte-wise order of their names; one SHA-256 runs over all of them, fed with each
file's name and then its bytes, and after each file the running digest, base64
encoded, is that file's hash (so a file's hash covers every file before it). A file
whose first line holds an ``atlas:sum ignore`` directive contributes its name only
and gets no line. The first line of the sum file is ``h1:`` and the base64 SHA-256
over the names and hashes of the listed files; then one ``<name> h1:<hash>`` line
per file.

Run it as a script::

    python scripts/harness/atlas_sum.py --check sql/migrations   # exit 1 when stale
    python scripts/harness/atlas_sum.py --write sql/migrations   # rewrite atlas.sum
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import re
import sys
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

__all__ = ["SUM_FILE", "check_sum_file", "compute_sum", "migration_files", "write_sum_file"]

SUM_FILE = "atlas.sum"
"""The name of the integrity file inside the migration directory."""

# Atlas looks for a directive on the first line only: printable ASCII, then
# ``atlas:<name>`` and optional space-separated arguments.
_DIRECTIVE = re.compile(r"([ -~]*)atlas:(\w+)(?: +(.+))*")


def migration_files(directory: Path) -> List[Path]:
    """Return the migration files that Atlas reads, in its order.

    Args:
        directory: The migration directory.

    Returns:
        The top-level ``*.sql`` files, sorted by the bytes of their names.
    """
    files = [p for p in Path(directory).iterdir() if p.name.endswith(".sql") and p.is_file()]
    return sorted(files, key=lambda p: p.name.encode("utf-8"))


def _ignored(content: bytes) -> bool:
    """Whether the file opts out of the sum with an ``atlas:sum ignore`` directive."""
    match = _DIRECTIVE.match(content.decode("utf-8", "surrogateescape"))
    return bool(match and match.group(2) == "sum" and match.group(3) == "ignore")


def _hashes(directory: Path) -> List[Tuple[str, str]]:
    running = hashlib.sha256()
    hashes = []
    for path in migration_files(directory):
        content = path.read_bytes()
        running.update(path.name.encode("utf-8"))
        if _ignored(content):
            continue
        running.update(content)
        hashes.append((path.name, base64.b64encode(running.copy().digest()).decode("ascii")))
    return hashes


def compute_sum(directory: Path) -> str:
    """Return the ``atlas.sum`` text for a migration directory, as ``atlas migrate hash`` writes it.

    Args:
        directory: The migration directory.

    Returns:
        The file's text, ending with a newline after the last file line.
    """
    hashes = _hashes(Path(directory))
    total = hashlib.sha256()
    for name, digest in hashes:
        total.update(name.encode("utf-8"))
        total.update(digest.encode("ascii"))
    lines = ["h1:%s\n" % base64.b64encode(total.digest()).decode("ascii")]
    lines += ["%s h1:%s\n" % (name, digest) for name, digest in hashes]
    return "".join(lines)


def write_sum_file(directory: Path) -> Path:
    """Write (or overwrite) ``atlas.sum`` in the migration directory.

    Args:
        directory: The migration directory.

    Returns:
        The path of the sum file.
    """
    path = Path(directory) / SUM_FILE
    path.write_bytes(compute_sum(directory).encode("utf-8"))
    return path


def check_sum_file(directory: Path) -> bool:
    """Whether the committed ``atlas.sum`` matches the migration files.

    Args:
        directory: The migration directory.

    Returns:
        False when the file is missing or differs from :func:`compute_sum`.
    """
    path = Path(directory) / SUM_FILE
    if not path.is_file():
        return False
    return path.read_bytes() == compute_sum(directory).encode("utf-8")


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    action = parser.add_mutually_exclusive_group()
    action.add_argument("--check", action="store_true", help="exit 1 when atlas.sum is stale (default)")
    action.add_argument("--write", action="store_true", help="rewrite atlas.sum")
    parser.add_argument("directory", nargs="?", default="sql/migrations", type=Path)
    args = parser.parse_args(argv)
    if args.write:
        print("wrote %s" % write_sum_file(args.directory))
        return 0
    if check_sum_file(args.directory):
        print("%s is up to date" % (args.directory / SUM_FILE))
        return 0
    print(
        "%s does not match the migrations: run 'atlas migrate hash --dir file://%s' "
        "(or this script with --write)" % (args.directory / SUM_FILE, args.directory),
        file=sys.stderr,
    )
    return 1


if __name__ == "__main__":
    sys.exit(main())
