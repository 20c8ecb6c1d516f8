"""Throw-away PostgreSQL clusters for integration tests.

A cluster lives in its own temporary directory (data, Unix socket and log), listens
on 127.0.0.1 only, runs with ``wal_level=logical`` so that change-data-capture tools
can open a replication slot, and has a role ``camunda`` (password ``camunda``) owning
a database ``camunda``. Durability is switched off (``fsync=off``): the data is
deleted on :meth:`PostgresCluster.stop` anyway.

Binaries are always called by their full ``/usr/lib/postgresql/<version>/bin`` path
because an unrelated ``pg_ctl`` may come first on ``PATH``.
"""

from __future__ import annotations

import glob
import logging
import os
import pwd
import re
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path
from types import TracebackType

from harness._proc import free_port, tail
from harness.errors import HarnessError

__all__ = ["PostgresCluster", "find_postgres_bin", "start_postgres"]

_LOGGER = logging.getLogger(__name__)

_PG_ROOT = "/usr/lib/postgresql"
_OS_USER = "postgres"  # initdb and postgres refuse to run as root
_START_ATTEMPTS = 3  # a port picked by free_port() can be taken before the server binds it
_COMMAND_TIMEOUT = 120.0  # seconds, for initdb, pg_ctl and psql calls

# Appended to postgresql.conf. Logical decoding for CDC consumers; no durability
# because the cluster is deleted after the tests. synchronous_commit stays on, as in
# production: off, a commit reached the WAL (and so Sequin) only with the WAL
# writer's next round, up to 200 ms later.
_SETTINGS = {
    "listen_addresses": "'127.0.0.1'",
    "max_connections": "200",
    "wal_level": "logical",
    "max_replication_slots": "10",
    "max_wal_senders": "10",
    "fsync": "off",
    "full_page_writes": "off",
    "timezone": "'UTC'",
}


def find_postgres_bin(*, install: bool = True) -> Path:
    """Return the ``bin`` directory of the newest Debian PostgreSQL installation.

    Args:
        install: When no installation is found, install the Debian ``postgresql``
            package with apt-get (needs root).

    Returns:
        A path such as ``/usr/lib/postgresql/15/bin``.

    Raises:
        HarnessError: PostgreSQL is missing and cannot be installed.
    """
    found = _installed_bins()
    if found:
        return found[-1]
    if not install:
        raise HarnessError("PostgreSQL is not installed (no %s/*/bin/initdb)" % _PG_ROOT)
    _apt_install_postgres()
    found = _installed_bins()
    if not found:
        raise HarnessError("apt-get installed postgresql but no %s/*/bin/initdb exists" % _PG_ROOT)
    return found[-1]


def _installed_bins() -> list[Path]:
    """Return the bin directories holding initdb, oldest version first."""
    bins = [Path(p).parent for p in glob.glob(os.path.join(_PG_ROOT, "*", "bin", "initdb"))]

    def version(path: Path) -> tuple[int, ...]:
        return tuple(int(n) for n in re.findall(r"\d+", path.parent.name)) or (0,)

    return sorted(bins, key=version)


def _apt_install_postgres() -> None:
    """Install the Debian postgresql package.

    Raises:
        HarnessError: Not root, apt-get missing, or the installation failed.
    """
    if os.geteuid() != 0:
        raise HarnessError(
            "PostgreSQL is not installed and installing it needs root: "
            "run 'apt-get update && apt-get install -y postgresql'"
        )
    if shutil.which("apt-get") is None:
        raise HarnessError("PostgreSQL is not installed and apt-get is not available")
    _LOGGER.info("PostgreSQL not found; installing it with apt-get, this takes a minute")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for args in (["apt-get", "update"], ["apt-get", "install", "-y", "postgresql"]):
        result = subprocess.run(
            args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=False
        )
        if result.returncode != 0:
            raise HarnessError(
                "%s failed with exit code %d:\n%s" % (" ".join(args), result.returncode, tail(result.stdout))
            )


class PostgresCluster:
    """One throw-away PostgreSQL cluster in a temporary directory.

    Create it with :func:`start_postgres` or call :meth:`start` yourself. Use it as a
    context manager or call :meth:`stop`, which also deletes its directory.

    Connection settings (``host``, ``port``, ``dbname``, ``user``, ``password``) are
    those of the application role; the superuser ``postgres`` connects without a
    password (trust authentication, loopback and socket only).

    Not thread-safe: start and stop it from one thread.

    Attributes:
        host: Always ``127.0.0.1``.
        port: TCP port, known after :meth:`start` when none was given.
        dbname: The application database, ``camunda``.
        user: The application role, ``camunda``; it owns ``dbname`` and may replicate.
        password: The role's password, ``camunda``.
        bin_dir: The PostgreSQL ``bin`` directory in use.
        base_dir: The temporary directory (data, socket and log), set by :meth:`start`.
    """

    host = "127.0.0.1"
    dbname = "camunda"
    user = "camunda"
    password = "camunda"

    def __init__(self, *, port: int | None = None, bin_dir: Path | None = None) -> None:
        """Prepare a cluster; nothing runs until :meth:`start`.

        Args:
            port: TCP port to listen on; a free one is picked when None.
            bin_dir: PostgreSQL ``bin`` directory; found (or installed) when None.
        """
        self._requested_port = port
        self.port: int = port or 0
        self.bin_dir: Path | None = bin_dir
        self.base_dir: Path | None = None
        self._running = False

    def __repr__(self) -> str:
        return "PostgresCluster(port=%d, base_dir=%r, running=%r)" % (
            self.port,
            str(self.base_dir) if self.base_dir else None,
            self._running,
        )

    @property
    def data_dir(self) -> Path:
        """The cluster's data directory."""
        return self._base() / "data"

    @property
    def socket_dir(self) -> Path:
        """The directory holding the Unix-domain socket."""
        return self._base()

    @property
    def log_path(self) -> Path:
        """The server log file."""
        return self._base() / "postgres.log"

    @property
    def jdbc_url(self) -> str:
        """JDBC URL of the application database, e.g. ``jdbc:postgresql://127.0.0.1:5432/camunda``."""
        return "jdbc:postgresql://%s:%d/%s" % (self.host, self.port, self.dbname)

    @property
    def dsn(self) -> str:
        """libpq connection string of the application database (role ``camunda``)."""
        return "host=%s port=%d dbname=%s user=%s password=%s" % (
            self.host,
            self.port,
            self.dbname,
            self.user,
            self.password,
        )

    @property
    def running(self) -> bool:
        """Whether :meth:`start` succeeded and :meth:`stop` was not called yet."""
        return self._running

    @property
    def pid(self) -> int | None:
        """The postmaster's process id while the cluster runs, else None."""
        if not self._running:
            return None
        try:
            return int((self.data_dir / "postmaster.pid").read_text(encoding="ascii").splitlines()[0])
        except (OSError, ValueError, IndexError):
            return None

    def start(self) -> PostgresCluster:
        """Create the cluster, start the server, and create the role and database.

        Returns:
            This cluster, for chaining.

        Raises:
            HarnessError: PostgreSQL is missing, or a step failed (the message holds
                the command output or the server log tail).
        """
        if self._running:
            raise HarnessError("PostgreSQL cluster already started")
        if self.bin_dir is None:
            self.bin_dir = find_postgres_bin()
        self.base_dir = Path(tempfile.mkdtemp(prefix="camunda-ext-pg-"))
        try:
            self._init_cluster()
            self._start_server()
            self._running = True
            self.psql(
                "CREATE ROLE %s LOGIN REPLICATION PASSWORD '%s'" % (self.user, self.password), db="postgres"
            )
            self.psql("CREATE DATABASE %s OWNER %s" % (self.dbname, self.user), db="postgres")
        except BaseException:
            self.stop()
            raise
        _LOGGER.info(
            "PostgreSQL %s listening on %s:%d (data in %s)",
            self.bin_dir.parent.name,
            self.host,
            self.port,
            self.base_dir,
        )
        return self

    def stop(self) -> None:
        """Stop the server (fast shutdown) and delete the cluster directory.

        Safe to call more than once and after a failed :meth:`start`.
        """
        base_dir, self.base_dir = self.base_dir, None
        if base_dir is None:
            return
        if (base_dir / "data" / "postmaster.pid").exists():
            result = self._run_pg(
                [self._bin("pg_ctl"), "-D", str(base_dir / "data"), "-m", "fast", "-w", "-t", "60", "stop"],
                check=False,
            )
            if result.returncode != 0:
                _LOGGER.warning("pg_ctl stop failed (%s); killing the postmaster", result.stdout.strip())
                _kill_postmaster(base_dir / "data" / "postmaster.pid")
        self._running = False
        shutil.rmtree(base_dir, ignore_errors=True)
        _LOGGER.info("PostgreSQL on port %d stopped and removed", self.port)

    def psql(self, sql: str, *, user: str = "postgres", db: str | None = None) -> str:
        """Run SQL with psql over the cluster's Unix socket.

        Args:
            sql: One or more statements; psql stops at the first error.
            user: Role to connect as.
            db: Database; the application database when None.

        Returns:
            psql's standard output in unaligned, tuples-only form (``|`` between
            columns, one row per line).

        Raises:
            HarnessError: psql failed; the message holds its error output.
        """
        args = [
            self._bin("psql"),
            "-X",
            "-q",
            "-A",
            "-t",
            "-v",
            "ON_ERROR_STOP=1",
            "-h",
            str(self.socket_dir),
            "-p",
            str(self.port),
            "-U",
            user,
            "-d",
            db or self.dbname,
            "-c",
            sql,
        ]
        result = subprocess.run(
            args, capture_output=True, text=True, timeout=_COMMAND_TIMEOUT, check=False, env=_pg_env()
        )
        if result.returncode != 0:
            raise HarnessError("psql failed (exit code %d): %s" % (result.returncode, result.stderr.strip()))
        return result.stdout

    def __enter__(self) -> PostgresCluster:
        if not self._running:
            self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # -- internals ---------------------------------------------------------------

    def _base(self) -> Path:
        if self.base_dir is None:
            raise HarnessError("PostgreSQL cluster is not started")
        return self.base_dir

    def _bin(self, name: str) -> str:
        assert self.bin_dir is not None
        return str(self.bin_dir / name)

    def _init_cluster(self) -> None:
        base_dir = self._base()
        if os.geteuid() == 0:
            entry = pwd.getpwnam(_OS_USER)
            os.chown(base_dir, entry.pw_uid, entry.pw_gid)
        self._run_pg(
            [
                self._bin("initdb"),
                "-D",
                str(self.data_dir),
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ]
        )
        with open(self.data_dir / "postgresql.conf", "a", encoding="utf-8") as conf:
            conf.write("\n# test harness settings\n")
            conf.write("unix_socket_directories = '%s'\n" % self.socket_dir)
            for name, value in _SETTINGS.items():
                conf.write("%s = %s\n" % (name, value))

    def _start_server(self) -> None:
        for attempt in range(1, _START_ATTEMPTS + 1):
            self.port = self._requested_port or free_port()
            result = self._run_pg(
                [
                    self._bin("pg_ctl"),
                    "-D",
                    str(self.data_dir),
                    "-l",
                    str(self.log_path),
                    "-w",
                    "-t",
                    "60",
                    "-o",
                    "-p %d" % self.port,
                    "start",
                ],
                check=False,
            )
            if result.returncode == 0:
                return
            log_tail = tail(self.log_path)
            port_taken = "could not bind" in log_tail or "already in use" in log_tail
            if self._requested_port is None and port_taken and attempt < _START_ATTEMPTS:
                _LOGGER.info("port %d was taken; retrying on another port", self.port)
                continue
            raise HarnessError(
                "PostgreSQL did not start (pg_ctl exit code %d):\n%s\n%s"
                % (result.returncode, result.stdout.strip(), log_tail)
            )

    def _run_pg(self, args: list[str], *, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run a server-side PostgreSQL program, as the postgres OS user when we are root."""
        program = Path(args[0]).name
        if os.geteuid() == 0:
            args = ["runuser", "-u", _OS_USER, "--", *args]
        # cwd "/": the postgres OS user may not be allowed into the caller's directory.
        result = subprocess.run(
            args,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=_COMMAND_TIMEOUT,
            check=False,
            cwd="/",
            env=_pg_env(),
        )
        if check and result.returncode != 0:
            raise HarnessError(
                "%s failed (exit code %d):\n%s" % (program, result.returncode, tail(result.stdout))
            )
        return result


def _pg_env() -> dict[str, str]:
    """The environment for PostgreSQL programs, without inherited libpq settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env.setdefault("LC_ALL", "C")
    return env


def _kill_postmaster(pid_file: Path) -> None:
    """Kill the postmaster named in ``postmaster.pid``; best effort."""
    try:
        pid = int(pid_file.read_text(encoding="ascii").splitlines()[0])
        os.kill(pid, signal.SIGKILL)
    except (OSError, ValueError, IndexError) as exc:
        _LOGGER.warning("could not kill the postmaster from %s: %s", pid_file, exc)


def start_postgres(*, port: int | None = None) -> PostgresCluster:
    """Create and start a throw-away PostgreSQL cluster.

    Args:
        port: TCP port on 127.0.0.1; a free one is picked when None.

    Returns:
        The running cluster; stop it with :meth:`PostgresCluster.stop` or use it as a
        context manager.

    Raises:
        HarnessError: PostgreSQL is missing and cannot be installed, or it did not start.
    """
    return PostgresCluster(port=port).start()
