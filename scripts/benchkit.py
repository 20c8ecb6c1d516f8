"""Measurement pieces shared by the benchmark scripts (standard library only).

- The child protocol: a measured client runs in its own process, prints one JSON
  line when it is ready (with its CPU time so far) and one when it stops (with its
  CPU time and its own figures), so that start-up and imports are not counted.
  :class:`Child` is the parent's side; :func:`announce`, :func:`stop_event` and
  :func:`finish` the child's, which also reports its peak RSS; :class:`TaskStats`
  what its handlers saw.
- :class:`CountingProxy`: an HTTP/1.1 reverse proxy on loopback that counts each
  request by method and path pattern, with the status codes of the answers, for
  any client (ours, the PyPI client, Sequin consumers).
- Machine facts, the CPU time of other processes and their threads, Markdown tables, and
  the throw-away virtualenv of the PyPI client.

This module must stay importable by any Python 3.9+ without third-party packages:
the PyPI client's child runs in a virtualenv that has no camunda_ext.
"""

from __future__ import annotations

import asyncio
import collections
import datetime as _dt
import itertools
import json
import os
import platform
import queue
import re
import resource
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

SCRIPTS = Path(__file__).resolve().parent
REPO_ROOT = SCRIPTS.parent

#: The PyPI client as benchmarked. It imports pydantic without declaring it.
PYPI_CLIENT_REQUIREMENTS = ("camunda-external-task-client-python3==4.5.0", "pydantic>=2,<3")
#: Its throw-away virtualenv (``/.work/`` is git-ignored).
PYPI_VENV = REPO_ROOT / ".work" / "bench-pypi-venv"


# ---------------------------------------------------------------------- child side


def cpu_seconds() -> float:
    """User plus system CPU seconds of this process (all threads)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def emit(event: str, **fields: Any) -> None:
    """Print one protocol line on stdout."""
    sys.stdout.write(json.dumps({"event": event, **fields}) + "\n")
    sys.stdout.flush()


def stop_event() -> threading.Event:
    """An event set by SIGTERM or SIGINT; call from the main thread."""
    event = threading.Event()  # signals: the parent asked this child to stop

    def on_signal(signum: int, frame: Any) -> None:
        event.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    return event


def announce(**fields: Any) -> float:
    """Tell the parent this child is ready; return the CPU seconds spent so far."""
    spent = cpu_seconds()
    emit("ready", cpu=spent, **fields)
    return spent


def peak_rss_mib() -> float:
    """This process's peak resident set size in MiB; 0 where /proc is missing.

    VmHWM counts from the process's exec. ``ru_maxrss`` would not do: it keeps the
    peak of the parent that spawned it, from before the exec.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return 0.0


def finish(ready_cpu: float, stats: Dict[str, Any]) -> None:
    """Report the CPU spent since :func:`announce`, the peak RSS and the child's own figures."""
    emit("final", cpu=cpu_seconds() - ready_cpu, peak_rss_mib=peak_rss_mib(), stats=stats)


def wait_until(event: threading.Event, limit: float) -> None:
    """Block the main thread until ``event`` (a signal) or ``limit`` seconds."""
    deadline = time.monotonic() + limit
    # Short waits: signal handlers run only between the main thread's bytecodes.
    while not event.is_set() and time.monotonic() < deadline:
        event.wait(0.2)


class TaskStats:
    """What a measured client's handlers saw: pickups, completions, failed reports and stalls.

    Thread-safe. Pickup is the wait from the engine's ``createTime`` to the handler's
    start; a stall is a completion after the lock taken at fetch would have expired.
    """

    def __init__(self) -> None:
        # Guards every field.
        self._lock = threading.Lock()
        self.completed = 0
        self.report_errors = 0
        self.stalls = 0
        self.worst_overrun = 0.0
        self.pickups: List[float] = []

    def picked_up(self, create_time: Optional[_dt.datetime]) -> None:
        """A handler starts now on a task the engine created at ``create_time``."""
        if create_time is not None:
            waited = (_dt.datetime.now(_dt.timezone.utc) - create_time).total_seconds()
            with self._lock:
                self.pickups.append(round(waited, 4))

    def record(self, lock_expiration: Optional[_dt.datetime]) -> None:
        """A task was completed now; its lock (as fetched) ran until ``lock_expiration``."""
        overrun = 0.0
        if lock_expiration is not None:
            overrun = (_dt.datetime.now(_dt.timezone.utc) - lock_expiration).total_seconds()
        with self._lock:
            self.completed += 1
            if overrun > 0:
                self.stalls += 1
                self.worst_overrun = max(self.worst_overrun, overrun)

    def report_error(self) -> None:
        with self._lock:
            self.report_errors += 1

    def figures(self) -> Dict[str, Any]:
        with self._lock:
            return {
                "completed": self.completed,
                "report_errors": self.report_errors,
                "stalls": self.stalls,
                "worst_overrun_seconds": round(self.worst_overrun, 3),
                "pickup_seconds": list(self.pickups),
            }


# ---------------------------------------------------------------------- parent side


class ChildError(RuntimeError):
    """A measured child process failed or broke the protocol."""


class Child:
    """A measured child process speaking the JSON-lines protocol. Not thread-safe.

    Args:
        argv: The command line.
        name: For messages.
        env: Extra environment variables.
        log_path: Receives the child's stderr.
    """

    def __init__(
        self, argv: Sequence[str], *, name: str, env: Optional[Dict[str, str]] = None, log_path: Path
    ) -> None:
        self.name = name
        self.log_path = log_path
        self._log: IO[bytes] = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        self._events: queue.Queue[Dict[str, Any]] = queue.Queue()  # protocol lines from the reader thread
        self._process = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self._log,
            env={**os.environ, **(env or {})},
            start_new_session=True,
        )
        self._reader = threading.Thread(target=self._read, name="bench-%s-reader" % name, daemon=True)
        self._reader.start()
        self.returncode: Optional[int] = None

    @property
    def pid(self) -> int:
        """The process id."""
        return self._process.pid

    def _read(self) -> None:
        assert self._process.stdout is not None
        for raw in self._process.stdout:
            line = raw.decode("utf-8", "replace").strip()
            if line.startswith("{"):
                try:
                    self._events.put(json.loads(line))
                except ValueError:
                    pass  # not a protocol line: stray output of a library
        self._events.put({"event": "eof"})

    def expect(self, event: str, timeout: float) -> Dict[str, Any]:
        """Wait for the next protocol line named ``event``.

        Raises:
            ChildError: The child exited or stayed silent for ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ChildError(
                    "%s: no %r within %.0f s; see %s" % (self.name, event, timeout, self.log_path)
                )
            try:
                line = self._events.get(timeout=remaining)
            except queue.Empty:
                continue
            if line.get("event") == event:
                return line
            if line.get("event") == "eof":
                raise ChildError(
                    "%s exited before %r; see %s:\n%s" % (self.name, event, self.log_path, self.log_tail())
                )

    def poll_event(self, event: str) -> Optional[Dict[str, Any]]:
        """The next queued line named ``event`` without waiting, else None (others are dropped)."""
        while True:
            try:
                line = self._events.get_nowait()
            except queue.Empty:
                return None
            if line.get("event") == event:
                return line

    def log_tail(self, lines: int = 20) -> str:
        """The last lines of the child's stderr."""
        try:
            return "\n".join(self.log_path.read_text("utf-8", "replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self, timeout: float = 30.0) -> Optional[Dict[str, Any]]:
        """SIGTERM, wait for the ``final`` line and the exit; SIGKILL after ``timeout`` seconds.

        Returns:
            The ``final`` line, or None if the child did not send one.
        """
        final = None
        if self.returncode is None:
            try:
                os.kill(self._process.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                final = self.expect("final", timeout)
            except ChildError:
                final = None
            self._reap(timeout)
        self._log.close()
        return final

    def _reap(self, timeout: float) -> None:
        try:
            self.returncode = self._process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self._process.pid, signal.SIGKILL)
            self.returncode = self._process.wait()


# ---------------------------------------------------------------------- counting proxy

#: Longest wait, in seconds, for the server's answers to a client that has disconnected.
_SETTLE_TIMEOUT = 120.0

_ID_SEGMENT = re.compile(r"^(?=.*\d)[0-9A-Za-z:._-]{8,}$")


def request_kind(method: str, target: str) -> str:
    """``POST /external-task/{id}/complete`` style name of a request (ids collapsed)."""
    path = target.split("?", 1)[0]
    segments = ["{id}" if _ID_SEGMENT.match(s) else s for s in path.split("/") if s]
    if "engine-rest" in segments:
        segments = segments[segments.index("engine-rest") + 1 :]
    return "%s /%s" % (method, "/".join(segments))


class CountingProxy:
    """An HTTP/1.1 reverse proxy on 127.0.0.1 that counts requests. Thread-safe.

    Each client connection gets its own upstream connection; requests and answers
    are relayed unchanged (keep-alive, chunked answers and long polls included).
    Requests are parsed only to be counted; answers only for their status codes.
    Given several servers, it balances as a layer-4 load balancer in front of an
    engine cluster does (a Kubernetes Service, for one): each new client
    connection goes to the next server in turn, and all its requests with it.

    Args:
        upstreams: The servers' ``(host, port)``, at least one.
    """

    def __init__(self, *upstreams: Tuple[str, int]) -> None:
        if not upstreams:
            raise ValueError("the proxy needs a server to relay to")
        self._upstreams = itertools.cycle(upstreams)  # advanced on the event loop's thread only
        # Guards the counters; held only for updates and snapshots.
        self._lock = threading.Lock()
        self._counts: collections.Counter[str] = collections.Counter()
        self._statuses: collections.Counter[Tuple[str, int]] = collections.Counter()
        self._times: List[float] = []
        self._outstanding = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()  # signals: the listening socket is bound
        self._thread = threading.Thread(target=self._serve, name="counting-proxy", daemon=True)
        self._server: Optional[asyncio.base_events.Server] = None
        self.port = 0

    def start(self) -> CountingProxy:
        """Bind and serve on a thread; returns self."""
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the counting proxy did not start")
        return self

    def url(self, path: str = "") -> str:
        """``http://127.0.0.1:PORT`` plus ``path``."""
        return "http://127.0.0.1:%d%s" % (self.port, path)

    def stop(self) -> None:
        """Close every connection and the listening socket; join the thread."""
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)

    def __enter__(self) -> CountingProxy:
        return self.start()

    def __exit__(self, *exc_info: Any) -> None:
        self.stop()

    def snapshot(self) -> Dict[str, Any]:
        """``{"total", "by_kind", "errors"}``: request counts and non-2xx answers by kind."""
        with self._lock:
            errors = {"%s -> %d" % key: n for key, n in sorted(self._statuses.items()) if key[1] >= 300}
            return {"total": sum(self._counts.values()), "by_kind": dict(self._counts), "errors": errors}

    def request_times(self) -> List[float]:
        """Monotonic times at which requests arrived."""
        with self._lock:
            return list(self._times)

    # -- the event loop ------------------------------------------------------------

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._server = self._loop.run_until_complete(
            asyncio.start_server(self._on_client, "127.0.0.1", 0, backlog=512)
        )
        self.port = self._server.sockets[0].getsockname()[1]
        self._ready.set()
        try:
            self._loop.run_forever()
        finally:
            self._server.close()
            pending = asyncio.all_tasks(self._loop)
            for task in pending:
                task.cancel()
            # Let the cancelled connection handlers unwind before the loop closes.
            self._loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            self._loop.close()

    def outstanding(self) -> int:
        """Requests relayed and not yet answered (long polls parked at the server included)."""
        with self._lock:
            return self._outstanding

    def wait_settled(self, timeout: float) -> bool:
        """Wait until the server has answered every relayed request; False after ``timeout`` seconds.

        A client that exits with a long poll parked at the engine leaves a request the
        engine may still lock tasks for; waiting here keeps that from touching the next run.
        """
        deadline = time.monotonic() + timeout
        while self.outstanding() and time.monotonic() < deadline:
            time.sleep(0.1)
        return not self.outstanding()

    async def _on_client(
        self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter
    ) -> None:
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(*next(self._upstreams))
        except OSError:
            client_writer.close()
            return
        kinds: asyncio.Queue[Tuple[str, str]] = (
            asyncio.Queue()
        )  # (kind, method) of requests awaiting an answer
        client_gone = asyncio.Event()  # signals: the client closed its side; answer what is owed, then end
        forward = asyncio.ensure_future(self._requests(client_reader, upstream_writer, kinds))
        backward = asyncio.ensure_future(self._answers(upstream_reader, client_writer, kinds, client_gone))
        try:
            await asyncio.wait([forward, backward], return_when=asyncio.FIRST_COMPLETED)
            if forward.done() and not backward.done() and not kinds.empty():
                # The client left: keep reading until the server has answered what it was sent.
                client_gone.set()
                await asyncio.wait([backward], timeout=_SETTLE_TIMEOUT)
        except asyncio.CancelledError:
            pass  # the proxy is stopping: end quietly (asyncio logs a connection task cancelled)
        finally:
            forward.cancel()
            backward.cancel()
            with self._lock:
                self._outstanding -= kinds.qsize()  # never to be answered now
            for writer in (client_writer, upstream_writer):
                writer.close()

    async def _requests(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        kinds: asyncio.Queue[Tuple[str, str]],
    ) -> None:
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, ConnectionError):
                return
            request_line = head.split(b"\r\n", 1)[0].decode("latin-1")
            method, target = [*request_line.split(" "), "", ""][:2]
            kind = request_kind(method, target)
            with self._lock:
                self._counts[kind] += 1
                self._times.append(time.monotonic())
                self._outstanding += 1
            writer.write(head)
            headers = _headers(head)
            if headers.get("transfer-encoding", "").lower() == "chunked":
                await _relay_chunked(reader, writer)
            else:
                length = int(headers.get("content-length", "0"))
                if length:
                    writer.write(await reader.readexactly(length))
            await kinds.put((kind, method))
            await writer.drain()

    async def _answers(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        kinds: asyncio.Queue[Tuple[str, str]],
        client_gone: asyncio.Event,
    ) -> None:
        while not (client_gone.is_set() and kinds.empty()):
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, ConnectionError):
                return
            status = int(head.split(b" ", 2)[1])
            if status < 200:
                writer.write(head)  # 100 Continue: the real answer follows
                continue
            kind, method = await kinds.get()
            with self._lock:
                self._statuses[(kind, status)] += 1
                self._outstanding -= 1
            writer.write(head)
            headers = _headers(head)
            if method == "HEAD" or status in (204, 304):
                pass
            elif headers.get("transfer-encoding", "").lower() == "chunked":
                await _relay_chunked(reader, writer)
            elif "content-length" in headers:
                length = int(headers["content-length"])
                if length:
                    writer.write(await reader.readexactly(length))
            else:
                writer.write(await reader.read())  # delimited by the connection's end
                return
            try:
                await writer.drain()
            except ConnectionError:
                pass  # the client is gone; the answer was owed to the server's bookkeeping only


def _headers(head: bytes) -> Dict[str, str]:
    fields = {}
    for line in head.split(b"\r\n")[1:]:
        name, sep, value = line.partition(b":")
        if sep:
            fields[name.strip().lower().decode("latin-1")] = value.strip().decode("latin-1")
    return fields


async def _relay_chunked(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while True:
        size_line = await reader.readuntil(b"\r\n")
        writer.write(size_line)
        size = int(size_line.split(b";", 1)[0].strip(), 16)
        if size == 0:
            while True:  # trailers, then the empty line
                line = await reader.readuntil(b"\r\n")
                writer.write(line)
                if line == b"\r\n":
                    return
        writer.write(await reader.readexactly(size + 2))


# ---------------------------------------------------------------------- reporting


def machine() -> Dict[str, Any]:
    """CPU count, CPU model, memory and Python of this machine."""
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory_gib = 0.0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory_gib = round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return {
        "nproc": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "cpu_model": model,
        "memory_gib": memory_gib,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


#: HotSpot's JIT compiler threads, by their names in /proc (cut to 15 characters there).
JIT_THREADS = ("C1 CompilerThre", "C2 CompilerThre")


def _stat(path: Path) -> Optional[Tuple[str, List[str]]]:
    """A /proc ``stat`` file as (name, the fields after it); None if the process or thread is gone.

    The name may hold spaces and parentheses: it runs from the first "(" to the last ")".
    In the fields after it, [1] is the parent's pid and [11:15] utime, stime,
    cutime and cstime, in clock ticks.
    """
    try:
        text = path.read_text()
    except OSError:
        return None
    head, _, rest = text.rpartition(")")
    return head.partition("(")[2], rest.split()


def thread_cpu_seconds(pid: int) -> Dict[str, float]:
    """User plus system CPU seconds of a process's threads, summed by thread name.

    Empty where /proc is missing or the process is gone. A thread that ended is
    not counted, so compare snapshots of long-lived thread pools only.
    """
    ticks = os.sysconf("SC_CLK_TCK")
    totals: Dict[str, float] = collections.defaultdict(float)
    try:
        threads = list(Path("/proc/%d/task" % pid).iterdir())
    except OSError:
        return {}
    for thread in threads:
        stat = _stat(thread / "stat")
        if stat is not None:  # else the thread ended while we read
            name, fields = stat
            totals[name] += (int(fields[11]) + int(fields[12])) / ticks
    return dict(totals)


def process_tree_cpu_seconds(pid: int) -> Optional[float]:
    """User plus system CPU seconds of a process and its children, ended ones included; None if it is gone.

    For a server that forks a process per connection, such as PostgreSQL's postmaster:
    the children it has reaped count through its ``cutime``/``cstime``.
    """
    own = _stat(Path("/proc/%d/stat" % pid))
    if own is None:
        return None
    total = sum(int(field) for field in own[1][11:15])
    total += sum(int(fields[11]) + int(fields[12]) for _, fields in _live_children(pid))
    return total / os.sysconf("SC_CLK_TCK")


def children_cpu_seconds(pid: int, title: str) -> float:
    """User plus system CPU seconds of a process's live children whose command line starts with ``title``.

    PostgreSQL titles its processes by role, e.g. ``postgres: walsender ...`` for a
    replication connection's: its logical decoding.
    """
    total = 0
    for child, fields in _live_children(pid):
        try:
            command = (child / "cmdline").read_bytes().replace(b"\0", b" ").decode("utf-8", "replace")
        except OSError:
            continue  # it ended while we read
        if command.startswith(title):
            total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def _live_children(pid: int) -> Iterator[Tuple[Path, List[str]]]:
    """The /proc folder and ``stat`` fields of each live child of ``pid``."""
    for path in Path("/proc").glob("[0-9]*/stat"):
        child = _stat(path)
        if child is not None and int(child[1][1]) == pid:
            yield path.parent, child[1]


def cpu_spent(before: Dict[str, float], after: Dict[str, float]) -> Dict[str, float]:
    """CPU seconds per thread name between two :func:`thread_cpu_seconds` snapshots."""
    return {name: max(0.0, seconds - before.get(name, 0.0)) for name, seconds in after.items()}


def rotated(names: Sequence[str], turn: int) -> List[str]:
    """``names`` started at position ``turn`` (modulo): each round puts another one first."""
    start = turn % len(names) if names else 0
    return [*names[start:], *names[:start]]


def round_ratios(
    runs: Sequence[Dict[str, Any]], key: str, ours: str, theirs: str, metric: str
) -> List[float]:
    """``metric`` of ``ours`` over that of ``theirs``, one ratio per round both ran in.

    ``runs`` are dicts with a ``round`` number and ``key`` naming the client; a
    round where ``theirs`` measured 0 or nothing is left out.
    """
    ratios = []
    for number in sorted({run["round"] for run in runs}):
        mine = [run[metric] for run in runs if run["round"] == number and run[key] == ours]
        other = [run[metric] for run in runs if run["round"] == number and run[key] == theirs]
        if mine and other and other[0]:
            ratios.append((mine[0] or 0.0) / other[0])
    return ratios


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub-flavoured Markdown table; numbers right-aligned."""

    def cell(value: Any) -> str:
        if isinstance(value, float):
            return "%.2f" % value
        return str(value)

    body = [[cell(v) for v in row] for row in rows]
    align = [
        "---:"
        if rows and isinstance(rows[0][i], (int, float)) and not isinstance(rows[0][i], bool)
        else "---"
        for i in range(len(headers))
    ]
    lines = ["| %s |" % " | ".join(headers), "|%s|" % "|".join(align)]
    lines += ["| %s |" % " | ".join(row) for row in body]
    return "\n".join(lines)


def rst_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """The same table as an RST ``list-table``."""
    lines = [".. list-table::", "   :header-rows: 1", ""]
    for row in [list(headers), *rows]:
        cells = ["%.2f" % v if isinstance(v, float) else str(v) for v in row]
        lines.append("   * - %s" % cells[0])
        lines.extend("     - %s" % c for c in cells[1:])
    return "\n".join(lines)


def write_json(path: Optional[str], data: Any) -> None:
    """Write ``data`` as indented JSON when ``path`` is given."""
    if path:
        Path(path).write_text(json.dumps(data, indent=2, sort_keys=False) + "\n", encoding="utf-8")


# ---------------------------------------------------------------------- the PyPI client


def pypi_python(explicit: Optional[str] = None, *, log: Callable[[str], None] = print) -> str:
    """The interpreter to run the PyPI client with, creating its throw-away virtualenv if needed.

    Args:
        explicit: An interpreter given on the command line (it must import ``camunda``).
        log: Receives progress messages.

    Returns:
        The interpreter's path.
    """
    if explicit:
        return explicit
    python = PYPI_VENV / "bin" / "python"
    probe = [str(python), "-c", "import camunda.external_task.external_task_worker"]
    if python.exists() and subprocess.run(probe, capture_output=True, check=False).returncode == 0:
        return str(python)
    log("Installing %s into %s (once)" % (" ".join(PYPI_CLIENT_REQUIREMENTS), PYPI_VENV))
    subprocess.run([sys.executable, "-m", "venv", str(PYPI_VENV)], check=True)
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", *PYPI_CLIENT_REQUIREMENTS],
        check=True,
    )
    return str(python)
