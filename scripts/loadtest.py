"""Load test: loan-granting instances through one client against a real engine.

Starts the harness engine on PostgreSQL (default), H2 (``--h2``) or uses a running
one (``--engine-url``; ``CAMUNDA_USER``/``CAMUNDA_PASSWORD`` for auth), deploys
loan-granting, runs the client in its own process behind a counting proxy,
starts ``--instances`` instances with bounded concurrency and waits for all of
them (bounded by ``--timeout``). Clients:

- ``rest``: our Worker (long polling).
- ``cdc-lock`` / ``cdc-wake``: our SequinWorker, fed by the Sequin-compatible test
  server (``harness.sequin_server``) on the engine's PostgreSQL.
- ``pypi`` / ``pypi-tuned``: ``camunda-external-task-client-python3`` with its
  README configuration / tuned (``pypi_worker.py``, in its own virtualenv).

Several clients may be given (``--client rest,pypi``): each runs its own
instances, one after the other, on the same engine; ``--rounds N`` repeats that
N times, each round starting with the next client, and adds the medians per
client and the issue's targets as median per-round ratios. Reports wall time,
instances/s, tasks/s, instance latency percentiles (engine history), failures,
report retries, stalls (completed after the lock taken at fetch would have
expired), engine requests per task (counted by the proxy), client CPU seconds per
1,000 tasks and peak client RSS, and for an engine and a PostgreSQL of our own
their CPU per 1,000 tasks, with the share of the engine's that its JIT compiler
took and, for the cdc clients, the part of PostgreSQL's that its WAL senders took
(logical decoding); and this driver's own CPU per 1,000 tasks (instance starts,
the counting proxies and, for the cdc clients, the Sequin stand-in: none of it a
client's cost).
``--nodes N`` runs N engine nodes on the one database behind a balancing proxy,
as a cluster is run. ``--idle SECONDS`` instead measures the requests per minute
of an idle client.

    .venv/bin/python scripts/loadtest.py --instances 1000 --client rest,pypi --rounds 3 --json load.json
    .venv/bin/python scripts/loadtest.py --h2 --instances 20 --client rest        # smoke
    .venv/bin/python scripts/loadtest.py --h2 --idle 120                          # idle cost
    .venv/bin/python scripts/loadtest.py --nodes 2 --rate 2 --client rest,cdc-wake  # a cluster
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import functools
import logging
import math
import os
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, ContextManager, Dict, Iterator, List, Optional, Sequence, Tuple
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent))

import benchkit
import loan_granting

from camunda_ext import CamundaError, Client
from camunda_ext.sequin import SequinClient
from harness import HarnessError, start_engine, start_postgres

SCRIPTS = benchkit.SCRIPTS
CLIENTS = ("rest", "cdc-lock", "cdc-wake", "pypi", "pypi-tuned")
#: Seconds at the start of an idle measurement that are not counted (the first poll).
IDLE_WARM_UP = 5.0
#: Longest wait, in seconds, for the engine to answer a stopped client's parked long polls.
SETTLE_TIMEOUT = 60.0
#: A process whose instances wait at a topic no client serves; see park_instances.
PARKED_BPMN = SCRIPTS / "bpmn" / "parked.bpmn"
PARKED_INSTANCES = 300
#: Targets of the benchmarks issue, reported and never asserted: (ours, theirs, metric, text, bound).
#: A bound on a ratio is met at or above it for tasks/s and at or below it otherwise.
TARGETS = (
    ("rest", "pypi", "tasks_per_second", "REST Worker tasks/s >= 2x the PyPI client (README)", 2.0),
    ("cdc-wake", "rest", "pickup_p50", "CDC wake p50 pickup latency <= REST long polling", 1.0),
)
#: Most engine requests per task of CDC wake mode (target of the benchmarks issue).
WAKE_REQUESTS_PER_TASK = 1.15


class Setup:
    """The engine (and Sequin) a run talks to, with what it takes to reach them.

    ``url`` is where the harness itself sends its requests (deployment, instance
    starts, history); ``nodes`` are the engine nodes the clients are balanced over,
    ``[url]`` for a single engine.
    """

    def __init__(
        self,
        url: str,
        auth: Optional[Tuple[str, str]],
        postgres: Any = None,
        engine_pids: Sequence[int] = (),
        nodes: Optional[Sequence[str]] = None,
    ) -> None:
        self.url = url
        self.auth = auth
        self.postgres = postgres
        self.engine_pids = list(engine_pids)  # of engines of our own, whose threads' CPU we can read
        self.nodes = list(nodes or [url])
        # Yields url, consumer and token for the length of one cdc run.
        self.sequin: Optional[Callable[[], ContextManager[Dict[str, str]]]] = None

    def engine_threads(self) -> Dict[str, float]:
        """CPU seconds of the engines' threads by name, summed over nodes; empty for engines not of our own."""
        totals: Dict[str, float] = collections.defaultdict(float)
        for pid in self.engine_pids:
            for name, seconds in benchkit.thread_cpu_seconds(pid).items():
                totals[name] += seconds
        return dict(totals)

    def database_cpu(self) -> Optional[float]:
        """CPU seconds of our PostgreSQL, every backend and worker included; None without one."""
        pid = self._postgres_pid()
        return benchkit.process_tree_cpu_seconds(pid) if pid is not None else None

    def wal_sender_cpu(self) -> Optional[float]:
        """CPU seconds of our PostgreSQL's WAL senders (logical decoding for CDC); None without one."""
        pid = self._postgres_pid()
        return benchkit.children_cpu_seconds(pid, "postgres: walsender") if pid is not None else None

    def _postgres_pid(self) -> Optional[int]:
        return self.postgres.pid if self.postgres is not None else None

    def vacuum(self) -> None:
        """VACUUM ANALYZE the engine's database, so that every run starts from the same state."""
        if self.postgres is not None:
            self.postgres.psql("VACUUM ANALYZE", db=self.postgres.dbname)


def park_instances(client: Client) -> None:
    """Start :data:`PARKED_INSTANCES` instances that wait for the whole load test.

    Between two runs every loan-granting instance has ended, and statistics taken
    then (by VACUUM or autovacuum) tell PostgreSQL that ACT_RU_VARIABLE is empty;
    it then finds a task's variables by name with a plan that reads every variable
    of that name, slower as the backlog grows (0.02 ms became 0.7 ms a lookup here,
    a third of the throughput of whichever client ran next). Parked instances holding
    variables of the same names keep the statistics those of a live engine, whose
    tables are never empty either.
    """
    client.deploy("loadtest-parked", [PARKED_BPMN], enable_duplicate_filtering=True)
    variables = {"score": 5, "creditScores": loan_granting.SCORES}
    for _ in range(PARKED_INSTANCES):
        client.start_process_instance("loadtest-parked", variables=variables)


@contextlib.contextmanager
def engine_for(args: argparse.Namespace) -> Iterator[Setup]:
    """Yield the engine the arguments ask for; stop whatever was started."""
    if args.engine_url:
        user = os.environ.get("CAMUNDA_USER")
        auth = (user, os.environ.get("CAMUNDA_PASSWORD", "")) if user else None
        setup = Setup(args.engine_url, auth)
        if args.sequin_url:
            given = {
                "url": args.sequin_url,
                "consumer": args.consumer or "",
                "token": os.environ.get("SEQUIN_API_TOKEN", ""),
            }
            setup.sequin = functools.partial(contextlib.nullcontext, given)
        yield setup
        return
    with contextlib.ExitStack() as stack:
        postgres = None if args.h2 else stack.enter_context(start_postgres())
        print(
            "Starting %s (%s) ..."
            % (
                "the engine" if args.nodes == 1 else "%d engine nodes" % args.nodes,
                "H2" if args.h2 else "PostgreSQL",
            ),
            file=sys.stderr,
        )
        # One after the other: the first creates the schema, the others find it.
        engines = [stack.enter_context(start_engine(postgres=postgres)) for _ in range(args.nodes)]
        nodes = [engine.url for engine in engines]
        url = nodes[0]
        if len(nodes) > 1:
            # The harness's own requests, instance starts included, are balanced too.
            balancer, url = proxy_for(*nodes)
            stack.callback(balancer.stop)
        setup = Setup(url, engines[0].auth, postgres, [engine.pid for engine in engines], nodes)
        if any(c.startswith("cdc") for c in args.clients):
            setup.sequin = sequin_for(postgres)
        yield setup


def sequin_for(postgres: Any) -> Callable[[], ContextManager[Dict[str, str]]]:
    """Apply the migrations; return what starts the Sequin-compatible test server for one run.

    The server reads the WAL only while a cdc client runs, from a slot made afresh:
    decoding is real work for PostgreSQL, which the runs of the other clients must
    not pay (none of their users runs Sequin), and a new slot holds no change of
    earlier runs to catch up on.
    """
    if postgres is None:
        raise HarnessError("the cdc clients need PostgreSQL (drop --h2)")
    try:
        from harness.migrations import SLOT, apply_migrations
        from harness.sequin_server import start_sequin_server  # type: ignore[import-not-found]
    except ImportError as error:
        raise HarnessError("the cdc clients need scripts/harness/sequin_server.py: %s" % error) from None
    token = secrets.token_urlsafe(24)
    cdc_password = secrets.token_urlsafe(24)
    apply_migrations(postgres, cdc_password=cdc_password)

    @contextlib.contextmanager
    def one_run() -> Iterator[Dict[str, str]]:
        postgres.psql(
            f"SELECT pg_drop_replication_slot('{SLOT}'); "
            f"SELECT pg_create_logical_replication_slot('{SLOT}', 'pgoutput')",
            db=postgres.dbname,
        )
        server = start_sequin_server(postgres, token=token, cdc_password=cdc_password, slot=SLOT)
        try:
            yield {"url": server.url, "consumer": server.consumer, "token": token}
        finally:
            server.stop()

    return one_run


def drain(sequin: Dict[str, str], *, rounds: int = 200) -> int:
    """Ack the events earlier runs left (tasks long done), so each client starts on its own."""
    client = SequinClient(sequin["url"], sequin["consumer"], token=sequin["token"], trust_env=False)
    drained = 0
    try:
        for _ in range(rounds):
            batch = client.receive(max_batch_size=1000, wait_for=0.5)
            if not batch:
                break
            client.ack([message.ack_id for message in batch])
            drained += len(batch)
    finally:
        client.close()
    return drained


def proxy_for(*urls: str) -> Tuple[benchkit.CountingProxy, str]:
    """A started counting proxy balancing over ``urls`` (servers with the same path) and its URL."""
    servers = []
    for url in urls:
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            raise HarnessError("requests can be counted on http:// engines only, not %s" % parts.scheme)
        servers.append((parts.hostname, parts.port or 80))
    proxy = benchkit.CountingProxy(*servers).start()
    return proxy, proxy.url(urlsplit(urls[0]).path)


def client_argv(
    name: str,
    args: argparse.Namespace,
    url: str,
    sequin_url: Optional[str],
    consumer: Optional[str],
    pypi: Optional[str],
) -> List[str]:
    limit = ["--time-limit", str(args.timeout + 120)]
    if name.startswith("pypi"):
        assert pypi is not None
        config = "tuned" if name == "pypi-tuned" else "readme"
        threads = math.ceil(args.max_tasks / len(loan_granting.TOPICS))
        return [
            pypi,
            str(SCRIPTS / "pypi_worker.py"),
            "loan",
            "--url",
            url,
            "--config",
            config,
            "--threads",
            str(threads),
            *limit,
        ]
    argv = [
        sys.executable,
        str(SCRIPTS / "bench_clients.py"),
        "loan",
        "--url",
        url,
        "--client",
        name,
        "--max-tasks",
        str(args.max_tasks),
        *limit,
    ]
    if name.startswith("cdc"):
        argv += ["--sequin-url", sequin_url or "", "--consumer", consumer or ""]
    return argv


def run_client(
    name: str, args: argparse.Namespace, setup: Setup, pypi: Optional[str], logs: Path, *, settle: bool
) -> Dict[str, Any]:
    """Start the client, run the instances through it, stop it; its figures.

    With ``settle``, wait until the engine has answered the long polls the client left
    parked, so that it locks no task of the next client's instances for a dead worker.
    """
    if not name.startswith("cdc"):
        return measure_client(name, args, setup, pypi, logs, settle=settle)
    if setup.sequin is None:
        raise HarnessError("%s needs Sequin (--sequin-url with --engine-url)" % name)
    with setup.sequin() as sequin:
        return measure_client(name, args, setup, pypi, logs, settle=settle, sequin=sequin)


def measure_client(
    name: str,
    args: argparse.Namespace,
    setup: Setup,
    pypi: Optional[str],
    logs: Path,
    *,
    settle: bool,
    sequin: Optional[Dict[str, str]] = None,
) -> Dict[str, Any]:
    """:func:`run_client` once Sequin, when the client needs it, is there."""
    admin = Client(setup.url, "loadtest-setup", auth=setup.auth)
    engine_proxy, engine_url = proxy_for(*setup.nodes)
    sequin_proxy = None
    env: Dict[str, str] = {}
    sequin_url = consumer = None
    setup.vacuum()
    if sequin is not None:
        drain(sequin)
        sequin_proxy, sequin_url = proxy_for(sequin["url"])
        consumer = sequin["consumer"]
        env["SEQUIN_API_TOKEN"] = sequin["token"]  # the environment: never on a command line
    child = benchkit.Child(
        client_argv(name, args, engine_url, sequin_url, consumer, pypi),
        name=name,
        env=env,
        log_path=logs / ("%s.log" % name),
    )
    try:
        child.expect("ready", 120)
        progress = loan_granting.Progress(args.instances)
        engine_before, database_before = setup.engine_threads(), setup.database_cpu()
        wal_sender_before = setup.wal_sender_cpu()
        driver_before = time.process_time()
        started = time.monotonic()
        try:
            ids = loan_granting.start_instances(
                admin, args.instances, concurrency=args.concurrency, rate=args.rate
            )
            finished = loan_granting.wait_for_instances(admin, ids, timeout=args.timeout, progress=progress)
        finally:
            progress.close()
        wall = time.monotonic() - started
        driver_cpu = time.process_time() - driver_before
        engine_after, database_after = setup.engine_threads(), setup.database_cpu()
        wal_sender_after = setup.wal_sender_cpu()
        final = child.stop()
        if settle and not engine_proxy.wait_settled(SETTLE_TIMEOUT):
            print("the engine still holds a long poll of %s" % name, file=sys.stderr)
    finally:
        child.stop()
        engine_proxy.stop()
        if sequin_proxy is not None:
            sequin_proxy.stop()
    if final is None:
        raise HarnessError("client %s sent no figures; see its log:\n%s" % (name, child.log_tail()))
    rows = history(admin, ids)
    admin.close()
    stats = final["stats"]
    counts = dict(stats.get("counts", {}))
    counts.setdefault("completed", stats["completed"])
    counts["report_retried"] = stats.get("report_retries", counts.get("report_retried", 0))
    durations = [row[2] for row in rows]
    pickups = stats.get("pickup_seconds", [])
    figures = loan_granting.summary(
        instances=args.instances, finished=len(rows), wall_seconds=wall, counts=counts, durations=durations
    )
    requests = engine_proxy.snapshot()
    tasks = figures["tasks"]
    engine_spent = benchkit.cpu_spent(engine_before, engine_after)
    engine_cpu = sum(engine_spent.values())
    jit_cpu = sum(engine_spent.get(name, 0.0) for name in benchkit.JIT_THREADS)
    database_cpu = (
        database_after - database_before
        if database_before is not None and database_after is not None
        else None
    )
    figures.update(
        client=name,
        all_finished=finished,
        pickup_p50=round(loan_granting.percentile(pickups, 0.50), 3) if pickups else None,
        pickup_p90=round(loan_granting.percentile(pickups, 0.90), 3) if pickups else None,
        stalls=stats.get("stalls", 0),
        worst_overrun_seconds=stats.get("worst_overrun_seconds", 0.0),
        report_errors=stats.get("report_errors", 0),
        engine_requests=requests["total"],
        engine_requests_per_task=round(requests["total"] / tasks, 2) if tasks else None,
        engine_requests_by_kind=requests["by_kind"],
        engine_error_answers=requests["errors"],
        client_cpu_seconds=round(final["cpu"], 3),
        client_cpu_per_1000_tasks=round(final["cpu"] / tasks * 1000, 3) if tasks else None,
        peak_rss_mib=round(final["peak_rss_mib"], 1),
        engine_cpu_per_1000_tasks=round(engine_cpu / tasks * 1000, 2) if engine_cpu and tasks else None,
        engine_jit_percent=round(100 * jit_cpu / engine_cpu, 1) if engine_cpu else None,
        database_cpu_per_1000_tasks=round(database_cpu / tasks * 1000, 2)
        if database_cpu is not None and tasks
        else None,
        wal_sender_cpu_per_1000_tasks=round((wal_sender_after - wal_sender_before) / tasks * 1000, 2)
        if sequin is not None and wal_sender_before is not None and wal_sender_after is not None and tasks
        else None,
        driver_cpu_per_1000_tasks=round(driver_cpu / tasks * 1000, 2) if tasks else None,
        timeline=[[round(start, 3), round(end, 3)] for start, end, _ in rows],
    )
    if sequin_proxy is not None:
        figures["sequin_requests"] = sequin_proxy.snapshot()
    return figures


def history(client: Client, ids: List[str]) -> List[Tuple[float, float, float]]:
    """``(start, end, duration)`` of each finished instance, seconds from the earliest start."""
    rows = []
    for offset in range(0, len(ids), 500):
        chunk = ids[offset : offset + 500]
        for row in client.get_history_process_instances(process_instance_ids=chunk, finished=True):
            if row.start_time is not None and row.end_time is not None and row.duration_in_millis is not None:
                rows.append(
                    (row.start_time.timestamp(), row.end_time.timestamp(), row.duration_in_millis / 1000.0)
                )
    if not rows:
        return []
    first = min(start for start, _, _ in rows)
    return [(start - first, end - first, duration) for start, end, duration in rows]


def run_idle(
    name: str, args: argparse.Namespace, setup: Setup, pypi: Optional[str], logs: Path
) -> Dict[str, Any]:
    """Requests per minute of an idle client, after a warm-up of :data:`IDLE_WARM_UP` seconds."""
    proxy, url = proxy_for(*setup.nodes)
    child = benchkit.Child(
        client_argv(name, args, url, None, None, pypi), name=name, log_path=logs / "idle.log"
    )
    try:
        child.expect("ready", 120)
        ready = time.monotonic()
        print("Idle %s for %.0f s (+%.0f s warm-up) ..." % (name, args.idle, IDLE_WARM_UP), file=sys.stderr)
        time.sleep(IDLE_WARM_UP + args.idle)
        final = child.stop()
    finally:
        child.stop()
        proxy.stop()
    window = (ready + IDLE_WARM_UP, ready + IDLE_WARM_UP + args.idle)
    counted = [t for t in proxy.request_times() if window[0] <= t < window[1]]
    return {
        "client": name,
        "idle_seconds": args.idle,
        "requests": len(counted),
        "requests_per_minute": round(len(counted) / args.idle * 60, 2),
        "requests_by_kind": proxy.snapshot()["by_kind"],
        "client_cpu_seconds": round(final["cpu"], 3) if final else None,
        "peak_rss_mib": round(final["peak_rss_mib"], 1) if final else None,
        "target": "<= 2 requests/min",
        "met": len(counted) / args.idle * 60 <= 2.0,
    }


# ---------------------------------------------------------------------- output

COLUMNS = (
    ("round", "round"),
    ("client", "client"),
    ("finished", "instances"),
    ("tasks", "tasks"),
    ("wall_seconds", "wall s"),
    ("instances_per_second", "instances/s"),
    ("tasks_per_second", "tasks/s"),
    ("latency_p50", "p50 s"),
    ("latency_p90", "p90 s"),
    ("latency_p95", "p95 s"),
    ("latency_p99", "p99 s"),
    ("pickup_p50", "pickup p50 s"),
    ("pickup_p90", "pickup p90 s"),
    ("failures", "failures"),
    ("report_errors", "failed reports"),
    ("report_retries", "report retries"),
    ("stalls", "stalls"),
    ("engine_requests_per_task", "requests/task"),
    ("client_cpu_per_1000_tasks", "client CPU s/1000 tasks"),
    ("peak_rss_mib", "peak RSS MiB"),
    ("engine_cpu_per_1000_tasks", "engine CPU s/1000 tasks"),
    ("engine_jit_percent", "engine CPU in JIT %"),
    ("database_cpu_per_1000_tasks", "database CPU s/1000 tasks"),
    ("wal_sender_cpu_per_1000_tasks", "of it WAL sender s/1000 tasks"),
    ("driver_cpu_per_1000_tasks", "driver CPU s/1000 tasks"),
)


def table_rows(results: List[Dict[str, Any]]) -> List[List[Any]]:
    return [[r.get(key) if r.get(key) is not None else "-" for key, _ in COLUMNS] for r in results]


#: The columns of the medians table: (key of summarize's rows, title).
SUMMARY_COLUMNS = (
    ("client", "client"),
    ("runs", "runs"),
    ("tasks_per_second", "tasks/s"),
    ("latency_p50", "p50 s"),
    ("latency_p99", "p99 s"),
    ("pickup_p50", "pickup p50 s"),
    ("engine_requests_per_task", "requests/task"),
    ("client_cpu_per_1000_tasks", "client CPU s/1000 tasks"),
    ("engine_cpu_per_1000_tasks", "engine CPU s/1000 tasks"),
    ("database_cpu_per_1000_tasks", "database CPU s/1000 tasks"),
    ("wal_sender_cpu_per_1000_tasks", "of it WAL sender s/1000 tasks"),
    ("driver_cpu_per_1000_tasks", "driver CPU s/1000 tasks"),
    ("failures", "failures (all runs)"),
    ("stalls", "stalls (all runs)"),
)


def summarize(results: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """Per client: medians of its runs, and failures and stalls summed over them."""
    rows = []
    for name in CLIENTS:
        mine = [r for r in results if r["client"] == name]
        if not mine:
            continue
        row: Dict[str, Any] = {"client": name, "runs": len(mine)}
        for key in (
            "tasks_per_second",
            "latency_p50",
            "latency_p99",
            "pickup_p50",
            "engine_requests_per_task",
            "client_cpu_per_1000_tasks",
            "engine_cpu_per_1000_tasks",
            "database_cpu_per_1000_tasks",
            "wal_sender_cpu_per_1000_tasks",
            "driver_cpu_per_1000_tasks",
        ):
            measured = [r[key] for r in mine if r.get(key) is not None]
            row[key] = round(statistics.median(measured), 2) if measured else None
        row["failures"] = sum(r["failures"] + r["report_errors"] for r in mine)
        row["stalls"] = sum(r["stalls"] for r in mine)
        row["all_finished"] = all(r["all_finished"] for r in mine)
        rows.append(row)
    return rows


def targets(results: List[Dict[str, Any]], *, paced: bool = False) -> List[Dict[str, Any]]:
    """The issue's targets that these results can judge, as medians of per-round ratios.

    Paced runs (``--rate``) judge no throughput: every client goes at the pace set.
    """
    found = []
    for ours, theirs, metric, text, bound in TARGETS:
        if paced and metric == "tasks_per_second":
            continue
        ratios = benchkit.round_ratios(results, "client", ours, theirs, metric)
        if ratios:
            value = statistics.median(ratios)
            met = value >= bound if metric == "tasks_per_second" else value <= bound
            found.append({"target": text, "measured": "%.2fx" % value, "met": met})
    wake = [r["engine_requests_per_task"] for r in results if r["client"] == "cdc-wake"]
    if wake:
        value = statistics.median(wake)
        found.append(
            {
                "target": "CDC wake engine requests/task <= %.2f" % WAKE_REQUESTS_PER_TASK,
                "measured": "%.2f" % value,
                "met": value <= WAKE_REQUESTS_PER_TASK,
            }
        )
    if results:
        clean = all(r["failures"] == 0 and r["report_errors"] == 0 and r["stalls"] == 0 for r in results)
        found.append({"target": "no failed task and no stall in any run", "measured": "-", "met": clean})
    return found


def summary_rows(report: Dict[str, Any]) -> List[List[Any]]:
    return [
        [row[key] if row.get(key) is not None else "-" for key, _ in SUMMARY_COLUMNS]
        for row in report["summary"]
    ]


def target_rows(report: Dict[str, Any]) -> List[List[Any]]:
    return [[t["target"], t["measured"], "met" if t["met"] else "MISSED"] for t in report["targets"]]


def describe(params: Dict[str, Any]) -> str:
    """One sentence on what each run of a report did."""
    text = "%d loan-granting instances (%d external tasks each) per client on %s, max_tasks/threads %d, " % (
        params["instances"],
        loan_granting.TASKS_PER_INSTANCE,
        params["database"],
        params["max_tasks"],
    )
    text += "%d instance starts in flight" % params["concurrency"]
    if params.get("rate"):
        text += ", started at %g instances/s" % params["rate"]
    if params.get("warm_up"):
        # Reports from before the warm-up went through every client say nothing of it.
        text += "; before the runs, %d warm-up instances through %s (not reported)" % (
            params["warm_up"],
            "each client" if params.get("warm_up_each") else "the first client",
        )
    text += "."
    if params.get("nodes", 1) > 1:
        text += (
            " %d engine nodes on that database, each client connection balanced to the next node."
            % (params["nodes"])
        )
    return text


def markdown(report: Dict[str, Any]) -> str:
    params, host = report["parameters"], report["machine"]
    lines = []
    if report.get("results"):
        lines.append(
            "%s Machine: %s, %s CPUs, %.0f GiB."
            % (describe(params), host["cpu_model"], host["nproc"], host["memory_gib"])
        )
        lines += ["", benchkit.markdown_table([title for _, title in COLUMNS], table_rows(report["results"]))]
        if params.get("rounds", 1) > 1:
            lines += [
                "",
                "Medians of %d rounds:" % params["rounds"],
                "",
                benchkit.markdown_table([title for _, title in SUMMARY_COLUMNS], summary_rows(report)),
            ]
        lines += ["", benchkit.markdown_table(["target", "measured", ""], target_rows(report))]
        for result in report["results"]:
            if result["engine_error_answers"]:
                errors = ", ".join("%s: %d" % item for item in result["engine_error_answers"].items())
                lines += ["", "%s, engine error answers: %s" % (result["client"], errors)]
    if report.get("idle"):
        idle = report["idle"]
        lines += [
            "",
            benchkit.markdown_table(
                ["idle client", "seconds", "requests", "requests/min", "target", ""],
                [
                    [
                        idle["client"],
                        idle["idle_seconds"],
                        idle["requests"],
                        idle["requests_per_minute"],
                        idle["target"],
                        "met" if idle["met"] else "MISSED",
                    ]
                ],
            ),
        ]
    return "\n".join(lines) + "\n"


def plot(results: List[Dict[str, Any]], path: str) -> bool:
    """Latency distribution and completions over time, one line per client; False without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed (pip install -e .[plot]); no plot written", file=sys.stderr)
        return False
    figure, (latency, progress) = plt.subplots(1, 2, figsize=(12, 4.5))
    several_rounds = len({result["round"] for result in results}) > 1
    for result in results:
        label = "%s, round %d" % (result["client"], result["round"]) if several_rounds else result["client"]
        durations = sorted(end - start for start, end in result["timeline"])
        if not durations:
            continue
        shares = [(n + 1) / len(durations) for n in range(len(durations))]
        latency.plot(durations, shares, label=label)
        ends = sorted(end for _, end in result["timeline"])
        progress.plot(ends, range(1, len(ends) + 1), label=label)
    latency.set_xlabel("instance latency, s (engine history)")
    latency.set_ylabel("share of instances (CDF)")
    latency.set_xscale("log")
    latency.grid(True, alpha=0.3)
    latency.legend()
    progress.set_xlabel("seconds since the first instance started")
    progress.set_ylabel("instances finished")
    progress.grid(True, alpha=0.3)
    progress.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return True


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=300, help="instances per client (default 300)")
    parser.add_argument(
        "--client",
        default="rest",
        help="one or more of %s, comma-separated (default rest)" % ", ".join(CLIENTS),
    )
    parser.add_argument("--rounds", type=int, default=1, help="run the clients this many times (default 1)")
    parser.add_argument(
        "--warm-up",
        type=int,
        default=2000,
        help="unreported instances through each client first (default 2000)",
    )
    parser.add_argument("--max-tasks", type=int, default=20, help="handler slots of the client (default 20)")
    parser.add_argument("--concurrency", type=int, default=8, help="instance starts in flight (default 8)")
    parser.add_argument(
        "--rate",
        type=float,
        help="start this many instances per second (default: as fast as they are taken); a load "
        "the client keeps up with makes pickup latency the time to learn of a task, not queueing",
    )
    parser.add_argument("--timeout", type=float, default=900, help="seconds to wait for the instances")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--h2", action="store_true", help="run the engine on H2 instead of PostgreSQL")
    where.add_argument("--engine-url", help="use a running engine (CAMUNDA_USER/CAMUNDA_PASSWORD for auth)")
    parser.add_argument(
        "--nodes",
        type=int,
        default=1,
        help="engine nodes on the one PostgreSQL database, each client connection balanced to the "
        "next one (default 1)",
    )
    parser.add_argument("--sequin-url", help="with --engine-url: Sequin's root for the cdc clients")
    parser.add_argument("--consumer", help="with --sequin-url: the consumer (token in SEQUIN_API_TOKEN)")
    parser.add_argument(
        "--idle", type=float, metavar="SECONDS", help="measure an idle client's requests instead"
    )
    parser.add_argument("--pypi-python", help="interpreter with the PyPI client (default: its own venv)")
    parser.add_argument("--json", help="write the report as JSON here")
    parser.add_argument("--markdown", help="write the tables as Markdown here")
    parser.add_argument("--plot", help="write a PNG (latency CDF, completions over time) here")
    parser.add_argument("--logs", help="keep the clients' stderr logs in this folder")
    parser.add_argument("-v", "--verbose", action="store_true", help="log the harness")
    args = parser.parse_args(argv)
    args.clients = [c for c in args.client.split(",") if c]
    unknown = set(args.clients) - set(CLIENTS)
    if unknown or not args.clients:
        parser.error("unknown clients: %s" % ", ".join(sorted(unknown)))
    if args.idle is not None and not 0 < args.idle <= 3600:
        parser.error("--idle takes 1 to 3600 seconds")
    if not 1 <= args.rounds <= 20:
        parser.error("--rounds takes 1 to 20")
    if args.rate is not None and not 0 < args.rate <= 1000:
        parser.error("--rate takes more than 0 and at most 1000 instances per second")
    if not 1 <= args.nodes <= 4:
        parser.error("--nodes takes 1 to 4")
    if args.nodes > 1 and (args.h2 or args.engine_url):
        parser.error("--nodes shares one database of our own: PostgreSQL, without --h2 or --engine-url")
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING)
    pypi = None
    if any(c.startswith("pypi") for c in args.clients):
        pypi = benchkit.pypi_python(args.pypi_python, log=lambda m: print(m, file=sys.stderr))
    database = "external engine" if args.engine_url else "H2" if args.h2 else "PostgreSQL"
    report: Dict[str, Any] = {
        "parameters": {
            "instances": args.instances,
            "clients": args.clients,
            "max_tasks": args.max_tasks,
            "concurrency": args.concurrency,
            "rate": args.rate,
            "nodes": args.nodes,
            "rounds": args.rounds,
            "timeout": args.timeout,
            "warm_up": args.warm_up,
            "warm_up_each": True,
            "database": database,
        },
        "machine": benchkit.machine(),
        "results": [],
    }
    try:
        with engine_for(args) as setup, tempfile.TemporaryDirectory(prefix="loadtest-") as tmp:
            logs = Path(args.logs or tmp)
            logs.mkdir(parents=True, exist_ok=True)
            # Once per engine: a repeated deployment is filtered out, and camunda_ext cannot
            # read the engine's answer to that yet (deployedProcessDefinitions is null).
            with Client(setup.url, "loadtest-setup", auth=setup.auth) as admin:
                loan_granting.deploy(admin)
                if args.idle is None and setup.postgres is not None:  # only in a cluster of our own
                    park_instances(admin)
            if args.warm_up and args.idle is None:
                # The engine's JIT compiler takes CPU from the runs until the engine code
                # each client calls is compiled: a fifth of the engine's CPU in the first
                # runs after 2000 instances through one client, and again at the first run
                # of a client with other requests (PyPI: one fetch per task). Hence a
                # warm-up through every client; each run reports the JIT's share.
                warm = argparse.Namespace(**{**vars(args), "instances": args.warm_up, "rate": None})
                for name in args.clients:
                    print(
                        "Warm-up: %d instances through %s (not reported) ..." % (args.warm_up, name),
                        file=sys.stderr,
                    )
                    run_client(name, warm, setup, pypi, logs, settle=True)
            if args.idle is not None:
                report["idle"] = run_idle(args.clients[0], args, setup, pypi, logs)
            runs = (
                []
                if args.idle is not None
                else [
                    (number + 1, name)
                    for number in range(args.rounds)
                    for name in benchkit.rotated(args.clients, number)
                ]
            )
            for position, (number, name) in enumerate(runs):
                print(
                    "Round %d, client %s: %d instances ..." % (number, name, args.instances), file=sys.stderr
                )
                result = run_client(name, args, setup, pypi, logs, settle=position + 1 < len(runs))
                report["results"].append({"round": number, **result})
    except (HarnessError, CamundaError, benchkit.ChildError) as error:
        print("loadtest failed: %s" % error, file=sys.stderr)
        return 1
    report["summary"] = summarize(report["results"])
    report["targets"] = targets(report["results"], paced=args.rate is not None)
    benchkit.write_json(args.json, report)  # first: the figures outlive a rendering fault
    text = markdown(report)
    print(text)
    if args.markdown:
        Path(args.markdown).write_text(text, encoding="utf-8")
    if args.plot and report["results"]:
        plot(report["results"], args.plot)
    ok = all(r["all_finished"] and r["failures"] == 0 for r in report["results"])
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
