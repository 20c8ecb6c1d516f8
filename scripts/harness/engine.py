"""Build and run the Camunda 7 test engine (``tests/engine``, a Spring Boot jar).

:func:`build_jar` runs Maven only when the Maven project's sources changed: the jar
it returns is named after a SHA-256 of ``pom.xml`` and ``src/**``
(``target/camunda-test-engine-<hash>.jar``). :func:`start_engine` starts the jar on a
loopback port with H2 (default) or a PostgreSQL database and waits until the REST
API answers.
"""

from __future__ import annotations

import atexit
import base64
import fcntl
import hashlib
import logging
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Mapping, Tuple

from harness._proc import free_port, tail
from harness.errors import HarnessError

if TYPE_CHECKING:
    from harness.postgres import PostgresCluster

__all__ = [
    "ENGINE_PROJECT",
    "Engine",
    "HarnessError",
    "JdbcTarget",
    "build_jar",
    "source_hash",
    "start_engine",
]

_LOGGER = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[2]
ENGINE_PROJECT = REPO_ROOT / "tests" / "engine"
"""The Maven project of the test engine."""

_JAR_NAME = "camunda-test-engine.jar"
_STAMP_NAME = "camunda-test-engine.sha256"
_MIN_JAVA = 17
_JVM_OPTIONS = ("-Xms256m", "-Xmx768m", "-XX:+UseSerialGC", "-Duser.timezone=UTC")
_READY_TIMEOUT = 180.0  # seconds; startup takes ~5-15 s, more on a loaded CI machine
_STOP_TIMEOUT = 30.0  # seconds between SIGTERM and SIGKILL
_POLL_INTERVAL = 0.25  # seconds between readiness probes
_START_ATTEMPTS = 3  # a port picked by free_port() can be taken before Tomcat binds it

JdbcTarget = Tuple[str, str, str]
"""A database given as ``(jdbc_url, user, password)``."""


def source_hash(project_dir: Path = ENGINE_PROJECT) -> str:
    """Return the SHA-256 of the Maven project's inputs.

    Covers ``pom.xml`` and every file under ``src/``, names and contents, in a stable
    order, so any edit, addition, removal or rename changes the hash.

    Args:
        project_dir: The Maven project directory.

    Returns:
        The hex digest.
    """
    digest = hashlib.sha256()
    files = [project_dir / "pom.xml"]
    files += sorted(p for p in (project_dir / "src").rglob("*") if p.is_file())
    for path in files:
        relative = path.relative_to(project_dir).as_posix().encode("utf-8")
        content = path.read_bytes()
        digest.update(b"%d:%s:%d:" % (len(relative), relative, len(content)))
        digest.update(content)
    return digest.hexdigest()


def java_version(java: str = "java") -> int:
    """Return the feature version of a Java runtime (8, 11, 17, 21, ...).

    Args:
        java: The java executable.

    Returns:
        The major version.

    Raises:
        HarnessError: java is missing or its version cannot be read.
    """
    path = shutil.which(java)
    if path is None:
        raise HarnessError("java not found on PATH; install a JDK %d or later" % _MIN_JAVA)
    result = subprocess.run(
        [path, "-version"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=False
    )
    match = re.search(r'version "(\d+)(?:\.(\d+))?', result.stdout)
    if match is None:
        raise HarnessError("cannot read the Java version from: %s" % result.stdout.strip())
    major = int(match.group(1))
    if major == 1 and match.group(2):  # "1.8.0_402" style
        major = int(match.group(2))
    return major


def _check_java() -> None:
    major = java_version()
    if major < _MIN_JAVA:
        raise HarnessError(
            "Java %d found on PATH; the test engine needs Java %d or later" % (major, _MIN_JAVA)
        )


def build_jar(project_dir: Path = ENGINE_PROJECT, *, force: bool = False) -> Path:
    """Build the engine jar unless an up-to-date one exists.

    Maven writes ``target/camunda-test-engine.jar``; the harness runs a copy named
    after the :func:`source_hash` (``target/camunda-test-engine-<hash>.jar``), so a
    rebuild never rewrites a jar that a running engine is reading. The stamp file
    ``target/camunda-test-engine.sha256`` holds the hash of the latest build.
    Concurrent callers (for example parallel test processes) wait on a file lock, so
    Maven runs at most once.

    Args:
        project_dir: The Maven project directory.
        force: Rebuild even when an up-to-date jar exists.

    Returns:
        The path of the jar to run.

    Raises:
        HarnessError: java or mvn is missing, Java is older than 17, or Maven failed
            (the message ends with Maven's output).
    """
    target = project_dir / "target"
    wanted = source_hash(project_dir)
    jar = target / ("camunda-test-engine-%s.jar" % wanted[:16])
    if not force and jar.is_file():
        _LOGGER.debug("engine jar %s is up to date", jar)
        return jar

    _check_java()
    mvn = shutil.which("mvn")
    if mvn is None:
        raise HarnessError("mvn not found on PATH; install Maven 3.8 or later to build %s" % project_dir)
    target.mkdir(parents=True, exist_ok=True)
    with open(target / ".build.lock", "w", encoding="ascii") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file is closed
        if not force and jar.is_file():
            return jar  # another process built it while we waited
        # Classes of deleted sources would otherwise survive an incremental build.
        shutil.rmtree(target / "classes", ignore_errors=True)
        _LOGGER.info("building the engine jar with Maven (the first build downloads ~100 MB)")
        started = time.monotonic()
        result = subprocess.run(
            [mvn, "-B", "-q", "-DskipTests", "package"],
            cwd=str(project_dir),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            check=False,
        )
        built = target / _JAR_NAME
        if result.returncode != 0 or not built.is_file():
            raise HarnessError(
                "Maven build of %s failed (exit code %d):\n%s"
                % (project_dir, result.returncode, tail(result.stdout, 60))
            )
        partial = jar.with_suffix(".jar.partial")
        shutil.copyfile(built, partial)
        os.replace(partial, jar)  # atomic: readers never see a half-written jar
        (target / _STAMP_NAME).write_text(wanted + "\n", encoding="ascii")
        _LOGGER.info("engine jar built in %.0f s: %s", time.monotonic() - started, jar)
    return jar


class Engine:
    """One test engine process: the Camunda 7 REST API on ``127.0.0.1``.

    Create it with :func:`start_engine`, or construct it and call :meth:`start`. Use it
    as a context manager or call :meth:`stop`.

    With ``basic_auth`` every REST path except ``/engine`` needs HTTP Basic
    credentials, which are :attr:`username` / :attr:`password` (the engine's admin
    user). They are never logged.

    Not thread-safe: start and stop it from one thread.

    Attributes:
        port: The HTTP port.
        basic_auth: Whether the REST API requires credentials.
        username: Basic-auth user name (``demo``).
        password: Basic-auth password (``demo``).
        log_path: File receiving the engine's stdout and stderr; for a temporary log,
            None until :meth:`start`.
    """

    username = "demo"
    password = "demo"

    def __init__(
        self,
        jar: Path,
        *,
        port: int | None = None,
        postgres: PostgresCluster | JdbcTarget | None = None,
        basic_auth: bool = False,
        log_path: Path | str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        """Prepare an engine; nothing runs until :meth:`start`.

        Args:
            jar: The engine jar (see :func:`build_jar`).
            port: HTTP port on 127.0.0.1; a free one is picked when None.
            postgres: The database: a :class:`~harness.postgres.PostgresCluster`, a
                ``(jdbc_url, user, password)`` tuple, or None for in-memory H2.
            basic_auth: Require HTTP Basic credentials on the REST API.
            log_path: Where to write the engine output; a temporary file (deleted
                by :meth:`stop`) when None.
            env: Extra environment variables for the Java process, applied last;
                e.g. Spring properties in environment form such as
                ``{"CAMUNDA_BPM_REST_API_FETCH_AND_LOCK_UNIQUE_WORKER_REQUEST": "true"}``.
        """
        self.jar = Path(jar)
        self._requested_port = port
        self.port: int = port or free_port()
        self.basic_auth = basic_auth
        self._database = _jdbc_target(postgres)
        self._own_log = log_path is None
        self.log_path: Path | None = Path(log_path) if log_path is not None else None
        self._extra_env = dict(env or {})
        self._process: subprocess.Popen[bytes] | None = None

    def __repr__(self) -> str:
        return "Engine(url=%r, database=%r, basic_auth=%r, pid=%r)" % (
            self.url,
            self.database_url,
            self.basic_auth,
            self.pid,
        )

    @property
    def url(self) -> str:
        """The REST API root, e.g. ``http://127.0.0.1:8080/engine-rest``."""
        return "http://127.0.0.1:%d/engine-rest" % self.port

    @property
    def auth(self) -> tuple[str, str] | None:
        """``(username, password)`` when basic auth is on, else None."""
        return (self.username, self.password) if self.basic_auth else None

    @property
    def database_url(self) -> str:
        """The JDBC URL the engine uses (``jdbc:h2:mem:...`` for the default)."""
        return self._database[0] if self._database else "jdbc:h2:mem:camunda"

    @property
    def pid(self) -> int | None:
        """The Java process id while it runs, else None."""
        return self._process.pid if self._process is not None else None

    def is_running(self) -> bool:
        """Return whether the Java process is alive."""
        return self._process is not None and self._process.poll() is None

    def start(self, *, timeout: float = _READY_TIMEOUT) -> Engine:
        """Start the engine and wait until ``GET /engine`` answers 200.

        Args:
            timeout: Seconds to wait for readiness.

        Returns:
            This engine, for chaining.

        Raises:
            HarnessError: Java is missing or older than 17, or the process exited or
                did not become ready in time; the message then ends with the tail of
                the engine log.
        """
        if self._process is not None:
            raise HarnessError("engine already started")
        _check_java()
        java = shutil.which("java")
        assert java is not None  # checked by _check_java()
        if not self.jar.is_file():
            raise HarnessError("engine jar %s does not exist; run build_jar() first" % self.jar)
        if self.log_path is None:
            self.log_path = _temp_log_path()
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        for attempt in range(1, _START_ATTEMPTS + 1):
            self._launch(java)
            try:
                self._wait_ready(started, timeout)
                break
            except HarnessError:
                log_tail = self.log_tail()
                self._terminate()
                port_taken = "already in use" in log_tail
                if self._requested_port is None and port_taken and attempt < _START_ATTEMPTS:
                    _LOGGER.info("port %d was taken; retrying on another port", self.port)
                    self.port = free_port()
                    continue
                self.stop()
                raise
            except BaseException:
                self.stop()
                raise
        _LOGGER.info("engine ready at %s after %.1f s", self.url, time.monotonic() - started)
        return self

    def _launch(self, java: str) -> None:
        assert self.log_path is not None
        args = [java, *_JVM_OPTIONS, "-jar", str(self.jar)]
        with open(self.log_path, "wb") as log:
            # Own session: a Ctrl-C in the terminal reaches the caller, which then
            # stops the engine in order, instead of hitting Java directly.
            self._process = subprocess.Popen(
                args,
                env=self._environment(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=str(self.log_path.parent),
                start_new_session=True,
            )
        atexit.register(self.stop)
        _LOGGER.info(
            "engine starting (pid %d, port %d, %s); log in %s",
            self._process.pid,
            self.port,
            self.database_url,
            self.log_path,
        )

    def stop(self, *, timeout: float = _STOP_TIMEOUT) -> None:
        """Stop the engine: SIGTERM, wait, then SIGKILL. Idempotent.

        Args:
            timeout: Seconds to wait after SIGTERM before killing.
        """
        self._terminate(timeout)
        if self._own_log and self.log_path is not None:
            shutil.rmtree(self.log_path.parent, ignore_errors=True)
            self.log_path = None

    def _terminate(self, timeout: float = _STOP_TIMEOUT) -> None:
        """Stop the Java process, if any, keeping the log."""
        process, self._process = self._process, None
        if process is None:
            return
        atexit.unregister(self.stop)
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                _LOGGER.warning("engine pid %d ignored SIGTERM for %.0f s; killing it", process.pid, timeout)
                process.kill()
                process.wait()
        _LOGGER.info("engine on port %d stopped (exit code %s)", self.port, process.returncode)

    def basic_auth_header(self) -> dict[str, str]:
        """Return the ``Authorization`` header for the REST API (empty without basic auth).

        Returns:
            A header mapping to merge into request headers.
        """
        if not self.basic_auth:
            return {}
        token = base64.b64encode(("%s:%s" % (self.username, self.password)).encode("utf-8")).decode("ascii")
        return {"Authorization": "Basic " + token}

    def log_tail(self, lines: int = 40) -> str:
        """Return the last lines of the engine log.

        Args:
            lines: How many lines.

        Returns:
            The lines joined with newlines.
        """
        return tail(self.log_path, lines) if self.log_path is not None else ""

    def __enter__(self) -> Engine:
        if self._process is None:
            self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # -- internals ---------------------------------------------------------------

    def _environment(self) -> dict[str, str]:
        # Inherited DB_* variables would silently redirect an H2 engine elsewhere.
        env = {k: v for k, v in os.environ.items() if not k.startswith("DB_")}
        env["HARNESS_PORT"] = str(self.port)
        env["HARNESS_BASIC_AUTH"] = "true" if self.basic_auth else "false"
        if self._database is not None:
            url, user, password = self._database
            env.update(DB_URL=url, DB_DRIVER="org.postgresql.Driver", DB_USERNAME=user, DB_PASSWORD=password)
        env.update(self._extra_env)
        return env

    def _wait_ready(self, started: float, timeout: float) -> None:
        probe = self.url + "/engine"
        while True:
            assert self._process is not None
            code = self._process.poll()
            if code is not None:
                raise HarnessError("engine exited with code %d during startup:\n%s" % (code, self.log_tail()))
            try:
                with urllib.request.urlopen(probe, timeout=2.0) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass  # not listening yet: Tomcat binds only once the engine is up
            if time.monotonic() - started >= timeout:
                raise HarnessError(
                    "engine not ready at %s after %.0f s:\n%s" % (probe, timeout, self.log_tail())
                )
            time.sleep(_POLL_INTERVAL)


def _jdbc_target(postgres: PostgresCluster | JdbcTarget | None) -> JdbcTarget | None:
    if postgres is None:
        return None
    if isinstance(postgres, tuple):
        if len(postgres) != 3:
            raise TypeError("postgres tuple must be (jdbc_url, user, password)")
        return (str(postgres[0]), str(postgres[1]), str(postgres[2]))
    return (postgres.jdbc_url, postgres.user, postgres.password)


def _temp_log_path() -> Path:
    return Path(tempfile.mkdtemp(prefix="camunda-ext-engine-")) / "engine.log"


def start_engine(
    *,
    port: int | None = None,
    postgres: PostgresCluster | JdbcTarget | None = None,
    basic_auth: bool = False,
    log_path: Path | str | None = None,
    jar: Path | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float = _READY_TIMEOUT,
) -> Engine:
    """Build the jar if needed, start an engine and wait until it is ready.

    Args:
        port: HTTP port on 127.0.0.1; a free one is picked when None.
        postgres: A :class:`~harness.postgres.PostgresCluster`, a
            ``(jdbc_url, user, password)`` tuple, or None for in-memory H2.
        basic_auth: Require HTTP Basic credentials (``Engine.username`` /
            ``Engine.password``) on the REST API.
        log_path: Where to write the engine output; a temporary file when None.
        jar: A prebuilt jar; :func:`build_jar` is called when None.
        env: Extra environment variables for the Java process (see :class:`Engine`).
        timeout: Seconds to wait for readiness.

    Returns:
        The running engine.

    Raises:
        HarnessError: The build failed or the engine did not start.
    """
    engine = Engine(
        jar or build_jar(), port=port, postgres=postgres, basic_auth=basic_auth, log_path=log_path, env=env
    )
    return engine.start(timeout=timeout)
