"""Apply the ``sql/migrations`` files to a throw-away cluster, as ``atlas migrate apply`` would.

The files run in Atlas's order (by name), each with psql as the ``postgres`` superuser
on the engine database. A file runs in one transaction unless its header holds the
``-- atlas:txmode none`` directive (the slot creation). Then the ``camunda_cdc``
password is set by ``sql/cdc_password.psql`` from an environment variable that only
the psql child sees (psql's ``\\getenv``): it never appears on a command line (``ps``)
nor in a log.

The engine must have started on the cluster first: it creates ``act_ru_ext_task``.
"""

from __future__ import annotations

import logging
import os
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, List

from harness._proc import tail
from harness.errors import HarnessError

if TYPE_CHECKING:
    from harness.postgres import PostgresCluster

__all__ = [
    "CDC_ROLE",
    "MIGRATIONS_DIR",
    "PUBLICATION",
    "SET_PASSWORD_SCRIPT",
    "SLOT",
    "apply_migrations",
    "migration_files",
    "transactional",
]

_LOGGER = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[2]
MIGRATIONS_DIR = REPO_ROOT / "sql" / "migrations"
"""The versioned migrations (Atlas layout)."""

CDC_ROLE = "camunda_cdc"
"""The replication role the migrations create."""
PUBLICATION = "camunda_ext_tasks_pub"
"""The publication of ``public.act_ru_ext_task``."""
SLOT = "camunda_ext_tasks_slot"
"""The logical replication slot (plugin ``pgoutput``)."""

SET_PASSWORD_SCRIPT = REPO_ROOT / "sql" / "cdc_password.psql"
"""The psql script that sets the role's password from ``CAMUNDA_CDC_PASSWORD`` (docker/ runs it too)."""

_PASSWORD_ENV = "CAMUNDA_CDC_PASSWORD"  # read by the script's \getenv; set for the psql child only
_COMMAND_TIMEOUT = 120.0  # seconds per psql call


def migration_files(directory: Path = MIGRATIONS_DIR) -> List[Path]:
    """Return the migration files in the order Atlas applies them (by name)."""
    return sorted(
        (p for p in Path(directory).iterdir() if p.name.endswith(".sql") and p.is_file()),
        key=lambda p: p.name.encode("utf-8"),
    )


def transactional(path: Path) -> bool:
    """Whether Atlas runs the file in a transaction (no ``atlas:txmode none`` file directive).

    File directives are the comment lines at the top of the file, separated from the
    statements by a blank line.
    """
    header = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            break
        if not line.startswith(("--", "#")):
            return True  # no blank line after the comments: they belong to a statement
        header.append(line.strip())
    return "-- atlas:txmode none" not in header


def apply_migrations(
    cluster: PostgresCluster, *, cdc_password: str, directory: Path = MIGRATIONS_DIR
) -> None:
    """Apply every migration to the cluster's application database, then set the role's password.

    Safe to call again on the same cluster: the migrations are idempotent.

    Args:
        cluster: A started cluster on which the engine has created its tables.
        cdc_password: The password of ``camunda_cdc``; it is never logged.
        directory: The migration directory.

    Raises:
        HarnessError: A file failed (the message holds psql's error output), or the
            password is empty.
    """
    if not cdc_password:
        raise HarnessError("the camunda_cdc password must not be empty")
    for path in migration_files(directory):
        options = ["-1"] if transactional(path) else []
        _psql(cluster, [*options, "-f", str(path)])
        _LOGGER.info("applied migration %s", path.name)
    _psql(cluster, ["-f", str(SET_PASSWORD_SCRIPT)], extra_env={_PASSWORD_ENV: cdc_password})
    _LOGGER.info("set the password of role %s", CDC_ROLE)


def _psql(
    cluster: PostgresCluster,
    arguments: List[str],
    *,
    extra_env: dict[str, str] | None = None,
) -> None:
    if cluster.bin_dir is None:
        raise HarnessError("PostgreSQL cluster is not started")
    args = [
        str(cluster.bin_dir / "psql"),
        "-X",
        "-q",
        "-v",
        "ON_ERROR_STOP=1",
        "-h",
        str(cluster.socket_dir),
        "-p",
        str(cluster.port),
        "-U",
        "postgres",
        "-d",
        cluster.dbname,
        *arguments,
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env.setdefault("LC_ALL", "C")
    env.update(extra_env or {})
    result = subprocess.run(
        args,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=_COMMAND_TIMEOUT,
        check=False,
        env=env,
    )
    if result.returncode != 0:
        message = tail(result.stderr.strip())
        for secret in (extra_env or {}).values():
            message = message.replace(secret, "***")  # psql may quote the failing statement
        raise HarnessError("psql failed (exit code %d): %s" % (result.returncode, message))
